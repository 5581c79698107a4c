"""Accounts leaving the fediverse, both ways.

Out: when a moderator suspends alice, her followers' servers get an ``Update`` of her
actor saying ``suspended``; when her account is deleted, every server Easel knows gets a
``Delete`` whose object is her actor, signed with her key, and her actor answers 410.

In: a ``Delete`` of carol's actor signed by carol removes her statuses, follows both ways
and the notifications she caused; one signed by anyone else removes nothing of her.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from starlette.applications import Starlette

from server.db import Database
from server.models import Account, InboxOutcome, Notification, Status, User
from server.services import moderation
from tests.federation.inbox import conftest as inbox_fixtures
from tests.federation.inbox.conftest import (
    ALICE,
    PUBLIC,
    Api,
    FakeActor,
    Fediverse,
    alice_asks_to_follow,
    http,
    process,
    receive,
    remote_account,
)
from tests.federation.inbox.test_create import mastodon_note

# The inbox tests' fixtures (an app whose federation goes to a fake fediverse), used here.
fediverse = inbox_fixtures.fediverse
inbox_app = inbox_fixtures.inbox_app
app_db = inbox_fixtures.app_db
alice_app = inbox_fixtures.alice_app
artwork = inbox_fixtures.artwork
remote_carol = inbox_fixtures.remote_carol
remote_dave = inbox_fixtures.remote_dave


def posted_to(fediverse: Fediverse, type_: str) -> list[tuple[str, dict[str, Any], str]]:
    """(inbox url, activity, signature header) of each ``type_`` delivered."""
    import json

    return [(str(r.url), json.loads(r.content), r.headers.get("signature", ""))
            for r in fediverse.requests
            if r.method == "POST" and json.loads(r.content).get("type") == type_]


async def test_suspending_and_deleting_a_local_account_is_sent_to_other_servers(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        remote_dave: FakeActor, fediverse: Fediverse) -> None:
    await receive(inbox_app, remote_carol, remote_carol.activity("Follow", ALICE))
    await remote_account(inbox_app, remote_dave)  # known, never followed alice
    settings = inbox_app.state.easel.settings
    async with app_db.session() as session:
        await moderation.take_action(session, settings, moderator=None,
                                     account_id=alice.account_id, action="suspend",
                                     text="spam")
    await process(inbox_app)
    updates = posted_to(fediverse, "Update")
    assert [url for url, _, _ in updates] == ["https://remote.example/inbox"]
    assert updates[0][1]["object"]["id"] == ALICE and updates[0][1]["object"]["suspended"] is True

    async with app_db.session() as session:
        await moderation.delete_by_moderator(session, alice.account_id)
    await inbox_app.state.easel.runner.run_due(["default"])
    await process(inbox_app)
    deletes = posted_to(fediverse, "Delete")
    assert sorted(url for url, _, _ in deletes) == ["https://other.example/inbox",
                                                    "https://remote.example/inbox"]
    for _, activity, signature in deletes:
        assert (activity["actor"], activity["object"]) == (ALICE, ALICE)
        assert f'keyId="{ALICE}#main-key"' in signature
    async with http(inbox_app) as client:
        gone = await client.get("/users/alice", headers={"Accept": "application/activity+json"})
    assert gone.status_code == 410 and gone.json()["type"] == "Tombstone"
    async with app_db.session() as session:
        assert await session.scalar(select(User.id).where(User.id == alice.id)) is None


async def test_a_delete_of_an_actor_by_itself_removes_what_it_left_here(
        inbox_app: Starlette, app_db: Database, alice_app: Api, alice: User, artwork: Status,
        remote_carol: FakeActor, fediverse: Fediverse) -> None:
    carol_id, sent = await alice_asks_to_follow(inbox_app, alice_app, remote_carol, fediverse)
    await receive(inbox_app, remote_carol, remote_carol.activity("Accept", sent["id"]))
    await receive(inbox_app, remote_carol, remote_carol.activity("Follow", ALICE))
    note = mastodon_note(remote_carol, 7, to=[PUBLIC], cc=[ALICE])
    await receive(inbox_app, remote_carol, remote_carol.activity(
        "Create", note, to=note["to"], cc=note["cc"]))
    await receive(inbox_app, remote_carol, remote_carol.activity("Like", artwork.uri))
    assert {kind for kind, _ in await alice_app.notifications()} >= {"mention", "favourite"}

    delete = remote_carol.activity("Delete", remote_carol.uri, to=[PUBLIC])
    assert await receive(inbox_app, remote_carol, delete) == InboxOutcome.PROCESSED
    me = await alice_app.account(alice.account_id)
    assert (me["followers_count"], me["following_count"]) == (0, 0)
    assert await alice_app.notifications() == []
    async with app_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Status).where(
            Status.account_id == carol_id)) == 0
        assert await session.scalar(select(func.count()).select_from(Notification).where(
            Notification.from_account_id == carol_id)) == 0
        assert await session.get(Account, carol_id) is None


async def test_a_delete_of_someone_elses_actor_removes_nothing(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        remote_dave: FakeActor) -> None:
    note = mastodon_note(remote_carol, 8, to=[PUBLIC], cc=[ALICE])
    await receive(inbox_app, remote_carol, remote_carol.activity(
        "Create", note, to=note["to"], cc=note["cc"]))
    carol = await remote_account(inbox_app, remote_carol)
    # dave claims carol is deleted, in his own name, by id and embedded.
    await receive(inbox_app, remote_dave, remote_dave.activity("Delete", remote_carol.uri))
    embedded = remote_dave.activity("Delete", remote_carol.document())
    assert await receive(inbox_app, remote_dave, embedded) == InboxOutcome.REJECTED
    async with app_db.session() as session:
        assert await session.get(Account, carol.id) is not None
        assert await session.scalar(select(func.count()).select_from(Status).where(
            Status.account_id == carol.id)) == 1
