"""Fixtures of the web page tests: browsers (own cookie jars) signed in as alice or bob."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from server.models import User
from tests.server.web.test_studio import _browser


@pytest.fixture
async def alice_web(app: Starlette, client: httpx.AsyncClient,
                    alice: User) -> AsyncIterator[httpx.AsyncClient]:
    async with await _browser(app, client, alice) as browser:
        yield browser


@pytest.fixture
async def bob_web(app: Starlette, client: httpx.AsyncClient,
                  bob: User) -> AsyncIterator[httpx.AsyncClient]:
    async with await _browser(app, client, bob) as browser:
        yield browser
