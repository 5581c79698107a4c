"""Job kinds that exist only in tests, to exercise the queue machinery itself.

Their effect is a row in ``test_effects``, a scratch table the tests create; it is written
in the job's own session, so it commits exactly when the job is marked done.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import Database
from server.models import Job
from server.queue.kinds import job_kind
from server.queue.runner import JobContext

CREATE_EFFECTS = (
    "CREATE TABLE IF NOT EXISTS test_effects (ref VARCHAR(1024) NOT NULL, attempt INTEGER NOT NULL)"
)


async def create_effects_table(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(CREATE_EFFECTS))
        await conn.execute(text("DELETE FROM test_effects"))


async def effects(db: Database, ref: str) -> list[int]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT attempt FROM test_effects WHERE ref = :ref ORDER BY attempt"), {"ref": ref})
        return [row[0] for row in rows]


async def record_effect(context: JobContext) -> None:
    await context.session.execute(
        text("INSERT INTO test_effects (ref, attempt) VALUES (:ref, :attempt)"),
        {"ref": context.job.ref, "attempt": context.job.attempts},
    )


@job_kind("test.record")
async def record(context: JobContext) -> None:
    await record_effect(context)


@job_kind("test.flaky", retry_base=timedelta(0), max_attempts=5)
async def flaky(context: JobContext) -> None:
    """Reports progress, writes its effect, then fails on the first N attempts (ref "N:name")."""
    await context.report_progress(0.5)
    await record_effect(context)
    failures = int(context.job.ref.split(":", 1)[0])
    if context.job.attempts <= failures:
        raise RuntimeError(f"flaky failure on attempt {context.job.attempts}")


@job_kind("test.hangs", time_limit=timedelta(milliseconds=200), max_attempts=1)
async def hangs(context: JobContext) -> None:
    await record_effect(context)
    await asyncio.Event().wait()


@job_kind("test.taken_over")
async def taken_over(context: JobContext) -> None:
    """Another worker takes the job over (as when this one stalled past its time limit)
    while this attempt is still writing its effect."""
    async with context.db.engine.begin() as conn:
        await conn.execute(text("UPDATE jobs SET attempts = attempts + 1 WHERE id = :id"),
                           {"id": context.job.id})
    await record_effect(context)


@job_kind("test.crash", time_limit=timedelta(seconds=4))
async def crash(context: JobContext) -> None:
    """On its first attempt, says so in the file named by its ref and then hangs (until
    the test kills the worker). Later attempts complete."""
    await record_effect(context)
    await context.session.flush()
    if context.job.attempts == 1:
        Path(context.job.ref).write_text("started")
        await asyncio.Event().wait()


@job_kind("test.leased", time_limit=timedelta(minutes=30), lease=timedelta(minutes=1))
async def leased(context: JobContext) -> None:
    await record_effect(context)


async def _locked_until(context: JobContext) -> object:
    async with context.db.engine.connect() as conn:
        return (await conn.execute(text("SELECT locked_until FROM jobs WHERE id = :id"),
                                   {"id": context.job.id})).scalar()


@job_kind("test.heartbeat", time_limit=timedelta(seconds=30), lease=timedelta(milliseconds=300))
async def heartbeat(context: JobContext) -> None:
    """Runs until the runner's heartbeat has renewed its lease twice (without reporting any
    progress), then writes its effect; far longer than its lease."""
    seen = [await _locked_until(context)]
    deadline = asyncio.get_running_loop().time() + 20
    while len(seen) < 3:
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError("the lease was never renewed")
        await asyncio.sleep(0.02)
        current = await _locked_until(context)
        if current != seen[-1]:
            seen.append(current)
    await record_effect(context)


async def _record_give_up(session: AsyncSession, job: Job, exc: BaseException) -> None:
    await session.execute(
        text("INSERT INTO test_effects (ref, attempt) VALUES (:ref, :attempt)"),
        {"ref": f"gave up: {exc}", "attempt": job.attempts},
    )


@job_kind("test.gives_up", max_attempts=2, retry_base=timedelta(0), on_give_up=_record_give_up)
async def gives_up(context: JobContext) -> None:
    await record_effect(context)
    raise RuntimeError(context.job.ref)


@job_kind("test.dies", time_limit=timedelta(minutes=30), lease=timedelta(minutes=1),
          max_attempts=2, on_give_up=_record_give_up)
async def dies(context: JobContext) -> None:
    """Completes when run; the tests kill its "worker" by claiming without running it."""
    await record_effect(context)


# Refs of the attempts of test.stopped_when_taken_over that were cancelled.
STOPPED: list[str] = []


@job_kind("test.stopped_when_taken_over", time_limit=timedelta(seconds=60),
          lease=timedelta(milliseconds=300))
async def stopped_when_taken_over(context: JobContext) -> None:
    """Another worker takes the job over (as if this one had stalled past its lease), and
    this attempt goes on for far longer than a lease, until it is cancelled."""
    async with context.db.engine.begin() as conn:
        await conn.execute(text("UPDATE jobs SET attempts = attempts + 1, claims = claims + 1 "
                                "WHERE id = :id"), {"id": context.job.id})
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        STOPPED.append(context.job.ref)
        raise


@job_kind("test.times_out_itself", max_attempts=1)
async def times_out_itself(context: JobContext) -> None:
    """A handler whose own call timed out, well within its time limit."""
    raise TimeoutError("the remote server did not answer")
