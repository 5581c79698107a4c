"""Appeals: the person a moderator acted against contests the decision, as in Mastodon.

Why it exists: a community's moderation is fair only if it can be questioned. Each warning
(``AccountWarning``, Mastodon's "strike") may be appealed once by the person it names,
within ``APPEAL_WINDOW`` of the decision, with a text for the moderators — from the
studio's Standing page, which even a suspended account reaches. A moderator (the admin
pages, ``easel admin appeal``) approves it — the action is undone where it is still in
place (``server.services.moderation.overrule``) and the warning is marked overruled — or
rejects it; either way the person is told by mail when mail is on.

What it must never do: let anyone appeal someone else's warning, or appeal twice, or
decide an appeal twice (two moderators at once included), or let a moderator decide their
own appeal. An appeal stays decidable when
its account was purged meanwhile: nothing is left to undo or to tell. Writes commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, not_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import Account, AccountWarning, Appeal
from server.services.errors import NotFound, ServiceError, ValidationFailed, get_or_404
from server.services.moderation import account_with_user, overrule
from server.settings import Settings

APPEAL_WINDOW = timedelta(days=20)  # Mastodon's AccountWarning::APPEAL_WINDOW
MAX_APPEAL_TEXT = 2000              # Mastodon's Appeal text limit
DECIDED = "This appeal has already been decided"
OWN = "An appeal of a decision about yourself is for another moderator to decide"


def appealable(warning: AccountWarning, now: datetime) -> bool:
    """Whether the window to appeal ``warning`` is still open."""
    return warning.created_at + APPEAL_WINDOW > now


async def appeals_of(session: AsyncSession, warning_ids: Sequence[int]) -> dict[int, Appeal]:
    """The appeals of these warnings, by warning id."""
    if not warning_ids:
        return {}
    found = await session.scalars(select(Appeal).where(
        Appeal.account_warning_id.in_(set(warning_ids))))
    return {appeal.account_warning_id: appeal for appeal in found}


async def file_appeal(session: AsyncSession, account: Account, warning_id: int,
                      text: str) -> Appeal:
    """``account`` appeals its warning ``warning_id``; committed. NotFound for a warning
    that is not its own; ValidationFailed for a blank or overlong text, a warning past
    its window, or one appealed already."""
    warning = await session.scalar(select(AccountWarning).where(
        AccountWarning.id == warning_id, AccountWarning.target_account_id == account.id))
    if warning is None:
        raise NotFound("Record not found")
    text = text.strip()
    if not text:
        raise ValidationFailed("Text can't be blank")
    if len(text) > MAX_APPEAL_TEXT:
        raise ValidationFailed(f"Text is too long (maximum is {MAX_APPEAL_TEXT} characters)")
    if not appealable(warning, utcnow()):
        raise ValidationFailed("This decision can no longer be appealed "
                               f"(appeals are open for {APPEAL_WINDOW.days} days)")
    if (await appeals_of(session, [warning.id])).get(warning.id) is not None:
        raise ValidationFailed("This decision has already been appealed")
    appeal = Appeal(account_id=account.id, account_warning_id=warning.id, text=text)
    try:
        async with session.begin_nested():
            session.add(appeal)
    except IntegrityError:  # appealed at the same moment from another request
        raise ValidationFailed("This decision has already been appealed") from None
    await session.commit()
    return appeal


async def list_appeals(session: AsyncSession, which: str = "pending",
                       limit: int = 100) -> list[tuple[Appeal, AccountWarning]]:
    """Appeals with their warnings: ``pending`` ones oldest first, or ``decided`` ones
    (or ``all``) newest first."""
    pending = and_(Appeal.approved_at.is_(None), Appeal.rejected_at.is_(None))
    query = select(Appeal, AccountWarning).join(
        AccountWarning, AccountWarning.id == Appeal.account_warning_id)
    if which == "pending":
        query = query.where(pending).order_by(Appeal.id)
    elif which == "decided":
        query = query.where(not_(pending)).order_by(Appeal.id.desc())
    elif which == "all":
        query = query.order_by(Appeal.id.desc())
    else:
        raise ValueError(which)
    return [(appeal, warning) for appeal, warning in (await session.execute(query.limit(limit)))]


async def _decide(session: AsyncSession, appeal_id: int, moderator: Account | None, *,
                  approved: bool) -> tuple[Appeal, AccountWarning]:
    """Mark a pending appeal decided, as one conditional UPDATE: of two moderators deciding
    at once, one wins and the other is told it is decided (ServiceError 422)."""
    appeal = await get_or_404(session, Appeal, appeal_id)
    if moderator is not None and moderator.id == appeal.account_id:
        raise ServiceError(OWN, 403)  # another moderator decides it
    now, by = utcnow(), moderator.id if moderator is not None else None
    values = ({"approved_at": now, "approved_by_account_id": by} if approved
              else {"rejected_at": now, "rejected_by_account_id": by})
    decided = await session.execute(
        update(Appeal).where(Appeal.id == appeal_id, Appeal.approved_at.is_(None),
                             Appeal.rejected_at.is_(None))
        .values(**values).execution_options(synchronize_session=False))
    if not getattr(decided, "rowcount", 0):
        await session.rollback()
        raise ServiceError(DECIDED, 422)
    await session.refresh(appeal)
    warning = await session.get(AccountWarning, appeal.account_warning_id)
    assert warning is not None  # the appeal goes with its warning
    return appeal, warning


async def approve_appeal(session: AsyncSession, settings: Settings, moderator: Account | None,
                         appeal_id: int) -> Appeal:
    """Approve: the warning's action is undone where it is still in place, the warning is
    overruled and the person told; committed."""
    appeal, warning = await _decide(session, appeal_id, moderator, approved=True)
    await overrule(session, warning)
    await _tell(session, settings, warning, approved=True)
    await session.commit()
    return appeal


async def reject_appeal(session: AsyncSession, settings: Settings, moderator: Account | None,
                        appeal_id: int) -> Appeal:
    """Reject: the decision stands, and the person is told; committed."""
    appeal, warning = await _decide(session, appeal_id, moderator, approved=False)
    await _tell(session, settings, warning, approved=False)
    await session.commit()
    return appeal


async def _tell(session: AsyncSession, settings: Settings, warning: AccountWarning, *,
                approved: bool) -> None:
    from server.mail import queue_mail  # server.mail is a job module: load it on use

    try:
        account, user = await account_with_user(session, warning.target_account_id)
    except NotFound:  # purged meanwhile: nobody left to tell
        return
    if user is None or not account.is_local:
        return
    when = warning.created_at.strftime("%Y-%m-%d")
    if approved:
        body = (f"The moderators of {settings.title} approved your appeal of their decision "
                f"of {when}: it has been overruled, and what it did to your account is undone.")
    else:
        body = (f"The moderators of {settings.title} rejected your appeal of their decision "
                f"of {when}: it stands.")
    await queue_mail(session, settings, to=user.email,
                     subject=f"{settings.title}: your appeal was "
                             f"{'approved' if approved else 'rejected'}", text=body)
