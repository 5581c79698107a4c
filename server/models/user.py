"""Local logins: the credentials and standing of a person with an account here."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.ids import new_id, utcnow
from server.models.base import Base

if TYPE_CHECKING:
    from server.models.account import Account


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), unique=True
    )
    # Stored lower-cased, so the unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # argon2id, PHC string format.
    password_hash: Mapped[str] = mapped_column(String(255))
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    approved: Mapped[bool] = mapped_column(Boolean, default=False)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str] = mapped_column(String(16), default="en")
    # Posting defaults (Mastodon's source[privacy], source[sensitive], source[language]).
    default_privacy: Mapped[str] = mapped_column(String(16), default="public")
    default_sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    default_language: Mapped[str | None] = mapped_column(String(16), default=None)
    # Why they want to join (approval-mode registrations).
    reason: Mapped[str] = mapped_column(Text, default="")
    # An address the user asked to change to, waiting for its confirmation link.
    unconfirmed_email: Mapped[str | None] = mapped_column(String(320), default=None)
    # The invite they signed up with, if any (invites.id; no foreign key: invites name
    # their creator, a user, and the two tables must not depend on each other).
    invite_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_active_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(back_populates="user")
