"""Jobs travel through dramatiq: the in-process broker by default, Redis when configured."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from starlette.applications import Starlette

from server.db import Database
from server.ids import utcnow
from server.models import Job, JobState
from server.queue.broker import JobQueue
from server.queue.jobs import PENDING_JOBS_KEY, enqueue
from server.queue.kinds import KINDS, LIGHT_QUEUES
from server.state import EaselState
from server.streaming.bus import pass_jobs
from tests.server.queue.kinds_for_tests import effects


@pytest.fixture
async def state(app: Starlette, effects_table: None) -> AsyncIterator[EaselState]:
    """The app's state with dramatiq workers consuming the light queues."""
    easel: EaselState = app.state.easel
    started_here = easel.queue.worker is None
    if started_here:  # a real broker: the web process runs no workers, so start some
        easel.queue.start_worker(LIGHT_QUEUES, threads=2)
    yield easel
    if started_here:
        await easel.queue.stop_worker()


async def settled(state: EaselState, job_id: int, timeout: float = 20.0) -> Job:
    """The job once it is done or failed: drain the in-process broker, or poll with a deadline."""
    if state.queue.in_process:
        await state.queue.drain(LIGHT_QUEUES)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with state.db.session() as session:
            job = await session.get(Job, job_id)
        assert job is not None
        if job.state in (JobState.DONE, JobState.FAILED):
            return job
        assert asyncio.get_running_loop().time() < deadline, f"job still {job.state}"
        await asyncio.sleep(0.05)


async def test_a_committed_job_is_sent_to_a_worker_and_runs(state: EaselState) -> None:
    async with state.db.session() as session:
        job = await enqueue(session, KINDS["test.record"], "through-the-broker")
        await session.commit()
    done = await settled(state, job.id)
    assert done.state == JobState.DONE
    assert await effects(state.db, "through-the-broker") == [1]


async def test_retries_go_back_through_the_broker(state: EaselState) -> None:
    async with state.db.session() as session:
        job = await enqueue(session, KINDS["test.flaky"], "2:broker")
        await session.commit()
    done = await settled(state, job.id)
    assert (done.state, done.attempts) == (JobState.DONE, 3)
    assert await effects(state.db, "2:broker") == [3]


async def test_the_reconciler_resends_a_job_whose_message_was_lost(state: EaselState) -> None:
    async with state.db.session() as session:
        job = await enqueue(session, KINDS["test.record"], "lost-message")
        session.info.pop(PENDING_JOBS_KEY)  # as if the process died before sending
        await session.commit()
    async with state.db.session() as session:
        waiting = await session.get(Job, job.id)
    assert waiting is not None and waiting.state == JobState.QUEUED
    await state.queue.reconcile(LIGHT_QUEUES)
    assert (await settled(state, job.id)).state == JobState.DONE
    assert await effects(state.db, "lost-message") == [1]


async def test_the_reconciler_gives_up_a_job_whose_worker_died_on_its_last_attempt(
        state: EaselState) -> None:
    """Its worker was killed during attempt 2 of 2 (its claim ran out with nothing
    recorded): the reconciler sends it, and the worker that gets it gives it up."""
    async with state.db.session() as session:
        job = await enqueue(session, KINDS["test.dies"], "died-twice")
        session.info.pop(PENDING_JOBS_KEY)
        job.state, job.attempts, job.claims = JobState.RUNNING, 2, 2
        job.locked_until = utcnow() - timedelta(seconds=1)
        await session.commit()
    await state.queue.reconcile(LIGHT_QUEUES)
    failed = await settled(state, job.id)
    assert (failed.state, failed.attempts) == (JobState.FAILED, 2)
    assert await effects(state.db, "died-twice") == []  # not run a third time
    assert await effects(state.db, "gave up: its worker stopped during the last attempt "
                                   "(killed or crashed)") == [2]
    assert await state.runner.due_jobs(LIGHT_QUEUES) == []


async def test_a_duplicate_message_runs_the_job_once(state: EaselState) -> None:
    async with state.db.session() as session:
        job = await enqueue(session, KINDS["test.record"], "duplicate")
        await session.commit()
    queue: JobQueue = state.queue
    queue.dispatch([(job.id, job.queue)] * 3)
    await settled(state, job.id)
    if queue.in_process:
        await queue.drain(LIGHT_QUEUES)
    assert await effects(state.db, "duplicate") == [1]


async def test_a_job_the_embedded_protect_child_commits_runs_in_the_web_process_now(
        state: EaselState) -> None:
    # The child polls the database and runs no queue of its own: the light jobs it commits
    # (a published status's federate …) are noted to the web process over the stream
    # sockets, not left for a reconcile up to a minute later.
    if not state.queue.in_process:
        pytest.skip("with a broker every process sends its jobs through it")
    child = Database.from_settings(state.settings)
    child.dispatch_jobs = functools.partial(pass_jobs, state.settings)
    try:
        async with child.session() as session:
            job = await enqueue(session, KINDS["test.record"], "from-the-child")
            await session.commit()
        deadline = asyncio.get_running_loop().time() + 10
        while await effects(state.db, "from-the-child") != [1]:
            assert asyncio.get_running_loop().time() < deadline, "the web process never ran it"
            await asyncio.sleep(0.05)
    finally:
        await child.dispose()
    async with state.db.session() as session:
        done = await session.get(Job, job.id)
    assert done is not None and done.state == JobState.DONE
