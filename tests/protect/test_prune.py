"""``easel admin media prune``: files no row names go, after a grace period; named ones stay."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette

from protect import document as doc
from protect.prune import CHECK_RETENTION, find_orphans, prune
from server.ids import utcnow
from server.models import MediaAttachment
from server.settings import Settings
from server.storage import Storage, new_key
from tests.protect import images
from tests.protect.conftest import run_protect, stored_files, upload
from tests.server.test_cli import easel, environment


async def _ready_media(app: Starlette, api: httpx.AsyncClient) -> MediaAttachment:
    media_id = (await upload(api, images.sideways_jpeg_with_gps())).json()["id"]
    assert await run_protect(app) == 1
    async with app.state.easel.db.session() as session:
        media = await session.get(MediaAttachment, int(media_id))
        assert media is not None and media.file_key and media.original_key
        # A report's pictures are named by the row too (they stay private).
        picture = new_key("verification", "png")
        await app.state.easel.storage.put(picture, b"picture", private=True)
        report = doc.stored(media)
        doc.store(media, {**report, doc.PICTURES_KEY: {"reconstruction_clean": picture}})
        await session.commit()
        return media


async def _orphans(storage: Storage) -> dict[str, tuple[str, bool]]:
    made = {"rendition": (new_key("media", "webp"), False),
            "avatar": (new_key("avatars", "png"), False),
            "original": (new_key("originals", "jpg"), True),
            "picture": (new_key("verification", "png"), True)}
    for key, private in made.values():
        await storage.put(key, b"left behind", private=private)
    return made


async def test_only_files_no_row_names_go_and_only_after_the_grace_period(
        app: Starlette, alice_api: httpx.AsyncClient) -> None:
    storage = app.state.easel.storage
    media = await _ready_media(app, alice_api)
    avatar = await alice_api.patch("/api/v1/accounts/update_credentials",
                                   files={"avatar": ("a.png", images.png(), "image/png")})
    assert avatar.status_code == 200
    orphans = await _orphans(storage)
    before_public, before_private = stored_files(app), stored_files(app, private=True)

    async with app.state.easel.db.session() as session:
        # Just written: a job may be about to commit the row naming them.
        young = await prune(session, storage)
        assert young.orphans == [] and young.kept_young == len(orphans) and young.deleted == 0
        later = utcnow() + timedelta(hours=25)
        dry = await prune(session, storage, dry_run=True, now=later)
        assert sorted((f.key, p) for f, p in dry.orphans) == sorted(orphans.values())
        assert dry.deleted == 0 and dry.bytes == len(b"left behind") * 4
        assert stored_files(app) == before_public
        done = await prune(session, storage, now=later)
    assert done.deleted == 4 and done.failed == 0
    for key, private in orphans.values():
        assert not await storage.exists(key, private=private)
    # Everything a row names is still there: renditions, original, report picture, avatar.
    for key in (media.file_key, media.small_key, media.thumb_key):
        assert key and await storage.exists(key)
    assert media.original_key and await storage.exists(media.original_key, private=True)
    assert len(stored_files(app)) == len(before_public) - 2
    assert len(stored_files(app, private=True)) == len(before_private) - 2
    async with app.state.easel.db.session() as session:
        again = await find_orphans(session, storage, now=later)
    assert again.orphans == [] and again.kept_young == 0


async def test_checks_of_outside_images_go_after_their_retention(app: Starlette) -> None:
    storage = app.state.easel.storage
    await storage.put("checks/0123abcd/meta.json", json.dumps({"account_id": 1}).encode(),
                      private=True)
    async with app.state.easel.db.session() as session:
        soon = await prune(session, storage, now=utcnow() + CHECK_RETENTION - timedelta(hours=1))
        assert soon.expired_checks == [] and await storage.exists("checks/0123abcd/meta.json",
                                                                   private=True)
        late = await prune(session, storage, now=utcnow() + CHECK_RETENTION + timedelta(hours=1))
    assert [f.key for f in late.expired_checks] == ["checks/0123abcd/meta.json"]
    assert not await storage.exists("checks/0123abcd/meta.json", private=True)


async def test_a_grace_period_under_an_hour_is_refused(app: Starlette) -> None:
    async with app.state.easel.db.session() as session:
        with pytest.raises(ValueError, match="at least"):
            await prune(session, app.state.easel.storage, grace=timedelta(minutes=5))


async def test_the_command_lists_with_dry_run_and_refuses_a_short_grace(
        app: Starlette, settings: Settings) -> None:
    storage = app.state.easel.storage
    key = new_key("media", "webp")
    await storage.put(key, b"x" * 2048)
    path = storage.path(key)
    old = (utcnow() - timedelta(hours=3)).timestamp()
    import os
    os.utime(path, (old, old))
    env = environment(settings)
    listed = easel(["admin", "media", "prune", "--dry-run", "--older-than", "2"], env,
                   settings.data_dir.parent)
    assert listed.returncode == 0, listed.stderr
    assert f"public  {key}  2.0 KB" in listed.stdout
    assert "would delete 1 orphaned file(s) and 0 expired check file(s), 2.0 KB" in listed.stdout
    assert path.exists()
    kept = easel(["admin", "media", "prune"], env, settings.data_dir.parent)
    assert kept.returncode == 0 and "deleted 0 orphaned" in kept.stdout
    assert "1 unnamed file(s) younger than 24 h kept" in kept.stdout and path.exists()
    deleted = easel(["admin", "media", "prune", "--older-than", "2"], env, settings.data_dir.parent)
    assert deleted.returncode == 0 and "deleted 1 orphaned file(s)" in deleted.stdout
    assert not path.exists()
    refused = easel(["admin", "media", "prune", "--older-than", "0.5"], env, settings.data_dir.parent)
    assert refused.returncode == 1 and "--older-than must be at least 1 hour" in refused.stderr
