"""ASGI middleware for the client API: trailing slashes, body limits, upload clean-up and
rate limits. Each passes every request it has no business with straight through.
"""

from __future__ import annotations

import math
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.rate_counters import LocalCounters, RateCounters
from server.errors import BodyTooLarge
from server.limits import IMAGE_SIZE_LIMIT, PROFILE_IMAGE_SIZE_LIMIT

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


class RateLimitMiddleware:
    """Fixed-window limits, like Mastodon's: 300 requests per 5 minutes per access token,
    5× that per client address whatever token it presents (an unverified token must not
    open a fresh bucket), and 25 sign-in or sign-up attempts per address. Every API
    response carries ``X-RateLimit-*`` for the tightest bucket it counted against.

    Counters live in Redis when the instance has a Redis broker (shared by every web
    process), otherwise in this process (``server/api/rate_counters.py``).
    """

    def __init__(self, app: ASGIApp, *, limit: int = 300, window: float = 300.0,
                 counters: RateCounters | None = None) -> None:
        self.app = app
        self.limit = limit
        self.window = window
        self.counters = counters if counters is not None else LocalCounters(window)

    def _buckets(self, scope: Scope) -> list[tuple[str, int]]:
        client = scope.get("client")
        address = client[0] if client else "unknown"
        buckets = [(f"ip:{address}", self.limit * 5)]
        authorization = Headers(scope=scope).get("authorization", "")
        if authorization.lower().startswith("bearer "):
            buckets.append((f"token:{authorization[7:].strip()[:128]}", self.limit))
        if scope["method"] == "POST" and scope["path"] in AUTH_PATHS:
            buckets.append((f"auth:{address}", AUTH_LIMIT))
        return buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith((*API_PREFIXES, WEB_AUTH_PREFIX)):
            await self.app(scope, receive, send)
            return
        now = time.time()
        tightest: tuple[int, int, float] | None = None  # (remaining, limit, reset)
        exceeded = False
        buckets = self._buckets(scope)
        counted = await self.counters.hit([key for key, _limit in buckets], now)
        for (_key, limit), (count, reset) in zip(buckets, counted, strict=True):
            remaining = limit - count
            exceeded = exceeded or remaining < 0
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, limit, reset)
        assert tightest is not None
        remaining, limit, reset = tightest
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Reset": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(reset)),
        }
        if exceeded:
            retry = {**headers, "Retry-After": str(math.ceil(reset - now))}
            response: Response = (
                JSONResponse({"error": "Too many requests"}, status_code=429, headers=retry)
                if scope["path"].startswith(API_PREFIXES) else
                PlainTextResponse("Too many sign-in attempts. Please try again later.",
                                  status_code=429, headers=retry))
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
