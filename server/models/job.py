"""Background work as rows: the database, not the broker, is the source of truth.

A dramatiq message only says "look at job N now". The states and their transitions are
declared here, once; what each kind does, its retries and its time limit are declared
with the kind (``server/queue/kinds.py``).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base


class JobState(enum.StrEnum):
    QUEUED = "queued"    # waiting for next_try_at
    RUNNING = "running"  # claimed until locked_until; then due again (its worker died)
    DONE = "done"
    FAILED = "failed"    # gave up after max attempts; an admin may requeue it


JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING}),
    # RUNNING -> RUNNING: an expired claim taken over by another worker.
    JobState.RUNNING: frozenset({JobState.DONE, JobState.QUEUED, JobState.FAILED,
                                 JobState.RUNNING}),
    JobState.DONE: frozenset({JobState.QUEUED}),    # redo on request (e.g. reprotect)
    JobState.FAILED: frozenset({JobState.QUEUED}),  # retry on request
}


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "ref"),
        Index("ix_jobs_due", "state", "queue", "next_try_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(32))
    # What the job is about, e.g. a media id; (kind, ref) is unique, so enqueuing twice is one job.
    ref: Mapped[str] = mapped_column(String(1024))
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value)
    # Attempts in this run of retries: reset when the job is requeued (enqueue again, an
    # admin's retry), so it is what a kind's max_attempts counts.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Claims by a runner over the job's whole life, never reset. ``attempts`` alone may name
    # two attempts (a stalled one from before a requeue, and the fresh one after it): the
    # runner fences everything an attempt writes on both (``server/queue/runner.py``).
    claims: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    next_try_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
