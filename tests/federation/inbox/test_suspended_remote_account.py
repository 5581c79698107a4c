"""A remote account suspended by our moderators, at the inbox and for alice.

Given remote carol following alice and followed by her, with a favourite notification from
carol, when a moderator suspends carol through the admin API I expect the follows (and
requests) gone both ways with the counters, nothing sent to carol's server, alice unable
to follow her anew (404, as Mastodon), and carol's
notifications out of alice's lists (v1 and v2); then carol's Follow, Like and Create are
dropped at the inbox (202, nothing stored), one stored before the suspension is rejected
when processed, and none changes anything, while her Undo still goes through (she may
withdraw). Lifting the suspension brings the notifications back and lets her activities
in again; a suspension made by carol's own server is not ours and refuses nothing here,
but our moderators suspending her then makes it ours (her server cannot lift it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from server.db import Database
from server.models import (
    Account,
    Favourite,
    Follow,
    FollowRequest,
    InboxItem,
    InboxOutcome,
    Status,
    User,
)
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import make_token
from tests.federation.inbox.conftest import (
    ALICE,
    PUBLIC,
    Api,
    FakeActor,
    Fediverse,
    alice_asks_to_follow,
    deliver,
    http,
    item_for,
    process,
    receive,
)

REFUSED = "the actor is suspended by this server's moderators"


@pytest.fixture
async def moderator_api(inbox_app: Starlette, db: Database,
                        settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with db.session() as session:
        root = await create_user(session, settings, username="moira", email="moira@example.com",
                                 password="the moderator's password", admin=True)
    token = await make_token(db, root, "read write admin:read admin:write")
    async with http(inbox_app, token=token) as client:
        yield client


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def befriend(inbox_app: Starlette, alice_app: Api, carol: FakeActor,
                   fediverse: Fediverse) -> int:
    """carol follows alice and alice follows carol (accepted); carol's account id."""
    assert await receive(inbox_app, carol, carol.activity("Follow", ALICE)) == InboxOutcome.PROCESSED
    carol_id, follow = await alice_asks_to_follow(inbox_app, alice_app, carol, fediverse)
    assert await receive(inbox_app, carol, carol.activity("Accept", follow)) == InboxOutcome.PROCESSED
    relationship = await alice_app.relationship(carol_id)
    assert relationship["following"] and relationship["followed_by"]
    return carol_id


async def test_a_suspended_remote_account_is_cut_off_and_refused(
        inbox_app: Starlette, app_db: Database, alice_app: Api, alice: User, artwork: Status,
        remote_carol: FakeActor, fediverse: Fediverse,
        moderator_api: httpx.AsyncClient) -> None:
    carol_id = await befriend(inbox_app, alice_app, remote_carol, fediverse)
    like = remote_carol.activity("Like", artwork.uri)
    assert await receive(inbox_app, remote_carol, like) == InboxOutcome.PROCESSED
    assert sorted(await alice_app.notifications()) == [
        ("favourite", "carol@remote.example"), ("follow", "carol@remote.example")]
    sent_before = len(fediverse.posted())
    # Stored before the suspension, processed after it.
    early = remote_carol.activity("Create", {
        "id": remote_carol.uri + "/statuses/1", "type": "Note",
        "attributedTo": remote_carol.uri, "to": [PUBLIC], "content": "<p>buy</p>",
        "published": "2026-11-28T12:00:00Z"})
    assert (await deliver(inbox_app, remote_carol, early)).status_code == 202

    suspended = await moderator_api.post(f"/api/v1/admin/accounts/{carol_id}/action",
                                         data={"type": "suspend", "text": "spam"})
    assert suspended.status_code == 200, suspended.text
    assert await count(app_db, Follow) == 0
    assert await count(app_db, FollowRequest) == 0
    me = await alice_app.account(alice.account.id)
    assert (me["followers_count"], me["following_count"]) == (0, 0)
    assert len(fediverse.posted()) == sent_before  # carol's server hears nothing
    async with http(inbox_app, token=alice_app.token) as client:  # nor can alice follow anew
        refollow = await client.post(f"/api/v1/accounts/{carol_id}/follow")
        assert refollow.status_code == 404 and refollow.json() == {"error": "Record not found"}
    assert len(fediverse.posted()) == sent_before
    assert await alice_app.notifications() == []
    grouped = await alice_app.get("/api/v2/notifications")
    assert grouped["notification_groups"] == []

    await process(inbox_app)
    item = await item_for(app_db, early["id"])
    assert item is not None and (item.outcome, item.note) == (InboxOutcome.REJECTED, REFUSED)
    # New deliveries are dropped at the door: answered 202, nothing stored.
    items = await count(app_db, InboxItem)
    for activity in (remote_carol.activity("Follow", ALICE),
                     remote_carol.activity("Like", artwork.uri, suffix="like-again"),
                     {**early, "id": early["id"] + "-again"}):
        assert (await deliver(inbox_app, remote_carol, activity)).status_code == 202
    await process(inbox_app)
    assert await count(app_db, InboxItem) == items
    assert await count(app_db, Follow) == 0
    assert await count(app_db, FollowRequest) == 0
    assert await count(app_db, Favourite) == 1  # the one from before, until she undoes it
    assert await count(app_db, Status, Status.account_id == carol_id) == 0

    # She may still withdraw what she did.
    undo = remote_carol.activity("Undo", like)
    assert await receive(inbox_app, remote_carol, undo) == InboxOutcome.PROCESSED
    assert await count(app_db, Favourite) == 0

    # Lifted: her notifications that remain are back, and her activities come in again.
    lifted = await moderator_api.post(f"/api/v1/admin/accounts/{carol_id}/unsuspend")
    assert lifted.status_code == 200, lifted.text
    again = remote_carol.activity("Follow", ALICE, suffix="follow-again")
    assert await receive(inbox_app, remote_carol, again) == InboxOutcome.PROCESSED
    assert await count(app_db, Follow) == 1
    assert ("follow", "carol@remote.example") in await alice_app.notifications()


async def test_a_suspension_by_the_accounts_own_server_is_not_ours(
        inbox_app: Starlette, app_db: Database, alice_app: Api, remote_carol: FakeActor) -> None:
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Follow", ALICE)) == InboxOutcome.PROCESSED
    async with app_db.session() as session:
        carol = await session.scalar(select(Account).where(Account.uri == remote_carol.uri))
        assert carol is not None
        carol.suspended_at, carol.suspension_origin = carol.updated_at, "remote"
        await session.commit()
    again = remote_carol.activity("Follow", ALICE, suffix="follow-2")
    assert await receive(inbox_app, remote_carol, again) == InboxOutcome.PROCESSED


async def test_our_suspension_of_an_account_its_server_suspended_is_ours(
        inbox_app: Starlette, app_db: Database, alice_app: Api, remote_carol: FakeActor,
        moderator_api: httpx.AsyncClient) -> None:
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Follow", ALICE)) == InboxOutcome.PROCESSED
    async with app_db.session() as session:
        carol = await session.scalar(select(Account).where(Account.uri == remote_carol.uri))
        assert carol is not None
        carol.suspended_at, carol.suspension_origin = carol.updated_at, "remote"
        await session.commit()
    suspended = await moderator_api.post(f"/api/v1/admin/accounts/{carol.id}/action",
                                         data={"type": "suspend"})
    assert suspended.status_code == 200, suspended.text
    assert await count(app_db, Follow) == 0
    async with app_db.session() as session:
        stored = await session.get(Account, carol.id)
        assert stored is not None and stored.suspension_origin == "local"
    # Its server lifting its own suspension (an Update of its actor without it) leaves
    # ours: the Update is dropped, and a refetch lifts only a "remote" suspension.
    items = await count(app_db, InboxItem)
    update = remote_carol.activity("Update", remote_carol.document())
    assert (await deliver(inbox_app, remote_carol, update)).status_code == 202
    await process(inbox_app)
    assert await count(app_db, InboxItem) == items
    async with app_db.session() as session:
        stored = await session.get(Account, carol.id)
        assert stored is not None and stored.suspended_at is not None


async def test_a_normal_user_cannot_suspend_a_remote_account(
        inbox_app: Starlette, app_db: Database, alice_app: Api, remote_carol: FakeActor) -> None:
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Follow", ALICE)) == InboxOutcome.PROCESSED
    async with app_db.session() as session:
        carol_id = await session.scalar(select(Account.id).where(Account.uri == remote_carol.uri))
    async with http(inbox_app, token=alice_app.token) as client:
        refused = await client.post(f"/api/v1/admin/accounts/{carol_id}/action",
                                    data={"type": "suspend"})
        assert refused.status_code == 403
    assert await count(app_db, Follow) == 1
    assert await count(app_db, Account, Account.suspended_at.is_not(None)) == 0
