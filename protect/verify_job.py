"""The ``verify_media`` job: a protected image's verification report, measured on the
bytes Easel serves, stored in its protection document.

Why a job of its own. The report (``protect/verify.py``) runs a battery of purifications
on every served size (full, small, thumbnail) and, per model and size, costs dozens of
encoder and decoder passes (55 and 25 with a decoder): minutes on a CPU, more than the
``cpu`` profile's perturbation itself. So ``protect_media`` publishes an image as soon as
it is protected and, in the same commit that marks it ready, enqueues this job on the
same ``protect`` queue: the report follows right after the renditions are written, and
until it is stored the document says ``"verification": "pending"``. An image the job did
not perturb (no model configured, or published unprotected at its author's request) gets
no job: its document says there is nothing to verify.

One attempt: load the models (the worker's, once per process) → read the private
original and the three served renditions → make, for each served size, the clean
reference exactly as its rendition was made but from the original (``protect.jobs.prepare``,
then ``protect.renditions.make_renditions``: the same resizing and encoding — what Easel
would serve without protection), and the random-noise baseline the same way from the
original ± the strength's budget (:func:`measured_sizes` says why) → decode them →
``verify.report`` on each size in a thread (on the ``cpu`` profile at its working
resolution, which the report states; progress goes to the job row) → one commit that
stores the reports (``document.with_report``), if the renditions are still those it
measured. Images with transparency are measured as clients show them, over white.

Skipped, not measured: when no model is configured now (nothing to measure with), or the
worker loads other models than the image was protected against (its report would measure
a protection the image does not have: it must be re-protected first). The document says
why, in ``verification_reason``.

Idempotent: only a document whose verification is pending is measured, and a redone
attempt (a killed worker) measures again and stores one report. Renditions swapped while
an attempt measured (a re-protection) are measured again, in the same attempt. While an
image is being re-protected its verification waits: the re-protection enqueues a new one
when it lands, or, if it fails for good, for the renditions it kept.

Failures: what may pass (storage, a model being fixed, a killed worker) is retried; a
check that cannot run on these images (``VerifyError``: a model returning NaN, say) is
recorded at once. After the last attempt the document says the verification could not be
made (``"verification": "failed"``). The media stays published whatever happens here.

Torch-free (and NumPy-free) at import, like ``protect.jobs``: ``protect.verify`` and the
models are imported inside the job.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession

from protect import document as doc
from protect.ingest import ImageRejected
from protect.jobs import LEASE, AttemptFailed, in_thread, load_models, owner_message, prepare
from protect.renditions import as_shown, make_renditions
from server.models import Job, MediaAttachment, MediaState, ProtectionState
from server.queue.kinds import job_kind
from server.queue.runner import JobContext
from server.storage import StorageError, media_storage, new_key

if TYPE_CHECKING:
    from protect.models import ProtectionModels

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# On a GPU the three reports take seconds. On a CPU-only worker (the cpu profile: each
# report at ≤ 384 px, whatever the upload's size) one report with the SD VAE costs about
# 11 minutes on 2 busy cores, so an upload's three about half an hour (README).
TIME_LIMIT = timedelta(hours=2)
# How often one attempt starts over because the renditions were swapped while it measured.
RENDITION_REDOS = 2
# Progress once the files are read and decoded; the reports fill the rest, by their size.
READ = 0.05

NO_MODEL_REASON = ("Not verified: no protection model is configured on the server now, so "
                   "there is nothing to measure the protection with.")
# The reconstruction pictures: a crop of the full rendition as served (no resampling, so
# the perturbation is exactly what the model sees), at most this many pixels a side.
PICTURE_SIDE = 768

MISSING_ORIGINAL = ("The verification could not be made: the original of this image is missing, "
                    "so the served image cannot be compared with it.")

Document = dict[str, Any]


def other_models_reason(protected_with: Sequence[str], loaded: Sequence[str]) -> str:
    """Why an image protected against other models than the worker's is not verified."""
    return (f"Not verified: this image was protected against {', '.join(protected_with) or 'no model'}, "
            f"and the server now uses {', '.join(loaded)}; it has to be re-protected first.")


def skip_reason(document: Document, models: ProtectionModels | None) -> str | None:
    """Why the verification of an image with this document is skipped by a worker with
    these models (None: it can be made)."""
    if models is None:
        return NO_MODEL_REASON
    protected_with = list(document.get("models") or [])
    if protected_with != models.names:
        return other_models_reason(protected_with, models.names)
    return None


def budget_linf(document: Document) -> int:
    """The L∞ budget, in /255, of the strength the image was protected at."""
    from protect.perturb import STRENGTHS

    strength = STRENGTHS.get(str(document.get("strength")), STRENGTHS["default"])
    return max(1, round(strength.epsilon * 255))


def _waiting(media: MediaAttachment | None) -> bool:
    """A ready, protected media whose verification is pending."""
    return (media is not None and media.state == MediaState.READY
            and media.protection == ProtectionState.PROTECTED
            and None not in (media.file_key, media.small_key, media.thumb_key)
            and doc.verification(doc.stored(media)) == doc.VERIFICATION_PENDING)


async def _pending(session: AsyncSession, media_id: int) -> MediaAttachment | None:
    """The media row as it is now, if its verification still waits for this job."""
    media = await session.get(MediaAttachment, media_id, populate_existing=True)
    return media if media is not None and _waiting(media) else None


def _keys(media: MediaAttachment) -> tuple[str, str, str]:
    assert media.file_key and media.small_key and media.thumb_key
    return media.file_key, media.small_key, media.thumb_key


def decoded(data: bytes) -> Image.Image:
    """A served rendition's pixels as clients show them."""
    image = Image.open(io.BytesIO(data))  # in memory: nothing to close
    image.load()
    return as_shown(image)


class Size(NamedTuple):
    """One served size, as the report compares it: the served pixels, the clean reference,
    and the random-noise baseline (see :func:`measured_sizes`)."""

    name: str
    clean: Image.Image
    served: Image.Image
    baseline: Image.Image


def measured_sizes(original: bytes, served: Sequence[bytes], linf: int, seed: int = 0) -> list[Size]:
    """Each served size with its references, all made the way the served rendition was
    made from the protected image (``prepare``, then ``make_renditions``: the same resizing
    and the same JPEG or WebP encoding), and decoded:

    * the clean reference from the original: what Easel would serve unprotected;
    * the baseline from the original ± ``linf``/255 sign noise (the protection's budget):
      what Easel would serve had it added random noise of that budget instead.

    So the served image differs from the clean one by the perturbation as it survived the
    encoding, not by the encoding's own loss, and the noise is held to the same budget and
    the same encoding. (Measured against the unencoded original, JPEG's loss on a fine
    texture — up to 50/255 on single pixels — would count as perturbation, and set the
    noise's budget: on a trained encoder every protected image then reads "defeated".)"""
    from protect.verify import sign_noise

    image = prepare(original)
    noisy = sign_noise(image.convert("RGB"), linf, seed)
    if image.mode == "RGBA":
        noisy.putalpha(image.getchannel("A"))  # transparency is not perturbed either
    clean, noise = make_renditions(image).all(), make_renditions(noisy).all()
    return [Size(reference.name, decoded(reference.data), decoded(data), decoded(baseline.data))
            for reference, baseline, data in zip(clean, noise, served, strict=True)]


def _battery_pixels(size: tuple[int, int], side: int | None) -> float:
    """What one report costs, roughly: pixels where the battery runs."""
    width, height = size
    scale = 1.0 if side is None else min(1.0, side / max(width, height))
    return max(1.0, width * height * scale * scale)


async def measure(context: JobContext, sizes: Sequence[Size],
                  models: ProtectionModels) -> dict[str, Document]:
    """``verify.report`` on each served size, in a thread; progress from READ to 1."""
    from protect import verify

    side = models.profile.max_side  # the cpu profile's working resolution; None: full
    costs = [_battery_pixels(size.served.size, side) for size in sizes]
    total, done = sum(costs), 0.0
    reports: dict[str, Document] = {}
    for size, cost in zip(sizes, costs, strict=True):
        span = (READ + (1 - READ) * done / total, READ + (1 - READ) * (done + cost) / total)
        reports[size.name] = await in_thread(context, span, verify.report, size.clean, size.served,
                                             models.models, working_side=side, baseline=size.baseline)
        done += cost
    return reports


def reconstructions(size: Size, models: ProtectionModels) -> tuple[bytes, bytes, Document] | None:
    """What the first configured model with a decoder makes of the clean and the protected
    image — the centre crop (≤ PICTURE_SIDE) of the served full rendition and of its clean
    counterpart, encoded and decoded — as PNGs, with what they show. None without a decoder."""
    from protect.verify import vae_roundtrip

    model = next((m for m in models.models if m.decoder is not None), None)
    if model is None:
        return None
    width, height = size.served.size
    w, h = min(width, PICTURE_SIDE), min(height, PICTURE_SIDE)
    box = ((width - w) // 2, (height - h) // 2, (width - w) // 2 + w, (height - h) // 2 + h)

    def png(image: Image.Image) -> bytes:
        out = io.BytesIO()
        vae_roundtrip(image.convert("RGB").crop(box), model).save(out, "PNG")
        return out.getvalue()

    about = {"model": model.name, "crop": [box[0], box[1], w, h]}
    return png(size.clean), png(size.served), about


async def store_pictures(context: JobContext, size: Size, models: ProtectionModels) -> Document | None:
    """Make and store (privately) the reconstruction pictures; their description, or None."""
    made = await asyncio.to_thread(reconstructions, size, models)
    if made is None:
        return None
    clean, protected, about = made
    storage = media_storage(context.settings)
    keys = {"reconstruction_clean": new_key("verification", "png"),
            "reconstruction_protected": new_key("verification", "png")}
    try:
        await storage.put(keys["reconstruction_clean"], clean, private=True)
        await storage.put(keys["reconstruction_protected"], protected, private=True)
    except StorageError as exc:
        raise AttemptFailed("The verification could not be made: its pictures could not be "
                            "stored.", exc) from exc
    return {**about, **keys}


async def _delete_pictures(context: JobContext, keys: Sequence[str]) -> None:
    storage = media_storage(context.settings)
    for key in keys:
        try:
            await storage.delete(key, private=True)
        except StorageError:
            log.warning("could not delete the verification picture %s", key)


async def record_give_up(session: AsyncSession, job: Job, exc: BaseException) -> None:
    """The last attempt failed: the document says the verification could not be made (in
    the job's failing transaction). The media stays published."""
    media = await session.get(MediaAttachment, int(job.ref))
    if media is not None and _waiting(media):
        reason = owner_message(exc, work="The verification", doing="verifying")
        doc.store(media, doc.verification_unavailable(doc.stored(media), doc.VERIFICATION_FAILED,
                                                      reason))


@job_kind("verify_media", queue="protect", max_attempts=MAX_ATTEMPTS, time_limit=TIME_LIMIT,
          lease=LEASE, retry_base=timedelta(minutes=1), retry_cap=timedelta(hours=1),
          on_give_up=record_give_up)
async def verify_media(context: JobContext) -> None:
    for _ in range(RENDITION_REDOS + 1):
        if await _verify(context):
            return
    raise RuntimeError("the renditions kept changing while they were being verified")


async def _settle(session: AsyncSession, media_id: int, keys: tuple[str, str, str],
                  change: Callable[[Document], Document]) -> bool:
    """Store ``change(document)`` if the media still waits for this verification of these
    renditions; False when other renditions are served now (measure them instead)."""
    media = await _pending(session, media_id)
    if media is None:
        return True  # deleted, being re-protected, or settled otherwise meanwhile
    if _keys(media) != keys:
        await session.rollback()
        return False
    doc.store(media, change(doc.stored(media)))
    return True


async def _verify(context: JobContext) -> bool:
    """One pass; False when the renditions were swapped meanwhile (nothing is stored)."""
    session = context.session
    media_id = int(context.job.ref)
    media = await _pending(session, media_id)
    if media is None:
        return True  # settled, deleted, or not protected (any more): nothing to verify
    keys, original_key, document = _keys(media), media.original_key, doc.stored(media)
    # No transaction stays open while the battery runs (minutes); the row is read again.
    await session.rollback()

    models = await asyncio.to_thread(load_models, context.settings)  # ModelLoadError: retried
    skipped = skip_reason(document, models)
    if skipped is not None or models is None:
        log.info("media %s: verification skipped: %s", media_id, skipped)
        return await _settle(session, media_id, keys, lambda d: doc.verification_unavailable(
            d, doc.VERIFICATION_SKIPPED, skipped or NO_MODEL_REASON))
    if original_key is None:
        return await _settle(session, media_id, keys, lambda d: doc.verification_unavailable(
            d, doc.VERIFICATION_FAILED, MISSING_ORIGINAL))

    storage = media_storage(context.settings)
    try:
        original = await storage.get(original_key, private=True)
        served = [await storage.get(key) for key in keys]
    except StorageError as exc:
        raise AttemptFailed("The verification could not be made: the image's files could not be "
                            "read from storage.", exc) from exc
    try:
        sizes = await asyncio.to_thread(measured_sizes, original, served, budget_linf(document))
    except ImageRejected as exc:  # the limits changed since it was protected: never passes
        reason = f"The verification could not be made: the original could not be processed: {exc.message}"
        return await _settle(session, media_id, keys, lambda d: doc.verification_unavailable(
            d, doc.VERIFICATION_FAILED, reason))
    await context.report_progress(READ)

    from protect.verify import VerifyError

    try:
        reports = await measure(context, sizes, models)
    except VerifyError as exc:  # cannot run on these images: recorded, not retried
        log.warning("media %s: verification failed: %s", media_id, exc.message)
        failed = f"The verification could not be made: {exc.message}."
        return await _settle(session, media_id, keys, lambda d: doc.verification_unavailable(
            d, doc.VERIFICATION_FAILED, failed))
    full = reports.pop("full")
    pictures = await store_pictures(context, sizes[0], models)
    log.info("media %s verified: %s", media_id, full["verdict"])
    new_pictures = doc.picture_keys({doc.PICTURES_KEY: pictures})
    stored: list[Document] = []

    def report(d: Document) -> Document:
        stored.append(d)
        return doc.with_report(d, full, reports, pictures)

    try:
        settled = await _settle(session, media_id, keys, report)
    except BaseException:
        await _delete_pictures(context, new_pictures)
        raise
    # The pictures no document names any more: the replaced report's, or these when they
    # were not stored (the renditions changed, or the media was settled otherwise). Deleted
    # before the commit: should it fail, the retry makes new ones, and a page shows a
    # missing picture as missing, nothing worse.
    replaced = doc.picture_keys(stored[0]) if stored else []
    await _delete_pictures(context, replaced if stored else new_pictures)
    return settled
