"""ASGI middleware for the client API: trailing slashes, body limits, upload clean-up and
rate limits (the API's, and the inboxes'), and the door of IP blocks (``no_access``) for
every request. Each passes every request it has no business with straight through, and
none reads a body it does not limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.rate_counters import RATE_WINDOW, LocalCounters, RateCounters
from server.db import Database
from server.errors import BodyTooLarge, error_response
from server.limits import IMAGE_SIZE_LIMIT, PROFILE_IMAGE_SIZE_LIMIT
from server.services.ip_blocks import IpBlockMatcher
from server.settings import Settings

API_PREFIXES = ("/api/", "/oauth/")
# The web session's sign-in and sign-out forms: small bodies, sign-in attempts counted.
WEB_AUTH_PREFIX = "/auth/"
OPEN_FORMS_KEY = "easel.open_forms"

# The largest request body the API reads: uploads (an image, or an avatar and a header)
# get room for the file plus multipart overhead; everything else is small.
UPLOAD_PATHS = ("/api/v1/media", "/api/v2/media", "/api/v1/accounts/update_credentials")
UPLOAD_BODY_LIMIT = max(IMAGE_SIZE_LIMIT, 2 * PROFILE_IMAGE_SIZE_LIMIT) + 1024 * 1024
BODY_LIMIT = 1024 * 1024


class BodyLimitMiddleware:
    """Refuse API request bodies over their limit before reading them (Content-Length), or
    as soon as a streamed body passes it, so an oversized upload never fills the disk."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith((*API_PREFIXES, WEB_AUTH_PREFIX)):
            await self.app(scope, receive, send)
            return
        limit = UPLOAD_BODY_LIMIT if scope["path"].startswith(UPLOAD_PATHS) else BODY_LIMIT
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = JSONResponse(
                {"error": f"Request body is too large (the limit is {limit // (1024 * 1024)} MB)"},
                status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(
                        f"Request body is too large (the limit is {limit // (1024 * 1024)} MB)")
            return message

        await self.app(scope, limited_receive, send)


class CloseUploadsMiddleware:
    """Close the temporary files of every form an endpoint parsed, after the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            for form in scope.pop(OPEN_FORMS_KEY, []):
                await form.close()


class RejectNulMiddleware:
    """No identifier, name or query Easel accepts contains a NUL character, and PostgreSQL
    cannot store one: refuse it at the door (400) rather than fail deep inside (500)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")
            or b"%00" in scope.get("raw_path", b"")
        ):
            response = JSONResponse({"error": "Bad request: NUL character in the URL"}, status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# Answered whatever the address: load balancers and monitoring must see the process
# (the metrics keep their own token and loopback checks).
ALWAYS_ANSWERED = frozenset({"/health", "/metrics"})
NO_ACCESS_MESSAGE = "Access from your network is not allowed"


class IpBlockMiddleware:
    """Refuse every request from a network with a ``no_access`` IP block: 403, ``{"error"}``
    for the API and ActivityPub, a line of text for pages; a WebSocket is closed before it
    opens (the server answers 403). The health check and the metrics are always answered.

    The lookup is ``IpBlockMatcher`` (``server/services/ip_blocks.py``): from memory, with
    a reload at most every ``RELOAD_SECONDS``; with no blocks it parses nothing.
    """

    def __init__(self, app: ASGIApp, *, blocks: IpBlockMatcher, db: Database) -> None:
        self.app = app
        self.blocks = blocks
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if (self.blocks.idle() or scope["type"] == "lifespan" or not client
                or scope["path"] in ALWAYS_ANSWERED
                or await self.blocks.severity_for(self.db, client[0]) != "no_access"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": NO_ACCESS_MESSAGE})
            return
        await error_response(Request(scope), 403, NO_ACCESS_MESSAGE)(scope, receive, send)


class TrailingSlashMiddleware:
    """``/api/v1/statuses/`` is ``/api/v1/statuses``: clients send both, and a redirect
    would turn a POST into a GET for some of them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(API_PREFIXES) and len(path) > 1 and path.endswith("/"):
                scope = dict(scope)
                scope["path"] = path.rstrip("/")
                if scope.get("raw_path"):
                    scope["raw_path"] = scope["raw_path"].rstrip(b"/")
        await self.app(scope, receive, send)


# Sign-in and sign-up attempts per address per window (argon2 makes each one costly).
AUTH_PATHS = ("/oauth/token", "/oauth/authorize/login", "/api/v1/accounts", "/auth/sign_in",
              "/auth/sign_up", "/auth/password", "/auth/password/edit", "/auth/confirmation",
              "/api/v1/emails/confirmations")
AUTH_LIMIT = 25
# Account creations per address (Mastodon: 5 per 30 minutes on POST /api/v1/accounts).
SIGN_UP_PATHS = ("/api/v1/accounts", "/auth/sign_up")
SIGN_UP_WINDOW = 1800.0
# New statuses and boosts per access token (Mastodon: 300 per 3 hours per account).
STATUS_PATH = "/api/v1/statuses"
REBLOG_SUFFIX = "/reblog"
STATUS_WINDOW = 3 * 3600.0
# Uploads per access token (Mastodon: 30 per 30 minutes).
MEDIA_PATHS = ("/api/v1/media", "/api/v2/media")
MEDIA_WINDOW = 1800.0
# Deliveries to the inboxes per remote address per 5 minutes.
INBOX_PATH = "/inbox"
USER_INBOX_PREFIX = "/users/"


@dataclass(frozen=True)
class RateLimits:
    """How many requests each bucket allows per its window (the ``EASEL_*_RATE_LIMIT``
    settings; Mastodon's figures by default)."""

    api: int = 300          # per access token per 5 minutes; an address gets 5×
    statuses: int = 300     # new statuses and boosts per access token per 3 hours
    media: int = 30         # uploads per access token per 30 minutes
    sign_up: int = 5        # account creations per address per 30 minutes
    inbox: int = 3000       # inbox deliveries per remote address per 5 minutes

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(api=settings.api_rate_limit, statuses=settings.status_rate_limit,
                   media=settings.media_rate_limit, sign_up=settings.sign_up_rate_limit,
                   inbox=settings.inbox_rate_limit)


def _is_inbox(path: str) -> bool:
    return path == INBOX_PATH or (path.startswith(USER_INBOX_PREFIX) and path.endswith(INBOX_PATH))


def _is_posting(path: str) -> bool:
    if path == STATUS_PATH:
        return True
    # /api/v1/statuses/:id/reblog
    return (path.startswith(STATUS_PATH + "/") and path.endswith(REBLOG_SUFFIX)
            and path.count("/") == 5)


class RateLimitMiddleware:
    """Fixed-window limits, like Mastodon's: 300 requests per 5 minutes per access token,
    5× that per client address whatever token it presents (an unverified token must not
    open a fresh bucket), and 25 sign-in or sign-up attempts per address; on top of those,
    new statuses and boosts (300 per 3 hours per token), uploads (30 per 30 minutes per
    token) and account creations (5 per 30 minutes per address). Every API response carries
    ``X-RateLimit-*`` for the tightest bucket it counted against; a refusal (429) those of
    the bucket that refused, and ``Retry-After``.

    The inboxes (``POST /inbox``, ``/users/:name/inbox``) have a bucket of their own per
    remote address (3000 per 5 minutes): counted apart from the API's, refused with 429 and
    ``Retry-After`` (every sender retries those later), and no headers otherwise.

    Counters live in Redis when the instance has a Redis broker (shared by every web
    process), otherwise in this process (``server/api/rate_counters.py``); every bucket a
    request counts against is counted in one round trip.
    """

    def __init__(self, app: ASGIApp, *, limits: RateLimits | None = None,
                 counters: RateCounters | None = None) -> None:
        self.app = app
        self.limits = limits if limits is not None else RateLimits()
        self.counters = counters if counters is not None else LocalCounters()

    def _buckets(self, scope: Scope) -> list[tuple[str, int, float]]:
        """(key, limit, window) of every bucket an API request counts against."""
        address = _address(scope)
        limits = self.limits
        buckets = [(f"ip:{address}", limits.api * 5, RATE_WINDOW)]
        authorization = Headers(scope=scope).get("authorization", "")
        token = authorization[7:].strip()[:128] if authorization.lower().startswith("bearer ") else ""
        if token:
            buckets.append((f"token:{token}", limits.api, RATE_WINDOW))
        if scope["method"] == "POST":
            path: str = scope["path"]
            if path in AUTH_PATHS:
                buckets.append((f"auth:{address}", AUTH_LIMIT, RATE_WINDOW))
            if path in SIGN_UP_PATHS:
                buckets.append((f"sign_up:{address}", limits.sign_up, SIGN_UP_WINDOW))
            # Without a token these are refused (401) anyway, and the address bucket counts them.
            if token and _is_posting(path):
                buckets.append((f"statuses:{token}", limits.statuses, STATUS_WINDOW))
            if token and path in MEDIA_PATHS:
                buckets.append((f"media:{token}", limits.media, MEDIA_WINDOW))
        return buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith((*API_PREFIXES, WEB_AUTH_PREFIX)):
            await self._limit_api(scope, receive, send)
        elif scope["method"] == "POST" and _is_inbox(path):
            await self._limit_inbox(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _limit_inbox(self, scope: Scope, receive: Receive, send: Send) -> None:
        now = time.time()
        [(count, reset)] = await self.counters.hit([(f"inbox:{_address(scope)}", RATE_WINDOW)], now)
        if count > self.limits.inbox:
            await _refusal(self.limits.inbox, count, reset, now, json=True)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _limit_api(self, scope: Scope, receive: Receive, send: Send) -> None:
        now = time.time()
        buckets = self._buckets(scope)
        counted = await self.counters.hit([(key, window) for key, _limit, window in buckets], now)
        tightest: tuple[int, int, float] | None = None  # (remaining, limit, reset)
        refusing: tuple[int, int, float] | None = None  # the exceeded bucket that resets last
        for (_key, limit, _window), (count, reset) in zip(buckets, counted, strict=True):
            remaining = limit - count
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, limit, reset)
            if remaining < 0 and (refusing is None or reset > refusing[2]):
                refusing = (remaining, limit, reset)
        if refusing is not None:
            remaining, limit, reset = refusing
            response = _refusal(limit, limit - remaining, reset, now,
                                json=scope["path"].startswith(API_PREFIXES))
            await response(scope, receive, send)
            return
        assert tightest is not None
        remaining, limit, reset = tightest
        headers = _rate_headers(limit, limit - remaining, reset)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _rate_headers(limit: int, count: int, reset: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(limit - count, 0)),
        "X-RateLimit-Reset": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(reset)),
    }


def _refusal(limit: int, count: int, reset: float, now: float, *, json: bool) -> Response:
    """429 with the refusing bucket's ``X-RateLimit-*`` and ``Retry-After``: JSON for the
    API and the inboxes, a line of text for the web sign-in and sign-up forms."""
    headers = {**_rate_headers(limit, count, reset), "Retry-After": str(max(math.ceil(reset - now), 1))}
    if json:
        return JSONResponse({"error": "Too many requests"}, status_code=429, headers=headers)
    return PlainTextResponse("Too many attempts. Please try again later.", status_code=429,
                             headers=headers)
