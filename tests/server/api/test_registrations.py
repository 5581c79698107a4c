"""POST /api/v1/accounts: registration from an app, in each registration mode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from server.app import AppOptions, create_app
from server.db import Database
from server.models import OAuthToken, User
from server.settings import Settings
from tests.conftest import DOMAIN, authorized, make_token

Instance = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]
SIGN_UP = {"username": "carol", "email": "carol@example.com", "password": "a fine password",
           "agreement": "true", "locale": "en", "reason": "I paint birds"}


@pytest.fixture
def instance(settings: Settings) -> Instance:
    """A client for this test's database served with ``registrations`` set to a mode."""

    @asynccontextmanager
    async def serve(mode: str) -> AsyncIterator[httpx.AsyncClient]:
        application = create_app(settings.with_changes(registrations=mode),
                                 options=AppOptions(run_workers=False))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
                yield http

    return serve


async def app_client(http: httpx.AsyncClient, db: Database,
                     scopes: str = "read write follow") -> httpx.AsyncClient:
    return authorized(http, await make_token(db, None, scopes))


async def counts(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        users = await session.scalar(select(func.count(User.id))) or 0
        tokens = await session.scalar(select(func.count(OAuthToken.id))) or 0
    return users, tokens


async def find_user(db: Database, email: str) -> User:
    async with db.session() as session:
        user = await session.scalar(select(User).where(User.email == email))
    assert user is not None
    return user


async def test_approval_mode_registers_a_user_who_waits(
    client: httpx.AsyncClient, db: Database
) -> None:
    async with await app_client(client, db) as api:
        response = await api.post("/api/v1/accounts", data=SIGN_UP)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "read write follow"
    assert isinstance(body["created_at"], int) and body["access_token"]
    user = await find_user(db, "carol@example.com")
    assert user.approved is False and user.reason == "I paint birds" and user.confirmed_at is not None
    async with authorized(client, body["access_token"]) as carol:
        waiting = await carol.get("/api/v1/preferences")
        assert waiting.status_code == 403
        assert waiting.json() == {"error": "Your login is currently pending approval"}
        async with db.session() as session:
            await session.execute(update(User).where(User.id == user.id).values(approved=True))
            await session.commit()
        assert (await carol.get("/api/v1/preferences")).status_code == 200


async def test_open_mode_gives_a_working_token_at_once(instance: Instance, db: Database) -> None:
    async with instance("open") as http, await app_client(http, db, "write:accounts read") as api:
        response = await api.post("/api/v1/accounts", json={**SIGN_UP, "agreement": True})
        assert response.status_code == 200, response.text
        async with authorized(http, response.json()["access_token"]) as carol:
            prefs = await carol.get("/api/v1/preferences")
    assert prefs.status_code == 200
    user = await find_user(db, "carol@example.com")
    assert user.approved is True and user.locale == "en"


async def test_closed_mode_refuses_and_writes_nothing(instance: Instance, db: Database) -> None:
    async with instance("closed") as http, await app_client(http, db) as api:
        before = await counts(db)
        response = await api.post("/api/v1/accounts", data=SIGN_UP)
    assert response.status_code == 403
    assert response.json() == {"error": "Registrations are closed"}
    assert await counts(db) == before


async def test_a_bad_username_is_a_422_with_details_and_writes_nothing(
    client: httpx.AsyncClient, db: Database
) -> None:
    async with await app_client(client, db) as api:
        before = await counts(db)
        response = await api.post("/api/v1/accounts", data={**SIGN_UP, "username": "no spaces!"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "Validation failed: Username must contain only letters, numbers and underscores"
    assert body["details"] == {"username": [{
        "error": "ERR_INVALID", "description": "must contain only letters, numbers and underscores"}]}
    assert await counts(db) == before


async def test_every_bad_field_is_reported_together(client: httpx.AsyncClient, db: Database) -> None:
    async with await app_client(client, db) as api:
        before = await counts(db)
        response = await api.post("/api/v1/accounts", data={
            "username": "", "email": "not-an-email", "password": "short", "locale": "not a locale"})
    assert response.status_code == 422
    details = response.json()["details"]
    assert details["username"][0]["error"] == "ERR_BLANK"
    assert details["email"][0]["error"] == "ERR_INVALID"
    assert details["password"][0]["error"] == "ERR_TOO_SHORT"
    assert details["agreement"] == [{"error": "ERR_ACCEPTED", "description": "must be accepted"}]
    assert details["locale"][0]["error"] == "ERR_INCLUSION"
    assert response.json()["error"].startswith("Validation failed: Username can't be blank, Email is invalid")
    assert await counts(db) == before


async def test_taken_and_reserved_names_are_refused(
    client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    async with await app_client(client, db) as api:
        before = await counts(db)
        taken = await api.post("/api/v1/accounts", data={
            **SIGN_UP, "username": "Alice", "email": "ALICE@example.com"})
        reserved = await api.post("/api/v1/accounts", data={**SIGN_UP, "username": "admin"})
    assert taken.status_code == 422
    assert taken.json()["details"]["username"] == [
        {"error": "ERR_TAKEN", "description": "has already been taken"}]
    assert taken.json()["details"]["email"][0]["error"] == "ERR_TAKEN"
    assert reserved.status_code == 422
    assert reserved.json()["details"]["username"][0]["error"] == "ERR_RESERVED"
    assert await counts(db) == before


async def test_registration_needs_an_app_token_with_write_accounts(
    client: httpx.AsyncClient, db: Database
) -> None:
    before = await counts(db)
    anonymous = await client.post("/api/v1/accounts", data=SIGN_UP)
    assert anonymous.status_code == 401
    async with await app_client(client, db, "read") as api:
        narrow = await api.post("/api/v1/accounts", data=SIGN_UP)
    assert narrow.status_code == 403
    users, _ = await counts(db)
    assert users == before[0]
