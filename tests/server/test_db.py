"""``server.db``: SQLite read-only sessions skip the rollback nobody needs, and a session
that wrote still has its uncommitted writes rolled back."""

from __future__ import annotations

from typing import Any

import aiosqlite
import pytest
from sqlalchemy import func, select, text

from server.db import Database
from server.models import Tag


@pytest.fixture
def rollbacks(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    if not db.engine.url.get_backend_name().startswith("sqlite"):
        pytest.skip("the skipped rollback is SQLite's (PostgreSQL always has a transaction)")
    calls: list[object] = []
    original = aiosqlite.Connection.rollback

    async def counted(self: Any) -> None:
        calls.append(self)
        await original(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counted)
    return calls


async def test_a_session_that_only_read_is_not_rolled_back(
    db: Database, rollbacks: list[object]
) -> None:
    async with db.session() as session:
        assert await session.scalar(text("SELECT 1")) == 1
    assert rollbacks == []


async def test_uncommitted_writes_are_still_rolled_back(
    db: Database, rollbacks: list[object]
) -> None:
    async with db.session() as session:
        session.add(Tag(name="kept", display_name="kept"))
        await session.commit()
    async with db.session() as session:
        session.add(Tag(name="dropped", display_name="dropped"))
        await session.flush()  # written inside the transaction, never committed
    assert len(rollbacks) == 1
    async with db.session() as session:
        names = set(await session.scalars(select(Tag.name)))
        assert names == {"kept"}
        assert await session.scalar(select(func.count()).select_from(Tag)) == 1
