"""``server.db``: SQLite read-only sessions skip the rollback nobody needs, and a session
that wrote still has its uncommitted writes rolled back."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import QueuePool, func, select, text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import Database, database_unavailable
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


async def test_a_statement_past_the_timeout_is_cancelled_and_the_pool_carries_on(
    postgres: Database,
) -> None:
    bounded = Database(postgres.url, timeout=2.0)
    try:
        first = await _backend_pid(bounded)
        started = time.monotonic()
        with pytest.raises(TimeoutError) as raised:
            async with bounded.session() as session:
                await session.execute(text("SELECT pg_sleep(30)"))
        assert time.monotonic() - started < 5
        assert database_unavailable(raised.value)  # answered 503, Retry-After
        # the server stops the statement (asyncpg cancels it): soon nothing is left running
        deadline = time.monotonic() + 10  # far below pg_sleep(30)
        while True:
            async with postgres.session() as session:
                running = await session.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
                    "AND state = 'active'"))
            if running == 0:
                break
            assert time.monotonic() < deadline, "the cancelled statement still runs"
            await asyncio.sleep(0.1)
        # and the next session of the same pool works
        assert isinstance(await _backend_pid(bounded), int) and first > 0
    finally:
        await bounded.dispose()


async def test_connecting_to_a_server_that_never_answers_times_out() -> None:
    silent = socket.socket()  # listens (the handshake completes) and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    database = Database(f"postgresql+asyncpg://easel:easel@127.0.0.1:{port}/easel", timeout=2.0)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as raised:
            async with database.session() as session:
                await session.execute(text("SELECT 1"))
        assert time.monotonic() - started < 5
        assert database_unavailable(raised.value)
    finally:
        await database.dispose()
        silent.close()


async def test_waiting_for_a_pooled_connection_times_out(postgres: Database) -> None:
    bounded = Database(postgres.url, pool_size=1, timeout=2.0)  # one connection, no overflow
    try:
        async with bounded.session() as holder:
            await holder.execute(text("SELECT 1"))  # holds the only connection
            started = time.monotonic()
            with pytest.raises(PoolTimeout) as raised:
                async with bounded.session() as session:
                    await session.execute(text("SELECT 1"))
            assert time.monotonic() - started < 5
        assert database_unavailable(raised.value)
        assert isinstance(await _backend_pid(bounded), int)  # free again
    finally:
        await bounded.dispose()


def test_no_timeout_when_it_is_zero() -> None:
    settings = load_settings({"EASEL_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
                              "EASEL_DATABASE_TIMEOUT": "0"})
    assert settings.database_timeout == 0
    database = Database.from_settings(settings)  # nothing connects until it is used
    try:
        assert database.engine.sync_engine.pool._timeout == 30  # SQLAlchemy's own default
    finally:
        database.engine.sync_engine.dispose()


async def test_a_bound_list_matches_exactly_its_items_on_either_database(db: Database) -> None:
    """``bound_list``: one statement for any list (JSON on SQLite, an array on
    PostgreSQL); ids as large as Easel's (near 2**63) match exactly, an empty list nothing."""
    from sqlalchemy import BigInteger

    from server.db import bound_list, json_lists, list_value
    from server.ids import new_id

    ids = [new_id() for _ in range(3)]
    async with db.session() as session:
        session.add_all(Tag(id=tag_id, name=f"bound{n}", display_name=f"bound{n}")
                        for n, tag_id in enumerate(ids))
        await session.commit()
        as_json = json_lists(session)
        statement = select(Tag.name).where(bound_list("ids", BigInteger, json_lists=as_json)(Tag.id))
        for wanted, names in ((ids[:2], {"bound0", "bound1"}), ([ids[2], ids[2] + 1], {"bound2"}),
                              ([], set())):
            found = set(await session.scalars(statement, {"ids": list_value(wanted, json_lists=as_json)}))
            assert found == names
