"""When a status's card is queued (server.services.link_cards): at publishing — for a
status with images, only once they are ready, under its published id — and again after an
edit only when the first link changed."""

from __future__ import annotations

from sqlalchemy import select, update

from server.db import Database
from server.models import Account, Job, MediaAttachment, MediaState, PreviewCard, StatusPreviewCard, User
from server.services.link_cards import FETCH_LINK_CARD_JOB, first_link, link_changed
from server.services.statuses import create_status, current_id, publish_if_ready
from server.settings import Settings


async def card_jobs(db: Database) -> list[str]:
    async with db.session() as session:
        return list(await session.scalars(
            select(Job.ref).where(Job.kind == FETCH_LINK_CARD_JOB).order_by(Job.id)))


async def test_a_status_with_images_is_queued_when_it_is_published(
        db: Database, settings: Settings, alice: User) -> None:
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        media = MediaAttachment(account_id=account.id, state=MediaState.PROCESSING.value)
        session.add(media)
        await session.commit()
        status = await create_status(session, settings, account, None,
                                     text="New work, notes at https://blog.example/heron",
                                     media_ids=[media.id])
        assert not status.published
    assert await card_jobs(db) == []  # nobody sees it yet: nothing fetched

    async with db.session() as session:
        await session.execute(update(MediaAttachment).values(state=MediaState.READY.value))
        assert await publish_if_ready(session, status.id)
        await session.commit()
        published = await current_id(session, status.id)
    assert published != status.id
    assert await card_jobs(db) == [str(published)]


async def test_a_status_without_a_link_queues_nothing(
        db: Database, settings: Settings, alice: User) -> None:
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        await create_status(session, settings, account, None, text="Just words #ink")
    assert await card_jobs(db) == []


async def test_an_edit_drops_the_card_only_when_the_first_link_changes(
        db: Database, settings: Settings, alice: User) -> None:
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        status = await create_status(session, settings, account, None,
                                     text="See https://a.example/one")
        card = PreviewCard(url="https://a.example/one", title="One")
        session.add(card)
        await session.flush()
        session.add(StatusPreviewCard(status_id=status.id, preview_card_id=card.id,
                                      url=card.url))
        await session.commit()

        before = status.content
        status.content = before.replace("</p>", " and more</p>")
        await link_changed(session, status, before)
        await session.commit()
        assert await session.scalar(select(StatusPreviewCard.status_id)) == status.id

        status.content = '<p><a href="https://b.example/two">two</a></p>'
        await link_changed(session, status, before)
        await session.commit()
        assert await session.scalar(select(StatusPreviewCard.status_id)) is None
    # A job of its own for the edit (the status's first job may be running, and a
    # running job is not queued again).
    first, edit = await card_jobs(db)
    assert first == str(status.id) and edit.startswith(f"{status.id}@")


def test_the_first_link_skips_mentions_hashtags_and_this_server() -> None:
    content = ('<p><a href="https://easel.test:443/@a">me</a> '
               '<a href="https://x.example/@b" class="u-url">b</a> '
               '<a href="https://x.example/t" rel="nofollow tag">#t</a> '
               '<a href="ftp://x.example/f">f</a> <a href="https://user@x.example/">u</a> '
               '<a href="https://x.example/mentioned">m</a> '
               '<a href="https://News.Example/A?q=1#top">n</a></p>')
    assert first_link(content, local_domain="easel.test",
                      skip_hrefs={"https://x.example/mentioned"}) == "https://news.example/A?q=1"
    assert first_link("<p>no links</p>") is None
    assert first_link('<a href="https://x.example/' + "a" * 3000 + '">long</a>') is None
