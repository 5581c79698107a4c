"""The ``protect_media`` job: from a stored private original to public renditions.

The job carries only the media id. It is idempotent: a media row that already has its
renditions is left alone, and every attempt writes files under new random keys, so a
redone attempt never overwrites what an earlier one published (files of an attempt whose
commit was lost are orphans, never wrong data). A file that can never decode is recorded
on the row as failed (no retry); trouble that may pass (storage) is retried, and recorded
on the row when the last attempt fails.

This module is torch-free; the perturbation, when it lands, imports torch lazily inside
``protect_media`` only.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from protect.ingest import ImageRejected, decode_upload
from protect.renditions import RenditionSet, make_renditions
from server.limits import IMAGE_MATRIX_LIMIT, IMAGE_SIZE_LIMIT
from server.models import MediaAttachment, MediaState, ProtectionState
from server.queue.kinds import job_kind
from server.queue.runner import JobContext
from server.settings import Settings
from server.storage import StorageError, media_storage, new_key

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


def unprotected_reason(settings: Settings) -> str:
    if not settings.vae_paths:
        return "no protection model is configured (EASEL_VAE_PATH is empty)"
    return "this version of Easel does not perturb images yet"


def build_renditions(original: bytes) -> RenditionSet:
    """Decode, normalise and render; CPU-bound, run in a thread."""
    image, _info = decode_upload(original, size_limit=IMAGE_SIZE_LIMIT, pixel_limit=IMAGE_MATRIX_LIMIT)
    # ---- PERTURBATION GOES HERE (later issue) -----------------------------------------
    # The protection step will perturb `image` against the configured encoders before the
    # renditions are made, then verify on the served bytes. Until it exists, nothing is
    # perturbed and the row says "unprotected", with the reason in meta["protection"].
    # ------------------------------------------------------------------------------------
    return make_renditions(image)


def _fail(media: MediaAttachment, message: str) -> None:
    media.state = MediaState.FAILED.value
    media.protection = ProtectionState.FAILED.value
    media.processing_error = message


@job_kind("protect_media", queue="protect", max_attempts=MAX_ATTEMPTS,
          time_limit=timedelta(minutes=15), retry_base=timedelta(seconds=30),
          retry_cap=timedelta(hours=1))
async def protect_media(context: JobContext) -> None:
    session = context.session
    media = await session.get(MediaAttachment, int(context.job.ref))
    if media is None:
        return  # deleted since; nothing to do
    if media.file_key is not None:
        return  # an earlier attempt completed and committed
    last_attempt = context.job.attempts >= MAX_ATTEMPTS
    if media.original_key is None:
        _fail(media, "The original file of this upload is missing; please upload it again.")
        return
    storage = media_storage(context.settings)
    try:
        original = await storage.get(media.original_key, private=True)
    except StorageError:
        if last_attempt:
            _fail(media, "The original file could not be read from storage; please upload it again.")
            return
        raise  # may be passing trouble: retried
    try:
        result = await asyncio.to_thread(build_renditions, original)
    except ImageRejected as exc:
        _fail(media, f"The image could not be processed: {exc.message}")
        return  # can never succeed: recorded, not retried
    await context.report_progress(0.8)
    keys = {}
    try:
        for rendition in result.all():
            key = new_key("media", rendition.extension)
            await storage.put(key, rendition.data)
            keys[rendition.name] = key
    except (StorageError, OSError):
        for key in keys.values():
            await storage.delete(key)
        if last_attempt:
            _fail(media, "The renditions could not be stored; please try again later.")
            return
        raise
    media.file_key, media.small_key, media.thumb_key = keys["full"], keys["small"], keys["thumb"]
    media.blurhash = result.blurhash
    media.meta = {**result.meta,
                  "protection": {"state": ProtectionState.UNPROTECTED.value,
                                 "reason": unprotected_reason(context.settings)}}
    media.type = "image"
    media.state = MediaState.READY.value
    media.protection = ProtectionState.UNPROTECTED.value
    media.processing_error = None
    if media.status_id is not None:
        from server.services.statuses import publish_if_ready

        await publish_if_ready(session, media.status_id)
