"""Follows, requests and their counters, driven through the service directly."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.models import Account, Follow, FollowRequest, Notification, User
from server.services import follows
from server.services.accounts import instance_actor
from server.services.errors import NotFound, ServiceError
from server.settings import Settings


async def account(db: Database, user: User) -> Account:
    async with db.session() as session:
        found = await session.get(Account, user.account_id)
        assert found is not None
        return found


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def set_locked(db: Database, user: User, locked: bool = True) -> None:
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == user.account_id).values(locked=locked))
        await session.commit()


async def test_a_follow_moves_both_counters_once(db: Database, alice: User, bob: User) -> None:
    source = await account(db, alice)
    for _ in range(3):
        async with db.session() as session:
            await follows.follow(session, source, bob.account_id)
    assert (await account(db, bob)).followers_count == 1
    assert (await account(db, alice)).following_count == 1
    for _ in range(3):
        async with db.session() as session:
            await follows.unfollow(session, source, bob.account_id)
    assert (await account(db, bob)).followers_count == 0
    assert (await account(db, alice)).following_count == 0
    assert await count(db, Follow) == 0 and await count(db, Notification) == 0


async def test_concurrent_follows_count_once(db: Database, alice: User, bob: User) -> None:
    source = await account(db, alice)

    async def follow_once() -> None:
        async with db.session() as session:
            await follows.follow(session, source, bob.account_id)

    await asyncio.gather(*(follow_once() for _ in range(8)))
    assert await count(db, Follow) == 1
    assert (await account(db, bob)).followers_count == 1
    assert (await account(db, alice)).following_count == 1
    assert await count(db, Notification) == 1


async def test_a_counter_never_goes_below_zero(db: Database, alice: User, bob: User) -> None:
    source = await account(db, alice)
    async with db.session() as session:
        await follows.follow(session, source, bob.account_id)
    async with db.session() as session:  # a counter that drifted (e.g. an old import)
        await session.execute(update(Account).where(Account.id == bob.account_id).values(followers_count=0))
        await session.commit()
    async with db.session() as session:
        await follows.unfollow(session, source, bob.account_id)
    assert (await account(db, bob)).followers_count == 0


async def test_a_request_is_kept_with_its_options_until_answered(
    db: Database, alice: User, bob: User
) -> None:
    await set_locked(db, bob)
    source = await account(db, alice)
    async with db.session() as session:
        await follows.follow(session, source, bob.account_id, reblogs=False, notify=True)
    async with db.session() as session:
        assert await follows.count_follow_requests(session, bob.account_id) == 1
        await follows.authorize_follow_request(session, await account(db, bob), alice.account_id)
    async with db.session() as session:
        follow = await session.scalar(select(Follow))
        assert follow is not None and (follow.show_reblogs, follow.notify) == (False, True)
        with pytest.raises(NotFound):
            await follows.authorize_follow_request(session, await account(db, bob), alice.account_id)
        with pytest.raises(NotFound):
            await follows.reject_follow_request(session, await account(db, bob), alice.account_id)
    assert (await account(db, bob)).followers_count == 1


async def test_unlocking_accepts_every_pending_request(
    db: Database, alice: User, bob: User, carol: User
) -> None:
    await set_locked(db, carol)
    for user in (alice, bob):
        async with db.session() as session:
            await follows.follow(session, await account(db, user), carol.account_id)
    async with db.session() as session:
        assert await follows.authorize_all_follow_requests(session, carol.account_id) == 2
        await session.commit()
    assert (await account(db, carol)).followers_count == 2
    assert await count(db, FollowRequest) == 0 and await count(db, Notification) == 0


async def test_the_instance_actor_and_oneself_cannot_be_followed(
    db: Database, settings: Settings, alice: User
) -> None:
    async with db.session() as session:
        actor = await instance_actor(session, settings)
    source = await account(db, alice)
    async with db.session() as session:
        with pytest.raises(NotFound):
            await follows.follow(session, source, actor.id)
        with pytest.raises(ServiceError) as yourself:
            await follows.follow(session, source, source.id)
        assert yourself.value.status_code == 403
    assert await count(db, Follow) == 0 and await count(db, FollowRequest) == 0
