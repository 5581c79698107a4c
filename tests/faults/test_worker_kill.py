"""Given a real worker process delivering alice's post to a follower's server that holds
the request open (it read the activity but has not answered), when the worker is killed
with SIGKILL there and another worker starts once the claims' leases have run out, I
expect the post delivered again — the same document — and accepted exactly once, its
delivery row delivered and every job done.

The kill mid-protection (a protect job held mid-perturbation) is
``tests/server/queue/test_crash_recovery.py``'s second test, with the same harness
(``tests/server/queue/worker_harness.py``); it is not repeated here.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from server.db import Database
from server.ids import utcnow
from server.models import Activity, Delivery, Job, JobState, User
from server.settings import Settings
from tests.faults.conftest import HOLD, Peer
from tests.faults.test_peer_down import follower_on
from tests.federation.test_outbox import post
from tests.server.queue.test_crash_recovery import start_worker, wait_for

pytestmark = pytest.mark.slow
# The peer is on loopback, which a worker refuses to deliver to unless told otherwise.
PEER_ENV = {"EASEL_ALLOW_PRIVATE_ADDRESSES": "1"}


async def federation_jobs(db: Database) -> list[Job]:
    async with db.session() as session:
        return list(await session.scalars(select(Job).where(Job.queue == "federation")
                                          .order_by(Job.id)))


async def test_a_delivery_survives_its_worker_being_killed_mid_request(
    db: Database, settings: Settings, tmp_path: Path, alice: User, peer: Peer,
) -> None:
    await follower_on(db, peer, alice)
    peer.mode = HOLD
    await post(db, settings, alice, "Held, then delivered")
    async with db.session() as session:
        activity = await session.scalar(select(Activity).where(Activity.type == "Create"))
    assert activity is not None

    first = start_worker(settings, tmp_path, "first", queue="federation", **PEER_ENV)
    try:
        await wait_for(lambda: asyncio.to_thread(peer.held.wait, 0.2), "the delivery to be sent",
                       first, tmp_path / "first.log")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert peer.accepted == [] and len(peer.bodies) == 1
    killed = await federation_jobs(db)
    assert [job.state for job in killed if job.kind == "deliver"] == [JobState.RUNNING]
    async with db.session() as session:
        delivery = await session.scalar(select(Delivery))
    assert delivery is not None and delivery.delivered_at is None

    # Stand in for the claims' leases running out (nothing renews them any more).
    async with db.session() as session:
        await session.execute(update(Job).where(Job.state == JobState.RUNNING).values(
            locked_until=utcnow() - timedelta(seconds=1)))
        await session.commit()

    second = start_worker(settings, tmp_path, "second", queue="federation", **PEER_ENV)
    try:
        async def all_done() -> bool:
            jobs = await federation_jobs(db)
            return bool(jobs) and all(job.state == JobState.DONE for job in jobs)

        await wait_for(all_done, "every federation job to be done", second, tmp_path / "second.log")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    assert second.returncode == 0, (tmp_path / "second.log").read_text()

    assert peer.accepted_ids() == {activity.uri: 1}  # accepted once
    assert len(peer.bodies) == 2 and peer.bodies[0] == peer.bodies[1]  # the same document
    async with db.session() as session:
        delivery = await session.scalar(select(Delivery))
    assert delivery is not None and delivery.delivered_at is not None
    assert delivery.status_code == 202
    jobs = await federation_jobs(db)
    assert {job.kind for job in jobs} == {"federate", "deliver"}
    assert all(job.state == JobState.DONE for job in jobs)
