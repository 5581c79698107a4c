"""Statuses (posts, boosts, replies), their mentions and hashtags."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base

VISIBILITIES = ("public", "unlisted", "private", "direct")


class Status(Base):
    __tablename__ = "statuses"
    __table_args__ = (
        Index("ix_statuses_account_timeline", "account_id", "id"),
        Index("ix_statuses_public_timeline", "published", "visibility", "id"),
        # One boost per account and status (NULLs, i.e. non-boosts, are all distinct).
        UniqueConstraint("account_id", "reblog_of_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048), default="")
    # The author's source text (local statuses); content is the sanitised HTML.
    text: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[str] = mapped_column(Text, default="")
    spoiler_text: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[str] = mapped_column(String(16), default="public")
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    in_reply_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("statuses.id", ondelete="SET NULL"), index=True, default=None)
    in_reply_to_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    # A remote reply's inReplyTo (kept even when the parent is known; the only link to a
    # parent that could not be fetched yet).
    # Indexed: a parent that arrives later finds its waiting replies by it.
    in_reply_to_uri: Mapped[str | None] = mapped_column(String(2048), index=True, default=None)
    reblog_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), index=True, default=None)
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="SET NULL"), default=None)
    local: Mapped[bool] = mapped_column(Boolean, default=True)
    # False while any of its media is still being processed: visible to its author only
    # (who sees it everywhere as usual), to nobody else, not federated. published_at is
    # when it went out.
    published: Mapped[bool] = mapped_column(Boolean, default=True)
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(default=None)
    replies_count: Mapped[int] = mapped_column(Integer, default=0)
    reblogs_count: Mapped[int] = mapped_column(Integer, default=0)
    favourites_count: Mapped[int] = mapped_column(Integer, default=0)
    # Remote only: the object's own opt-out as stated (FEP-5e53 xRobotsTag, Easel's
    # dataMining), None when it said nothing.
    robots: Mapped[str | None] = mapped_column(String(255), default=None)
    data_mining: Mapped[str | None] = mapped_column(String(128), default=None)


class Mention(Base):
    __tablename__ = "mentions"
    __table_args__ = (UniqueConstraint("status_id", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    status_id: Mapped[int] = mapped_column(ForeignKey("statuses.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    # Normalised (lower-cased, NFKC) for lookups; display_name keeps the first spelling.
    name: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StatusTag(Base):
    __tablename__ = "status_tags"

    status_id: Mapped[int] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(
        ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True)


class StatusAlias(Base):
    """The id a status had before it was published.

    A status that waits for its media gets a new id when it is published, so that it sorts
    (and pages, with ``since_id``) as of when people can first see it; its author's client
    may still ask for it by the old id, which this table resolves.
    """

    __tablename__ = "status_aliases"

    old_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    status_id: Mapped[int] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(Base):
    """``Idempotency-Key`` of a status creation: the same key within an hour returns the
    same status instead of posting twice."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("account_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    status_id: Mapped[int] = mapped_column(ForeignKey("statuses.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StatusEdit(Base):
    """One version of an edited status, as Mastodon's edit history shows it.

    The first edit of a status also records the version it replaced (dated when the
    status was created), so the history always starts from the original; every later edit
    adds the new version. ``content`` is the HTML as shown then (local statuses render
    from ``text``, remote ones have only HTML); ``media_ids`` and ``media_descriptions``
    are the attachments in that version with the alt text they had; ``poll_options`` the
    poll's options then (None: no poll).
    """

    __tablename__ = "status_edits"
    __table_args__ = (Index("ix_status_edits_status_id_created_at", "status_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    status_id: Mapped[int] = mapped_column(ForeignKey("statuses.id", ondelete="CASCADE"))
    # Who made this version (the author; kept if they are gone: the status goes with them).
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    text: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[str] = mapped_column(Text, default="")
    spoiler_text: Mapped[str] = mapped_column(Text, default="")
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    media_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    media_descriptions: Mapped[list[str | None]] = mapped_column(JSON, default=list)
    poll_options: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
