"""Moderators' actions on accounts, as the affected person is told about them.

Why it exists: every action a moderator takes against an account (a warning, marking its
media sensitive, disabling its login, limiting or suspending it) leaves a warning row with
the moderator's text, so the person can read why (Mastodon's ``AccountWarning``, the
"strike"). The standing itself lives on the account (``suspended_at``, ``silenced_at``,
``sensitized_at``) and the user (``disabled``).

The person may appeal a warning once, within a time (``Appeal``); a moderator approves it
(the action is undone and the warning marked ``overruled_at``) or rejects it.

What it must never do: be the source of the account's standing (lifting a suspension does
not delete the warning that announced it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base

# Mastodon's AccountWarning actions (the Admin API's ``type`` values, plus ``delete``).
WARNING_ACTIONS = ("none", "sensitive", "disable", "silence", "suspend", "delete")


class AccountWarning(Base):
    __tablename__ = "account_warnings"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    # The moderator's account (None once it is gone, or for the command line).
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    target_account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    report_id: Mapped[int | None] = mapped_column(
        ForeignKey("reports.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # An appeal of it was approved: the action was undone then.
    overruled_at: Mapped[datetime | None] = mapped_column(default=None)


class Appeal(Base):
    """The affected person contests a warning (Mastodon's ``Appeal``): one per warning,
    pending until a moderator approves or rejects it."""

    __tablename__ = "appeals"
    __table_args__ = (UniqueConstraint("account_warning_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    account_warning_id: Mapped[int] = mapped_column(
        ForeignKey("account_warnings.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    approved_at: Mapped[datetime | None] = mapped_column(default=None)
    approved_by_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    rejected_at: Mapped[datetime | None] = mapped_column(default=None)
    rejected_by_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def state(self) -> str:
        """Mastodon's: ``approved``, ``rejected`` or ``pending``."""
        if self.approved_at is not None:
            return "approved"
        return "rejected" if self.rejected_at is not None else "pending"
