"""Polls attached to statuses, and the votes cast on them.

A poll belongs to exactly one status (local or remote). ``cached_tallies`` holds the votes
per option: for a local poll it is recounted from ``poll_votes`` whenever a vote lands, for
a remote poll it is what its server last said (``Question`` / ``Update(Question)``).
``poll_votes`` holds local accounts' votes on any poll and remote accounts' votes on local
polls (``uri``: the vote ``Note`` that carried it, ours or theirs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base


class Poll(Base):
    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    status_id: Mapped[int] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), unique=True)
    # The status's author (whose poll it is: no voting on one's own poll).
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    cached_tallies: Mapped[list[int]] = mapped_column(JSON, default=list)
    multiple: Mapped[bool] = mapped_column(Boolean, default=False)
    hide_totals: Mapped[bool] = mapped_column(Boolean, default=False)
    votes_count: Mapped[int] = mapped_column(Integer, default=0)
    # Distinct voters (a remote poll may not say: None).
    voters_count: Mapped[int | None] = mapped_column(Integer, default=0)
    # None: a remote poll that never ends.
    expires_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # When the end was handled (notifications sent, the final Update(Question) recorded).
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    def tallies(self) -> list[int]:
        """One count per option (missing counts are 0)."""
        counts: list[Any] = list(self.cached_tallies or [])
        return [int(counts[i]) if i < len(counts) and counts[i] is not None else 0
                for i in range(len(self.options or []))]


class PollVote(Base):
    __tablename__ = "poll_votes"
    __table_args__ = (UniqueConstraint("poll_id", "account_id", "choice"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    choice: Mapped[int] = mapped_column(Integer)
    # The vote Note's id: a remote voter's (dedupes redelivery) or ours on a remote poll.
    uri: Mapped[str | None] = mapped_column(String(2048), default=None, unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
