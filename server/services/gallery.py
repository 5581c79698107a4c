"""What the public web pages show, read in a few batched queries.

The portfolio service (``server.services.portfolio``) decides *which* works a page lists
(browse, an artist's portfolio, projects, pins) and the timelines service which statuses
carry a hashtag; this module turns a list of statuses into what a page draws — the
author, the public renditions of each image with their sizes and blurhash, links to its
other attachments (video, audio), the portfolio metadata, the hashtags — with one query
per kind of thing, never one per work.

Only public renditions are ever named here (``file_key``/``small_key`` of ready media,
or a remote server's own URL): never an original, and nothing about whether an image was
perturbed (``media.protection`` and ``meta["protection"]`` stay private to the owner).
Pages are public: every read here is what an anonymous visitor may see.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from server.ids import parse_id
from server.models import (
    Account,
    MediaAttachment,
    MediaState,
    PortfolioTag,
    PortfolioTagAlias,
    PreviewCard,
    Project,
    Status,
    StatusPreviewCard,
    StatusTag,
    Tag,
)
from server.services import portfolio, timelines
from server.services.accounts import listed_accounts
from server.services.domain_blocks import domain_suspended
from server.services.portfolio import WorkView, work_metadata
from server.services.statuses import current_id
from server.services.visibility import visible_to
from server.storage import Storage
from server.urls import source_of

T = TypeVar("T")

# A project page shows at most this many of its works (in the project's order).
MAX_PROJECT_WORKS_SHOWN = 120
# Characters of a post's text a card shows (as plain text: a card is one link).
CARD_TEXT_LIMIT = 200
# What a non-image attachment is called on a page, by its type.
ATTACHMENT_KINDS = {"video": "Video", "gifv": "Video", "audio": "Audio"}


def parse_page_id(raw: str | None) -> int | None:
    """A status id or cursor from a URL, or None when it is not one (a page answers 404
    or ignores the cursor; never a 500 for ``abc`` or a 30-digit number)."""
    value = parse_id(raw)
    return value if value else None


@dataclass(frozen=True)
class ImageView:
    """One image of a work as the public sees it."""

    id: int
    description: str
    url: str                  # the full public rendition (or the remote server's URL)
    width: int | None
    height: int | None
    small_url: str | None     # the smaller rendition, when there is one
    small_width: int | None
    small_height: int | None
    blurhash: str | None
    remote: bool

    @property
    def preview_url(self) -> str:
        return self.small_url or self.url

    @property
    def preview_width(self) -> int | None:
        return self.small_width if self.small_url else self.width

    @property
    def preview_height(self) -> int | None:
        return self.small_height if self.small_url else self.height

    @property
    def srcset(self) -> str:
        """``small 400w, full 1600w`` when both widths are known; "" otherwise."""
        if self.small_url and self.small_width and self.width and self.small_url != self.url:
            return f"{self.small_url} {self.small_width}w, {self.url} {self.width}w"
        return ""


@dataclass(frozen=True)
class AttachmentLink:
    """An attachment a page does not show as an image (a video, an audio file, a remote
    file of unknown type): a link to where it lives."""

    url: str
    kind: str  # "Video", "Audio" or "Attachment"
    description: str

    @property
    def text(self) -> str:
        return self.description or self.url


def text_of(content_html: str, limit: int = CARD_TEXT_LIMIT) -> str:
    """Plain text of sanitised HTML, shortened to ``limit`` characters (descriptions,
    ``og:description``, the text of a card)."""
    spaced = re.sub(r"<(?:br|/p|/li|/h\d)\b[^>]*>", " ", content_html, flags=re.IGNORECASE)
    text = html.unescape(re.sub(r"<[^>]+>", "", spaced))
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass
class WorkCard:
    """A status as a page draws it: author, images, other attachments (as links),
    portfolio data, hashtags."""

    status: Status
    account: Account
    images: list[ImageView]
    work: WorkView | None
    hashtags: list[Tag] = field(default_factory=list)
    links: list[AttachmentLink] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.work.title if self.work is not None and self.work.title else ""

    @property
    def cover(self) -> ImageView | None:
        return self.images[0] if self.images else None

    @property
    def ai_generated(self) -> bool:
        return self.work is not None and self.work.ai_generated

    @property
    def covered(self) -> bool:
        """Whether its images open only with a click: marked sensitive, or behind a
        content warning (which folds the whole post)."""
        return bool(self.status.sensitive or self.status.spoiler_text)

    @property
    def excerpt(self) -> str:
        """The post's text as a card shows it: plain and short (never its HTML, whose
        links would nest inside the card's own link)."""
        return text_of(self.status.content or "")

    @property
    def links_badge(self) -> str:
        """``1 video``, ``2 audio files``, ``3 attachments``: what a card says of its links."""
        if not self.links:
            return ""
        kinds = {link.kind for link in self.links}
        word = {"Video": "video", "Audio": "audio file"}.get(kinds.pop(), "attachment") \
            if len(kinds) == 1 else "attachment"
        count = len(self.links)
        return f"{count} {word}" + ("" if count == 1 else "s")


def _size(meta: dict[str, Any], name: str) -> tuple[int | None, int | None]:
    entry = meta.get(name) if isinstance(meta, dict) else None
    if not isinstance(entry, dict):
        return None, None
    width, height = entry.get("width"), entry.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    return None, None


def image_view(media: MediaAttachment, storage: Storage) -> ImageView | None:
    """The public face of one attachment, or None when it has none (not ready, not an
    image, or a local file without a rendition). A "gifv" is a video (Mastodon's looping
    MP4), not something an ``<img>`` can show: it is one of the links."""
    if media.state != MediaState.READY or media.type != "image":
        return None
    meta = media.meta or {}
    width, height = _size(meta, "original")
    small_width, small_height = _size(meta, "small")
    if media.file_key:
        url = storage.public_url(media.file_key)
        small_url = storage.public_url(media.small_key) if media.small_key else None
        remote = False
    elif media.remote_url and media.remote_url.startswith(("https://", "http://")):
        url, small_url, remote = media.remote_url, None, True
    else:
        return None
    if small_url is None:
        small_width = small_height = None
    return ImageView(id=media.id, description=media.description or "", url=url, width=width,
                     height=height, small_url=small_url, small_width=small_width,
                     small_height=small_height, blurhash=media.blurhash, remote=remote)


def attachment_link(media: MediaAttachment, storage: Storage) -> AttachmentLink | None:
    """A non-image attachment (video, gifv, audio, unknown) as a link to its origin (a
    remote server's URL; a ready local file's public URL), or None when it has none. The
    page links out rather than plays: a player would need the CSP's media-src."""
    if media.type == "image":
        return None
    if media.remote_url and media.remote_url.startswith(("https://", "http://")):
        url = media.remote_url
    elif media.file_key and media.state == MediaState.READY:
        url = storage.public_url(media.file_key)
    else:
        return None
    return AttachmentLink(url=url, kind=ATTACHMENT_KINDS.get(media.type, "Attachment"),
                          description=media.description or "")


def image_origins(cards: Sequence[WorkCard], accounts: Sequence[Account] = ()) -> set[str]:
    """The other servers the images on a page come from (for the page's CSP img-src)."""
    urls = [image.url for card in cards for image in card.images if image.remote]
    for account in accounts:
        urls += [u for u in (account.avatar_remote_url, account.header_remote_url)
                 if u and not account.is_local]
    # Only web origins that can be written into the header safely (a remote URL like
    # "https://x@a.example;sandbox/…" must not add a directive to the policy).
    return {source for url in urls
            if urlsplit(url).scheme in ("https", "http") and (source := source_of(url))}


async def cards(session: AsyncSession, statuses: Sequence[Status], storage: Storage, *,
                with_hashtags: bool = False) -> list[WorkCard]:
    """Cards for ``statuses`` in their order, in at most four queries; statuses whose author
    may not be shown (a disabled or unapproved local account) are left out."""
    if not statuses:
        return []
    ids = [s.id for s in statuses]
    account_ids = {s.account_id for s in statuses}
    accounts = {a.id: a for a in await session.scalars(
        select(Account).where(Account.id.in_(account_ids), listed_accounts()))}
    images: dict[int, list[ImageView]] = defaultdict(list)
    links: dict[int, list[AttachmentLink]] = defaultdict(list)
    for media in await session.scalars(
            select(MediaAttachment).where(MediaAttachment.status_id.in_(ids))
            .order_by(MediaAttachment.status_id, MediaAttachment.id)):
        assert media.status_id is not None
        view = image_view(media, storage)
        if view is not None:
            images[media.status_id].append(view)
        elif (link := attachment_link(media, storage)) is not None:
            links[media.status_id].append(link)
    works = await work_metadata(session, ids)
    tags: dict[int, list[Tag]] = defaultdict(list)
    if with_hashtags:
        for status_id, tag in (await session.execute(
                select(StatusTag.status_id, Tag).join(Tag, Tag.id == StatusTag.tag_id)
                .where(StatusTag.status_id.in_(ids)).order_by(Tag.name))).all():
            tags[status_id].append(tag)
    return [WorkCard(status=s, account=accounts[s.account_id], images=images.get(s.id, []),
                     work=works.get(s.id), hashtags=tags.get(s.id, []),
                     links=links.get(s.id, []))
            for s in statuses if s.account_id in accounts]


async def find_account_by_acct(session: AsyncSession, acct: str,
                               local_domain: str = "") -> Account | None:
    """A listed account by ``name`` or ``name@local_domain`` (local: the handle its page
    shows) or ``name@domain`` (remote, known here)."""
    acct = acct.strip().lstrip("@")
    username, _, domain = acct.partition("@")
    if not username or len(acct) > 512:
        return None
    if local_domain and domain.lower() == local_domain.lower():
        domain = ""
    query = select(Account).where(Account.username_key == username.lower(), listed_accounts())
    if domain:
        if await _suspended(session, domain.lower()):
            return None
        query = query.where(Account.domain == domain.lower())
    else:
        query = query.where(Account.domain == "")
    found: Account | None = await session.scalar(query)
    return found


async def _suspended(session: AsyncSession, domain: str) -> bool:
    """Whether the most specific block covering ``domain`` is a suspension (its artists'
    pages are not shown here; a silence only keeps them out of public lists; in allowlist
    mode a domain not allowed counts as suspended)."""
    return await domain_suspended(session, domain)


async def public_work(session: AsyncSession, account: Account, status_id: int) -> Status | None:
    """``account``'s status ``status_id`` if anyone may see it (public or unlisted,
    published) and it is an original post, else None."""
    found: Status | None = await session.scalar(select(Status).where(
        Status.id == status_id, Status.account_id == account.id, Status.reblog_of_id.is_(None),
        visible_to(None)))
    return found


async def moved_work_id(session: AsyncSession, account: Account, status_id: int) -> int | None:
    """The id ``account``'s work has now if ``status_id`` is its first id (a work posted
    while its images were processing gets a new id when published) and anyone may see it
    under the new one; None otherwise."""
    moved = await current_id(session, status_id)
    if moved == status_id or await public_work(session, account, moved) is None:
        return None
    return moved


async def public_statuses(session: AsyncSession, ids: Sequence[int]) -> list[Status]:
    """The statuses among ``ids`` anyone may see, in the order of ``ids``."""
    if not ids:
        return []
    found = {s.id: s for s in await session.scalars(
        select(Status).where(Status.id.in_(set(ids)), visible_to(None)))}
    return [found[i] for i in dict.fromkeys(ids) if i in found]


# ------------------------------------------------------------------------------ pages

@dataclass(frozen=True)
class NewestFirst:
    """A page of a list newest first below ``max_id`` (the ``Paging`` the timelines
    service takes; the web pages page only backwards)."""

    max_id: int | None
    limit: int

    def apply(self, query: Select[Any], column: InstrumentedAttribute[int]) -> Select[Any]:
        if self.max_id is not None:
            query = query.where(column < self.max_id)
        return query.order_by(column.desc()).limit(self.limit)

    def arrange(self, rows: Sequence[T]) -> list[T]:
        return list(rows)


@dataclass
class Listing:
    """A page of cards and the cursor of the next (older) page, if there may be one."""

    cards: list[WorkCard]
    next_max_id: int | None


def _listing(statuses: Sequence[Status], page_cards: list[WorkCard], limit: int) -> Listing:
    return Listing(page_cards, statuses[-1].id if len(statuses) >= limit else None)


async def recent_works(session: AsyncSession, storage: Storage, *, max_id: int | None,
                       limit: int) -> Listing:
    """The instance's newest local works anyone may browse (public, published, with
    images, not labelled AI-generated)."""
    statuses = await portfolio.browse(session, None, {}, local=True, max_id=max_id, limit=limit)
    return _listing(statuses, await cards(session, statuses, storage), limit)


async def browse_works(session: AsyncSession, storage: Storage, filters: dict[str, list[str]],
                       *, local: bool | None, max_id: int | None, limit: int) -> Listing:
    """Works matching ``filters`` (AND across kinds, OR within one), local and remote."""
    statuses = await portfolio.browse(session, None, filters, local=local, max_id=max_id,
                                      limit=limit)
    return _listing(statuses, await cards(session, statuses, storage), limit)


@dataclass
class ProjectCard:
    project: Project
    cover: WorkCard | None
    work_count: int


@dataclass
class Portfolio:
    account: Account
    pinned: list[WorkCard]
    works: Listing
    projects: list[ProjectCard]
    project: ProjectCard | None  # the project shown instead of the works, if one was asked


async def artist_portfolio(session: AsyncSession, storage: Storage, account: Account, *,
                           max_id: int | None, limit: int,
                           project_id: int | None = None) -> Portfolio | None:
    """An artist's page: pinned works and projects with their covers (first page only),
    and a page of their other works — or, with ``project_id``, that project's works in
    its order (None when the account has no such project anyone may see)."""
    later_page = max_id is not None and project_id is None
    projects = [] if later_page else await portfolio.projects_of(session, None, account.id)
    chosen = next((p for p in projects if p.project.id == project_id), None)
    if project_id is not None and chosen is None:
        return None
    if chosen is not None:
        pinned: list[Status] = []
        page = await public_statuses(session, chosen.work_ids[:MAX_PROJECT_WORKS_SHOWN])
        next_max_id = None
    else:
        pinned, page = await portfolio.portfolio(session, None, account, max_id=max_id,
                                                 limit=limit)
        next_max_id = page[-1].id if len(page) >= limit else None
    cover_ids = [p.cover_id for p in projects if p.cover_id is not None]
    covers = await public_statuses(session, cover_ids)
    everything = await cards(session, [*pinned, *page, *covers], storage)
    by_id = {card.status.id: card for card in everything}
    project_cards = [ProjectCard(p.project, by_id.get(p.cover_id) if p.cover_id else None,
                                 len(p.work_ids)) for p in projects]
    return Portfolio(
        account=account,
        pinned=[by_id[s.id] for s in pinned if s.id in by_id],
        works=Listing([by_id[s.id] for s in page if s.id in by_id], next_max_id),
        projects=project_cards,
        project=next((c for c in project_cards if chosen and c.project.id == chosen.project.id),
                     None))


async def work_card(session: AsyncSession, storage: Storage, account: Account,
                    status_id: int) -> WorkCard | None:
    """One of ``account``'s statuses as its public page shows it, or None (not there,
    not public or unlisted, not published, or a boost)."""
    status = await public_work(session, account, status_id)
    if status is None:
        return None
    found = await cards(session, [status], storage, with_hashtags=True)
    return found[0] if found else None


@dataclass(frozen=True)
class TermMatch:
    kind: str
    name: str


async def terms_named(session: AsyncSession, name: str) -> list[TermMatch]:
    """The portfolio terms (of any kind) that a hashtag names, by key or alias."""
    key = portfolio.normalise_key(name)
    if not key:
        return []
    found = {(t.kind, t.name) for t in await session.scalars(
        select(PortfolioTag).where(PortfolioTag.key == key))}
    found |= {(t.kind, t.name) for t in await session.scalars(
        select(PortfolioTag).join(PortfolioTagAlias, PortfolioTagAlias.tag_id == PortfolioTag.id)
        .where(PortfolioTagAlias.key == key, PortfolioTagAlias.kind == PortfolioTag.kind))}
    order = {kind: i for i, kind in enumerate(portfolio.KINDS)}
    return [TermMatch(kind, term) for kind, term in sorted(found, key=lambda f: order[f[0]])]


@dataclass
class TagPage:
    name: str
    terms: list[TermMatch]
    listing: Listing


async def tag_page(session: AsyncSession, storage: Storage, name: str, *,
                   max_id: int | None, limit: int) -> TagPage:
    """Public statuses with the hashtag ``name`` (local and remote, as the tag timeline),
    merged with the works of the portfolio terms it names (a term's works are hashtagged
    too, but an alias or another spelling finds more)."""
    page = NewestFirst(max_id, limit)
    statuses = list(await timelines.tag_timeline(session, page, name))
    terms = await terms_named(session, name)
    for term in terms:
        statuses += await portfolio.browse(session, None, {term.kind: [term.name]},
                                           max_id=max_id, limit=limit)
    merged = sorted({s.id: s for s in statuses}.values(), key=lambda s: s.id, reverse=True)[:limit]
    return TagPage(name, terms, _listing(merged, await cards(session, merged, storage), limit))


@dataclass(frozen=True)
class LinkCardView:
    """The preview card of a work's first link, as its page shows it (a link out)."""

    url: str
    title: str
    description: str
    provider: str
    image_url: str | None  # our small copy; None for a sensitive work or a card without one
    image_description: str
    width: int
    height: int


DESCRIPTION_LIMIT = 300  # characters of a card's description on a page


async def link_card(session: AsyncSession, storage: Storage, status: Status) -> LinkCardView | None:
    """The card a status shows (``federation.link_cards`` made it), or None: no link, not
    fetched yet, or nothing to show (a failed fetch)."""
    card = await session.scalar(select(PreviewCard).join(
        StatusPreviewCard, StatusPreviewCard.preview_card_id == PreviewCard.id).where(
        StatusPreviewCard.status_id == status.id, PreviewCard.failed.is_(False)))
    if card is None or not card.url.startswith(("https://", "http://")):
        return None
    description = card.description
    if len(description) > DESCRIPTION_LIMIT:
        description = description[:DESCRIPTION_LIMIT - 1].rstrip() + "…"
    image_url = (storage.public_url(card.image_key)
                 if card.image_key and not status.sensitive else None)
    return LinkCardView(url=card.url, title=card.title, description=description,
                        provider=card.provider_name or (urlsplit(card.url).hostname or ""),
                        image_url=image_url, image_description=card.image_description,
                        width=card.width, height=card.height)
