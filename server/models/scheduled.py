"""Scheduled statuses: a status's parameters, kept until the time its author chose.

The row is the truth: the ``publish_scheduled_status`` job posts it through the ordinary
status path when it falls due and deletes the row in the same transaction. The media a
scheduled status will carry are reserved by ``ScheduledStatusMedia`` rows, so no other
post can take them and the purge of detached media leaves them alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, exists
from sqlalchemy.orm import InstrumentedAttribute, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from server.ids import new_id, utcnow
from server.models.base import Base


class ScheduledStatus(Base):
    __tablename__ = "scheduled_statuses"
    __table_args__ = (
        # The daily limit counts an account's statuses scheduled on one day.
        Index("ix_scheduled_statuses_account_id_scheduled_at", "account_id", "scheduled_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    scheduled_at: Mapped[datetime] = mapped_column()
    # The status's parameters as Mastodon's ScheduledStatus entity shows them (text,
    # visibility, poll …); media are the ScheduledStatusMedia rows, the app a column.
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="SET NULL"), default=None)
    # The Idempotency-Key it was created with: a retry within the hour finds it again.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScheduledStatusMedia(Base):
    """One medium reserved for a scheduled status (at most one per medium), in order."""

    __tablename__ = "scheduled_status_media"

    media_attachment_id: Mapped[int] = mapped_column(
        ForeignKey("media_attachments.id", ondelete="CASCADE"), primary_key=True)
    scheduled_status_id: Mapped[int] = mapped_column(
        ForeignKey("scheduled_statuses.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


def not_scheduled(media_id: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    """True for media not reserved by a scheduled status (``media_id``: the media's id
    column): what may be attached to a post, or purged once detached."""
    return ~exists().where(ScheduledStatusMedia.media_attachment_id == media_id)
