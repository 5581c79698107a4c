"""``easel admin media prune``: remove stored files that nothing refers to any more.

Why it exists: every file Easel writes is named by a row — a media attachment's original
and renditions, its verification report's pictures, an account's avatar and header, a
link card's picture (``cards/``) — and deleting the row queues the deletion of its files
(``purge_media_files``; a card's replaced picture is deleted by its job). A worker killed
between writing a file and committing its row, a purge that failed for good, or a restore
of an older database backup leaves files behind that no row names. This finds them by
listing storage (the local directory or the bucket, through :mod:`server.storage`) and
comparing with the database, and deletes those older than a grace period. The studio's
checks of outside images (``checks/<token>/``) have no rows: their files are removed once
they are older than the checks' retention.

It also keeps the remote media cache (``federation.media_cache``, files under ``cache/``)
within its limits: copies older than ``EASEL_REMOTE_MEDIA_RETENTION_DAYS`` go, then the
oldest copies until the cache is within ``EASEL_REMOTE_MEDIA_CACHE_MB`` (0: every copy
goes). An evicted row goes back to remote-only (its API entity shows the remote URL
again, and the next time the status or actor is stored the copy is fetched again): the
row is changed first (a remote avatar's or header's account too), and its files deleted
after the commit.

What it must never do: delete a file a row names (an evicted copy is unnamed in a committed
transaction before its files go), a file younger than the grace period (a job may be about
to commit the row that names it), or anything outside the prefixes Easel writes media to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from protect import document as doc
from server.ids import utcnow
from server.models import Account, MediaAttachment, PreviewCard
from server.settings import Settings
from server.storage import Storage, StorageError, StoredFile

# Where Easel writes files that rows name: (prefix, private).
NAMED_PREFIXES = (("media", False), ("avatars", False), ("headers", False),
                  ("cache", False), ("cards", False), ("originals", True), ("verification", True))
CHECKS_PREFIX = "checks"
DEFAULT_GRACE = timedelta(hours=24)
MINIMUM_GRACE = timedelta(hours=1)
CHECK_RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class CacheLimits:
    """The remote media cache's limits: total bytes, and the age a copy may reach (None:
    no age limit)."""

    max_bytes: int
    retention: timedelta | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> CacheLimits:
        days = settings.remote_media_retention_days
        return cls(max_bytes=settings.remote_media_cache_mb * 1024 * 1024,
                   retention=timedelta(days=days) if days else None)


@dataclass
class CacheEviction:
    """What the cache pass did (or, on a dry run, would do)."""

    expired: int = 0      # copies older than the retention
    over_limit: int = 0   # the oldest copies, evicted to get under the size limit
    bytes: int = 0
    kept: int = 0         # copies left
    kept_bytes: int = 0


@dataclass
class PruneReport:
    orphans: list[tuple[StoredFile, bool]] = field(default_factory=list)  # (file, private)
    expired_checks: list[StoredFile] = field(default_factory=list)
    deleted: int = 0
    failed: int = 0
    kept_young: int = 0
    cache: CacheEviction | None = None

    @property
    def bytes(self) -> int:
        return sum(f.size for f, _ in self.orphans) + sum(f.size for f in self.expired_checks)


async def referenced_keys(session: AsyncSession) -> set[tuple[str, bool]]:
    """Every (key, private) a row names."""
    named: set[tuple[str, bool]] = set()
    media_rows = await session.stream(select(
        MediaAttachment.original_key, MediaAttachment.file_key, MediaAttachment.small_key,
        MediaAttachment.thumb_key, MediaAttachment.meta, MediaAttachment.cache_key,
        MediaAttachment.cache_preview_key).execution_options(yield_per=500))
    async for original, full, small, thumb, meta, cached, cached_preview in media_rows:
        if original:
            named.add((original, True))
        named.update((key, False) for key in (full, small, thumb, cached, cached_preview) if key)
        report = (meta or {}).get("protection")
        if isinstance(report, dict):
            named.update((key, True) for key in doc.picture_keys(report))
    account_rows = await session.execute(
        select(Account.avatar_key, Account.header_key).where(
            (Account.avatar_key.is_not(None)) | (Account.header_key.is_not(None))))
    for avatar, header in account_rows:
        named.update((key, False) for key in (avatar, header) if key)
    named.update((key, False) for key in await session.scalars(
        select(PreviewCard.image_key).where(PreviewCard.image_key.is_not(None))) if key)
    return named


async def find_orphans(session: AsyncSession, storage: Storage, *,
                       grace: timedelta = DEFAULT_GRACE,
                       now: datetime | None = None) -> PruneReport:
    """What prune would delete (nothing is deleted here)."""
    if grace < MINIMUM_GRACE:
        raise ValueError(f"the grace period is at least {MINIMUM_GRACE}")
    now = now or utcnow()
    report = PruneReport()
    # Listed before the rows are read: a file written after this listing is not looked at,
    # and one listed here whose row commits meanwhile is too young to go.
    listed = [(f, private) for prefix, private in NAMED_PREFIXES
              for f in await storage.list_files(prefix, private=private)]
    checks = await storage.list_files(CHECKS_PREFIX, private=True)
    named = await referenced_keys(session)
    for stored, private in listed:
        if (stored.key, private) in named:
            continue
        if stored.modified > now - grace:
            report.kept_young += 1
        else:
            report.orphans.append((stored, private))
    report.expired_checks = [f for f in checks if f.modified <= now - CHECK_RETENTION]
    return report


async def prune(session: AsyncSession, storage: Storage, *, grace: timedelta = DEFAULT_GRACE,
                dry_run: bool = False, now: datetime | None = None,
                progress: Callable[[int, int], None] | None = None,
                cache: CacheLimits | None = None) -> PruneReport:
    """Find and (unless ``dry_run``) delete the orphaned files and expired checks; with
    ``cache``, first keep the remote media cache within those limits."""
    eviction = (await evict_cache(session, storage, cache, dry_run=dry_run, now=now)
                if cache is not None else None)
    report = await find_orphans(session, storage, grace=grace, now=now)
    report.cache = eviction
    if dry_run:
        return report
    doomed = report.orphans + [(f, True) for f in report.expired_checks]
    for done, (stored, private) in enumerate(doomed, start=1):
        try:
            await storage.delete(stored.key, private=private)
            report.deleted += 1
        except StorageError:
            report.failed += 1
        if progress is not None:
            progress(done, len(doomed))
    return report


async def evict_cache(session: AsyncSession, storage: Storage, limits: CacheLimits, *,
                      dry_run: bool = False, now: datetime | None = None) -> CacheEviction:
    """Evict expired copies, then the oldest until the cache is within its size limit.

    Rows are unnamed and committed first; their files are deleted afterwards (one that
    cannot be deleted is an orphan for a later prune). A copy cached again meanwhile is
    left alone: each row changes only while it still names the key that was read.
    """
    now = now or utcnow()
    eviction = CacheEviction()
    rows = (await session.execute(
        select(MediaAttachment.id, MediaAttachment.cache_key, MediaAttachment.cache_preview_key,
               MediaAttachment.cache_size, MediaAttachment.cached_at, MediaAttachment.purpose)
        .where(MediaAttachment.cache_key.is_not(None))
        .order_by(MediaAttachment.cached_at, MediaAttachment.id))).all()
    total = sum(row.cache_size for row in rows)
    doomed = []
    for row in rows:
        expired = (limits.retention is not None and row.cached_at is not None
                   and row.cached_at <= now - limits.retention)
        if expired or total > limits.max_bytes:
            doomed.append(row)
            total -= row.cache_size
            eviction.bytes += row.cache_size
            if expired:
                eviction.expired += 1
            else:
                eviction.over_limit += 1
        else:
            eviction.kept += 1
            eviction.kept_bytes += row.cache_size
    if dry_run or not doomed:
        return eviction
    evicted_keys: list[str] = []
    for row in doomed:
        result = await session.execute(
            update(MediaAttachment)
            .where(MediaAttachment.id == row.id, MediaAttachment.cache_key == row.cache_key)
            .values(cache_key=None, cache_preview_key=None, cache_size=0, cached_at=None)
            .execution_options(synchronize_session=False))
        if getattr(result, "rowcount", 0) != 1:
            continue
        evicted_keys += [key for key in (row.cache_key, row.cache_preview_key) if key]
        if row.purpose in ("avatar", "header"):  # a remote account's copy: linked again
            for column in (Account.avatar_key, Account.header_key):
                await session.execute(
                    update(Account).where(column == row.cache_key).values({column: None})
                    .execution_options(synchronize_session=False))
    await session.commit()
    for key in evicted_keys:
        try:
            await storage.delete(key)
        except StorageError:
            pass  # unnamed now: the orphan pass of a later prune deletes it
    return eviction


async def cache_size(session: AsyncSession) -> int:
    """The bytes the remote media cache holds, by its rows."""
    total = await session.scalar(select(func.coalesce(func.sum(MediaAttachment.cache_size), 0)))
    return int(total or 0)
