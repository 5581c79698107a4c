"""Follows across servers, through the service: requests, answers, and what is recorded.

Given alice (local) and zoe (on far.example), I expect alice's follow of zoe to be a
request with a Follow recorded until zoe's Accept arrives, zoe's follow of alice to be
accepted (or requested, when alice is locked) with an Accept recorded, and every answer,
undo and severing to move the counters exactly once.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.models import Account, Activity, Follow, FollowRequest, Notification, User
from server.services import follows
from server.services.accounts import instance_actor
from server.settings import Settings

FOLLOW_URI = "https://far.example/follows/1"


@pytest.fixture
async def zoe(db: Database) -> Account:
    async with db.session() as session:
        account = Account(username="zoe", username_key="zoe", domain="far.example",
                          uri="https://far.example/users/zoe",
                          inbox_url="https://far.example/users/zoe/inbox")
        session.add(account)
        await session.commit()
        return account


async def get(db: Database, account_id: int) -> Account:
    async with db.session() as session:
        found = await session.get(Account, account_id)
        assert found is not None
        return found


async def activities(db: Database) -> list[tuple[str, str, dict[str, object]]]:
    async with db.session() as session:
        rows = await session.scalars(select(Activity).order_by(Activity.created_at, Activity.id))
        return [(a.type, a.object_uri, a.payload) for a in rows]


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_following_a_remote_account_asks_and_waits_for_its_accept(
    db: Database, alice: User, zoe: Account
) -> None:
    source = await get(db, alice.account_id)
    async with db.session() as session:
        await follows.follow(session, source, zoe.id)
        await follows.follow(session, source, zoe.id)  # asking again sends nothing more
    async with db.session() as session:
        request = await session.scalar(select(FollowRequest))
        assert request is not None and request.uri is not None
        assert request.uri.startswith(source.uri + "#follows/")
    recorded = await activities(db)
    assert [(t, o) for t, o, _ in recorded] == [("Follow", zoe.uri)]
    assert recorded[0][2]["target_id"] == zoe.id
    assert (await get(db, alice.account_id)).following_count == 0
    assert await count(db, Notification) == 0

    async with db.session() as session:
        assert await follows.accept_follow(session, source, zoe)
        assert not await follows.accept_follow(session, source, zoe)  # a repeated Accept
        await session.commit()
    async with db.session() as session:
        follow = await session.scalar(select(Follow))
        assert follow is not None and follow.uri == request.uri
    assert (await get(db, alice.account_id)).following_count == 1
    assert (await get(db, zoe.id)).followers_count == 1
    assert len(await activities(db)) == 1  # an inbound Accept records nothing

    async with db.session() as session:
        await follows.unfollow(session, source, zoe.id)
    undo = (await activities(db))[-1]
    assert undo[0] == "Undo" and undo[2]["follow_uri"] == request.uri
    assert undo[2]["object_type"] == "Follow"
    assert (await get(db, alice.account_id)).following_count == 0


async def test_a_rejected_request_or_follow_is_removed(
    db: Database, alice: User, zoe: Account
) -> None:
    source = await get(db, alice.account_id)
    async with db.session() as session:
        await follows.follow(session, source, zoe.id)
    async with db.session() as session:
        assert await follows.reject_follow(session, source, zoe)
        assert not await follows.reject_follow(session, source, zoe)
        await session.commit()
    assert await count(db, FollowRequest) == 0
    async with db.session() as session:
        await follows.follow(session, source, zoe.id)
    async with db.session() as session:
        await follows.accept_follow(session, source, zoe)
        await session.commit()
    async with db.session() as session:  # a Reject after the Accept ends the follow
        assert await follows.reject_follow(session, source, zoe)
        await session.commit()
    assert await count(db, Follow) == 0
    assert (await get(db, alice.account_id)).following_count == 0
    assert (await get(db, zoe.id)).followers_count == 0


async def test_a_remote_follow_of_an_open_account_is_accepted(
    db: Database, alice: User, zoe: Account
) -> None:
    target = await get(db, alice.account_id)
    async with db.session() as session:
        assert await follows.remote_follow(session, zoe, target, uri=FOLLOW_URI) == "followed"
        await session.commit()
    async with db.session() as session:
        again = await follows.remote_follow(session, zoe, target, uri=FOLLOW_URI + "b")
        assert again == "already"
        await session.commit()
    assert (await get(db, alice.account_id)).followers_count == 1
    assert (await get(db, zoe.id)).following_count == 1
    async with db.session() as session:
        notification = await session.scalar(select(Notification))
        assert notification is not None and notification.type == "follow"
        follow = await session.scalar(select(Follow))
        assert follow is not None and follow.uri == FOLLOW_URI + "b"
    accepts = await activities(db)
    assert [(t, p["follow_uri"], p["requester_id"]) for t, _, p in accepts] == [
        ("Accept", FOLLOW_URI, zoe.id), ("Accept", FOLLOW_URI + "b", zoe.id)]

    async with db.session() as session:
        assert await follows.remove_follow(session, zoe, target)
        assert not await follows.remove_follow(session, zoe, target)
        await session.commit()
    assert (await get(db, alice.account_id)).followers_count == 0
    assert await count(db, Notification) == 0


async def test_a_remote_follow_of_a_locked_account_waits_for_its_owner(
    db: Database, alice: User, zoe: Account
) -> None:
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == alice.account_id)
                              .values(locked=True))
        await session.commit()
    target = await get(db, alice.account_id)
    async with db.session() as session:
        assert await follows.remote_follow(session, zoe, target, uri=FOLLOW_URI) == "requested"
        await session.commit()
    assert await activities(db) == []
    async with db.session() as session:
        notification = await session.scalar(select(Notification))
        assert notification is not None and notification.type == "follow_request"
        await follows.authorize_follow_request(session, target, zoe.id)
    recorded = await activities(db)
    assert [(t, p["follow_uri"]) for t, _, p in recorded] == [("Accept", FOLLOW_URI)]
    assert (await get(db, alice.account_id)).followers_count == 1

    async with db.session() as session:
        await follows.remove_follow(session, zoe, target)
        await follows.remote_follow(session, zoe, target, uri=FOLLOW_URI + "2")
        await session.commit()
    async with db.session() as session:
        await follows.reject_follow_request(session, target, zoe.id)
    recorded = await activities(db)
    assert [(t, p["follow_uri"]) for t, _, p in recorded][-1] == ("Reject", FOLLOW_URI + "2")
    assert await count(db, FollowRequest) == 0 and await count(db, Follow) == 0


async def test_unlocking_accepts_remote_requests_with_an_accept_each(
    db: Database, settings: Settings, alice: User, zoe: Account
) -> None:
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == alice.account_id)
                              .values(locked=True))
        await session.commit()
    target = await get(db, alice.account_id)
    async with db.session() as session:
        await follows.remote_follow(session, zoe, target, uri=FOLLOW_URI)
        await session.commit()
    async with db.session() as session:
        assert await follows.authorize_all_follow_requests(session, alice.account_id) == 1
        await session.commit()
    assert [t for t, _, _ in await activities(db)] == ["Accept"]


async def test_the_instance_actor_cannot_be_followed_from_afar(
    db: Database, settings: Settings, zoe: Account
) -> None:
    async with db.session() as session:
        actor = await instance_actor(session, settings)
        assert await follows.remote_follow(session, zoe, actor, uri=FOLLOW_URI) == "rejected"
        await session.commit()
    assert await count(db, Follow) == 0 and await count(db, FollowRequest) == 0
    assert [t for t, _, _ in await activities(db)] == ["Reject"]


async def test_severing_removes_follows_both_ways(
    db: Database, alice: User, zoe: Account
) -> None:
    source = await get(db, alice.account_id)
    async with db.session() as session:
        await follows.follow(session, source, zoe.id)
    async with db.session() as session:
        await follows.accept_follow(session, source, zoe)
        await follows.remote_follow(session, zoe, source, uri=FOLLOW_URI)
        await session.commit()
    before = len(await activities(db))
    async with db.session() as session:
        await follows.sever(session, zoe, source)
        await session.commit()
    assert await count(db, Follow) == 0
    for account_id in (alice.account_id, zoe.id):
        account = await get(db, account_id)
        assert (account.followers_count, account.following_count) == (0, 0)
    assert len(await activities(db)) == before  # nothing is sent for an inbound Block
