"""What the studio pages do for an artist with their own works, as use cases.

Why it exists: the web studio (``server/web/studio.py``) posts a work in one form — several
images with alt text, the post's options and its portfolio metadata — and shows the artist
things only they may see (works still processing or failed, the private original, the
difference the perturbation made). Those steps are the same services the client API uses
(``media.create_media``, ``statuses.create_status``, ``portfolio.set_work_metadata``), put
in order here so the page stays thin and a bad input loses nothing: text inputs are
checked before any file is stored, and images already accepted are handed back to the form
(as ``kept`` media) when a later one is refused.

What it must never do: show or serve anything of one account to another (every lookup
goes through ``get_own_media`` / ``own_status``), or import federation or torch.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageChops
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from protect import document as doc
from protect import optout_metadata
from protect.ingest import ImageRejected, decode_upload
from protect.renditions import fit_edge, resized
from server import limits
from server.models import Account, MediaAttachment, MediaState, Status
from server.services import media as media_service
from server.services import portfolio, statuses
from server.services.errors import NotFound, ServiceError, ValidationFailed
from server.services.profiles import ProfileChanges, update_profile
from server.services.protection import protection_of
from server.services.statuses import create_status, own_status
from server.services.text import countable_length
from server.state import EaselState
from server.storage import StorageError, check_key

# How much the difference picture amplifies the change: a budget of 8/255 becomes 128/255.
DIFFERENCE_GAIN = 16
# How many works the studio lists per page.
PAGE_SIZE = 60
# The picture names a verification report may store (``pictures`` in the document).
PICTURE_CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
                         "webp": "image/webp"}


@dataclass
class StudioWork:
    """One of the artist's own posts with images, whatever its state."""

    status: Status
    media: list[MediaAttachment]
    work: Any | None = None          # portfolio.WorkView, when it has portfolio data
    pinned: bool = False

    @property
    def state(self) -> str:
        """``published``, ``failed`` (some image's protection failed: the artist chooses)
        or ``processing``."""
        if self.status.published:
            return "published"
        if any(m.state == MediaState.FAILED for m in self.media):
            return "failed"
        return "processing"

    @property
    def title(self) -> str:
        title = getattr(self.work, "title", "") if self.work is not None else ""
        return title or self.status.spoiler_text or (self.status.text or "").split("\n", 1)[0][:80]


async def _media_of(session: AsyncSession, status_ids: Sequence[int]) -> dict[int, list[MediaAttachment]]:
    found: dict[int, list[MediaAttachment]] = {i: [] for i in status_ids}
    if not status_ids:
        return found
    for media in await session.scalars(select(MediaAttachment).where(
            MediaAttachment.status_id.in_(list(status_ids))).order_by(MediaAttachment.id)):
        if media.status_id is not None:
            found[media.status_id].append(media)
    return found


async def _studio_works(session: AsyncSession, account: Account,
                        statuses: Sequence[Status]) -> list[StudioWork]:
    ids = [s.id for s in statuses]
    media = await _media_of(session, ids)
    works = await portfolio.work_metadata(session, ids)
    pinned = set(await portfolio.pinned_ids(session, account.id))
    return [StudioWork(status=s, media=media[s.id], work=works.get(s.id), pinned=s.id in pinned)
            for s in statuses]


async def my_works(session: AsyncSession, account: Account, *,
                   max_id: int | None = None) -> list[StudioWork]:
    """The account's own posts with images, newest first, published or not."""
    with_media = select(MediaAttachment.status_id).where(
        MediaAttachment.account_id == account.id, MediaAttachment.status_id.is_not(None))
    query = (select(Status).where(Status.account_id == account.id, Status.reblog_of_id.is_(None),
                                  Status.id.in_(with_media))
             .order_by(Status.id.desc()).limit(PAGE_SIZE))
    if max_id is not None:
        query = query.where(Status.id < max_id)
    return await _studio_works(session, account, list(await session.scalars(query)))


async def my_works_by_ids(session: AsyncSession, account: Account,
                          status_ids: Sequence[int]) -> dict[int, StudioWork]:
    """The account's own posts with images among ``status_ids`` (others left out), in
    one batch of queries."""
    if not status_ids:
        return {}
    statuses = list(await session.scalars(select(Status).where(
        Status.account_id == account.id, Status.reblog_of_id.is_(None),
        Status.id.in_(list(status_ids)))))
    return {w.status.id: w for w in await _studio_works(session, account, statuses) if w.media}


async def my_work(session: AsyncSession, account: Account, status_id: int) -> StudioWork:
    """One of the account's own posts with images (found by its old id too); anything
    else: NotFound."""
    status = await own_status(session, account, status_id)
    if status.reblog_of_id is not None:
        raise NotFound("Record not found")
    [found] = await _studio_works(session, account, [status])
    if not found.media:
        raise NotFound("Record not found")  # a post without images is no work
    return found


# ---------------------------------------------------------------------------- upload

@dataclass
class NewImage:
    """One file of the upload form, with its alt text."""

    data: bytes
    filename: str
    description: str = ""


@dataclass
class NewWork:
    """Everything the upload form says about a new work."""

    meta: Any                                   # portfolio.WorkMeta
    images: list[NewImage] = field(default_factory=list)
    kept_media_ids: list[int] = field(default_factory=list)  # accepted by an earlier try
    sensitive: bool = False
    content_warning: str = ""
    visibility: str = "public"


class UploadRefused(ServiceError):
    """A file (or the form) was refused; ``kept`` are the images accepted so far, which
    the form offers again so they need not be sent twice."""

    def __init__(self, message: str, kept: Sequence[MediaAttachment] = ()) -> None:
        super().__init__(message, 422)
        self.kept = list(kept)


def status_text(meta: Any) -> str:
    """The post's text, for readers on any server: the title, then as much of the
    description as the post has room for."""
    title = (meta.title or "").strip()
    description = (meta.description or "").strip()
    room = limits.MAX_STATUS_CHARACTERS - len(title) - 2
    if len(description) > room:
        description = description[: max(0, room - 1)].rstrip() + "…" if room > 1 else ""
    return "\n\n".join(part for part in (title, description) if part)


async def kept_media(session: AsyncSession, account: Account,
                     media_ids: Sequence[int]) -> list[MediaAttachment]:
    """The account's own, not yet attached uploads among ``media_ids`` (others are dropped)."""
    kept: list[MediaAttachment] = []
    for media_id in dict.fromkeys(media_ids):
        try:
            media = await media_service.get_own_media(session, account, media_id)
        except NotFound:
            continue
        if media.status_id is None:
            kept.append(media)
    return kept


async def create_work(session: AsyncSession, state: EaselState, account: Account,
                      new: NewWork) -> Status:
    """Post a work: its images through the upload checks (and into the protect queue),
    the status, then its portfolio metadata. Raises UploadRefused with the images already
    accepted when something is refused, so the form can keep them."""
    kept = await kept_media(session, account, new.kept_media_ids)
    if not kept and not new.images:
        raise UploadRefused("Choose at least one image")
    if len(kept) + len(new.images) > limits.MAX_MEDIA_ATTACHMENTS:
        raise UploadRefused(f"A work has at most {limits.MAX_MEDIA_ATTACHMENTS} images", kept)
    try:
        portfolio.validate_meta(new.meta)
    except ServiceError as exc:
        raise UploadRefused(exc.message, kept) from None
    for image in new.images:
        try:
            kept.append(await media_service.create_media(
                session, state, account, image.data, description=image.description))
        except ServiceError as exc:
            name = image.filename or "an image"
            raise UploadRefused(f"{name}: {exc.message}", kept) from None
    try:
        return await create_status(
            session, state.settings, account, None, text=status_text(new.meta),
            media_ids=[m.id for m in kept], sensitive=new.sensitive,
            spoiler_text=new.content_warning, visibility=new.visibility, work=new.meta)
    except ServiceError as exc:
        raise UploadRefused(exc.message, kept) from None


async def edit_work(session: AsyncSession, account: Account, status_id: int, meta: Any, *,
                    sensitive: bool, content_warning: str) -> Status:
    """Change one of the account's works: its portfolio data, and whether it is sensitive
    (with its content warning). Committed; a published work's change goes out as an
    Update (``statuses.edit_work``). Raises ServiceError with nothing written."""
    status = await own_status(session, account, status_id)
    content_warning = content_warning.strip()
    length = (countable_length(status.text or "", limits.CHARACTERS_RESERVED_PER_URL)
              + countable_length(content_warning, limits.CHARACTERS_RESERVED_PER_URL))
    if length > limits.MAX_STATUS_CHARACTERS:
        raise ValidationFailed(f"Text character limit of {limits.MAX_STATUS_CHARACTERS} exceeded "
                               "(the content warning counts too)")
    status.sensitive = sensitive or bool(content_warning)
    status.spoiler_text = content_warning
    return await statuses.edit_work(session, account, status.id, meta,
                                    given=[name for name in statuses.WORK_FIELDS if name != "ai_generated"])


# ------------------------------------------------------------------------ protection

async def progress_of(session: AsyncSession, state: EaselState, account: Account,
                      media_id: int) -> dict[str, Any]:
    """What the work page's live progress shows for one of the account's images: the
    protection document's state and progress, and whether (and where) its post is out."""
    document = await protection_of(session, account, media_id)
    media = await media_service.get_own_media(session, account, media_id)
    status = await session.get(Status, media.status_id) if media.status_id is not None else None
    published = bool(status is not None and status.published)
    return {
        "id": str(media.id),
        "state": media.state,
        "protection": document["state"],
        "progress": document["progress"],
        "reason": document.get("reason"),
        "verification": document.get("verification"),
        "verification_progress": document.get("verification_progress"),
        "published": published,
        "status_id": str(status.id) if status is not None else None,
        "url": status.url if status is not None and published else None,
        "preview_url": (state.storage.public_url(media.small_key)
                        if media.small_key and media.state == MediaState.READY else None),
    }


def _difference_png(original: bytes, protected: bytes) -> bytes:
    clean, _info = decode_upload(original, size_limit=limits.IMAGE_SIZE_LIMIT,
                                 pixel_limit=limits.IMAGE_MATRIX_LIMIT)
    with Image.open(io.BytesIO(protected)) as opened:
        served = opened.convert("RGB")
    clean = resized(clean, fit_edge(clean.size, limits.FULL_MAX_EDGE)).convert("RGB")
    if clean.size != served.size:
        clean = clean.resize(served.size, Image.Resampling.LANCZOS)
    difference = ImageChops.difference(clean, served)
    amplified = difference.point(lambda value: min(255, value * DIFFERENCE_GAIN))
    buffer = io.BytesIO()
    amplified.save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


async def difference_image(session: AsyncSession, state: EaselState, account: Account,
                           media_id: int) -> bytes:
    """A PNG of how the served full rendition differs from the original (fitted to its
    size), amplified DIFFERENCE_GAIN times: for the owner's eyes only."""
    media = await media_service.get_own_media(session, account, media_id)
    if media.original_key is None or media.file_key is None or media.state != MediaState.READY:
        raise NotFound("Record not found")
    try:
        original = await state.storage.get(media.original_key, private=True)
        protected = await state.storage.get(media.file_key)
    except Exception:
        raise NotFound("Record not found") from None
    try:
        return await asyncio.to_thread(_difference_png, original, protected)
    except (ImageRejected, OSError, ValueError):
        raise NotFound("Record not found") from None


def pictures_of(media: MediaAttachment) -> dict[str, str]:
    """The pictures a done verification report stored for this image: name (such as
    ``reconstruction_clean``) → private storage key. Shown only with a done report (the
    verify job replaces them with the report)."""
    stored = doc.stored(media)
    pictures = stored.get(doc.PICTURES_KEY)
    if doc.verification(stored) != doc.VERIFICATION_DONE or not isinstance(pictures, dict):
        return {}
    found = {}
    for name, key in pictures.items():
        if not (isinstance(name, str) and name.startswith("reconstruction_") and isinstance(key, str)):
            continue
        try:
            check_key(key)
        except StorageError:
            continue
        if key.rsplit(".", 1)[-1].lower() in PICTURE_CONTENT_TYPES:
            found[name] = key
    return found


def pictures_about(media: MediaAttachment) -> dict[str, Any]:
    """What the report says about its pictures: the ``model`` that made them and the
    ``crop`` of the image they show, when it says so."""
    pictures = doc.stored(media).get(doc.PICTURES_KEY)
    if not isinstance(pictures, dict):
        return {}
    return {name: pictures[name] for name in ("model", "crop") if name in pictures}


async def report_picture(session: AsyncSession, state: EaselState, account: Account, media_id: int,
                         name: str) -> tuple[bytes, str]:
    """One picture of the verification report (e.g. the model's reconstruction), with its
    content type; owner only."""
    media = await media_service.get_own_media(session, account, media_id)
    key = pictures_of(media).get(name)
    if key is None:
        raise NotFound("Record not found")
    try:
        data = await state.storage.get(key, private=True)
    except Exception:
        raise NotFound("Record not found") from None
    return data, PICTURE_CONTENT_TYPES[key.rsplit(".", 1)[-1].lower()]


# -------------------------------------------------------------------------- settings

# The IPTC PLUS "Data Mining" values an artist may choose (protect/optout_metadata.py).
DATA_MINING_CHOICES = optout_metadata.DATA_MINING_CHOICES
DEFAULT_DATA_MINING = optout_metadata.DMI_PROHIBITED_AIML


async def update_settings(session: AsyncSession, state: EaselState, account: Account, user: Any,
                          changes: ProfileChanges, data_mining: str) -> Account:
    """Change the profile (name, bio, images) and the AI opt-out choice, all or nothing."""
    if data_mining not in dict(DATA_MINING_CHOICES):
        raise ServiceError("Choose one of the AI training choices")
    if hasattr(changes, "data_mining"):
        changes.data_mining = data_mining
    else:
        account.data_mining = data_mining
    updated, _user = await update_profile(session, state.storage, account.id, user.id, changes,
                                              ai_uploads=state.settings.ai_uploads)
    return updated
