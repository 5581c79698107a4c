"""The protect_media job: renditions from the private original, idempotent, honest about
protection, failures recorded for the owner, statuses published when their media is ready."""

from __future__ import annotations

import sys
import types

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from protect.jobs import protect_media
from server.models import Job, JobState, MediaAttachment, MediaState, ProtectionState, Status, User
from server.queue.jobs import enqueue
from server.storage import LocalStorage, StorageError
from tests.protect import images
from tests.protect.conftest import media_row, run_protect, stored_files, upload


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
        images.assert_no_metadata(data)
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


async def test_a_waiting_status_is_offered_for_publishing(
        app: Starlette, alice_api: httpx.AsyncClient, alice: User,
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    async def publish_if_ready(session: object, status_id: int) -> bool:
        calls.append(status_id)
        return True

    module = sys.modules.get("server.services.statuses")
    if module is None:  # not written yet: stand in for it
        module = types.ModuleType("server.services.statuses")
        monkeypatch.setitem(sys.modules, "server.services.statuses", module)
    monkeypatch.setattr(module, "publish_if_ready", publish_if_ready, raising=False)

    media_id = (await upload(alice_api, images.jpeg())).json()["id"]
    async with app.state.easel.db.session() as session:
        status = Status(account_id=alice.account_id, uri="https://easel.test/s/1", published=False)
        session.add(status)
        await session.flush()
        media = await session.get(MediaAttachment, int(media_id))
        assert media is not None
        media.status_id = status.id
        await session.commit()
        status_id = status.id
    await run_protect(app)
    assert calls == [status_id]
    async with app.state.easel.db.session() as session:
        ready = await session.scalar(select(func.count()).select_from(MediaAttachment)
                                     .where(MediaAttachment.state == MediaState.READY))
        assert ready == 1
