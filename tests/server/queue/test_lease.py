"""Leases: a long job's claim holds for a short lease, renewed by the runner's heartbeat,
so a killed worker's job is due again after one lease instead of its whole time limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy.exc import InterfaceError

from server.db import Database
from server.models import Job, JobState
from server.queue import runner as runner_module
from server.queue.jobs import enqueue
from server.queue.kinds import KINDS, JobKind
from server.queue.runner import JobRunner
from server.settings import Settings
from tests.server.queue.conftest import START, Clock, reload
from tests.server.queue.kinds_for_tests import STOPPED, effects


async def add_job(db: Database, kind: str, ref: str, clock: Callable[[], datetime]) -> Job:
    async with db.session() as session:
        job = await enqueue(session, KINDS[kind], ref)
        job.next_try_at = clock()
        await session.commit()
        return job


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


# ------------------------------------------------------- a worker that keeps dying

async def test_a_job_whose_worker_dies_on_its_last_attempt_is_given_up_not_redone(
        db: Database, settings: Settings, effects_table: None) -> None:
    """A killed worker never records its failure: without a limit, a job that kills its
    worker (out of memory on one upload) would be redone for ever."""
    clock = Clock()
    runner = JobRunner(db, settings, clock=clock)
    kind = KINDS["test.dies"]
    assert kind.max_attempts == 2
    job = await add_job(db, "test.dies", "dies", clock)
    assert await runner.claim(job.id) is not None  # attempt 1: its worker is killed
    clock.advance(seconds=61)
    assert await runner.claim(job.id) is not None  # attempt 2: killed as well
    second = await reload(db, job)
    assert second.attempts == 2 and "attempt 1: its worker stopped" in (second.last_error or "")
    assert await runner.due_jobs(["default"]) == []  # within its lease

    clock.advance(seconds=61)
    assert await runner.due_jobs(["default"]) == [(job.id, "default")]
    assert await runner.run(job.id) == "failed"
    failed = await reload(db, job)
    assert (failed.state, failed.attempts, failed.locked_until) == (JobState.FAILED, 2, None)
    assert failed.finished_at is not None
    assert "worker stopped during the last attempt (killed or crashed)" in (failed.last_error or "")
    # Given up in the same transaction, as after a failed last attempt; never run again.
    assert await effects(db, "gave up: its worker stopped during the last attempt "
                             "(killed or crashed)") == [2]
    assert await effects(db, "dies") == []
    assert await runner.due_jobs(["default"]) == []
    assert await runner.run(job.id) == "skipped"
    assert await runner.next_due_at(["default"]) is None


async def test_a_claim_still_held_on_the_last_attempt_is_not_given_up(
        db: Database, settings: Settings, effects_table: None) -> None:
    clock = Clock()
    runner = JobRunner(db, settings, clock=clock)
    job = await add_job(db, "test.dies", "held", clock)
    assert await runner.claim(job.id) is not None
    clock.advance(seconds=61)
    claimed = await runner.claim(job.id)
    assert claimed is not None
    clock.advance(seconds=30)  # the last attempt's worker is alive, within its lease
    assert await runner.run(job.id) == "skipped"
    assert await runner._execute(*claimed) == "done"
    assert await effects(db, "held") == [2]


# ------------------------------------------------------------ the heartbeat's work

async def test_an_attempt_whose_claim_is_taken_over_is_stopped_at_once(
        db: Database, settings: Settings, effects_table: None) -> None:
    """The heartbeat finds the claim lost and cancels the handler (real time: the lease is
    0.3 s, the time limit a minute): two workers never run one job side by side."""
    runner = JobRunner(db, settings)
    async with db.session() as session:
        job = await enqueue(session, KINDS["test.stopped_when_taken_over"], "overtaken")
        await session.commit()
    assert await asyncio.wait_for(runner.run(job.id), timeout=20) == "lost"
    assert STOPPED[-1:] == ["overtaken"]
    still = await reload(db, job)
    assert (still.state, still.attempts, still.last_error) == (JobState.RUNNING, 2, None)


async def test_a_dropped_connection_while_renewing_is_retried_at_the_next_beat(
        db: Database, settings: Settings, effects_table: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL a dropped connection is an InterfaceError: the lease is renewed at the
    next beat, and the attempt is not failed for it."""
    real = runner_module.side_write
    calls: list[int] = []

    async def drops_first(db: Database, statement: object) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise InterfaceError("UPDATE jobs", {}, Exception("connection was closed"))
        return await real(db, statement)  # type: ignore[arg-type]

    monkeypatch.setattr(runner_module, "side_write", drops_first)
    runner = JobRunner(db, settings)
    async with db.session() as session:
        job = await enqueue(session, KINDS["test.heartbeat"], "dropped")
        await session.commit()
    assert await runner.run(job.id) == "done"  # the handler saw two renewals after it
    assert len(calls) >= 3
    assert await effects(db, "dropped") == [1]


async def test_whatever_the_heartbeat_raises_never_fails_the_attempt(
        db: Database, settings: Settings, effects_table: None) -> None:
    runner = JobRunner(db, settings)
    real = runner.renew_lease
    calls: list[int] = []

    async def breaks_once(job: Job, kind: JobKind) -> bool | None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in renewing")
        return await real(job, kind)

    runner.renew_lease = breaks_once  # type: ignore[method-assign]
    async with db.session() as session:
        job = await enqueue(session, KINDS["test.heartbeat"], "bug")
        await session.commit()
    assert await runner.run(job.id) == "done"
    assert len(calls) >= 3
    done = await reload(db, job)
    assert (done.state, done.last_error) == (JobState.DONE, None)
