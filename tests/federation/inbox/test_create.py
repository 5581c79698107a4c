"""Inbound ``Create`` of notes, from a signed POST to the status in the client API.

Given remote actors that deliver signed ``Create`` activities (shapes from the corpus),
when the inbox job runs, I expect the note stored once and visible where a Mastodon
client looks — the follower's home timeline, the public timeline, the mentioned
account's notifications — and, for every body the origin rules forbid, nothing stored.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from starlette.applications import Starlette

from server.db import Database
from server.models import Account, Follow, InboxItem, Status, Tombstone, User
from tests.conftest import make_token
from tests.federation.inbox.conftest import (
    BASE,
    PUBLIC,
    FakeActor,
    Fediverse,
    deliver,
    http,
    item_for,
    process,
)

CORPUS = Path(__file__).parent.parent / "corpus"
ALICE = f"{BASE}/users/alice"


def mastodon_note(actor: FakeActor, number: int = 1, **changes: Any) -> dict[str, Any]:
    """The corpus Mastodon note, rewritten as ``actor``'s."""
    text = (CORPUS / "mastodon_create_note.json").read_text()
    text = text.replace("https://mastodon.example/users/carol", actor.uri)
    note: dict[str, Any] = json.loads(text)["object"]
    note["id"] = f"{actor.uri}/statuses/{number}"
    note.pop("url")
    note.update(changes)
    return note


async def statuses(db: Database) -> list[Status]:
    async with db.session() as session:
        return list(await session.scalars(select(Status).order_by(Status.id)))


async def outcome(db: Database, activity: dict[str, Any]) -> tuple[str, str]:
    item = await item_for(db, activity["id"])
    assert item is not None
    return item.outcome, item.note


async def follows(db: Database, user: User, actor: FakeActor) -> None:
    async with db.session() as session:
        target = await session.scalar(select(Account).where(Account.uri == actor.uri))
        assert target is not None
        session.add(Follow(account_id=user.account_id, target_account_id=target.id))
        await session.commit()


async def deliver_and_process(app: Starlette, sender: FakeActor, activity: dict[str, Any],
                              **options: Any) -> None:
    response = await deliver(app, sender, activity, **options)
    assert response.status_code == 202, response.text
    await process(app)


async def test_a_mention_of_a_local_user_arrives_in_her_notifications(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor, alice: User) -> None:
    note = mastodon_note(remote_carol)
    activity = remote_carol.activity("Create", note, to=note["to"], cc=note["cc"])
    await deliver_and_process(inbox_app, remote_carol, activity)

    assert (await outcome(app_db, activity))[0] == "processed"
    [status] = await statuses(app_db)
    async with http(inbox_app, token=await make_token(app_db, alice)) as alice_api:
        [notification] = (await alice_api.get("/api/v1/notifications")).json()
        assert notification["type"] == "mention"
        assert notification["status"]["uri"] == note["id"]
        assert len(notification["status"]["media_attachments"]) == 2
        entity = (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()
        assert entity["account"]["acct"] == "carol@remote.example"
        public = (await alice_api.get("/api/v1/timelines/public")).json()
        assert [s["id"] for s in public] == [str(status.id)]


async def test_a_followed_authors_post_reaches_the_followers_home_timeline_once(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, bob: User) -> None:
    # Carol is known (her first, unrelated post is ignored) and bob follows her.
    stranger = mastodon_note(remote_carol, 1, cc=[], tag=[])
    first = remote_carol.activity("Create", stranger)
    await deliver_and_process(inbox_app, remote_carol, first)
    assert (await outcome(app_db, first))[0] == "ignored"
    assert await statuses(app_db) == []
    await follows(app_db, bob, remote_carol)

    note = mastodon_note(remote_carol, 2, cc=[remote_carol.uri + "/followers"], tag=[])
    activity = remote_carol.activity("Create", note)
    await deliver_and_process(inbox_app, remote_carol, activity)
    # The same Create again (a new activity id, as a redelivery by another path would be).
    again = remote_carol.activity("Create", copy.deepcopy(note))
    await deliver_and_process(inbox_app, remote_carol, again)
    assert (await outcome(app_db, again)) == ("processed", "already known")

    [status] = await statuses(app_db)
    async with http(inbox_app, token=await make_token(app_db, bob)) as bob_api:
        home = (await bob_api.get("/api/v1/timelines/home")).json()
    assert [s["id"] for s in home] == [str(status.id)]
    async with app_db.session() as session:
        carol = await session.scalar(select(Account).where(Account.uri == remote_carol.uri))
        assert carol is not None and carol.statuses_count == 1


async def test_an_object_given_by_id_is_fetched_from_its_origin(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, alice: User) -> None:
    note = mastodon_note(remote_carol)
    fediverse.objects[note["id"]] = note
    activity = remote_carol.activity("Create", note["id"])
    await deliver_and_process(inbox_app, remote_carol, activity)

    [status] = await statuses(app_db)
    assert status.uri == note["id"]
    assert fediverse.fetched(note["id"]) == 1


async def test_a_forwarded_create_is_refetched_never_trusted(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, remote_dave: FakeActor, alice: User) -> None:
    original = mastodon_note(remote_carol)
    fediverse.objects[original["id"]] = original
    tampered = copy.deepcopy(original)
    tampered["content"] = "<p>words carol never wrote</p>"
    activity = remote_carol.activity("Create", tampered)
    # Dave's server forwards carol's activity: signed by dave, not by carol.
    await deliver_and_process(inbox_app, remote_dave, activity)

    item = await item_for(app_db, activity["id"], forwarded_by=remote_dave)
    assert item is not None and item.forwarded
    [status] = await statuses(app_db)
    assert "New sketches for" in status.content and "never wrote" not in status.content
    assert fediverse.fetched(original["id"]) == 1


async def test_bodies_the_origin_rules_forbid_store_nothing(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, remote_dave: FakeActor, alice: User) -> None:
    # An object embedded as if from another host than the actor's: refetched from that
    # host, which says it is dave's.
    elsewhere = mastodon_note(remote_dave)
    fediverse.objects[elsewhere["id"]] = elsewhere
    claimed = copy.deepcopy(elsewhere) | {"attributedTo": remote_carol.uri}
    on_other_host = remote_carol.activity("Create", claimed)
    # A note on carol's host attributed to someone else.
    misattributed = mastodon_note(remote_carol, 7, attributedTo=remote_dave.uri)
    wrong_author = remote_carol.activity("Create", misattributed)
    # Not a note at all.
    not_a_note = remote_carol.activity("Create", {"id": remote_carol.uri + "/things/1",
                                                  "type": "Collection", "to": [PUBLIC]})
    for activity in (on_other_host, wrong_author, not_a_note):
        await deliver_and_process(inbox_app, remote_carol, activity)

    assert (await outcome(app_db, on_other_host))[0] == "rejected"
    assert (await outcome(app_db, wrong_author))[0] == "rejected"
    assert (await outcome(app_db, not_a_note))[0] == "ignored"
    assert await statuses(app_db) == []
    assert fediverse.fetched(elsewhere["id"]) == 1


async def test_a_create_after_its_delete_is_ignored(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor, alice: User) -> None:
    note = mastodon_note(remote_carol)
    async with app_db.session() as session:
        session.add(Tombstone(uri=note["id"]))
        await session.commit()
    activity = remote_carol.activity("Create", note)
    await deliver_and_process(inbox_app, remote_carol, activity)

    state, reason = await outcome(app_db, activity)
    assert state == "ignored" and "deleted" in reason
    assert await statuses(app_db) == []


async def test_an_unreachable_origin_is_retried_not_dropped(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse,
        remote_carol: FakeActor, alice: User) -> None:
    note_id = remote_carol.uri + "/statuses/later"
    fediverse.status[note_id] = 503
    activity = remote_carol.activity("Create", note_id)
    await deliver_and_process(inbox_app, remote_carol, activity)

    assert (await outcome(app_db, activity))[0] == "pending"
    async with app_db.session() as session:
        items = await session.scalar(select(func.count()).select_from(InboxItem))
    assert items == 1 and await statuses(app_db) == []
