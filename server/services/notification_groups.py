"""Grouped notifications (Mastodon 4.3's ``/api/v2/notifications``): a page of groups, one
group per ``group_key``, with the counts and sample senders clients show as "Alice and 4
others favourited your post".

Why it exists: a notification of a groupable kind gets a ``group_key`` when it is created
(``services.notifications``); this module pages over notifications collapsing each group
to its most recent member (Mastodon's ``paginate_groups``) and reads each group's
metadata: count, up to eight most recent senders, and the ids it spans in the page. A
notification of a kind the client does not group (``grouped_types``), or without a key, is
its own group ``ungrouped-<id>``.

What it must never do: show another account's notifications, or a filtered one unless the
query it is given includes them. Only ``dismiss_group`` writes (and commits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import parse_id
from server.models import Account, Marker, Notification
from server.services.errors import NotFound
from server.services.notifications import GROUPABLE_TYPES
from server.services.timelines import Paging, browserable_notifications

# Senders shown per group (NotificationGroup::SAMPLE_ACCOUNTS_SIZE).
SAMPLE_ACCOUNTS_SIZE = 8
UNGROUPED_PREFIX = "ungrouped-"


@dataclass
class NotificationGroup:
    """One group as Mastodon's ``NotificationGroup``; the ``page_*`` fields only for a page."""

    group_key: str
    notification: Notification  # the group's most recent notification (type, status)
    most_recent_notification_id: int
    notifications_count: int
    sample_account_ids: list[int]
    page_min_id: int | None = None
    page_max_id: int | None = None
    latest_page_notification_at: datetime | None = None


def grouped_types_from(raw: Sequence[str]) -> tuple[str, ...]:
    """The kinds to group: the client's list (unknown kinds ignored), all when it sent none."""
    wanted = tuple(t for t in GROUPABLE_TYPES if t in raw)
    return wanted if raw else GROUPABLE_TYPES


def effective_group_key(notification: Notification, grouped_types: Sequence[str]) -> str:
    if notification.group_key and notification.type in grouped_types:
        return notification.group_key
    return f"{UNGROUPED_PREFIX}{notification.id}"


async def _representatives(session: AsyncSession, query: Select[Any], *, limit: int,
                           max_id: int | None, since_id: int | None, min_id: int | None,
                           grouped_types: Sequence[str]) -> list[Notification]:
    """The first notification met of each of up to ``limit`` groups, newest first: walking
    down from ``max_id`` (above ``since_id``), or up from ``min_id``."""
    ascending = min_id is not None
    seen: dict[str, Notification] = {}
    cursor = min_id if ascending else max_id
    batch = max(limit * 2, 40)
    while len(seen) < limit:
        scan = query
        if ascending:
            scan = scan.where(Notification.id > cursor) if cursor is not None else scan
            if max_id is not None:
                scan = scan.where(Notification.id < max_id)
            scan = scan.order_by(Notification.id.asc())
        else:
            scan = scan.where(Notification.id < cursor) if cursor is not None else scan
            if since_id is not None:
                scan = scan.where(Notification.id > since_id)
            scan = scan.order_by(Notification.id.desc())
        rows = list(await session.scalars(scan.limit(batch)))
        for row in rows:
            key = effective_group_key(row, grouped_types)
            if key not in seen:
                seen[key] = row
                if len(seen) == limit:
                    break
        if len(rows) < batch:
            break
        cursor = rows[-1].id
    return sorted(seen.values(), key=lambda n: n.id, reverse=True)


async def _group_data(session: AsyncSession, query: Select[Any], group_keys: Sequence[str],
                      *, upto: int | None, from_id: int | None) -> dict[str, NotificationGroup]:
    """Count, most recent id/time and sample senders of each keyed group (members up to
    ``upto``), and the lowest member id from ``from_id`` on (the page's ``page_min_id``)."""
    if not group_keys:
        return {}
    members = query.where(Notification.group_key.in_(group_keys))
    if upto is not None:
        members = members.where(Notification.id <= upto)
    inner = members.subquery()
    totals = {row[0]: row for row in await session.execute(
        select(inner.c.group_key, func.count(), func.max(inner.c.id),
               func.max(inner.c.created_at)).group_by(inner.c.group_key))}
    lowest: dict[str, int] = {}
    if from_id is not None:
        lowest = {key: low for key, low in await session.execute(
            select(inner.c.group_key, func.min(inner.c.id))
            .where(inner.c.id >= from_id).group_by(inner.c.group_key))}
    ranked = select(inner.c.group_key, inner.c.from_account_id, func.row_number().over(
        partition_by=inner.c.group_key, order_by=inner.c.id.desc()).label("rank")).subquery()
    samples: dict[str, list[int]] = {}
    for key, account_id in await session.execute(
            select(ranked.c.group_key, ranked.c.from_account_id)
            .where(ranked.c.rank <= SAMPLE_ACCOUNTS_SIZE)
            .order_by(ranked.c.group_key, ranked.c.rank)):
        samples.setdefault(key, []).append(account_id)
    newest_ids = [row[2] for row in totals.values()]
    newest = {n.id: n for n in await session.scalars(
        select(Notification).where(Notification.id.in_(newest_ids)))}
    result = {}
    for key, (_, count, newest_id, _newest_at) in totals.items():
        result[key] = NotificationGroup(
            group_key=key, notification=newest[newest_id], most_recent_notification_id=newest_id,
            notifications_count=count, sample_account_ids=samples.get(key, []),
            page_min_id=lowest.get(key), page_max_id=newest_id,
            latest_page_notification_at=newest[newest_id].created_at)
    return result


def _single(notification: Notification, *, paginated: bool) -> NotificationGroup:
    return NotificationGroup(
        group_key=f"{UNGROUPED_PREFIX}{notification.id}", notification=notification,
        most_recent_notification_id=notification.id, notifications_count=1,
        sample_account_ids=[notification.from_account_id],
        page_min_id=notification.id if paginated else None,
        page_max_id=notification.id if paginated else None,
        latest_page_notification_at=notification.created_at if paginated else None)


async def list_groups(session: AsyncSession, query: Select[Any], *, limit: int,
                      max_id: int | None, since_id: int | None, min_id: int | None,
                      grouped_types: Sequence[str]) -> list[NotificationGroup]:
    """A page of groups of ``query`` (``browserable_notifications``), newest first."""
    found = await _representatives(session, query, limit=limit, max_id=max_id,
                                   since_id=since_id, min_id=min_id, grouped_types=grouped_types)
    if not found:
        return []
    low, high = found[-1].id, found[0].id
    keys = [n.group_key for n in found
            if n.group_key and effective_group_key(n, grouped_types) == n.group_key]
    data = await _group_data(session, query, keys, upto=high, from_id=low)
    groups = []
    for notification in found:
        key = effective_group_key(notification, grouped_types)
        groups.append(data[key] if key in data else _single(notification, paginated=True))
    return groups


async def count_unread_groups(session: AsyncSession, viewer: Account, query: Select[Any], *,
                              limit: int, grouped_types: Sequence[str]) -> int:
    """Groups of ``query`` newer than the viewer's notifications marker, up to ``limit``."""
    marker = await session.scalar(select(Marker.last_read_id).where(
        Marker.account_id == viewer.id, Marker.timeline == "notifications"))
    found = await _representatives(session, query, limit=limit, max_id=None, since_id=None,
                                   min_id=marker if marker is not None else 0,
                                   grouped_types=grouped_types)
    return len(found)


def _by_group_key(query: Select[Any], group_key: str) -> Select[Any]:
    """Mastodon's ``by_group_key``: "ungrouped-<id>" is that notification, else the key."""
    if group_key.startswith(UNGROUPED_PREFIX):
        notification_id = parse_id(group_key[len(UNGROUPED_PREFIX):])
        return query.where(Notification.id == (notification_id or -1))
    return query.where(Notification.group_key == group_key)


async def get_group(session: AsyncSession, viewer: Account, group_key: str) -> NotificationGroup:
    """One of the viewer's groups, with its whole count and most recent senders."""
    query = browserable_notifications(viewer, include_filtered=True)
    newest = await session.scalar(
        _by_group_key(query, group_key).order_by(Notification.id.desc()).limit(1))
    if newest is None:
        raise NotFound("Record not found")
    if group_key.startswith(UNGROUPED_PREFIX):
        return _single(newest, paginated=False)
    group = (await _group_data(session, query, [group_key], upto=None, from_id=None))[group_key]
    group.page_min_id = group.page_max_id = group.latest_page_notification_at = None
    return group


async def group_senders(session: AsyncSession, viewer: Account, group_key: str,
                        page: Paging) -> list[tuple[int, Account]]:
    """A page of the group's (notification id, sender), newest first; an unknown key is
    simply an empty page, as in Mastodon."""
    members = _by_group_key(browserable_notifications(viewer, include_filtered=True), group_key)
    query = cast(Select[Any], members.join(Account, Account.id == Notification.from_account_id)
                 .with_only_columns(Notification.id, Account))
    rows = [(row[0], row[1]) for row in await session.execute(page.apply(query, Notification.id))]
    return page.arrange(rows)


async def dismiss_group(session: AsyncSession, viewer: Account, group_key: str) -> None:
    """Delete the viewer's notifications of the group (none: nothing happens); committed."""
    if group_key.startswith(UNGROUPED_PREFIX):
        notification_id = parse_id(group_key[len(UNGROUPED_PREFIX):])
        if notification_id is None:
            return
        condition = Notification.id == notification_id
    else:
        condition = Notification.group_key == group_key
    await session.execute(delete(Notification).where(
        Notification.account_id == viewer.id, condition))
    await session.commit()
