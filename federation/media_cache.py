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

**Blocks made later.** A domain block that rejects media (``reject_media``, or a
suspension) applies to what is stored already too, as Mastodon's ``BlockDomainService``
does: making such a block (or changing one to reject media) queues one
``clear_domain_media`` job for the block's domain (:mod:`server.services.domain_blocks`
enqueues it by name). The job takes every remote account the block covers whose domain's
policy now rejects media (a more specific block may exempt a subdomain), and for each:
its avatar and header are no longer shown (their remote URLs and copies are dropped from
the account, and their cache rows deleted: the default images show until the actor is
refreshed after the block is lifted), its statuses' attachments become Mastodon's type
``unknown`` with their cache columns reset (clients show a link to ``remote_url``), and
its works are no longer works (they show no images). The rows are changed and committed
first, a batch of accounts at a time, and the files those rows named deleted after each
commit (a file that cannot be deleted is unnamed now: ``easel admin media prune`` deletes
it). Redone, it changes nothing more; local accounts are never touched.

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
from datetime import timedelta

import httpx
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from federation.domains import all_blocks, domain_policy
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
from server.models import Account, MediaAttachment, MediaState, ProtectionState, Work, WorkTag
from server.queue.jobs import enqueue
from server.queue.kinds import job_kind
from server.queue.runner import JobContext
from server.services.domain_blocks import CLEAR_DOMAIN_MEDIA_JOB, accounts_covered_by
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
# Accounts cleared per transaction by clear_domain_media.
CLEAR_BATCH = 200


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
    kind: str = "image"  # what the bytes are: image, video or audio (sniff_media)

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
    return CachedFiles(key=key, preview_key=preview_key, files=files, kind=sniffed.kind)


def shown_type(declared: str, kind: str) -> str:
    """An attachment's type once its bytes are known: what they are, whatever the note
    said (a "gifv" is a video, as Mastodon's)."""
    return declared if (declared, kind) == ("gifv", "video") else kind


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
    # Once more after the fetch: a block made meanwhile (whose clear_domain_media job may
    # already have run) must not get a copy stored behind it.
    reason = await refuse_reason(session, media)
    if reason is not None:
        log.info("remote media %s not cached: %s", media_id, reason)
        return False
    stored: list[str] = []
    try:
        for key, content in cached.files.items():
            await storage.put(key, content)
            stored.append(key)
        result = await session.execute(
            update(MediaAttachment)
            # Not over a row clear_domain_media made "unknown" while the file was stored.
            .where(MediaAttachment.id == media_id, MediaAttachment.cache_key.is_(None),
                   MediaAttachment.remote_url == url, MediaAttachment.type != "unknown")
            .values(cache_key=cached.key, cache_preview_key=cached.preview_key,
                    cache_size=cached.size, cached_at=utcnow(),
                    type=shown_type(media.type, cached.kind))
            .execution_options(synchronize_session=False))
        claimed = getattr(result, "rowcount", 0) == 1
        if claimed and media.purpose in PROFILE_IMAGES:
            await _show_profile_image(session, media, url, cached.key)
    except BaseException:
        await delete_quietly(storage, stored)
        raise
    if not claimed:  # deleted, edited or cached by another job meanwhile
        await delete_quietly(storage, stored)
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


async def delete_quietly(storage: Storage, keys: Iterable[str]) -> None:
    """Delete stored files, logging (not raising) what cannot be: nothing names them any
    more, and ``easel admin media prune`` deletes what is left."""
    for key in keys:
        try:
            await storage.delete(key)
        except StorageError:
            log.warning("cached file %s could not be deleted; prune will find it", key)


@dataclass
class ClearedMedia:
    """What :func:`clear_domain_media` changed."""

    accounts: int = 0      # accounts whose avatar, header or media were cleared
    attachments: int = 0   # attachments turned "unknown" (or uncached)
    files: int = 0         # cached files no longer named (deleted, or left to prune)


async def clear_domain_media(session: AsyncSession, storage: Storage,
                             block_domain: str) -> ClearedMedia:
    """Clear what is stored of the media of the remote accounts a block on
    ``block_domain`` covers, where their domain's policy rejects media now (see the module's
    "Blocks made later"); commits a batch of accounts at a time, and deletes the files the
    changed rows named after each commit."""
    cleared = ClearedMedia()
    blocks = await all_blocks(session)
    domains = sorted(domain for domain in await session.scalars(
        select(Account.domain).where(Account.domain != "", accounts_covered_by([block_domain]))
        .distinct()) if blocks.policy(domain).reject_media)
    for domain in domains:
        after = 0
        while True:
            # Read before every batch: a block lifted (or loosened) meanwhile stops it.
            if not (await domain_policy(session, domain)).reject_media:
                log.info("media of %s: no longer rejected, clearing stopped", domain)
                break
            ids = list(await session.scalars(
                select(Account.id).where(Account.domain == domain, Account.id > after)
                .order_by(Account.id).limit(CLEAR_BATCH)))
            if not ids:
                break
            keys = await _clear_accounts(session, ids, cleared)
            await session.commit()
            await delete_quietly(storage, keys)
            cleared.files += len(keys)
            after = ids[-1]
    if cleared.accounts:
        log.info("media of %s cleared: %s account(s), %s attachment(s), %s file(s)",
                 block_domain, cleared.accounts, cleared.attachments, cleared.files)
    return cleared


async def _clear_accounts(session: AsyncSession, ids: list[int], cleared: ClearedMedia) -> set[str]:
    """Clear the media of the remote accounts ``ids`` (not committed); the storage keys the
    changed rows named."""
    keys: set[str] = set()
    changed: set[int] = set()
    # Avatars and headers: neither shown nor kept (the actor's next refresh after the block
    # is lifted stores their URLs again, and queues new copies).
    profiles = (await session.execute(
        select(Account.id, Account.avatar_key, Account.header_key).where(
            Account.id.in_(ids), Account.domain != "",
            or_(Account.avatar_key.is_not(None), Account.header_key.is_not(None),
                Account.avatar_remote_url.is_not(None), Account.header_remote_url.is_not(None)))
    )).all()
    if profiles:
        keys.update(key for row in profiles for key in (row.avatar_key, row.header_key) if key)
        changed.update(row.id for row in profiles)
        await session.execute(
            update(Account).where(Account.id.in_([row.id for row in profiles]), Account.domain != "")
            .values(avatar_key=None, header_key=None, avatar_remote_url=None,
                    header_remote_url=None)
            .execution_options(synchronize_session=False))
    copies = (await session.execute(
        delete(MediaAttachment).where(MediaAttachment.account_id.in_(ids),
                                      MediaAttachment.purpose.in_(PROFILE_IMAGES),
                                      MediaAttachment.file_key.is_(None))
        .returning(MediaAttachment.account_id, MediaAttachment.cache_key,
                   MediaAttachment.cache_preview_key)
        .execution_options(synchronize_session=False))).all()
    keys.update(key for row in copies for key in (row.cache_key, row.cache_preview_key) if key)
    changed.update(row.account_id for row in copies)
    # Attachments: Mastodon's type "unknown", uncached (the entity then shows a link).
    remote = (MediaAttachment.account_id.in_(ids), MediaAttachment.purpose == "attachment",
              MediaAttachment.file_key.is_(None), MediaAttachment.remote_url.is_not(None),
              or_(MediaAttachment.type != "unknown", MediaAttachment.cache_key.is_not(None)))
    attachments = (await session.execute(
        select(MediaAttachment.id, MediaAttachment.account_id, MediaAttachment.cache_key,
               MediaAttachment.cache_preview_key).where(*remote))).all()
    if attachments:
        keys.update(key for row in attachments for key in (row.cache_key, row.cache_preview_key)
                    if key)
        changed.update(row.account_id for row in attachments)
        cleared.attachments += len(attachments)
        await session.execute(
            update(MediaAttachment).where(*remote)
            .values(type="unknown", blurhash=None, cache_key=None, cache_preview_key=None,
                    cache_size=0, cached_at=None)
            .execution_options(synchronize_session=False))
    # Their works show no images now: no longer works (an Update of the note after the
    # block is lifted makes them works again, as it would a new note).
    works = select(Work.status_id).where(Work.account_id.in_(ids), Work.local.is_(False))
    await session.execute(delete(WorkTag).where(WorkTag.status_id.in_(works))
                          .execution_options(synchronize_session=False))
    await session.execute(delete(Work).where(Work.account_id.in_(ids), Work.local.is_(False))
                          .execution_options(synchronize_session=False))
    cleared.accounts += len(changed)
    return keys


@job_kind(CLEAR_DOMAIN_MEDIA_JOB, queue="federation", max_attempts=5,
          time_limit=timedelta(minutes=30), lease=timedelta(minutes=2))
async def clear_domain_media_job(ctx: JobContext) -> None:
    """Clear the stored media of the accounts the block on ``job.ref`` (a domain) covers."""
    from federation.context import federation_context  # the context imports the actor code

    context = federation_context(ctx.settings, ctx.db)
    await clear_domain_media(ctx.session, context.storage, ctx.job.ref)


@job_kind("cache_remote_media", queue="federation", max_attempts=4)
async def cache_remote_media(ctx: JobContext) -> None:
    """Cache the remote attachment ``job.ref`` (a media id)."""
    from federation.context import federation_context  # the context imports the actor code

    context = federation_context(ctx.settings, ctx.db)
    await cache_media(ctx.session, ctx.settings, context.storage, context.client, int(ctx.job.ref))
