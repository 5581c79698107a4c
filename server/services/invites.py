"""Invites: sign-up links that let their holder join whatever the registration mode.

Why it exists: an instance with approval or closed registrations still grows by its
members' word. An invite has a code (its link is ``/invite/{code}``), an optional number
of uses and an optional expiry, and can be revoked. A valid invite skips approval and
closed registrations, as in Mastodon. Using one is a conditional UPDATE in the
registration's own transaction, so a used-up invite never admits one more person and a
failed registration never uses one. It must never let a revoked, expired or used-up code
through.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from server.ids import utcnow
from server.models import Invite
from server.services.errors import NotFound, ValidationFailed

CODE_BYTES = 6  # 8 URL-safe characters, as Mastodon's codes
MAX_CODE_LENGTH = 64
MAX_USES_LIMIT = 100_000
MAX_EXPIRY = timedelta(days=3650)


def _usable(now: datetime) -> ColumnElement[bool]:
    return (Invite.revoked_at.is_(None)
            & or_(Invite.expires_at.is_(None), Invite.expires_at > now)
            & or_(Invite.max_uses.is_(None), Invite.uses < Invite.max_uses))


def is_usable(invite: Invite, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (invite.revoked_at is None
            and (invite.expires_at is None or invite.expires_at > now)
            and (invite.max_uses is None or invite.uses < invite.max_uses))


async def create_invite(session: AsyncSession, *, created_by_id: int | None = None,
                        max_uses: int | None = None,
                        expires_in: timedelta | None = None) -> Invite:
    """A new invite, committed; ValidationFailed for a bad limit."""
    if max_uses is not None and not 1 <= max_uses <= MAX_USES_LIMIT:
        raise ValidationFailed(f"Max uses must be between 1 and {MAX_USES_LIMIT}")
    if expires_in is not None and not timedelta(0) < expires_in <= MAX_EXPIRY:
        raise ValidationFailed("Expires in must be more than zero and at most ten years")
    invite = Invite(code=secrets.token_urlsafe(CODE_BYTES), created_by_id=created_by_id,
                    max_uses=max_uses, uses=0,
                    expires_at=utcnow() + expires_in if expires_in is not None else None)
    session.add(invite)
    await session.commit()
    return invite


async def list_invites(session: AsyncSession) -> Sequence[Invite]:
    return (await session.scalars(select(Invite).order_by(Invite.id.desc()))).all()


async def revoke_invite(session: AsyncSession, code: str) -> Invite:
    """Revoke the invite ``code`` (committed); NotFound when there is none."""
    invite = await session.scalar(select(Invite).where(Invite.code == code))
    if invite is None:
        raise NotFound("Invite not found")
    if invite.revoked_at is None:
        invite.revoked_at = utcnow()
        await session.commit()
    return invite


async def find_usable_invite(session: AsyncSession, code: str | None) -> Invite | None:
    """The invite ``code`` if it may still be used (for showing the sign-up page)."""
    if not code or len(code) > MAX_CODE_LENGTH:
        return None
    invite: Invite | None = await session.scalar(
        select(Invite).where(Invite.code == code, _usable(utcnow())))
    return invite


async def use_invite(session: AsyncSession, code: str) -> int | None:
    """Count one use of ``code`` in the caller's transaction if it is usable; its id, or
    None (nothing changed) when it is unknown, revoked, expired or used up."""
    if not code or len(code) > MAX_CODE_LENGTH:
        return None
    result = await session.execute(
        update(Invite).where(Invite.code == code, _usable(utcnow()))
        .values(uses=Invite.uses + 1).returning(Invite.id))
    invite_id: int | None = result.scalar_one_or_none()
    return invite_id
