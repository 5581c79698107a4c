"""Direct conversations, as Mastodon's ``AccountConversation``: one row per participant
(local account) and thread, holding the direct statuses of that thread it can see."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base


class Conversation(Base):
    """``account_id``'s view of a direct thread with ``participants`` (the other accounts'
    ids, sorted, comma-joined; "" when it only wrote to itself; ``participants_key`` is
    their SHA-256, for the unique index). ``thread_id``: the id of the status the thread
    started from (a plain number: that status may be deleted). ``unread``: a status from
    someone else arrived since the account last read it."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("account_id", "thread_id", "participants_key"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    thread_id: Mapped[int] = mapped_column(BigInteger)
    participants: Mapped[str] = mapped_column(Text, default="")
    participants_key: Mapped[str] = mapped_column(String(64))
    unread: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationStatus(Base):
    """A direct status in a conversation. Deleting the status removes it from the
    conversation (its last status is then the one before; with none left it is not shown)."""

    __tablename__ = "conversation_statuses"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    status_id: Mapped[int] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), primary_key=True, index=True)
