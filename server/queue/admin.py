"""Queue administration: depth by queue and kind, failed jobs, retrying and purging them.

Why it exists: ``easel admin queue``, ``easel admin jobs --retry``, ``easel admin status``
and the ``/metrics`` endpoint all read the same figures from the ``jobs`` table (the
database, not the broker, holds the queue's state), so they are computed here, once.

What it must never do: touch a running job (its worker holds the claim and will record
the outcome), delete anything but failed or queued jobs, or commit: the caller commits,
so that a retry's "look at job N" messages go out only after the rows are queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import Job, JobState
from server.queue.jobs import PENDING_JOBS_KEY

# The states a queue's depth counts (done jobs are history, not depth).
OPEN_STATES = (JobState.QUEUED, JobState.RUNNING, JobState.FAILED)


@dataclass(frozen=True)
class KindDepth:
    """How many jobs of one kind, in one queue, are in one state."""

    queue: str
    kind: str
    state: str
    count: int


@dataclass(frozen=True)
class QueueBacklog:
    """The jobs of one queue that are due now and not taken: how many, and since when."""

    queue: str
    due: int
    oldest_due_at: datetime | None


async def depth(session: AsyncSession) -> list[KindDepth]:
    """Queued, running and failed jobs by queue, kind and state (queue, kind order)."""
    rows = await session.execute(
        select(Job.queue, Job.kind, Job.state, func.count(Job.id))
        .where(Job.state.in_(OPEN_STATES))
        .group_by(Job.queue, Job.kind, Job.state)
        .order_by(Job.queue, Job.kind, Job.state)
    )
    return [KindDepth(queue, kind, state, count) for queue, kind, state, count in rows]


async def backlog(session: AsyncSession, now: datetime | None = None) -> list[QueueBacklog]:
    """Per queue, the queued jobs already due (waiting for a worker) and the oldest due time."""
    now = now or utcnow()
    rows = await session.execute(
        select(Job.queue, func.count(Job.id), func.min(Job.next_try_at))
        .where(Job.state == JobState.QUEUED, Job.next_try_at <= now)
        .group_by(Job.queue)
        .order_by(Job.queue)
    )
    return [QueueBacklog(queue, count, oldest) for queue, count, oldest in rows]


def _failed(kind: str | None) -> list[object]:
    conditions: list[object] = [Job.state == JobState.FAILED]
    if kind is not None:
        conditions.append(Job.kind == kind)
    return conditions


async def failures(session: AsyncSession, *, kind: str | None = None,
                   limit: int = 50) -> list[Job]:
    """The failed jobs (of ``kind``), the most recently failed first."""
    return list(await session.scalars(
        select(Job).where(*_failed(kind))  # type: ignore[arg-type]
        .order_by(Job.finished_at.desc(), Job.id.desc()).limit(max(limit, 1))))


async def retry_failed(session: AsyncSession, ids: Sequence[int] | None = None, *,
                       kind: str | None = None) -> list[int]:
    """Requeue failed jobs: those in ``ids`` (None: every failed one, of ``kind`` if given)
    as a new run of retries (attempts from 0; ``claims`` go on counting, see
    ``server/queue/runner.py``). Returns the ids requeued; jobs that are not failed are
    left alone. The queue is told about them when the caller commits."""
    conditions = _failed(kind)
    if ids is not None:
        conditions.append(Job.id.in_(list(ids)))
    found = list(await session.execute(
        select(Job.id, Job.queue).where(*conditions)))  # type: ignore[arg-type]
    if not found:
        return []
    now = utcnow()
    requeued = [job_id for job_id, _queue in found]
    for start in range(0, len(requeued), 500):
        await session.execute(
            update(Job)
            .where(Job.id.in_(requeued[start:start + 500]), Job.state == JobState.FAILED)
            .values(state=JobState.QUEUED, attempts=0, progress=0.0, next_try_at=now,
                    locked_until=None, finished_at=None, updated_at=now)
            .execution_options(synchronize_session=False))
    session.info.setdefault(PENDING_JOBS_KEY, []).extend((job_id, queue) for job_id, queue in found)
    return requeued


async def purge(session: AsyncSession, *, failed: bool = False, kind: str | None = None) -> int:
    """Delete jobs: failed ones (``failed``), or every queued and failed job of ``kind``
    (both: the failed ones of ``kind``). Running jobs are never deleted. Returns how many.
    Their work is dropped: what they were about (a delivery, a media row) stays as it is."""
    if not failed and kind is None:
        raise ValueError("purge needs failed=True or a kind")
    states = [JobState.FAILED] if failed else [JobState.QUEUED, JobState.FAILED]
    statement = delete(Job).where(Job.state.in_(states))
    if kind is not None:
        statement = statement.where(Job.kind == kind)
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]
