"""Where local logins are used from: each (user, address) pair and when it was last used.

Why it exists: moderators see the addresses an account was used from (Mastodon's
Admin::Account ``ip`` and ``ips``, the admin account page) and find every account that
used an address or a network (the admin account lists' ``ip`` filter). An address is
recorded at sign-up, at every sign-in (the web form, the OAuth authorize form, the
password grant) and when a token or a web login is used — at most every
``server.last_use.TOUCH_INTERVAL``, beside the stamps of last use.

Retention: a row is kept ``EASEL_IP_RETENTION_DAYS`` after its last use. There is no
periodic scheduler, so each write makes sure an ``expire_user_ips`` job is queued for the
calendar day the written row expires (its ref, e.g. ``"2027-11-30"``), due just after that
day; the job deletes every row past the retention, for all users. So every row is covered
by some job, and there is at most one job per day.

What it must never do: record anything when the retention is 0, store text that is not an
address, raise when the same address is first used twice at once (one upsert), or commit
(the caller commits, with the queued job).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.addresses import AddressError, address_key, network_range, parse_address, parse_network
from server.ids import utcnow
from server.models import Job, JobState, UserIp
from server.queue.jobs import enqueue
from server.queue.kinds import job_kind
from server.services.errors import ValidationFailed
from server.settings import Settings

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

    from server.queue.runner import JobContext

log = logging.getLogger(__name__)

EXPIRE_JOB = "expire_user_ips"
# The most addresses an Admin::Account lists (the most recently used).
MAX_LISTED = 50


def client_ip(connection: HTTPConnection) -> str | None:
    """The request's client address (uvicorn has applied EASEL_TRUSTED_PROXIES), if any."""
    return connection.client.host if connection.client is not None else None


def _normalised(ip_text: str | None) -> tuple[str, str] | None:
    """``(text, key)`` of an address as stored (an IPv4-mapped address as IPv4), or None."""
    if not ip_text:
        return None
    try:
        address = parse_address(ip_text)
    except AddressError:
        return None
    text = str(address)
    return text, address_key(text)


def expiry_day(used_at: datetime, settings: Settings) -> date:
    """The day a row last used at ``used_at`` falls out of the retention."""
    return (used_at + timedelta(days=settings.ip_retention_days)).astimezone(UTC).date()


async def record_ip(session: AsyncSession, settings: Settings, user_id: int | None,
                    ip_text: str | None) -> None:
    """``user_id`` used ``ip_text`` now: its row is added or its ``used_at`` moved to now,
    and the expiry job of the day it expires is queued. Nothing when the retention is 0
    (what was recorded before is deleted at start: ``expire_if_off``), or without a user
    or a readable address. Not committed."""
    if user_id is None or settings.ip_retention_days <= 0:
        return
    found = _normalised(ip_text)
    if found is None:
        return
    text, key = found
    now = utcnow()
    await session.execute(_upsert(session, {"user_id": user_id, "ip": text, "ip_key": key,
                                            "used_at": now}))
    await _schedule_expiry(session, expiry_day(now, settings))


async def expire_if_off(session: AsyncSession, settings: Settings) -> None:
    """At a process's start: when the retention is 0 but addresses recorded before (under
    another retention) are still stored, queue their deletion, due now. Not committed."""
    if settings.ip_retention_days <= 0 and \
            await session.scalar(select(UserIp.id).limit(1)) is not None:
        await _schedule_expiry(session, utcnow().date() - timedelta(days=1))  # due now


def _upsert(session: AsyncSession, values: dict[str, Any]) -> Any:
    """``INSERT … ON CONFLICT (user_id, ip_key) DO UPDATE`` for the session's dialect."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(UserIp).values(**values)
    return statement.on_conflict_do_update(
        index_elements=["user_id", "ip_key"],
        set_={"ip": statement.excluded.ip, "used_at": statement.excluded.used_at})


async def _schedule_expiry(session: AsyncSession, day: date) -> None:
    """The ``expire_user_ips`` job of ``day``, due at the start of the next day (one job
    per day: most writes find it queued already)."""
    ref = day.isoformat()
    state = await session.scalar(select(Job.state).where(Job.kind == EXPIRE_JOB, Job.ref == ref))
    if state in (JobState.QUEUED, JobState.RUNNING):
        return
    due = datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
    try:
        # A savepoint: two first writes of the day may both find no job; the second insert
        # then meets the first's row and changes nothing else of the caller's transaction.
        async with session.begin_nested():
            job = await enqueue(session, expire_user_ips_job, ref,
                                delay=max(due - utcnow(), timedelta(0)), again=True)
            if job.state == JobState.QUEUED:
                job.next_try_at = due
    except IntegrityError:
        log.debug("expire_user_ips %s: queued by another request meanwhile", ref)


async def expire(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Delete every row unused for longer than the retention at ``now`` (every row when
    the retention is 0: none may be kept); how many. Not committed."""
    cutoff = now - timedelta(days=max(settings.ip_retention_days, 0))
    result = await session.execute(delete(UserIp).where(UserIp.used_at < cutoff)
                                   .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@job_kind(EXPIRE_JOB, queue="default", max_attempts=5, retry_base=timedelta(minutes=5))
async def expire_user_ips_job(context: JobContext) -> None:
    # Due just after its day; run by a test's clock, as if at that time.
    now = max(utcnow(), context.job.next_try_at)
    deleted = await expire(context.session, context.settings, now)
    log.info("expire_user_ips %s: %d addresses past the retention deleted", context.job.ref, deleted)


# ------------------------------------------------------------------------- reading

def users_in(network_text: str) -> Select[Any]:
    """The ids of the users who used an address in ``network_text`` (an address or a
    CIDR network); ValidationFailed (422) when it is neither."""
    try:
        network = parse_network(network_text)
    except AddressError:
        raise ValidationFailed("ip is not an IP address or network (CIDR, e.g. 192.0.2.0/24)") from None
    first, last = network_range(network)
    return select(UserIp.user_id).where(UserIp.ip_key.between(first, last))


async def recent_ips(session: AsyncSession, user_ids: Iterable[int | None],
                     limit: int = MAX_LISTED) -> dict[int, list[UserIp]]:
    """Each user's addresses, most recently used first (at most ``limit`` each), in one
    query; users without any are absent."""
    wanted = {i for i in user_ids if i is not None}
    if not wanted:
        return {}
    rank = func.row_number().over(partition_by=UserIp.user_id,
                                  order_by=(UserIp.used_at.desc(), UserIp.id.desc())).label("rank")
    ranked = select(UserIp.id, rank).where(UserIp.user_id.in_(wanted)).subquery()
    rows: Sequence[UserIp] = list(await session.scalars(
        select(UserIp).join(ranked, ranked.c.id == UserIp.id).where(ranked.c.rank <= limit)
        .order_by(UserIp.used_at.desc(), UserIp.id.desc())))
    found: dict[int, list[UserIp]] = {}
    for row in rows:
        found.setdefault(row.user_id, []).append(row)
    return found
