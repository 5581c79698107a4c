"""Link preview cards: the ``fetch_link_card`` job, which reads a linked web page and
keeps what it says about itself.

Why it exists: Mastodon apps show a card under a status that links to a page (title,
description, site name, a picture). Publishing a status here, or storing one from another
server, queues this job for it (:mod:`server.services.link_cards` chooses the link: the
first that is not a mention, a hashtag or this server's). The job:

* reuses the card of that URL when it was fetched less than :data:`REFRESH_AFTER` ago
  (one ``preview_cards`` row per URL, shared by every status linking there), failed
  fetches included: a URL that gave nothing is not asked again before then;
* otherwise GETs the page through :mod:`federation.http`'s SSRF-safe client (no private
  addresses unless ``EASEL_ALLOW_PRIVATE_ADDRESSES``, each redirect checked, at most
  :data:`MAX_HTML_BYTES` read — a longer page is cut there —, only ``text/html``, a short
  total timeout) and parses it with the standard library's ``html.parser``: ``og:title`` /
  ``twitter:title`` / ``<title>``, ``og:description`` / ``description``, ``og:image``
  (resolved against the page's URL, http(s) only) with ``og:image:alt``, ``og:site_name``,
  the author (``<meta name="author">``, ``article:author``), ``og:type``,
  ``article:published_time`` and the language (``og:locale``, ``<html lang>``), decoded in
  the charset of the Content-Type or the page's ``<meta charset>``. Every text is plain:
  entities decoded, tags dropped, lengths capped;
* fetches the image through the same client and keeps it only if its bytes are an image
  (sniffed and pixel-checked as the remote media cache does: :mod:`federation.media_cache`,
  :mod:`protect.ingest`), stored as a JPEG of at most :data:`CARD_IMAGE_EDGE` pixels a side
  under ``cards/`` in the instance's storage (local or S3) and served from /system/; an
  image that cannot be had leaves the card without one;
* keeps a card with neither title nor image as failed (not shown), and attaches a usable
  card to the status, if its first link is still that URL.

Domain blocks: no card is made for a link to a suspended domain (nor a page that
redirects to one), and no image is fetched from, or for a page on, a domain whose block
rejects media. Fetch failures are recorded on the card, never raised: the job does not
retry a page in a loop.

What it must never do: fetch outside :mod:`federation.http`, store or serve remote HTML
(a card's ``html`` is always empty: Easel makes no embeds), keep a file whose bytes are
not an image, or fetch while ``EASEL_LINK_CARDS`` is off.
"""

from __future__ import annotations

import asyncio
import codecs
import html
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from federation.domains import domain_policy
from federation.http import FetchError, fetch, fetch_bytes
from federation.media_cache import MAX_CACHED_IMAGE_BYTES, delete_quietly, sniff_media
from protect.ingest import ImageRejected, open_image
from protect.renditions import as_shown, compute_blurhash, encode, fit_edge, resized
from server.db import insert_ignoring_conflict
from server.ids import new_id, utcnow
from server.limits import IMAGE_MATRIX_LIMIT
from server.models import Account, Mention, PreviewCard, Status, StatusPreviewCard
from server.queue.kinds import job_kind
from server.queue.runner import JobContext
from server.services.languages import ISO_639_1
from server.services.link_cards import FETCH_LINK_CARD_JOB, MAX_URL_BYTES, first_link
from server.settings import Settings
from server.storage import Storage, new_key

log = logging.getLogger(__name__)

CARD_PREFIX = "cards"
HTML_ACCEPT: tuple[str, ...] = ("text/html",)
MAX_HTML_BYTES = 1024 * 1024
PAGE_TIMEOUT = 10.0   # seconds for the whole page fetch, redirects included
IMAGE_TIMEOUT = 15.0
CARD_IMAGE_EDGE = 400  # Mastodon's card images: 400×400 at most
REFRESH_AFTER = timedelta(days=14)
TITLE_MAX = 255
DESCRIPTION_MAX = 1000
NAME_MAX = 255
# A status edited while its card was fetched is looked at again, a few times at most.
MAX_ROUNDS = 3

_TAG_RE = re.compile(r"<[^<>]*>")
_SPACE_RE = re.compile(r"\s+")
_CHARSET_RE = re.compile(r"charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.IGNORECASE)
_META_CHARSET_RE = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.IGNORECASE)


# ------------------------------------------------------------------ the page


@dataclass(frozen=True)
class PageDetails:
    """What a page says about itself, as plain text and checked URLs."""

    title: str = ""
    description: str = ""
    image_url: str | None = None
    image_description: str = ""
    type: str = "link"
    author_name: str = ""
    author_url: str = ""
    provider_name: str = ""
    language: str | None = None
    published_at: datetime | None = None
    page_url: str = ""  # where the page was read (after redirects)


# Only a page's head says anything about it, and a hostile page must not cost more than a
# few milliseconds of CPU whatever it holds: the head is read with linear scans (str.find
# and regular expressions that cannot backtrack over a tag), not with html.parser, which
# slows quadratically on repeated unfinished markup (measured: 64 KiB of "<a " took 22 s).
MAX_TAG_CHARS = 4096       # a <meta> or <html> tag longer than this is skipped
MAX_TITLE_CHARS = 4096
_SKIPPED_ELEMENTS = (("<!--", "-->"), ("<script", "</script"), ("<style", "</style"),
                     ("<noscript", "</noscript"), ("<template", "</template"))
_TAG_START = re.compile(r"<(meta|html|title)\b", re.IGNORECASE)
# The rest of a tag, up to its ">": quoted values may hold "<" and ">"; one way to match
# each character, so a failed match costs at most its (bounded) window.
_TAG_REST = re.compile(r"""(?:[^<>"']|"[^"]*"|'[^']*')*>""")
_ATTRIBUTE_RE = re.compile(
    r"""([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>`=]+)))?""")


@dataclass
class _Head:
    """A page head's ``<meta>`` (property or name → content, the first of each), its first
    ``<title>``'s text and its ``<html lang>``."""

    meta: dict[str, str] = field(default_factory=dict)
    title: str = ""
    lang: str = ""


def _ascii_lower(text: str) -> str:
    """``text`` with A–Z lower-cased and nothing else changed (``str.lower`` may change a
    string's length, and the positions found in it must be the text's)."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}


def _without_skipped(text: str) -> str:
    """``text`` without comments, scripts, styles and templates (their contents may look
    like tags); an unclosed one runs to the end. Linear: every search goes forward, and
    each kind's next opening is searched for again only once it has been passed."""
    lowered = _ascii_lower(text)
    kept: list[str] = []
    at = 0
    upcoming = {opening: lowered.find(opening) for opening, _ in _SKIPPED_ELEMENTS}
    while True:
        for opening, position in upcoming.items():
            if 0 <= position < at:
                upcoming[opening] = lowered.find(opening, at)
        found = [(position, opening, closing) for opening, closing in _SKIPPED_ELEMENTS
                 if (position := upcoming[opening]) >= 0]
        if not found:
            kept.append(text[at:])
            return "".join(kept)
        begin, opening, closing = min(found)
        kept.append(text[at:begin])
        stop = lowered.find(closing, begin + len(opening))
        if stop < 0:
            return "".join(kept)
        at = stop + len(closing) if closing == "-->" else lowered.find(">", stop) + 1
        if at <= 0:
            return "".join(kept)


def _attributes(source: str) -> dict[str, str]:
    """A tag's attributes (lower-cased names, the first of each; entities decoded)."""
    values: dict[str, str] = {}
    for match in _ATTRIBUTE_RE.finditer(source):
        name = match.group(1).lower()
        value = next((v for v in match.group(2, 3, 4) if v is not None), "")
        values.setdefault(name, html.unescape(value))
    return values


def read_head(text: str) -> _Head:
    """What the head of the HTML ``text`` says (what comes after ``<body`` is not read)."""
    body = _ascii_lower(text).find("<body")
    head = _without_skipped(text[:body] if body >= 0 else text)
    lowered = _ascii_lower(head)
    found = _Head()
    title_seen = False
    at = 0
    while (start := _TAG_START.search(head, at)) is not None:
        rest = _TAG_REST.match(head, start.end(), start.end() + MAX_TAG_CHARS)
        if rest is None:  # unfinished, overlong or broken: the rest of the head is not read
            break
        at = rest.end()
        tag, values = start.group(1).lower(), _attributes(head[start.end():at - 1])
        if tag == "meta":
            content = values.get("content")
            for name in (values.get("property", ""), values.get("name", "")):
                name = name.strip().lower()
                if name and content is not None:
                    found.meta.setdefault(name, content)
        elif tag == "html" and not found.lang:
            found.lang = values.get("lang", "")
        elif tag == "title" and not title_seen:  # the first one only, closed or not
            title_seen = True
            close = lowered.find("</title", at, at + MAX_TITLE_CHARS)
            if close >= 0:
                found.title = html.unescape(head[at:close])
    return found


def plain(text: str | None, limit: int) -> str:
    """Plain text of an attribute or element: tags dropped, entities decoded, whitespace
    collapsed, at most ``limit`` characters."""
    if not text:
        return ""
    text = html.unescape(_TAG_RE.sub("", text))
    text = _SPACE_RE.sub(" ", text).strip()
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def page_charset(content_type: str, data: bytes) -> str:
    """The page's encoding: a byte-order mark, the Content-Type's charset, a ``<meta
    charset>`` (or http-equiv) near the top, else UTF-8 — only names Python knows."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    found = _CHARSET_RE.search(content_type)
    candidates = [found.group(1)] if found else []
    meta = _META_CHARSET_RE.search(data[:4096])
    if meta:
        candidates.append(meta.group(1).decode("ascii"))
    for name in candidates:
        try:
            found_codec = codecs.lookup(name)
        except LookupError:
            continue
        # Only text encodings: "zlib", "base64", "rot13"… are codecs too, not charsets.
        if getattr(found_codec, "_is_text_encoding", True):
            return found_codec.name
    return "utf-8"


def http_url(value: str | None, base: str) -> str | None:
    """``value`` resolved against ``base`` when that is an http(s) URL with a host that
    fits a card; None otherwise."""
    if not value or not value.strip():
        return None
    try:
        url = urljoin(base, value.strip())
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return url if len(url.encode("utf-8")) <= MAX_URL_BYTES else None


def _language(value: str) -> str | None:
    code = value.strip().replace("_", "-").split("-", 1)[0].lower()
    return code if code in ISO_639_1 else None


def _published(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_page(text: str, page_url: str) -> PageDetails:
    """The card's details of the HTML ``text`` served at ``page_url``."""
    head = read_head(text)
    meta = head.meta

    def first(*names: str) -> str | None:
        for name in names:
            value = meta.get(name)
            if value is not None and value.strip():
                return value
        return None

    title = plain(first("og:title", "twitter:title") or head.title, TITLE_MAX)
    article_author = first("article:author") or ""
    author_url = http_url(article_author, page_url) if "://" in article_author else None
    author_name = first("author", "og:author", "og:author:username") or (
        article_author if author_url is None else "")
    image_url = http_url(first("og:image", "og:image:url", "og:image:secure_url",
                               "twitter:image"), page_url)
    og_type = (first("og:type") or "").strip().lower()
    return PageDetails(
        title=title,
        description=plain(first("og:description", "twitter:description", "description"),
                          DESCRIPTION_MAX),
        image_url=image_url,
        image_description=plain(first("og:image:alt", "twitter:image:alt"), DESCRIPTION_MAX),
        type="photo" if og_type in ("image", "photo") and image_url else "link",
        author_name=plain(author_name, NAME_MAX),
        author_url=author_url or "",
        provider_name=plain(first("og:site_name"), NAME_MAX),
        language=_language(first("og:locale") or head.lang or ""),
        published_at=_published(first("article:published_time")),
        page_url=page_url,
    )


async def fetch_page(session: AsyncSession, client: httpx.AsyncClient,
                     url: str) -> PageDetails | None:
    """The page's details, or None when it cannot be had (refused, an error, not HTML, a
    redirect to a suspended domain)."""
    try:
        fetched = await fetch(client, url, accept=HTML_ACCEPT, max_bytes=MAX_HTML_BYTES,
                              total_timeout=PAGE_TIMEOUT, truncate=True)
    except FetchError as exc:
        log.info("link card of %s: %s", url, exc)
        return None
    if fetched.url != url and (await domain_policy(session, fetched.url)).suspended:
        log.info("link card of %s: it redirects to a suspended domain", url)
        return None
    try:
        text = fetched.content.decode(page_charset(fetched.content_type, fetched.content),
                                      errors="replace")
    except (LookupError, UnicodeError):  # a codec that fails on these bytes: read as UTF-8
        text = fetched.content.decode("utf-8", errors="replace")
    return await asyncio.to_thread(parse_page, text, fetched.url)


# ------------------------------------------------------------------ the image


class CardImageRefused(Exception):
    """The image's bytes are not an image Easel keeps."""


@dataclass(frozen=True)
class CardImage:
    data: bytes  # a JPEG
    width: int
    height: int
    blurhash: str | None


def card_image(data: bytes) -> CardImage:
    """The card's picture made from ``data``: an image (sniffed, size and pixels checked
    before decoding), at most CARD_IMAGE_EDGE a side, JPEG. Raises CardImageRefused."""
    sniffed = sniff_media(data)
    if sniffed is None or sniffed.kind != "image":
        raise CardImageRefused("not an image")
    try:
        image, _ = open_image(data, size_limit=MAX_CACHED_IMAGE_BYTES,
                              pixel_limit=IMAGE_MATRIX_LIMIT)
    except ImageRejected as exc:
        raise CardImageRefused(exc.message) from exc
    try:
        shown = as_shown(image)
        small = resized(shown, fit_edge(shown.size, CARD_IMAGE_EDGE))
        rendition = encode(small, "card", quality=85)
        return CardImage(data=rendition.data, width=small.width, height=small.height,
                         blurhash=compute_blurhash(small))
    finally:
        image.close()


async def media_rejected(session: AsyncSession, image_url: str, page_url: str) -> bool:
    """Whether a block rejects the media of the image's domain or of the page's."""
    for where in (image_url, page_url):
        if (await domain_policy(session, where)).reject_media:
            log.info("link card image %s not fetched: media from %s are rejected",
                     image_url, where)
            return True
    return False


async def fetch_card_image(client: httpx.AsyncClient, image_url: str) -> CardImage | None:
    """The page's picture, or None (refused, an error, not an image)."""
    try:
        data, _ = await fetch_bytes(client, image_url, max_bytes=MAX_CACHED_IMAGE_BYTES,
                                    total_timeout=IMAGE_TIMEOUT)
        return await asyncio.to_thread(card_image, data)
    except (FetchError, CardImageRefused) as exc:
        log.info("link card image %s not kept: %s", image_url, exc)
        return None


# ------------------------------------------------------------------ the card


def _usable(card: PreviewCard | None) -> bool:
    return card is not None and not card.failed and bool(card.title or card.image_key)


async def refresh_card(session: AsyncSession, storage: Storage, client: httpx.AsyncClient,
                       url: str) -> tuple[PreviewCard, str | None]:
    """Fetch ``url`` and write its card row (not committed): the row and the image key it
    named before, if another (the caller deletes that file after committing)."""
    details = await fetch_page(session, client, url)
    image = None
    if (details is not None and details.image_url
            and not await media_rejected(session, details.image_url, details.page_url or url)):
        await session.commit()  # nothing written yet: no transaction held across the fetch
        image = await fetch_card_image(client, details.image_url)
    key = None
    if image is not None:
        key = new_key(CARD_PREFIX, "jpg")
        await storage.put(key, image.data)
    found = details or PageDetails()
    failed = details is None or not (found.title or image is not None)
    if failed:  # a usable card already there stays as it was, asked again in two weeks
        kept = await session.scalar(select(PreviewCard).where(
            PreviewCard.url == url, PreviewCard.failed.is_(False)).with_for_update())
        if kept is not None:
            kept.fetched_at = utcnow()
            await session.flush()
            return kept, None
    values: dict[str, Any] = {
        "type": found.type if image is not None else "link",
        "title": found.title, "description": found.description,
        "author_name": found.author_name, "author_url": found.author_url,
        "provider_name": found.provider_name, "provider_url": "",
        "image_remote_url": found.image_url, "image_key": key,
        "image_description": found.image_description if image is not None else "",
        "width": image.width if image is not None else 0,
        "height": image.height if image is not None else 0,
        "blurhash": image.blurhash if image is not None else None,
        "language": found.language, "published_at": found.published_at,
        "fetched_at": utcnow(),
        "failed": failed,
    }
    await session.execute(insert_ignoring_conflict(
        session, PreviewCard, {"id": new_id(), "url": url, **values}, ["url"]))
    before = await session.scalar(select(PreviewCard.image_key).where(PreviewCard.url == url)
                                  .with_for_update())  # two refreshes at once: each sees its own
    await session.execute(update(PreviewCard).where(PreviewCard.url == url).values(**values)
                          .execution_options(synchronize_session=False))
    card = await session.scalar(select(PreviewCard).where(PreviewCard.url == url)
                                .execution_options(populate_existing=True))
    assert card is not None
    return card, before if before != key else None


async def _link_of(session: AsyncSession, settings: Settings, status_id: int, *,
                   lock: bool = False) -> str | None:
    """The status's card URL as it is now (None: no such published status, no link, or
    an author whose domain's media are rejected — its attachments are links in its
    content). ``lock``: the status row is locked until the caller commits (PostgreSQL), so
    an edit cannot commit between this read and the card's attachment."""
    query = select(Status).where(Status.id == status_id).execution_options(populate_existing=True)
    status = await session.scalar(query.with_for_update() if lock else query)
    if status is None or not status.published or status.reblog_of_id is not None:
        return None
    author = await session.get(Account, status.account_id)
    if author is None or (author.domain and (await domain_policy(session, author.domain)).reject_media):
        return None
    mentioned = (await session.execute(select(Account.url, Account.uri).join(
        Mention, Mention.account_id == Account.id).where(Mention.status_id == status_id))).all()
    return first_link(status.content, local_domain=settings.domain,
                      skip_hrefs={href for row in mentioned for href in row if href})


async def card_for_status(session: AsyncSession, settings: Settings, storage: Storage,
                          client: httpx.AsyncClient, status_id: int) -> PreviewCard | None:
    """Make (or reuse) the card of the status's first link and attach it; the card, or
    None when the status gets none. Commits."""
    if not settings.link_cards:
        return None
    url = await _link_of(session, settings, status_id)
    shown = await session.scalar(select(StatusPreviewCard.url).where(
        StatusPreviewCard.status_id == status_id))
    if shown is not None and shown == url:
        return None  # it has its card (another job of an edit may have attached it)
    for _ in range(MAX_ROUNDS):
        if url is None or (await domain_policy(session, url)).suspended:
            return None
        card = await session.scalar(select(PreviewCard).where(PreviewCard.url == url))
        replaced = None
        if card is None or card.fetched_at <= utcnow() - REFRESH_AFTER:
            await session.commit()  # no read transaction held across the fetches
            card, replaced = await refresh_card(session, storage, client, url)
            await session.commit()
            if replaced is not None:
                await delete_quietly(storage, [replaced])
        if not _usable(card):
            return None
        assert card is not None
        now_linked = await _link_of(session, settings, status_id, lock=True)
        if now_linked != url:
            await session.commit()
            url = now_linked
            continue  # edited (or deleted) meanwhile: the new link's turn
        # The card the status shows is this one (an earlier job's, of an older link, goes).
        await session.execute(delete(StatusPreviewCard).where(
            StatusPreviewCard.status_id == status_id).execution_options(synchronize_session=False))
        try:
            await session.execute(insert_ignoring_conflict(
                session, StatusPreviewCard,
                {"status_id": status_id, "preview_card_id": card.id, "url": url}, ["status_id"]))
            await session.commit()
        except IntegrityError:  # the status was deleted meanwhile (SQLite: no row lock)
            await session.rollback()
            return None
        return card
    return None


@job_kind(FETCH_LINK_CARD_JOB, queue="federation", max_attempts=2,
          time_limit=timedelta(minutes=2))
async def fetch_link_card(ctx: JobContext) -> None:
    """Make the card of the status ``job.ref`` (a status id; ``<id>@<edit>`` after an edit
    that changed its link)."""
    from federation.context import federation_context  # the context imports the actor code

    context = federation_context(ctx.settings, ctx.db)
    await card_for_status(ctx.session, ctx.settings, context.storage, context.client,
                          int(ctx.job.ref.partition("@")[0]))
