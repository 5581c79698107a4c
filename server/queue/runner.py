"""Claiming and running job rows; the part of the queue that does not know dramatiq.

A claim is one conditional UPDATE (due, and unchanged since we read it), so two workers
never run the same attempt. A handler's session is committed in the same transaction
that marks its job done, and only if the claim still holds: an attempt whose worker
stalled past its claim, and was taken over, commits nothing.

A claim holds until ``locked_until``. For most kinds that is the whole time limit. A kind
with long attempts (protection: up to half an hour) declares a short ``lease`` instead,
and the runner renews it every lease/3 from a heartbeat task while the handler runs, so
the claim of a worker that was killed (SIGKILL, a lost machine) runs out within one lease
and another worker redoes the job, instead of waiting for the whole time limit. The
heartbeat, not progress reports, carries the lease: a long step that reports nothing
(loading a model) keeps its claim, and progress stays a best-effort display.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Update, and_, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from server.db import SQLITE_BUSY_TIMEOUT_MS, Database
from server.ids import utcnow
from server.models import Job, JobState
from server.queue.kinds import KINDS, JobKind
from server.settings import Settings

log = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 4000
# How long a polling worker waits when nothing is due (new rows from other processes).
POLL_INTERVAL = 1.0
PROGRESS_BUSY_TIMEOUT_MS = 200


@dataclass
class JobContext:
    """What a handler gets: its job (as claimed), a session, and the instance settings."""

    job: Job
    session: AsyncSession
    settings: Settings
    db: Database

    async def report_progress(self, progress: float) -> None:
        """Record progress (0..1) at once, in its own short transaction; best effort.

        Report progress before writing the job's effects: on SQLite a handler whose own
        session already holds the write lock would wait on itself, so there the update
        gives up after a short wait (and is logged) instead of failing the job.
        """
        progress = min(max(progress, 0.0), 1.0)
        statement = (
            update(Job)
            .where(Job.id == self.job.id, Job.attempts == self.job.attempts)
            .values(progress=progress)
        )
        try:
            await side_write(self.db, statement)
        except OperationalError as exc:
            log.info("job %s: progress %.2f not recorded: %s", self.job.id, progress, exc.orig)


async def side_write(db: Database, statement: Update) -> int:
    """Run one UPDATE in its own short transaction, beside a handler's session; its rowcount.

    On SQLite it waits for the write lock only briefly (the handler's own session may hold
    it) and raises OperationalError instead; the caller decides whether that matters.
    """
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            await conn.exec_driver_sql(f"PRAGMA busy_timeout={PROGRESS_BUSY_TIMEOUT_MS}")
        try:
            result = await conn.execute(statement)
            await conn.commit()
            return int(result.rowcount)
        finally:
            if db.is_sqlite:
                await conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(Job.state == JobState.QUEUED, Job.next_try_at <= now),
        and_(Job.state == JobState.RUNNING, Job.locked_until < now),
    )


class JobRunner:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        kinds: dict[str, JobKind] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.kinds = KINDS if kinds is None else kinds
        self.clock = clock
        # Set by the queue: tell the broker about a retry (job id, queue, delay).
        self.on_retry: Callable[[int, str, timedelta], None] | None = None

    async def claim(self, job_id: int) -> tuple[Job, JobKind] | None:
        """Take job ``job_id`` if it is due and of a kind this process runs."""
        now = self.clock()
        async with self.db.session() as session:
            job = await session.get(Job, job_id)
            if job is None:
                return None
            kind = self.kinds.get(job.kind)
            if kind is None:
                return None
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.attempts == job.attempts, _due(now))
                .values(
                    state=JobState.RUNNING,
                    attempts=Job.attempts + 1,
                    locked_until=now + kind.claim_duration,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return None
            await session.commit()
            await session.refresh(job)
            return job, kind

    async def run(self, job_id: int) -> str:
        """Run job ``job_id`` once if it is due; return what happened."""
        claimed = await self.claim(job_id)
        if claimed is None:
            return "skipped"
        return await self._execute(*claimed)

    async def renew_lease(self, job: Job, kind: JobKind) -> bool | None:
        """Hold the claim on this attempt for another lease from now.

        True: renewed; False: the claim is no longer ours (taken over, or the job finished);
        None: the database was busy (SQLite) or away, try again at the next beat.
        """
        statement = (
            update(Job)
            .where(Job.id == job.id, Job.attempts == job.attempts, Job.state == JobState.RUNNING)
            .values(locked_until=self.clock() + kind.claim_duration)
        )
        try:
            return await side_write(self.db, statement) == 1
        except (OperationalError, OSError) as exc:
            log.info("job %s: lease not renewed this time: %s", job.id, exc)
            return None

    async def _heartbeat(self, job: Job, kind: JobKind) -> None:
        interval = kind.claim_duration.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            if await self.renew_lease(job, kind) is False:
                log.warning("job %s (%s): claim lost while running; its effects will be "
                            "discarded", job.id, job.kind)
                return

    async def _run_handler(self, context: JobContext, kind: JobKind) -> None:
        """The handler under its time limit; a kind with a lease gets a heartbeat meanwhile."""
        handler = asyncio.wait_for(kind.handler(context), kind.time_limit.total_seconds())
        if kind.lease is None:
            await handler
            return
        heartbeat = asyncio.create_task(self._heartbeat(context.job, kind))
        try:
            await handler
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _execute(self, job: Job, kind: JobKind) -> str:
        try:
            async with self.db.session() as session:
                context = JobContext(job=job, session=session, settings=self.settings, db=self.db)
                await self._run_handler(context, kind)
                finished = await session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.state == JobState.RUNNING,
                           Job.attempts == job.attempts)
                    .values(state=JobState.DONE, progress=1.0, locked_until=None,
                            finished_at=self.clock(), last_error=None)
                    .execution_options(synchronize_session=False)
                )
                if finished.rowcount != 1:  # type: ignore[attr-defined]
                    # Our claim expired and another worker took the job over.
                    await session.rollback()
                    log.warning("job %s (%s): claim lost, effects discarded", job.id, job.kind)
                    return "lost"
                await session.commit()
                return "done"
        except Exception as exc:  # a handler's failure is recorded, never propagated
            return await self._record_failure(job, kind, exc)

    async def _record_failure(self, job: Job, kind: JobKind, exc: BaseException) -> str:
        now = self.clock()
        if isinstance(exc, TimeoutError):
            error = f"time limit of {kind.time_limit} exceeded"
        else:
            error = "".join(traceback.format_exception_only(exc)).strip()
        log.warning("job %s (%s) attempt %s failed: %s", job.id, job.kind, job.attempts, error)
        give_up = job.attempts >= kind.max_attempts
        delay = kind.retry_delay(job.attempts)
        values: dict[str, object] = {
            "last_error": error[:MAX_ERROR_LENGTH],
            "locked_until": None,
            "updated_at": now,
        }
        if give_up:
            values.update(state=JobState.FAILED, finished_at=now)
        else:
            values.update(state=JobState.QUEUED, next_try_at=now + delay)
        mark = (
            update(Job)
            .where(Job.id == job.id, Job.state == JobState.RUNNING, Job.attempts == job.attempts)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as session:
            if (await session.execute(mark)).rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return "lost"
            if give_up and kind.on_give_up is not None:
                try:
                    await kind.on_give_up(session, job, exc)
                except Exception:
                    log.exception("job %s (%s): recording the failure failed", job.id, job.kind)
                    await session.rollback()
                    if (await session.execute(mark)).rowcount != 1:  # type: ignore[attr-defined]
                        await session.rollback()
                        return "lost"
            await session.commit()
        if give_up:
            return "failed"
        if self.on_retry is not None:
            self.on_retry(job.id, job.queue, delay)
        return "retry"

    async def due_jobs(self, queues: Sequence[str], limit: int = 1000) -> list[tuple[int, str]]:
        """Jobs of known kinds in ``queues`` that are due now, oldest first."""
        now = self.clock()
        async with self.db.session() as session:
            rows = await session.execute(
                select(Job.id, Job.queue)
                .where(Job.queue.in_(queues), Job.kind.in_(list(self.kinds)), _due(now))
                .order_by(Job.next_try_at, Job.id)
                .limit(limit)
            )
            return [(row.id, row.queue) for row in rows]

    async def next_due_at(self, queues: Sequence[str]) -> datetime | None:
        """When the earliest not-yet-due job in ``queues`` becomes due (retry or lease end)."""
        now = self.clock()
        async with self.db.session() as session:
            queued = await session.scalar(
                select(Job.next_try_at)
                .where(Job.queue.in_(queues), Job.state == JobState.QUEUED,
                       Job.next_try_at > now)
                .order_by(Job.next_try_at).limit(1)
            )
            running = await session.scalar(
                select(Job.locked_until)
                .where(Job.queue.in_(queues), Job.state == JobState.RUNNING,
                       Job.locked_until >= now)
                .order_by(Job.locked_until).limit(1)
            )
        times = [t for t in (queued, running) if t is not None]
        return min(times) if times else None

    async def run_due(self, queues: Sequence[str]) -> int:
        """Run every due job in ``queues`` until none is due; return how many ran.

        The synchronous drain: what a polling worker does in a loop, and what tests call.
        """
        ran = 0
        while True:
            due = await self.due_jobs(queues, limit=50)
            if not due:
                return ran
            progressed = False
            for job_id, _queue in due:
                if await self.run(job_id) != "skipped":
                    ran += 1
                    progressed = True
            if not progressed:
                return ran

    async def poll(self, queues: Sequence[str], stop: asyncio.Event) -> None:
        """Run due jobs until ``stop`` is set: the worker loop when there is no broker."""
        while not stop.is_set():
            try:
                await self.run_due(queues)
                wait = POLL_INTERVAL
                next_at = await self.next_due_at(queues)
                if next_at is not None:
                    wait = min(wait, max((next_at - self.clock()).total_seconds(), 0.05))
            except Exception:  # the database may be briefly unavailable; keep going
                log.exception("job poll failed")
                wait = POLL_INTERVAL * 5
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass
