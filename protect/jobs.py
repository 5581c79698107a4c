"""The ``protect_media`` job: from a stored private original to protected public renditions.

The job carries only the media id. One attempt: read the original → decode and normalise →
fit to the full rendition's size → perturb it against the configured encoders (in a
thread; progress goes to the job row) → renditions, each with its artist's opt-out XMP, EXIF
and signed C2PA manifest (``protect/optout_metadata.py``) → one commit that swaps the new keys
in, marks the media ready with its protection document (``protect/document.py``) and
publishes the status whose last media this was. When the image was protected, the same
commit enqueues ``verify_media`` (``protect/verify_job.py``), which measures the
protection on the served bytes: it costs minutes on a CPU, so the image does not wait
for it.

Idempotent: a media with renditions and a settled protection is left alone, and every
attempt writes files under new random keys, so a redone attempt never overwrites what an
earlier one published (files of an attempt whose commit was lost are orphans, never wrong
data). A media with renditions whose protection is *pending* is being protected again
(``easel admin reprotect``, or its author asked): the new renditions are swapped in by the
commit, the old files are deleted later by a ``purge_media_files`` job enqueued in that same
commit, and until then the media stays ready and its status published, served with the old
renditions. Remote servers are told with an ``Update`` of the note.

Failures: a file that can never decode is recorded at once (no retry). Anything that may
pass (storage, a model path being fixed, the GPU out of memory below the smallest tile, a
worker killed mid-way) is retried; after the last attempt ``record_give_up`` marks the
media failed with a reason its owner reads — and the author chooses: retry, publish
unprotected, or delete (``server/services/protection.py``). A worker killed on every
attempt (out of memory on this one image) is given up by the runner the same way. A redo
that fails for good leaves the served renditions and their document as they were.

The author's choice (protect, or publish unprotected) is read when the attempt starts and
again just before its commit; if it changed meanwhile, the attempt's files are dropped and
the media is done again as now asked, in the same attempt. A re-protection asked by
``easel admin reprotect`` records the configuration the command saw (``expected``); a
worker that loaded another one (its settings were edited, and it was not restarted)
refuses it at once — no new renditions, no purge, no ``Update``, not retried — and the
command says so.

Torch-free at import: ``protect.models`` and ``protect.perturb`` (torch) are imported inside
the job only, so the web process, which imports this module to enqueue, never loads torch.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from PIL import Image
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from protect import document as doc
from protect.ingest import ImageRejected, decode_upload
from protect.optout_metadata import OptOut, optout_for
from protect.provenance import digital_source_type_of
from protect.renditions import fit_edge, make_renditions, resized
from server.limits import FULL_MAX_EDGE, IMAGE_MATRIX_LIMIT, IMAGE_SIZE_LIMIT
from server.models import Account, Job, MediaAttachment, MediaState, ProtectionState, Status
from server.models.scheduled import not_scheduled
from server.queue.jobs import enqueue
from server.queue.kinds import job_kind
from server.queue.runner import JobContext, TimeLimitExceeded, WorkerLost
from server.settings import Settings
from server.storage import Storage, StorageError, check_key, media_storage, new_key

if TYPE_CHECKING:
    from protect.models import ProtectionModels

log = logging.getLogger(__name__)
Result = TypeVar("Result")

MAX_ATTEMPTS = 5
# A CPU-only instance may take ~10 minutes for a 1024² upload (the cpu profile).
TIME_LIMIT = timedelta(minutes=30)
# A killed worker's job is redone this soon; the runner's heartbeat renews it meanwhile.
LEASE = timedelta(minutes=2)
# Progress: decoded at 0.05, the perturbation fills 0.05–0.85, renditions after.
DECODED, PERTURBED, RENDERED = 0.05, 0.85, 0.95
# Progress from the perturbation thread is written at most this often (seconds).
PROGRESS_INTERVAL = 2.0
# Replaced renditions are deleted this long after the swap: remote servers that stored
# their URLs get the Update (and fetch the new files) first.
PURGE_DELAY = timedelta(minutes=15)
# How often one attempt starts over because the author's choice changed while it ran.
CHOICE_REDOS = 2
# The owner's reprotect_error when this worker runs another configuration than the
# command that asked for the re-protection (``easel admin reprotect`` looks for it).
OTHER_CONFIGURATION = ("Not protected again: the protection worker runs another configuration "
                       "than the administrator asked for; the earlier protection stays.")


class AttemptFailed(Exception):
    """This attempt failed for a reason that may pass; ``message`` is for the owner."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(f"{message} ({type(cause).__name__}: {cause})")
        self.message = message


class ProtectionCancelled(Exception):
    """Raised inside a job's work thread (the perturbation, the verification) when its
    attempt was cancelled (time limit, lost claim)."""


def prepare(original: bytes) -> Image.Image:
    """Decode and normalise, and fit to the full rendition: the pixels that are perturbed
    are the pixels that are served (a later downscale would weaken the perturbation)."""
    image, _info = decode_upload(original, size_limit=IMAGE_SIZE_LIMIT, pixel_limit=IMAGE_MATRIX_LIMIT)
    return resized(image, fit_edge(image.size, FULL_MAX_EDGE))


def load_models(settings: Settings) -> ProtectionModels | None:
    """The configured models (loaded once per process), or None when there are none."""
    if not settings.vae_paths:
        return None  # without importing torch: an instance without the protect extra runs
    from protect import models

    return models.load_models(settings)


def seed_for(media: MediaAttachment) -> int:
    """Deterministic per media: a redone attempt finds the same perturbation."""
    return media.id % 2**31


class ProgressReporter:
    """The progress callback of work done in a thread (the perturbation, the verification).
    Called from that thread with a fraction of its work; writes the job's progress, mapped
    into ``span``, on the event loop at most every PROGRESS_INTERVAL seconds, and stops the
    thread (by raising) once the attempt has been cancelled."""

    def __init__(self, context: JobContext, loop: asyncio.AbstractEventLoop,
                 span: tuple[float, float] = (DECODED, PERTURBED)) -> None:
        self.context = context
        self.loop = loop
        self.span = span
        self.cancelled = threading.Event()
        self.last = -float("inf")
        self.sent: Future[None] | None = None

    def __call__(self, fraction: float) -> None:
        if self.cancelled.is_set():
            raise ProtectionCancelled
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        start, end = self.span
        value = start + (end - start) * min(max(fraction, 0.0), 1.0)
        self.sent = asyncio.run_coroutine_threadsafe(self.context.report_progress(value), self.loop)

    async def settle(self) -> None:
        """Wait for the last write (so it never races the job's own commit)."""
        if self.sent is not None:
            try:
                await asyncio.wrap_future(self.sent)
            except Exception:  # progress is a display; the attempt goes on
                log.exception("job %s: progress not recorded", self.context.job.id)


async def in_thread(context: JobContext, span: tuple[float, float],
                    work: Callable[..., Result], /, *args: Any, **kwargs: Any) -> Result:
    """``work(*args, progress=…, **kwargs)`` in a thread, its progress written to the job
    row within ``span``. If the attempt is cancelled (time limit, lost claim), the thread
    stops at its next progress call."""
    reporter = ProgressReporter(context, asyncio.get_running_loop(), span)
    try:
        return await asyncio.to_thread(work, *args, progress=reporter, **kwargs)
    except asyncio.CancelledError:
        reporter.cancelled.set()
        raise
    finally:
        await reporter.settle()


async def perturb(context: JobContext, image: Image.Image, models: ProtectionModels,
                  seed: int) -> Image.Image:
    from protect.perturb import protect_image

    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    protected = await in_thread(context, (DECODED, PERTURBED), protect_image, image.convert("RGB"),
                                models.encoders, strength=models.strength, seed=seed,
                                profile=models.profile)
    if alpha is not None:
        protected.putalpha(alpha)  # transparency is not perturbed
    return protected


def _fail(media: MediaAttachment, message: str) -> None:
    """A media without renditions failed: its author decides what happens next."""
    media.state = MediaState.FAILED.value
    media.processing_error = message
    doc.store(media, doc.document(ProtectionState.FAILED, reason=message))


def _keep(media: MediaAttachment, message: str) -> None:
    """Protecting a ready media again failed for good: it keeps its renditions and their
    document, which says why the new protection is not there."""
    previous = doc.stored(media).get("previous")
    if isinstance(previous, dict) and previous.get("state"):
        restored = {**previous, "reprotect_error": message}
    else:
        restored = doc.document(ProtectionState.UNPROTECTED, reason=message)
    doc.store(media, restored)


async def _record_failure(session: AsyncSession, media: MediaAttachment, message: str) -> None:
    if media.file_key is None:
        _fail(media, message)
        return
    _keep(media, message)
    if doc.verification(doc.stored(media)) == doc.VERIFICATION_PENDING:
        # The served renditions were still waiting for their report when the redo began
        # (and their verification then stood aside): it is due again.
        await request_verification(session, media)


async def request_verification(session: AsyncSession, media: MediaAttachment) -> None:
    """Enqueue the verification of a ready, protected media (in the caller's transaction;
    its document already says the verification is pending)."""
    from protect.verify_job import verify_media

    await enqueue(session, verify_media, str(media.id), again=True)


def owner_message(exc: BaseException, *, work: str = "Protection", doing: str = "protecting") -> str:
    """What the owner reads about a final failure of ``work`` (``doing`` the image). Server
    details (a model's path, a traceback) are the admin's, in the job's last_error
    (``easel admin jobs``)."""
    if isinstance(exc, AttemptFailed):
        return exc.message
    models = sys.modules.get("protect.models")  # loaded if it raised; never imported here
    if models is not None and isinstance(exc, models.ModelLoadError):
        return ("The protection model could not be loaded on the server; the administrator "
                "can see why in `easel admin jobs`.")
    if isinstance(exc, TimeLimitExceeded):
        return (f"{work} did not finish within {int(exc.time_limit.total_seconds() // 60)} "
                "minutes; the server may be overloaded.")
    if isinstance(exc, WorkerLost):
        return (f"The protection worker stopped while {doing} this image, at every attempt; "
                "it may need more memory than the server has.")
    if "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError":
        return f"The protection worker ran out of memory while {doing} this image."
    return f"{work} failed on the server; the administrator can see why in `easel admin jobs`."


async def record_give_up(session: AsyncSession, job: Job, exc: BaseException) -> None:
    """The last attempt failed: say so on the media (in the job's failing transaction)."""
    media = await session.get(MediaAttachment, int(job.ref))
    if media is not None and waits_for_job(media):
        await _record_failure(session, media, owner_message(exc))


async def _announce_new_renditions(session: AsyncSession, status_id: int) -> None:
    """A published local note now has other image URLs: tell whoever received it."""
    from server.services.outbox import record_activity

    status = await session.get(Status, status_id)
    if status is None or not status.published or not status.local or status.reblog_of_id:
        return
    author = await session.get(Account, status.account_id)
    if author is not None:
        await record_activity(session, author, "Update", object_uri=status.uri,
                              object_type="Note", status_id=status.id)


def other_configuration(expected: object, models: ProtectionModels | None) -> str | None:
    """How this worker's loaded configuration differs from the one ``easel admin reprotect``
    expected (for the log), or None when it is the same (or nothing was expected)."""
    if not isinstance(expected, dict):
        return None
    loaded: doc.Document = {"models": models.names if models else [],
                            "strength": models.strength if models else None,
                            "profile": models.profile.name if models else None}
    if not doc.is_stale(loaded, models=expected.get("models") or [],
                        strength=str(expected.get("strength")), profile=expected.get("profile")):
        return None
    return (f"asked for {expected}, this worker loaded {loaded} (its settings changed since "
            f"it started? restart it)")


@job_kind("protect_media", queue="protect", max_attempts=MAX_ATTEMPTS, time_limit=TIME_LIMIT,
          lease=LEASE, priority=1, retry_base=timedelta(seconds=30), retry_cap=timedelta(hours=1),
          on_give_up=record_give_up)
async def protect_media(context: JobContext) -> None:
    for _ in range(CHOICE_REDOS + 1):
        if await _protect(context):
            return
    raise RuntimeError("the author's choice kept changing while the image was being protected")


async def _protect(context: JobContext) -> bool:
    """One pass; False when the author's choice changed meanwhile (nothing is committed,
    the pass's files are deleted) and the media must be done again."""
    session = context.session
    media_id = int(context.job.ref)
    media = await session.get(MediaAttachment, media_id)
    if media is None:
        return True  # deleted since; nothing to do
    if not waits_for_job(media):
        return True  # an earlier attempt completed and committed
    if media.original_key is None:
        await _record_failure(session, media,
                              "The original file of this upload is missing; please upload it again.")
        return True
    original_key, seed = media.original_key, seed_for(media)
    requested_unprotected = doc.requested_unprotected(doc.stored(media))
    expected = doc.stored(media).get(doc.EXPECTED_KEY)
    optout = await _optout(session, media, context.settings)
    # No transaction (nor, on PostgreSQL, a pooled connection) stays open through a
    # perturbation that may take many minutes; the row is read again before the commit.
    await session.rollback()

    storage = media_storage(context.settings)
    try:
        original = await storage.get(original_key, private=True)
    except StorageError as exc:
        raise AttemptFailed("The original file could not be read from storage; please upload "
                            "it again.", exc) from exc
    try:
        image = await asyncio.to_thread(prepare, original)
    except ImageRejected as exc:
        media = await _pending(session, media_id)
        if media is not None:
            await _record_failure(session, media, f"The image could not be processed: {exc.message}")
        return True  # can never succeed: recorded, not retried
    await context.report_progress(DECODED)

    started = time.monotonic()
    if requested_unprotected:
        protection = doc.document(ProtectionState.UNPROTECTED, reason=doc.AUTHOR_REASON,
                                  requested=doc.REQUESTED_UNPROTECTED)
    else:
        models = await asyncio.to_thread(load_models, context.settings)  # ModelLoadError: retried
        differs = other_configuration(expected, models)
        if differs is not None:  # would redo it as it is: refused, not retried
            log.warning("media %s: re-protection refused: %s", media_id, differs)
            media = await _pending(session, media_id)
            if media is not None:
                await _record_failure(session, media, OTHER_CONFIGURATION)
            return True
        if models is None:
            protection = doc.document(ProtectionState.UNPROTECTED, reason=doc.NO_MODEL_REASON)
        else:
            image = await perturb(context, image, models, seed)
            protection = doc.document(
                ProtectionState.PROTECTED, models=models.names, strength=models.strength,
                profile=models.profile.name, seconds=time.monotonic() - started)
    await context.report_progress(PERTURBED)
    result = await asyncio.to_thread(make_renditions, image, optout)
    await context.report_progress(RENDERED)

    keys: dict[str, str] = {}
    try:
        for rendition in result.all():
            key = new_key("media", rendition.extension)
            await storage.put(key, rendition.data)
            keys[rendition.name] = key
    except (StorageError, OSError) as exc:
        await _delete(storage, keys.values())
        raise AttemptFailed("The renditions could not be stored; please try again later.", exc) from exc

    media = await _pending(session, media_id)
    if media is None:  # deleted, or settled otherwise, while this attempt was perturbing
        await _delete(storage, keys.values())
        return True
    if doc.requested_unprotected(doc.stored(media)) != requested_unprotected:
        log.info("media %s: the author's choice changed while it was being protected; "
                 "done again", media_id)
        await session.rollback()
        await _delete(storage, keys.values())
        return False
    replaced = [k for k in (media.file_key, media.small_key, media.thumb_key) if k]
    # The old report's pictures (private) go with the renditions they were made from (a
    # redo keeps the old document as "previous").
    if replaced:
        current = doc.stored(media)
        previous = current.get("previous")
        pictures = doc.picture_keys(current) + doc.picture_keys(
            previous if isinstance(previous, dict) else {})
        replaced += [PRIVATE_PREFIX + k for k in dict.fromkeys(pictures)]
    media.file_key, media.small_key, media.thumb_key = keys["full"], keys["small"], keys["thumb"]
    media.blurhash = result.blurhash
    media.meta = {**result.meta, "protection": protection}
    media.protection = protection["state"]
    media.type = "image"
    media.state = MediaState.READY.value
    media.processing_error = None
    if replaced:
        await enqueue(session, purge_media_files, " ".join(replaced), delay=PURGE_DELAY)
    if media.protection == ProtectionState.PROTECTED:
        await request_verification(session, media)
    if media.status_id is not None:
        from server.services.statuses import publish_if_ready

        published_now = await publish_if_ready(session, media.status_id)
        if replaced and not published_now:
            await _announce_new_renditions(session, media.status_id)
    return True


async def _optout(session: AsyncSession, media: MediaAttachment, settings: Settings) -> OptOut | None:
    """What the renditions say about their artist (``protect/optout_metadata.py``): name,
    profile, data-mining choice, and the AI label of an upload the instance labelled."""
    account = await session.get(Account, media.account_id)
    if account is None:
        return None
    return optout_for(account, settings, digital_source_type=digital_source_type_of(media.ai_provenance))


def waits_for_job(media: MediaAttachment) -> bool:
    """A media without renditions (processing, or failed and requeued by an admin), or one
    marked pending for protection again."""
    return media.file_key is None or media.protection == ProtectionState.PENDING


async def _pending(session: AsyncSession, media_id: int) -> MediaAttachment | None:
    """The media row as it is now, if it still waits for this job."""
    media = await session.get(MediaAttachment, media_id, populate_existing=True)
    return media if media is not None and waits_for_job(media) else None


async def _delete(storage: Storage, keys: Iterable[str]) -> None:
    for key in keys:
        await storage.delete(key)


PRIVATE_PREFIX = "private:"


@job_kind("purge_media_files", queue="protect", max_attempts=5, retry_base=timedelta(minutes=1))
async def purge_media_files(context: JobContext) -> None:
    """Delete renditions that were replaced (ref: their keys, space-separated; private
    files — an old report's pictures — prefixed ``private:``). Idempotent: missing files
    are fine, and a rendition some media row still uses is never deleted."""
    parts = context.job.ref.split()
    private = [check_key(p.removeprefix(PRIVATE_PREFIX)) for p in parts if p.startswith(PRIVATE_PREFIX)]
    keys = [check_key(p) for p in parts if not p.startswith(PRIVATE_PREFIX)]
    columns = (MediaAttachment.file_key, MediaAttachment.small_key, MediaAttachment.thumb_key)
    rows = await context.session.execute(
        select(*columns).where(or_(*(column.in_(keys) for column in columns))))
    in_use = {key for row in rows for key in row}
    storage = media_storage(context.settings)
    for key in keys:
        if key in in_use:
            log.warning("purge_media_files: %s is still in use; kept", key)
            continue
        await storage.delete(key)
    for key in private:
        await storage.delete(key, private=True)


@job_kind("purge_detached_media", queue="default", max_attempts=5, retry_base=timedelta(minutes=1))
async def purge_detached_media(context: JobContext) -> None:
    """Delete the media of a deleted local status (ref: their ids, space-separated) that
    were not attached again (nor reserved for a scheduled status) meanwhile: the rows,
    then every file — public renditions, the private original and the verification
    pictures. Idempotent."""
    ids = [int(part) for part in context.job.ref.split() if part.isdigit()]
    session = context.session
    found = list(await session.scalars(select(MediaAttachment).where(
        MediaAttachment.id.in_(ids), MediaAttachment.status_id.is_(None),
        MediaAttachment.purpose == "attachment", not_scheduled(MediaAttachment.id))
        .with_for_update()))
    public = [k for m in found for k in (m.file_key, m.small_key, m.thumb_key) if k]
    private = [k for m in found for k in (m.original_key, *doc.picture_keys(doc.stored(m))) if k]
    for media in found:
        await session.delete(media)
    await session.commit()  # the rows first: nobody can attach them again now
    storage = media_storage(context.settings)
    for key in public:
        await storage.delete(key)
    for key in private:
        await storage.delete(key, private=True)
    log.info("purged %d detached media (%d files)", len(found), len(public) + len(private))
