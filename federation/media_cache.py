"""The remote media cache: copies of remote statuses' attachments, kept in our storage.

Why it exists: a remote attachment is stored as a row that only names its origin's URL
(:mod:`federation.notes`). Shown that way, every reader's client asks the origin for the
file (telling it who reads what, and failing when it is down or slow). With
``EASEL_REMOTE_MEDIA_CACHE_MB`` above 0, storing a remote status queues one
``cache_remote_media`` job per attachment; the job fetches the file through the SSRF-safe
client (:mod:`federation.http`), keeps it only if its bytes are an image, a video or an
audio file (sniffed: the remote's Content-Type is only a first filter) under the per-file
cap, checks an image's pixel count before decoding it (:mod:`protect.ingest`), and stores
it (plus, for an image, a small preview) under the ``cache/`` prefix of the instance's
storage, local or S3. The API then serves ``url``/``preview_url`` from /system/ and keeps
``remote_url`` as the original; until then (or after ``easel admin media prune`` evicted
it, :mod:`protect.prune`), the remote URL is shown as before. Storing a remote actor
(:mod:`federation.actors`) does the same for its avatar and header (images only): their
copy is a row of purpose avatar/header, and is named as the account's
``avatar_key``/``header_key`` (what the API shows for an account that has one).

What it must never do: fetch in the inbox's request (only the job fetches), fetch from a
domain whose block rejects media, fetch outside :mod:`federation.http`'s client, keep a
file whose bytes are not media, or write a cache key over a row that changed meanwhile
(the row is updated only where it is still uncached, and the stored files are deleted
otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from federation.domains import domain_policy
from federation.http import (
    ConnectionFailed,
    FetchError,
    FetchTimeout,
    RemoteStatusError,
    fetch_bytes,
)
from protect.ingest import ImageRejected, open_image
from protect.renditions import as_shown, encode, fit_pixels, resized
from server.ids import utcnow
from server.limits import IMAGE_MATRIX_LIMIT, SMALL_MAX_PIXELS
from server.models import Account, MediaAttachment, MediaState, ProtectionState
from server.queue.jobs import enqueue
from server.queue.kinds import job_kind
from server.queue.runner import JobContext
from server.settings import Settings
from server.storage import Storage, StorageError, new_key

log = logging.getLogger(__name__)

CACHE_PREFIX = "cache"
# What the origin may say it sends; the bytes decide (sniff_media).
MEDIA_ACCEPT: tuple[str, ...] = ("image/*", "video/*", "audio/*")
# Per-file caps, as Mastodon's (16 MB images; video and audio larger).
MAX_CACHED_IMAGE_BYTES = 16 * 1024 * 1024
MAX_CACHED_FILE_BYTES = 40 * 1024 * 1024
MEGABYTE = 1024 * 1024
# Media rows whose copy is an account's avatar or header rather than an attachment.
PROFILE_IMAGES = ("avatar", "header")


class MediaRefused(Exception):
    """The file will not be cached, now or on a retry (its type, size or pixels)."""


@dataclass(frozen=True)
class SniffedMedia:
    kind: str  # image, video or audio
    content_type: str
    extension: str


def _ftyp_brands(data: bytes) -> set[bytes]:
    box_size = struct.unpack(">I", data[:4])[0]
    end = min(max(box_size, 16), len(data), 256)
    return {data[8:12]} | {data[i:i + 4] for i in range(16, end - 3, 4)}


def sniff_media(data: bytes) -> SniffedMedia | None:
    """What the bytes are (magic numbers), among the media Easel caches; None otherwise."""
    if data.startswith(b"\xff\xd8\xff"):
        return SniffedMedia("image", "image/jpeg", "jpg")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return SniffedMedia("image", "image/png", "png")
    if data.startswith((b"GIF87a", b"GIF89a")):
        return SniffedMedia("image", "image/gif", "gif")
    if len(data) >= 12 and data[:4] == b"RIFF":
        if data[8:12] == b"WEBP":
            return SniffedMedia("image", "image/webp", "webp")
        if data[8:12] == b"WAVE":
            return SniffedMedia("audio", "audio/wav", "wav")
    if len(data) >= 16 and data[4:8] == b"ftyp":
        brands = _ftyp_brands(data)
        if brands & {b"avif", b"avis"}:
            return SniffedMedia("image", "image/avif", "avif")
        if brands & {b"M4A ", b"M4B "}:
            return SniffedMedia("audio", "audio/mp4", "m4a")
        return SniffedMedia("video", "video/mp4", "mp4")
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return SniffedMedia("video", "video/webm", "webm")
    if data.startswith(b"OggS"):
        return SniffedMedia("audio", "audio/ogg", "ogg")
    if data.startswith(b"fLaC"):
        return SniffedMedia("audio", "audio/flac", "flac")
    if data.startswith(b"ID3") or (len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return SniffedMedia("audio", "audio/mpeg", "mp3")
    return None


def cache_enabled(settings: Settings) -> bool:
    return settings.remote_media_cache_mb > 0


def per_file_cap(settings: Settings) -> int:
    """The most one file may take: the type's cap, and never more than the whole cache."""
    return min(MAX_CACHED_FILE_BYTES, settings.remote_media_cache_mb * MEGABYTE)


@dataclass(frozen=True)
class CachedFiles:
    key: str
    preview_key: str | None
    files: dict[str, bytes]

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


def _image_preview(data: bytes, *, wanted: bool = True) -> bytes | None:
    """A small preview of an image (when ``wanted``) whose pixels are checked first: it
    must decode within the upload pixel limit (raises MediaRefused)."""
    try:
        image, _ = open_image(data, size_limit=MAX_CACHED_IMAGE_BYTES, pixel_limit=IMAGE_MATRIX_LIMIT)
    except ImageRejected as exc:
        raise MediaRefused(exc.message) from exc
    try:
        if not wanted:
            return None
        shown = as_shown(image)
        small = resized(shown, fit_pixels(shown.size, SMALL_MAX_PIXELS))
        return encode(small, "small", quality=85).data
    finally:
        image.close()


async def files_for(data: bytes, *, profile_image: bool = False) -> CachedFiles:
    """The files to store for ``data`` (raises MediaRefused when it is not media, or for an
    avatar or header, not an image); an attachment's image gets a preview."""
    sniffed = sniff_media(data)
    if sniffed is None or (profile_image and sniffed.kind != "image"):
        raise MediaRefused("the file is not an image, a video or an audio file"
                           if not profile_image else "an avatar or header must be an image")
    key = new_key(CACHE_PREFIX, sniffed.extension)
    files = {key: data}
    preview_key = None
    if sniffed.kind == "image":
        if len(data) > MAX_CACHED_IMAGE_BYTES:
            raise MediaRefused(f"the image is over {MAX_CACHED_IMAGE_BYTES // MEGABYTE} MB")
        preview = await asyncio.to_thread(_image_preview, data, wanted=not profile_image)
        if preview is not None:
            preview_key = new_key(CACHE_PREFIX, "jpg")
            files[preview_key] = preview
    return CachedFiles(key=key, preview_key=preview_key, files=files)


async def queue_status_media_caching(session: AsyncSession, settings: Settings,
                                     status_id: int) -> None:
    """Queue the caching of a stored remote status's uncached attachments (the caller
    commits); nothing when the cache is off."""
    if not cache_enabled(settings):
        return
    uncached = await session.scalars(select(MediaAttachment.id).where(
        MediaAttachment.status_id == status_id, MediaAttachment.remote_url.is_not(None),
        MediaAttachment.cache_key.is_(None)).order_by(MediaAttachment.id))
    for media_id in uncached.all():
        # Again: a copy evicted by prune (or refused before) is fetched anew when the
        # status is stored again (redelivered, edited, fetched).
        await enqueue(session, cache_remote_media, str(media_id), again=True)


async def refuse_reason(session: AsyncSession, media: MediaAttachment) -> str | None:
    """Why this attachment is not fetched at all, or None."""
    if not media.remote_url or not media.remote_url.startswith(("https://", "http://")):
        return "it has no remote URL"
    author_domain = await session.scalar(select(Account.domain).where(Account.id == media.account_id))
    for where in (media.remote_url, author_domain or ""):
        if where and (await domain_policy(session, where)).reject_media:
            return f"media from {where} are rejected by a domain block"
    return None


async def cache_media(session: AsyncSession, settings: Settings, storage: Storage,
                      client: httpx.AsyncClient, media_id: int) -> bool:
    """Fetch and store one remote attachment; True when it is cached afterwards.

    Refusals (domain block, SSRF, type, size, pixels, a 4xx) end here with False; errors
    that may pass (timeouts, connection failures, 5xx) are raised for the job to retry.
    """
    media = await session.get(MediaAttachment, media_id)
    if media is None or media.cache_key or not cache_enabled(settings):
        return media is not None and media.cache_key is not None
    reason = await refuse_reason(session, media)
    if reason is not None:
        log.info("remote media %s not cached: %s", media_id, reason)
        return False
    url = media.remote_url
    assert url is not None
    try:
        data, _ = await fetch_bytes(client, url, accept=MEDIA_ACCEPT,
                                    max_bytes=per_file_cap(settings))
        cached = await files_for(data, profile_image=media.purpose in PROFILE_IMAGES)
    except (FetchTimeout, ConnectionFailed):
        raise
    except RemoteStatusError as exc:
        if exc.status_code >= 500 or exc.status_code == 429:
            raise
        log.info("remote media %s not cached: %s", media_id, exc)
        return False
    except (FetchError, MediaRefused) as exc:
        log.info("remote media %s not cached: %s", media_id, exc)
        return False
    stored: list[str] = []
    try:
        for key, content in cached.files.items():
            await storage.put(key, content)
            stored.append(key)
        result = await session.execute(
            update(MediaAttachment)
            .where(MediaAttachment.id == media_id, MediaAttachment.cache_key.is_(None),
                   MediaAttachment.remote_url == url)
            .values(cache_key=cached.key, cache_preview_key=cached.preview_key,
                    cache_size=cached.size, cached_at=utcnow())
            .execution_options(synchronize_session=False))
        claimed = getattr(result, "rowcount", 0) == 1
        if claimed and media.purpose in PROFILE_IMAGES:
            await _show_profile_image(session, media, url, cached.key)
    except BaseException:
        await _delete_quietly(storage, stored)
        raise
    if not claimed:  # deleted, edited or cached by another job meanwhile
        await _delete_quietly(storage, stored)
        return False
    return True


async def _show_profile_image(session: AsyncSession, media: MediaAttachment, url: str,
                              key: str) -> None:
    """Name the cached copy as the account's avatar or header, while the actor still says
    that URL (its API entity then shows our copy)."""
    if media.purpose == "avatar":
        statement = update(Account).where(Account.id == media.account_id,
                                          Account.avatar_remote_url == url).values(avatar_key=key)
    else:
        statement = update(Account).where(Account.id == media.account_id,
                                          Account.header_remote_url == url).values(header_key=key)
    await session.execute(statement.execution_options(synchronize_session=False))


async def queue_profile_images_caching(session: AsyncSession, settings: Settings,
                                       account: Account) -> None:
    """Queue the caching of a stored remote actor's avatar and header (the caller
    commits); nothing when the cache is off or both are cached already. Each is kept as
    a ``media_attachments`` row of purpose avatar/header (no status) that holds the
    copy's size and age for prune, and names the copy as the account's key."""
    if not cache_enabled(settings) or account.domain == "":
        return
    rows = {row.purpose: row for row in await session.scalars(select(MediaAttachment).where(
        MediaAttachment.account_id == account.id, MediaAttachment.purpose.in_(PROFILE_IMAGES)))}
    for purpose, url, shown in (("avatar", account.avatar_remote_url, account.avatar_key),
                                ("header", account.header_remote_url, account.header_key)):
        row = rows.get(purpose)
        if row is not None and row.remote_url != url:  # changed or removed: a new copy
            # The old copy's files are named by nothing now: prune deletes them.
            row.remote_url = url
            row.cache_key = row.cache_preview_key = row.cached_at = None
            row.cache_size = 0
        if not url or (row is not None and row.cache_key is not None and shown == row.cache_key):
            continue
        if row is None:
            row = MediaAttachment(account_id=account.id, purpose=purpose, type="image",
                                  state=MediaState.READY.value,
                                  protection=ProtectionState.UNPROTECTED.value, remote_url=url)
            session.add(row)
            await session.flush()
        elif row.cache_key is not None:
            continue  # cached, and deliberately not shown (a moderator removed it)
        await enqueue(session, cache_remote_media, str(row.id), again=True)


async def _delete_quietly(storage: Storage, keys: Iterable[str]) -> None:
    for key in keys:
        try:
            await storage.delete(key)
        except StorageError:
            log.warning("cached file %s could not be deleted; prune will find it", key)


@job_kind("cache_remote_media", queue="federation", max_attempts=4)
async def cache_remote_media(ctx: JobContext) -> None:
    """Cache the remote attachment ``job.ref`` (a media id)."""
    from federation.context import federation_context  # the context imports the actor code

    context = federation_context(ctx.settings, ctx.db)
    await cache_media(ctx.session, ctx.settings, context.storage, context.client, int(ctx.job.ref))
