"""POST /api/v1/apps and GET /api/v1/apps/verify_credentials."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from server.db import Database
from server.models import OAuthApplication, User
from tests.conftest import authorized, make_token


async def app_count(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count(OAuthApplication.id))) or 0


async def test_registering_an_app_returns_its_credentials(client: httpx.AsyncClient, db: Database) -> None:
    response = await client.post("/api/v1/apps", data={
        "client_name": "Tusky", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
        "scopes": "read write follow push", "website": "https://tusky.app"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Tusky" and body["website"] == "https://tusky.app"
    assert body["scopes"] == ["read", "write", "follow", "push"]
    assert body["redirect_uri"] == "urn:ietf:wg:oauth:2.0:oob"
    assert body["redirect_uris"] == ["urn:ietf:wg:oauth:2.0:oob"]
    assert len(body["client_id"]) >= 32 and len(body["client_secret"]) >= 32
    assert isinstance(body["id"], str) and "vapid_key" in body
    async with db.session() as session:
        app = await session.scalar(select(OAuthApplication))
    assert app is not None and app.client_id == body["client_id"] and app.scopes == "read write follow push"


async def test_defaults_and_the_ways_clients_send_redirect_uris(client: httpx.AsyncClient) -> None:
    minimal = await client.post("/api/v1/apps", data={
        "client_name": "toot", "redirect_uris": "https://a.example/cb myapp://oauth"})
    assert minimal.status_code == 200
    assert minimal.json()["scopes"] == ["read"] and minimal.json()["website"] is None
    assert minimal.json()["redirect_uris"] == ["https://a.example/cb", "myapp://oauth"]
    lines = await client.post("/api/v1/apps", data={
        "client_name": "x", "redirect_uris": "https://a.example/cb\nurn:ietf:wg:oauth:2.0:oob"})
    assert lines.json()["redirect_uris"] == ["https://a.example/cb", "urn:ietf:wg:oauth:2.0:oob"]
    as_json = await client.post("/api/v1/apps", json={
        "client_name": "Elk", "redirect_uris": ["https://elk.example/cb", "https://elk.example/cb2"],
        "scopes": "read write"})
    assert as_json.status_code == 200
    assert as_json.json()["redirect_uris"] == ["https://elk.example/cb", "https://elk.example/cb2"]
    assert as_json.json()["scopes"] == ["read", "write"]


@pytest.mark.parametrize(("data", "message"), [
    ({"redirect_uris": "urn:ietf:wg:oauth:2.0:oob"}, "Validation failed: Application name can't be blank"),
    ({"client_name": " ", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"},
     "Validation failed: Application name can't be blank"),
    ({"client_name": "x" * 61, "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"},
     "Validation failed: Application name is too long (maximum is 60 characters)"),
    ({"client_name": "x"}, "Validation failed: Redirect URI can't be blank"),
    ({"client_name": "x", "redirect_uris": "/relative/path"},
     "Validation failed: Redirect URI must be an absolute URI."),
    ({"client_name": "x", "redirect_uris": "https://a.example/cb#frag"},
     "Validation failed: Redirect URI cannot contain a fragment."),
    ({"client_name": "x", "redirect_uris": "javascript:alert(1)"},
     "Validation failed: Redirect URI is forbidden by the server."),
    ({"client_name": "x", "redirect_uris": "https:///nohost"},
     "Validation failed: Redirect URI must be an absolute URI."),
    ({"client_name": "x", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": "read delete:all"},
     "Validation failed: Scopes doesn't match configured on the server."),
    ({"client_name": "x", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "website": "not a url"},
     "Validation failed: Application website is invalid"),
    ({"client_name": "x", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "website": "javascript:alert(1)"},
     "Validation failed: Application website is invalid"),
])
async def test_bad_registrations_are_refused_and_write_nothing(
    client: httpx.AsyncClient, db: Database, data: dict[str, str], message: str
) -> None:
    response = await client.post("/api/v1/apps", data=data)
    assert response.status_code == 422
    assert response.json() == {"error": message}
    assert await app_count(db) == 0


async def test_wrong_types_are_a_422(client: httpx.AsyncClient, db: Database) -> None:
    response = await client.post("/api/v1/apps", json={"client_name": {"a": 1},
                                                       "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"})
    assert response.status_code == 422
    malformed = await client.post("/api/v1/apps", content=b"{not json",
                                  headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert await app_count(db) == 0


async def test_verify_credentials_with_any_token_of_the_app(
    client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    for user in (alice, None):
        async with authorized(client, await make_token(db, user, "read")) as api:
            response = await api.get("/api/v1/apps/verify_credentials")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        assert body["name"] == "Test client" and body["website"] == "https://client.example"
        assert "client_secret" not in body and "client_id" not in body


async def test_verify_credentials_without_a_valid_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/apps/verify_credentials")).status_code == 401
    async with authorized(client, "not-a-token") as api:
        response = await api.get("/api/v1/apps/verify_credentials")
    assert response.status_code == 401 and response.json() == {"error": "The access token is invalid"}
