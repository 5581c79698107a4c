"""``easel admin media prune`` keeps the remote media cache within its limits.

Given cached copies of remote attachments (rows naming files under ``cache/``, in the local
directory or an S3 bucket), when prune runs, I expect the copies past the retention and
then the oldest ones over the size limit evicted — the row back to remote-only, its files
gone — the others kept, nothing changed on a dry run, and files under ``cache/`` that no
row names deleted as orphans.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from protect.prune import CacheLimits, cache_size, evict_cache, prune
from server.api.entities import EntityContext, media_to_entity
from server.db import Database
from server.ids import utcnow
from server.models import MediaAttachment, MediaState, User
from server.settings import Settings
from server.storage import LocalStorage, Storage, new_key
from tests.server.test_cli import easel, environment
from tests.server.test_storage import KEY_ID, SECRET, bucket, s3_endpoint  # noqa: F401 - fixtures

KB = 1024


@pytest.fixture(params=["local", "s3"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    if request.param == "local":
        return settings
    return settings.with_changes(storage="s3", s3_bucket=request.getfixturevalue("bucket"),
                                 s3_endpoint=request.getfixturevalue("s3_endpoint"),
                                 s3_region="us-east-1", s3_access_key_id=KEY_ID,
                                 s3_secret_access_key=SECRET)


async def cached_copy(app: Starlette, owner: User, *, size: int, cached_at: datetime,
                      name: str) -> MediaAttachment:
    """A remote attachment whose copy (``size`` bytes, with a preview) is in the cache."""
    storage: Storage = app.state.easel.storage
    key, preview = new_key("cache", "png"), new_key("cache", "jpg")
    await storage.put(key, b"p" * (size - KB))
    await storage.put(preview, b"s" * KB)
    async with app.state.easel.db.session() as session:
        media = MediaAttachment(account_id=owner.account_id, state=MediaState.READY.value,
                                remote_url=f"https://remote.example/{name}.png",
                                cache_key=key, cache_preview_key=preview, cache_size=size,
                                cached_at=cached_at)
        session.add(media)
        await session.commit()
        return media


async def reloaded(db: Database, media: MediaAttachment) -> MediaAttachment:
    async with db.session() as session:
        row = await session.get(MediaAttachment, media.id)
        assert row is not None
        return row


async def still_stored(storage: Storage, media: MediaAttachment) -> bool:
    assert media.cache_key and media.cache_preview_key
    full, small = (await storage.exists(media.cache_key),
                   await storage.exists(media.cache_preview_key))
    assert full == small
    return full


async def test_the_oldest_copies_go_until_the_cache_is_within_its_limit(
        app: Starlette, alice: User) -> None:
    storage, db = app.state.easel.storage, app.state.easel.db
    now = utcnow()
    oldest, middle, newest = [
        await cached_copy(app, alice, size=400 * KB, cached_at=now - timedelta(hours=hours),
                          name=name) for hours, name in ((3, "oldest"), (2, "middle"), (1, "newest"))]
    limits = CacheLimits(max_bytes=1024 * KB)

    async with db.session() as session:
        dry = await evict_cache(session, storage, limits, dry_run=True)
        assert (dry.over_limit, dry.expired, dry.bytes, dry.kept) == (1, 0, 400 * KB, 2)
        assert await cache_size(session) == 1200 * KB  # a dry run changes nothing
        done = await evict_cache(session, storage, limits)
    assert (done.over_limit, done.bytes, done.kept, done.kept_bytes) == (1, 400 * KB, 2, 800 * KB)

    assert not await still_stored(storage, oldest)
    assert await still_stored(storage, middle) and await still_stored(storage, newest)
    evicted = await reloaded(db, oldest)
    assert (evicted.cache_key, evicted.cache_preview_key, evicted.cache_size,
            evicted.cached_at) == (None, None, 0, None)
    # Remote-only again: the API shows the origin's URL.
    entity = media_to_entity(evicted, EntityContext.of(app.state.easel))
    assert entity["url"] == entity["preview_url"] == entity["remote_url"] == evicted.remote_url
    kept = media_to_entity(await reloaded(db, newest), EntityContext.of(app.state.easel))
    assert kept["url"] == storage.public_url(newest.cache_key)
    assert kept["preview_url"] == storage.public_url(newest.cache_preview_key)
    async with db.session() as session:
        assert await cache_size(session) == 800 * KB


async def test_copies_past_the_retention_go_even_under_the_limit(
        app: Starlette, alice: User) -> None:
    storage, db = app.state.easel.storage, app.state.easel.db
    now = utcnow()
    old = await cached_copy(app, alice, size=10 * KB, cached_at=now - timedelta(days=8), name="old")
    recent = await cached_copy(app, alice, size=10 * KB, cached_at=now - timedelta(days=6),
                               name="recent")
    async with db.session() as session:
        report = await prune(session, storage,
                             cache=CacheLimits(max_bytes=1024 * KB, retention=timedelta(days=7)))
    assert report.cache is not None
    assert (report.cache.expired, report.cache.over_limit, report.cache.kept) == (1, 0, 1)
    assert not await still_stored(storage, old) and await still_stored(storage, recent)
    assert (await reloaded(db, old)).cache_key is None
    assert report.orphans == []  # the evicted files were deleted, not left as orphans


async def test_a_cache_size_of_zero_evicts_every_copy(app: Starlette, alice: User,
                                                      settings: Settings) -> None:
    storage, db = app.state.easel.storage, app.state.easel.db
    copies = [await cached_copy(app, alice, size=4 * KB, cached_at=utcnow(), name=f"c{n}")
              for n in range(3)]
    limits = CacheLimits.from_settings(settings.with_changes(remote_media_cache_mb=0))
    async with db.session() as session:
        done = await evict_cache(session, storage, limits)
    assert (done.over_limit, done.kept) == (3, 0)
    for media in copies:
        assert not await still_stored(storage, media)
    assert await storage.list_files("cache") == []


async def test_files_under_cache_that_no_row_names_are_orphans(
        app: Starlette, alice: User) -> None:
    storage, db = app.state.easel.storage, app.state.easel.db
    named = await cached_copy(app, alice, size=4 * KB, cached_at=utcnow(), name="named")
    stray = new_key("cache", "png")
    await storage.put(stray, b"left behind by a killed worker")
    async with db.session() as session:
        report = await prune(session, storage, now=utcnow() + timedelta(hours=25),
                             cache=CacheLimits(max_bytes=1024 * KB))
    assert [(f.key, private) for f, private in report.orphans] == [(stray, False)]
    assert not await storage.exists(stray) and await still_stored(storage, named)


def test_the_limits_come_from_the_settings(settings: Settings) -> None:
    limits = CacheLimits.from_settings(settings.with_changes(remote_media_cache_mb=5,
                                                             remote_media_retention_days=30))
    assert limits == CacheLimits(max_bytes=5 * 1024 * KB, retention=timedelta(days=30))
    assert CacheLimits.from_settings(settings.with_changes(remote_media_cache_mb=5)).retention is None


# The command, on the local directory; the same eviction on S3 is tested in-process above.
@pytest.mark.parametrize("settings", ["local"], indirect=True)
async def test_the_command_evicts_by_the_settings(app: Starlette, alice: User,
                                                  settings: Settings) -> None:
    storage = app.state.easel.storage
    assert isinstance(storage, LocalStorage)
    now = utcnow()
    old = await cached_copy(app, alice, size=300 * KB, cached_at=now - timedelta(days=3), name="o")
    new = await cached_copy(app, alice, size=300 * KB, cached_at=now, name="n")
    env = environment(settings, EASEL_REMOTE_MEDIA_CACHE_MB="1",
                      EASEL_REMOTE_MEDIA_RETENTION_DAYS="2")
    dry = easel(["admin", "media", "prune", "--dry-run"], env, settings.data_dir.parent)
    assert dry.returncode == 0, dry.stderr
    assert ("remote media cache: would evict 1 cached file set(s), 300.0 KB "
            "(1 past retention, 0 over the size limit); 1 kept, 300.0 KB") in dry.stdout
    assert await still_stored(storage, old)
    done = easel(["admin", "media", "prune"], env, settings.data_dir.parent)
    assert done.returncode == 0, done.stderr
    assert "remote media cache: evicted 1 cached file set(s)" in done.stdout
    assert not await still_stored(storage, old) and await still_stored(storage, new)
    refused = easel(["admin", "media", "prune"],
                    {**env, "EASEL_REMOTE_MEDIA_CACHE_MB": "-1"}, settings.data_dir.parent)
    assert refused.returncode != 0
    assert "EASEL_REMOTE_MEDIA_CACHE_MB='-1' must be 0 or more" in refused.stderr
    async with app.state.easel.db.session() as session:
        rows = list(await session.scalars(select(MediaAttachment.cache_key)))
    assert rows.count(None) == 1
