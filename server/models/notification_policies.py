"""Notification policies (Mastodon 4.3): what a user accepts, filters or drops, the requests
that hold filtered mentions per sender, and the senders a user has let through.

Why it exists: the notification service decides per notification whether the recipient's
policy drops it, files it as ``Notification.filtered`` (a request collects the sender's
filtered mentions) or lets it through. These rows only record choices and counts; they
never decide anything themselves.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base

# What a policy may do with a kind of notification (Mastodon's NotificationPolicy::ACTIONS).
POLICY_ACTIONS = ("accept", "filter", "drop")


class NotificationPolicy(Base):
    """One per account that has changed its policy; without a row the defaults apply
    (Mastodon 4.3: accept everything but private mentions and limited accounts)."""

    __tablename__ = "notification_policies"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), unique=True)
    for_not_following: Mapped[str] = mapped_column(String(16), default="accept")
    for_not_followers: Mapped[str] = mapped_column(String(16), default="accept")
    for_new_accounts: Mapped[str] = mapped_column(String(16), default="accept")
    for_private_mentions: Mapped[str] = mapped_column(String(16), default="filter")
    for_limited_accounts: Mapped[str] = mapped_column(String(16), default="filter")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationRequest(Base):
    """``from_account_id``'s filtered mentions of ``account_id``, waiting to be accepted
    (the notifications become visible) or dismissed (they are deleted)."""

    __tablename__ = "notification_requests"
    __table_args__ = (UniqueConstraint("account_id", "from_account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    from_account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    last_status_id: Mapped[int | None] = mapped_column(
        ForeignKey("statuses.id", ondelete="SET NULL"), default=None)
    notifications_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationPermission(Base):
    """``account_id`` accepted a request from ``from_account_id``: the policy no longer
    filters that sender."""

    __tablename__ = "notification_permissions"
    __table_args__ = (UniqueConstraint("account_id", "from_account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    from_account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
