"""Endorsements: accounts a user features on its profile (``POST /api/v1/accounts/:id/pin``,
``/unpin``, ``GET /api/v1/endorsements``, the Relationship's ``endorsed``), as Mastodon's
``AccountPin``.

Why it exists: an artist recommends the people it follows. Only a followed account can
be endorsed (Mastodon's rule and error text); an endorsement counts only while the follow
lasts, so every read joins the follow (ending a follow needs no clean-up here, and
following again does not bring an old endorsement back: pinning again replaces it).

What it must never do: federate (Mastodon 4.2 keeps endorsements local), or show an
endorsement of an account the user no longer follows. Writes commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Account, Endorsement, Follow
from server.services.accounts import find_account, listed_accounts
from server.services.errors import ValidationFailed

NOT_FOLLOWING_ERROR = "You must be already following the person you want to endorse"


def _followed() -> Any:
    """Join condition: the follow the endorsement was made under (made after it began)."""
    return and_(Follow.account_id == Endorsement.account_id,
                Follow.target_account_id == Endorsement.target_account_id,
                Endorsement.created_at >= Follow.created_at)


async def endorse(session: AsyncSession, account: Account, target_id: int) -> Account:
    """``account`` endorses ``target_id`` (idempotent). Returns the target."""
    target = await find_account(session, target_id)
    follow = await session.scalar(select(Follow).where(
        Follow.account_id == account.id, Follow.target_account_id == target.id))
    if follow is None:
        raise ValidationFailed(NOT_FOLLOWING_ERROR)
    existing = await session.scalar(select(Endorsement).where(
        Endorsement.account_id == account.id, Endorsement.target_account_id == target.id))
    if existing is not None and existing.created_at < follow.created_at:
        # Left over from an earlier follow: this endorsement is a new one.
        await session.execute(delete(Endorsement).where(Endorsement.id == existing.id))
        existing = None
    if existing is None:
        try:
            async with session.begin_nested():
                session.add(Endorsement(account_id=account.id, target_account_id=target.id))
        except IntegrityError:
            pass  # endorsed concurrently
    await session.commit()
    return target


async def unendorse(session: AsyncSession, account: Account, target_id: int) -> Account:
    target = await find_account(session, target_id)
    await session.execute(delete(Endorsement).where(
        Endorsement.account_id == account.id, Endorsement.target_account_id == target.id))
    await session.commit()
    return target


async def endorsed_among(session: AsyncSession, viewer_id: int, ids: list[int]) -> set[int]:
    """Which of ``ids`` ``viewer_id`` endorses (and still follows)."""
    if not ids:
        return set()
    return set(await session.scalars(
        select(Endorsement.target_account_id).join(Follow, _followed())
        .where(Endorsement.account_id == viewer_id, Endorsement.target_account_id.in_(ids))))


def endorsements_query(account_id: int) -> Select[int, Account]:
    """(Endorsement.id, endorsed Account) rows of ``account_id``'s endorsements."""
    return (select(Endorsement.id, Account)
            .join(Account, Account.id == Endorsement.target_account_id)
            .join(Follow, _followed())
            .where(Endorsement.account_id == account_id, listed_accounts()))
