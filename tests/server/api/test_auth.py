"""Tokens and scopes, through an endpoint that needs them (GET /api/v1/... is added by
each resource; here the auth helpers are driven directly through a tiny app)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.api.auth import require
from server.app import create_app
from server.db import Database
from server.errors import EXCEPTION_HANDLERS
from server.models import User
from server.services.scopes import ScopeError, grants, parse_scopes
from server.settings import Settings
from tests.conftest import make_token


def test_granular_scopes_follow_mastodon() -> None:
    assert grants(["read"], "read:statuses")
    assert grants(["read:statuses"], "read:statuses")
    assert not grants(["read:accounts"], "read:statuses")
    assert not grants(["read"], "write:statuses")
    assert grants(["follow"], "write:follows") and grants(["follow"], "read:blocks")
    assert not grants(["follow"], "write:statuses")
    assert grants(["admin:read"], "admin:read:accounts")
    assert not grants(["write"], "push")
    assert parse_scopes("read write:statuses  push") == ["read", "write:statuses", "push"]
    assert parse_scopes("read,write") == ["read", "write"]
    assert parse_scopes(None) == ["read"]
    with pytest.raises(ScopeError):
        parse_scopes("read delete:everything")


@pytest.fixture
async def probe(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    easel_app = create_app(settings)

    async def whoami(request: Request) -> JSONResponse:
        request.app.state.easel = easel_app.state.easel
        auth = await require(request, request.query_params["scope"])
        return JSONResponse({"username": auth.account.username if auth.account else None})

    app = Starlette(routes=[Route("/api/v1/probe", whoami)],
                    exception_handlers=EXCEPTION_HANDLERS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://easel.test") as http:
        yield http
    await easel_app.state.easel.db.dispose()


async def test_a_token_with_the_scope_passes(probe: httpx.AsyncClient, db: Database, alice: User) -> None:
    token = await make_token(db, alice, "read")
    response = await probe.get("/api/v1/probe", params={"scope": "read:statuses"},
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"username": "alice"}


async def test_missing_invalid_or_narrow_tokens_are_refused(
    probe: httpx.AsyncClient, db: Database, alice: User
) -> None:
    token = await make_token(db, alice, "read")
    none = await probe.get("/api/v1/probe", params={"scope": "read"})
    assert none.status_code == 401 and none.json() == {"error": "The access token is invalid"}
    bad = await probe.get("/api/v1/probe", params={"scope": "read"},
                          headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    narrow = await probe.get("/api/v1/probe", params={"scope": "write:statuses"},
                             headers={"Authorization": f"Bearer {token}"})
    assert narrow.status_code == 403
    assert narrow.json() == {"error": "This action is outside the authorized scopes"}


async def test_an_app_token_cannot_act_as_a_user(probe: httpx.AsyncClient, db: Database) -> None:
    token = await make_token(db, None, "read")
    response = await probe.get("/api/v1/probe", params={"scope": "read"},
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert response.json() == {"error": "This method requires an authenticated user"}
