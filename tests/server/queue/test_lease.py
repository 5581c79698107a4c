"""Leases: a long job's claim holds for a short lease, renewed by the runner's heartbeat,
so a killed worker's job is due again after one lease instead of its whole time limit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from server.db import Database
from server.models import Job, JobState
from server.queue.jobs import enqueue
from server.queue.kinds import KINDS
from server.queue.runner import JobRunner
from server.settings import Settings
from tests.server.queue.kinds_for_tests import effects

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    """The runner's injectable clock, moved by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def add_job(db: Database, kind: str, ref: str, clock: Callable[[], datetime]) -> Job:
    async with db.session() as session:
        job = await enqueue(session, KINDS[kind], ref)
        job.next_try_at = clock()
        await session.commit()
        return job


async def reload(db: Database, job: Job) -> Job:
    async with db.session() as session:
        found = await session.get(Job, job.id)
        assert found is not None
        return found


async def test_a_claim_holds_for_the_lease_not_the_time_limit(
        db: Database, settings: Settings, effects_table: None) -> None:
    clock = Clock()
    runner = JobRunner(db, settings, clock=clock)
    kind = KINDS["test.leased"]
    assert kind.time_limit == timedelta(minutes=30) and kind.claim_duration == timedelta(minutes=1)
    job = await add_job(db, "test.leased", "leased", clock)
    claimed = await runner.claim(job.id)
    assert claimed is not None
    assert (await reload(db, job)).locked_until == START + timedelta(minutes=1)


async def test_kinds_without_a_lease_hold_their_claim_for_the_time_limit(
        db: Database, settings: Settings, effects_table: None) -> None:
    clock = Clock()
    runner = JobRunner(db, settings, clock=clock)
    assert KINDS["test.record"].claim_duration == KINDS["test.record"].time_limit
    job = await add_job(db, "test.record", "plain", clock)
    assert await runner.claim(job.id) is not None
    assert (await reload(db, job)).locked_until == START + KINDS["test.record"].time_limit


async def test_renewing_extends_the_claim_from_now_while_it_is_ours(
        db: Database, settings: Settings, effects_table: None) -> None:
    clock = Clock()
    runner = JobRunner(db, settings, clock=clock)
    job = await add_job(db, "test.leased", "renewed", clock)
    claimed = await runner.claim(job.id)
    assert claimed is not None
    attempt, kind = claimed
    clock.advance(seconds=40)
    assert await runner.renew_lease(attempt, kind) is True
    assert (await reload(db, job)).locked_until == START + timedelta(seconds=100)

    clock.advance(seconds=90)  # the lease ran out: another worker takes the job over
    other = JobRunner(db, settings, clock=clock)
    assert await other.claim(job.id) is not None
    assert await runner.renew_lease(attempt, kind) is False  # no longer ours


async def test_an_expired_lease_makes_the_job_due_again_and_the_old_attempt_commits_nothing(
        db: Database, settings: Settings, effects_table: None) -> None:
    clock = Clock()
    first = JobRunner(db, settings, clock=clock)
    job = await add_job(db, "test.leased", "expired", clock)
    claimed = await first.claim(job.id)
    assert claimed is not None  # ... and its worker is killed here: no heartbeat any more

    clock.advance(seconds=59)
    second = JobRunner(db, settings, clock=clock)
    assert await second.due_jobs(["default"]) == []
    assert await second.next_due_at(["default"]) == START + timedelta(minutes=1)
    assert await second.claim(job.id) is None  # still held: within its lease

    clock.advance(seconds=2)  # 61 s: far inside the 30-minute time limit, past the lease
    assert await second.due_jobs(["default"]) == [(job.id, "default")]
    assert await second.run(job.id) == "done"
    done = await reload(db, job)
    assert (done.state, done.attempts) == (JobState.DONE, 2)
    # The first worker's attempt, were it still alive, would commit nothing.
    assert await first._execute(*claimed) == "lost"
    assert await effects(db, "expired") == [2]


async def test_the_heartbeat_renews_the_lease_while_the_handler_runs(
        db: Database, settings: Settings, effects_table: None) -> None:
    """A handler that reports no progress for several leases keeps its claim (real time:
    the lease is 0.3 s; the handler waits until it has seen two renewals)."""
    runner = JobRunner(db, settings)
    async with db.session() as session:
        job = await enqueue(session, KINDS["test.heartbeat"], "beat")
        await session.commit()
    assert await runner.run(job.id) == "done"
    done = await reload(db, job)
    assert (done.state, done.attempts, done.locked_until) == (JobState.DONE, 1, None)
    assert await effects(db, "beat") == [1]


async def test_a_kind_records_its_final_failure_in_the_same_transaction(
        db: Database, settings: Settings, effects_table: None) -> None:
    runner = JobRunner(db, settings)
    async with db.session() as session:
        job = await enqueue(session, KINDS["test.gives_up"], "broken")
        await session.commit()
    assert await runner.run(job.id) == "retry"
    assert await effects(db, "gave up: broken") == []  # not after a retried attempt
    assert await runner.run(job.id) == "failed"
    failed = await reload(db, job)
    assert (failed.state, failed.attempts) == (JobState.FAILED, 2)
    assert await effects(db, "gave up: broken") == [2]
    assert await effects(db, "broken") == []  # the failed attempts' own effects: none
