"""Relations between accounts and statuses: follows, requests, favourites, bookmarks, blocks,
mutes, notifications, lists, followed tags, markers, muted threads, notes on accounts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base


class _FollowFields:
    """What a follow and a follow request both record: who, whom, and the options asked for."""

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    target_account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    uri: Mapped[str | None] = mapped_column(String(2048), default=None)
    show_reblogs: Mapped[bool] = mapped_column(Boolean, default=True)
    notify: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Follow(_FollowFields, Base):
    __tablename__ = "follows"
    __table_args__ = (UniqueConstraint("account_id", "target_account_id"),)


class FollowRequest(_FollowFields, Base):
    __tablename__ = "follow_requests"
    __table_args__ = (UniqueConstraint("account_id", "target_account_id"),)


class Favourite(Base):
    __tablename__ = "favourites"
    __table_args__ = (UniqueConstraint("account_id", "status_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    status_id: Mapped[int] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), index=True)
    uri: Mapped[str | None] = mapped_column(String(2048), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Bookmark(Base):
    __tablename__ = "bookmarks"
    __table_args__ = (UniqueConstraint("account_id", "status_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    status_id: Mapped[int] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


NOTIFICATION_TYPES = (
    "mention", "status", "reblog", "follow", "follow_request", "favourite", "poll", "update",
    "admin.sign_up", "admin.report", "moderation_warning",
)


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_account_timeline", "account_id", "id"),
                      Index("ix_notifications_account_group", "account_id", "group_key"))

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    # The recipient.
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    from_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    status_id: Mapped[int | None] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Held back by the recipient's notification policy (server.services.notification_policies):
    # left out of the lists and streams until the sender's request is accepted.
    filtered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Mastodon 4.3's grouping key ("favourite-<status id>-<hour bucket>"); None: ungrouped.
    group_key: Mapped[str | None] = mapped_column(String(64), default=None)
    # A "moderation_warning": the warning it tells of (server.services.moderation).
    account_warning_id: Mapped[int | None] = mapped_column(
        ForeignKey("account_warnings.id", ondelete="CASCADE"), default=None, index=True)
    # An "admin.report": the report it tells the moderators of (gone with it).
    report_id: Mapped[int | None] = mapped_column(
        ForeignKey("reports.id", ondelete="CASCADE"), default=None, index=True)


class Block(Base):
    """``account_id`` blocks ``target_account_id``: no follows either way, neither sees the
    other's posts or notifications. ``uri``: the Block activity sent when the target is
    remote (its Undo is built from it)."""

    __tablename__ = "blocks"
    __table_args__ = (UniqueConstraint("account_id", "target_account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    target_account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    uri: Mapped[str | None] = mapped_column(String(2048), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Mute(Base):
    """``account_id`` mutes ``target_account_id``: their posts leave its timelines (and,
    with ``hide_notifications``, their notifications) until ``expires_at`` (None: for good).
    Private to the muter; never federated."""

    __tablename__ = "mutes"
    __table_args__ = (UniqueConstraint("account_id", "target_account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    target_account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    hide_notifications: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


REPLIES_POLICIES = ("followed", "list", "none")


class List(Base):
    """A user's list of followed accounts, with its own timeline. ``exclusive``: the
    members' posts leave the home timeline. ``replies_policy``: which replies the list's
    timeline shows (to anyone followed, to members only, or none)."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(255))
    replies_policy: Mapped[str] = mapped_column(String(16), default="list")
    exclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ListAccount(Base):
    __tablename__ = "list_accounts"
    __table_args__ = (UniqueConstraint("list_id", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TagFollow(Base):
    """``account_id`` follows a hashtag: public posts with it join its home timeline."""

    __tablename__ = "tag_follows"
    __table_args__ = (UniqueConstraint("account_id", "tag_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


MARKER_TIMELINES = ("home", "notifications")


class Marker(Base):
    """Where a user stopped reading a timeline (Mastodon's markers), synced across apps."""

    __tablename__ = "markers"
    __table_args__ = (UniqueConstraint("account_id", "timeline"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    timeline: Mapped[str] = mapped_column(String(16))
    last_read_id: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationMute(Base):
    """``account_id`` mutes the thread whose first status is ``thread_id`` (Mastodon's
    ``ConversationMute``; Easel has no conversation id, so a thread is known by its root,
    found by following ``in_reply_to_id`` up): no notifications about its statuses, and
    their ``muted`` is true for it. Private to the muter; never federated."""

    __tablename__ = "conversation_mutes"
    __table_args__ = (UniqueConstraint("account_id", "thread_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    thread_id: Mapped[int] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccountNote(Base):
    """``account_id``'s private note (``comment``) about ``target_account_id``, shown to it
    alone in the Relationship's ``note`` (Mastodon's ``AccountNote``). Never federated."""

    __tablename__ = "account_notes"
    __table_args__ = (UniqueConstraint("account_id", "target_account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    target_account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    comment: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
