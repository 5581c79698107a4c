"""Creating notifications: one row per (recipient, type, sender, status), never for oneself."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Account, Notification
from server.services.blocks import notification_blocked


async def notify(
    session: AsyncSession,
    recipient: Account,
    type_: str,
    sender: Account,
    status_id: int | None = None,
) -> Notification | None:
    """Add a notification to ``session`` (the caller commits); None when not warranted.

    Only local accounts receive notifications, and never from an account they block, that
    blocks them, or that they mute with its notifications; a repeated action (favourite, unfavourite,
    favourite again) does not notify twice.
    """
    if not recipient.is_local or recipient.id == sender.id:
        return None
    if await notification_blocked(session, recipient.id, sender.id):
        return None
    existing = await session.scalar(select(Notification).where(
        Notification.account_id == recipient.id, Notification.type == type_,
        Notification.from_account_id == sender.id,
        Notification.status_id.is_(None) if status_id is None
        else Notification.status_id == status_id,
    ))
    if existing is not None:
        return None
    notification = Notification(account_id=recipient.id, type=type_, from_account_id=sender.id,
                                status_id=status_id)
    session.add(notification)
    return notification
