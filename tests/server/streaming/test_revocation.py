"""Open streams whose token stops authenticating, in process (``server.api.streaming``).

Given the app called as the server calls it (raw ASGI, so a stream can stay open while
the test acts), a user with two tokens and streams open on both, and a token check every
fraction of a second instead of every minute (``LOGIN_CHECK_SECONDS``), I expect:

- revoking one token (``POST /oauth/revoke``, as a lost device's owner would) to end its
  SSE stream and close its WebSocket, while the other token's stream goes on and still
  gets events; reconnecting with the revoked token to be a 401;
- a moderator suspending or disabling the account to end all its streams;
- an anonymous public stream to need no check and stay open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from server.api import streaming
from server.db import Database
from server.models import OAuthApplication, OAuthToken, User
from server.services import moderation
from server.services.tokens import token_digest
from server.settings import Settings
from tests.conftest import DOMAIN, authorized, make_token

WAIT_SECONDS = 10.0
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass
class Opened:
    """A stream request in flight: what the app sent so far, and the client's leaving."""

    task: asyncio.Task[None]
    sent: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    async def next_message(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.sent.get(), WAIT_SECONDS)

    async def next_event(self) -> str:
        """The next SSE block that is not a comment (heartbeats come often here)."""
        while True:
            message = await self.next_message()
            assert message["type"] == "http.response.body", message
            assert message.get("more_body", False), "the stream ended"
            chunk = message["body"].decode()
            if not chunk.startswith(":"):
                return chunk

    async def ends(self) -> bool:
        """Whether the app ends the stream (heartbeats skipped) within ``WAIT_SECONDS``."""
        while True:
            message = await self.next_message()
            if message["type"] == "websocket.close":
                return True
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                return True
            if message["type"] == "websocket.send" or not message["body"].startswith(b":"):
                raise AssertionError(f"an event instead of the end: {message}")


def _scope(kind: str, path: str, query: str, token: str | None) -> dict[str, Any]:
    headers = [(b"host", DOMAIN.encode())]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {"type": kind, "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "headers": headers, "root_path": "",
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 443),
             "asgi": {"version": "3.0"}, "http_version": "1.1"}
    if kind == "http":
        scope.update(method="GET", scheme="https")
    else:
        scope.update(scheme="wss", subprotocols=[])
    return scope


@pytest.fixture
async def open_stream(app: App) -> AsyncIterator[Callable[..., Awaitable[Opened]]]:
    opened: list[Opened] = []

    async def open_(channel: str, token: str | None, *, websocket: bool = False) -> Opened:
        if websocket:
            scope = _scope("websocket", "/api/v1/streaming", f"stream={channel}", token)
        else:
            scope = _scope("http", f"/api/v1/streaming/{channel}", "", token)
        first = {"type": "websocket.connect"} if websocket else {
            "type": "http.request", "body": b"", "more_body": False}
        asked: list[dict[str, Any]] = [first]
        sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        gone = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if asked:
                return asked.pop()
            await gone.wait()
            return {"type": "websocket.disconnect" if websocket else "http.disconnect",
                    "code": 1000}

        async def send(message: dict[str, Any]) -> None:
            await sent.put(message)

        stream = Opened(asyncio.create_task(app(scope, receive, send)), sent, gone)
        opened.append(stream)
        start = await stream.next_message()
        if websocket:
            assert start["type"] == "websocket.accept", start
        else:
            assert (start["type"], start["status"]) == ("http.response.start", 200), start
            hello = await stream.next_message()  # ":)" once subscribed: nothing is missed
            assert hello["body"] == b":)\n", hello
        return stream

    yield open_
    for stream in opened:
        stream.gone.set()
        await asyncio.wait_for(asyncio.gather(stream.task, return_exceptions=True),
                               WAIT_SECONDS)


@pytest.fixture(autouse=True)
def quick_login_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "LOGIN_CHECK_SECONDS", 0.2)


async def _client_of(db: Database, token: str) -> tuple[str, str]:
    """The client id and secret of the app ``token`` was issued to."""
    async with db.session() as session:
        app = await session.scalar(select(OAuthApplication).join(
            OAuthToken, OAuthToken.application_id == OAuthApplication.id).where(
            OAuthToken.token_digest == token_digest(token)))
        assert app is not None
        return app.client_id, app.client_secret


async def test_a_revoked_token_loses_its_streams_and_the_users_other_token_keeps_its_own(
    client: httpx.AsyncClient, db: Database, alice: User,
    open_stream: Callable[..., Awaitable[Opened]],
) -> None:
    lost, kept = await make_token(db, alice), await make_token(db, alice)
    on_lost = await open_stream("user", lost)
    socket_on_lost = await open_stream("user", lost, websocket=True)
    on_kept = await open_stream("user", kept)

    client_id, client_secret = await _client_of(db, lost)
    revoked = await client.post("/oauth/revoke", data={
        "client_id": client_id, "client_secret": client_secret, "token": lost})
    assert revoked.status_code == 200, revoked.text

    assert await on_lost.ends()
    assert await socket_on_lost.ends()
    async with authorized(client, kept) as api:
        posted = await api.post("/api/v1/statuses", json={"status": "Still streaming"})
        assert posted.status_code == 200, posted.text
    event = await on_kept.next_event()
    assert event.startswith("event: update\n") and posted.json()["id"] in event

    again = await client.get("/api/v1/streaming/user", headers={"Authorization": f"Bearer {lost}"})
    assert (again.status_code, again.json()) == (401, {"error": "Invalid access token"})


@pytest.mark.parametrize("action", ["suspend", "disable"])
async def test_a_suspended_or_disabled_accounts_streams_end(
    db: Database, settings: Settings, alice: User, action: str,
    open_stream: Callable[..., Awaitable[Opened]],
) -> None:
    token = await make_token(db, alice)
    home = await open_stream("user", token)
    notifications = await open_stream("user:notification", token, websocket=True)
    public = await open_stream("public", None)
    async with db.session() as session:
        await moderation.take_action(session, settings, moderator=None,
                                     account_id=alice.account_id, action=action)
    assert await home.ends()
    assert await notifications.ends()
    assert not public.task.done()  # no token, nothing to check
