"""Fixtures of the federation tests: a fake fediverse with the corpus authors, and this
instance's federation context on it. Tests that need more of the fediverse override
``fediverse`` (or ``fed``) in their module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from federation.context import FederationContext
from server.db import Database
from server.settings import Settings
from tests.federation.fediverse import Fediverse


@pytest.fixture
def fediverse() -> Fediverse:
    remote = Fediverse()
    remote.corpus_authors()
    return remote


@pytest.fixture
async def fed(settings: Settings, db: Database, fediverse: Fediverse
              ) -> AsyncIterator[FederationContext]:
    context = fediverse.context(settings, db)
    yield context
    await context.close()
