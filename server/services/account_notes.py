"""Private notes on accounts (``POST /api/v1/accounts/:id/note``, the Relationship's
``note``), as Mastodon's ``AccountNote``.

Why it exists: people keep a reminder about someone ("met at the spring show") that only
they see on that profile. One note per account and target, at most
``MAX_COMMENT_LENGTH`` characters; a blank comment deletes it. Notes are never shown to
anyone else nor federated; they go with either account (foreign keys cascade). Writes
commit.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import insert_ignoring_conflict
from server.ids import new_id, utcnow
from server.models import Account, AccountNote
from server.services.accounts import find_account
from server.services.errors import ValidationFailed

MAX_COMMENT_LENGTH = 2000  # Mastodon's AccountNote validation


async def set_note(session: AsyncSession, account: Account, target_id: int,
                   comment: str | None) -> Account:
    """``account``'s note on ``target_id`` becomes ``comment`` (blank or None: no note).
    Returns the target; NotFound for an unknown or unlisted account, ValidationFailed for a
    comment that is too long."""
    target = await find_account(session, target_id)
    comment = comment or ""
    if len(comment) > MAX_COMMENT_LENGTH:
        raise ValidationFailed(
            f"Comment is too long (maximum is {MAX_COMMENT_LENGTH} characters)")
    mine = (AccountNote.account_id == account.id, AccountNote.target_account_id == target.id)
    if not comment.strip():
        await session.execute(delete(AccountNote).where(*mine))
    else:
        now = utcnow()
        await session.execute(insert_ignoring_conflict(
            session, AccountNote,
            {"id": new_id(), "account_id": account.id, "target_account_id": target.id,
             "comment": comment, "created_at": now, "updated_at": now},
            ["account_id", "target_account_id"]))
        await session.execute(update(AccountNote).where(*mine)
                              .values(comment=comment, updated_at=now))
    await session.commit()
    return target


async def notes_among(session: AsyncSession, viewer_id: int, ids: list[int]) -> dict[int, str]:
    """``viewer_id``'s notes on the accounts among ``ids``, by account id."""
    if not ids:
        return {}
    return {target: comment for target, comment in (await session.execute(
        select(AccountNote.target_account_id, AccountNote.comment).where(
            AccountNote.account_id == viewer_id,
            AccountNote.target_account_id.in_(ids)))).all()}
