"""The streaming API: ``/api/v1/streaming`` over Server-Sent Events and WebSocket.

Why it exists: Mastodon clients keep a stream open for the home timeline, notifications,
public, hashtag and list timelines and direct conversations instead of polling. Each open
stream subscribes to the process's stream bus (``server.streaming.bus``); for every
committed event, ``server.streaming.channels`` decides whether its viewer gets it and
renders it.

- ``GET /api/v1/streaming/health``: ``OK``.
- SSE: ``GET /api/v1/streaming/{user, user/notification, public, public/local,
  public/remote, hashtag, hashtag/local, list, direct}`` (``only_media``, ``tag``,
  ``list`` as query parameters), answering ``text/event-stream``: ``:)`` once subscribed,
  then ``event: NAME`` / ``data: PAYLOAD`` blocks and a ``:thump`` comment every 15 s.
- WebSocket: ``/api/v1/streaming?stream=NAME[&tag=…|&list=…]``, then
  ``{"type": "subscribe"|"unsubscribe", "stream": NAME, "tag"?, "list"?}`` messages;
  events arrive as ``{"stream": [NAME, …], "event": NAME, "payload": "JSON string"}``,
  errors as ``{"error": "…", "status": 4xx}``.

The access token comes as ``Authorization: Bearer``, ``?access_token=`` or (WebSocket)
the ``Sec-WebSocket-Protocol`` header, as Mastodon's streaming server takes it. Public
channels are open to anonymous clients, as in Mastodon.

A stream opened with a token ends once that token no longer authenticates: revoked
(``POST /oauth/revoke``, a refresh, the user's own deletion …), or its login disabled,
suspended or deleted. Each stream looks its token up again every ``LOGIN_CHECK_SECONDS``
(one indexed query), before it sends anything further, so wherever the revocation was
committed and whichever process holds the stream, the stream ends — and carries nothing
more — within that time. Streams of the user's other tokens go on; reconnecting with the
revoked one is a 401, as any request with it. (Mastodon kills the token's streams at
once through Redis; a periodic check also covers every way a login can end, and needs
no broker.)

What it must never do: hold a database session while waiting for events, send an event
to a viewer the channel rules refuse (``channels.Rendering``), or keep serving a token
that no longer authenticates past ``LOGIN_CHECK_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server import last_use
from server.api.auth import authenticate
from server.api.entities import EntityContext
from server.errors import ApiError
from server.json_depth import too_deep
from server.models import Account
from server.state import EaselState
from server.streaming.bus import StreamBus, Subscription
from server.streaming.channels import (
    Channel,
    ChannelError,
    Rendering,
    authorize,
    channel_named,
    may_carry,
)

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
# How often an open stream looks its token up again (at most one query a minute each): a
# token revoked, or a login disabled, suspended or deleted, ends its streams within this.
LOGIN_CHECK_SECONDS = 60.0
# Where ``server.api.auth.authenticate`` keeps a connection's answer.
AUTH_CACHE_KEY = "easel.auth"

# SSE path (after /api/v1/streaming/) → Mastodon's channel name.
SSE_CHANNELS = {
    "user": "user",
    "user/notification": "user:notification",
    "public": "public",
    "public/local": "public:local",
    "public/remote": "public:remote",
    "hashtag": "hashtag",
    "hashtag/local": "hashtag:local",
    "list": "list",
    "direct": "direct",
}


@dataclass
class Viewer:
    account: Account | None
    scopes: list[str] | None  # None: no token at all
    # The connection that presented the token (None: anonymous), to check it again.
    login: HTTPConnection | None = None
    checked_at: float = field(default_factory=time.monotonic)

    def wait_seconds(self) -> float:
        """How long the stream may wait for its next event: a heartbeat, or less when its
        token is due to be checked again."""
        if self.login is None:
            return HEARTBEAT_SECONDS
        due = self.checked_at + LOGIN_CHECK_SECONDS - time.monotonic()
        return max(0.0, min(HEARTBEAT_SECONDS, due))

    async def still_signed_in(self) -> bool:
        """Whether the token still authenticates (True without one): looked up again once
        ``LOGIN_CHECK_SECONDS`` have passed since the last look, by the very check every
        request passes (``authenticate``). A look that fails ends the stream too: the
        client reconnects, and is answered as any request."""
        if self.login is None or time.monotonic() - self.checked_at < LOGIN_CHECK_SECONDS:
            return True
        self.checked_at = time.monotonic()
        again = HTTPConnection({key: value for key, value in self.login.scope.items()
                                if key != AUTH_CACHE_KEY})
        try:
            return await authenticate(cast(Request, again)) is not None
        except ApiError:  # revoked, deleted, disabled, suspended …
            return False
        except Exception:
            log.warning("could not check a stream's access token; ending the stream",
                        exc_info=True)
            return False


def _state(connection: HTTPConnection) -> EaselState:
    state: EaselState = connection.app.state.easel
    return state


def _bus(state: EaselState) -> StreamBus:
    if state.streams is None:
        raise ChannelError(503, "Streaming is not available")
    return state.streams


async def _viewer(connection: HTTPConnection) -> Viewer:
    """The token's account and scopes; ChannelError 401 for a token that is not valid."""
    try:
        auth = await authenticate(cast(Request, connection))
    except ApiError as exc:
        message = "Invalid access token" if exc.status_code == 401 else str(exc.detail)
        raise ChannelError(exc.status_code, message) from exc
    if auth is None:
        return Viewer(None, None)
    return Viewer(auth.account, auth.scopes, login=connection)


def _flag(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "yes", "on")


async def _open_channel(state: EaselState, viewer: Viewer, name: str, *, tag: str | None,
                        list_id: str | None, only_media: bool = False) -> Channel:
    channel = channel_named(name, tag=tag, list_id=list_id, only_media=only_media)
    async with state.db.session() as session:
        await authorize(session, channel, viewer.account, viewer.scopes)
    return channel


async def _render(state: EaselState, viewer: Viewer, channels: list[Channel],
                  message: dict[str, Any]) -> list[tuple[Channel, str, str | None]]:
    """``(channel, event, payload)`` for each of the channels that carries ``message``."""
    found: list[tuple[Channel, str, str | None]] = []
    viewer_id = viewer.account.id if viewer.account is not None else None
    channels = [channel for channel in channels if may_carry(channel, viewer_id, message)]
    if not channels:
        return found
    async with state.db.session() as session:
        rendering = Rendering(session, EntityContext.of(state), viewer.account, message)
        for channel in channels:
            result = await rendering.for_channel(channel)
            if result is not None:
                found.append((channel, *result))
    return found


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# ------------------------------------------------------------------------------ health

async def health(request: Request) -> Response:
    return PlainTextResponse("OK")


# -------------------------------------------------------------------------------- SSE

async def stream_events(request: Request) -> Response:
    state = _state(request)
    name = SSE_CHANNELS.get(request.path_params["channel"].strip("/"))
    if name is None:
        return _error(404, "Unknown stream type")
    query = request.query_params
    try:
        viewer = await _viewer(request)
        bus = _bus(state)
        channel = await _open_channel(state, viewer, name, tag=query.get("tag"),
                                      list_id=query.get("list"),
                                      only_media=_flag(query.get("only_media")))
    except ChannelError as exc:
        return _error(exc.status, exc.message)
    # The login's use is written now: the request ends only when the client leaves.
    await last_use.flush(request, state.db, state.settings)
    # Subscribed before the first byte: a client that read ":)" misses nothing after it.
    subscription = bus.subscribe()
    return StreamingResponse(
        _sse(state, bus, subscription, viewer, channel), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _sse(state: EaselState, bus: StreamBus, subscription: Subscription, viewer: Viewer,
               channel: Channel) -> AsyncIterator[str]:
    try:
        yield ":)\n"
        while not subscription.closed:
            message = await subscription.next(viewer.wait_seconds())
            if not await viewer.still_signed_in():
                return  # the response ends: the client sees its stream close
            if message is None:
                if not subscription.closed:
                    yield ":thump\n"
                continue
            for _, event, payload in await _render(state, viewer, [channel], message):
                yield f"event: {event}\ndata: {'undefined' if payload is None else payload}\n\n"
    finally:
        bus.unsubscribe(subscription)


# -------------------------------------------------------------------------- WebSocket

def _protocol_token(websocket: WebSocket) -> str | None:
    """A token offered as the WebSocket subprotocol (browsers cannot set headers)."""
    if "authorization" in websocket.headers or websocket.query_params.get("access_token"):
        return None
    offered = websocket.headers.get("sec-websocket-protocol", "").strip()
    return offered or None


async def _deny(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse the upgrade with an HTTP answer where the server allows it, else close."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(_error(status, message))
    else:
        await websocket.close(code=4000 + status, reason=message)


class _Connection:
    """One WebSocket: its viewer, its channels (keyed by their ``stream``), and a lock so
    events and error messages never interleave their frames."""

    def __init__(self, websocket: WebSocket, state: EaselState, viewer: Viewer) -> None:
        self.websocket = websocket
        self.state = state
        self.viewer = viewer
        self.channels: dict[tuple[str, ...], Channel] = {}
        self.lock = asyncio.Lock()

    async def send(self, data: dict[str, Any]) -> None:
        async with self.lock:
            await self.websocket.send_text(json.dumps(data))

    async def handle(self, raw: str) -> None:
        """A client message: subscribe or unsubscribe (anything else is an error)."""
        try:
            if too_deep(raw):
                raise ValueError
            message = json.loads(raw)
            if not isinstance(message, dict):
                raise ValueError
        except (ValueError, RecursionError):
            await self.send({"error": "Invalid JSON message", "status": 400})
            return
        kind = message.get("type")
        if kind not in ("subscribe", "unsubscribe"):
            await self.send({"error": "Unknown message type", "status": 400})
            return
        tag, list_id = message.get("tag"), message.get("list")
        try:
            if kind == "subscribe":
                channel = await _open_channel(
                    self.state, self.viewer, str(message.get("stream") or ""),
                    tag=str(tag) if tag is not None else None,
                    list_id=str(list_id) if list_id is not None else None)
                self.channels[channel.key] = channel
            else:
                channel = channel_named(
                    str(message.get("stream") or ""), tag=str(tag) if tag is not None else None,
                    list_id=str(list_id) if list_id is not None else None)
                self.channels.pop(channel.key, None)
        except ChannelError as exc:
            await self.send({"error": exc.message, "status": exc.status})

    async def read(self) -> None:
        while True:
            received = await self.websocket.receive()
            if received["type"] == "websocket.disconnect":
                return
            raw = received.get("text")
            if raw is None:
                raw = (received.get("bytes") or b"").decode("utf-8", "replace")
            await self.handle(raw)

    async def write(self, subscription: Subscription) -> None:
        """Send the events the channels carry; return once the stream is to end (the bus
        closed it, or the token no longer authenticates)."""
        while not subscription.closed:
            message = await subscription.next(self.viewer.wait_seconds())
            if not await self.viewer.still_signed_in():
                return
            if message is None or not self.channels:
                continue
            for channel, event, payload in await _render(
                    self.state, self.viewer, list(self.channels.values()), message):
                data: dict[str, Any] = {"stream": channel.stream, "event": event}
                if payload is not None:
                    data["payload"] = payload
                await self.send(data)


async def stream_websocket(websocket: WebSocket) -> None:
    state = _state(websocket)
    protocol_token = _protocol_token(websocket)
    authenticated: HTTPConnection = websocket
    if protocol_token is not None:  # read like a bearer token by authenticate()
        authenticated = HTTPConnection({**websocket.scope, "headers": [
            *websocket.scope["headers"], (b"authorization", f"Bearer {protocol_token}".encode())]})
    query = websocket.query_params
    try:
        viewer = await _viewer(authenticated)
        bus = _bus(state)
        connection = _Connection(websocket, state, viewer)
        if query.get("stream"):
            channel = await _open_channel(state, viewer, query["stream"], tag=query.get("tag"),
                                          list_id=query.get("list"))
            connection.channels[channel.key] = channel
    except ChannelError as exc:
        await _deny(websocket, exc.status, exc.message)
        return
    # Subscribed before the handshake completes: a connected client misses nothing.
    subscription = bus.subscribe()
    ended = False  # by the server: the bus closed, or the token no longer authenticates
    try:
        await websocket.accept(subprotocol=protocol_token)
        reader = asyncio.create_task(connection.read())
        writer = asyncio.create_task(connection.write(subscription))
        done, pending = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        ended = writer in done
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await task
        for task in done:
            with contextlib.suppress(WebSocketDisconnect):
                task.result()
    finally:
        bus.unsubscribe(subscription)
    if ended:
        with contextlib.suppress(RuntimeError):
            await websocket.close()


routes: list[BaseRoute] = [
    Route("/api/v1/streaming/health", health, methods=["GET", "HEAD"]),
    WebSocketRoute("/api/v1/streaming", stream_websocket),
    WebSocketRoute("/api/v1/streaming/", stream_websocket),
    Route("/api/v1/streaming/{channel:path}", stream_events, methods=["GET"]),
]
