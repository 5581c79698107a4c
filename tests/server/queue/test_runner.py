"""The job runner: claims, effects committed with completion, retries, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from server.db import Database
from server.models import Job, JobState
from server.queue.jobs import enqueue
from server.queue.kinds import KINDS
from server.queue.runner import JobRunner
from server.settings import Settings
from tests.server.queue.conftest import Clock, reload
from tests.server.queue.kinds_for_tests import effects


@pytest.fixture
async def runner(db: Database, settings: Settings, effects_table: None) -> AsyncIterator[JobRunner]:
    yield JobRunner(db, settings)


async def add_job(db: Database, kind: str, ref: str) -> Job:
    async with db.session() as session:
        job = await enqueue(session, KINDS[kind], ref)
        await session.commit()
        return job


async def test_a_job_runs_once_and_its_effect_commits_with_it(db: Database, runner: JobRunner) -> None:
    job = await add_job(db, "test.record", "r1")
    assert await runner.run_due(["default"]) == 1
    assert await runner.run_due(["default"]) == 0
    assert await runner.run(job.id) == "skipped"
    done = await reload(db, job)
    assert (done.state, done.attempts, done.progress) == (JobState.DONE, 1, 1.0)
    assert done.finished_at is not None
    assert await effects(db, "r1") == [1]


async def test_enqueuing_the_same_kind_and_ref_twice_is_one_job(db: Database, runner: JobRunner) -> None:
    first = await add_job(db, "test.record", "same")
    second = await add_job(db, "test.record", "same")
    assert first.id == second.id
    await runner.run_due(["default"])
    assert await effects(db, "same") == [1]
    # A finished job runs again only when asked to.
    async with db.session() as session:
        again = await enqueue(session, KINDS["test.record"], "same", again=True)
        await session.commit()
    assert again.state == JobState.QUEUED and again.attempts == 0
    await runner.run_due(["default"])
    assert await effects(db, "same") == [1, 1]


async def test_a_failed_attempt_leaves_no_effect_and_is_retried(db: Database, runner: JobRunner) -> None:
    job = await add_job(db, "test.flaky", "2:retry")
    assert await runner.run(job.id) == "retry"
    after_one = await reload(db, job)
    assert after_one.state == JobState.QUEUED and after_one.attempts == 1
    assert "flaky failure on attempt 1" in (after_one.last_error or "")
    assert after_one.progress == 0.5  # progress is recorded as the job goes
    assert await effects(db, "2:retry") == []
    await runner.run_due(["default"])
    done = await reload(db, job)
    assert (done.state, done.attempts, done.last_error) == (JobState.DONE, 3, None)
    assert await effects(db, "2:retry") == [3]


async def test_retries_back_off_exponentially(db: Database, runner: JobRunner) -> None:
    kind = KINDS["test.record"]
    assert [kind.retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert kind.retry_delay(40) == kind.retry_cap


async def test_a_job_that_keeps_failing_is_given_up(db: Database, runner: JobRunner) -> None:
    job = await add_job(db, "test.flaky", "99:never")
    await runner.run_due(["default"])
    failed = await reload(db, job)
    assert failed.state == JobState.FAILED and failed.attempts == 5
    assert failed.finished_at is not None
    assert await effects(db, "99:never") == []


async def test_a_job_over_its_time_limit_fails_and_commits_nothing(
    db: Database, runner: JobRunner
) -> None:
    job = await add_job(db, "test.hangs", "h")
    assert await runner.run(job.id) == "failed"
    failed = await reload(db, job)
    assert failed.state == JobState.FAILED
    assert "time limit" in (failed.last_error or "")
    assert await effects(db, "h") == []


async def test_a_timeout_the_handler_raises_is_its_own_failure_not_the_time_limit(
    db: Database, runner: JobRunner
) -> None:
    job = await add_job(db, "test.times_out_itself", "own-timeout")
    assert await runner.run(job.id) == "failed"
    error = (await reload(db, job)).last_error or ""
    assert "TimeoutError: the remote server did not answer" in error
    assert "time limit" not in error


async def test_an_attempt_from_before_a_requeue_commits_nothing_over_the_new_one(
    db: Database, settings: Settings, effects_table: None
) -> None:
    """Attempt 1 stalls past its lease; attempt 2 takes over and completes; the job is
    requeued (attempts from 0 again) and its new attempt 1 is running when the stalled one
    wakes up: it shares the new attempt's number, and still commits nothing."""
    clock = Clock()
    first, second = JobRunner(db, settings, clock=clock), JobRunner(db, settings, clock=clock)
    async with db.session() as session:
        job = await enqueue(session, KINDS["test.leased"], "requeued")
        await session.commit()
    stalled = await first.claim(job.id)
    assert stalled is not None and stalled[0].attempts == 1
    clock.advance(minutes=2)
    assert await second.run(job.id) == "done"
    async with db.session() as session:
        await enqueue(session, KINDS["test.leased"], "requeued", again=True)
        await session.commit()
    fresh = await second.claim(job.id)
    assert fresh is not None and fresh[0].attempts == 1  # the stalled attempt's number
    assert fresh[0].claims == 3 and stalled[0].claims == 1

    assert await first.renew_lease(*stalled) is False
    assert await first._execute(*stalled) == "lost"
    assert await effects(db, "requeued") == [2]
    running = await reload(db, job)
    assert (running.state, running.attempts, running.claims) == (JobState.RUNNING, 1, 3)
    assert await second._execute(*fresh) == "done"
    assert await effects(db, "requeued") == [1, 2]


async def test_an_attempt_whose_claim_was_taken_over_commits_nothing(
    db: Database, runner: JobRunner
) -> None:
    job = await add_job(db, "test.taken_over", "t")
    assert await runner.run(job.id) == "lost"
    assert await effects(db, "t") == []
    still = await reload(db, job)
    assert still.state == JobState.RUNNING  # the other worker owns it now


async def test_jobs_of_kinds_this_process_does_not_know_are_left_alone(
    db: Database, settings: Settings, effects_table: None
) -> None:
    job = await add_job(db, "test.record", "unknown-here")
    runner = JobRunner(db, settings, kinds={})
    assert await runner.run_due(["default"]) == 0
    assert await runner.run(job.id) == "skipped"
    assert (await reload(db, job)).state == JobState.QUEUED


async def test_a_rolled_back_enqueue_leaves_no_row_and_sends_nothing(db: Database) -> None:
    sent: list[tuple[int, str]] = []
    db.dispatch_jobs = sent.extend
    async with db.session() as session:
        await enqueue(session, KINDS["test.record"], "rolled-back")
        await session.rollback()
    async with db.session() as session:
        assert await session.scalar(select(Job).where(Job.ref == "rolled-back")) is None
        committed = await enqueue(session, KINDS["test.record"], "committed")
        assert sent == []  # not before the commit
        await session.commit()
    assert sent == [(committed.id, "default")]


async def test_due_jobs_of_a_higher_priority_kind_come_first(db: Database, settings: Settings,
                                                             effects_table: None) -> None:
    import dataclasses

    older = await add_job(db, "test.record", "older")
    newer = await add_job(db, "test.flaky", "0:newer")
    plain = JobRunner(db, settings)
    assert [job_id for job_id, _ in await plain.due_jobs(["default"])][:2] == [older.id, newer.id]
    urgent = {**KINDS, "test.flaky": dataclasses.replace(KINDS["test.flaky"], priority=1)}
    ordered = JobRunner(db, settings, kinds=urgent)
    assert [job_id for job_id, _ in await ordered.due_jobs(["default"])][:2] == [newer.id, older.id]
