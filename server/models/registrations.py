"""Who may join and how they prove their address: invites, instance rules, e-mail tokens
and the outgoing mail queue.

``EmailToken`` rows hold only the SHA-256 digest of a link's secret (the plaintext is in
the e-mail and nowhere else), each for one purpose, single-use and expiring.
``OutgoingMail`` is a message waiting for (or done with) the ``send_mail`` job, so that a
slow SMTP server never holds up a request; its text holds links with secrets, so rows are
deleted once sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base

# What an e-mail token proves when its link is followed.
EMAIL_TOKEN_PURPOSES = ("confirm_email", "reset_password")


class Invite(Base):
    """A sign-up link ``/invite/{code}``: lets its holder join even when registrations need
    approval or are closed, ``max_uses`` times (None: unlimited) until ``expires_at``."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True)
    max_uses: Mapped[int | None] = mapped_column(Integer, default=None)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InstanceRule(Base):
    """One of the rules a newcomer accepts at sign-up (Mastodon's Rule: text and hint)."""

    __tablename__ = "instance_rules"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    text: Mapped[str] = mapped_column(Text)
    hint: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EmailToken(Base):
    """A link sent by mail: confirm an address (``email`` is the one it confirms, which may
    be a new address the user asked to change to) or reset a password."""

    __tablename__ = "email_tokens"
    __table_args__ = (Index("ix_email_tokens_user_id_purpose", "user_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutgoingMail(Base):
    """A message for the ``send_mail`` job (its ref is this row's id)."""

    __tablename__ = "outgoing_mail"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    to: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
