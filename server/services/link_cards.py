"""Which link of a status gets a preview card, and when the card is (re)made.

Why it exists: a status that links to a web page shows a card for it (Mastodon's
PreviewCard). The page is fetched by the ``fetch_link_card`` job
(:mod:`federation.link_cards`); this module holds the rules services need without
importing ``federation``: which link counts (:func:`first_link`), queueing the job when a
status is published here or stored from another server (:func:`queue_link_card`), and,
after an edit, dropping the card and queueing the job again when the first link changed
(:func:`link_changed`). As Mastodon (``FetchLinkCardService``, ``LinkCrawlWorker``), every
published status is considered — with media, a poll or a content warning alike (clients
decide whether to show the card); a boost shows its original's card.

The link is the first ``<a href>`` of the content that is http(s), not a mention or a
hashtag (``rel="tag"``, or a class ``mention``, ``hashtag``, ``u-url`` or ``h-card``), not
the url of an account the status mentions and not on this server. Its fragment is dropped
(the page is the same); a link over :data:`MAX_URL_BYTES` is ignored.

What it must never do: import ``federation`` or fetch anything (the job does).
"""

from __future__ import annotations

from collections.abc import Iterable
from html.parser import HTMLParser
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import Status, StatusPreviewCard
from server.queue.jobs import enqueue
from server.queue.kinds import kind_named

FETCH_LINK_CARD_JOB = "fetch_link_card"  # federation/link_cards.py
# Cards are keyed by URL in a unique index; Mastodon keeps URLs under 2692 bytes for it.
MAX_URL_BYTES = 2048
_SKIPPED_CLASSES = frozenset({"mention", "hashtag", "u-url", "h-card"})


class _Links(HTMLParser):
    """The ``(href, classes, rel)`` of every ``<a>``, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, set[str], set[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        values = {name: value or "" for name, value in attrs}
        href = values.get("href", "").strip()
        if href:
            self.links.append((href, set(values.get("class", "").lower().split()),
                               set(values.get("rel", "").lower().split())))


def normalized_link(href: str) -> str | None:
    """``href`` as a card's URL (http(s), a host, no credentials, no fragment, not too
    long), or None."""
    try:
        parts = urlsplit(href.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    url = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/",
                      parts.query, ""))
    return url if len(url.encode("utf-8")) <= MAX_URL_BYTES else None


def _is_local(url: str, local_domain: str) -> bool:
    """Whether ``url`` is on this server (``local_domain``: its host, or host:port)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = parts.port or default
    return local_domain in (f"{host}:{port}", host if port == default else None)


def first_link(content: str, *, local_domain: str | None = None,
               skip_hrefs: Iterable[str] = ()) -> str | None:
    """The URL a card is made for: the content's first link that is not a mention, a
    hashtag, one of ``skip_hrefs`` (the mentioned accounts' urls) or on ``local_domain``
    (this server's host[:port]); None when there is none."""
    if "<a" not in content:
        return None
    parser = _Links()
    try:
        parser.feed(content)
        parser.close()
    except (AssertionError, ValueError):  # malformed markup: what was read so far counts
        pass
    skipped = set(skip_hrefs)
    local = local_domain.lower() if local_domain else None
    for href, classes, rel in parser.links:
        if "tag" in rel or classes & _SKIPPED_CLASSES or href in skipped:
            continue
        url = normalized_link(href)
        if url is None:
            continue
        if local is not None and _is_local(url, local):
            continue
        return url
    return None


async def queue_link_card(session: AsyncSession, status: Status) -> None:
    """Queue the card of a status just published or stored (the caller commits): nothing
    when its content has no link. The job checks the rest (``EASEL_LINK_CARDS``, this
    server's own links, mentions, domain blocks)."""
    if status.reblog_of_id is not None or first_link(status.content) is None:
        return
    await enqueue(session, kind_named(FETCH_LINK_CARD_JOB), str(status.id))


async def link_changed(session: AsyncSession, status: Status, before_content: str) -> None:
    """After an edit of a published status (not committed): when its first link is not
    the one it had, its card goes and the job runs again for the new one (as Mastodon's
    ``reset_preview_card!``)."""
    link = first_link(status.content)
    if first_link(before_content) == link:
        return
    await session.execute(delete(StatusPreviewCard).where(StatusPreviewCard.status_id == status.id)
                          .execution_options(synchronize_session=False))
    if status.reblog_of_id is None and link is not None:
        # A job of its own per edit: the status's first job may be running right now (a
        # running job is not queued again), and would not see this edit if it has read it.
        edit = int(utcnow().timestamp() * 1000)
        await enqueue(session, kind_named(FETCH_LINK_CARD_JOB), f"{status.id}@{edit}")
