"""The statuses service: creating, publishing when media are ready, deleting, and the
idempotent actions, with their counters, notifications and rows."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import utcnow
from server.models import (
    Account,
    Bookmark,
    Favourite,
    Follow,
    IdempotencyKey,
    MediaAttachment,
    Mention,
    Notification,
    Status,
    StatusTag,
    Tag,
    User,
)
from server.services import statuses
from server.services.errors import NotFound, ServiceError
from server.services.visibility import can_see
from server.settings import Settings

WATCHED = (Status, Mention, Tag, StatusTag, IdempotencyKey, Notification, Favourite, Bookmark)


async def post(db: Database, settings: Settings, user: User, **options: Any) -> Status:
    async with db.session() as session:
        return await statuses.create_status(session, settings, user.account, None, **options)


async def media(db: Database, owner: User, state: str = "ready", **values: Any) -> int:
    async with db.session() as session:
        item = MediaAttachment(account_id=owner.account.id, state=state,
                               file_key="media/aa/bb/file.webp" if state == "ready" else None,
                               **values)
        session.add(item)
        await session.commit()
        return item.id


async def follow(db: Database, follower: User, target: User, *, notify: bool = False) -> None:
    async with db.session() as session:
        session.add(Follow(account_id=follower.account.id, target_account_id=target.account.id,
                           notify=notify))
        await session.commit()


async def reload(db: Database, model: Any, row_id: int) -> Any:
    async with db.session() as session:
        return await session.get(model, row_id)


async def counts(db: Database) -> dict[str, int]:
    async with db.session() as session:
        return {model.__name__: await session.scalar(select(func.count()).select_from(model)) or 0
                for model in WATCHED}


async def notifications(db: Database) -> list[tuple[str, str, int | None]]:
    async with db.session() as session:
        rows = (await session.execute(
            select(Notification.type, Account.username, Notification.status_id)
            .join(Account, Account.id == Notification.account_id)
            .order_by(Notification.type, Account.username))).all()
    return [(t, u, s) for t, u, s in rows]


# ------------------------------------------------------------------------- creating

async def test_a_status_is_published_with_its_mentions_tags_and_counters(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    status = await post(db, settings, alice, text="Hello @bob! #NewWork #newwork #Ink",
                        language="EN")
    assert status.published and status.published_at is not None
    assert status.uri == f"https://easel.test/users/alice/statuses/{status.id}"
    assert status.url == f"https://easel.test/@alice/{status.id}"
    assert status.language == "en" and status.visibility == "public"
    assert 'href="https://easel.test/@bob" class="u-url mention"' in status.content
    async with db.session() as session:
        tags = {t.name: t.display_name for t in await session.scalars(
            select(Tag).join(StatusTag, StatusTag.tag_id == Tag.id)
            .where(StatusTag.status_id == status.id))}
        mentioned = list(await session.scalars(
            select(Mention.account_id).where(Mention.status_id == status.id)))
    assert tags == {"newwork": "NewWork", "ink": "Ink"}
    assert mentioned == [bob.account.id]
    author = await reload(db, Account, alice.account.id)
    assert author.statuses_count == 1 and author.last_status_at is not None
    assert await notifications(db) == [("mention", "bob", status.id)]


async def test_an_existing_tag_keeps_its_first_spelling(
    db: Database, settings: Settings, alice: User
) -> None:
    await post(db, settings, alice, text="#DigitalArt")
    await post(db, settings, alice, text="#DIGITALART")
    async with db.session() as session:
        assert [(t.name, t.display_name) for t in await session.scalars(select(Tag))] == [
            ("digitalart", "DigitalArt")]
        assert await session.scalar(select(func.count()).select_from(StatusTag)) == 2


async def test_posts_racing_to_create_the_same_tag_share_one_row(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    results = await asyncio.gather(*(post(db, settings, user, text=f"#Brandnew {n}")
                                     for n, user in enumerate([alice, bob, alice, bob])))
    assert len({s.id for s in results}) == 4
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Tag)) == 1
        assert await session.scalar(select(func.count()).select_from(StatusTag)) == 4


async def test_defaults_come_from_the_users_preferences(
    db: Database, settings: Settings, alice: User
) -> None:
    async with db.session() as session:
        await session.execute(update(User).where(User.id == alice.id).values(
            default_privacy="unlisted", default_sensitive=True, default_language="de"))
        await session.commit()
    status = await post(db, settings, alice, text="hi")
    assert (status.visibility, status.sensitive, status.language) == ("unlisted", True, "de")
    status = await post(db, settings, alice, text="hi", visibility="private", sensitive=False,
                        language="zh-tw")
    assert (status.visibility, status.sensitive, status.language) == ("private", False, "zh-TW")


async def test_a_content_warning_makes_a_status_sensitive(
    db: Database, settings: Settings, alice: User
) -> None:
    status = await post(db, settings, alice, text="hi", spoiler_text=" nudity ", sensitive=False)
    assert status.sensitive and status.spoiler_text == "nudity"


async def test_a_reply_records_its_parent_and_counts_on_it(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    parent = await post(db, settings, alice, text="first")
    reply = await post(db, settings, bob, text="second", in_reply_to_id=parent.id)
    assert reply.in_reply_to_id == parent.id and reply.in_reply_to_account_id == alice.account.id
    assert (await reload(db, Status, parent.id)).replies_count == 1


async def test_a_reply_to_a_boost_replies_to_the_boosted_status(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    original = await post(db, settings, alice, text="first")
    async with db.session() as session:
        boost = await statuses.reblog(session, settings, bob.account, original.id)
    reply = await post(db, settings, bob, text="re", in_reply_to_id=boost.id)
    assert reply.in_reply_to_id == original.id


BAD_CREATES: list[tuple[dict[str, Any], type[ServiceError], str]] = [
    ({"text": "  "}, ServiceError, "Validation failed: Text can't be blank"),
    ({"text": "x" * 501}, ServiceError, "Validation failed: Text character limit of 500 exceeded"),
    ({"text": "x" * 250, "spoiler_text": "y" * 251}, ServiceError,
     "Validation failed: Text character limit of 500 exceeded"),
    ({"text": "hi", "visibility": "friends"}, ServiceError,
     "Validation failed: Visibility is not included in the list"),
    ({"text": "hi", "language": "english"}, ServiceError,
     "Validation failed: Language is not a valid language code"),
    ({"text": "hi", "language": "<b>"}, ServiceError,
     "Validation failed: Language is not a valid language code"),
    ({"text": "hi", "in_reply_to_id": 12345}, NotFound, "Record not found"),
    ({"text": "hi", "media_ids": [1, 2, 3, 4, 5]}, ServiceError, "Cannot attach more than 4 files"),
    ({"text": "hi", "media_ids": [987654321]}, ServiceError,
     "Media 987654321 not found or already attached to another post"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD_CREATES)
async def test_bad_input_is_refused_with_nothing_written(
    db: Database, settings: Settings, alice: User, bob: User, options: dict[str, Any],
    error: type[ServiceError], message: str
) -> None:
    before = await counts(db)
    with pytest.raises(error) as raised:
        await post(db, settings, alice, **options, idempotency_key="k")
    assert raised.value.message == message
    assert await counts(db) == before


async def test_a_post_of_exactly_the_limit_counting_urls_as_23_is_accepted(
    db: Database, settings: Settings, alice: User
) -> None:
    url = " https://example.com/" + "y" * 300
    status = await post(db, settings, alice, text="x" * 476 + url)  # 476 + 1 + 23 = 500
    assert status.published
    with pytest.raises(ServiceError):
        await post(db, settings, alice, text="x" * 477 + url)


async def test_someone_elses_or_attached_media_cannot_be_used(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    bobs = await media(db, bob)
    mine = await media(db, alice)
    before = await counts(db)
    with pytest.raises(ServiceError) as raised:
        await post(db, settings, alice, text="hi", media_ids=[mine, bobs])
    assert raised.value.message == f"Media {bobs} not found or already attached to another post"
    assert await counts(db) == before
    assert (await reload(db, MediaAttachment, mine)).status_id is None
    first = await post(db, settings, alice, media_ids=[mine])
    assert (await reload(db, MediaAttachment, mine)).status_id == first.id
    with pytest.raises(ServiceError):
        await post(db, settings, alice, text="again", media_ids=[mine])


async def test_a_reply_to_a_status_the_author_cannot_see_is_not_found(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    hidden = await post(db, settings, bob, text="followers only", visibility="private")
    with pytest.raises(NotFound):
        await post(db, settings, alice, text="re", in_reply_to_id=hidden.id)
    await follow(db, alice, bob)
    reply = await post(db, settings, alice, text="re", in_reply_to_id=hidden.id)
    assert reply.in_reply_to_id == hidden.id


# ---------------------------------------------------------------------- idempotency

async def test_the_same_idempotency_key_returns_the_same_status_within_an_hour(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    first = await post(db, settings, alice, text="once", idempotency_key="abc")
    before = await counts(db)
    again = await post(db, settings, alice, text="something else", idempotency_key="abc")
    assert again.id == first.id and again.text == "once"
    assert await counts(db) == before
    # Another account's key is its own.
    other = await post(db, settings, bob, text="once", idempotency_key="abc")
    assert other.id != first.id
    # After an hour the key is free again.
    async with db.session() as session:
        await session.execute(update(IdempotencyKey).values(
            created_at=utcnow() - timedelta(hours=2)))
        await session.commit()
    later = await post(db, settings, alice, text="twice", idempotency_key="abc")
    assert later.id != first.id
    assert (await reload(db, Account, alice.account.id)).statuses_count == 2


async def test_concurrent_requests_with_one_key_post_once(
    db: Database, settings: Settings, alice: User
) -> None:
    results = await asyncio.gather(*(post(db, settings, alice, text="once", idempotency_key="k")
                                     for _ in range(3)))
    assert len({s.id for s in results}) == 1
    assert (await counts(db))["Status"] == 1


# ----------------------------------------------------------------------- publishing

async def test_a_status_with_processing_media_waits_unpublished_for_them(
    db: Database, settings: Settings, alice: User, bob: User, carol: User
) -> None:
    await follow(db, bob, alice, notify=True)
    ready = await media(db, alice)
    processing = await media(db, alice, state="processing")
    status = await post(db, settings, alice, text="new piece @carol",
                        media_ids=[ready, processing])
    assert not status.published and status.published_at is None
    async with db.session() as session:
        assert await can_see(session, status, alice.account)
        assert not await can_see(session, status, bob.account)
        assert not await can_see(session, status, carol.account)
        assert not await can_see(session, status, None)
    assert await notifications(db) == []
    assert (await reload(db, Account, alice.account.id)).statuses_count == 0

    # The media job marks the last image ready and publishes, in its own transaction.
    async with db.session() as session:
        await session.execute(update(MediaAttachment).where(MediaAttachment.id == processing)
                              .values(state="ready"))
        assert await statuses.publish_if_ready(session, status.id)
        await session.commit()
    async with db.session() as session:  # renumbered as of its publication
        new_id = await statuses.current_id(session, status.id)
    assert new_id > status.id
    published = await reload(db, Status, new_id)
    assert published.published and published.published_at is not None
    async with db.session() as session:
        assert await can_see(session, published, bob.account)
    assert await notifications(db) == [("mention", "carol", new_id),
                                        ("status", "bob", new_id)]
    assert (await reload(db, Account, alice.account.id)).statuses_count == 1


async def test_publish_if_ready_leaves_the_commit_to_its_caller(
    db: Database, settings: Settings, alice: User
) -> None:
    item = await media(db, alice, state="processing")
    status = await post(db, settings, alice, media_ids=[item])
    async with db.session() as session:
        await session.execute(update(MediaAttachment).values(state="ready"))
        assert await statuses.publish_if_ready(session, status.id)
        await session.rollback()
    assert not (await reload(db, Status, status.id)).published


async def test_publishing_happens_once(db: Database, settings: Settings, alice: User, bob: User) -> None:
    await follow(db, bob, alice, notify=True)
    item = await media(db, alice, state="processing")
    status = await post(db, settings, alice, media_ids=[item])
    async with db.session() as session:
        await session.execute(update(MediaAttachment).values(state="ready"))
        assert await statuses.publish_if_ready(session, status.id)
        assert not await statuses.publish_if_ready(session, status.id)
        await session.commit()
    async with db.session() as session:
        assert not await statuses.publish_if_ready(session, status.id)
        assert not await statuses.publish_if_ready(session, 424242)
        new_id = await statuses.current_id(session, status.id)
        assert not await statuses.publish_if_ready(session, new_id)
    assert (await reload(db, Account, alice.account.id)).statuses_count == 1
    assert await notifications(db) == [("status", "bob", new_id)]


async def test_failed_media_keep_a_status_unpublished(
    db: Database, settings: Settings, alice: User
) -> None:
    item = await media(db, alice, state="processing")
    status = await post(db, settings, alice, media_ids=[item])
    async with db.session() as session:
        await session.execute(update(MediaAttachment).values(state="failed"))
        assert not await statuses.publish_if_ready(session, status.id)
        await session.commit()
    assert not (await reload(db, Status, status.id)).published


async def test_subscribers_are_not_told_of_direct_messages_or_replies_to_others(
    db: Database, settings: Settings, alice: User, bob: User, carol: User
) -> None:
    await follow(db, bob, alice, notify=True)
    await follow(db, carol, alice)  # follows without notifications
    parent = await post(db, settings, carol, text="carol's")
    await post(db, settings, alice, text="secret", visibility="direct")
    await post(db, settings, alice, text="re", in_reply_to_id=parent.id)
    own_thread = await post(db, settings, alice, text="mine")
    followers_only = await post(db, settings, alice, text="more", visibility="private",
                                in_reply_to_id=own_thread.id)
    assert await notifications(db) == [("status", "bob", own_thread.id),
                                       ("status", "bob", followers_only.id)]


# ------------------------------------------------------------------------- deleting

async def test_deleting_a_status_keeps_counters_right_and_detaches_its_media(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    parent = await post(db, settings, bob, text="parent")
    item = await media(db, alice)
    status = await post(db, settings, alice, text="@bob #tag", media_ids=[item],
                        in_reply_to_id=parent.id, idempotency_key="key")
    async with db.session() as session:
        await statuses.favourite(session, bob.account, status.id)
    async with db.session() as session:
        await statuses.bookmark(session, bob.account, status.id)
    async with db.session() as session:
        await statuses.reblog(session, settings, bob.account, status.id)
    assert (await reload(db, Account, bob.account.id)).statuses_count == 2
    async with db.session() as session:
        await statuses.delete_status(session, await statuses.own_status(
            session, alice.account, status.id))
    assert await reload(db, Status, status.id) is None
    assert (await reload(db, Account, alice.account.id)).statuses_count == 0
    assert (await reload(db, Account, bob.account.id)).statuses_count == 1  # the boost went too
    assert (await reload(db, Status, parent.id)).replies_count == 0
    assert (await reload(db, MediaAttachment, item)).status_id is None
    remaining = await counts(db)
    assert remaining == {"Status": 1, "Mention": 0, "Tag": 1, "StatusTag": 0,
                         "IdempotencyKey": 0, "Notification": 0, "Favourite": 0, "Bookmark": 0}
    # The media can be posted again (delete and redraft).
    redraft = await post(db, settings, alice, text="@bob #tag", media_ids=[item])
    assert (await reload(db, MediaAttachment, item)).status_id == redraft.id


async def test_deleting_an_unpublished_status_leaves_the_counters_alone(
    db: Database, settings: Settings, alice: User
) -> None:
    await post(db, settings, alice, text="published")
    item = await media(db, alice, state="processing")
    status = await post(db, settings, alice, media_ids=[item])
    async with db.session() as session:
        await statuses.delete_status(session, await statuses.own_status(
            session, alice.account, status.id))
    assert (await reload(db, Account, alice.account.id)).statuses_count == 1


async def test_only_the_author_can_delete(db: Database, settings: Settings, alice: User, bob: User) -> None:
    status = await post(db, settings, alice, text="mine")
    async with db.session() as session:
        with pytest.raises(NotFound):
            await statuses.own_status(session, bob.account, status.id)


# ------------------------------------------------------------- favourites and boosts

async def test_favourites_are_idempotent_and_counted_once(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    status = await post(db, settings, alice, text="like me")
    for _ in range(2):
        async with db.session() as session:
            result = await statuses.favourite(session, bob.account, status.id)
        assert result.favourites_count == 1
    assert await notifications(db) == [("favourite", "alice", status.id)]
    for _ in range(2):
        async with db.session() as session:
            result = await statuses.unfavourite(session, bob.account, status.id)
        assert result.favourites_count == 0
    assert (await counts(db))["Favourite"] == 0


async def test_concurrent_favourites_count_each_account_once(
    db: Database, settings: Settings, alice: User, bob: User, carol: User
) -> None:
    status = await post(db, settings, alice, text="like me")

    async def like(user: User) -> None:
        async with db.session() as session:
            await statuses.favourite(session, user.account, status.id)

    await asyncio.gather(like(bob), like(carol), like(bob), like(carol))
    assert (await reload(db, Status, status.id)).favourites_count == 2


async def test_boosts_are_idempotent_and_counted(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    status = await post(db, settings, alice, text="boost me")
    async with db.session() as session:
        boost = await statuses.reblog(session, settings, bob.account, status.id, "unlisted")
    async with db.session() as session:
        again = await statuses.reblog(session, settings, bob.account, boost.id)
    assert again.id == boost.id and boost.visibility == "unlisted" and boost.published
    assert boost.uri == f"https://easel.test/users/bob/statuses/{boost.id}/activity"
    assert (await reload(db, Status, status.id)).reblogs_count == 1
    assert (await reload(db, Account, bob.account.id)).statuses_count == 1
    assert await notifications(db) == [("reblog", "alice", status.id)]
    for _ in range(2):
        async with db.session() as session:
            original = await statuses.unreblog(session, bob.account, status.id)
        assert original.id == status.id and original.reblogs_count == 0
    assert (await reload(db, Account, bob.account.id)).statuses_count == 0


async def test_private_and_direct_statuses_cannot_be_boosted_by_others(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    await follow(db, bob, alice)
    private = await post(db, settings, alice, text="followers", visibility="private")
    direct = await post(db, settings, alice, text="@bob psst", visibility="direct")
    for status in (private, direct):
        async with db.session() as session:
            with pytest.raises(ServiceError) as raised:
                await statuses.reblog(session, settings, bob.account, status.id)
        assert (raised.value.status_code, raised.value.message) == (403, "This action is not allowed")
    async with db.session() as session:
        own = await statuses.reblog(session, settings, alice.account, private.id, "public")
    assert own.visibility == "private"
    async with db.session() as session:
        with pytest.raises(ServiceError):
            await statuses.reblog(session, settings, alice.account, direct.id)
    assert (await counts(db))["Status"] == 3


async def test_an_unpublished_status_cannot_be_boosted_yet(
    db: Database, settings: Settings, alice: User
) -> None:
    item = await media(db, alice, state="processing")
    status = await post(db, settings, alice, media_ids=[item])
    async with db.session() as session:
        with pytest.raises(ServiceError):
            await statuses.reblog(session, settings, alice.account, status.id)
        # …but its author may favourite and bookmark it.
        assert (await statuses.favourite(session, alice.account, status.id)).favourites_count == 1
    async with db.session() as session:
        await statuses.bookmark(session, alice.account, status.id)
    assert (await counts(db))["Bookmark"] == 1


# -------------------------------------------------------------------------- context

async def test_the_context_walks_the_thread_in_reading_order(
    db: Database, settings: Settings, alice: User, bob: User, carol: User
) -> None:
    root = await post(db, settings, alice, text="root")
    a = await post(db, settings, bob, text="a", in_reply_to_id=root.id)
    b = await post(db, settings, carol, text="b", in_reply_to_id=root.id)
    a1 = await post(db, settings, alice, text="a1", in_reply_to_id=a.id)
    hidden = await post(db, settings, carol, text="a2", in_reply_to_id=a.id, visibility="private")
    a1x = await post(db, settings, bob, text="a1x", in_reply_to_id=a1.id)
    async with db.session() as session:
        thread = await statuses.context(session, alice.account, a1.id)
        assert [s.id for s in thread.ancestors] == [root.id, a.id]
        assert [s.id for s in thread.descendants] == [a1x.id]
        thread = await statuses.context(session, alice.account, root.id)
        assert [s.id for s in thread.descendants] == [a.id, a1.id, a1x.id, b.id]
        thread = await statuses.context(session, carol.account, root.id)
        assert [s.id for s in thread.descendants] == [a.id, a1.id, a1x.id, hidden.id, b.id]
