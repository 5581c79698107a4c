"""The protect_media job with a real model (a tiny random AutoencoderKL saved to disk and
named by EASEL_VAE_PATH): progress, then protected; failures, retries and the author's
choices; re-protection with new renditions swapped in and the old ones purged."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

import httpx
import numpy as np
import torch
from PIL import Image
from sqlalchemy import select
from starlette.applications import Starlette

from protect import document as doc
from protect import perturb
from protect.jobs import prepare
from protect.renditions import make_renditions
from server import commands
from server.models import Job, JobState, MediaState, ProtectionState
from server.queue.runner import JobRunner
from server.services.protection import Configuration, mark_for_reprotection
from server.settings import Settings
from tests.protect import images
from tests.protect.conftest import (
    activities,
    media_row,
    protect_job,
    run_protect,
    run_protect_later,
    settle,
    stored_files,
    upload,
)
from tests.protect.tiny_models import save_tiny_vae

pytestmark = pytest.mark.torch

TINY = Configuration(models=("tiny-vae",), strength="default", profile=None)


@pytest.fixture
def settings(settings: Settings, tiny_vae_dir: Path, fast_protection: None) -> Settings:
    return settings.with_changes(vae_paths=(tiny_vae_dir,), protect_device="cpu")


def busy_png(size: tuple[int, int] = (64, 64), seed: int = 0) -> bytes:
    """Colour gradients under a grain: texture for the budget, and JPEG keeps it well."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([60 + 120 * x / width, 60 + 120 * y / height, 90 + 0 * x], axis=-1)
    grain = rng.integers(-24, 25, (height, width, 3))
    pixels = np.clip(base + grain, 0, 255).astype(np.uint8)
    return images.save(Image.fromarray(pixels, "RGB"), "PNG")


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


async def post_with(alice_api: httpx.AsyncClient, data: bytes,
                    text: str = "new work #ink") -> tuple[str, str]:
    media_id = (await upload(alice_api, data, name="work.png", content_type="image/png")).json()["id"]
    status = await alice_api.post("/api/v1/statuses", json={"status": text, "media_ids": [media_id]})
    assert status.status_code == 200
    return media_id, status.json()["id"]


async def protection(api: httpx.AsyncClient, media_id: str) -> dict[str, Any]:
    response = await api.get(f"/api/v1/easel/media/{media_id}/protection")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def test_the_api_shows_progress_then_protected(
        app: Starlette, alice_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The perturbation is held after its first step (from its own thread) while the test
    reads the state endpoint, then let go."""
    reached, release = threading.Event(), threading.Event()
    real = perturb.protect_image

    def held(image: Image.Image, encoders: Any, **options: Any) -> Image.Image:
        progress = options["progress"]

        def hold(fraction: float) -> None:
            progress(fraction)
            if not reached.is_set():
                reached.set()
                release.wait(timeout=60)

        return real(image, encoders, **{**options, "progress": hold})

    monkeypatch.setattr(perturb, "protect_image", held)
    media_id = (await upload(alice_api, busy_png(), content_type="image/png")).json()["id"]
    queued = await protection(alice_api, media_id)
    assert (queued["state"], queued["progress"]) == ("pending", 0.0)

    worker = asyncio.create_task(run_protect(app))
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while (current := await protection(alice_api, media_id))["progress"] <= 0.05:
            assert asyncio.get_running_loop().time() < deadline, current
            assert not worker.done()
            await asyncio.sleep(0.02)
        assert current["state"] == "pending" and 0.05 < current["progress"] < 0.85
    finally:
        release.set()
    assert await worker == 2  # protected, then verified

    done = await protection(alice_api, media_id)
    assert done["state"] == "protected" and done["progress"] == 1.0
    assert done["models"] == ["tiny-vae"]
    assert (done["strength"], done["profile"]) == ("default", "cpu")
    assert done["reason"] is None and done["seconds"] >= 0 and done["updated_at"].endswith("Z")
    assert "previous" not in done
    media = await media_row(app, media_id)
    assert media.state == MediaState.READY and media.protection == ProtectionState.PROTECTED
    job = await protect_job(app, media_id)
    assert (job.state, job.progress, job.locked_until) == (JobState.DONE, 1.0, None)


async def test_the_served_rendition_is_perturbed_within_the_budget(
        app: Starlette, alice_api: httpx.AsyncClient, client: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Image.Image] = []

    def spy(image: Image.Image, optout: Any = None) -> Any:
        made.append(image.copy())
        return make_renditions(image, optout)

    monkeypatch.setattr("protect.jobs.make_renditions", spy)
    original = busy_png()
    media_id = (await upload(alice_api, original, content_type="image/png")).json()["id"]
    assert await run_protect(app) == 2  # protected, then verified

    clean = prepare(original)
    change = np.abs(np.asarray(made[0], dtype=np.int16) - np.asarray(clean, dtype=np.int16))
    assert 0 < change.max() <= 8  # the default strength: at most 8/255 anywhere
    entity = (await alice_api.get(f"/api/v1/media/{media_id}")).json()
    served = await client.get(entity["url"].removeprefix("https://easel.test"))
    assert served.status_code == 200
    unprotected = make_renditions(clean).full.data
    assert served.content != unprotected
    # The served JPEG differs from the unprotected one by the perturbation (plus what JPEG
    # makes of it): a small change on average.
    difference = np.abs(decoded(served.content) - decoded(unprotected))
    assert 0 < difference.mean() <= 8


async def test_the_same_media_is_perturbed_the_same_way(
        app: Starlette, alice_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    seeds: list[int] = []
    real = perturb.protect_image

    def recording(image: Image.Image, encoders: Any, **options: Any) -> Image.Image:
        seeds.append(options["seed"])
        return real(image, encoders, **options)

    monkeypatch.setattr(perturb, "protect_image", recording)
    media_id = (await upload(alice_api, busy_png(), content_type="image/png")).json()["id"]
    await run_protect(app)
    assert seeds == [int(media_id) % 2**31]


async def test_out_of_memory_below_the_smallest_tile_is_retried(
        app: Starlette, alice_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    real = perturb.protect_image
    calls: list[int] = []

    def short_of_memory_once(image: Image.Image, encoders: Any, **options: Any) -> Image.Image:
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(image, encoders, **options)

    monkeypatch.setattr(perturb, "protect_image", short_of_memory_once)
    media_id = (await upload(alice_api, busy_png(), content_type="image/png")).json()["id"]
    assert await run_protect(app) == 1
    job = await protect_job(app, media_id)
    assert job.state == JobState.QUEUED and "OutOfMemoryError" in (job.last_error or "")
    assert (await media_row(app, media_id)).protection == ProtectionState.PENDING
    assert await run_protect_later(app) == 2  # and verified
    assert (await media_row(app, media_id)).protection == ProtectionState.PROTECTED


# ---------------------------------------------------------------- failure and choices

@pytest.fixture
def broken_vae(tmp_path: Path) -> Path:
    folder = tmp_path / "vae-being-copied"
    folder.mkdir()
    return folder


@pytest.fixture
def broken_settings(settings: Settings, broken_vae: Path) -> Settings:
    return settings.with_changes(vae_paths=(broken_vae,))


@pytest.fixture
def broken_app(app: Starlette, broken_settings: Settings) -> Starlette:
    """The app's workers see a model path that cannot load (yet)."""
    app.state.easel.settings = broken_settings
    app.state.easel.runner.settings = broken_settings
    return app


async def test_a_model_that_cannot_load_fails_after_retries_and_the_author_retries(
        broken_app: Starlette, broken_vae: Path, alice_api: httpx.AsyncClient,
        bob_api: httpx.AsyncClient) -> None:
    app = broken_app
    media_id, status_id = await post_with(alice_api, busy_png())
    assert await run_protect(app) == 1
    job = await protect_job(app, media_id)
    assert job.state == JobState.QUEUED and job.attempts == 1  # retried: maybe being fixed
    assert "no config.json" in (job.last_error or "")
    assert await run_protect_later(app) == 4  # the other four attempts
    job = await protect_job(app, media_id)
    assert (job.state, job.attempts) == (JobState.FAILED, 5)

    assert str(broken_vae) in (job.last_error or "")  # for the admin
    failed = await protection(alice_api, media_id)
    assert failed["state"] == "failed"
    assert failed["reason"].startswith("The protection model could not be loaded on the server")
    assert str(broken_vae) not in failed["reason"]  # the server's paths are not the author's business
    media = await media_row(app, media_id)
    assert media.state == MediaState.FAILED and media.file_key is None
    assert (await alice_api.get(f"/api/v1/statuses/{status_id}")).status_code == 200
    assert (await bob_api.get(f"/api/v1/statuses/{status_id}")).status_code == 404  # unpublished
    shown = await alice_api.get(f"/api/v1/media/{media_id}")
    assert shown.status_code == 422 and shown.json()["error"] == failed["reason"]

    save_tiny_vae(broken_vae)  # the admin finished copying the model
    retried = await alice_api.post(f"/api/v1/easel/media/{media_id}/retry")
    assert retried.status_code == 202 and retried.json()["state"] == "pending"
    assert (await protect_job(app, media_id)).state == JobState.QUEUED
    assert await run_protect(app) == 2  # protected, then verified
    done = await protection(alice_api, media_id)
    assert done["state"] == "protected" and done["models"] == ["vae-being-copied"]
    published = await bob_api.get(f"/api/v1/statuses/{status_id}")
    assert published.status_code == 200 and published.json()["media_attachments"][0]["url"]
    await settle(app)
    assert len(await activities(app, "Create")) == 1


async def test_the_author_publishes_unprotected_after_a_failure_and_may_protect_it_later(
        broken_app: Starlette, broken_vae: Path, alice_api: httpx.AsyncClient,
        bob_api: httpx.AsyncClient) -> None:
    app = broken_app
    media_id, status_id = await post_with(alice_api, busy_png())
    await run_protect_later(app)
    assert (await protection(alice_api, media_id))["state"] == "failed"

    chosen = await alice_api.post(f"/api/v1/easel/media/{media_id}/publish_unprotected")
    assert chosen.status_code == 202 and chosen.json()["state"] == "pending"
    assert await run_protect(app) == 1  # the model still cannot load: it is not needed
    document = await protection(alice_api, media_id)
    assert document["state"] == "unprotected"
    assert document["reason"] == "published unprotected at the author's request"
    assert document["models"] == [] and document["progress"] == 1.0
    assert (await bob_api.get(f"/api/v1/statuses/{status_id}")).status_code == 200
    await settle(app)
    assert len(await activities(app, "Create")) == 1
    assert await run_protect_later(app) == 0  # nothing left to do, nothing published twice
    assert len(await activities(app, "Create")) == 1
    before = await media_row(app, media_id)

    # Later, with the model fixed, the author asks for protection after all: the published
    # image is protected again and swapped in.
    save_tiny_vae(broken_vae)
    retried = await alice_api.post(f"/api/v1/easel/media/{media_id}/retry")
    assert retried.status_code == 202 and "requested" not in retried.json()
    assert (await bob_api.get(f"/api/v1/statuses/{status_id}")).status_code == 200  # still up
    assert await run_protect(app) == 2  # protected, then verified
    after = await media_row(app, media_id)
    assert after.protection == ProtectionState.PROTECTED and after.file_key != before.file_key
    await settle(app)
    assert (len(await activities(app, "Create")), len(await activities(app, "Update"))) == (1, 1)


# ----------------------------------------------------------------------- reprotection

async def published_work(app: Starlette, alice_api: httpx.AsyncClient,
                         bob_api: httpx.AsyncClient) -> tuple[str, str]:
    media_id, status_id = await post_with(alice_api, busy_png())
    await run_protect(app)
    published = await bob_api.get(f"/api/v1/statuses/{status_id}")
    assert published.status_code == 200
    return media_id, published.json()["id"]


async def test_reprotect_redoes_outdated_media_and_purges_the_old_files_later(
        app: Starlette, settings: Settings, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
        capsys: pytest.CaptureFixture[str]) -> None:
    media_id, status_id = await published_work(app, alice_api, bob_api)
    before = await media_row(app, media_id)
    old_files = stored_files(app)
    assert len(old_files) == 3
    stronger = settings.with_changes(protect_strength="high")

    assert await commands.reprotect(stronger, dry_run=True) == 0
    assert f"{media_id}  account=" in capsys.readouterr().out
    assert (await media_row(app, media_id)).protection == ProtectionState.PROTECTED  # untouched

    err = io.StringIO()
    assert await commands.reprotect(stronger, here=True, stream=err) == 0
    assert "1 image(s) to re-protect with tiny-vae, strength high" in capsys.readouterr().out
    assert "re-protecting [" in err.getvalue() and "1/1" in err.getvalue()

    after = await media_row(app, media_id)
    assert after.state == MediaState.READY and after.protection == ProtectionState.PROTECTED
    assert after.meta["protection"]["strength"] == "high" and "previous" not in after.meta["protection"]
    assert {after.file_key, after.small_key, after.thumb_key}.isdisjoint(
        {before.file_key, before.small_key, before.thumb_key})
    assert set(old_files) < set(stored_files(app))  # the old files are still served for now
    entity = (await bob_api.get(f"/api/v1/statuses/{status_id}")).json()
    assert entity["media_attachments"][0]["url"].endswith(str(after.file_key))

    assert await run_protect(app) == 0  # the purge waits for remote servers to catch up
    old_pictures = doc.picture_keys(doc.stored(before))
    assert len(old_pictures) == 2
    storage = app.state.easel.storage
    assert all([await storage.exists(k, private=True) for k in old_pictures])
    assert await run_protect_later(app, minutes=20) == 1
    assert set(stored_files(app)).isdisjoint(old_files) and len(stored_files(app)) == 3
    # The old report's pictures went with the renditions they showed.
    assert not any([await storage.exists(k, private=True) for k in old_pictures])
    await settle(app)
    assert len(await activities(app, "Create")) == 1  # published once
    updates = await activities(app, "Update")
    assert len(updates) == 1 and updates[0].payload["status_id"] == int(status_id)

    assert await commands.reprotect(stronger, here=True, stream=io.StringIO()) == 0
    assert "0 image(s) to re-protect" in capsys.readouterr().out


async def test_reprotect_follows_the_worker_and_ctrl_c_leaves_the_jobs_queued(
        app: Starlette, settings: Settings, alice_api: httpx.AsyncClient,
        bob_api: httpx.AsyncClient) -> None:
    media_id, status_id = await published_work(app, alice_api, bob_api)
    other = settings.with_changes(protect_strength="low")
    err = io.StringIO()
    follower = asyncio.create_task(commands.reprotect(other, stream=err))
    deadline = asyncio.get_running_loop().time() + 30
    while "re-protecting [" not in err.getvalue():
        assert asyncio.get_running_loop().time() < deadline and not follower.done()
        await asyncio.sleep(0.02)
    follower.cancel()  # what Ctrl-C does to asyncio.run's task
    with pytest.raises(asyncio.CancelledError):
        await follower
    assert "stay queued" in err.getvalue()
    assert (await protect_job(app, media_id)).state == JobState.QUEUED
    media = await media_row(app, media_id)
    assert media.state == MediaState.READY and media.protection == ProtectionState.PENDING
    assert (await bob_api.get(f"/api/v1/statuses/{status_id}")).status_code == 200  # still served
    pending = await protection(alice_api, media_id)
    assert pending["state"] == "pending" and "previous" not in pending

    # Following again picks the queued job up; a worker (configured like the command)
    # finishes it meanwhile.
    worker = JobRunner(app.state.easel.db, other)
    err = io.StringIO()
    follower = asyncio.create_task(commands.reprotect(other, stream=err))
    while not follower.done():
        await worker.run_due(["protect"])
        await asyncio.sleep(0.05)
    assert await follower == 0
    assert "0/1" in err.getvalue() or "1/1" in err.getvalue()
    assert (await protection(alice_api, media_id))["strength"] == "low"


async def test_a_redo_that_fails_for_good_keeps_what_is_served(
        app: Starlette, settings: Settings, broken_vae: Path, alice_api: httpx.AsyncClient,
        bob_api: httpx.AsyncClient) -> None:
    media_id, status_id = await published_work(app, alice_api, bob_api)
    before = await media_row(app, media_id)
    async with app.state.easel.db.session() as session:
        assert await mark_for_reprotection(session, TINY, [int(media_id)]) == 1
    broken = settings.with_changes(vae_paths=(broken_vae,))
    app.state.easel.settings = broken
    await run_protect_later(app)
    after = await media_row(app, media_id)
    assert after.state == MediaState.READY and after.protection == ProtectionState.PROTECTED
    assert (after.file_key, after.meta["protection"]["models"]) == (before.file_key, ["tiny-vae"])
    assert "could not be loaded" in after.meta["protection"]["reprotect_error"]
    assert (await bob_api.get(f"/api/v1/statuses/{status_id}")).status_code == 200
    async with app.state.easel.db.session() as session:
        assert await session.scalar(select(Job).where(Job.kind == "purge_media_files")) is None


async def follow_reprotect(app: Starlette, command: Settings, worker: Settings,
                           err: io.StringIO) -> int:
    """`easel admin reprotect` with ``command``'s settings, following a worker that runs
    with ``worker``'s (loaded when it started)."""
    runner = JobRunner(app.state.easel.db, worker)
    follower = asyncio.create_task(commands.reprotect(command, stream=err))
    deadline = asyncio.get_running_loop().time() + 120
    while not follower.done():
        assert asyncio.get_running_loop().time() < deadline, err.getvalue()
        await runner.run_due(["protect"])
        await asyncio.sleep(0.05)
    return await follower


async def test_reprotect_with_settings_the_worker_has_not_loaded_changes_nothing_and_says_so(
        app: Starlette, settings: Settings, alice_api: httpx.AsyncClient,
        bob_api: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]) -> None:
    """The admin edited the strength and ran reprotect before restarting the worker: the
    worker refuses (it would only redo the images as they are), the old files stay, no
    Update is sent, and the command exits 1 telling to restart the worker."""
    media_id, status_id = await published_work(app, alice_api, bob_api)
    before = await media_row(app, media_id)
    files = stored_files(app)
    err = io.StringIO()
    stronger = settings.with_changes(protect_strength="high")
    assert await follow_reprotect(app, stronger, settings, err) == 1
    assert "re-protected 0 image(s)" in capsys.readouterr().out
    assert "restart it" in err.getvalue() and "another configuration" in err.getvalue()
    job = await protect_job(app, media_id)
    assert (job.state, job.attempts) == (JobState.DONE, 1)  # refused once, not retried
    after = await media_row(app, media_id)
    assert after.protection == ProtectionState.PROTECTED and after.file_key == before.file_key
    assert after.meta["protection"]["strength"] == "default"
    assert stored_files(app) == files
    assert await run_protect_later(app, minutes=20) == 0  # no purge
    await settle(app)
    assert await activities(app, "Update") == []
    assert (await bob_api.get(f"/api/v1/statuses/{status_id}")).status_code == 200

    # Restarted with the new settings, the worker does it.
    assert await follow_reprotect(app, stronger, stronger, io.StringIO()) == 0
    assert (await media_row(app, media_id)).meta["protection"]["strength"] == "high"


async def test_reprotect_checks_what_the_worker_made_against_what_it_expected(
        app: Starlette, settings: Settings, alice_api: httpx.AsyncClient,
        bob_api: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]) -> None:
    """An image already being re-protected (as an earlier run asked: strength low) is
    followed by a run that expects strength high: done as low, reported, exit 1."""
    media_id, _status_id = await published_work(app, alice_api, bob_api)
    low = settings.with_changes(protect_strength="low")
    async with app.state.easel.db.session() as session:
        earlier = Configuration(models=("tiny-vae",), strength="low", profile=None)
        assert await mark_for_reprotection(session, earlier, [int(media_id)]) == 1
    err = io.StringIO()
    assert await follow_reprotect(app, settings.with_changes(protect_strength="high"), low,
                                  err) == 1
    assert "1 already being re-protected" in capsys.readouterr().out
    assert "1 image(s) not re-protected as this command expected" in err.getvalue()
    assert (await media_row(app, media_id)).meta["protection"]["strength"] == "low"
