"""Checking an outside image: an artist uploads an image protected elsewhere (Glaze, Mist, …)
and, if they have it, its clean original; the protect worker runs the check ``easel verify``
runs (``protect/check_job.py``) — the full report with the original, the blind test
without — and the result waits for its owner on a studio page.

Everything is private, under ``checks/<token>/`` in private storage: ``meta.json`` (whose
check it is, when, with or without an original), the uploads as PNG (deleted once
checked) and ``result.json``. A check belongs to its owner only: anyone else (or a
malformed token) gets "not found". The upload goes through the same size, pixel and
decoding limits as any upload; it is not screened for AI provenance (it is never
published), and nothing about it is ever public.
"""

from __future__ import annotations

import io
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from protect.ingest import ImageRejected, decode_upload
from server.ids import utcnow
from server.models import Account, Job, JobState
from server.queue.jobs import enqueue
from server.queue.kinds import kind_named
from server.services.errors import NotFound, ServiceError
from server.storage import Storage, StorageError

CHECK_JOB = "check_image"  # protect/check_job.py
GAVE_UP = ("The check could not be made (the administrator can see why in `easel admin jobs`); "
           "try again later.")
TOKEN_RE = re.compile(r"[0-9a-f]{32}")


def key(token: str, name: str) -> str:
    return f"checks/{token}/{name}"


@dataclass(frozen=True)
class CheckView:
    token: str
    state: str  # "pending", "done" or "failed"
    progress: float
    with_original: bool
    created_at: str
    result: dict[str, Any] | None  # the report or blind-test document, or {"error": ...}


def _png(data: bytes, what: str) -> bytes:
    try:
        image, _ = decode_upload(data)
    except ImageRejected as exc:
        raise ServiceError(f"The {what}: {exc.message}", 422) from None
    out = io.BytesIO()
    with image:
        image.convert("RGB").save(out, "PNG")
    return out.getvalue()


async def create_check(session: AsyncSession, storage: Storage, account: Account,
                       image: bytes, original: bytes | None) -> str:
    """Store the uploads privately and queue their check; committed. Returns its token."""
    if not image:
        raise ServiceError("Choose the image to check", 422)
    image_png = _png(image, "image")
    original_png = _png(original, "original") if original else None
    token = secrets.token_hex(16)
    meta = {"account_id": account.id, "created_at": utcnow().isoformat(),
            "with_original": original_png is not None}
    await storage.put(key(token, "image.png"), image_png, private=True)
    if original_png is not None:
        await storage.put(key(token, "original.png"), original_png, private=True)
    await storage.put(key(token, "meta.json"), json.dumps(meta).encode(), private=True)
    await enqueue(session, kind_named(CHECK_JOB), token)
    await session.commit()
    return token


async def read_json(storage: Storage, token: str, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads(await storage.get(key(token, name), private=True))
    except (StorageError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def get_check(session: AsyncSession, storage: Storage, account: Account,
                    token: str) -> CheckView:
    """The account's own check; NotFound for anyone else's or a token that is none."""
    if not TOKEN_RE.fullmatch(token):
        raise NotFound("Record not found")
    meta = await read_json(storage, token, "meta.json")
    if meta is None or meta.get("account_id") != account.id:
        raise NotFound("Record not found")
    result = await read_json(storage, token, "result.json")
    job = await session.scalar(select(Job).where(Job.kind == CHECK_JOB, Job.ref == token)
                               .order_by(Job.id.desc()).limit(1))
    if result is None and job is not None and job.state == JobState.FAILED:
        result = {"error": GAVE_UP}
    if result is not None:
        state = "failed" if "error" in result else "done"
    else:
        state = "pending"
    progress = 1.0 if result is not None else (job.progress if job is not None else 0.0)
    return CheckView(token=token, state=state, progress=float(progress),
                     with_original=bool(meta.get("with_original")),
                     created_at=str(meta.get("created_at", "")), result=result)
