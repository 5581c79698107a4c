"""``easel admin media prune``: remove stored files that nothing refers to any more.

Why it exists: every file Easel writes is named by a row — a media attachment's original
and renditions, its verification report's pictures, an account's avatar and header — and
deleting the row queues the deletion of its files (``purge_media_files``). A worker killed
between writing a file and committing its row, a purge that failed for good, or a restore
of an older database backup leaves files behind that no row names. This finds them by
listing storage (the local directory or the bucket, through :mod:`server.storage`) and
comparing with the database, and deletes those older than a grace period. The studio's
checks of outside images (``checks/<token>/``) have no rows: their files are removed once
they are older than the checks' retention.

What it must never do: delete a file a row names, a file younger than the grace period (a
job may be about to commit the row that names it), or anything outside the prefixes Easel
writes media to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from protect import document as doc
from server.ids import utcnow
from server.models import Account, MediaAttachment
from server.storage import Storage, StorageError, StoredFile

# Where Easel writes files that rows name: (prefix, private).
NAMED_PREFIXES = (("media", False), ("avatars", False), ("headers", False),
                  ("originals", True), ("verification", True))
CHECKS_PREFIX = "checks"
DEFAULT_GRACE = timedelta(hours=24)
MINIMUM_GRACE = timedelta(hours=1)
CHECK_RETENTION = timedelta(days=30)


@dataclass
class PruneReport:
    orphans: list[tuple[StoredFile, bool]] = field(default_factory=list)  # (file, private)
    expired_checks: list[StoredFile] = field(default_factory=list)
    deleted: int = 0
    failed: int = 0
    kept_young: int = 0

    @property
    def bytes(self) -> int:
        return sum(f.size for f, _ in self.orphans) + sum(f.size for f in self.expired_checks)


async def referenced_keys(session: AsyncSession) -> set[tuple[str, bool]]:
    """Every (key, private) a row names."""
    named: set[tuple[str, bool]] = set()
    media_rows = await session.stream(select(
        MediaAttachment.original_key, MediaAttachment.file_key, MediaAttachment.small_key,
        MediaAttachment.thumb_key, MediaAttachment.meta).execution_options(yield_per=500))
    async for original, full, small, thumb, meta in media_rows:
        if original:
            named.add((original, True))
        named.update((key, False) for key in (full, small, thumb) if key)
        report = (meta or {}).get("protection")
        if isinstance(report, dict):
            named.update((key, True) for key in doc.picture_keys(report))
    account_rows = await session.execute(
        select(Account.avatar_key, Account.header_key).where(
            (Account.avatar_key.is_not(None)) | (Account.header_key.is_not(None))))
    for avatar, header in account_rows:
        named.update((key, False) for key in (avatar, header) if key)
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
                progress: Callable[[int, int], None] | None = None) -> PruneReport:
    """Find and (unless ``dry_run``) delete the orphaned files and expired checks."""
    report = await find_orphans(session, storage, grace=grace, now=now)
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
