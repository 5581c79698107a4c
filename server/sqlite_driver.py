"""SQLite statements in one trip to the connection's thread.

aiosqlite runs each sqlite3 call on a thread of its own per connection and hands every
call there and back: SQLAlchemy's adapter makes four such trips per statement (open a
cursor, execute, fetch the rows, close the cursor). Each trip costs about 100 µs of CPU
on a 2-core machine — the thread wakes, takes the GIL, wakes the event loop — while the
query itself, an indexed lookup, takes a few µs. ``install`` gives an engine's
connections a cursor that does all four in one trip, with the same results and errors.

A statement run with the execution option ``INLINE`` (``{"sqlite_inline": True}``) makes
no trip at all: it runs on the event loop's own thread. That is for the few hot reads that
are bounded by an index and never wait — the token lookup of every API request, the
viewer's marks on a shared timeline page. A read in WAL mode does not wait for writers,
and the connection's thread is idle while SQLAlchemy runs a statement (one at a time per
connection), so nothing else touches the sqlite3 connection meanwhile. Anything that may
scan, or write and so wait on the busy timeout, keeps its trip, so the loop never stalls.
PostgreSQL ignores the option.

It leans on two internals (aiosqlite's ``Connection._execute``/``_conn`` and SQLAlchemy's
``AsyncAdapt_aiosqlite_connection``); when either is missing (another version) the
engine keeps the stock adapter, which is slower and otherwise the same.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

try:  # SQLAlchemy ≥ 2.0.38 layout; absent elsewhere, and then nothing is installed
    from sqlalchemy.dialects.sqlite.aiosqlite import (
        AsyncAdapt_aiosqlite_connection,
        AsyncAdapt_aiosqlite_cursor,
    )
    from sqlalchemy.util.concurrency import await_
except ImportError:  # pragma: no cover - depends on the installed SQLAlchemy
    AsyncAdapt_aiosqlite_connection = AsyncAdapt_aiosqlite_cursor = None  # type: ignore[assignment,misc]

_Result = tuple[Any, list[Any], int, int | None]

# Execution options for a bounded, indexed read that may run on the event loop's thread.
INLINE = {"sqlite_inline": True}


def _run(connection: Any, operation: str, parameters: Any, many: bool) -> _Result:
    """On the connection's thread: execute, fetch everything, close the cursor."""
    cursor: sqlite3.Cursor = connection._conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


if AsyncAdapt_aiosqlite_cursor is not None:

    class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
        """A DBAPI cursor over aiosqlite whose every execute is one trip to its thread.

        There is no sqlite3 cursor kept between calls: the rows, description, row count
        and last row id of the latest statement are kept here instead."""

        __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

        def __init__(self, adapt_connection: Any) -> None:  # no trip to open a cursor
            self._adapt_connection = adapt_connection
            self._connection = adapt_connection._connection
            self._cursor = None  # type: ignore[assignment]
            self._soft_closed_memoized = {}  # type: ignore[assignment]
            self._rows = collections.deque()
            self._description: Any = None
            self._rowcount = -1
            self._lastrowid: int | None = None
            self._arraysize = 1  # fetchmany()'s default size, as sqlite3's

        @property
        def arraysize(self) -> int:
            return self._arraysize

        @arraysize.setter
        def arraysize(self, value: int) -> None:
            self._arraysize = value

        @property
        def description(self) -> Any:
            return self._description

        @property
        def rowcount(self) -> int:
            return self._rowcount

        @property
        def lastrowid(self) -> int:
            return self._lastrowid  # type: ignore[return-value]

        async def _async_soft_close(self) -> None:
            return None  # nothing is open between calls

        def close(self) -> None:
            self._rows.clear()

        def execute(self, operation: Any, parameters: Any = None) -> Any:
            try:
                return await_(self._trip(operation, parameters, False))
            except Exception as error:
                self._adapt_connection._handle_exception(error)

        def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
            try:
                return await_(self._trip(operation, seq_of_parameters, True))
            except Exception as error:
                self._adapt_connection._handle_exception(error)

        def execute_inline(self, operation: Any, parameters: Any = None) -> None:
            """Execute here, on the event loop's thread: for ``INLINE`` reads only."""
            if self._adapt_connection._execute_mutex.locked():  # a trip is under way
                return self.execute(operation, parameters)  # pragma: no cover
            try:
                # Awaited, though it never suspends: Core's AsyncConnection requires every
                # statement to await something (a greenlet switch here, no thread).
                await_(self._inline(operation, parameters))
            except Exception as error:
                self._adapt_connection._handle_exception(error)

        async def _inline(self, operation: Any, parameters: Any) -> None:
            self._keep(_run(self._connection, operation, parameters, False))

        async def _trip(self, operation: Any, parameters: Any, many: bool) -> None:
            async with self._adapt_connection._execute_mutex:
                result: _Result = await self._connection._execute(
                    _run, self._connection, operation, parameters, many)
            self._keep(result)

        def _keep(self, result: _Result) -> None:
            self._description, rows, self._rowcount, self._lastrowid = result
            self._rows = collections.deque(rows)

        def nextset(self) -> None:
            return None  # sqlite3 has one result set per statement

        def setinputsizes(self, *inputsizes: Any) -> None:
            return None

    class OneTripConnection(AsyncAdapt_aiosqlite_connection):
        __slots__ = ()
        _cursor_cls = OneTripCursor


def supported() -> bool:
    """Whether the installed aiosqlite and SQLAlchemy have what ``install`` uses."""
    try:
        import aiosqlite
    except ImportError:  # pragma: no cover
        return False
    return (AsyncAdapt_aiosqlite_cursor is not None
            and all(hasattr(AsyncAdapt_aiosqlite_cursor, slot) for slot in (  # set in __init__
                "_adapt_connection", "_connection", "_cursor", "_rows", "_soft_closed_memoized"))
            and hasattr(aiosqlite.Connection, "_execute")
            and isinstance(getattr(aiosqlite.Connection, "_conn", None), property)
            and hasattr(AsyncAdapt_aiosqlite_connection, "_execute_mutex"))


def install(engine: AsyncEngine) -> bool:
    """Make ``engine`` (sqlite+aiosqlite) open its connections with ``OneTripCursor`` and
    run ``INLINE`` statements on the loop's thread; False, changing nothing, where the
    installed versions do not allow it. The engine's sqlite3 connections must be opened
    with ``check_same_thread=False`` (``server.db.make_engine`` does)."""
    dialect = engine.sync_engine.dialect
    if not supported() or dialect.driver != "aiosqlite":
        return False
    execute = dialect.do_execute

    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        if (context is not None and isinstance(cursor, OneTripCursor)
                and context.execution_options.get("sqlite_inline")):
            cursor.execute_inline(statement, parameters)
        else:
            execute(cursor, statement, parameters, context)

    dialect.do_execute = do_execute  # type: ignore[method-assign]

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        import aiosqlite

        connection: Any = aiosqlite.connect(*cargs, **cparams)
        connection._thread.daemon = True  # as SQLAlchemy's own adapter does
        return OneTripConnection(dialect.loaded_dbapi, await_(connection))

    return True
