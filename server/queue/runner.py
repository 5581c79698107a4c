"""Claiming and running job rows; the part of the queue that does not know dramatiq.

A claim is one conditional UPDATE (due, and unchanged since we read it), so two workers
never run the same attempt. A handler's session is committed in the same transaction
that marks its job done, and only if the claim still holds: an attempt whose worker
stalled past its claim, and was taken over, commits nothing.

An attempt is named by ``(attempts, claims)`` and everything it writes (done, failed,
progress, lease) is fenced on both. ``attempts`` counts this run of retries and is reset
when the job is requeued (``enqueue(again=True)``, ``easel admin jobs --retry``), so on
its own a stalled attempt from before a requeue would share its number with the fresh one
after it; ``claims`` counts every claim and is never reset. (``attempts`` stays the
per-run count, not a monotonic one, because kinds read it as such: a handler that decides
"this is the last attempt" from ``job.attempts``, the federation's bulk deliveries.)

A claim holds until ``locked_until``. For most kinds that is the whole time limit. A kind
with long attempts (protection: up to half an hour) declares a short ``lease`` instead,
and the runner renews it every lease/3 from a heartbeat task while the handler runs, so
the claim of a worker that was killed (SIGKILL, a lost machine) runs out within one lease
and another worker redoes the job, instead of waiting for the whole time limit. The
heartbeat, not progress reports, carries the lease: a long step that reports nothing
(loading a model) keeps its claim, and progress stays a best-effort display. A heartbeat
that finds the claim lost (another worker took the job over) stops the handler at once:
two workers never go on running one job side by side.

A worker that is killed never records its attempt's failure. So a job whose worker keeps
dying on it (a protection child killed for memory on one upload, restarted, killed again)
would be redone for ever; instead, a claim that expired on the job's last attempt is not
taken over: the job is given up (``on_give_up`` runs) in the transaction that finds it.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Update, and_, case, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
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


class TimeLimitExceeded(Exception):
    """The runner stopped an attempt at its kind's time limit. (A ``TimeoutError`` that a
    handler raises itself, from a network call say, is that handler's failure, not this.)"""

    def __init__(self, kind: JobKind) -> None:
        super().__init__(f"time limit of {kind.time_limit} exceeded")
        self.time_limit = kind.time_limit


class WorkerLost(Exception):
    """The job's last attempt never finished: its claim ran out with nothing recorded, so
    its worker was killed or crashed (or stalled past its claim). What ``on_give_up`` gets."""

    MESSAGE = "its worker stopped during the last attempt (killed or crashed)"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class ClaimLost(Exception):
    """Raised in the runner when the heartbeat found this attempt's claim taken over."""


def this_attempt(job: Job) -> ColumnElement[bool]:
    """The job's row while it is still at the attempt ``job`` was claimed as."""
    return and_(Job.id == job.id, Job.attempts == job.attempts, Job.claims == job.claims)


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
        statement = update(Job).where(this_attempt(self.job)).values(progress=progress)
        try:
            await side_write(self.db, statement)
        except (SQLAlchemyError, OSError) as exc:
            log.info("job %s: progress %.2f not recorded: %s", self.job.id, progress, exc)


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
        """Take job ``job_id`` if it is due and of a kind this process runs (None also when
        it was given up instead: its last attempt's worker died)."""
        taken = await self._take(job_id)
        return None if isinstance(taken, str) else taken

    async def run(self, job_id: int) -> str:
        """Run job ``job_id`` once if it is due; return what happened: "done", "retry",
        "failed", "lost" (our claim was taken over), or "skipped" (not due, not ours)."""
        taken = await self._take(job_id)
        if isinstance(taken, str):
            return taken
        return await self._execute(*taken)

    async def _take(self, job_id: int) -> tuple[Job, JobKind] | str:
        """Claim the job: the claimed attempt, or "skipped", or "failed" when the claim that
        ran out was on its last attempt (the job is given up, not run again)."""
        now = self.clock()
        async with self.db.session() as session:
            job = await session.get(Job, job_id)
            if job is None:
                return "skipped"
            kind = self.kinds.get(job.kind)
            if kind is None:
                return "skipped"
            unchanged = and_(this_attempt(job), Job.state == job.state, _due(now))
            abandoned = job.state == JobState.RUNNING  # due: its claim ran out, nothing recorded
            if abandoned and job.attempts >= kind.max_attempts:
                return await self._give_up_abandoned(session, job, kind, unchanged, now)
            values: dict[str, object] = {
                "state": JobState.RUNNING,
                "attempts": Job.attempts + 1,
                "claims": Job.claims + 1,
                "locked_until": now + kind.claim_duration,
                "updated_at": now,
            }
            if abandoned:
                values["last_error"] = f"attempt {job.attempts}: {WorkerLost.MESSAGE}"
            result = await session.execute(
                update(Job).where(unchanged).values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return "skipped"
            await session.commit()
            await session.refresh(job)
            return job, kind

    async def _give_up_abandoned(self, session: AsyncSession, job: Job, kind: JobKind,
                                 unchanged: ColumnElement[bool], now: datetime) -> str:
        """The job's last attempt ran out its claim without recording anything: mark it
        failed and run ``on_give_up``, in one transaction, instead of running it again."""
        mark = (
            update(Job).where(unchanged)
            .values(state=JobState.FAILED, locked_until=None, finished_at=now, updated_at=now,
                    last_error=f"attempt {job.attempts}: {WorkerLost.MESSAGE}")
            .execution_options(synchronize_session=False)
        )
        if not await self._mark(session, mark, job, kind, WorkerLost()):
            return "skipped"
        log.warning("job %s (%s): %s, attempt %s of %s; given up", job.id, job.kind,
                    WorkerLost.MESSAGE, job.attempts, kind.max_attempts)
        return "failed"

    async def _mark(self, session: AsyncSession, mark: Update, job: Job, kind: JobKind,
                    give_up: BaseException | None) -> bool:
        """Run ``mark`` (an UPDATE of the job, fenced on its attempt) and, when the job is
        given up (``give_up``: why), the kind's ``on_give_up``, and commit them together.
        False, with nothing written, when the attempt is no longer the job's."""
        if (await session.execute(mark)).rowcount != 1:  # type: ignore[attr-defined]
            await session.rollback()
            return False
        if give_up is not None and kind.on_give_up is not None:
            try:
                await kind.on_give_up(session, job, give_up)
            except Exception:
                log.exception("job %s (%s): recording the failure failed", job.id, job.kind)
                await session.rollback()
                if (await session.execute(mark)).rowcount != 1:  # type: ignore[attr-defined]
                    await session.rollback()
                    return False
        await session.commit()
        return True

    async def renew_lease(self, job: Job, kind: JobKind) -> bool | None:
        """Hold the claim on this attempt for another lease from now.

        True: renewed; False: the claim is no longer ours (taken over, or the job finished);
        None: the database was busy (SQLite) or away (a dropped connection: on PostgreSQL an
        InterfaceError or another DBAPIError), try again at the next beat.
        """
        statement = (
            update(Job)
            .where(this_attempt(job), Job.state == JobState.RUNNING)
            .values(locked_until=self.clock() + kind.claim_duration)
        )
        try:
            return await side_write(self.db, statement) == 1
        except (SQLAlchemyError, OSError) as exc:
            log.info("job %s: lease not renewed this time: %s", job.id, exc)
            return None

    async def _heartbeat(self, job: Job, kind: JobKind) -> None:
        """Renew the claim every lease/3; return once it is found lost. Never raises: a
        beat that fails is logged and the next one tries again (three per lease)."""
        interval = kind.claim_duration.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                renewed = await self.renew_lease(job, kind)
            except Exception:
                log.exception("job %s (%s): renewing the lease failed", job.id, job.kind)
                continue
            if renewed is False:
                log.warning("job %s (%s): claim lost while running (another worker took the "
                            "job over); this attempt is stopped and commits nothing",
                            job.id, job.kind)
                return

    async def _run_handler(self, context: JobContext, kind: JobKind) -> None:
        """The handler, as a task, until it ends, its time limit passes (TimeLimitExceeded)
        or, for a kind with a lease, the heartbeat beside it finds the claim lost
        (ClaimLost); in the last two cases the handler is cancelled. What the heartbeat
        itself raises never decides the attempt."""
        handler: asyncio.Future[None] = asyncio.ensure_future(kind.handler(context))
        tasks = {handler}
        heartbeat: asyncio.Future[None] | None = None
        if kind.lease is not None:
            heartbeat = asyncio.create_task(self._heartbeat(context.job, kind))
            tasks.add(heartbeat)
        try:
            done, _pending = await asyncio.wait(tasks, timeout=kind.time_limit.total_seconds(),
                                                return_when=asyncio.FIRST_COMPLETED)
            if handler in done:
                handler.result()  # the handler's own exception, if any
                return
            if heartbeat is not None and heartbeat in done:
                raise ClaimLost
            raise TimeLimitExceeded(kind)
        finally:
            for task in tasks:
                task.cancel()
            # Let them finish stopping; their errors by now (a cancelled handler's cleanup,
            # a heartbeat's) change nothing about the outcome decided above.
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _execute(self, job: Job, kind: JobKind) -> str:
        try:
            async with self.db.session() as session:
                context = JobContext(job=job, session=session, settings=self.settings, db=self.db)
                try:
                    await self._run_handler(context, kind)
                except ClaimLost:
                    await session.rollback()
                    return "lost"
                finished = await session.execute(
                    update(Job)
                    .where(this_attempt(job), Job.state == JobState.RUNNING)
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
        if isinstance(exc, TimeLimitExceeded):
            error = str(exc)
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
            .where(this_attempt(job), Job.state == JobState.RUNNING)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as session:
            if not await self._mark(session, mark, job, kind, exc if give_up else None):
                return "lost"
        if give_up:
            return "failed"
        if self.on_retry is not None:
            self.on_retry(job.id, job.queue, delay)
        return "retry"

    async def due_jobs(self, queues: Sequence[str], limit: int = 1000) -> list[tuple[int, str]]:
        """Jobs of known kinds in ``queues`` that are due now: higher kind priority first,
        then oldest first."""
        now = self.clock()
        urgent = [(Job.kind == kind.name, -kind.priority)
                  for kind in self.kinds.values() if kind.priority]
        order = [case(*urgent, else_=0)] if urgent else []
        async with self.db.session() as session:
            rows = await session.execute(
                select(Job.id, Job.queue)
                .where(Job.queue.in_(queues), Job.kind.in_(list(self.kinds)), _due(now))
                .order_by(*order, Job.next_try_at, Job.id)
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
