"""What ``resolve=true`` adds to search: remote accounts and statuses fetched on demand.

Why it exists: a person pastes ``@carol@mastodon.example``, a profile URL or a post's URL
into their app's search box to follow or answer it. Mastodon's ``ResolveURLService`` and
``ResolveAccountService`` turn that into a stored account or status; this module does the
same, for authenticated searches only (the API enforces that), under the federation rules:

* ``user@host[:port]`` and ``@user@host[:port]`` → WebFinger and the actor
  (:meth:`ActorFetcher.resolve_handle`, which confirms the handle);
* an ``http(s)`` URL → a status or account Easel already has under that uri (or web url),
  else the document fetched with AS2 content negotiation (:func:`fetch_object`: signed,
  origin rule — a Mastodon ``/@user/123`` web URL answers with a Note whose id, on the
  same origin, is then fetched once; a profile URL ``/@user`` likewise answers with the
  actor): an actor is stored through the actor fetcher, a note through
  :func:`federation.notes.store_fetched_note`, then committed;
* a status is returned only when the viewer may see it;
* queries for this server's own domain are left to the local search; suspended domains
  are never asked;
* every failure — unreachable, refused, not found, not an actor or note, too slow
  (:data:`RESOLVE_TIMEOUT` seconds in all) — is "nothing found", never an error.

What it must never do: raise to the API, fetch for an anonymous viewer (the caller's
job), or keep a half-stored note (the session is rolled back on any failure).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.actors import ActorError
from federation.context import FederationContext
from federation.domains import is_suspended
from federation.http import FetchError
from federation.notes import NoteError, find_status_by_uri, store_fetched_note
from federation.objects import ObjectError, fetch_object, is_own
from federation.parse import ACTOR_TYPES, NOTE_TYPES, same_origin
from federation.webfinger import Handle, InvalidHandle, parse_handle
from server.models import Account, Status
from server.services.visibility import can_see

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT = 15.0  # seconds for one search's remote lookups, all hops included


@dataclass(frozen=True)
class Resolution:
    """``handled``: the query named something remote (a handle or a URL of another
    server), so resolve took charge of it; ``found``: what it found, if anything."""

    handled: bool
    found: Account | Status | None = None


NOT_HANDLED = Resolution(handled=False)


def is_url(q: str) -> bool:
    return q.startswith(("https://", "http://")) and not any(c.isspace() for c in q)


def remote_handle(q: str, own_domain: str) -> Handle | None:
    """``q`` as a handle of another server, or None (not a handle, or one of ours)."""
    if "@" not in q or any(c.isspace() for c in q) or "/" in q:
        return None
    try:
        handle = parse_handle(q)
    except InvalidHandle:
        return None
    return None if handle.host == own_domain.lower() else handle


async def resolve_query(fed: FederationContext, session: AsyncSession, q: str, *,
                        viewer: Account) -> Resolution:
    """Resolve a search query remotely: a handle or a URL of another server."""
    q = q.strip()
    handle = remote_handle(q, fed.settings.domain)
    if handle is None and not (is_url(q) and not is_own(fed, q)):
        return NOT_HANDLED
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            if handle is not None:
                found: Account | Status | None = await resolve_handle(fed, session, handle)
            else:
                found = await resolve_url(fed, session, q, viewer=viewer)
    except TimeoutError:
        log.info("search: resolving %r took more than %s s", q, RESOLVE_TIMEOUT)
        await session.rollback()
        found = None
    return Resolution(handled=True, found=found)


async def resolve_handle(fed: FederationContext, session: AsyncSession,
                         handle: Handle | str) -> Account | None:
    """The remote account for ``user@host[:port]``, fetched if needed; None on failure."""
    if isinstance(handle, str):
        try:
            handle = parse_handle(handle)
        except InvalidHandle:
            return None
    if handle.host == fed.settings.domain.lower() or await is_suspended(session, handle.host):
        return None
    try:
        account = await fed.fetcher.resolve_handle(handle)
    except (ActorError, FetchError) as exc:
        log.info("search: %s not resolved: %s", handle, exc)
        return None
    return await session.get(Account, account.id, populate_existing=True)


async def known_remote_account(session: AsyncSession, url: str) -> Account | None:
    """A remote account stored under ``url`` as its uri, or as its web url on its own
    origin (no account can claim another server's profile address)."""
    candidates = list(await session.scalars(select(Account).where(
        Account.domain != "", or_(Account.uri == url, Account.url == url)).limit(8)))
    for account in candidates:
        if account.uri == url:
            return account
    for account in candidates:
        if same_origin(account.url, account.uri):
            return account
    return None


async def resolve_url(fed: FederationContext, session: AsyncSession, url: str, *,
                      viewer: Account) -> Account | Status | None:
    """The remote account or status at ``url`` (stored, fetched if needed, committed)
    that ``viewer`` may see; None for anything else."""
    if is_own(fed, url) or await is_suspended(session, url):
        return None
    status = await find_status_by_uri(session, url)
    if status is not None:
        return status if await can_see(session, status, viewer) else None
    account = await known_remote_account(session, url)
    if account is not None:
        return account
    try:
        document = await fetch_object(fed, url, session=session)
        kind = document.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if isinstance(k, str)), None)
        if kind in ACTOR_TYPES:
            actor = await fed.fetcher.fetch_actor(str(document["id"]))
            return await session.get(Account, actor.id, populate_existing=True)
        if kind in NOTE_TYPES:
            status = await store_fetched_note(fed, session, document)
            await session.commit()
            return status if await can_see(session, status, viewer) else None
    except (ObjectError, ActorError, NoteError, FetchError) as exc:
        log.info("search: %s not resolved: %s", url, exc)
        await session.rollback()
    return None
