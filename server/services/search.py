"""Search (``/api/v2/search``) over what this server holds: accounts, hashtags, statuses.

Mastodon 4.2 semantics, on the database alone (no search engine):
- a query that is the URL or URI of a local status or account finds exactly that thing
  (a status only if the viewer may see it);
- accounts: ``server.services.accounts.search_accounts`` (username or display name,
  ``@user@domain``; accounts Easel already knows, never fetched);
- hashtags: ``Tag`` rows whose normalised name starts with the query, shortest first;
- statuses: every word of the query, case-insensitively, in the status text, among the
  statuses Mastodon would let this viewer search: their own, those they favourited,
  bookmarked, boosted, replied to or were mentioned in, and public statuses of accounts
  that opted in (``indexable``). Anonymous viewers get no full-text results.

Nothing here reaches the network: resolving remote accounts or statuses arrives with
federation. Only local statuses are searched. This module never writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import parse_id
from server.models import Account, Bookmark, Favourite, Mention, Status, StatusTag, Tag
from server.services.accounts import listed_accounts, search_accounts
from server.services.timelines import tag_name
from server.services.visibility import visible_to
from server.urls import Urls

SEARCH_TYPES = ("accounts", "hashtags", "statuses")
# Local status web URLs are /@name/{id}; ActivityPub ids /users/{name}/statuses/{id}.
_STATUS_PATH_RE = re.compile(r"\A/(?:@([^/]+)|users/([^/]+)/statuses)/([0-9]{1,19})/?\Z")


@dataclass
class SearchResults:
    accounts: list[Account] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    hashtags: list[Tag] = field(default_factory=list)


@dataclass(frozen=True)
class SearchQuery:
    q: str
    type: str | None = None
    limit: int = 20
    offset: int = 0
    following: bool = False
    account_id: int | None = None
    # A given account_id that is not a number: no status can match it.
    account_id_invalid: bool = False


def _like_pattern(term: str) -> str:
    """``term`` with LIKE's wildcards escaped (escape character ``\\``)."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(column: Any, term: str) -> ColumnElement[bool]:
    """Case-insensitive substring test that reads the same on SQLite and PostgreSQL.

    ``lower()`` on both sides; SQLite's lower() folds ASCII only, so there non-ASCII
    capitals match only when written with the same case.
    """
    return func.lower(column).like(f"%{_like_pattern(term.lower())}%", escape="\\")


# ------------------------------------------------------------------------------- URLs

def _is_url(q: str) -> bool:
    return q.startswith(("https://", "http://"))


def local_status_path(url: str, urls: Urls) -> tuple[int, str] | None:
    """``(status id, author's username key)`` when ``url`` is one of this server's status
    paths (``/@user/ID``, ``/users/user/statuses/ID``), else None."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: not a URL of ours
        return None
    if f"{parts.scheme}://{parts.netloc}".lower() != urls.base.lower():
        return None
    match = _STATUS_PATH_RE.match(unquote(parts.path))
    status_id = parse_id(match.group(3)) if match else None
    if match is None or status_id is None:
        return None
    return status_id, (match.group(1) or match.group(2)).lower()


async def find_local_by_url(
    session: AsyncSession, q: str, *, viewer: Account | None, urls: Urls
) -> Status | Account | None:
    """The local status (visible to ``viewer``) or account a URL or URI names, if any."""
    status = await session.scalar(select(Status).where(
        Status.local.is_(True), or_(Status.uri == q, Status.url == q), visible_to(viewer)))
    if status is not None:
        return status
    local = local_status_path(q, urls)
    if local is not None:
        status_id, username = local
        status = await session.scalar(
            select(Status).join(Account, Account.id == Status.account_id).where(
                Status.id == status_id, Status.local.is_(True),
                Account.username_key == username, Account.domain == "", visible_to(viewer)))
        if status is not None:
            return status
    return await session.scalar(select(Account).where(
        Account.domain == "", or_(Account.uri == q, Account.url == q), listed_accounts()))


# --------------------------------------------------------------------------- hashtags

async def search_hashtags(session: AsyncSession, q: str, *, limit: int, offset: int) -> list[Tag]:
    """Tags whose name starts with ``q`` (normalised, ``#`` dropped), shortest first —
    only tags some published public or unlisted status uses, so a tag written only in a
    draft or a private message is not revealed by its name."""
    term = tag_name(q)
    if not term:
        return []
    in_public_use = exists().where(
        StatusTag.tag_id == Tag.id, Status.id == StatusTag.status_id, Status.published.is_(True),
        Status.visibility.in_(("public", "unlisted")))
    query = (select(Tag).where(Tag.name.like(f"{_like_pattern(term)}%", escape="\\"), in_public_use)
             .order_by(func.length(Tag.name), Tag.name).limit(limit).offset(offset))
    return list(await session.scalars(query))


# --------------------------------------------------------------------------- statuses

def searchable_by(viewer: Account) -> ColumnElement[bool]:
    """The statuses Mastodon lets ``viewer`` full-text search (``Status#searchable_by``
    plus the public statuses of indexable accounts)."""
    indexable_author = exists().where(Account.id == Status.account_id, Account.indexable.is_(True))
    mine_replied = select(Status.in_reply_to_id).where(
        Status.account_id == viewer.id, Status.in_reply_to_id.is_not(None)).correlate(None)
    mine_boosted = select(Status.reblog_of_id).where(
        Status.account_id == viewer.id, Status.reblog_of_id.is_not(None)).correlate(None)
    return or_(
        Status.account_id == viewer.id,
        exists().where(Favourite.status_id == Status.id, Favourite.account_id == viewer.id),
        exists().where(Bookmark.status_id == Status.id, Bookmark.account_id == viewer.id),
        exists().where(Mention.status_id == Status.id, Mention.account_id == viewer.id),
        Status.id.in_(mine_replied),
        Status.id.in_(mine_boosted),
        and_(Status.visibility == "public", indexable_author),
    )


async def search_statuses(
    session: AsyncSession, q: str, *, viewer: Account, limit: int, offset: int,
    account_id: int | None = None,
) -> list[Status]:
    """Local statuses (not boosts) containing every word of ``q``, newest first."""
    terms = q.split()
    if not terms:
        return []
    query = select(Status).where(
        Status.local.is_(True), Status.reblog_of_id.is_(None), visible_to(viewer),
        searchable_by(viewer), *(_contains(Status.text, term) for term in terms))
    if account_id is not None:
        query = query.where(Status.account_id == account_id)
    query = query.order_by(Status.id.desc()).limit(limit).offset(offset)
    return list(await session.scalars(query))


# ------------------------------------------------------------------------------ search

def _wants(query: SearchQuery, kind: str) -> bool:
    return query.type is None or query.type == kind


async def search(
    session: AsyncSession, query: SearchQuery, *, viewer: Account | None, urls: Urls
) -> SearchResults:
    """Mastodon's SearchService on local data. ``query.type`` fills one list only (an
    unknown type fills none); the offset applies only with a type, as in Mastodon."""
    results = SearchResults()
    q = query.q.strip()
    if not q or query.limit <= 0 or (query.type is not None and query.type not in SEARCH_TYPES):
        return results
    offset = query.offset if query.type is not None else 0

    if _is_url(q):
        if offset > 0:
            return results
        found = await find_local_by_url(session, q, viewer=viewer, urls=urls)
        if isinstance(found, Status) and _wants(query, "statuses"):
            results.statuses = [found]
        elif isinstance(found, Account) and _wants(query, "accounts"):
            results.accounts = [found]
        if found is not None:
            return results

    if _wants(query, "accounts") and not (q.startswith("#") or ("@" in q and " " in q)):
        results.accounts = await search_accounts(
            session, q, viewer=viewer, limit=query.limit, offset=offset,
            following=query.following, local_domain=urls.domain)
    if (_wants(query, "statuses") and viewer is not None and not query.account_id_invalid
            and not ("@" in q and " " not in q)):
        results.statuses = await search_statuses(
            session, q, viewer=viewer, limit=query.limit, offset=offset,
            account_id=query.account_id)
    if _wants(query, "hashtags") and "@" not in q:
        results.hashtags = await search_hashtags(session, q, limit=query.limit, offset=offset)
    return results

