"""Oversized and deeply nested JSON against every endpoint that accepts a JSON body.

The endpoints come from the route table (tests/attacks/api_routes.py), so a new one is
attacked as soon as it exists. Each attack must be refused with a 4xx and a Mastodon-style
``{"error": ...}`` body (OAuth's own ``error`` shape on /oauth/), never a 5xx, and nothing
may be stored: the row counts of the tables a write could touch stay as they were.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from server.db import Database
from server.json_depth import MAX_JSON_DEPTH, json_depth
from server.models import (
    Account,
    DomainBlock,
    InboxItem,
    Job,
    List,
    MediaAttachment,
    OAuthApplication,
    OAuthToken,
    Report,
    Status,
    User,
)
from server.services.accounts import create_user
from server.settings import Settings
from tests.attacks.api_routes import Endpoint, json_endpoints
from tests.conftest import authorized, make_token

ALL_SCOPES = "read write follow push admin:read admin:write"
BODY_LIMIT = 1024 * 1024
# The sign-in and consent forms of the OAuth flow are web pages: their refusals are text.
WEB_FORMS = ("/oauth/authorize", "/oauth/authorize/login")
# Endpoints that take no parameters and never read a body (Mastodon's neither): a body,
# however large or deep, is not looked at, so they answer as they always do.
BODILESS = {"POST /api/v1/tags/{name}/follow", "POST /api/v1/tags/{name}/unfollow",
            "POST /api/v1/notifications/clear", "POST /api/v2/notifications/clear",
            "POST /api/v2/notifications/{group_key}/dismiss",
            "DELETE /api/v1/profile/avatar", "DELETE /api/v1/profile/header",
            "DELETE /api/v1/push/subscription"}
COUNTED = (Account, User, Status, MediaAttachment, OAuthApplication, OAuthToken, List, Report,
           DomainBlock, InboxItem, Job)


@pytest.fixture
async def root_api(client: httpx.AsyncClient, db: Database, settings: Settings,
                   alice: User) -> AsyncIterator[httpx.AsyncClient]:
    """An admin with every scope: no endpoint refuses it before reading the body."""
    async with db.session() as session:
        root = await create_user(session, settings, username="moira", email="moira@example.com",
                                 password="the administrator's password", admin=True)
    async with authorized(client, await make_token(db, root, ALL_SCOPES)) as http:
        # Its first use stamps the token and records its address (and that address's
        # expiry job): done here, so what the attacks leave is compared with that.
        assert (await http.get("/api/v1/accounts/verify_credentials")).status_code == 200
        yield http


async def row_counts(db: Database) -> dict[str, int]:
    async with db.session() as session:
        return {model.__name__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for model in COUNTED}


def nested(depth: int) -> bytes:
    """An object holding ``depth`` levels of arrays and objects in all."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return ('{"status": "hi", "a": ' + inner + "}").encode()


def refusal(response: httpx.Response, endpoint: Endpoint, allowed: tuple[int, ...]) -> str | None:
    """Why ``response`` is not a proper refusal (None when it is)."""
    if response.status_code not in allowed:
        return f"{endpoint}: {response.status_code} {response.text[:200]}"
    if endpoint.template in WEB_FORMS:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{endpoint}: {response.status_code} without a JSON body: {response.text[:200]}"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return f"{endpoint}: {response.status_code} without an error: {body!r}"
    return None


async def send(api: httpx.AsyncClient, endpoint: Endpoint, content: Any,
               headers: dict[str, str] | None = None) -> httpx.Response:
    return await api.request(endpoint.method, endpoint.path, content=content,
                             headers={"Content-Type": "application/json", **(headers or {})})


def test_the_depth_counter_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[{{{\\"[["}]}') == 3
    assert json_depth(b'"just a string"') == 0
    assert json_depth("[" * 10_000) == 10_000
    assert json_depth(json.dumps({"poll": {"options": ["a", "b"]}, "x": [[{"y": 1}]]})) == 4


async def test_an_oversized_json_body_is_413_on_every_json_endpoint(
        root_api: httpx.AsyncClient, db: Database) -> None:
    before = await row_counts(db)
    oversized = json.dumps({"status": "x" * (BODY_LIMIT + 10), "type": "Create"}).encode()
    failures = []
    for endpoint in json_endpoints():
        problem = refusal(await send(root_api, endpoint, oversized), endpoint, (413,))
        if problem:
            failures.append(problem)
    assert not failures, "\n".join(failures)
    assert await row_counts(db) == before


async def test_an_oversized_body_streamed_without_a_length_is_413_or_never_read(
        root_api: httpx.AsyncClient, db: Database) -> None:
    """No Content-Length: the limit is counted as the body arrives. An endpoint that reads
    its body answers 413; one that never reads a body may answer otherwise, never 5xx."""
    before = await row_counts(db)
    failures = []
    read = 0
    for endpoint in json_endpoints():
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"status": "'
            for _ in range(BODY_LIMIT // 65_536 + 2):
                yield b"x" * 65_536
            yield b'"}'
        response = await send(root_api, endpoint, chunks())
        assert "content-length" not in response.request.headers
        if response.status_code == 413:
            read += 1
            problem = refusal(response, endpoint, (413,))
        elif response.status_code >= 500:
            problem = f"{endpoint}: {response.status_code} {response.text[:200]}"
        else:
            problem = None
        if problem:
            failures.append(problem)
    assert not failures, "\n".join(failures)
    assert read > len(json_endpoints()) // 2  # most endpoints read a body
    assert await row_counts(db) == before


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 900, 10_000])
async def test_deeply_nested_json_is_a_400_on_every_json_endpoint(
        root_api: httpx.AsyncClient, db: Database, depth: int) -> None:
    before = await row_counts(db)
    body = nested(depth)
    assert json_depth(body) == depth
    failures = []
    for endpoint in json_endpoints():
        response = await send(root_api, endpoint, body)
        if str(endpoint) in BODILESS:
            problem = (f"{endpoint}: {response.status_code}" if response.status_code >= 300
                       else None)
        else:
            # 400, the depth limit's, before anything else happens (404 would mean the
            # endpoint looked its record up first: allowed, but none does today).
            problem = refusal(response, endpoint, (400, 404))
            if problem is None and response.status_code == 400 \
                    and "nested too deeply" not in response.text:
                problem = f"{endpoint}: 400 for another reason: {response.text[:200]}"
        if problem:
            failures.append(problem)
    assert not failures, "\n".join(failures)
    assert await row_counts(db) == before


async def test_nesting_at_the_limit_is_still_accepted(root_api: httpx.AsyncClient) -> None:
    """The limit refuses abuse, not real clients: a status posted with a body nested
    exactly MAX_JSON_DEPTH deep (extra parameters are ignored) is created."""
    body = nested(MAX_JSON_DEPTH)
    response = await root_api.post("/api/v1/statuses", content=body,
                                   headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["content"] == "<p>hi</p>"


async def test_the_inbox_refuses_deep_nesting_before_fetching_any_key(
        client: httpx.AsyncClient, db: Database, alice: User) -> None:
    """An unsigned, deeply nested delivery is refused at parsing: 400, nothing stored, no
    signature checked (no key fetched: the app has no network, a fetch would fail as 401)."""
    before = await row_counts(db)
    activity = {"@context": "https://www.w3.org/ns/activitystreams", "type": "Create",
                "id": "https://remote.example/activities/1",
                "actor": "https://remote.example/users/mallory",
                "object": {"type": "Note", "id": "https://remote.example/notes/1", "content": "x"}}
    document = json.dumps(activity)[:-1] + ', "deep": ' + "[" * 5000 + "]" * 5000 + "}"
    for path in ("/inbox", "/users/alice/inbox"):
        response = await client.post(path, content=document.encode(),
                                     headers={"Content-Type": "application/activity+json"})
        assert response.status_code == 400, response.text
        assert "nested too deeply" in response.json()["error"]
    assert await row_counts(db) == before


async def test_a_deeply_nested_streaming_message_is_an_error_message_not_a_crash() -> None:
    """The WebSocket's subscribe messages are JSON too: a nested one answers the protocol's
    error message (before, the RecursionError escaped and ended the connection's reader)."""
    from typing import cast

    from starlette.websockets import WebSocket

    from server.api.streaming import Viewer, _Connection
    from server.state import EaselState

    sent: list[str] = []

    class RecordingSocket:
        async def send_text(self, text: str) -> None:
            sent.append(text)

    connection = _Connection(cast(WebSocket, RecordingSocket()), cast(EaselState, None),
                             cast(Viewer, None))
    for message in ("[" * 100_000, '{"type": "subscribe", "stream": ' + "[" * 5000 + "]" * 5000 + "}"):
        await connection.handle(message)
    assert [json.loads(text) for text in sent] == [
        {"error": "Invalid JSON message", "status": 400}] * 2
