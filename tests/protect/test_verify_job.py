"""The verify_media job with a real model (a tiny random AutoencoderKL, with its decoder,
named by EASEL_VAE_PATH): every protected image gets its report on the served bytes of
every size, after it is published; it is stored once, private to its owner, and
recomputed by `easel admin reverify`."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

import httpx
import torch
from PIL import Image
from sqlalchemy import select, update
from starlette.applications import Starlette

from protect import document as doc
from protect import verify, verify_job
from server import commands
from server.db import Database
from server.ids import utcnow
from server.models import Job, JobState, MediaAttachment, MediaState, ProtectionState, User
from server.queue.jobs import enqueue
from server.queue.runner import JobRunner
from server.services.protection import Configuration, mark_for_reprotection, mark_for_verification
from server.settings import Settings
from server.storage import LocalStorage, StorageError, new_key
from tests.conftest import authorized, make_token
from tests.protect.conftest import (
    media_row,
    protect_job,
    run_protect,
    run_protect_later,
    upload,
)
from tests.protect.test_jobs_protected import busy_png, post_with
from tests.protect.tiny_models import save_tiny_vae

pytestmark = pytest.mark.torch

SIZES = ("small", "thumb")
# Keys of a report that must never be seen by anyone but the owner (or anywhere public).
PRIVATE_KEYS = ("transforms", "verdict", "budget", "verification", "retention", "battery")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only contend for busy cores
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def settings(settings: Settings, tiny_vae_dir: Path, fast_protection: None) -> Settings:
    return settings.with_changes(vae_paths=(tiny_vae_dir,), protect_device="cpu")


@pytest.fixture(autouse=True)
def _three_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small renditions: a 96×64 upload is served at three different sizes."""
    monkeypatch.setattr("protect.renditions.SMALL_MAX_PIXELS", 64 * 40)
    monkeypatch.setattr("protect.renditions.THUMB_MAX_EDGE", 40)


async def document(api: httpx.AsyncClient, media_id: str) -> dict[str, Any]:
    response = await api.get(f"/api/v1/easel/media/{media_id}/protection")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def verify_job_row(app: Starlette, media_id: str) -> Job | None:
    async with app.state.easel.db.session() as session:
        job: Job | None = await session.scalar(select(Job).where(
            Job.kind == "verify_media", Job.ref == str(media_id)))
        return job


async def protect_only(app: Starlette, media_id: str) -> None:
    """Run the protect job alone (not the verification it enqueues)."""
    assert await app.state.easel.runner.run((await protect_job(app, media_id)).id) == "done"


def numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)


def assert_report(entry: dict[str, Any], size: list[int]) -> None:
    assert set(entry["budget"]) == {"linf", "psnr", "ssim"}
    assert entry["budget"]["linf"] > 0 and 20 < entry["budget"]["psnr"] < 100, entry["budget"]
    assert list(entry["transforms"]) == list(verify.BATTERY)  # vae_roundtrip too: a decoder
    for figures in entry["transforms"].values():
        assert figures["verdict"] in verify.VERDICTS
        for key in ("ratio", "retention", "shift", "noise_shift", "natural_units", "recon_psnr"):
            assert isinstance(figures[key], int | float), key
    assert entry["verdict"] in verify.VERDICTS
    assert isinstance(entry["summary"], str) and "tiny-vae" in entry["summary"]
    assert entry["size"] == entry["resolution"] == size  # the default profile: served size
    assert all(math.isfinite(n) for n in numbers(entry))


async def test_a_protected_image_is_published_then_verified_on_every_served_size(
        app: Starlette, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient) -> None:
    media_id, status_id = await post_with(alice_api, busy_png((96, 64)))
    await protect_only(app, media_id)
    # Published as soon as it is protected; the report follows.
    assert (await bob_api.get(f"/api/v1/statuses/{status_id}")).status_code == 200
    pending = await document(alice_api, media_id)
    assert (pending["state"], pending["verification"]) == ("protected", "pending")
    assert pending["verification_progress"] == 0.0 and "transforms" not in pending
    job = await verify_job_row(app, media_id)
    assert job is not None and (job.queue, job.state) == ("protect", JobState.QUEUED)

    assert await run_protect(app) == 1
    done = await document(alice_api, media_id)
    assert done["verification"] == "done" and done["verified_at"].endswith("Z")
    assert "verification_progress" not in done and "verification_reason" not in done
    assert done["models"] == ["tiny-vae"] and done["state"] == "protected"  # the protection's
    assert "check" not in done and done["battery"] == list(verify.BATTERY)
    assert done["thresholds"] == verify.thresholds()
    assert any("diffusion" in item for item in done["untested"])
    media = await media_row(app, media_id)
    served = {"full": media.meta["original"], "small": media.meta["small"]}
    assert_report(done, [served["full"]["width"], served["full"]["height"]])
    assert set(done["sizes"]) == set(SIZES)
    assert done["sizes"]["small"]["size"] == [served["small"]["width"], served["small"]["height"]]
    for name in SIZES:
        entry = done["sizes"][name]
        assert set(entry) == set(doc.SIZE_KEYS)
        assert_report(entry, entry["size"])
    sizes = {tuple(done["size"]), *(tuple(done["sizes"][n]["size"]) for n in SIZES)}
    assert sizes == {(96, 64), (61, 41), (40, 27)}  # three different served sizes
    assert (await verify_job_row(app, media_id)).state == JobState.DONE  # type: ignore[union-attr]
    # The reconstruction pictures: private files the document names, never in the API.
    assert "pictures" not in done
    pictures = doc.stored(await media_row(app, media_id))["pictures"]
    assert pictures["model"] == "tiny-vae" and pictures["crop"] == [0, 0, 96, 64]
    storage = LocalStorage(app.state.easel.settings.data_dir / "media", "")
    for key in doc.picture_keys(doc.stored(await media_row(app, media_id))):
        assert await storage.exists(key, private=True) and not await storage.exists(key)
        with Image.open(io.BytesIO(await storage.get(key, private=True))) as picture:
            assert (picture.format, picture.size) == ("PNG", (96, 64))


async def test_the_battery_runs_at_the_cpu_profiles_working_resolution_and_says_so(
        app: Starlette, alice_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from protect import perturb

    monkeypatch.setitem(perturb.PROFILES, "cpu", dataclasses.replace(perturb.PROFILES["cpu"], max_side=48))
    app.state.easel.runner.settings = app.state.easel.settings.with_changes(protect_profile="cpu")
    media_id = (await upload(alice_api, busy_png((96, 64)), content_type="image/png")).json()["id"]
    await run_protect(app)
    done = await document(alice_api, media_id)
    assert done["profile"] == "cpu" and done["verification"] == "done"
    assert (done["size"], done["resolution"]) == ([96, 64], [48, 32])
    assert "working resolution" in done["summary"]
    assert done["sizes"]["thumb"]["resolution"] == [40, 27]  # already smaller


async def test_an_image_that_was_not_perturbed_has_nothing_to_verify(
        app: Starlette, settings: Settings, tmp_path: Path, alice_api: httpx.AsyncClient) -> None:
    broken = settings.with_changes(vae_paths=(tmp_path / "vae-being-copied",))
    (tmp_path / "vae-being-copied").mkdir()
    app.state.easel.settings = broken
    app.state.easel.runner.settings = broken
    media_id, _status_id = await post_with(alice_api, busy_png())
    await run_protect_later(app)
    assert (await document(alice_api, media_id))["state"] == "failed"
    assert (await document(alice_api, media_id))["verification"] is None

    chosen = await alice_api.post(f"/api/v1/easel/media/{media_id}/publish_unprotected")
    assert chosen.status_code == 202
    assert await run_protect(app) == 1  # no verification job
    found = await document(alice_api, media_id)
    assert (found["state"], found["verification"]) == ("unprotected", "skipped")
    assert found["verification_reason"] == doc.NOTHING_TO_VERIFY
    assert not set(found) & {"transforms", "verdict", "budget", "sizes"}
    assert await verify_job_row(app, media_id) is None


async def test_the_report_is_stored_once_when_the_job_is_redone(
        app: Starlette, alice_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    media_id = (await upload(alice_api, busy_png(), content_type="image/png")).json()["id"]
    await protect_only(app, media_id)
    calls: list[str] = []
    real = verify.report

    def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append("report")
        return real(*args, **kwargs)

    monkeypatch.setattr(verify, "report", counted)

    # A worker claims the job and is killed: its lease runs out with nothing recorded.
    runner = app.state.easel.runner
    job = await verify_job_row(app, media_id)
    assert job is not None and await runner.claim(job.id) is not None
    assert calls == []
    async with app.state.easel.db.session() as session:
        await session.execute(update(Job).where(Job.id == job.id).values(
            locked_until=utcnow() - timedelta(seconds=1)))
        await session.commit()
    assert (await document(alice_api, media_id))["verification"] == "pending"
    assert await run_protect(app) == 1  # taken over, measured
    first = await document(alice_api, media_id)
    assert first["verification"] == "done" and len(calls) == 3  # full, small, thumb
    job = await verify_job_row(app, media_id)
    assert job is not None and (job.state, job.attempts) == (JobState.DONE, 2)

    # Asked again (a redelivered message): nothing is measured, nothing changes.
    async with app.state.easel.db.session() as session:
        await enqueue(session, verify_job.verify_media, media_id, again=True)
        await session.commit()
    assert await run_protect(app) == 1
    assert len(calls) == 3 and await document(alice_api, media_id) == first


async def test_renditions_swapped_while_they_were_measured_are_measured_again(
        app: Starlette, alice_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    media_id = (await upload(alice_api, busy_png(), content_type="image/png")).json()["id"]
    await protect_only(app, media_id)
    storage = app.state.easel.storage
    measured: list[str | None] = []
    real = verify_job.measure

    async def swapping(context: Any, sizes: Any, models: Any) -> Any:
        media = await media_row(app, media_id)
        measured.append(media.file_key)
        if len(measured) == 1:  # a re-protection lands meanwhile (here: the same pixels, moved)
            keys = [new_key("media", "jpg") for _ in range(3)]
            for old, new in zip((media.file_key, media.small_key, media.thumb_key), keys, strict=True):
                assert old is not None
                await storage.put(new, await storage.get(old))
            async with app.state.easel.db.session() as session:
                await session.execute(update(MediaAttachment).where(
                    MediaAttachment.id == int(media_id)).values(
                    file_key=keys[0], small_key=keys[1], thumb_key=keys[2]))
                await session.commit()
        return await real(context, sizes, models)

    monkeypatch.setattr(verify_job, "measure", swapping)
    assert await run_protect(app) == 1
    after = await media_row(app, media_id)
    assert len(measured) == 2 and measured[1] == after.file_key != measured[0]
    assert after.meta["protection"]["verification"] == "done"


async def test_a_redo_that_fails_for_good_lets_the_kept_renditions_be_verified(
        app: Starlette, alice_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-protection began before the first report was made: the verification stands aside
    while the image is pending, and is due again for the renditions the failed redo kept."""
    from protect import perturb

    media_id = (await upload(alice_api, busy_png(), content_type="image/png")).json()["id"]
    await protect_only(app, media_id)
    before = await media_row(app, media_id)
    async with app.state.easel.db.session() as session:
        tiny = Configuration(models=("tiny-vae",), strength="default", profile=None)
        assert await mark_for_reprotection(session, tiny, [int(media_id)]) == 1
    job = await verify_job_row(app, media_id)
    assert job is not None and await app.state.easel.runner.run(job.id) == "done"  # stood aside
    assert (await document(alice_api, media_id))["state"] == "pending"

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the accelerator is gone")

    monkeypatch.setattr(perturb, "protect_image", broken)
    # Every attempt of the redo fails, the last gives up; then the verification runs.
    assert await run_protect_later(app) == 5 + 1
    assert (await protect_job(app, media_id)).state == JobState.FAILED
    kept = await media_row(app, media_id)
    assert kept.file_key == before.file_key and kept.protection == ProtectionState.PROTECTED
    assert kept.meta["protection"]["reprotect_error"]
    assert kept.meta["protection"]["verification"] == "done"


async def test_a_verification_that_fails_for_good_is_said_and_the_image_stays_published(
        app: Starlette, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    media_id, status_id = await post_with(alice_api, busy_png())
    await protect_only(app, media_id)
    real = LocalStorage.get

    async def renditions_away(self: LocalStorage, key: str, *, private: bool = False) -> bytes:
        if not private:
            raise StorageError("the shared disk is away")
        return await real(self, key, private=private)

    monkeypatch.setattr(LocalStorage, "get", renditions_away)
    assert await run_protect_later(app) == verify_job.MAX_ATTEMPTS
    job = await verify_job_row(app, media_id)
    assert job is not None and job.state == JobState.FAILED
    failed = await document(alice_api, media_id)
    assert (failed["state"], failed["verification"]) == ("protected", "failed")
    assert failed["verification_reason"].startswith("The verification could not be made")
    assert str(app.state.easel.storage.root) not in json.dumps(failed)
    assert "transforms" not in failed
    media = await media_row(app, media_id)
    assert media.state == MediaState.READY and media.protection == ProtectionState.PROTECTED
    assert (await bob_api.get(f"/api/v1/statuses/{status_id}")).status_code == 200


async def test_other_models_than_the_images_are_not_used_to_verify_it(
        app: Starlette, settings: Settings, tmp_path: Path, alice_api: httpx.AsyncClient) -> None:
    media_id = (await upload(alice_api, busy_png(), content_type="image/png")).json()["id"]
    await protect_only(app, media_id)
    other = settings.with_changes(vae_paths=(save_tiny_vae(tmp_path / "other-vae"),))
    app.state.easel.runner.settings = other  # the worker was restarted with another model
    assert await run_protect(app) == 1
    skipped = await document(alice_api, media_id)
    assert (skipped["state"], skipped["verification"]) == ("protected", "skipped")
    assert "re-protected first" in skipped["verification_reason"]
    assert "tiny-vae" in skipped["verification_reason"] and "other-vae" in skipped["verification_reason"]
    assert str(tmp_path) not in skipped["verification_reason"]
    assert "transforms" not in skipped

    # Without any model, there is nothing to verify with.
    async with app.state.easel.db.session() as session:
        assert await mark_for_verification(session, [int(media_id)]) == 1
    app.state.easel.runner.settings = settings.with_changes(vae_paths=())
    assert await run_protect(app) == 1
    none = await document(alice_api, media_id)
    assert none["verification"] == "skipped"
    assert none["verification_reason"] == verify_job.NO_MODEL_REASON


async def test_reverify_recomputes_reports_made_with_other_thresholds(
        app: Starlette, settings: Settings, alice_api: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    media_id = (await upload(alice_api, busy_png(), content_type="image/png")).json()["id"]
    await run_protect(app)
    before = await document(alice_api, media_id)
    media_before = await media_row(app, media_id)
    assert before["verification"] == "done"
    assert await commands.reverify(settings, here=True, stream=io.StringIO()) == 0
    assert "0 image(s) to verify" in capsys.readouterr().out  # up to date

    monkeypatch.setattr(verify, "RATIO_DEFEATED", 1e9)  # recalibrated: nothing survives
    assert await commands.reverify(settings, dry_run=True) == 0
    listed = capsys.readouterr().out
    assert "1 image(s) to verify against tiny-vae" in listed and f"{media_id}  account=" in listed
    assert (await document(alice_api, media_id)) == before  # a dry run changes nothing

    err = io.StringIO()
    assert await commands.reverify(settings, here=True, stream=err) == 0
    assert "verified 1 image(s)" in capsys.readouterr().out
    assert "verifying [" in err.getvalue() and "1/1" in err.getvalue()
    after = await document(alice_api, media_id)
    assert after["verification"] == "done" and after["verified_at"] >= before["verified_at"]
    assert after["thresholds"]["ratio_defeated"] == 1e9
    assert after["verdict"] == "defeated" and after["summary"].startswith("Defeated by")
    assert {t["verdict"] for t in after["transforms"].values()} == {"defeated"}
    assert {t["verdict"] for t in after["sizes"]["thumb"]["transforms"].values()} == {"defeated"}
    assert after["budget"] == before["budget"]  # the same served bytes
    # The new report's pictures replaced the old ones, which are deleted.
    old, new = (doc.picture_keys(doc.stored(m)) for m in (media_before, await media_row(app, media_id)))
    storage = LocalStorage(settings.data_dir / "media", "")
    assert len(new) == 2 and not set(old) & set(new)
    assert [await storage.exists(k, private=True) for k in old + new] == [False, False, True, True]

    # --all and ids requeue reports that are up to date; ids that are no protected image
    # are named, and the exit status says so.
    assert await commands.reverify(settings, every=True, here=True, stream=io.StringIO()) == 0
    assert "1 image(s) to verify" in capsys.readouterr().out
    err = io.StringIO()
    assert await commands.reverify(settings, here=True, media_ids=[int(media_id), 12345],
                                   stream=err) == 1
    assert "1 image(s) to verify" in capsys.readouterr().out
    assert "not a ready, protected local image: 12345" in err.getvalue()


async def test_reverify_follows_the_worker_and_leaves_other_models_alone(
        app: Starlette, settings: Settings, tmp_path: Path, alice_api: httpx.AsyncClient,
        capsys: pytest.CaptureFixture[str]) -> None:
    media_id = (await upload(alice_api, busy_png(), content_type="image/png")).json()["id"]
    await protect_only(app, media_id)  # never verified yet
    other = settings.with_changes(vae_paths=(save_tiny_vae(tmp_path / "other-vae"),))
    err = io.StringIO()
    assert await commands.reverify(other, here=True, stream=err) == 0
    assert "0 image(s) to verify against other-vae" in capsys.readouterr().out
    assert "1 image(s) protected against other models are left alone" in err.getvalue()

    worker = JobRunner(app.state.easel.db, settings)
    err = io.StringIO()
    follower = asyncio.create_task(commands.reverify(settings, stream=err))
    deadline = asyncio.get_running_loop().time() + 120
    while not follower.done():
        assert asyncio.get_running_loop().time() < deadline, err.getvalue()
        await worker.run_due(["protect"])
        await asyncio.sleep(0.05)
    assert await follower == 0
    assert "following the protect worker" in err.getvalue()
    assert (await document(alice_api, media_id))["verification"] == "done"


async def test_the_report_is_its_owners_only(
        app: Starlette, client: httpx.AsyncClient, db: Database, alice: User,
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient) -> None:
    media_id, status_id = await post_with(alice_api, busy_png())
    await run_protect(app)
    path = f"/api/v1/easel/media/{media_id}/protection"
    assert (await document(alice_api, media_id))["verification"] == "done"
    async with authorized(client, await make_token(db, None, "read write")) as app_only:
        for who in (bob_api, client, app_only):
            response = await who.get(path)
            assert response.status_code == 404 and response.json() == {"error": "Record not found"}

    def assert_public(text: str) -> None:
        for key in PRIVATE_KEYS:
            assert f'"{key}"' not in text, key

    for who in (alice_api, bob_api, client):
        status = await who.get(f"/api/v1/statuses/{status_id}")
        assert status.status_code == 200
        assert_public(status.text)
        assert '"summary"' not in status.text
    entity = await alice_api.get(f"/api/v1/media/{media_id}")
    assert entity.status_code == 200 and "protection" not in entity.json()["meta"]
    assert_public(entity.text)
    assert '"summary"' not in entity.text
    timeline = await bob_api.get("/api/v1/timelines/public")
    assert timeline.json() and all(s["id"] for s in timeline.json())
    assert_public(timeline.text)
    note = await client.get(status.json()["uri"].removeprefix("https://easel.test"),
                            headers={"Accept": "application/activity+json"})
    assert note.status_code == 200 and note.json()["type"] == "Note"
    assert_public(note.text)
