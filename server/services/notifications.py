"""Creating notifications: one row per (recipient, type, sender, status), never for oneself.

Each new notification passes the recipient's blocks and mutes, then their notification
policy (``services.notification_policies``): dropped, filtered (kept with
``filtered=True``, a mention filed under the sender's request) or let through. A
notification let through of a groupable kind gets Mastodon 4.3's ``group_key``. A
moderator's warning is told with :func:`notify_moderation_warning`, and the moderators'
``admin.sign_up`` and ``admin.report`` with :func:`notify_staff`: nothing holds those back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import Account, Notification, Status, User
from server.services import events
from server.services.blocks import notification_blocked
from server.services.notification_policies import hold_as_request, policy_verdict
from server.services.thread_mutes import thread_muted
from server.services.web_push import enqueue_pushes

# Mastodon's Notification::GROUPABLE_NOTIFICATION_TYPES.
GROUPABLE_TYPES = ("favourite", "follow", "reblog", "admin.sign_up")
# A group spans at most this many hours from its first notification.
MAXIMUM_GROUP_SPAN_HOURS = 12


async def notify(
    session: AsyncSession,
    recipient: Account,
    type_: str,
    sender: Account,
    status_id: int | None = None,
) -> Notification | None:
    """Add a notification to ``session`` (the caller commits); None when not warranted.

    Only local accounts receive notifications, and never from an account they block, that
    blocks them, or that they mute with its notifications, nor about a status of a thread
    they muted; a repeated action (favourite, unfavourite,
    favourite again) does not notify twice. A notification the recipient's policy filters
    is returned with ``filtered`` set: it must not be streamed.
    """
    if not recipient.is_local or recipient.id == sender.id:
        return None
    if await notification_blocked(session, recipient.id, sender.id):
        return None
    if status_id is not None and await thread_muted(session, recipient.id, status_id):
        return None  # the recipient muted this thread (Mastodon's conversation_muted?)
    existing = await session.scalar(select(Notification).where(
        Notification.account_id == recipient.id, Notification.type == type_,
        Notification.from_account_id == sender.id,
        Notification.status_id.is_(None) if status_id is None
        else Notification.status_id == status_id,
    ))
    if existing is not None:
        return None
    status = await session.get(Status, status_id) if status_id is not None else None
    verdict = await policy_verdict(session, recipient, type_, sender, status)
    if verdict == "drop":
        return None
    now = utcnow()
    notification = Notification(account_id=recipient.id, type=type_, from_account_id=sender.id,
                                status_id=status_id, created_at=now,
                                filtered=verdict == "filter")
    if not notification.filtered:
        notification.group_key = await _group_key(session, recipient.id, type_, status_id, now)
        events.notification_created(session, notification)
    session.add(notification)
    if notification.filtered:
        await hold_as_request(session, notification)
    else:
        await enqueue_pushes(session, notification)  # pushed by a job, once committed
    return notification


async def notify_moderation_warning(session: AsyncSession, recipient: Account,
                                    warning_id: int) -> Notification:
    """Tell local ``recipient`` of a moderator's warning (Mastodon 4.3's
    ``moderation_warning``). Its sender is the recipient, as in Mastodon's data model (a
    warning has no originating account); no block, mute or policy holds it back. The
    caller commits."""
    notification = Notification(account_id=recipient.id, type="moderation_warning",
                                from_account_id=recipient.id, account_warning_id=warning_id,
                                created_at=utcnow())
    session.add(notification)
    events.notification_created(session, notification)
    return notification


STAFF_TYPES = ("admin.sign_up", "admin.report")


async def notify_staff(session: AsyncSession, type_: str, sender: Account, *,
                       report_id: int | None = None) -> list[Notification]:
    """Tell every admin who can act (a local, enabled, unsuspended login) of a new sign-up
    (``admin.sign_up``, sent by the new account) or report (``admin.report``, sent by the
    reporter: for a report from another server, its actor), as Mastodon's moderators are
    told in their apps. Moderation is their duty: no block, mute or notification policy
    holds these back; the sender is never told of its own. The caller commits."""
    if type_ not in STAFF_TYPES:
        raise ValueError(type_)
    admins = await session.scalars(
        select(Account.id).join(User, User.account_id == Account.id)
        .where(User.admin.is_(True), User.disabled.is_(False), Account.suspended_at.is_(None),
               Account.domain == "", Account.id != sender.id))
    now = utcnow()
    told = []
    for admin_id in admins:
        notification = Notification(account_id=admin_id, type=type_, from_account_id=sender.id,
                                    report_id=report_id, created_at=now,
                                    group_key=await _group_key(session, admin_id, type_, None, now))
        session.add(notification)
        events.notification_created(session, notification)
        await enqueue_pushes(session, notification)
        told.append(notification)
    return told


async def notify_staff_of_sign_up(session: AsyncSession, user: User) -> None:
    """``admin.sign_up`` once a new person's address is confirmed (at sign-up when mail is
    off), whether or not the sign-up awaits approval. The caller commits."""
    account = await session.get(Account, user.account_id)
    if account is not None:
        await notify_staff(session, "admin.sign_up", account)


async def _group_key(session: AsyncSession, recipient_id: int, type_: str,
                     status_id: int | None, now: datetime) -> str | None:
    """Mastodon's ``set_group_key!``: "<type>[-<status id>]-<hour bucket>", the bucket of
    the latest group of that prefix reused while it is under twelve hours old."""
    if type_ not in GROUPABLE_TYPES:
        return None
    prefix = f"{type_}-{status_id}" if type_ in ("favourite", "reblog") else type_
    hour_bucket = int(now.timestamp()) // 3600
    previous = await session.scalar(
        select(Notification.group_key).where(
            Notification.account_id == recipient_id,
            Notification.group_key.startswith(f"{prefix}-", autoescape=True))
        .order_by(Notification.id.desc()).limit(1))
    if previous is not None:
        previous_bucket = previous.rsplit("-", 1)[-1]
        if previous_bucket.isdigit() and hour_bucket < int(previous_bucket) + MAXIMUM_GROUP_SPAN_HOURS:
            hour_bucket = int(previous_bucket)
    return f"{prefix}-{hour_bucket}"
