"""WebFinger lookups: from a handle ``user@host[:port]`` to the ActivityPub actor URL.

Search with ``resolve=true`` and remote follows start from a handle a person typed; this
module turns it into an actor id through ``/.well-known/webfinger?resource=acct:…`` on the
handle's host (RFC 7033), over the safe client (:mod:`federation.http`), so every rule
there applies: addresses checked, redirects re-checked, size and time capped, JRD/JSON
content types only. A port stays in the handle: it is part of both the URL's host and the
``acct:`` resource. The scheme is https, or http when ``EASEL_SCHEME=http`` (labs, tests).

Sanity rules: the JRD must be a JSON object whose ``subject``, when present, names the
handle asked for (case-insensitively). A different ``acct:`` subject is the server saying
the account's canonical handle lives elsewhere (Mastodon's WEB_DOMAIN/LOCAL_DOMAIN split):
it is looked up once more on its own host and accepted only if that answer names itself.
A subject that is not an ``acct:`` URI is accepted only when ``aliases`` lists the handle
asked for. The actor is the first ``rel="self"`` link whose type is
``application/activity+json`` or ``application/ld+json`` with the ActivityStreams profile
and whose ``href`` is an http(s) URL.

This module must never: build a URL by pasting unchecked text into it, trust the actor URL
beyond its being an http(s) URL (the actor document's own origin checks belong to the
remote-fetch code), or fetch anything except through the client it is given.
host-meta/LRDD fallback (for servers without /.well-known/webfinger) is not done.

Errors (all :class:`federation.http.FetchError` subclasses, so one ``except`` covers a
failed lookup; network, status and size errors come from :mod:`federation.http`)::

    WebFingerError
    ├── InvalidHandle     not user@host[:port] (also a ValueError)
    ├── HandleNotFound    the host answered 404 or 410
    ├── MalformedJRD      not a JSON object, or wrong shapes for subject/aliases/links
    ├── NoSelfLink        no usable rel="self" ActivityPub link
    └── SubjectMismatch   the subject names another account that does not confirm itself
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from federation.http import (
    DEFAULT_TOTAL_TIMEOUT,
    JRD_ACCEPT,
    FetchError,
    MalformedBody,
    RemoteStatusError,
    fetch_json,
    lookup_scheme,
)
from server.settings import Settings

WEBFINGER_PATH = "/.well-known/webfinger"
DEFAULT_MAX_JRD_BYTES = 256 * 1024
ACTIVITYPUB_LINK_TYPES = frozenset({
    "application/activity+json",
    'application/ld+json;profile="https://www.w3.org/ns/activitystreams"',
    "application/ld+json;profile=https://www.w3.org/ns/activitystreams",
})

# Host: DNS labels (IDN already punycode-encoded), optional port. IP literals are not handles.
_HOST_RE = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)
# acct userpart (RFC 7565: unreserved / sub-delims / pct-encoded), as servers use it.
_USER_RE = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=%-]{1,255}$")


class WebFingerError(FetchError):
    """A handle could not be resolved to an actor."""


class InvalidHandle(WebFingerError, ValueError):
    """The text is not a handle of the form ``user@host[:port]``."""


class HandleNotFound(WebFingerError):
    """The handle's host does not know the account (404 or 410)."""

    def __init__(self, message: str, *, url: str | None = None, status_code: int) -> None:
        super().__init__(message, url=url)
        self.status_code = status_code


class MalformedJRD(WebFingerError):
    """The WebFinger answer is not a JRD document of the expected shape."""


class NoSelfLink(WebFingerError):
    """The JRD has no ``rel="self"`` ActivityPub link with an http(s) ``href``."""


class SubjectMismatch(WebFingerError):
    """The JRD's subject names an account other than the one asked for, unconfirmed."""


@dataclass(frozen=True)
class Handle:
    """``user@host[:port]``, the host lower-case and IDNA-encoded."""

    username: str
    host: str  # with the port, when there is one

    @property
    def resource(self) -> str:
        return f"acct:{self.username}@{self.host}"

    def same_account(self, other: Handle) -> bool:
        return self.username.lower() == other.username.lower() and self.host == other.host

    def __str__(self) -> str:
        return f"{self.username}@{self.host}"


@dataclass(frozen=True)
class WebFingerResult:
    """What a lookup found: the canonical handle, the actor URL and the aliases."""

    subject: Handle
    actor_url: str
    aliases: tuple[str, ...]


def parse_handle(text: str) -> Handle:
    """``user@host``, ``@user@host``, ``acct:user@host`` (each with an optional ``:port``)."""
    value = text.strip()
    if value[:5].lower() == "acct:":
        value = value[5:]
    value = value.removeprefix("@")
    username, sep, host = value.partition("@")
    if not sep or not _USER_RE.match(username):
        raise InvalidHandle(f"not a handle (user@host[:port]): {text!r}")
    try:
        host = host.encode("idna").decode("ascii").lower() if not host.isascii() else host.lower()
    except UnicodeError:
        raise InvalidHandle(f"not a valid host name in {text!r}") from None
    match = _HOST_RE.match(host)
    if not match or (match.group("port") and not 0 < int(match.group("port")) < 65536):
        raise InvalidHandle(f"not a valid host[:port] in {text!r}")
    return Handle(username=username, host=host)


def webfinger_url(handle: Handle, settings: Settings) -> str:
    """The WebFinger URL for ``handle``, with its port, over the lookup scheme."""
    url = httpx.URL(f"{lookup_scheme(settings)}://{handle.host}{WEBFINGER_PATH}",
                    params={"resource": handle.resource})
    return str(url)


def _normalised_type(value: Any) -> str:
    return "".join(value.split()).lower() if isinstance(value, str) else ""


def _http_url(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return str(url)


def parse_jrd(document: dict[str, Any], url: str) -> tuple[str | None, str, tuple[str, ...]]:
    """``(subject, actor_url, aliases)`` from a JRD; MalformedJRD or NoSelfLink otherwise."""
    subject = document.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise MalformedJRD(f"{url}: subject is not a string", url=url)
    aliases = document.get("aliases", [])
    if not isinstance(aliases, list):
        raise MalformedJRD(f"{url}: aliases is not a list", url=url)
    links = document.get("links", [])
    if not isinstance(links, list):
        raise MalformedJRD(f"{url}: links is not a list", url=url)
    for link in links:
        if not isinstance(link, dict) or link.get("rel") != "self":
            continue
        if _normalised_type(link.get("type")) not in ACTIVITYPUB_LINK_TYPES:
            continue
        href = _http_url(link.get("href"))
        if href is not None:
            return subject, href, tuple(a for a in aliases if isinstance(a, str))
    raise NoSelfLink(f"{url}: no rel=self link to an ActivityPub actor", url=url)


def _subject_handle(subject: str | None, url: str) -> Handle | None:
    """The handle an ``acct:`` subject names; None for no subject or another URI scheme."""
    if subject is None or subject[:5].lower() != "acct:":
        return None
    try:
        return parse_handle(subject)
    except InvalidHandle as exc:
        raise MalformedJRD(f"{url}: subject {subject!r} is not a valid acct: URI", url=url) from exc


async def _lookup(
    client: httpx.AsyncClient, handle: Handle, settings: Settings, max_bytes: int, total_timeout: float
) -> tuple[str, str | None, str, tuple[str, ...]]:
    url = webfinger_url(handle, settings)
    try:
        final_url, document = await fetch_json(client, url, accept=JRD_ACCEPT, max_bytes=max_bytes,
                                               total_timeout=total_timeout)
    except RemoteStatusError as exc:
        if exc.status_code in (404, 410):
            raise HandleNotFound(f"{handle} is not known at {handle.host} ({exc.status_code})",
                                 url=exc.url, status_code=exc.status_code) from exc
        raise
    except MalformedBody as exc:
        raise MalformedJRD(f"{url}: not a JRD document: {exc}", url=exc.url) from exc
    subject, actor_url, aliases = parse_jrd(document, final_url)
    return final_url, subject, actor_url, aliases


async def webfinger(
    client: httpx.AsyncClient,
    handle: str | Handle,
    *,
    settings: Settings,
    max_bytes: int = DEFAULT_MAX_JRD_BYTES,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
) -> WebFingerResult:
    """Look ``handle`` up on its host; see the module docstring for the rules."""
    requested = handle if isinstance(handle, Handle) else parse_handle(handle)
    url, subject, actor_url, aliases = await _lookup(client, requested, settings, max_bytes, total_timeout)
    named = _subject_handle(subject, url)
    if subject is None or (named is not None and named.same_account(requested)):
        return WebFingerResult(subject=named or requested, actor_url=actor_url, aliases=aliases)
    if named is None:
        if any(alias.lower() == requested.resource.lower() for alias in aliases):
            return WebFingerResult(subject=requested, actor_url=actor_url, aliases=aliases)
        raise SubjectMismatch(f"{url}: subject {subject!r} does not name {requested}", url=url)
    # The canonical handle is elsewhere: ask its host, once, and require it to confirm.
    url, subject, actor_url, aliases = await _lookup(client, named, settings, max_bytes, total_timeout)
    confirmed = _subject_handle(subject, url) if subject is not None else named
    if confirmed is None or not confirmed.same_account(named):
        raise SubjectMismatch(
            f"{requested} names {named}, whose host does not confirm it (subject {subject!r})", url=url
        )
    return WebFingerResult(subject=confirmed, actor_url=actor_url, aliases=aliases)


async def resolve_handle(
    client: httpx.AsyncClient,
    handle: str | Handle,
    *,
    settings: Settings,
    max_bytes: int = DEFAULT_MAX_JRD_BYTES,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
) -> str:
    """The actor URL for ``user@host[:port]`` (WebFinger over the safe client)."""
    result = await webfinger(client, handle, settings=settings, max_bytes=max_bytes,
                             total_timeout=total_timeout)
    return result.actor_url
