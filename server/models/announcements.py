"""Announcements: notices the admins post for everyone signed in (Mastodon's
``Announcement``), who may mark them read and react with an emoji."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base


class Announcement(Base):
    """``text`` as the admin wrote it (rendered as linkified HTML); a draft until
    ``published``. ``starts_at``/``ends_at`` (both or neither) say when what it announces
    happens; ``all_day`` that only their dates matter. Once ``ends_at`` has passed it is
    no longer listed. A draft with ``scheduled_at`` is published at that time."""

    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    text: Mapped[str] = mapped_column(Text)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    starts_at: Mapped[datetime | None] = mapped_column(default=None)
    ends_at: Mapped[datetime | None] = mapped_column(default=None)
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    # A draft with a time is published then (by a ``publish_announcement`` job).
    scheduled_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnnouncementRead(Base):
    """``account_id`` dismissed (marked read) the announcement (Mastodon's AnnouncementMute)."""

    __tablename__ = "announcement_reads"
    __table_args__ = (UniqueConstraint("announcement_id", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    announcement_id: Mapped[int] = mapped_column(
        ForeignKey("announcements.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnnouncementReaction(Base):
    """``account_id`` reacted to the announcement with the emoji ``name``."""

    __tablename__ = "announcement_reactions"
    __table_args__ = (UniqueConstraint("announcement_id", "account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    announcement_id: Mapped[int] = mapped_column(
        ForeignKey("announcements.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
