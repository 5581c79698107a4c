"""Inbound ``Delete`` of statuses, above all forwarded ones (signed by someone else).

Given carol's statuses stored here, when a Delete of one arrives signed by carol, I expect
it gone (a Tombstone left). When the Delete is *forwarded* — signed by dave, on another
server — I expect it applied only when carol's server, asked by our instance actor, says
the status is gone: 410, a served Tombstone, or a 404 for a post that was public. A 404,
401 or 403 for a followers-only or direct post only means "not served to you", so the
status stays and the item is recorded as rejected. And a forwarded copy never turns
carol's own delivery of the same Delete into a replay.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette

from server.db import Database
from server.models import InboxOutcome, Status, Tombstone, User
from tests.federation.inbox.conftest import (
    ALICE,
    PUBLIC,
    FakeActor,
    Fediverse,
    deliver,
    item_for,
    process,
    stored,
)
from tests.federation.inbox.test_create import deliver_and_process, mastodon_note


async def carol_posts(app: Starlette, carol: FakeActor, number: int, *, direct: bool,
                      ) -> dict[str, Any]:
    """carol's note ``number``, delivered and stored: addressed to alice only, or public."""
    if direct:
        note = mastodon_note(carol, number, to=[ALICE], cc=[])
    else:
        note = mastodon_note(carol, number, to=[PUBLIC], cc=[carol.uri + "/followers", ALICE])
    await deliver_and_process(app, carol, carol.activity("Create", note, to=note["to"],
                                                         cc=note["cc"]))
    return note


async def status_and_tombstone(db: Database, uri: str) -> tuple[Status | None, bool]:
    async with db.session() as session:
        status = await session.scalar(select(Status).where(Status.uri == uri))
        tombstone = await session.scalar(select(Tombstone.id).where(Tombstone.uri == uri))
    return status, tombstone is not None


def delete_of(carol: FakeActor, note: dict[str, Any]) -> dict[str, Any]:
    """The Delete Mastodon sends: its id is predictable (``{status}#delete``)."""
    return {"@context": "https://www.w3.org/ns/activitystreams", "id": note["id"] + "#delete",
            "type": "Delete", "actor": carol.uri, "to": [PUBLIC],
            "object": {"id": note["id"], "type": "Tombstone"}}


async def forwarded_outcome(app: Starlette, dave: FakeActor,
                            delete: dict[str, Any]) -> tuple[str, str]:
    """dave forwards ``delete``; the item's (outcome, note) once processed."""
    response = await deliver(app, dave, delete)
    assert response.status_code == 202, response.text
    await process(app)
    item = await item_for(app.state.easel.db, delete["id"], forwarded_by=dave)
    assert item is not None and item.forwarded
    return item.outcome, item.note


async def test_the_author_deletes_her_status_and_a_tombstone_stays(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor, alice: User) -> None:
    note = await carol_posts(inbox_app, remote_carol, 1, direct=True)
    delete = delete_of(remote_carol, note)
    await deliver_and_process(inbox_app, remote_carol, delete)

    item = await item_for(app_db, delete["id"])
    assert item is not None and item.outcome == InboxOutcome.PROCESSED
    assert await status_and_tombstone(app_db, note["id"]) == (None, True)


async def test_a_forwarded_delete_of_a_direct_status_answered_404_changes_nothing(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, remote_dave: FakeActor, alice: User) -> None:
    note = await carol_posts(inbox_app, remote_carol, 1, direct=True)
    # carol's server does not serve a direct post to our instance actor: 404.
    outcome, why = await forwarded_outcome(inbox_app, remote_dave, delete_of(remote_carol, note))

    assert outcome == InboxOutcome.REJECTED and "404" in why
    status, tombstoned = await status_and_tombstone(app_db, note["id"])
    assert status is not None and status.visibility == "direct" and not tombstoned
    assert fediverse.fetched(note["id"]) == 1


async def test_a_forwarded_delete_answered_401_or_403_changes_nothing_even_if_public(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, remote_dave: FakeActor, alice: User) -> None:
    note = await carol_posts(inbox_app, remote_carol, 1, direct=False)
    for code in (401, 403):
        fediverse.status[note["id"]] = code
        delete = delete_of(remote_carol, note) | {"id": f"{note['id']}#delete/{code}"}
        outcome, why = await forwarded_outcome(inbox_app, remote_dave, delete)
        assert outcome == InboxOutcome.REJECTED and str(code) in why

    status, tombstoned = await status_and_tombstone(app_db, note["id"])
    assert status is not None and status.visibility == "public" and not tombstoned


async def test_a_forwarded_delete_of_an_unknown_status_answered_404_leaves_no_tombstone(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        remote_dave: FakeActor) -> None:
    # A Tombstone would make a later Create of this (perhaps private) post be dropped.
    note = mastodon_note(remote_carol, 7)
    outcome, _ = await forwarded_outcome(inbox_app, remote_dave, delete_of(remote_carol, note))

    assert outcome == InboxOutcome.REJECTED
    assert await status_and_tombstone(app_db, note["id"]) == (None, False)


async def test_a_forwarded_delete_is_applied_when_the_origin_says_gone(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, remote_dave: FakeActor, alice: User) -> None:
    gone = await carol_posts(inbox_app, remote_carol, 1, direct=True)
    fediverse.status[gone["id"]] = 410
    tombstoned = await carol_posts(inbox_app, remote_carol, 2, direct=True)
    fediverse.objects[tombstoned["id"]] = {
        "@context": "https://www.w3.org/ns/activitystreams", "id": tombstoned["id"],
        "type": "Tombstone"}
    public = await carol_posts(inbox_app, remote_carol, 3, direct=False)  # 404: not served

    for note in (gone, tombstoned, public):
        outcome, why = await forwarded_outcome(inbox_app, remote_dave,
                                               delete_of(remote_carol, note))
        assert (outcome, why) == (InboxOutcome.PROCESSED, f"status {note['id']} deleted")
        assert await status_and_tombstone(app_db, note["id"]) == (None, True)


async def test_a_forwarded_delete_of_a_status_still_served_is_rejected(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, remote_dave: FakeActor, alice: User) -> None:
    note = await carol_posts(inbox_app, remote_carol, 1, direct=False)
    fediverse.objects[note["id"]] = note
    outcome, _ = await forwarded_outcome(inbox_app, remote_dave, delete_of(remote_carol, note))

    assert outcome == InboxOutcome.REJECTED
    status, _ = await status_and_tombstone(app_db, note["id"])
    assert status is not None


async def test_a_forwarded_copy_does_not_make_the_authors_own_delete_a_replay(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, remote_dave: FakeActor, alice: User) -> None:
    note = await carol_posts(inbox_app, remote_carol, 1, direct=False)
    fediverse.objects[note["id"]] = note  # still served: dave's early "Delete" is refused
    delete = delete_of(remote_carol, note)
    outcome, _ = await forwarded_outcome(inbox_app, remote_dave, delete)
    assert outcome == InboxOutcome.REJECTED
    items_before, _ = await stored(app_db)

    # carol really deletes it, with the very same (predictable) activity id.
    del fediverse.objects[note["id"]]
    fediverse.status[note["id"]] = 410
    await deliver_and_process(inbox_app, remote_carol, delete)

    item = await item_for(app_db, delete["id"])
    assert item is not None and not item.forwarded
    assert item.outcome == InboxOutcome.PROCESSED
    assert await status_and_tombstone(app_db, note["id"]) == (None, True)
    assert await stored(app_db) == (items_before + 1, items_before + 1)


async def test_a_copy_forwarded_after_the_authors_own_is_a_replay(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        remote_dave: FakeActor, alice: User) -> None:
    note = await carol_posts(inbox_app, remote_carol, 1, direct=True)
    delete = delete_of(remote_carol, note)
    await deliver_and_process(inbox_app, remote_carol, delete)
    before = await stored(app_db)

    response = await deliver(inbox_app, remote_dave, delete)

    assert response.status_code == 202
    assert await stored(app_db) == before
    assert await item_for(app_db, delete["id"], forwarded_by=remote_dave) is None
