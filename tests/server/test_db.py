"""``server.db``: SQLite read-only sessions skip the rollback nobody needs, and a session
that wrote still has its uncommitted writes rolled back."""

from __future__ import annotations

from typing import Any

import aiosqlite
import pytest
from sqlalchemy import QueuePool, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import Database
from server.models import Tag
from server.settings import load_settings


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


# ---------------------------------------------------------------- read sessions, pings

async def test_a_read_session_reads_what_is_committed(db: Database) -> None:
    async with db.session() as session:
        session.add(Tag(name="committed", display_name="committed"))
        await session.commit()
    async with db.read_session() as session:
        assert list(await session.scalars(select(Tag.name))) == ["committed"]
        if db.is_sqlite:
            assert db._read_sessions is db.sessions  # SQLite reads begin nothing anyway
            return
        assert await _autocommit(session)  # no BEGIN/ROLLBACK round trips around the read
    async with db.session() as session:  # pooled connections are back to transactions
        assert not await _autocommit(session)


async def _autocommit(session: AsyncSession) -> bool:
    raw = await (await session.connection()).get_raw_connection()
    return bool(raw.dbapi_connection.autocommit)  # type: ignore[union-attr]


@pytest.fixture
def postgres(db: Database) -> Database:
    if db.is_sqlite:
        pytest.skip("pooled connections are pinged on PostgreSQL")
    return db


async def _backend_pid(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(text("SELECT pg_backend_pid()")))


async def test_a_connection_in_use_a_moment_ago_is_not_pinged(
    postgres: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[object] = []
    dialect = postgres.engine.sync_engine.dialect
    ping = dialect.do_ping

    def counted(connection: Any) -> bool:
        pings.append(connection)
        return bool(ping(connection))

    monkeypatch.setattr(dialect, "do_ping", counted)
    first = await _backend_pid(postgres)
    assert [await _backend_pid(postgres) for _ in range(5)] == [first] * 5
    assert pings == []


async def test_an_idle_connection_that_died_is_replaced_before_use(
    postgres: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _backend_pid(postgres)  # now idle in the pool
    other = Database(postgres.url)
    try:
        async with other.session() as session:  # the server ends it, as a restart would
            assert await session.scalar(text("SELECT pg_terminate_backend(:pid)"),
                                        {"pid": first})
    finally:
        await other.dispose()
    monkeypatch.setattr("server.db.PING_AFTER_IDLE_SECONDS", 0.0)  # idle long enough
    replacement = await _backend_pid(postgres)  # no error: pinged, found dead, replaced
    assert replacement != first


def test_the_postgresql_pool_keeps_the_configured_connections() -> None:
    settings = load_settings({"EASEL_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
                     "EASEL_DATABASE_POOL_SIZE": "7"})
    database = Database.from_settings(settings)  # nothing connects until it is used
    try:
        pool = database.engine.sync_engine.pool
        assert isinstance(pool, QueuePool)
        assert (pool.size(), pool._max_overflow) == (7, 3)
    finally:
        database.engine.sync_engine.dispose()
