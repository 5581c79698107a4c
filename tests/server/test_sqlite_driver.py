"""``server.sqlite_driver``: every SQLite statement is one trip to the connection's thread
(an ``INLINE`` read none), with the rows, counts, ids and errors the stock adapter gives."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiosqlite
import pytest
from sqlalchemy import CursorResult, bindparam, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from server import sqlite_driver
from server.db import Database, make_engine
from server.sqlite_driver import INLINE


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with database.session() as session:
        await session.execute(text(
            "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)"))
        await session.commit()
    yield database
    await database.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of each function sent to an aiosqlite connection's thread, in order."""
    sent: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return sent


def test_the_installed_versions_are_supported() -> None:
    # pyproject pins versions that have what the driver uses; if this fails after an
    # upgrade, Easel still works (stock adapter), only slower: look at sqlite_driver.
    assert sqlite_driver.supported()


async def test_a_select_is_one_trip(sqlite_db: Database, trips: list[str]) -> None:
    async with sqlite_db.session() as session:
        await session.execute(text("INSERT INTO things (name) VALUES ('a'), ('b')"))
        await session.commit()
    trips.clear()
    async with sqlite_db.session() as session:
        rows = (await session.execute(text("SELECT id, name FROM things ORDER BY id"))).all()
    assert [tuple(row) for row in rows] == [(1, "a"), (2, "b")]
    assert trips == ["_run"]


async def test_an_inline_read_makes_no_trip_and_reads_the_same(
    sqlite_db: Database, trips: list[str]
) -> None:
    async with sqlite_db.session() as session:
        await session.execute(text("INSERT INTO things (name) VALUES ('a'), ('b'), ('c')"))
        await session.commit()
    query = text("SELECT name FROM things WHERE id IN :ids ORDER BY id").bindparams(
        bindparam("ids", expanding=True))
    trips.clear()
    seen: list[str] = []
    loop_thread = threading.get_ident()

    def on_thread(name: str) -> str:
        seen.append("loop" if threading.get_ident() == loop_thread else "other")
        return name

    async with sqlite_db.session() as session:
        raw = await session.connection()
        dbapi = (await raw.get_raw_connection()).driver_connection
        assert dbapi is not None
        await dbapi.create_function("on_thread", 1, on_thread)
        names = list(await session.scalars(
            text("SELECT on_thread(name) FROM things WHERE id IN (1, 3) ORDER BY id"),
            execution_options=INLINE))
        tripped = list(await session.scalars(query, {"ids": [2, 3]}))
    assert names == ["a", "c"] and tripped == ["b", "c"]
    assert seen == ["loop", "loop"]  # the inline read ran here, on the event loop's thread
    assert trips == ["create_function", "_run"]  # only the plain read went to the thread


async def test_writes_report_counts_and_ids(sqlite_db: Database) -> None:
    async with sqlite_db.session() as session:
        inserted = await session.execute(text("INSERT INTO things (name) VALUES ('x')"))
        assert cast(CursorResult[Any], inserted).lastrowid == 1
        many = await session.execute(text("INSERT INTO things (name) VALUES (:name)"),
                                     [{"name": "y"}, {"name": "z"}])
        assert cast(CursorResult[Any], many).rowcount == 2
        updated = await session.execute(text("UPDATE things SET name = name || '!'"))
        assert cast(CursorResult[Any], updated).rowcount == 3
        await session.commit()
    async with sqlite_db.session() as session:
        names = list(await session.scalars(text("SELECT name FROM things ORDER BY id"),
                                           execution_options=INLINE))
    assert names == ["x!", "y!", "z!"]


async def test_errors_are_the_usual_ones_and_lose_nothing(sqlite_db: Database) -> None:
    async with sqlite_db.session() as session:
        await session.execute(text("INSERT INTO things (name) VALUES ('only')"))
        await session.commit()
    async with sqlite_db.session() as session:
        with pytest.raises(IntegrityError):
            await session.execute(text("INSERT INTO things (name) VALUES ('only')"))
        await session.rollback()
        with pytest.raises(OperationalError, match="no such table"):
            await session.execute(text("SELECT * FROM nothing_here"), execution_options=INLINE)
        await session.rollback()
        # the connection is still good for both kinds of statement afterwards
        assert await session.scalar(text("SELECT count(*) FROM things")) == 1
        assert await session.scalar(text("SELECT name FROM things"),
                                    execution_options=INLINE) == "only"


async def test_an_uncommitted_write_seen_inline_is_rolled_back(sqlite_db: Database) -> None:
    async with sqlite_db.session() as session:
        await session.execute(text("INSERT INTO things (name) VALUES ('pending')"))
        assert await session.scalar(text("SELECT count(*) FROM things"),
                                    execution_options=INLINE) == 1  # its own transaction
    async with sqlite_db.session() as session:
        assert await session.scalar(text("SELECT count(*) FROM things")) == 0


def test_other_engines_are_left_alone() -> None:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        assert sqlite_driver.install(engine) is False
    finally:
        engine.sync_engine.dispose()


async def test_make_engine_installs_it(tmp_path: Path, trips: list[str]) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}")
    try:
        async with engine.connect() as connection:
            trips.clear()
            assert (await connection.execute(text("SELECT 41 + 1"))).scalar() == 42
        assert trips == ["_run"]
    finally:
        await engine.dispose()


async def test_fetchmany_and_partitions_use_the_cursors_arraysize(sqlite_db: Database) -> None:
    async with sqlite_db.session() as session:
        await session.execute(text("INSERT INTO things (name) VALUES (:name)"),
                              [{"name": f"n{i}"} for i in range(5)])
        await session.commit()
        result = await session.execute(text("SELECT name FROM things ORDER BY id"))
        assert [row.name for row in result.fetchmany()] == ["n0"]  # sqlite3's default: 1
        assert [row.name for row in result.fetchmany(2)] == ["n1", "n2"]
        partitions = (await session.execute(text("SELECT name FROM things ORDER BY id"),
                                            execution_options=INLINE)).partitions()
        assert [[row.name for row in part] for part in partitions] == [
            ["n0"], ["n1"], ["n2"], ["n3"], ["n4"]]


async def test_an_inline_read_works_through_core_connections_too(sqlite_db: Database) -> None:
    # AsyncConnection insists that every statement awaits something (AwaitRequired).
    async with sqlite_db.engine.connect() as connection:
        assert (await connection.execute(text("SELECT 6 * 7"),
                                         execution_options=INLINE)).scalar() == 42
        assert await connection.scalar(text("SELECT 'x'"), execution_options=INLINE) == "x"
        result = await connection.exec_driver_sql("SELECT count(*) FROM things",
                                                  execution_options=INLINE)
        assert result.scalar() == 0
