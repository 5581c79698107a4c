"""Given jobs whose messages were in Redis when Redis was killed (no persistence: every
message lost), and a Redis restarted empty, when a worker starts, I expect the database
rows to bring the queue back (its reconciler re-sends every due job) and each job to run
exactly once; given a worker running through a Redis restart, I expect it to consume the
messages sent once Redis is back, and the jobs enqueued while Redis was down (their
messages could not be sent) to be re-sent by the reconciler's next pass.

Redis is a throwaway ``redis-server`` of the test's own (conftest), never the suite's.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from server.db import Database
from server.models import Job, JobState
from server.queue.broker import JobQueue, make_broker
from server.queue.jobs import enqueue
from server.queue.kinds import KINDS
from server.queue.runner import JobRunner
from server.settings import Settings
from tests.faults.conftest import ThrowawayRedis
from tests.server.queue.conftest import effects_table
from tests.server.queue.kinds_for_tests import effects
from tests.server.queue.test_crash_recovery import start_worker, wait_for

__all__ = ["effects_table"]  # the fixture, shared with the queue tests

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_settings(settings: Settings, throwaway_redis: ThrowawayRedis) -> Settings:
    return settings.with_changes(broker_url=throwaway_redis.url)


@pytest.fixture
async def sender(redis_settings: Settings) -> AsyncIterator[tuple[Database, JobQueue]]:
    """A web process's side: a database whose committed jobs are sent to the broker."""
    db = Database.from_settings(redis_settings)
    queue = JobQueue(JobRunner(db, redis_settings), make_broker(redis_settings))
    try:
        yield db, queue
    finally:
        queue.close()
        await db.dispose()


async def enqueue_records(db: Database, refs: Sequence[str]) -> list[int]:
    async with db.session() as session:
        jobs = [await enqueue(session, KINDS["test.record"], ref) for ref in refs]
        await session.commit()
    return [job.id for job in jobs]


async def done(db: Database, ids: Sequence[int]) -> bool:
    async with db.session() as session:
        states = list(await session.scalars(select(Job.state).where(Job.id.in_(ids))))
    return len(states) == len(ids) and all(state == JobState.DONE for state in states)


def queued_messages(redis: ThrowawayRedis) -> int:
    import redis as redis_client

    client = redis_client.Redis.from_url(redis.url)
    try:
        return sum(int(client.llen(key)) for key in client.keys("easel:*")
                   if client.type(key) == b"list")
    finally:
        client.close()


async def test_the_database_rows_bring_the_queue_back_after_redis_restarts(
    sender: tuple[Database, JobQueue], redis_settings: Settings, throwaway_redis: ThrowawayRedis,
    effects_table: None, tmp_path: Path,
) -> None:
    db, queue = sender
    lost = [f"lost-{n}" for n in range(5)]
    lost_ids = await enqueue_records(db, lost)
    assert queued_messages(throwaway_redis) == len(lost)  # sent, not yet consumed

    throwaway_redis.kill()  # every message gone with it
    throwaway_redis.start()
    assert queued_messages(throwaway_redis) == 0

    worker = start_worker(redis_settings, tmp_path, "worker")
    log = tmp_path / "worker.log"
    try:
        await wait_for(lambda: done(db, lost_ids), "the lost jobs to run", worker, log)

        # Redis restarts under the running worker: messages sent once it is back are
        # consumed (the worker reconnects), and jobs enqueued while it was down — their
        # messages failed to send — are found by the reconciler's next pass (run here, as
        # the worker's would after its interval).
        throwaway_redis.kill()
        unsent = [f"unsent-{n}" for n in range(3)]
        unsent_ids = await enqueue_records(db, unsent)  # the send fails: logged, row kept
        throwaway_redis.start()
        after = [f"after-{n}" for n in range(3)]
        after_ids = await enqueue_records(db, after)
        await wait_for(lambda: done(db, after_ids), "the jobs sent after the restart", worker,
                       log, timeout=60)
        await queue.reconcile(["default"])
        await wait_for(lambda: done(db, unsent_ids), "the unsent jobs to be re-sent", worker, log)
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)
    assert worker.returncode == 0, log.read_text()
    for ref in [*lost, *unsent, *after]:
        assert await effects(db, ref) == [1], ref  # each once
