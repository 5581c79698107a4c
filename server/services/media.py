"""Media uploads: accept fast, process later.

An upload is checked here (size, type from the bytes, pixel count from the header, one
verifying decode) so that a file the pipeline could never read is refused while the
client is still waiting. The original is then stored privately under a random key and
handed to the ``protect_media`` job; nothing public exists until that job has made the
renditions. Profile images (avatar, header) are small and processed at once instead.

Before anything is stored, the original bytes are screened for generative-AI provenance
(``protect/provenance.py``) under the instance's ``EASEL_AI_UPLOADS`` policy.

Uses only the torch-free parts of ``protect`` (ingest, provenance, renditions, opt-out
metadata) and never serves a file itself.
"""

from __future__ import annotations

import asyncio
import math

from PIL import ImageOps
from sqlalchemy.ext.asyncio import AsyncSession

from protect.ingest import ImageRejected, decode_upload, inspect_upload
from protect.jobs import protect_media
from protect.optout_metadata import OptOut
from protect.provenance import screen
from protect.renditions import encode
from server.limits import (
    AVATAR_SIZE,
    HEADER_SIZE,
    IMAGE_MATRIX_LIMIT,
    IMAGE_SIZE_LIMIT,
    MAX_MEDIA_DESCRIPTION,
    PROFILE_IMAGE_SIZE_LIMIT,
)
from server.models import Account, MediaAttachment, MediaState, ProtectionState, Status
from server.queue.jobs import enqueue
from server.services.errors import NotFound, ServiceError, ValidationFailed
from server.state import EaselState
from server.storage import Storage, new_key

PROFILE_PURPOSES = {"avatar": AVATAR_SIZE, "header": HEADER_SIZE}
AI_REFUSED = "This server does not accept AI-generated images"


def parse_focus(raw: str | None) -> tuple[float, float] | None:
    """Mastodon's focal point ``"x,y"``, each in [-1, 1]; None when not given."""
    if raw is None or not raw.strip():
        return None
    parts = raw.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        x, y = (float(part.strip()) for part in parts)
    except ValueError:
        raise ValidationFailed('Focus must be two numbers separated by a comma, like "0.5,-0.25"') from None
    if not (math.isfinite(x) and math.isfinite(y) and -1.0 <= x <= 1.0 and -1.0 <= y <= 1.0):
        raise ValidationFailed("Focus must be between -1.0 and 1.0 on each axis")
    return x, y


def check_description(description: str | None) -> str | None:
    if description is not None and len(description) > MAX_MEDIA_DESCRIPTION:
        raise ValidationFailed(
            f"Description is too long (maximum is {MAX_MEDIA_DESCRIPTION} characters)")
    return description


async def create_media(
    session: AsyncSession,
    state: EaselState,
    account: Account,
    data: bytes,
    *,
    description: str | None = None,
    focus: str | None = None,
) -> MediaAttachment:
    """Check an upload, store its original privately, and queue its protection."""
    description = check_description(description)
    point = parse_focus(focus)
    try:
        info = await asyncio.to_thread(inspect_upload, data, size_limit=IMAGE_SIZE_LIMIT,
                                       pixel_limit=IMAGE_MATRIX_LIMIT)
    except ImageRejected as exc:
        raise ValidationFailed(exc.message) from None
    ai_provenance = await screen_provenance(data, state.settings.ai_uploads)
    key = new_key("originals", info.type.extension)
    await state.storage.put(key, data, private=True)
    try:
        media = MediaAttachment(
            account_id=account.id,
            type="image",
            purpose="attachment",
            state=MediaState.PROCESSING.value,
            protection=ProtectionState.PENDING.value,
            original_key=key,
            original_content_type=info.type.content_type,
            original_size=len(data),
            meta={},
            description=description or "",
            focus_x=point[0] if point else 0.0,
            focus_y=point[1] if point else 0.0,
            ai_provenance=ai_provenance,
        )
        session.add(media)
        await session.flush()
        await enqueue(session, protect_media, str(media.id))
        await session.commit()
    except BaseException:
        await session.rollback()
        await state.storage.delete(key, private=True)
        raise
    return media


async def screen_provenance(data: bytes, policy: str) -> str | None:
    """Screen an upload's original bytes for generative-AI provenance
    (``protect/provenance.py``) under the instance's ``EASEL_AI_UPLOADS`` policy: ``reject``
    refuses it (422 naming the marker); ``label`` and ``allow`` return the marker, which the
    media row keeps (None: no marker found, which proves nothing)."""
    finding = await asyncio.to_thread(screen, data)
    if finding is None:
        return None
    if policy == "reject":
        raise ServiceError(f"{AI_REFUSED} ({finding.marker})", 422)
    return finding.marker[:255]


async def get_own_media(session: AsyncSession, account: Account, media_id: int) -> MediaAttachment:
    """The account's own attachment; anyone else's (or none) is simply not found."""
    media = await session.get(MediaAttachment, media_id)
    if media is None or media.account_id != account.id or media.purpose != "attachment":
        raise NotFound("Record not found")
    return media


async def update_media(
    session: AsyncSession,
    account: Account,
    media_id: int,
    *,
    description: str | None = None,
    focus: str | None = None,
) -> MediaAttachment:
    """Change the description or focal point of one's own media that is not (yet) part of
    a published status. As in Mastodon, media of a published status is not found here:
    that goes through editing the status."""
    media = await get_own_media(session, account, media_id)
    if media.status_id is not None:
        status = await session.get(Status, media.status_id)
        if status is not None and status.published:
            raise NotFound("Record not found")
    description = check_description(description)
    point = parse_focus(focus)
    if description is not None:
        media.description = description
    if point is not None:
        media.focus_x, media.focus_y = point
    await session.commit()
    return media


async def read_original(storage: Storage, session: AsyncSession, account: Account,
                        media_id: int) -> tuple[bytes, str]:
    """The private original and its content type, for its owner only."""
    media = await get_own_media(session, account, media_id)
    if media.original_key is None:
        raise NotFound("Record not found")
    try:
        data = await storage.get(media.original_key, private=True)
    except Exception:
        raise NotFound("Record not found") from None
    return data, media.original_content_type or "application/octet-stream"


def _render_profile_image(data: bytes, size: tuple[int, int],
                          optout: OptOut | None) -> tuple[bytes, str]:
    image, _info = decode_upload(data, size_limit=PROFILE_IMAGE_SIZE_LIMIT,
                                 pixel_limit=IMAGE_MATRIX_LIMIT)
    fitted = ImageOps.fit(image, size, centering=(0.5, 0.5))
    rendition = encode(fitted, "profile", quality=88, optout=optout)
    return rendition.data, rendition.extension


async def process_profile_image(storage: Storage, data: bytes, purpose: str,
                                optout: OptOut | None = None) -> str:
    """Check, normalise and crop an avatar (AVATAR_SIZE) or header (HEADER_SIZE) image,
    write it as a public file and return its storage key. Profile images are not
    perturbed: they are small and not the portfolio; they carry the artist's opt-out XMP
    and EXIF (``optout``) like every served image."""
    if purpose not in PROFILE_PURPOSES:
        raise ValueError(f"unknown profile image purpose: {purpose!r}")
    try:
        rendered, extension = await asyncio.to_thread(
            _render_profile_image, data, PROFILE_PURPOSES[purpose], optout)
    except ImageRejected as exc:
        raise ValidationFailed(_profile_message(purpose, exc.message)) from None
    key = new_key(f"{purpose}s", extension)
    await storage.put(key, rendered)
    return key


def _profile_message(purpose: str, message: str) -> str:
    """Mastodon's wording: "Avatar file size must be …", "Header content type is invalid"."""
    name = purpose.capitalize()
    if message.startswith("File file "):
        return f"{name} file {message[len('File file '):]}"
    if message.startswith("File "):
        return f"{name} {message[len('File '):]}"
    return f"{name}: {message}"


