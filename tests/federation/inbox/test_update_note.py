"""Inbound ``Update`` of notes: edits of remote statuses, by their author only.

Given a remote status Easel has, when its author sends an ``Update`` with the new Note, I
expect the client API to show the new content with ``edited_at``; when anyone else does,
or the status is unknown, or the Update is forwarded with a tampered body, I expect the
status unchanged (or the origin's version), and the inbox item to say why.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette

from server.db import Database
from server.models import Status, User
from tests.conftest import make_token
from tests.federation.inbox.conftest import FakeActor, Fediverse, http, item_for
from tests.federation.inbox.test_create import deliver_and_process, mastodon_note


async def carol_posts(app: Starlette, carol: FakeActor) -> dict[str, Any]:
    note = mastodon_note(carol)
    await deliver_and_process(app, carol, carol.activity("Create", note))
    return note


def edited(note: dict[str, Any], content: str, updated: str) -> dict[str, Any]:
    new = copy.deepcopy(note)
    new["content"] = content
    new.pop("contentMap", None)
    new["updated"] = updated
    new["attachment"] = new["attachment"][:1]
    return new


async def the_status(db: Database, uri: str) -> Status:
    async with db.session() as session:
        status = await session.scalar(select(Status).where(Status.uri == uri))
        assert status is not None
        return status


async def test_the_author_edits_and_clients_see_the_new_version(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor, alice: User) -> None:
    note = await carol_posts(inbox_app, remote_carol)
    new = edited(note, "<p>Fixed a typo</p>", "2024-05-01T12:00:00Z")
    update = remote_carol.activity("Update", new)
    await deliver_and_process(inbox_app, remote_carol, update)
    replay = remote_carol.activity("Update", copy.deepcopy(new))
    await deliver_and_process(inbox_app, remote_carol, replay)

    item = await item_for(app_db, update["id"])
    assert item is not None and (item.outcome, item.note) == ("processed", "updated")
    item = await item_for(app_db, replay["id"])
    assert item is not None and (item.outcome, item.note) == ("processed", "no change")
    status = await the_status(app_db, note["id"])
    async with http(inbox_app, token=await make_token(app_db, alice)) as alice_api:
        entity = (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()
    assert entity["content"] == "<p>Fixed a typo</p>"
    assert entity["edited_at"] == "2024-05-01T12:00:00.000Z"
    assert len(entity["media_attachments"]) == 1


async def test_another_actor_cannot_edit_and_unknown_statuses_are_not_created(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, alice: User) -> None:
    note = await carol_posts(inbox_app, remote_carol)
    # Mallory on carol's own server sends an edit of carol's status.
    mallory = fediverse.actor("https://remote.example/users/mallory", "mallory")
    forged = edited(note, "<p>forged</p>", "2024-05-01T12:00:00Z")
    forged["attributedTo"] = mallory.uri
    by_mallory = mallory.activity("Update", forged)
    await deliver_and_process(inbox_app, mallory, by_mallory)
    # … and an edit of a status nobody here has.
    unknown = mastodon_note(remote_carol, 99)
    of_unknown = remote_carol.activity("Update", unknown)
    await deliver_and_process(inbox_app, remote_carol, of_unknown)

    item = await item_for(app_db, by_mallory["id"])
    assert item is not None and item.outcome == "rejected"
    item = await item_for(app_db, of_unknown["id"])
    assert item is not None and item.outcome == "ignored"
    status = await the_status(app_db, note["id"])
    assert "New sketches for" in status.content and status.edited_at is None
    async with app_db.session() as session:
        assert await session.scalar(select(Status).where(Status.uri == unknown["id"])) is None


async def test_a_forwarded_update_applies_the_origins_version(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, remote_dave: FakeActor, alice: User) -> None:
    note = await carol_posts(inbox_app, remote_carol)
    truth = edited(note, "<p>what carol wrote</p>", "2024-05-01T12:00:00Z")
    fediverse.objects[note["id"]] = truth
    lie = edited(note, "<p>what dave says she wrote</p>", "2024-05-01T12:00:00Z")
    update = remote_carol.activity("Update", lie)
    await deliver_and_process(inbox_app, remote_dave, update)

    status = await the_status(app_db, note["id"])
    assert status.content == "<p>what carol wrote</p>"


async def test_an_update_whose_origin_serves_another_note_creates_nothing(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, alice: User) -> None:
    note = await carol_posts(inbox_app, remote_carol)
    # Asked for carol's status, her server answers with another note of its own (the
    # origin rule lets a URL lead to a document with another id on the same server).
    other = edited(note, "<p>a different post</p>", "2024-05-01T12:00:00Z")
    other["id"] = remote_carol.uri + "/statuses/2"
    fediverse.objects[note["id"]] = other
    fediverse.objects[other["id"]] = other
    update = remote_carol.activity("Update", note["id"])  # by id: refetched
    await deliver_and_process(inbox_app, remote_carol, update)

    item = await item_for(app_db, update["id"])
    assert item is not None and item.outcome == "ignored"
    assert fediverse.fetched(other["id"]) == 1
    status = await the_status(app_db, note["id"])
    assert "New sketches for" in status.content and status.edited_at is None
    async with app_db.session() as session:
        assert await session.scalar(select(Status).where(Status.uri == other["id"])) is None
