"""The ``check_image`` job (protect queue): the check of an outside image an artist
uploaded in the studio (``server/services/checks.py``), the same one ``easel verify`` runs —
the full report against the clean original when there is one, the blind test otherwise —
with the configured models. Its result is written next to the uploads as
``result.json`` (``{"error": ...}`` when it cannot be made), and the uploads are deleted.
A check whose job fails for good reads as failed from its job row (``get_check``).

Idempotent: a check with a result is done. Torch-free at import, like ``protect.jobs``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import timedelta

from PIL import Image

from protect.jobs import LEASE, AttemptFailed, load_models
from server.queue.kinds import job_kind
from server.queue.runner import JobContext
from server.services.checks import CHECK_JOB, TOKEN_RE, key, read_json
from server.settings import Settings
from server.storage import StorageError, media_storage

log = logging.getLogger(__name__)

NO_MODEL = ("No protection model is configured on this server, so there is nothing to check "
            "the image against.")
UPLOADS = ("image.png", "original.png")


async def _finish(settings: Settings, token: str, result: dict[str, object]) -> None:
    storage = media_storage(settings)
    await storage.put(key(token, "result.json"),
                      json.dumps(result, ensure_ascii=False, allow_nan=False).encode(), private=True)
    for name in UPLOADS:
        await storage.delete(key(token, name), private=True)


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


@job_kind(CHECK_JOB, queue="protect", max_attempts=3, time_limit=timedelta(hours=1), lease=LEASE,
          retry_base=timedelta(minutes=1), retry_cap=timedelta(minutes=30))
async def check_image(context: JobContext) -> None:
    token = context.job.ref
    if not TOKEN_RE.fullmatch(token):
        return
    storage = media_storage(context.settings)
    if await read_json(storage, token, "result.json") is not None:
        return  # done before (a redone job)
    models = await asyncio.to_thread(load_models, context.settings)  # ModelLoadError: retried
    if models is None:
        await _finish(context.settings, token, {"error": NO_MODEL})
        return
    try:
        image = _open(await storage.get(key(token, "image.png"), private=True))
        meta = await read_json(storage, token, "meta.json") or {}
        original = (_open(await storage.get(key(token, "original.png"), private=True))
                    if meta.get("with_original") else None)
    except StorageError as exc:
        raise AttemptFailed("The check could not be made: its files could not be read.", exc) from exc
    await context.report_progress(0.05)
    from protect.verify import VerifyError, full_check

    try:
        doc = await asyncio.to_thread(full_check, image, original, models.models,
                                      working_side=models.profile.max_side)
    except VerifyError as exc:
        await _finish(context.settings, token, {"error": f"The check could not be made: {exc.message}."})
        return
    doc.setdefault("models", models.names)
    await _finish(context.settings, token, {**doc, "profile": models.profile.name})
    log.info("check %s: %s", token, doc.get("verdict"))
