"""IP blocks: networks the instance refuses, or lets sign up only for approval (Mastodon's
``IpBlock``).

Why it exists: a wave of spam sign-ups, or abuse from one network, is stopped at the
address, before any account exists. Three severities, as Mastodon's:

* ``sign_up_requires_approval``: a sign-up from the network waits for an admin even when
  registrations are open (or an invite admits it);
* ``sign_up_block``: sign-ups from the network are refused (403), invites included;
* ``no_access``: every request from the network is refused (403) but the health checks
  (``server/api/middleware.py``'s ``IpBlockMiddleware``).

Where blocks overlap (a /16 and a /24 inside it) the strongest applies. A block may expire
(``expires_in`` seconds from its creation or update); an expired block no longer applies
anywhere, but is still listed (marked so on the admin page and in the CLI) until it is
removed or a new block for the same network replaces it, as Mastodon lists them until its
clean-up job runs.

Every request asks :class:`IpBlockMatcher` — one per web process, in ``EaselState`` — which
answers from memory (sorted key ranges, a bisect; with no blocks, without parsing the
address at all) and reloads the active blocks from the database when its snapshot is older
than ``RELOAD_SECONDS`` or a block in it expires. So a block made on another web process or
by ``easel admin ip-block`` takes effect there within ``RELOAD_SECONDS`` (10 s); in the
process that made it (the admin API and pages), at once: the change reloads the matcher.
Sign-ups ask the database itself (:func:`sign_up_severity`), so they see a change at once.

What it must never do: store a network it cannot parse, an unknown severity or a
non-positive expiry (``ValidationFailed``, nothing written); store the same network twice
("Ip has already been taken"); or let an unreadable client address, or a database that
does not answer a reload, fail a request (it is not blocked; the last snapshot is kept).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.addresses import AddressError, address_key, network_range, network_text, parse_network
from server.db import Database
from server.ids import utcnow
from server.models import IpBlock, IpBlockSeverity
from server.services.errors import NotFound, ValidationFailed, get_or_404

log = logging.getLogger(__name__)

# Weakest first: a rank is the index here (0: not blocked).
SEVERITIES = (IpBlockSeverity.SIGN_UP_REQUIRES_APPROVAL.value, IpBlockSeverity.SIGN_UP_BLOCK.value,
              IpBlockSeverity.NO_ACCESS.value)
_RANKS = {severity: rank for rank, severity in enumerate(SEVERITIES, start=1)}
_BY_RANK: tuple[str | None, ...] = (None, *SEVERITIES)
MAX_COMMENT_LENGTH = 5000
MAX_EXPIRES_IN = 100 * 366 * 86400  # a century: anything longer is "never"
# How old a process's snapshot of the blocks may get before a request reloads it.
RELOAD_SECONDS = 10.0
# After a failed reload (the database not answering), how long the old snapshot serves on.
RETRY_SECONDS = 2.0
# Addresses whose keys a matcher remembers (parsing one costs a microsecond or two).
KEY_CACHE_SIZE = 4096

KEEP: Any = object()  # update_ip_block: leave this attribute as it is


# ------------------------------------------------------------------------ validation

def _network(ip: str | None) -> tuple[str, str, str]:
    """(``ip`` as stored, first key, last key) of an address or CIDR network."""
    if ip is None or not ip.strip():
        raise ValidationFailed("Ip can't be blank")
    try:
        network = parse_network(ip)
    except AddressError as error:
        raise ValidationFailed(f"Ip {error}") from None
    first, last = network_range(network)
    return network_text(network), first, last


def _severity(value: str | None) -> str:
    if value is None or not value.strip():
        raise ValidationFailed("Severity can't be blank")
    severity = value.strip().lower()
    if severity not in _RANKS:
        raise ValidationFailed(f"Severity {value!r} is not one of {', '.join(SEVERITIES)}")
    return severity


def _comment(value: str | None) -> str:
    text = (value or "").strip()
    if len(text) > MAX_COMMENT_LENGTH:
        raise ValidationFailed(f"Comment is too long (maximum is {MAX_COMMENT_LENGTH} characters)")
    return text


def _expires_at(expires_in: object, now: datetime) -> datetime | None:
    """``expires_in`` seconds from ``now`` (a whole number, or digits as text); None or
    "": never."""
    if expires_in is None or expires_in == "":
        return None
    seconds: int | None = None
    if isinstance(expires_in, int) and not isinstance(expires_in, bool):
        seconds = expires_in
    elif isinstance(expires_in, float) and expires_in.is_integer():  # JSON's 3600.0
        seconds = int(expires_in)
    elif isinstance(expires_in, str) and expires_in.strip().isascii() and expires_in.strip().isdigit():
        seconds = int(expires_in.strip()[:20])
    if seconds is None or seconds <= 0:
        raise ValidationFailed("Expires in must be a positive whole number of seconds")
    if seconds > MAX_EXPIRES_IN:
        raise ValidationFailed("Expires in is too long (leave it empty for a block that never expires)")
    return now + timedelta(seconds=seconds)


def is_active(block: IpBlock, now: datetime | None = None) -> bool:
    return block.expires_at is None or block.expires_at > (now or utcnow())


# --------------------------------------------------------------------------- changes

async def _taken(session: AsyncSession, ip: str, now: datetime, *, other_than: int | None = None) -> None:
    """"Ip has already been taken" when another block has this network; an expired one is
    removed instead (the new block replaces it)."""
    query = select(IpBlock).where(IpBlock.ip == ip)
    if other_than is not None:
        query = query.where(IpBlock.id != other_than)
    for existing in await session.scalars(query):
        if is_active(existing, now):
            raise ValidationFailed("Ip has already been taken")
        await session.delete(existing)
        await session.flush()  # before the new row: the network is unique


async def _committed(session: AsyncSession) -> None:
    """Commit; a block of the same network committed meanwhile (the unique network) is
    "Ip has already been taken", nothing stored."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise ValidationFailed("Ip has already been taken") from None


async def create_ip_block(
    session: AsyncSession, ip: str | None, severity: str | None, *, comment: str | None = None,
    expires_in: object = None, matcher: IpBlockMatcher | None = None,
) -> IpBlock:
    """A new block (committed); ``ValidationFailed`` (nothing stored) for a bad network,
    severity, comment or expiry, or a network blocked already. ``matcher`` (this process's)
    is reloaded at once."""
    now = utcnow()
    text, first, last = _network(ip)
    block = IpBlock(ip=text, first_key=first, last_key=last, severity=_severity(severity),
                    comment=_comment(comment), expires_at=_expires_at(expires_in, now),
                    created_at=now, updated_at=now)
    await _taken(session, text, now)
    session.add(block)
    await _committed(session)
    await _reloaded(session, matcher)
    return block


async def update_ip_block(
    session: AsyncSession, block_id: int, *, ip: str | None = KEEP, severity: str | None = KEEP,
    comment: str | None = KEEP, expires_in: object = KEEP, matcher: IpBlockMatcher | None = None,
) -> IpBlock:
    """Change what is given (``KEEP``: as it is; ``expires_in`` None or "": never expires,
    otherwise counted from now); committed. As :func:`create_ip_block` for bad values."""
    block = await get_ip_block(session, block_id)
    now = utcnow()
    changes: dict[str, Any] = {}  # every value checked before any is set
    if ip is not KEEP:
        changes["ip"], changes["first_key"], changes["last_key"] = _network(ip)
    if severity is not KEEP:
        changes["severity"] = _severity(severity)
    if comment is not KEEP:
        changes["comment"] = _comment(comment)
    if expires_in is not KEEP:
        changes["expires_at"] = _expires_at(expires_in, now)
    if changes.get("ip", block.ip) != block.ip:
        await _taken(session, changes["ip"], now, other_than=block.id)
    for name, value in {**changes, "updated_at": now}.items():
        setattr(block, name, value)
    await _committed(session)
    await _reloaded(session, matcher)
    return block


async def remove_ip_block(session: AsyncSession, block_id: int, *,
                          matcher: IpBlockMatcher | None = None) -> IpBlock:
    block = await get_ip_block(session, block_id)
    await session.delete(block)
    await session.commit()
    await _reloaded(session, matcher)
    return block


async def find_ip_block(session: AsyncSession, ip: str) -> IpBlock:
    """The block of exactly this network (``192.0.2.7/24`` finds ``192.0.2.0/24``);
    NotFound otherwise."""
    text, _first, _last = _network(ip)
    block = await session.scalar(select(IpBlock).where(IpBlock.ip == text).order_by(IpBlock.id.desc()))
    if block is None:
        raise NotFound(f"No IP block for {text}")
    return block


async def get_ip_block(session: AsyncSession, block_id: int) -> IpBlock:
    return await get_or_404(session, IpBlock, block_id)


async def list_ip_blocks(session: AsyncSession) -> list[IpBlock]:
    """Every block, expired ones included, newest first."""
    return list(await session.scalars(select(IpBlock).order_by(IpBlock.id.desc())))


async def remove_expired(session: AsyncSession) -> int:
    """Delete the blocks that have expired (committed); how many."""
    result = await session.execute(delete(IpBlock).where(
        IpBlock.expires_at.is_not(None), IpBlock.expires_at <= utcnow()))
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def _reloaded(session: AsyncSession, matcher: IpBlockMatcher | None) -> None:
    if matcher is not None:
        await matcher.changed(session)


# --------------------------------------------------------------------------- lookups

def _active_blocks(now: datetime) -> Any:
    return select(IpBlock.first_key, IpBlock.last_key, IpBlock.severity, IpBlock.expires_at).where(
        or_(IpBlock.expires_at.is_(None), IpBlock.expires_at > now))


async def sign_up_severity(session: AsyncSession, address: str | None) -> str | None:
    """The strongest active severity whose network contains ``address``, straight from the
    database (sign-ups are rare and must see a block made a moment ago); None when none or
    the address is unreadable."""
    if not address:
        return None
    try:
        key = address_key(address)
    except AddressError:
        return None
    rows = await session.execute(_active_blocks(utcnow()).where(
        IpBlock.first_key <= key, IpBlock.last_key >= key))
    return _BY_RANK[max((_RANKS.get(row.severity, 0) for row in rows), default=0)]


class IpBlockMatcher:
    """This process's view of the active blocks, for the per-request lookup.

    The blocks are flattened into disjoint key segments, each with the strongest severity
    covering it: ``_starts`` (sorted segment starts) and ``_ranks`` (the segment's rank, 0:
    none); a lookup is one bisect. The snapshot is stale at ``_stale_at`` (``clock()``
    seconds): ``ttl`` after loading, or when a block in it expires, if sooner.
    """

    def __init__(self, *, ttl: float = RELOAD_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.clock = clock
        self._starts: list[int] = []
        self._ranks: list[int] = []
        self._stale_at = -math.inf
        self._loaded = False
        self._lock: asyncio.Lock | None = None
        self._keys: dict[str, int] = {}  # address → key (-1: not an address)

    @property
    def count(self) -> int:
        """How many segment boundaries the snapshot has (0: nothing is blocked)."""
        return len(self._starts)

    def idle(self) -> bool:
        """Nothing is blocked and the snapshot is fresh: no lookup needed (the per-request
        fast path, with no parsing and no coroutine)."""
        return not self._starts and self.clock() < self._stale_at

    def invalidate(self) -> None:
        """Reload on the next lookup."""
        self._stale_at = -math.inf

    def load(self, blocks: Iterable[Sequence[Any]], now: float | None = None) -> None:
        """Replace the snapshot with ``blocks``: (first_key, last_key, severity, expires_at)
        rows, the expired ones left out."""
        now = self.clock() if now is None else now
        events: dict[int, list[int]] = {}  # key → per-rank count changes at it
        stale_at = now + self.ttl
        for first_key, last_key, severity, expires_at in blocks:
            rank = _RANKS.get(severity, 0)
            if not rank:
                continue
            if expires_at is not None:
                ends = expires_at.timestamp()
                if ends <= now:
                    continue
                stale_at = min(stale_at, ends)
            events.setdefault(int(first_key, 16), [0] * 4)[rank] += 1
            events.setdefault(int(last_key, 16) + 1, [0] * 4)[rank] -= 1
        counts = [0] * 4
        starts: list[int] = []
        ranks: list[int] = []
        level = 0
        for key in sorted(events):
            for rank, change in enumerate(events[key]):
                counts[rank] += change
            new_level = next((rank for rank in (3, 2, 1) if counts[rank] > 0), 0)
            if new_level != level:
                starts.append(key)
                ranks.append(new_level)
                level = new_level
        self._starts, self._ranks = starts, ranks
        self._stale_at = stale_at
        self._loaded = True

    async def reload(self, session: AsyncSession) -> None:
        """Load the active blocks from the database through ``session``."""
        now = self.clock()
        rows = await session.execute(_active_blocks(datetime.fromtimestamp(now, UTC)))
        self.load([tuple(row) for row in rows], now)

    def _the_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def changed(self, session: AsyncSession) -> None:
        """Reload after a change this process committed: once a reload under way (which may
        have read the blocks before the change) is done, so that it cannot overwrite this one."""
        async with self._the_lock():
            try:
                await self.reload(session)
            except Exception:  # the change is committed: never a 500 for it
                log.warning("could not reload the IP blocks after a change; reloading on "
                            "the next request", exc_info=True)
                self.invalidate()

    async def refresh(self, db: Database) -> None:
        """Reload a stale snapshot. One reload at a time: while one is under way, others
        answer from the snapshot they have (only the very first load is waited for). A
        reload that fails keeps the snapshot (none: nothing blocked) for ``RETRY_SECONDS``."""
        lock = self._the_lock()
        if lock.locked() and self._loaded:
            return
        async with lock:
            if self.clock() < self._stale_at:
                return  # reloaded while this request waited
            try:
                async with db.read_session() as session:
                    await self.reload(session)
            except Exception:  # the database not answering must not fail every request
                log.warning("could not reload the IP blocks; keeping the previous ones",
                            exc_info=True)
                self._stale_at = self.clock() + RETRY_SECONDS

    def lookup(self, address: str) -> str | None:
        """The strongest severity of the snapshot's blocks containing ``address``."""
        if not self._starts:
            return None
        key = self._keys.get(address)
        if key is None:
            try:
                key = int(address_key(address), 16)
            except AddressError:
                key = -1
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[address] = key
        if key < 0:
            return None
        position = bisect_right(self._starts, key) - 1
        return _BY_RANK[self._ranks[position]] if position >= 0 else None

    async def severity_for(self, db: Database, address: str) -> str | None:
        """The strongest active severity whose network contains ``address``, or None."""
        if self.clock() >= self._stale_at:
            await self.refresh(db)
        return self.lookup(address)
