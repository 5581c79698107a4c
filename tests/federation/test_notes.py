"""Remote notes → statuses (federation.notes), read back through the client API.

Given Notes shaped like the ones Mastodon, GoToSocial, Pixelfed, Misskey and minimal
servers send, when Easel stores, edits, resolves and deletes them, I expect the rows,
counters, notifications and client-API entities a Mastodon client would expect — and
refusals, with nothing stored, for notes that break the origin and attribution rules.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from federation.context import FederationContext
from federation.notes import (
    MAX_REPLY_DEPTH,
    NoteRefused,
    NoteUnavailable,
    delete_remote_status,
    find_status_by_uri,
    resolve_status,
    store_note,
)
from server.db import Database
from server.models import (
    Account,
    Activity,
    DomainBlock,
    Follow,
    MediaAttachment,
    Mention,
    Notification,
    Status,
    StatusTag,
    Tag,
    Tombstone,
    User,
)
from server.services.statuses import create_status, reblog
from server.settings import Settings
from tests.federation.fediverse import (
    CAROL,
    DAVE,
    ERIN,
    FRANK,
    KUMO,
    PUBLIC,
    TINY,
    Fediverse,
    corpus_note,
)

MASTODON_NOTE = "https://mastodon.example/users/carol/statuses/112233445566778899"


async def store(fed: FederationContext, db: Database, note: dict[str, Any]) -> Status:
    author = await fed.fetcher.fetch_actor(str(note["attributedTo"]))
    async with db.session() as session:
        status = await store_note(fed, session, note, author=author)
        await session.commit()
        return status


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where))
                   or 0)


async def account(db: Database, uri: str) -> Account:
    async with db.session() as session:
        found = await session.scalar(select(Account).where(Account.uri == uri))
        assert found is not None
        return found


async def media_of(db: Database, status_id: int) -> list[MediaAttachment]:
    async with db.session() as session:
        return list(await session.scalars(select(MediaAttachment).where(
            MediaAttachment.status_id == status_id).order_by(MediaAttachment.id)))


async def tags_of(db: Database, status_id: int) -> set[str]:
    async with db.session() as session:
        return set(await session.scalars(select(Tag.name).join(
            StatusTag, StatusTag.tag_id == Tag.id).where(StatusTag.status_id == status_id)))


async def follow(db: Database, user: User, target_uri: str, notify: bool = False) -> None:
    target = await account(db, target_uri)
    async with db.session() as session:
        session.add(Follow(account_id=user.account_id, target_account_id=target.id,
                           notify=notify))
        await session.commit()


# --------------------------------------------------------------------------- corpus

async def test_a_mastodon_note_becomes_a_status_with_ordered_media_tags_and_a_mention(
        fed: FederationContext, db: Database, alice: User, alice_api: httpx.AsyncClient,
        client: httpx.AsyncClient) -> None:
    status = await store(fed, db, corpus_note("mastodon_create_note.json"))

    assert status.uri == MASTODON_NOTE
    assert status.url == "https://mastodon.example/@carol/112233445566778899"
    assert not status.local and status.published and status.visibility == "public"
    published = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert status.id >> 16 == int(published.timestamp() * 1000)  # ordered by `published`
    assert await tags_of(db, status.id) == {"inkdrawing", "art"}
    carol = await account(db, CAROL)
    assert carol.statuses_count == 1 and carol.last_status_at is not None

    entity = (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()
    assert entity["created_at"] == "2024-05-01T10:00:00.000Z"
    assert entity["account"]["acct"] == "carol@mastodon.example"
    assert "New sketches for" in entity["content"] and "<script" not in entity["content"]
    assert [m["acct"] for m in entity["mentions"]] == ["alice"]
    assert {t["name"] for t in entity["tags"]} == {"InkDrawing", "art"}
    first, second = entity["media_attachments"]
    assert first["type"] == "image"
    assert first["url"] == first["remote_url"] == (
        "https://files.mastodon.example/media_attachments/files/112/233/445/original/"
        "a1b2c3d4e5f60718.jpg")
    assert first["preview_url"] == first["url"]
    assert first["description"] == "Ink sketch of a heron standing in reeds"
    assert first["blurhash"] == "UBL_:rOpGG-oBUNG,qRj2so|=eE1w^n4S5NH"
    assert first["meta"]["original"]["width"] == 1600
    assert first["meta"]["focus"] == {"x": 0.0, "y": 0.25}
    assert second["url"].endswith("0f1e2d3c4b5a6978.png") and second["description"] is None

    notifications = (await alice_api.get("/api/v1/notifications")).json()
    assert [(n["type"], n["status"]["id"]) for n in notifications] == [("mention", str(status.id))]
    public = (await client.get("/api/v1/timelines/public")).json()
    assert [s["id"] for s in public] == [str(status.id)]


async def test_a_gotosocial_note_for_followers_with_public_in_cc_is_unlisted_and_sensitive(
        fed: FederationContext, db: Database, alice: User, alice_api: httpx.AsyncClient,
        client: httpx.AsyncClient) -> None:
    await fed.fetcher.fetch_actor(ERIN)
    await follow(db, alice, ERIN)
    status = await store(fed, db, corpus_note("gotosocial_create_note.json"))

    assert status.visibility == "unlisted"
    assert status.spoiler_text == "eye contact" and status.sensitive
    assert status.language == "en"
    [media] = await media_of(db, status.id)
    assert (media.focus_x, media.focus_y) == (-0.5, 0.5)
    assert media.description.startswith("A watercolour portrait")
    home = (await alice_api.get("/api/v1/timelines/home")).json()
    assert [s["id"] for s in home] == [str(status.id)]
    assert (await client.get("/api/v1/timelines/public")).json() == []  # unlisted


async def test_pixelfed_images_keep_their_order_and_alt_text(
        fed: FederationContext, db: Database) -> None:
    status = await store(fed, db, corpus_note("pixelfed_create_note.json"))

    media = await media_of(db, status.id)
    assert [m.description for m in media] == ["Boats moored in a calm harbour at sunrise",
                                              "Close-up of a rope coiled on the quay"]
    assert [m.remote_url.rsplit("/", 1)[1] for m in media if m.remote_url] == [
        "harbour1.jpg", "harbour2.jpg"]
    assert all(m.type == "image" and m.state == "ready" and m.file_key is None for m in media)
    assert await tags_of(db, status.id) == {"photography", "harbour"}


async def test_a_misskey_note_with_only_its_plain_source_and_a_single_tag_object(
        fed: FederationContext, db: Database) -> None:
    note = corpus_note("misskey_create_note.json")
    del note["content"]
    del note["source"]  # only _misskey_content is left
    status = await store(fed, db, note)

    assert status.content == "<p>today's doodle #oekaki</p>"
    assert status.sensitive
    assert await tags_of(db, status.id) == {"oekaki"}
    [media] = await media_of(db, status.id)
    assert media.original_content_type == "image/webp" and media.description == ""


async def test_a_misskey_quote_becomes_a_link_unless_the_text_already_has_it(
        fed: FederationContext, db: Database) -> None:
    quoted = "https://misskey.example/notes/9u00quoted"
    note = corpus_note("misskey_create_note.json") | {"_misskey_quote": quoted,
                                                      "quoteUrl": quoted}
    status = await store(fed, db, note)
    assert status.content.endswith(f'<p>RE: <a href="{quoted}" target="_blank" '
                                   f'rel="nofollow noopener noreferrer">{quoted}</a></p>')

    with_link = corpus_note("misskey_create_note.json") | {
        "id": "https://misskey.example/notes/9u3k2a1b0d", "quoteUrl": quoted,
        "content": f'<p>look<br><br>RE: <a href="{quoted}">{quoted}</a></p>'}
    status = await store(fed, db, with_link)
    assert status.content.count(quoted) == 2  # its own link (href and text), not another


async def test_a_minimal_server_note_single_attachment_short_public_no_published(
        fed: FederationContext, db: Database, client: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    status = await store(fed, db, corpus_note("minimal_create_note.json"))

    assert status.visibility == "public"
    assert status.url == "https://tiny.example/notes/1"
    assert status.content == "hello from a very small server"
    created = status.created_at if status.created_at.tzinfo else status.created_at.replace(tzinfo=UTC)
    assert created >= before.replace(microsecond=0)
    [media] = await media_of(db, status.id)
    assert media.description == "a cat asleep on a keyboard"
    entity = (await client.get(f"/api/v1/statuses/{status.id}")).json()
    assert entity["media_attachments"][0]["url"] == "https://tiny.example/media/cat.png"


async def test_a_remote_video_or_audio_has_no_preview_but_a_picture_is_its_own(
        fed: FederationContext, db: Database, client: httpx.AsyncClient) -> None:
    note = corpus_note("minimal_create_note.json")
    note["attachment"] = [
        {"type": "Document", "mediaType": media_type, "url": f"https://tiny.example/media/{name}"}
        for media_type, name in (("video/mp4", "clip.mp4"), ("audio/mpeg", "song.mp3"),
                                 ("image/png", "cat.png"))]
    status = await store(fed, db, note)
    entity = (await client.get(f"/api/v1/statuses/{status.id}")).json()
    assert [(m["type"], m["url"].rsplit("/", 1)[1], m["preview_url"])
            for m in entity["media_attachments"]] == [
        ("video", "clip.mp4", None), ("audio", "song.mp3", None),
        ("image", "cat.png", "https://tiny.example/media/cat.png")]


@pytest.mark.parametrize("url", [
    "https://tiny.example/media/dog.png",
    {"type": "Link", "href": "https://tiny.example/media/dog.png", "mediaType": "image/png"},
    [{"type": "Link", "href": "https://tiny.example/page.html", "mediaType": "text/html"},
     {"type": "Link", "href": "https://tiny.example/media/dog.png", "mediaType": "image/png"}],
])
async def test_attachment_urls_as_a_string_a_link_or_a_list(
        fed: FederationContext, db: Database, url: Any) -> None:
    note = {"id": "https://tiny.example/notes/2", "type": "Note", "attributedTo": TINY,
            "to": "Public", "content": "a dog", "unknownField": {"x": 1},
            "attachment": {"type": "Document", "mediaType": "image/png", "url": url,
                           "name": "a dog"}}
    status = await store(fed, db, note)
    [media] = await media_of(db, status.id)
    assert media.remote_url == "https://tiny.example/media/dog.png"
    assert status.visibility == "public"


async def test_an_article_keeps_its_title_and_hostile_html_is_sanitised(
        fed: FederationContext, db: Database) -> None:
    note = {"id": "https://tiny.example/articles/1", "type": "Article", "attributedTo": TINY,
            "to": [PUBLIC], "name": "Ink & water", "published": "2024-06-01T00:00:00Z",
            "content": '<p onclick="x()">Body<script>alert(1)</script>'
                       '<a href="javascript:alert(1)">link</a></p>'}
    status = await store(fed, db, note)
    assert status.content.startswith("<p><strong>Ink &amp; water</strong></p>")
    assert "script" not in status.content and "javascript" not in status.content
    assert "onclick" not in status.content


async def test_an_articles_summary_is_an_excerpt_not_a_content_warning(
        fed: FederationContext, db: Database) -> None:
    # WordPress, Plume, Ghost, Friendica: ``summary`` is the excerpt (Mastodon: no warning).
    article = {"id": "https://tiny.example/2024/05/painting", "type": "Article",
               "attributedTo": TINY, "to": [PUBLIC], "name": "My new painting",
               "summary": "<p>A short excerpt</p>", "content": "<p>The whole post.</p>",
               "url": "https://tiny.example/2024/05/painting?lang=en&amp=1",
               "published": "2024-05-01T00:00:00Z",
               "attachment": [{"type": "Image", "mediaType": "image/jpeg",
                               "url": "https://tiny.example/p.jpg", "name": "a fox"}]}
    status = await store(fed, db, article)
    assert status.spoiler_text == "" and status.sensitive is False
    assert "excerpt" not in status.content and "The whole post." in status.content
    assert status.content.endswith(
        '<p><a href="https://tiny.example/2024/05/painting?lang=en&amp;amp=1" target="_blank" '
        'rel="nofollow noopener noreferrer">'
        "https://tiny.example/2024/05/painting?lang=en&amp;amp=1</a></p>")

    edited = {**article, "summary": "Another excerpt", "sensitive": True,
              "updated": "2024-05-02T00:00:00Z"}
    status = await store(fed, db, edited)
    assert status.spoiler_text == "" and status.sensitive is True  # said so: kept
    # Without content, the excerpt is the text; a Note's summary stays a warning.
    page = await store(fed, db, {"id": "https://tiny.example/pages/1", "type": "Page",
                                 "attributedTo": TINY, "to": [PUBLIC], "name": "Notes",
                                 "summary": "Only <b>an</b> excerpt"})
    assert page.spoiler_text == "" and not page.sensitive
    assert "<p>Only an excerpt</p>" in page.content
    note = await store(fed, db, {"id": "https://tiny.example/notes/cw", "type": "Note",
                                 "attributedTo": TINY, "to": [PUBLIC], "content": "boo",
                                 "summary": "spiders"})
    assert note.spoiler_text == "spiders" and note.sensitive


def lemmy_post(number: int, **changes: Any) -> dict[str, Any]:
    """A Lemmy post (its assets/lemmy/objects/page.json), written by TINY."""
    doc: dict[str, Any] = {
        "id": f"https://tiny.example/post/{number}", "type": "Page", "attributedTo": TINY,
        "to": ["https://tiny.example/c/art", PUBLIC], "name": "Sketch of the day",
        "content": "<p>pencil on paper</p>\n", "mediaType": "text/html",
        "attachment": [{"type": "Link", "href": "https://tiny.example/pictrs/image/e.png"}],
        "image": {"type": "Image", "url": "https://tiny.example/pictrs/image/e.png"},
        "sensitive": False, "published": "2024-05-01T12:35:34.292626Z"}
    doc.update(changes)
    return doc


async def test_a_lemmy_image_post_shows_its_image_and_links_to_the_post(
        fed: FederationContext, db: Database, alice_api: httpx.AsyncClient) -> None:
    status = await store(fed, db, lemmy_post(1))
    [media] = await media_of(db, status.id)
    assert (media.type, media.remote_url) == ("image", "https://tiny.example/pictrs/image/e.png")
    entity = (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()
    assert entity["media_attachments"][0]["remote_url"] == media.remote_url
    assert entity["content"].startswith("<p><strong>Sketch of the day</strong></p>"
                                        "<p>pencil on paper</p>")
    assert entity["content"].endswith('<a href="https://tiny.example/post/1" target="_blank" '
                                      'rel="nofollow noopener noreferrer">'
                                      "https://tiny.example/post/1</a></p>")

    # A domain whose media are rejected: the image is a link, no media row.
    async with db.session() as session:
        session.add(DomainBlock(domain="tiny.example", severity="noop", reject_media=True))
        await session.commit()
    blocked = await store(fed, db, lemmy_post(2))
    assert await media_of(db, blocked.id) == []
    assert 'href="https://tiny.example/pictrs/image/e.png"' in blocked.content


async def test_a_lemmy_link_post_and_a_video_link_to_what_they_are_about(
        fed: FederationContext, db: Database) -> None:
    link_post = await store(fed, db, lemmy_post(
        3, content=None, attachment=[{"type": "Link", "href": "https://news.example/story"}],
        image={"type": "Image", "url": "https://tiny.example/pictrs/image/thumb.jpg"}))
    assert await media_of(db, link_post.id) == []
    assert link_post.content.index('href="https://news.example/story"') \
        < link_post.content.index('href="https://tiny.example/post/3"')
    # A link the text already carries is not repeated.
    carried = await store(fed, db, lemmy_post(
        4, content='<p>read <a href="https://news.example/story">this</a></p>',
        attachment=[{"type": "Link", "href": "https://news.example/story"}]))
    assert carried.content.count("https://news.example/story") == 1

    video = await store(fed, db, {
        "id": "https://tiny.example/videos/watch/1", "type": "Video", "attributedTo": TINY,
        "to": [PUBLIC], "name": "Timelapse", "content": "<p>Twelve minutes of gouache.</p>",
        "url": [{"type": "Link", "mediaType": "text/html", "href": "https://tiny.example/w/1"},
                {"type": "Link", "mediaType": "video/mp4", "href": "https://tiny.example/1.mp4"}]})
    assert video.content.endswith('<p><a href="https://tiny.example/w/1" target="_blank" '
                                  'rel="nofollow noopener noreferrer">'
                                  "https://tiny.example/w/1</a></p>")
    assert video.content.count("https://tiny.example/w/1") == 2  # the href and the text


# ------------------------------------------------------------------ idempotency, edits

async def test_storing_the_same_note_twice_changes_nothing(
        fed: FederationContext, db: Database, alice: User) -> None:
    note = corpus_note("mastodon_create_note.json")
    first = await store(fed, db, note)
    second = await store(fed, db, copy.deepcopy(note))

    assert second.id == first.id and second.edited_at is None
    assert await count(db, Status, Status.uri == MASTODON_NOTE) == 1
    assert await count(db, MediaAttachment, MediaAttachment.status_id == first.id) == 2
    assert await count(db, Notification, Notification.status_id == first.id) == 1
    assert (await account(db, CAROL)).statuses_count == 1


async def test_an_edit_replaces_content_media_and_tags_and_sets_edited_at(
        fed: FederationContext, db: Database, alice: User, alice_api: httpx.AsyncClient) -> None:
    note = corpus_note("mastodon_create_note.json")
    status = await store(fed, db, note)
    edited = copy.deepcopy(note)
    edited["content"] = "<p>Second thoughts #heron</p>"
    del edited["contentMap"]
    edited["tag"] = [{"type": "Hashtag", "name": "#heron",
                      "href": "https://mastodon.example/tags/heron"}]
    edited["attachment"] = list(reversed(edited["attachment"]))
    edited["cc"] = [CAROL + "/followers"]
    edited["updated"] = "2024-05-01T11:00:00Z"
    await store(fed, db, edited)

    entity = (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()
    assert entity["content"] == "<p>Second thoughts #heron</p>"
    assert entity["edited_at"] == "2024-05-01T11:00:00.000Z"
    assert [m["url"].rsplit(".", 1)[1] for m in entity["media_attachments"]] == ["png", "jpg"]
    assert [t["name"] for t in entity["tags"]] == ["heron"]
    assert entity["mentions"] == []  # alice is no longer mentioned
    assert (await account(db, CAROL)).statuses_count == 1

    stale = copy.deepcopy(note)
    stale["content"] = "<p>an older version</p>"
    stale["updated"] = "2024-05-01T10:30:00Z"
    await store(fed, db, stale)
    entity = (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()
    assert entity["content"] == "<p>Second thoughts #heron</p>"


async def test_another_author_cannot_overwrite_a_note(
        fed: FederationContext, db: Database) -> None:
    note = corpus_note("mastodon_create_note.json")
    await store(fed, db, note)
    forged = copy.deepcopy(note)
    forged["attributedTo"] = DAVE
    forged["content"] = "<p>forged</p>"
    with pytest.raises(NoteRefused) as refused:
        await store(fed, db, forged)
    assert refused.value.reason == "not_owner"
    async with db.session() as session:
        stored = await find_status_by_uri(session, MASTODON_NOTE)
        assert stored is not None and "New sketches" in stored.content


# ------------------------------------------------------------------------- refusals

@pytest.mark.parametrize(("change", "reason"), [
    ({"attributedTo": DAVE}, "attribution"),
    ({"id": "https://elsewhere.example/notes/1"}, "origin_mismatch"),
    ({"type": "Collection"}, "invalid"),
    ({"id": "javascript:alert(1)"}, "invalid"),
])
async def test_notes_that_break_the_rules_are_refused_and_nothing_is_stored(
        fed: FederationContext, db: Database, change: dict[str, Any], reason: str) -> None:
    note = corpus_note("mastodon_create_note.json") | change
    carol = await fed.fetcher.fetch_actor(CAROL)
    async with db.session() as session:
        with pytest.raises(NoteRefused) as refused:
            await store_note(fed, session, note, author=carol)
    assert refused.value.reason == reason
    assert await count(db, Status) == 0
    assert await count(db, MediaAttachment) == 0


async def test_a_tombstoned_uri_is_never_recreated(fed: FederationContext, db: Database) -> None:
    async with db.session() as session:
        session.add(Tombstone(uri=MASTODON_NOTE))
        await session.commit()
    with pytest.raises(NoteRefused) as refused:
        await store(fed, db, corpus_note("mastodon_create_note.json"))
    assert refused.value.reason == "deleted"
    assert await count(db, Status) == 0


async def test_a_suspended_domain_is_refused_and_reject_media_keeps_links_only(
        fed: FederationContext, db: Database) -> None:
    erin = await fed.fetcher.fetch_actor(ERIN)  # known before gts.example was suspended
    async with db.session() as session:
        session.add(DomainBlock(domain="pixelfed.example", severity="noop", reject_media=True))
        session.add(DomainBlock(domain="gts.example", severity="suspend"))
        await session.commit()
    status = await store(fed, db, corpus_note("pixelfed_create_note.json"))
    assert await media_of(db, status.id) == []
    assert 'href="https://pixelfed.example/storage/m/_v2/7012/abc/def/harbour1.jpg"' in status.content
    assert "Boats moored in a calm harbour at sunrise</a>" in status.content

    async with db.session() as session:
        with pytest.raises(NoteRefused) as refused:
            await store_note(fed, session, corpus_note("gotosocial_create_note.json"), author=erin)
    assert refused.value.reason == "suspended"


# -------------------------------------------------------------------------- replies

async def test_a_reply_to_a_local_status_links_up_and_counts_once(
        fed: FederationContext, db: Database, settings: Settings, alice: User) -> None:
    async with db.session() as session:
        author = await session.get(Account, alice.account_id)
        assert author is not None
        parent = await create_status(session, settings, author, None, text="my heron")
    reply = {"id": "https://mastodon.example/users/carol/statuses/2", "type": "Note",
             "attributedTo": CAROL, "inReplyTo": parent.uri, "to": [PUBLIC],
             "cc": [alice_uri(settings)], "content": "<p>lovely</p>",
             "tag": [{"type": "Mention", "href": alice_uri(settings)}]}
    status = await store(fed, db, reply)
    await store(fed, db, reply)

    assert status.in_reply_to_id == parent.id
    assert status.in_reply_to_account_id == alice.account_id
    async with db.session() as session:
        refreshed = await session.get(Status, parent.id)
        assert refreshed is not None and refreshed.replies_count == 1


def alice_uri(settings: Settings) -> str:
    return f"{settings.base_url}/users/alice"


async def test_an_unknown_parent_is_fetched_from_its_origin(
        fed: FederationContext, db: Database, fediverse: Fediverse) -> None:
    parent_uri = "https://gts.example/users/erin/statuses/PARENT"
    fediverse.serve(parent_uri, {"id": parent_uri, "type": "Note", "attributedTo": ERIN,
                                 "to": [PUBLIC], "content": "<p>the question</p>"})
    reply = {"id": "https://mastodon.example/users/carol/statuses/3", "type": "Note",
             "attributedTo": CAROL, "inReplyTo": parent_uri, "to": [PUBLIC],
             "content": "<p>the answer</p>"}
    status = await store(fed, db, reply)

    async with db.session() as session:
        parent = await find_status_by_uri(session, parent_uri)
        assert parent is not None and parent.content == "<p>the question</p>"
        assert parent.replies_count == 1
    assert status.in_reply_to_id == parent.id
    assert fediverse.requests[-1].headers.get("signature")  # signed by the instance actor


async def test_an_unreachable_parent_is_kept_as_a_uri_and_the_chain_is_bounded(
        fed: FederationContext, db: Database, fediverse: Fediverse) -> None:
    gone = "https://gts.example/users/erin/statuses/GONE"
    fediverse.status(gone, 503)
    reply = {"id": "https://mastodon.example/users/carol/statuses/4", "type": "Note",
             "attributedTo": CAROL, "inReplyTo": gone, "to": [PUBLIC], "content": "hi"}
    status = await store(fed, db, reply)
    assert status.in_reply_to_id is None and status.in_reply_to_uri == gone

    # A chain of ten unknown ancestors: only MAX_REPLY_DEPTH of them are fetched.
    chain = [f"https://gts.example/users/erin/statuses/chain{i}" for i in range(10)]
    for i, uri in enumerate(chain[:-1]):
        fediverse.serve(uri, {"id": uri, "type": "Note", "attributedTo": ERIN, "to": [PUBLIC],
                              "content": f"level {i}", "inReplyTo": chain[i + 1]})
    leaf = {"id": "https://mastodon.example/users/carol/statuses/5", "type": "Note",
            "attributedTo": CAROL, "inReplyTo": chain[0], "to": [PUBLIC], "content": "leaf"}
    await store(fed, db, leaf)
    assert sum(fediverse.fetched(uri) for uri in chain) == MAX_REPLY_DEPTH
    assert await count(db, Status, Status.uri.in_(chain)) == MAX_REPLY_DEPTH


async def test_a_reply_to_an_unreachable_parent_stays_out_of_the_public_timelines(
        fed: FederationContext, db: Database, fediverse: Fediverse,
        client: httpx.AsyncClient) -> None:
    gone = "https://gts.example/users/erin/statuses/GONE"
    fediverse.status(gone, 404)
    top = await store(fed, db, {"id": "https://mastodon.example/users/carol/statuses/6",
                                "type": "Note", "attributedTo": CAROL, "to": [PUBLIC],
                                "content": "a post"})
    reply = await store(fed, db, {"id": "https://mastodon.example/users/carol/statuses/7",
                                  "type": "Note", "attributedTo": CAROL, "to": [PUBLIC],
                                  "inReplyTo": gone, "content": "a reply"})
    assert reply.in_reply_to_id is None and reply.in_reply_to_account_id is None
    for path in ("/api/v1/timelines/public", "/api/v1/timelines/public?remote=true"):
        shown = [entity["id"] for entity in (await client.get(path)).json()]
        assert shown == [str(top.id)]
    entity = (await client.get(f"/api/v1/statuses/{reply.id}")).json()
    assert entity["content"] == "a reply"  # still there, as a reply to nothing known
    own = f"/api/v1/accounts/{top.account_id}/statuses"
    assert [e["id"] for e in (await client.get(own, params={"exclude_replies": "true"})).json()] \
        == [str(top.id)]
    assert len((await client.get(own)).json()) == 2


async def test_replies_stored_before_their_parent_are_linked_when_it_arrives(
        fed: FederationContext, db: Database, fediverse: Fediverse,
        client: httpx.AsyncClient) -> None:
    late = "https://gts.example/users/erin/statuses/LATE"
    fediverse.status(late, 503)
    first = await store(fed, db, {"id": "https://mastodon.example/users/carol/statuses/9",
                                  "type": "Note", "attributedTo": CAROL, "to": [PUBLIC],
                                  "inReplyTo": late, "content": "first answer"})
    second = await store(fed, db, {"id": "https://mastodon.example/users/carol/statuses/10",
                                   "type": "Note", "attributedTo": CAROL, "to": [PUBLIC],
                                   "inReplyTo": late, "content": "second answer"})
    assert first.in_reply_to_id is None and second.in_reply_to_id is None

    parent = await store(fed, db, {"id": late, "type": "Note", "attributedTo": ERIN,
                                   "to": [PUBLIC], "content": "the late question"})
    async with db.session() as session:
        linked = list(await session.scalars(
            select(Status).where(Status.id.in_([first.id, second.id]))))
        stored_parent = await session.get(Status, parent.id)
    assert {s.in_reply_to_id for s in linked} == {parent.id}
    assert {s.in_reply_to_account_id for s in linked} == {parent.account_id}
    assert stored_parent is not None and stored_parent.replies_count == 2
    context = (await client.get(f"/api/v1/statuses/{parent.id}/context")).json()
    assert [e["id"] for e in context["descendants"]] == [str(first.id), str(second.id)]

    # Redelivered, the parent changes nothing (no second count).
    await store(fed, db, {"id": late, "type": "Note", "attributedTo": ERIN,
                          "to": [PUBLIC], "content": "the late question"})
    async with db.session() as session:
        again = await session.get(Status, parent.id)
    assert again is not None and again.replies_count == 2


async def test_a_parent_replying_to_its_own_waiting_reply_makes_no_cycle(
        fed: FederationContext, db: Database, fediverse: Fediverse) -> None:
    a_uri = "https://mastodon.example/users/carol/statuses/11"
    b_uri = "https://gts.example/users/erin/statuses/B"
    fediverse.status(b_uri, 503)
    a = await store(fed, db, {"id": a_uri, "type": "Note", "attributedTo": CAROL,
                              "to": [PUBLIC], "inReplyTo": b_uri, "content": "a"})
    b = await store(fed, db, {"id": b_uri, "type": "Note", "attributedTo": ERIN,
                              "to": [PUBLIC], "inReplyTo": a_uri, "content": "b"})
    assert b.in_reply_to_id == a.id
    async with db.session() as session:
        still = await session.get(Status, a.id)
    assert still is not None and still.in_reply_to_id is None


@pytest.mark.parametrize(("published", "expected"), [
    ("1900-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),   # before the epoch
    ("0001-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
    ("2001-02-03T04:05:06Z", datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)),
])
async def test_published_before_1970_is_clamped_so_the_id_stays_positive(
        fed: FederationContext, db: Database, published: str, expected: datetime) -> None:
    status = await store(fed, db, {"id": "https://mastodon.example/users/carol/statuses/8",
                                   "type": "Note", "attributedTo": CAROL, "to": [PUBLIC],
                                   "content": "old", "published": published})
    created = status.created_at.replace(tzinfo=UTC) if status.created_at.tzinfo is None \
        else status.created_at
    assert created == expected
    assert 0 < status.id < 2**63
    assert status.id >> 16 == int(expected.timestamp() * 1000)


@pytest.mark.parametrize("published", [
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z"])
async def test_published_out_of_range_or_in_the_future_means_now(
        fed: FederationContext, db: Database, published: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    status = await store(fed, db, {"id": "https://mastodon.example/users/carol/statuses/9",
                                   "type": "Note", "attributedTo": CAROL, "to": [PUBLIC],
                                   "content": "when?", "published": published,
                                   "updated": published})
    created = status.created_at.replace(tzinfo=UTC) if status.created_at.tzinfo is None \
        else status.created_at
    assert before <= created <= datetime.now(UTC)


# ------------------------------------------------------------------------ resolving

async def test_resolve_status_fetches_a_web_url_under_the_origin_rule(
        fed: FederationContext, db: Database, fediverse: Fediverse) -> None:
    note = corpus_note("mastodon_create_note.json")
    web_url = "https://mastodon.example/@carol/112233445566778899"
    fediverse.serve(web_url, note)   # Mastodon answers its web URL with the Note …
    fediverse.serve(MASTODON_NOTE, note)  # … whose id is then fetched once
    async with db.session() as session:
        status = await resolve_status(fed, session, web_url)
        await session.commit()
    assert status.uri == MASTODON_NOTE
    assert fediverse.fetched(web_url) == 1 and fediverse.fetched(MASTODON_NOTE) == 1
    async with db.session() as session:  # known now: by uri and by web url, no fetch
        assert (await resolve_status(fed, session, web_url)).id == status.id
    assert fediverse.fetched(web_url) == 1


async def test_resolve_status_refuses_what_the_origin_rule_forbids(
        fed: FederationContext, db: Database, fediverse: Fediverse) -> None:
    elsewhere = "https://evil.example/notes/1"
    fediverse.serve(elsewhere, corpus_note("mastodon_create_note.json"))  # claims another host
    fediverse.status("https://mastodon.example/users/carol/statuses/410", 410)
    fediverse.status("https://mastodon.example/users/carol/statuses/500", 500)
    async with db.session() as session:
        with pytest.raises(NoteRefused) as refused:
            await resolve_status(fed, session, elsewhere)
        assert refused.value.reason == "origin_mismatch"
        with pytest.raises(NoteRefused):
            await resolve_status(fed, session, "https://mastodon.example/users/carol/statuses/410")
        with pytest.raises(NoteUnavailable):
            await resolve_status(fed, session, "https://mastodon.example/users/carol/statuses/500")
        with pytest.raises(NoteRefused):
            await resolve_status(fed, session, "https://easel.test/users/nobody/statuses/1")
    assert fediverse.fetched(MASTODON_NOTE) == 0
    assert await count(db, Status) == 0


# ------------------------------------------------------------------------- deleting

async def test_deleting_by_the_author_removes_boosts_notifications_and_leaves_a_tombstone(
        fed: FederationContext, db: Database, settings: Settings, alice: User, bob: User) -> None:
    status = await store(fed, db, corpus_note("mastodon_create_note.json"))
    async with db.session() as session:
        bob_account = await session.get(Account, bob.account_id)
        assert bob_account is not None
        await reblog(session, settings, bob_account, status.id)
    assert await count(db, Notification, Notification.status_id == status.id) == 1

    dave = await fed.fetcher.fetch_actor(DAVE)
    carol = await fed.fetcher.fetch_actor(CAROL)
    async with db.session() as session:
        assert not await delete_remote_status(fed, session, MASTODON_NOTE, actor=dave)
        await session.commit()
    assert await count(db, Status, Status.uri == MASTODON_NOTE) == 1
    assert await count(db, Tombstone) == 0

    async with db.session() as session:
        assert await delete_remote_status(fed, session, MASTODON_NOTE, actor=carol)
        await session.commit()
    assert await count(db, Status) == 0
    assert await count(db, Notification) == 0
    assert await count(db, MediaAttachment) == 0
    assert await count(db, Mention) == 0
    assert await count(db, Tombstone, Tombstone.uri == MASTODON_NOTE) == 1
    assert (await account(db, CAROL)).statuses_count == 0
    async with db.session() as session:
        booster = await session.get(Account, bob.account_id)
        assert booster is not None and booster.statuses_count == 0
        # bob's followers elsewhere are told his boost is gone, as when he unboosts.
        undos = list(await session.scalars(select(Activity).where(Activity.type == "Undo")))
    assert [(a.account_id, a.object_uri, a.payload["object_type"]) for a in undos] == [
        (bob.account_id, MASTODON_NOTE, "Announce")]

    async with db.session() as session:  # a second Delete: nothing left to do
        assert not await delete_remote_status(fed, session, MASTODON_NOTE, actor=carol)
    with pytest.raises(NoteRefused):
        await store(fed, db, corpus_note("mastodon_create_note.json"))


async def test_a_delete_before_the_create_leaves_a_tombstone_on_the_actors_origin_only(
        fed: FederationContext, db: Database) -> None:
    carol = await fed.fetcher.fetch_actor(CAROL)
    async with db.session() as session:
        assert not await delete_remote_status(
            fed, session, "https://mastodon.example/users/carol/statuses/early", actor=carol)
        assert not await delete_remote_status(
            fed, session, "https://gts.example/users/erin/statuses/x", actor=carol)
        await session.commit()
    assert await count(db, Tombstone) == 1


async def test_mentions_of_known_remote_accounts_link_but_unknown_ones_are_not_fetched(
        fed: FederationContext, db: Database, fediverse: Fediverse) -> None:
    await fed.fetcher.fetch_actor(FRANK)
    note = {"id": "https://misskey.example/notes/m1", "type": "Note", "attributedTo": KUMO,
            "to": [PUBLIC], "content": "hi @frank and @nobody",
            "tag": [{"type": "Mention", "href": FRANK},
                    {"type": "Mention", "href": "https://nowhere.example/users/nobody"}]}
    before = len(fediverse.requests)
    status = await store(fed, db, note)
    assert not any("nowhere.example" in str(r.url) for r in fediverse.requests[before:])
    async with db.session() as session:
        mentioned = list(await session.scalars(select(Account.uri).join(
            Mention, Mention.account_id == Account.id).where(Mention.status_id == status.id)))
    assert mentioned == [FRANK]
