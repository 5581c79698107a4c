"""One place that turns errors into responses.

API and federation paths answer ``{"error": "..."}`` with Mastodon's status codes; pages
answer plain text, except "not found": a browser asking for a page that is not there (an
unknown URL, ``/@``) gets the site's own 404 page, with its headers (CSP, opt-out). An
unexpected exception is logged with its cause and answered with a 500 that reveals nothing
of it. The database unreachable (down, restarting, a connection cut) is not a bug: it is
answered with a 503 and ``Retry-After``, so that clients retry instead of seeing a 500, and
nothing of the driver's error is revealed either.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.db import database_unavailable
from server.services.errors import ServiceError
from server.state import easel
from server.web.session import render

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/oauth/token", "/oauth/revoke", "/.well-known/", "/nodeinfo/", "/users/",
                 "/inbox", "/actor")


class BodyTooLarge(Exception):
    """The request body grew past its limit while it was being read (413)."""


class ApiError(HTTPException):
    """Raise from an endpoint: ``raise ApiError(404, "Record not found")``."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(status_code=status_code, detail=message)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(JSON_PREFIXES) or "json" in request.headers.get("accept", "")


def error_response(request: Request, status_code: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status_code)
    return PlainTextResponse(message, status_code=status_code)


def not_found_page(request: Request) -> Response:
    """The HTML 404 page every public page answers for what is not there (uncached)."""
    return render(request, easel(request), "error.html",
                  {"heading": "Not found", "message": "There is nothing to see here."},
                  status_code=404, headers={"Cache-Control": "no-store"})


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "Error"
    if exc.status_code == 404 and message == "Not Found":
        message = "Record not found"
    if (exc.status_code == 404 and request.scope["type"] == "http" and not _wants_json(request)
            and hasattr(request.app.state, "easel")):
        response = not_found_page(request)
    else:
        response = error_response(request, exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def service_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return error_response(request, exc.status_code, exc.message)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "Internal server error")


# How long a client is asked to wait before trying again while the database is unavailable.
RETRY_AFTER_SECONDS = 5


async def database_error_handler(request: Request, exc: Exception) -> Response:
    """The database down, restarting or cut off: a 503 the client can retry, answered (not
    re-raised) so the server keeps the client's connection; anything else as a 500."""
    if request.scope["type"] != "http":
        raise exc  # a WebSocket: the server closes it (1011), as for any other error
    if not database_unavailable(exc):
        return await unexpected_error_handler(request, exc)
    log.warning("database unavailable on %s %s: %s: %s", request.method, request.url.path,
                type(exc).__name__, exc)
    response = error_response(request, 503, "Service temporarily unavailable")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def body_too_large_handler(request: Request, exc: Exception) -> Response:
    return error_response(request, 413, str(exc) or "Request body is too large")


class UnexpectedErrors:
    """Answers an exception that nothing handled with the 500 above, from inside the CORS,
    policy and request-id middleware, so the answer carries their headers (a browser app
    can read it; the admin can find its log line by the ``X-Request-Id`` the user quotes).
    The error is logged here, once, while the request's id is known. Once a response has
    started nothing can be answered any more: the error goes on up and the server cuts the
    connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            if started:
                raise
            response = await unexpected_error_handler(Request(scope), exc)
            await response(scope, receive, send)


# Starlette gives the handler for ``Exception`` to its outermost middleware: it answers only
# what escapes the middleware outside :class:`UnexpectedErrors`.
EXCEPTION_HANDLERS = {
    BodyTooLarge: body_too_large_handler,
    HTTPException: http_exception_handler,
    ServiceError: service_error_handler,
    DBAPIError: database_error_handler,
    PoolTimeout: database_error_handler,  # every pooled connection busy (EASEL_DATABASE_TIMEOUT)
    OSError: database_error_handler,  # a refused or timed-out connect or statement, as raised
    Exception: unexpected_error_handler,
}
