"""An image's protection as its owner and the admin act on it.

The owner reads the protection document (``protect/document.py``) with live progress, and
decides what happens when protection failed for good (DESIGN.md: "retry, publish
unprotected, or delete"): :func:`retry` queues the protect job again, :func:`publish_unprotected`
queues it told to skip the perturbation. Either way the media goes back to processing and
its status, still unpublished, is published by the job as usual. Deleting is the status's
own DELETE.

The admin re-protects ready images when the models, strength or profile change
(``easel admin reprotect``): :func:`find_stale` finds them, :func:`mark_for_reprotection`
marks them pending and requeues their jobs; they stay ready and published meanwhile.
And recomputes verification reports (``easel admin reverify``, e.g. after the verdicts'
thresholds changed): :func:`find_unverified`, :func:`mark_for_verification`.

A pending document records nothing the worker decides (models, strength): the worker's
own settings do, and the web process's or the command's may differ until it restarts. A
re-protection records, internally, the configuration the command expected; the worker
refuses one it would not apply as expected (``protect/jobs.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from protect import document as doc
from protect.jobs import protect_media
from protect.verify_job import verify_media
from server.models import Account, Job, MediaAttachment, MediaState, ProtectionState
from server.queue.jobs import enqueue
from server.queue.kinds import JobKind
from server.services.errors import ServiceError
from server.services.media import get_own_media

BATCH = 200


async def job_progress(session: AsyncSession, media_id: int, kind: JobKind = protect_media) -> float | None:
    """The recorded progress of this media's job of ``kind`` (None: no job row)."""
    progress: float | None = await session.scalar(select(Job.progress).where(
        Job.kind == kind.name, Job.ref == str(media_id)))
    return progress


async def protection_of(session: AsyncSession, account: Account, media_id: int) -> doc.Document:
    """The protection document of one's own media (with the verification job's progress
    while it is pending); anyone else's is not found."""
    media = await get_own_media(session, account, media_id)
    progress = (await job_progress(session, media.id)
                if media.protection == ProtectionState.PENDING else None)
    document = doc.for_owner(media, progress)
    if document["verification"] == doc.VERIFICATION_PENDING:
        verifying = await job_progress(session, media.id, verify_media)
        document["verification_progress"] = round(min(max(verifying or 0.0, 0.0), 1.0), 3)
    return document


def _requested_unprotected(media: MediaAttachment) -> bool:
    return doc.requested_unprotected(doc.stored(media))


async def _requeue(session: AsyncSession, media: MediaAttachment, pending: doc.Document) -> doc.Document:
    if media.state == MediaState.FAILED:
        media.state = MediaState.PROCESSING.value
        media.processing_error = None
    doc.store(media, pending)
    await enqueue(session, protect_media, str(media.id), again=True)
    await session.commit()
    return doc.for_owner(media, 0.0)


async def retry(session: AsyncSession, account: Account, media_id: int) -> doc.Document:
    """Protect one's own media again: one whose protection failed, or one published
    unprotected at one's own request (it stays published until the new renditions land)."""
    media = await get_own_media(session, account, media_id)
    if media.state == MediaState.FAILED:
        pending = doc.pending(media, strength=None)
    elif media.state == MediaState.READY and media.file_key and _requested_unprotected(media) \
            and media.protection != ProtectionState.PENDING:
        pending = doc.pending(media, strength=None, redo=True)
    else:
        raise ServiceError("Only media whose protection failed (or that was published unprotected "
                           "at your request) can be retried")
    return await _requeue(session, media, pending)


async def publish_unprotected(session: AsyncSession, account: Account,
                              media_id: int) -> doc.Document:
    """Make renditions of one's own failed media without perturbing it; its status is then
    published as usual. The choice is recorded and honoured if the media is redone."""
    media = await get_own_media(session, account, media_id)
    if media.state != MediaState.FAILED:
        raise ServiceError("Only media whose protection failed can be published unprotected")
    return await _requeue(session, media, doc.pending(
        media, strength=None, requested=doc.REQUESTED_UNPROTECTED))


# --------------------------------------------------------------------------- reprotect

@dataclass(frozen=True)
class Configuration:
    """What ready images should be protected with: the loaded models' names, the strength,
    and the profile when it is set explicitly (None for "auto": each worker picks by its
    device, and any of them is accepted)."""

    models: tuple[str, ...]
    strength: str
    profile: str | None

    def as_expected(self) -> dict[str, object]:
        """As recorded in a pending document (``expected``) and checked by the worker."""
        return {"models": list(self.models), "strength": self.strength, "profile": self.profile}

    def applied_to(self, document: doc.Document) -> bool:
        """Whether a ready image's document is what this configuration makes."""
        return not doc.is_stale(document, models=self.models, strength=self.strength,
                                profile=self.profile)


def _ready_local() -> ColumnElement[bool]:
    """Local attachments with renditions, ready."""
    return and_(MediaAttachment.purpose == "attachment", MediaAttachment.remote_url.is_(None),
                MediaAttachment.file_key.is_not(None), MediaAttachment.state == MediaState.READY.value)


async def _ready_local_images(session: AsyncSession) -> AsyncIterator[MediaAttachment]:
    last = 0
    while True:
        batch = list(await session.scalars(
            select(MediaAttachment)
            .where(MediaAttachment.id > last, _ready_local())
            .order_by(MediaAttachment.id).limit(BATCH)))
        if not batch:
            return
        for media in batch:
            yield media
        last = batch[-1].id


async def find_stale(session: AsyncSession, current: Configuration, *,
                     every: bool = False) -> tuple[list[MediaAttachment], list[MediaAttachment]]:
    """Ready local images to protect again — those protected otherwise than ``current``
    (``every``: all of them) — and those already being re-protected. Images whose authors
    chose to publish them unprotected are left alone."""
    stale: list[MediaAttachment] = []
    in_progress: list[MediaAttachment] = []
    async for media in _ready_local_images(session):
        stored = doc.stored(media)
        if media.protection == ProtectionState.PENDING:
            in_progress.append(media)
        elif doc.requested_unprotected(stored):
            continue
        elif every or not current.applied_to(stored):
            stale.append(media)
    return stale, in_progress


async def mark_for_reprotection(session: AsyncSession, current: Configuration,
                                media_ids: Sequence[int]) -> int:
    """Mark these ready images pending, expecting ``current``, and requeue their protect
    jobs; commits in batches. Returns how many were marked (one that changed meanwhile is
    skipped)."""
    marked = 0
    for start in range(0, len(media_ids), BATCH):
        chunk = media_ids[start:start + BATCH]
        for media in await session.scalars(select(MediaAttachment).where(
                MediaAttachment.id.in_(chunk), MediaAttachment.state == MediaState.READY.value,
                MediaAttachment.file_key.is_not(None),
                MediaAttachment.protection != ProtectionState.PENDING.value)):
            pending = doc.pending(media, strength=None, redo=True)
            pending[doc.EXPECTED_KEY] = current.as_expected()
            doc.store(media, pending)
            await enqueue(session, protect_media, str(media.id), again=True)
            marked += 1
        await session.commit()
    return marked


# --------------------------------------------------------------------------- reverify

@dataclass
class Unverified:
    """What ``easel admin reverify`` found: ready protected local images to verify again,
    those protected against other models than ``models`` (re-protect them first), and the
    ids asked for that are no ready protected local image."""

    due: list[MediaAttachment]
    other_models: list[MediaAttachment]
    not_verifiable: list[int]


async def find_unverified(session: AsyncSession, models: Sequence[str], thresholds: dict[str, float],
                          *, every: bool = False, media_ids: Sequence[int] = ()) -> Unverified:
    """Ready, protected local images whose report is missing, older than their protection
    or made with other thresholds than ``thresholds`` (``every``, or ids given: all of
    them, or those ids)."""
    found = Unverified(due=[], other_models=[], not_verifiable=[])
    if media_ids:
        rows = {m.id: m for m in await session.scalars(select(MediaAttachment).where(
            MediaAttachment.id.in_(media_ids), _ready_local()))}
        candidates = [rows[i] for i in dict.fromkeys(media_ids) if i in rows]
        found.not_verifiable = [i for i in dict.fromkeys(media_ids)
                           if i not in rows or rows[i].protection != ProtectionState.PROTECTED]
    else:
        candidates = [media async for media in _ready_local_images(session)]
    for media in candidates:
        if media.protection != ProtectionState.PROTECTED:
            continue
        stored = doc.stored(media)
        if list(stored.get("models") or []) != list(models):
            found.other_models.append(media)
        elif every or media_ids or doc.report_outdated(stored, thresholds):
            found.due.append(media)
    return found


async def mark_for_verification(session: AsyncSession, media_ids: Sequence[int]) -> int:
    """Drop these ready protected images' reports, mark their verification pending and
    requeue their verify jobs; commits in batches. Returns how many were marked."""
    marked = 0
    for start in range(0, len(media_ids), BATCH):
        chunk = media_ids[start:start + BATCH]
        for media in await session.scalars(select(MediaAttachment).where(
                MediaAttachment.id.in_(chunk), _ready_local(),
                MediaAttachment.protection == ProtectionState.PROTECTED.value)):
            doc.store(media, doc.verification_pending(doc.stored(media)))
            await enqueue(session, verify_media, str(media.id), again=True)
            marked += 1
        await session.commit()
    return marked
