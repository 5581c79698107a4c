"""Fetching one ActivityStreams object (a Note, an actor, anything) from its origin.

Why it exists: an inbox handler that may not trust an embedded object (forwarded, or from
another origin), a reply whose parent is unknown, and search with ``resolve=true`` all need
"the document at this URL, as its own server says it is". :func:`fetch_object` is that one
place, with the same rules :class:`federation.actors.ActorFetcher` applies to actors:

* the GET is signed (draft-cavage) by the instance actor — the fetcher's own signer is
  reused — so servers in authorized-fetch mode answer; it goes through the safe client
  (``fed.client``: pinned addresses, redirects checked hop by hop, time capped);
* only AS2 content types are accepted (``application/activity+json`` and
  ``application/ld+json`` with the AS2 profile; plain ``application/json`` is refused), and
  the body is capped at :data:`MAX_OBJECT_BYTES`;
* DESIGN.md's origin rule: the document's ``id`` must be the URL asked for; if it differs
  but is on the same origin (scheme, host, port) — Mastodon answers its ``/@user/123`` web
  URL with the Note whose id is ``/users/user/statuses/123`` — the id is fetched once more
  and accepted only when that document names itself; an id on another origin is refused;
* a redirect may stay on the origin asked (``/notes/1`` → ``/notes/1/``), but a document
  whose final URL, after redirects, is on another origin is refused whatever its ``id``
  says (``reason="redirected"``): the server that answered is not the one the id names,
  so it cannot vouch for it (Mastodon's CVE-2024-23832). The final URL is therefore on
  the same domain as the one asked, so the domain-block check below holds for it too;
* a suspended domain (``federation.domains``) is refused without any request, and so is
  Easel's own domain (local objects are read from the database, never fetched).

Errors (each carries ``uri``)::

    ObjectError
    ├── ObjectGone         410 Gone
    ├── ObjectNotFound     404
    ├── ObjectUnavailable  network, timeout, 5xx, size, content type: may pass, retry later
    └── ObjectRefused      may never be used (.reason): bad URL, own or suspended domain,
                           forbidden address, origin rule, redirected elsewhere, no id

This module never stores anything and never interprets the document beyond its ``id``:
parsing and trust decisions about its contents (attribution, type) belong to the caller.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from federation.content_types import ACTIVITY_JSON, LD_JSON_AS2
from federation.context import FederationContext
from federation.domains import domain_of, is_suspended
from federation.http import (
    DEFAULT_MAX_JSON_BYTES,
    FetchError,
    ForbiddenAddress,
    ForbiddenURL,
    RemoteStatusError,
    fetch_json,
)
from federation.parse import same_origin

OBJECT_ACCEPT: tuple[str, ...] = (ACTIVITY_JSON, LD_JSON_AS2)
MAX_OBJECT_BYTES = DEFAULT_MAX_JSON_BYTES  # 1 MiB: far above any real Note
OBJECT_FETCH_TIMEOUT = 20.0                # seconds for one GET, redirects included


class ObjectError(Exception):
    """The object at ``uri`` could not be had."""

    def __init__(self, message: str, *, uri: str) -> None:
        super().__init__(message)
        self.uri = uri


class ObjectGone(ObjectError):
    """410 Gone: the object was deleted."""


class ObjectNotFound(ObjectError):
    """404 (or a status that says the object is not there for us)."""


class ObjectUnavailable(ObjectError):
    """A failure that may pass (network, timeout, 5xx, size, content type)."""


class ObjectRefused(ObjectError):
    """The URL or the document may not be used; ``reason`` is a short stable code."""

    def __init__(self, message: str, *, uri: str, reason: str) -> None:
        super().__init__(message, uri=uri)
        self.reason = reason


def _checked_url(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise ObjectRefused(f"not a URL: {url!r}", uri=str(url), reason="bad_url")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ObjectRefused(f"not a URL: {url!r}", uri=url, reason="bad_url") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ObjectRefused(f"not an http(s) URL: {url!r}", uri=url, reason="bad_url")
    return url


def is_own(fed: FederationContext, url: str) -> bool:
    """Whether ``url`` is on this server's own domain."""
    return domain_of(url) == fed.settings.domain.lower()


async def _refuse_blocked(fed: FederationContext, session: AsyncSession | None, url: str) -> None:
    if is_own(fed, url):
        raise ObjectRefused(f"{url} is on this server's own domain", uri=url, reason="own_domain")
    if session is not None:
        suspended = await is_suspended(session, url)
    else:
        async with fed.db.session() as own_session:
            suspended = await is_suspended(own_session, url)
    if suspended:
        raise ObjectRefused(f"{domain_of(url)} is suspended", uri=url, reason="suspended")


async def _get(fed: FederationContext, url: str) -> dict[str, Any]:
    """One signed GET of an AS2 document, errors mapped to ObjectError; the document only
    when the server that finally answered is on ``url``'s origin."""
    # The instance actor's signer, built once per process by the actor fetcher.
    auth = await fed.fetcher.signer()
    try:
        final_url, document = await fetch_json(fed.client, url, accept=OBJECT_ACCEPT,
                                               auth=auth, max_bytes=MAX_OBJECT_BYTES,
                                               total_timeout=OBJECT_FETCH_TIMEOUT)
    except RemoteStatusError as exc:
        if exc.status_code == 410:
            raise ObjectGone(f"{url} is gone (410)", uri=url) from exc
        if exc.status_code in (401, 403, 404):
            raise ObjectNotFound(f"{url} not found ({exc.status_code})", uri=url) from exc
        raise ObjectUnavailable(str(exc), uri=url) from exc
    except (ForbiddenURL, ForbiddenAddress) as exc:
        raise ObjectRefused(str(exc), uri=url, reason="forbidden_url") from exc
    except FetchError as exc:
        raise ObjectUnavailable(str(exc), uri=url) from exc
    if not same_origin(final_url, url):
        raise ObjectRefused(f"{url} redirected to {final_url}, on another origin", uri=url,
                            reason="redirected")
    return document


async def fetch_object(fed: FederationContext, url: str, *,
                       session: AsyncSession | None = None) -> dict[str, Any]:
    """The AS2 document at ``url`` under the origin rule (at most one refetch by id).

    ``session`` is only read (the domain-block check); without it a short one is opened.
    The returned document's ``id`` is ``url`` or, after one refetch, an id on ``url``'s
    origin that names itself."""
    url = _checked_url(url)
    await _refuse_blocked(fed, session, url)
    document = await _get(fed, url)
    doc_id = document.get("id")
    if doc_id == url:
        return document
    if not isinstance(doc_id, str) or not doc_id:
        raise ObjectRefused(f"{url} sent a document without an id", uri=url, reason="no_id")
    if not same_origin(doc_id, url):
        raise ObjectRefused(f"{url} sent a document with id {doc_id!r} from another origin",
                            uri=url, reason="origin_mismatch")
    _checked_url(doc_id)
    document = await _get(fed, doc_id)
    if document.get("id") != doc_id:
        raise ObjectRefused(f"{doc_id} does not name itself (id {document.get('id')!r})",
                            uri=url, reason="origin_mismatch")
    return document
