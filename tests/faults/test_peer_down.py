"""Given alice's follower on another server (a real loopback HTTP server) that goes down —
first refusing connections, then answering 503 — while alice keeps posting, when it comes
back and the retries fall due, I expect it to receive every post exactly once, each
delivery row delivered, every job done and the server's domain healthy again.

The retry schedule (minutes to hours) is driven by moving the jobs' ``next_try_at`` into
the past, never by waiting; the jobs run through the app's own runner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from server.app import AppOptions, create_app
from server.db import Database
from server.ids import utcnow
from server.models import Account, Activity, Delivery, Follow, Instance, Job, JobState, User
from server.settings import Settings
from tests.faults.conftest import ACCEPT, REFUSE, Peer
from tests.federation.test_outbox import post, run_federation


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """Jobs run only when the test runs them; federation goes over real sockets."""
    application = create_app(settings, options=AppOptions(run_workers=False, run_reconciler=False))
    async with application.router.lifespan_context(application):
        yield application


async def follower_on(db: Database, peer: Peer, followed: User) -> Account:
    uri = f"{peer.base_url}/users/rita"
    async with db.session() as session:
        rita = Account(username="rita", username_key="rita", domain=peer.domain, uri=uri,
                       url=f"{peer.base_url}/@rita", inbox_url=f"{uri}/inbox",
                       followers_url=f"{uri}/followers")
        session.add(rita)
        await session.flush()
        session.add(Follow(account_id=rita.id, target_account_id=followed.account_id,
                           uri=f"{uri}#follow"))
        await session.commit()
        return rita


async def deliveries(db: Database) -> list[tuple[Delivery, Job]]:
    async with db.session() as session:
        found = []
        for delivery in await session.scalars(select(Delivery).order_by(Delivery.id)):
            job = await session.scalar(select(Job).where(Job.kind == "deliver",
                                                         Job.ref == str(delivery.id)))
            assert job is not None
            found.append((delivery, job))
        return found


async def make_retries_due(db: Database) -> int:
    async with db.session() as session:
        moved = await session.execute(update(Job).where(
            Job.kind == "deliver", Job.state == JobState.QUEUED).values(
            next_try_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
        return int(moved.rowcount)  # type: ignore[attr-defined]


async def test_a_peer_down_for_a_while_then_back_receives_every_delivery_once(
    app: Starlette, db: Database, settings: Settings, alice: User, peer: Peer,
) -> None:
    await follower_on(db, peer, alice)

    # Down: nothing listens on the peer's port.
    peer.down()
    for text in ("one", "two"):
        await post(db, settings, alice, text)
    await run_federation(app)
    pending = await deliveries(db)
    assert len(pending) == 2
    for delivery, job in pending:
        assert delivery.delivered_at is None and job.state == JobState.QUEUED
        assert job.attempts == 1 and job.next_try_at > utcnow()  # later, not now
        assert "Connect" in (job.last_error or ""), job.last_error
    assert await run_federation(app) == 0  # nothing due yet: no busy retrying

    # Up but failing: 503 for every attempt, one more post made meanwhile.
    peer.mode = REFUSE
    peer.up()
    await post(db, settings, alice, "three")
    await run_federation(app)
    assert await make_retries_due(db) == 3
    await run_federation(app)
    assert peer.refused >= 3 and peer.accepted == []
    async with db.session() as session:
        health = await session.get(Instance, peer.domain)
    assert health is not None and health.failures >= 3 and health.last_success_at is None
    for delivery, job in await deliveries(db):
        assert delivery.delivered_at is None and job.state == JobState.QUEUED
        assert delivery.status_code == 503

    # Back: the retries, once due, deliver everything; a new post goes at once.
    peer.mode = ACCEPT
    assert await make_retries_due(db) == 3
    await run_federation(app)
    await post(db, settings, alice, "four")
    await run_federation(app)

    async with db.session() as session:
        created = list(await session.scalars(select(Activity.uri).where(Activity.type == "Create")))
        health = await session.get(Instance, peer.domain)
    assert len(created) == 4
    assert peer.accepted_ids() == {uri: 1 for uri in created}  # each post once
    assert {a["type"] for a in peer.accepted} == {"Create"}
    for delivery, job in await deliveries(db):
        assert delivery.delivered_at is not None and delivery.status_code == 202
        assert job.state == JobState.DONE
    assert health is not None and health.failures == 0 and health.last_success_at is not None
    # Nothing left to retry: running again sends nothing more.
    assert await make_retries_due(db) == 0
    assert await run_federation(app) == 0
    assert sum(peer.accepted_ids().values()) == 4
