"""The instance's weekly activity (``GET /api/v1/instance/activity``), counted from its tables.

Why it exists: apps and fediverse directories show how busy an instance is. Mastodon
counts three things as they happen (in Redis): local statuses that are public or unlisted
(boosts included), logins (distinct users a day, merged over the week) and local sign-ups.
Easel keeps no such counters, so it counts what its tables still hold:

* ``statuses``: this server's published public and unlisted statuses (boosts included),
  by the time they went out (their id). Deleted ones are gone and not counted.
* ``registrations``: approved local logins by the day they signed up. Accounts since
  deleted are not counted.
* ``logins``: distinct local users with a sign-in or a use recorded in the week: a token
  issued (each sign-in of an app) or last used, an address last used from
  (``EASEL_IP_RETENTION_DAYS``), or the login's last activity. Easel keeps each of those as
  its *latest* time only, so the current week is counted in full but earlier weeks are a
  lower bound: someone active both then and since shows only in the later week, unless an
  older token or address of theirs was last used then.

Weeks are seven whole UTC days, newest first, the first ending with today; ``week`` is the
Unix time of the week's first midnight (as Mastodon's documentation describes it; Mastodon
itself starts each week at the time of the request). Three queries, whatever the numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import id_floor, utcnow
from server.models import OAuthToken, Status, User, UserIp

WEEKS = 12
WEEK = timedelta(days=7)
# The span of ids a week covers (ids are milliseconds shifted left 16 bits).
_WEEK_OF_IDS = int(WEEK.total_seconds() * 1000) << 16


def week_starts(now: datetime | None = None) -> list[datetime]:
    """The first midnight (UTC) of each of the ``WEEKS`` weeks, newest first; the newest
    week is the seven days ending with ``now``'s day."""
    now = now or utcnow()
    tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
    return [tomorrow - WEEK * (i + 1) for i in range(WEEKS)]


def _week_of(at: datetime, oldest: datetime) -> int | None:
    """The index (0: the oldest week) of the week holding ``at``, or None outside them."""
    index = (at - oldest) // WEEK
    return index if 0 <= index < WEEKS else None


async def _statuses(session: AsyncSession, oldest: datetime) -> list[int]:
    """Per week (oldest first): published public and unlisted local statuses."""
    base = id_floor(oldest)
    bucket = ((Status.id - base) // _WEEK_OF_IDS).label("week")
    rows = await session.execute(
        select(bucket, func.count()).where(
            Status.published.is_(True), Status.visibility.in_(("public", "unlisted")),
            Status.id >= base, Status.id < id_floor(oldest + WEEK * WEEKS),
            Status.local.is_(True))
        .group_by(bucket))
    counts = [0] * WEEKS
    for index, n in rows:
        if 0 <= index < WEEKS:
            counts[int(index)] += int(n)
    return counts


async def _registrations(session: AsyncSession, oldest: datetime) -> list[int]:
    """Per week (oldest first): approved local logins that signed up then."""
    counts = [0] * WEEKS
    for created_at in await session.scalars(
            select(User.created_at).where(User.approved.is_(True), User.created_at >= oldest)):
        index = _week_of(created_at, oldest)
        if index is not None:
            counts[index] += 1
    return counts


async def _logins(session: AsyncSession, oldest: datetime) -> list[int]:
    """Per week (oldest first): distinct users with a login used or made then."""
    uses = union_all(
        select(User.id, User.last_active_at).where(User.last_active_at >= oldest),
        select(UserIp.user_id, UserIp.used_at).where(UserIp.used_at >= oldest),
        select(OAuthToken.user_id, OAuthToken.created_at)
        .where(OAuthToken.user_id.is_not(None), OAuthToken.created_at >= oldest),
        select(OAuthToken.user_id, OAuthToken.last_used_at)
        .where(OAuthToken.user_id.is_not(None), OAuthToken.last_used_at >= oldest),
    ).subquery()
    users: list[set[int]] = [set() for _ in range(WEEKS)]
    # Read through the subquery's columns so each time comes back as a UTCDateTime.
    rows = await session.execute(select(uses.c[0], uses.c[1]).distinct())
    for user_id, at in rows:
        index = _week_of(at, oldest)
        if index is not None:
            users[index].add(user_id)
    return [len(week) for week in users]


async def weekly_activity(session: AsyncSession, now: datetime | None = None) -> list[dict[str, str]]:
    """Mastodon's instance activity: ``{week, statuses, logins, registrations}`` (strings)
    for each of the last ``WEEKS`` weeks, newest first."""
    starts = week_starts(now)
    oldest = starts[-1]
    statuses = await _statuses(session, oldest)
    logins = await _logins(session, oldest)
    registrations = await _registrations(session, oldest)
    return [{"week": str(int(start.timestamp())),
             "statuses": str(statuses[WEEKS - 1 - i]),
             "logins": str(logins[WEEKS - 1 - i]),
             "registrations": str(registrations[WEEKS - 1 - i])}
            for i, start in enumerate(starts)]
