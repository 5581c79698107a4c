"""The protect_media job: renditions from the private original, idempotent, honest about
protection, failures recorded for the owner, statuses published when their media is ready."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from protect import document as doc
from protect.jobs import (
    MAX_ATTEMPTS,
    OTHER_CONFIGURATION,
    PERTURBED,
    ProgressReporter,
    ProtectionCancelled,
    protect_media,
)
from server.ids import utcnow
from server.models import Job, JobState, MediaAttachment, MediaState, ProtectionState
from server.queue.jobs import enqueue
from server.queue.runner import JobContext
from server.services.protection import Configuration, mark_for_reprotection
from server.storage import LocalStorage, StorageError
from tests.protect import images
from tests.protect.conftest import (
    activities,
    later_runner,
    media_row,
    protect_job,
    run_protect,
    run_protect_later,
    settle,
    stored_files,
    upload,
)


async def test_the_job_makes_renditions_and_marks_the_media_ready_but_unprotected(
        app: Starlette, alice_api: httpx.AsyncClient) -> None:
    response = await upload(alice_api, images.sideways_jpeg_with_gps())
    media_id = response.json()["id"]
    assert await run_protect(app) == 1
    media = await media_row(app, media_id)
    assert media.state == MediaState.READY
    assert media.protection == ProtectionState.UNPROTECTED
    assert media.processing_error is None
    assert media.meta["protection"]["state"] == "unprotected" and media.meta["protection"]["reason"]
    assert media.meta["original"] == {"width": 40, "height": 80, "size": "40x80", "aspect": 0.5}
    assert media.blurhash
    storage = app.state.easel.storage
    for key in (media.file_key, media.small_key, media.thumb_key):
        assert key is not None and key.startswith("media/")
        data = await storage.get(key)
        images.assert_only_optout_metadata(data)
        assert not await storage.exists(key, private=True)


async def test_running_the_job_twice_leaves_one_set_of_renditions(
        app: Starlette, alice_api: httpx.AsyncClient) -> None:
    media_id = (await upload(alice_api, images.jpeg((900, 600)))).json()["id"]
    await run_protect(app)
    first = await media_row(app, media_id)
    files = stored_files(app)
    assert len(files) == 3
    db = app.state.easel.db
    async with db.session() as session:  # asked again (e.g. a redelivered message)
        await enqueue(session, protect_media, str(media_id), again=True)
        await session.commit()
    assert await run_protect(app) == 1
    again = await media_row(app, media_id)
    assert (again.file_key, again.small_key, again.thumb_key) == (first.file_key, first.small_key,
                                                                  first.thumb_key)
    assert stored_files(app) == files


async def test_an_original_that_can_never_decode_is_recorded_not_retried(
        app: Starlette, alice_api: httpx.AsyncClient) -> None:
    media_id = (await upload(alice_api, images.png())).json()["id"]
    media = await media_row(app, media_id)
    assert media.original_key is not None
    await app.state.easel.storage.put(media.original_key, b"\x89PNG\r\n\x1a\nbroken", private=True)
    await run_protect(app)
    failed = await media_row(app, media_id)
    assert failed.state == MediaState.FAILED
    assert failed.processing_error is not None and "could not be processed" in failed.processing_error
    assert failed.file_key is None and stored_files(app) == []
    async with app.state.easel.db.session() as session:
        job = await session.scalar(select(Job).where(Job.ref == str(media_id)))
        assert job is not None and job.state == JobState.DONE and job.attempts == 1


async def test_storage_trouble_is_retried(app: Starlette, alice_api: httpx.AsyncClient,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    media_id = (await upload(alice_api, images.png())).json()["id"]

    async def unavailable(self: LocalStorage, key: str, *, private: bool = False) -> bytes:
        raise StorageError("the shared disk is away")

    monkeypatch.setattr(LocalStorage, "get", unavailable)
    await run_protect(app)
    media = await media_row(app, media_id)
    assert media.state == MediaState.PROCESSING and media.processing_error is None
    async with app.state.easel.db.session() as session:
        job = await session.scalar(select(Job).where(Job.ref == str(media_id)))
        assert job is not None and job.state == JobState.QUEUED and "shared disk" in (job.last_error or "")


async def test_a_status_waits_for_its_media_and_is_published_when_they_are_ready(
        app: Starlette, client: httpx.AsyncClient, alice_api: httpx.AsyncClient,
        bob_api: httpx.AsyncClient) -> None:
    """Upload → post at once (media still processing) → hidden from others, no notification
    yet → the protect job finishes → published, visible, and @bob is notified."""
    media_id = (await upload(alice_api, images.jpeg())).json()["id"]
    posted = await alice_api.post("/api/v1/statuses", json={
        "status": "New painting for @bob #oil", "media_ids": [media_id]})
    assert posted.status_code == 200
    status = posted.json()
    assert status["media_attachments"][0]["url"].endswith("/static/processing.png")  # processing
    assert (await alice_api.get(f"/api/v1/statuses/{status['id']}")).status_code == 200
    assert (await bob_api.get(f"/api/v1/statuses/{status['id']}")).status_code == 404
    assert (await client.get("/api/v1/timelines/public")).json() == []
    assert (await bob_api.get("/api/v1/notifications")).json() == []

    assert await run_protect(app) == 1

    seen = await bob_api.get(f"/api/v1/statuses/{status['id']}")  # the old id still finds it
    assert seen.status_code == 200
    published_id = seen.json()["id"]  # renumbered as of its publication
    assert seen.json()["media_attachments"][0]["url"].startswith("https://easel.test/system/")
    assert [s["id"] for s in (await client.get("/api/v1/timelines/public")).json()] == [published_id]
    notifications = (await bob_api.get("/api/v1/notifications")).json()
    assert [(n["type"], n["status"]["id"]) for n in notifications] == [("mention", published_id)]


async def test_a_status_published_late_sorts_as_of_its_publication(
        app: Starlette, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient) -> None:
    """Clients poll with since_id: a work that waited for its media must come after the
    posts made meanwhile, and its author's old id must still find it."""
    alice_id = (await alice_api.get("/api/v1/accounts/verify_credentials")).json()["id"]
    assert (await bob_api.post(f"/api/v1/accounts/{alice_id}/follow")).status_code == 200
    media_id = (await upload(alice_api, images.jpeg())).json()["id"]
    waiting = (await alice_api.post("/api/v1/statuses", json={
        "status": "the work #ink", "media_ids": [media_id]})).json()
    quick = (await alice_api.post("/api/v1/statuses", json={"status": "a quick note"})).json()
    await alice_api.post(f"/api/v1/statuses/{waiting['id']}/favourite")
    await alice_api.post(f"/api/v1/statuses/{waiting['id']}/bookmark")
    home = (await bob_api.get("/api/v1/timelines/home")).json()
    assert [s["id"] for s in home] == [quick["id"]]

    await run_protect(app)

    newer = (await bob_api.get("/api/v1/timelines/home", params={"since_id": quick["id"]})).json()
    assert len(newer) == 1 and "the work" in newer[0]["content"]
    published = newer[0]
    assert int(published["id"]) > int(quick["id"])
    assert published["uri"].endswith(f"/statuses/{published['id']}")
    assert len(published["media_attachments"]) == 1
    by_old_id = await alice_api.get(f"/api/v1/statuses/{waiting['id']}")
    assert by_old_id.status_code == 200 and by_old_id.json()["id"] == published["id"]
    assert by_old_id.json()["favourited"] is True and by_old_id.json()["bookmarked"] is True
    tagged = (await bob_api.get("/api/v1/timelines/tag/ink")).json()
    assert [s["id"] for s in tagged] == [published["id"]]
    deleted = await alice_api.delete(f"/api/v1/statuses/{waiting['id']}")
    assert deleted.status_code == 200
    assert (await alice_api.get(f"/api/v1/statuses/{published['id']}")).status_code == 404


async def test_progress_from_the_perturbation_thread_is_throttled_and_stops_a_cancelled_attempt() -> None:
    recorded: list[float] = []

    class Context:
        job = Job(id=1)

        async def report_progress(self, value: float) -> None:
            recorded.append(value)

    reporter = ProgressReporter(Context(), asyncio.get_running_loop())  # type: ignore[arg-type]

    def steps() -> None:  # as protect_image calls it, from its thread
        for step in range(1, 11):
            reporter(step / 10)

    await asyncio.to_thread(steps)
    await reporter.settle()
    assert recorded == [pytest.approx(0.05 + 0.8 * 0.1)]  # one write per PROGRESS_INTERVAL
    reporter.cancelled.set()  # the attempt hit its time limit
    with pytest.raises(ProtectionCancelled):
        await asyncio.to_thread(reporter, 0.5)


async def test_a_job_whose_worker_dies_at_every_attempt_fails_for_its_owner(
        app: Starlette, alice_api: httpx.AsyncClient) -> None:
    """The worker was killed during the last attempt too (out of memory on this image):
    the job is given up when its claim runs out, and the author is told, to choose."""
    media_id = (await upload(alice_api, images.png())).json()["id"]
    job = await protect_job(app, media_id)
    async with app.state.easel.db.session() as session:
        await session.execute(update(Job).where(Job.id == job.id).values(
            state=JobState.RUNNING, attempts=MAX_ATTEMPTS, claims=MAX_ATTEMPTS,
            locked_until=utcnow() - timedelta(seconds=1)))
        await session.commit()
    assert await run_protect(app) == 1
    assert (await protect_job(app, media_id)).state == JobState.FAILED
    media = await media_row(app, media_id)
    assert media.state == MediaState.FAILED and media.file_key is None
    assert media.processing_error is not None
    assert media.processing_error.startswith("The protection worker stopped while protecting")
    document = (await alice_api.get(f"/api/v1/easel/media/{media_id}/protection")).json()
    assert document["state"] == "failed" and document["reason"] == media.processing_error
    assert stored_files(app) == []


async def test_a_choice_made_while_the_job_ran_is_honoured(
        app: Starlette, alice_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The author asks to publish unprotected while an attempt is already past reading the
    row: that attempt's result is dropped (its files too) and the media done as asked."""
    media_id = (await upload(alice_api, images.png())).json()["id"]
    real = JobContext.report_progress
    changed: list[float] = []

    async def choose_meanwhile(self: JobContext, progress: float) -> None:
        if progress == PERTURBED and not changed:
            changed.append(progress)
            async with app.state.easel.db.session() as session:
                media = await session.get(MediaAttachment, int(media_id))
                assert media is not None
                doc.store(media, doc.pending(media, strength=None,
                                             requested=doc.REQUESTED_UNPROTECTED))
                await session.commit()
        await real(self, progress)

    monkeypatch.setattr(JobContext, "report_progress", choose_meanwhile)
    assert await run_protect(app) == 1
    assert changed
    media = await media_row(app, media_id)
    assert media.state == MediaState.READY
    stored = media.meta["protection"]
    assert (stored["state"], stored["reason"]) == ("unprotected", doc.AUTHOR_REASON)
    assert stored["requested"] == doc.REQUESTED_UNPROTECTED
    assert len(stored_files(app)) == 3  # the dropped pass's renditions are gone
    assert (await protect_job(app, media_id)).attempts == 1  # in the same attempt


async def test_a_reprotection_the_worker_would_not_apply_as_expected_is_refused(
        app: Starlette, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient) -> None:
    """`easel admin reprotect` expected a model; this worker has none (its settings were
    not reloaded): refused at once, and nothing changes for what is served."""
    media_id = (await upload(alice_api, images.png())).json()["id"]
    status = (await alice_api.post("/api/v1/statuses", json={
        "status": "served", "media_ids": [media_id]})).json()
    assert await run_protect(app) == 1
    before = await media_row(app, media_id)
    files = stored_files(app)
    expected = Configuration(models=("sd-vae-ft-mse",), strength="default", profile=None)
    async with app.state.easel.db.session() as session:
        assert await mark_for_reprotection(session, expected, [int(media_id)]) == 1
    pending = (await alice_api.get(f"/api/v1/easel/media/{media_id}/protection")).json()
    assert pending["state"] == "pending" and "expected" not in pending
    assert pending["strength"] is None and pending["models"] == []

    assert await run_protect(app) == 1
    job = await protect_job(app, media_id)
    assert (job.state, job.attempts) == (JobState.DONE, 1)  # not retried
    after = await media_row(app, media_id)
    assert after.state == MediaState.READY and after.protection == ProtectionState.UNPROTECTED
    assert (after.file_key, after.small_key) == (before.file_key, before.small_key)
    assert after.meta["protection"]["reprotect_error"] == OTHER_CONFIGURATION
    assert stored_files(app) == files
    assert (await bob_api.get(f"/api/v1/statuses/{status['id']}")).status_code == 200
    assert await run_protect_later(app) == 0  # no purge, nothing else
    await settle(app)
    assert await activities(app, "Update") == []


async def test_a_deleted_statuss_images_are_kept_a_day_for_a_redraft_then_purged(
        app: Starlette, alice_api: httpx.AsyncClient) -> None:
    kept_id = (await upload(alice_api, images.sideways_jpeg_with_gps())).json()["id"]
    gone_id = (await upload(alice_api, images.sideways_jpeg_with_gps())).json()["id"]
    assert await run_protect(app) == 2
    status = (await alice_api.post("/api/v1/statuses", data={
        "status": "two", "media_ids[]": [kept_id, gone_id]})).json()
    before_public, before_private = stored_files(app), stored_files(app, private=True)
    assert len(before_public) == 6 and len(before_private) == 2
    deleted = await alice_api.delete(f"/api/v1/statuses/{status['id']}")
    assert deleted.status_code == 200
    assert {m["id"] for m in deleted.json()["media_attachments"]} == {kept_id, gone_id}
    # Not yet due: a redraft may use them within the day.
    assert await app.state.easel.runner.run_due(["default"]) == 0
    redraft = await alice_api.post("/api/v1/statuses", data={"status": "one", "media_ids[]": kept_id})
    assert redraft.status_code == 200
    # A day later the one not posted again is gone, with every file of it.
    assert await later_runner(app, minutes=24 * 60 + 1).run_due(["default"]) == 1
    async with app.state.easel.db.session() as session:
        assert await session.get(MediaAttachment, int(gone_id)) is None
    kept = await media_row(app, kept_id)
    assert kept.status_id is not None
    assert len(stored_files(app)) == 3 and len(stored_files(app, private=True)) == 1
    assert {p.name for p in stored_files(app)} == {
        k.rsplit("/", 1)[-1] for k in (kept.file_key, kept.small_key, kept.thumb_key) if k}
