"""A domain block's ``reject_media`` on what is stored already, and on remote avatars.

Given a remote artist whose avatar, header and attachment are cached here, when an admin
blocks the artist's domain with ``reject_media`` (or a suspension, or changes a block so
that it rejects media), I expect the ``clear_domain_media`` job — never the admin's
request — to delete the cached files, show the default avatar and header, turn the
attachments into Mastodon's type ``unknown`` (a link to ``remote_url``, no preview, a link
on the work's page) and the works into plain posts; a block covering a subdomain to do
the same there (a more specific block that does not reject media exempts its domain);
local accounts and other domains to stay untouched; a redone job to change nothing more;
and a block without ``reject_media`` to queue nothing. An actor stored or refreshed under
such a block keeps no avatar or header; once the block is lifted, the actor's next refresh
brings them back, and the note stored again gets its attachment back (not as an edit).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update
from starlette.applications import Starlette

from federation.context import federation_context
from federation.media_cache import CACHE_PREFIX, clear_domain_media
from server.cli import main
from server.db import Database
from server.models import Account, DomainBlock, Job, JobState, MediaAttachment, Status, User, Work
from server.services import domain_blocks
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import make_token
from tests.federation.inbox import conftest as inbox_fixtures
from tests.federation.inbox.conftest import FakeActor, deliver, http, process
from tests.federation.test_media_cache import MediaFediverse, cached_files, note_with, receive_note
from tests.protect import images

inbox_app = inbox_fixtures.inbox_app
app_db = inbox_fixtures.app_db
remote_carol = inbox_fixtures.remote_carol
remote_dave = inbox_fixtures.remote_dave

ADMIN_SCOPES = "read write admin:read admin:write"
CLEAR_JOB = domain_blocks.CLEAR_DOMAIN_MEDIA_JOB


@pytest.fixture
def fediverse() -> MediaFediverse:
    return MediaFediverse()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_changes(remote_media_cache_mb=4)


@pytest.fixture(autouse=True)
def _alice(alice: User) -> User:
    """alice, whom every note here mentions (a note nobody here has a reason to see is not
    stored)."""
    return alice


@pytest.fixture
async def remote_erin(fediverse: MediaFediverse) -> FakeActor:
    """An artist on a subdomain of remote.example."""
    return fediverse.actor("https://social.remote.example/users/erin", "erin")


def serve_artist(fediverse: MediaFediverse, actor: FakeActor) -> tuple[str, str, str]:
    """Serve ``actor``'s avatar, header and one picture; their URLs."""
    base = f"https://{actor.host}/files/{actor.username}"
    avatar, header, picture = f"{base}/avatar.png", f"{base}/header.png", f"{base}/work.png"
    fediverse.profile_images[actor.uri] = (avatar, header)
    fediverse.serve_file(avatar, images.png((96, 96)), "image/png")
    fediverse.serve_file(header, images.png((300, 100)), "image/png")
    fediverse.serve_file(picture, images.png((320, 200)), "image/png")
    return avatar, header, picture


async def post_work(app: Starlette, fediverse: MediaFediverse, actor: FakeActor) -> int:
    """``actor`` (its images served) sends a note with one picture; the status id, once the
    queue has run (the avatar, header and picture cached)."""
    _, _, picture = serve_artist(fediverse, actor)
    await receive_note(app, actor, note_with(actor, picture))
    return await status_of(app, actor)


async def status_of(app: Starlette, actor: FakeActor) -> int:
    async with app.state.easel.db.session() as session:
        status_id = await session.scalar(select(Status.id).join(
            Account, Account.id == Status.account_id).where(Account.uri == actor.uri))
    assert status_id is not None
    return int(status_id)


async def account_of(app: Starlette, actor: FakeActor) -> Account:
    async with app.state.easel.db.session() as session:
        account = await session.scalar(select(Account).where(Account.uri == actor.uri))
    assert account is not None
    return account


async def rows_of(app: Starlette, actor: FakeActor) -> list[MediaAttachment]:
    async with app.state.easel.db.session() as session:
        return list(await session.scalars(select(MediaAttachment).join(
            Account, Account.id == MediaAttachment.account_id)
            .where(Account.uri == actor.uri).order_by(MediaAttachment.id)))


async def works_of(app: Starlette, actor: FakeActor) -> int:
    account = await account_of(app, actor)
    async with app.state.easel.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Work).where(
            Work.account_id == account.id)) or 0)


async def clear_jobs(app: Starlette) -> list[Job]:
    async with app.state.easel.db.session() as session:
        return list(await session.scalars(select(Job).where(Job.kind == CLEAR_JOB)))


async def block(app: Starlette, domain: str, severity: str = "noop", *,
                reject_media: bool = True) -> domain_blocks.BlockResult:
    state = app.state.easel
    async with state.db.session() as session:
        return await domain_blocks.block_domain(session, domain, own_domain=state.settings.domain,
                                                severity=severity, reject_media=reject_media)


async def api_get(app: Starlette, user: User, path: str) -> Any:
    async with http(app, token=await make_token(app.state.easel.db, user)) as api:
        response = await api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def assert_untouched(rows: list[MediaAttachment], account: Account) -> None:
    """An artist's cache as the queue left it: avatar, header and picture cached, shown."""
    by_purpose = {row.purpose: row for row in rows}
    assert set(by_purpose) == {"avatar", "header", "attachment"}
    assert all(row.cache_key for row in rows)
    assert by_purpose["attachment"].type == "image"
    assert account.avatar_key == by_purpose["avatar"].cache_key
    assert account.header_key == by_purpose["header"].cache_key
    assert account.avatar_remote_url and account.header_remote_url


def assert_cleared(rows: list[MediaAttachment], account: Account) -> None:
    """An artist's media after the clearing: no copies, no avatar or header, ``unknown``."""
    assert [(row.purpose, row.type, row.blurhash, row.cache_key, row.cache_preview_key,
             row.cache_size, row.cached_at) for row in rows] == [
        ("attachment", "unknown", None, None, None, 0, None)]
    assert (account.avatar_key, account.header_key) == (None, None)
    assert (account.avatar_remote_url, account.header_remote_url) == (None, None)


# -------------------------------------------------------------------- the clearing

async def test_an_admin_block_with_reject_media_clears_what_is_stored_in_a_job(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor, remote_dave: FakeActor, alice: User) -> None:
    carol_status = await post_work(inbox_app, fediverse, remote_carol)
    await post_work(inbox_app, fediverse, remote_dave)
    _, _, picture = serve_artist(fediverse, remote_carol)
    files = await cached_files(inbox_app)
    assert len(files) == 2 * 4  # each: avatar, header, picture and its preview
    assert await works_of(inbox_app, remote_carol) == 1
    # A local artist's own avatar and media, which nothing here may touch.
    async with app_db.session() as session:
        local = await session.get(Account, alice.account_id)
        assert local is not None
        local.avatar_key, local.header_key = "avatars/alice.png", "headers/alice.png"
        session.add(MediaAttachment(account_id=local.id, type="image", state="ready",
                                    file_key="media/alice.webp", small_key="media/alice-s.webp"))
        await session.commit()

    async with app_db.session() as session:
        admin = await create_user(session, inbox_app.state.easel.settings, username="moira",
                                  email="moira@example.com", password="a long enough password",
                                  admin=True)
    async with http(inbox_app, token=await make_token(app_db, admin, ADMIN_SCOPES)) as api:
        created = await api.post("/api/v1/admin/domain_blocks",
                                 data={"domain": "remote.example", "severity": "silence",
                                       "reject_media": "true"})
    assert created.status_code == 200, created.text
    # The request changed nothing stored: the job does.
    assert len(await cached_files(inbox_app)) == 8
    [job] = await clear_jobs(inbox_app)
    assert job.ref == "remote.example" and job.state == JobState.QUEUED

    await process(inbox_app)
    assert [j.state for j in await clear_jobs(inbox_app)] == [JobState.DONE]
    assert_cleared(await rows_of(inbox_app, remote_carol), await account_of(inbox_app, remote_carol))
    assert await works_of(inbox_app, remote_carol) == 0
    dave_files = [f for f in files if f in await cached_files(inbox_app)]
    assert await cached_files(inbox_app) == dave_files and len(dave_files) == 4
    assert_untouched(await rows_of(inbox_app, remote_dave), await account_of(inbox_app, remote_dave))
    assert await works_of(inbox_app, remote_dave) == 1
    async with app_db.session() as session:
        local = await session.get(Account, alice.account_id)
        assert local is not None
        assert (local.avatar_key, local.header_key) == ("avatars/alice.png", "headers/alice.png")
        [own] = await session.scalars(select(MediaAttachment).where(
            MediaAttachment.account_id == local.id))
        assert own.type == "image" and own.file_key == "media/alice.webp"

    # What clients see: the default avatar and header, the attachment as a link.
    urls = inbox_app.state.easel.urls
    status = await api_get(inbox_app, alice, f"/api/v1/statuses/{carol_status}")
    account = status["account"]
    assert account["avatar"] == account["avatar_static"] == urls.default_avatar
    assert account["header"] == account["header_static"] == urls.default_header
    [media] = status["media_attachments"]
    assert media["type"] == "unknown" and media["remote_url"] == picture
    assert media["url"] == picture and media["preview_url"] is None
    assert "easel" not in status  # no longer a work
    # The pages: no image from the origin, the default avatar, a link to the attachment.
    async with http(inbox_app) as anonymous:
        page = await anonymous.get(f"/@carol@remote.example/{carol_status}")
        profile = await anonymous.get("/@carol@remote.example")
    assert page.status_code == 200 and profile.status_code == 200
    assert f'<img src="{picture}"' not in page.text and f'srcset="{picture}' not in page.text
    assert f'<a href="{picture}" rel="nofollow noopener noreferrer">picture 0</a>' in page.text
    assert urls.default_avatar in page.text and "remote.example/files" not in profile.text

    # Redone (a crashed job, or the block made again): nothing more to change.
    async with app_db.session() as session:
        again = await clear_domain_media(session, inbox_app.state.easel.storage, "remote.example")
    assert (again.accounts, again.attachments, again.files) == (0, 0, 0)
    assert_cleared(await rows_of(inbox_app, remote_carol), await account_of(inbox_app, remote_carol))


@pytest.mark.parametrize(("severity", "reject_media"), [("noop", True), ("silence", True),
                                                        ("suspend", False)])
async def test_every_block_that_rejects_media_clears_it(
        inbox_app: Starlette, fediverse: MediaFediverse, remote_carol: FakeActor,
        severity: str, reject_media: bool) -> None:
    await post_work(inbox_app, fediverse, remote_carol)
    result = await block(inbox_app, "remote.example", severity, reject_media=reject_media)
    assert result.clearing_media and len(await clear_jobs(inbox_app)) == 1
    await process(inbox_app)
    assert_cleared(await rows_of(inbox_app, remote_carol), await account_of(inbox_app, remote_carol))
    assert await cached_files(inbox_app) == []


@pytest.mark.parametrize("severity", ["noop", "silence"])
async def test_a_block_without_reject_media_touches_nothing(
        inbox_app: Starlette, fediverse: MediaFediverse, remote_carol: FakeActor,
        severity: str) -> None:
    await post_work(inbox_app, fediverse, remote_carol)
    files = await cached_files(inbox_app)
    result = await block(inbox_app, "remote.example", severity, reject_media=False)
    assert not result.clearing_media and await clear_jobs(inbox_app) == []
    await process(inbox_app)
    assert_untouched(await rows_of(inbox_app, remote_carol), await account_of(inbox_app, remote_carol))
    assert await cached_files(inbox_app) == files


async def test_a_block_changed_to_reject_media_clears_it_once(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor) -> None:
    await post_work(inbox_app, fediverse, remote_carol)
    first = await block(inbox_app, "remote.example", "silence", reject_media=False)
    assert not first.clearing_media
    settings = inbox_app.state.easel.settings
    async with app_db.session() as session:
        changed = await domain_blocks.update_domain_block(
            session, first.block.id, own_domain=settings.domain, reject_media=True)
    assert changed.clearing_media
    await process(inbox_app)
    assert_cleared(await rows_of(inbox_app, remote_carol), await account_of(inbox_app, remote_carol))
    # Changing what else the block says (it rejects media already) queues nothing new.
    async with app_db.session() as session:
        again = await domain_blocks.update_domain_block(
            session, first.block.id, own_domain=settings.domain, severity="suspend",
            public_comment="spam")
    assert not again.clearing_media
    assert [j.state for j in await clear_jobs(inbox_app)] == [JobState.DONE]


async def test_an_imported_block_rejecting_media_queues_the_clearing(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor) -> None:
    await post_work(inbox_app, fediverse, remote_carol)
    parsed = domain_blocks.parse_csv(
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
        "remote.example,noop,true,false,,false\nquiet.example,silence,false,false,,false\n")
    async with app_db.session() as session:
        await domain_blocks.import_blocks(session, parsed,
                                          own_domain=inbox_app.state.easel.settings.domain)
    assert [j.ref for j in await clear_jobs(inbox_app)] == ["remote.example"]
    await process(inbox_app)
    assert_cleared(await rows_of(inbox_app, remote_carol), await account_of(inbox_app, remote_carol))


async def test_a_block_covers_subdomains_unless_a_more_specific_block_exempts_them(
        inbox_app: Starlette, fediverse: MediaFediverse, remote_carol: FakeActor,
        remote_erin: FakeActor) -> None:
    gus = fediverse.actor("https://good.remote.example/users/gus", "gus")
    for actor in (remote_carol, remote_erin, gus):
        await post_work(inbox_app, fediverse, actor)
    await block(inbox_app, "good.remote.example", "noop", reject_media=False)
    await block(inbox_app, "remote.example", "silence")
    await process(inbox_app)
    for actor in (remote_carol, remote_erin):
        assert_cleared(await rows_of(inbox_app, actor), await account_of(inbox_app, actor))
    assert_untouched(await rows_of(inbox_app, gus), await account_of(inbox_app, gus))
    assert len(await cached_files(inbox_app)) == 4


async def test_a_block_on_a_subdomain_leaves_its_parent_alone(
        inbox_app: Starlette, fediverse: MediaFediverse, remote_carol: FakeActor,
        remote_erin: FakeActor) -> None:
    for actor in (remote_carol, remote_erin):
        await post_work(inbox_app, fediverse, actor)
    await block(inbox_app, "social.remote.example")
    await process(inbox_app)
    assert_cleared(await rows_of(inbox_app, remote_erin), await account_of(inbox_app, remote_erin))
    assert_untouched(await rows_of(inbox_app, remote_carol),
                     await account_of(inbox_app, remote_carol))


async def test_a_job_for_a_block_lifted_meanwhile_clears_nothing(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor) -> None:
    await post_work(inbox_app, fediverse, remote_carol)
    await block(inbox_app, "remote.example")
    async with app_db.session() as session:
        await domain_blocks.unblock_domain(session, "remote.example")
    await process(inbox_app)
    assert [j.state for j in await clear_jobs(inbox_app)] == [JobState.DONE]
    assert_untouched(await rows_of(inbox_app, remote_carol),
                     await account_of(inbox_app, remote_carol))


def test_the_command_line_says_when_the_media_are_being_cleared(
        easel_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin", "domain-block", "add", "spam.example", "--severity", "noop",
                 "--reject-media"]) == 0
    assert "media stored from spam.example" in capsys.readouterr().out
    assert main(["admin", "domain-block", "add", "spam.example", "--severity", "silence",
                 "--reject-media"]) == 0
    assert "media stored" not in capsys.readouterr().out  # it rejected media already


# ----------------------------------------------------------- actors under the block

async def test_an_actor_stored_or_refreshed_under_the_block_has_no_avatar_until_it_is_lifted(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor, remote_erin: FakeActor, alice: User) -> None:
    avatar, header, _ = serve_artist(fediverse, remote_carol)
    serve_artist(fediverse, remote_erin)
    await block(inbox_app, "remote.example", "silence")
    await process(inbox_app)  # nothing stored yet: nothing to clear
    fetcher = federation_context(inbox_app.state.easel.settings, app_db).fetcher

    stored = await fetcher.fetch_actor(remote_erin.uri)  # new under the block
    refreshed = await fetcher.fetch_actor(remote_carol.uri, refresh=True)
    await process(inbox_app)
    for account in (stored, refreshed):
        assert (account.avatar_remote_url, account.header_remote_url) == (None, None)
    assert fediverse.fetched(avatar) == fediverse.fetched(header) == 0
    assert await cached_files(inbox_app) == []
    entity = await api_get(inbox_app, alice, f"/api/v1/accounts/{refreshed.id}")
    assert entity["avatar"] == inbox_app.state.easel.urls.default_avatar
    assert entity["header"] == inbox_app.state.easel.urls.default_header

    async with app_db.session() as session:
        await domain_blocks.unblock_domain(session, "remote.example")
    lifted = await fetcher.fetch_actor(remote_carol.uri, refresh=True)
    assert (lifted.avatar_remote_url, lifted.header_remote_url) == (avatar, header)
    await process(inbox_app)
    assert fediverse.fetched(avatar) == fediverse.fetched(header) == 1
    entity = await api_get(inbox_app, alice, f"/api/v1/accounts/{lifted.id}")
    assert entity["avatar"].startswith(f"{inbox_app.state.easel.urls.base}/system/{CACHE_PREFIX}/")


async def test_an_avatar_on_a_domain_whose_media_are_rejected_is_not_kept(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor) -> None:
    avatar, header = "https://cdn.blocked.example/a.png", "https://remote.example/h.png"
    fediverse.profile_images[remote_carol.uri] = (avatar, header)
    fediverse.serve_file(avatar, images.png(), "image/png")
    fediverse.serve_file(header, images.png(), "image/png")
    async with app_db.session() as session:
        session.add(DomainBlock(domain="blocked.example", severity="noop", reject_media=True))
        await session.commit()
    fetcher = federation_context(inbox_app.state.easel.settings, app_db).fetcher
    account = await fetcher.fetch_actor(remote_carol.uri)
    await process(inbox_app)
    assert (account.avatar_remote_url, account.header_remote_url) == (None, header)
    assert fediverse.fetched(avatar) == 0 and fediverse.fetched(header) == 1


# ----------------------------------------------------------- lifting the block

async def test_a_note_stored_again_after_the_block_is_lifted_gets_its_media_back(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor, alice: User) -> None:
    status_id = await post_work(inbox_app, fediverse, remote_carol)
    _, _, picture = serve_artist(fediverse, remote_carol)
    await block(inbox_app, "remote.example")
    await process(inbox_app)
    assert fediverse.fetched(picture) == 1
    async with app_db.session() as session:
        await domain_blocks.unblock_domain(session, "remote.example")

    note = note_with(remote_carol, picture)  # the same note, redelivered (an Update alike)
    activity = remote_carol.activity("Update", note, to=note["to"], cc=note["cc"])
    assert (await deliver(inbox_app, remote_carol, activity)).status_code == 202
    await process(inbox_app)

    [row] = [r for r in await rows_of(inbox_app, remote_carol) if r.purpose == "attachment"]
    assert row.type == "image" and row.cache_key is not None
    assert fediverse.fetched(picture) == 2
    assert await works_of(inbox_app, remote_carol) == 1
    status = await api_get(inbox_app, alice, f"/api/v1/statuses/{status_id}")
    assert status["edited_at"] is None  # getting its type back is not an edit
    assert status["media_attachments"][0]["type"] == "image"


async def test_a_block_lifted_while_the_clearing_runs_stops_it(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor, remote_erin: FakeActor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy is read again before every batch: what comes after the lifting stays."""
    import federation.media_cache as media_cache

    await post_work(inbox_app, fediverse, remote_carol)  # remote.example, cleared first
    await post_work(inbox_app, fediverse, remote_erin)  # social.remote.example, after
    clear_accounts = media_cache._clear_accounts

    async def then_lift(session: Any, ids: list[int], cleared: Any) -> set[str]:
        keys = await clear_accounts(session, ids, cleared)
        async with app_db.session() as other:
            if await other.scalar(select(DomainBlock.id)) is not None:
                await session.commit()  # this batch's rows first (SQLite: one writer)
                await domain_blocks.unblock_domain(other, "remote.example")
        return keys

    monkeypatch.setattr(media_cache, "_clear_accounts", then_lift)
    await block(inbox_app, "remote.example")
    await process(inbox_app)
    assert_cleared([r for r in await rows_of(inbox_app, remote_carol) if r.purpose == "attachment"],
                   await account_of(inbox_app, remote_carol))
    assert_untouched(await rows_of(inbox_app, remote_erin), await account_of(inbox_app, remote_erin))


async def test_a_copy_is_not_kept_for_an_attachment_cleared_while_it_was_stored(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clearing commits while the cache job stores the attachment's files: the job's
    row update does not name the copy over an ``unknown`` attachment, and its files go."""
    storage = federation_context(inbox_app.state.easel.settings, app_db).storage
    put = type(storage).put
    flipped: list[str] = []

    async def cleared_meanwhile(self: Any, key: str, data: bytes, **kwargs: Any) -> None:
        await put(self, key, data, **kwargs)
        if not key.startswith(f"{CACHE_PREFIX}/"):
            return
        async with app_db.session() as other:
            result = await other.execute(update(MediaAttachment).where(
                MediaAttachment.purpose == "attachment", MediaAttachment.type == "image")
                .values(type="unknown"))
            await other.commit()
        if getattr(result, "rowcount", 0):
            flipped.append(key)

    monkeypatch.setattr(type(storage), "put", cleared_meanwhile)
    _, _, picture = serve_artist(fediverse, remote_carol)
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, picture))
    rows = await rows_of(inbox_app, remote_carol)
    [row] = [r for r in rows if r.purpose == "attachment"]
    assert flipped and row.type == "unknown" and row.cache_key is None
    named = {key for r in rows for key in (r.cache_key, r.cache_preview_key) if key}
    assert set(await cached_files(inbox_app)) == named  # the attachment's files were deleted
    assert flipped[0] not in named
