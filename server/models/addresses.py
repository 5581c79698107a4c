"""Where local logins were used from, and networks the instance refuses (Mastodon's
``user_ips`` and ``IpBlock``); addresses are keyed as in ``server.addresses``."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base


class UserIp(Base):
    """``user_id`` used ``ip`` (signed up, signed in, or used a token from it), last at
    ``used_at``. Kept for ``EASEL_IP_RETENTION_DAYS`` after its last use."""

    __tablename__ = "user_ips"
    __table_args__ = (UniqueConstraint("user_id", "ip_key"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ip: Mapped[str] = mapped_column(String(45))
    ip_key: Mapped[str] = mapped_column(String(32), index=True)
    used_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class IpBlockSeverity(enum.StrEnum):
    SIGN_UP_REQUIRES_APPROVAL = "sign_up_requires_approval"
    SIGN_UP_BLOCK = "sign_up_block"
    NO_ACCESS = "no_access"


class IpBlock(Base):
    """Requests from ``ip`` (a network, keys ``first_key``..``last_key``) are refused
    (``no_access``) or may not sign up (``sign_up_block``), or only for approval, until
    ``expires_at`` if set."""

    __tablename__ = "ip_blocks"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    ip: Mapped[str] = mapped_column(String(64), unique=True)
    first_key: Mapped[str] = mapped_column(String(32), index=True)
    last_key: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
