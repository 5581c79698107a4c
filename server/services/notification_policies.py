"""Notification policies and requests (Mastodon 4.3's ``NotificationPolicy``,
``NotifyService::DropCondition``/``FilterCondition``, ``NotificationRequest``).

Why it exists: a user chooses, per kind of sender (not followed, not following them, new
accounts, private mentions out of the blue, limited accounts), to accept, filter or drop
what they send. ``policy_verdict`` answers that for one notification about to be created;
filtered mentions are collected per sender as a request, which the user accepts (the
notifications join the list and the sender is let through from then on) or dismisses
(they are deleted).

What it must never do: decide on blocks and mutes (``services.blocks`` does, before this
runs), or filter the kinds Mastodon never filters (new posts of subscriptions, polls,
edits, admin notices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import (
    POLICY_ACTIONS,
    Account,
    DomainBlock,
    DomainBlockSeverity,
    Follow,
    Mention,
    Notification,
    NotificationPermission,
    NotificationPolicy,
    NotificationRequest,
    Status,
)
from server.services import events
from server.services.blocks import muted_senders
from server.services.domain_blocks import accounts_covered_by
from server.services.errors import NotFound, ValidationFailed

Verdict = Literal["accept", "filter", "drop"]

# Mastodon's Notification::PROPERTIES: the kinds a policy may filter or drop.
FILTERABLE_TYPES = frozenset({"mention", "reblog", "follow", "follow_request", "favourite"})
NEW_ACCOUNT_THRESHOLD = timedelta(days=30)
NEW_FOLLOWER_THRESHOLD = timedelta(days=3)
# Counts past this are not meaningful to show (NotificationRequest::MAX_MEANINGFUL_COUNT).
MAX_MEANINGFUL_COUNT = 100
# How far up a thread a private mention looks for the recipient's own mention of the sender.
THREAD_DEPTH_LIMIT = 100

POLICY_FIELDS = ("for_not_following", "for_not_followers", "for_new_accounts",
                 "for_private_mentions", "for_limited_accounts")
# The v1 (4.2-era) booleans and the 4.3 field each one stands for.
V1_POLICY_FIELDS = {"filter_not_following": "for_not_following",
                    "filter_not_followers": "for_not_followers",
                    "filter_new_accounts": "for_new_accounts",
                    "filter_private_mentions": "for_private_mentions"}


@dataclass(frozen=True)
class PolicySummary:
    pending_requests_count: int
    pending_notifications_count: int


# ---------------------------------------------------------------------------- the policy

def _default_policy(account_id: int) -> NotificationPolicy:
    return NotificationPolicy(account_id=account_id, for_not_following="accept",
                              for_not_followers="accept", for_new_accounts="accept",
                              for_private_mentions="filter", for_limited_accounts="filter")


async def get_policy(session: AsyncSession, account: Account) -> NotificationPolicy:
    """The account's policy; the defaults (not stored) when it never changed it."""
    found = await session.scalar(
        select(NotificationPolicy).where(NotificationPolicy.account_id == account.id))
    return found if found is not None else _default_policy(account.id)


def _label(field: str) -> str:
    return field.replace("_", " ").capitalize()


async def update_policy(session: AsyncSession, account: Account,
                        changes: dict[str, str]) -> NotificationPolicy:
    """Set the ``for_*`` fields in ``changes`` (each "accept", "filter" or "drop");
    committed. Nothing is stored if any value is invalid."""
    for field, value in changes.items():
        if field not in POLICY_FIELDS:
            raise ValidationFailed(f"Validation failed: {_label(field)} is unknown")
        if value not in POLICY_ACTIONS:
            raise ValidationFailed(f"Validation failed: {_label(field)} is not included in the list")
    policy = await session.scalar(
        select(NotificationPolicy).where(NotificationPolicy.account_id == account.id))
    if policy is None:
        policy = _default_policy(account.id)
        session.add(policy)
    for field, value in changes.items():
        setattr(policy, field, value)
    policy.updated_at = utcnow()
    await session.commit()
    return policy


async def summarize(session: AsyncSession, account: Account) -> PolicySummary:
    """Pending requests and the notifications they hold (each capped as Mastodon does)."""
    requests = (select(NotificationRequest.notifications_count)
                .where(NotificationRequest.account_id == account.id,
                       NotificationRequest.from_account_id.not_in(muted_senders(account.id)))
                .limit(MAX_MEANINGFUL_COUNT).subquery())
    row = (await session.execute(
        select(func.count(), func.coalesce(func.sum(requests.c.notifications_count), 0))
        .select_from(requests))).one()
    return PolicySummary(int(row[0]), int(row[1]))


# -------------------------------------------------------------------------- the verdict

async def _follows(session: AsyncSession, follower_id: int, target_id: int) -> Follow | None:
    found: Follow | None = await session.scalar(select(Follow).where(
        Follow.account_id == follower_id, Follow.target_account_id == target_id))
    return found


async def _mentions_sender_up_the_thread(session: AsyncSession, status: Status,
                                         sender_id: int) -> bool:
    """Mastodon's ``response_to_recipient?``: a direct status mentioning the sender among
    the ancestors of ``status`` (up to ``THREAD_DEPTH_LIMIT`` levels)."""
    parent_id, seen = status.in_reply_to_id, set[int]()
    while parent_id is not None and parent_id not in seen and len(seen) < THREAD_DEPTH_LIMIT:
        seen.add(parent_id)
        parent = await session.get(Status, parent_id)
        if parent is None:
            return False
        mentioned = await session.scalar(select(Mention.id).where(
            Mention.status_id == parent.id, Mention.account_id == sender_id))
        if mentioned is not None:
            return parent.visibility == "direct"
        parent_id = parent.in_reply_to_id
    return False


async def _is_limited(session: AsyncSession, sender: Account) -> bool:
    """Mastodon's ``silenced?``: Easel limits accounts only through silenced domains."""
    if sender.is_local:
        return False
    domains = list(await session.scalars(select(DomainBlock.domain).where(
        DomainBlock.severity == DomainBlockSeverity.SILENCE.value)))
    if not domains:
        return False
    covered = await session.scalar(
        select(Account.id).where(Account.id == sender.id, accounts_covered_by(domains)))
    return covered is not None


async def policy_verdict(session: AsyncSession, recipient: Account, type_: str,
                         sender: Account, status: Status | None) -> Verdict:
    """What ``recipient``'s policy does with a ``type_`` notification from ``sender``:
    the strictest action among the rules that apply ("drop" beats "filter")."""
    if type_ not in FILTERABLE_TYPES:
        return "accept"
    if await session.scalar(select(NotificationPermission.id).where(
            NotificationPermission.account_id == recipient.id,
            NotificationPermission.from_account_id == sender.id)) is not None:
        return "accept"
    policy = await get_policy(session, recipient)
    actions = {getattr(policy, field) for field in POLICY_FIELDS}
    if actions == {"accept"}:
        return "accept"
    not_following = await _follows(session, recipient.id, sender.id) is None
    applying: list[str] = []
    if not_following:
        applying.append(policy.for_not_following)
    if policy.for_not_followers != "accept":
        follow = await _follows(session, sender.id, recipient.id)
        if follow is None or follow.created_at > utcnow() - NEW_FOLLOWER_THRESHOLD:
            applying.append(policy.for_not_followers)
    if sender.created_at > utcnow() - NEW_ACCOUNT_THRESHOLD:
        applying.append(policy.for_new_accounts)
    if (policy.for_private_mentions != "accept" and not_following and type_ == "mention"
            and status is not None and status.visibility == "direct"
            and not await _mentions_sender_up_the_thread(session, status, sender.id)):
        applying.append(policy.for_private_mentions)
    if policy.for_limited_accounts != "accept" and not_following \
            and await _is_limited(session, sender):
        applying.append(policy.for_limited_accounts)
    if "drop" in applying:
        return "drop"
    return "filter" if "filter" in applying else "accept"


async def hold_as_request(session: AsyncSession, notification: Notification) -> None:
    """File a filtered mention under its sender's request (Mastodon 4.3 keeps requests
    for mentions only; other filtered kinds are reachable with ``include_filtered``)."""
    if notification.type != "mention":
        return
    request = await session.scalar(select(NotificationRequest).where(
        NotificationRequest.account_id == notification.account_id,
        NotificationRequest.from_account_id == notification.from_account_id))
    if request is None:
        request = NotificationRequest(account_id=notification.account_id,
                                      from_account_id=notification.from_account_id)
        session.add(request)
    request.last_status_id = notification.status_id
    request.updated_at = utcnow()
    await session.flush()
    request.notifications_count = await _filtered_mentions(
        session, notification.account_id, notification.from_account_id)


async def _filtered_mentions(session: AsyncSession, account_id: int, from_account_id: int) -> int:
    held = (select(Notification.id).where(
        Notification.account_id == account_id, Notification.from_account_id == from_account_id,
        Notification.type == "mention", Notification.filtered.is_(True))
        .limit(MAX_MEANINGFUL_COUNT).subquery())
    return int(await session.scalar(select(func.count()).select_from(held)) or 0)


# ---------------------------------------------------------------------------- requests

def _own_requests(viewer: Account) -> Any:
    return select(NotificationRequest).where(
        NotificationRequest.account_id == viewer.id,
        NotificationRequest.from_account_id.not_in(muted_senders(viewer.id)))


async def list_requests(session: AsyncSession, viewer: Account, page: Any) -> list[NotificationRequest]:
    """The viewer's pending requests, newest first (``page``: a ``timelines.Paging``)."""
    rows = list(await session.scalars(page.apply(_own_requests(viewer), NotificationRequest.id)))
    result: list[NotificationRequest] = page.arrange(rows)
    return result


async def get_request(session: AsyncSession, viewer: Account, request_id: int) -> NotificationRequest:
    found: NotificationRequest | None = await session.scalar(
        _own_requests(viewer).where(NotificationRequest.id == request_id))
    if found is None:
        raise NotFound("Record not found")
    return found


async def _owned(session: AsyncSession, viewer: Account,
                 request_ids: Sequence[int]) -> list[NotificationRequest]:
    if not request_ids:
        return []
    return list(await session.scalars(select(NotificationRequest).where(
        NotificationRequest.account_id == viewer.id, NotificationRequest.id.in_(request_ids))))


async def accept_requests(session: AsyncSession, viewer: Account,
                          request_ids: Sequence[int]) -> None:
    """Let each request's sender through: its filtered notifications join the list, later
    ones are not filtered; the request goes; open streams are told to reload the list
(``notifications_merged``). Unknown ids are skipped. Committed."""
    merged = 0
    for request in await _owned(session, viewer, request_ids):
        exists = await session.scalar(select(NotificationPermission.id).where(
            NotificationPermission.account_id == viewer.id,
            NotificationPermission.from_account_id == request.from_account_id))
        if exists is None:
            session.add(NotificationPermission(account_id=viewer.id,
                                               from_account_id=request.from_account_id))
        unfiltered = await session.execute(update(Notification).where(
            Notification.account_id == viewer.id,
            Notification.from_account_id == request.from_account_id,
            Notification.filtered.is_(True)).values(filtered=False))
        merged += getattr(unfiltered, "rowcount", 0) or 0
        await session.delete(request)
    if merged:
        events.notifications_merged(session, viewer.id)
    await session.commit()


async def dismiss_requests(session: AsyncSession, viewer: Account,
                           request_ids: Sequence[int]) -> None:
    """Drop each request and the filtered notifications it held. Unknown ids are skipped.
    Committed."""
    for request in await _owned(session, viewer, request_ids):
        await session.execute(delete(Notification).where(
            Notification.account_id == viewer.id,
            Notification.from_account_id == request.from_account_id,
            Notification.filtered.is_(True)))
        await session.delete(request)
    await session.commit()


async def accept_request(session: AsyncSession, viewer: Account, request_id: int) -> None:
    await get_request(session, viewer, request_id)
    await accept_requests(session, viewer, [request_id])


async def dismiss_request(session: AsyncSession, viewer: Account, request_id: int) -> None:
    await get_request(session, viewer, request_id)
    await dismiss_requests(session, viewer, [request_id])
