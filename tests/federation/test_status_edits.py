"""Edits across servers: a local edit goes out as ``Update(Note)`` to the status's audience,
and a remote author's edit is kept as history here, as Mastodon keeps it.

Given alice on easel.test with remote followers, when she edits a post through the
client API and the federation queue runs, I expect each remote inbox to receive one
``Update`` carrying the new Note (``updated`` set, a fresh activity id per edit). Given a
Mastodon note stored here and boosted by alice, when its author's edits arrive, I expect
the versions in ``/history`` oldest first, one "update" notification for alice, and
nothing new for a replayed or stale edit.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from federation import notes
from federation.context import FederationContext
from server.db import SQLITE_BUSY_TIMEOUT_MS, Database
from server.models import Account, MediaAttachment, Notification, Status, StatusEdit, User
from server.services import edits
from server.services.statuses import reblog
from server.settings import Settings
from tests.federation.fediverse import corpus_note
from tests.federation.test_notes import count, store
from tests.federation.test_outbox import (  # noqa: F401  (fixtures of outbound federation)
    FakeFediverse,
    app,
    audience,
    local,
    post,
    remote,
    run_federation,
)

# ------------------------------------------------------------------------------- out

async def test_a_local_edit_reaches_the_audience_as_an_update_of_the_note(
    app: Starlette, db: Database, settings: Settings, alice: User,  # noqa: F811
    audience: dict[str, Account], remote: FakeFediverse  # noqa: F811
) -> None:
    status = await post(db, settings, alice, "first draft #sketch")
    await run_federation(app)
    remote.received.clear()

    author = await local(db, alice)
    for text in ("second draft #sketch", "final #sketch"):
        async with db.session() as session:
            await edits.edit_status(session, settings, author, status.id, text=text,
                                    spoiler_text="wip")
    await run_federation(app)

    assert remote.urls == ["https://shared.example/inbox"] * 2 + \
        ["https://solo.example/users/tom/inbox"] * 2
    sent = remote.to("https://solo.example/users/tom/inbox")
    assert [u["type"] for u in sent] == ["Update", "Update"]
    assert len({u["id"] for u in sent}) == 2  # one activity per edit
    for update in sent:
        note = update["object"]
        assert update["actor"] == author.uri and note["id"] == status.uri
        assert note["summary"] == "wip" and note["updated"]
        # Each Update carries the note as it is when the job builds it.
        assert "final" in note["content"]
    assert await count(db, StatusEdit, StatusEdit.status_id == status.id) == 3
    assert await run_federation(app) == 0


async def test_an_edit_that_changes_nothing_sends_nothing(
    app: Starlette, db: Database, settings: Settings, alice: User,  # noqa: F811
    audience: dict[str, Account], remote: FakeFediverse  # noqa: F811
) -> None:
    status = await post(db, settings, alice, "as it was")
    await run_federation(app)
    remote.received.clear()
    async with db.session() as session:
        await edits.edit_status(session, settings, await local(db, alice), status.id,
                                text="as it was")
    assert await run_federation(app) == 0
    assert remote.received == []


# -------------------------------------------------------------------------------- in

async def test_a_remote_authors_edits_are_kept_as_history_and_boosters_told(
    fed: FederationContext, db: Database, settings: Settings, alice: User,
    alice_api: httpx.AsyncClient
) -> None:
    note = corpus_note("mastodon_create_note.json")
    status = await store(fed, db, note)
    async with db.session() as session:
        booster = await session.get(Account, alice.account_id)
        assert booster is not None
        await reblog(session, settings, booster, status.id)
    path = f"/api/v1/statuses/{status.id}/history"
    versions = (await alice_api.get(path)).json()
    assert len(versions) == 1 and versions[0]["content"] == status.content

    first_edit = copy.deepcopy(note)
    first_edit["content"] = "<p>Second thoughts</p>"
    first_edit.pop("contentMap", None)
    first_edit["summary"] = "a warning"
    first_edit["updated"] = "2024-05-01T11:00:00Z"
    await store(fed, db, first_edit)
    await store(fed, db, first_edit)  # a replay: no new version
    stale = copy.deepcopy(note)
    stale["content"] = "<p>older</p>"
    stale["updated"] = "2024-05-01T10:30:00Z"
    await store(fed, db, stale)  # older than the last edit applied: ignored
    second_edit = copy.deepcopy(first_edit)
    second_edit["content"] = "<p>Third thoughts</p>"
    second_edit["updated"] = "2024-05-01T12:00:00Z"
    await store(fed, db, second_edit)

    versions = (await alice_api.get(path)).json()
    assert [(v["content"], v["spoiler_text"]) for v in versions] == [
        (status.content, ""), ("<p>Second thoughts</p>", "a warning"),
        ("<p>Third thoughts</p>", "a warning")]
    assert [v["created_at"] for v in versions] == [
        "2024-05-01T10:00:00.000Z", "2024-05-01T11:00:00.000Z", "2024-05-01T12:00:00.000Z"]
    assert {v["account"]["acct"] for v in versions} == {"carol@mastodon.example"}
    # Media kept through the edits are shown in every version.
    assert all(len(v["media_attachments"]) == 2 for v in versions)
    async with db.session() as session:
        updates = list(await session.scalars(select(Notification).where(
            Notification.account_id == alice.account_id, Notification.type == "update")))
    assert [n.status_id for n in updates] == [status.id]


async def test_a_remote_edit_of_one_attachment_keeps_the_others_rows_for_older_versions(
    fed: FederationContext, db: Database, alice_api: httpx.AsyncClient
) -> None:
    note = corpus_note("mastodon_create_note.json")
    status = await store(fed, db, note)
    async with db.session() as session:
        before = list(await session.scalars(select(MediaAttachment.id).where(
            MediaAttachment.status_id == status.id).order_by(MediaAttachment.id)))
    assert len(before) == 2

    described = copy.deepcopy(note)
    described["attachment"][1]["name"] = "A square of green"
    described["attachment"][0]["focalPoint"] = [0.5, 0.5]
    described["updated"] = "2024-05-01T11:00:00Z"
    await store(fed, db, described)
    dropped = copy.deepcopy(described)
    dropped["attachment"] = dropped["attachment"][1:]
    dropped["updated"] = "2024-05-01T12:00:00Z"
    await store(fed, db, dropped)

    async with db.session() as session:
        after = list(await session.scalars(select(MediaAttachment.id).where(
            MediaAttachment.status_id == status.id).order_by(MediaAttachment.id)))
    assert after == before[1:]  # updated in place; only the dropped one's row went
    versions = (await alice_api.get(f"/api/v1/statuses/{status.id}/history")).json()
    assert [[m["description"] for m in v["media_attachments"]] for v in versions] == [
        [None], ["A square of green"], ["A square of green"]]
    current = (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()
    assert [m["description"] for m in current["media_attachments"]] == ["A square of green"]


def question(**changes: Any) -> dict[str, Any]:
    """A Mastodon poll (``Question``) by carol."""
    author = "https://mastodon.example/users/carol"
    document: dict[str, Any] = {
        "@context": ["https://www.w3.org/ns/activitystreams"],
        "id": f"{author}/statuses/9101", "type": "Question", "attributedTo": author,
        "content": "<p>Tea or coffee?</p>", "published": "2026-11-01T10:00:00Z",
        "to": ["https://www.w3.org/ns/activitystreams#Public"], "cc": [f"{author}/followers"],
        "endTime": "2099-01-01T00:00:00Z", "votersCount": 3,
        "oneOf": [{"type": "Note", "name": "tea", "replies": {"totalItems": 2}},
                  {"type": "Note", "name": "coffee", "replies": {"totalItems": 1}}],
    }
    document.update(changes)
    return {key: value for key, value in document.items() if value is not None}


async def test_a_remote_edit_of_a_polls_options_is_an_edit_and_new_counts_are_not(
    fed: FederationContext, db: Database, settings: Settings, alice: User,
    alice_api: httpx.AsyncClient
) -> None:
    status = await store(fed, db, question())
    async with db.session() as session:
        booster = await session.get(Account, alice.account_id)
        assert booster is not None
        await reblog(session, settings, booster, status.id)
    # New counts only (the same `updated`-less note): not an edit.
    await store(fed, db, question(votersCount=4, oneOf=[
        {"type": "Note", "name": "tea", "replies": {"totalItems": 3}},
        {"type": "Note", "name": "coffee", "replies": {"totalItems": 1}}]))
    assert (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()["edited_at"] is None
    # New options (the text unchanged): an edit, with its versions.
    await store(fed, db, question(updated="2026-11-01T11:00:00Z", oneOf=[
        {"type": "Note", "name": "tea", "replies": {"totalItems": 0}},
        {"type": "Note", "name": "cocoa", "replies": {"totalItems": 0}}]))
    # One choice to several, the same options: an edit too.
    await store(fed, db, question(updated="2026-11-01T12:00:00Z", anyOf=[
        {"type": "Note", "name": "tea", "replies": {"totalItems": 0}},
        {"type": "Note", "name": "cocoa", "replies": {"totalItems": 0}}], oneOf=None))

    entity = (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()
    assert entity["edited_at"] == "2026-11-01T12:00:00.000Z"
    assert entity["poll"]["multiple"] is True
    versions = (await alice_api.get(f"/api/v1/statuses/{status.id}/history")).json()
    assert [[o["title"] for o in v["poll"]["options"]] for v in versions] == [
        ["tea", "coffee"], ["tea", "cocoa"], ["tea", "cocoa"]]
    async with db.session() as session:
        updates = list(await session.scalars(select(Notification.status_id).where(
            Notification.account_id == alice.account_id, Notification.type == "update")))
    assert updates == [status.id]


async def test_a_remote_edit_holds_the_status_row_while_it_reads_the_version_it_keeps(
    fed: FederationContext, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two edits delivered at once must not both keep the same "before": the row is
    locked (as by a local edit) before the version is read."""
    note = corpus_note("mastodon_create_note.json")
    await store(fed, db, note)
    seen: list[bool] = []
    read_version = notes.current_version

    async def probing(session: AsyncSession, target: Status) -> edits.Version:
        if not seen:
            seen.append(await row_is_locked(db, target.id))
        return await read_version(session, target)

    monkeypatch.setattr(notes, "current_version", probing)
    edited = copy.deepcopy(note)
    edited["content"] = "<p>Second thoughts</p>"
    edited["updated"] = "2024-05-01T11:00:00Z"
    await store(fed, db, edited)
    assert seen == [True]


async def row_is_locked(db: Database, status_id: int) -> bool:
    """Whether another transaction holds ``status_id``'s row (tried without waiting)."""
    sqlite = db.url.startswith("sqlite")
    async with db.session() as probe:
        await probe.execute(sa.text("PRAGMA busy_timeout=0" if sqlite
                                 else "SET LOCAL lock_timeout = '200ms'"))
        try:
            await probe.execute(sa.update(Status).where(Status.id == status_id)
                                .values(replies_count=Status.replies_count))
        except DBAPIError:
            return True
        finally:
            await probe.rollback()
            if sqlite:
                await probe.execute(sa.text(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}"))
        return False


async def test_new_portfolio_data_under_the_last_edits_date_is_applied_without_a_version(
    fed: FederationContext, db: Database, alice_api: httpx.AsyncClient
) -> None:
    """An Easel server federates a change of a work's portfolio data alone without a new
    ``updated`` (it is not part of Mastodon's versions): an ``Update`` dated as the last
    edit is applied, as Mastodon applies one (only an older one is stale)."""
    note = corpus_note("mastodon_create_note.json")
    note["portfolio"] = {"type": "PortfolioWork", "title": "Heron"}
    status = await store(fed, db, note)
    edited = copy.deepcopy(note)
    edited["content"] = "<p>Second thoughts</p>"
    edited.pop("contentMap", None)
    edited["updated"] = "2024-05-01T11:00:00Z"
    await store(fed, db, edited)
    renamed = copy.deepcopy(edited)
    renamed["portfolio"] = {"type": "PortfolioWork", "title": "Heron at dawn"}
    await store(fed, db, renamed)

    entity = (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()
    assert entity["easel"]["title"] == "Heron at dawn"
    assert entity["edited_at"] == "2024-05-01T11:00:00.000Z"
    assert await count(db, StatusEdit, StatusEdit.status_id == status.id) == 2
