"""Enqueuing: how services ask for background work, inside their own transaction."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import Job, JobState
from server.queue.kinds import JobKind

PENDING_JOBS_KEY = "easel_job_ids"


async def enqueue(
    session: AsyncSession,
    kind: JobKind,
    ref: str,
    *,
    delay: timedelta | None = None,
    again: bool = False,
) -> Job:
    """Add (or find) the job ``(kind, ref)`` in this session's transaction.

    The job is one row per ``(kind, ref)``: enqueuing it twice is one job. A finished job is
    run again only with ``again=True`` (e.g. re-protection): a new run of retries, so its
    ``attempts`` start again from 0. Its ``claims`` go on counting: an attempt of the earlier
    run that is still going (stalled past its claim) is fenced on both and can never commit
    over an attempt of the new run with the same number. The caller commits; the queue is
    told after the commit.
    """
    now = utcnow()
    due = now + delay if delay else now
    job = await session.scalar(select(Job).where(Job.kind == kind.name, Job.ref == ref))
    if job is None:
        job = Job(kind=kind.name, queue=kind.queue, ref=ref, next_try_at=due)
        session.add(job)
        await session.flush()
    elif again and job.state in (JobState.DONE, JobState.FAILED):
        job.state = JobState.QUEUED
        job.attempts = 0
        job.progress = 0.0
        job.next_try_at = due
        job.last_error = None
        job.finished_at = None
    else:
        return job
    session.info.setdefault(PENDING_JOBS_KEY, []).append((job.id, job.queue))
    return job
