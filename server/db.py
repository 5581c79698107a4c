"""The database engine and sessions, for SQLite (embedded) and PostgreSQL alike.

SQLite runs in WAL mode with a busy timeout and foreign keys on, so the web process and
the protection worker can share one file. This module never creates tables: the schema
belongs to the alembic migrations (``server/migrate.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import (
    ARRAY,
    BindParameter,
    ColumnElement,
    String,
    any_,
    bindparam,
    event,
    func,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from server import sqlite_driver
from server.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 15_000
DEFAULT_POOL_SIZE = 20  # Settings.database_pool_size

# A pooled PostgreSQL connection is pinged before it is handed out only when it has sat
# idle this long: one that was in use a moment ago is alive, and pinging every checkout
# (SQLAlchemy's pool_pre_ping) costs three round trips per session — BEGIN, ping, ROLLBACK.
# A connection that dies while in use (the server restarted under load) fails its request
# with a 503, and SQLAlchemy then drops every pooled connection as old as it.
PING_AFTER_IDLE_SECONDS = 1.0
DEFAULT_TIMEOUT = 30.0  # Settings.database_timeout


def make_engine(url: str, *, pool_size: int = DEFAULT_POOL_SIZE, timeout: float = DEFAULT_TIMEOUT,
                **kwargs: Any) -> AsyncEngine:
    """The engine for ``url``. PostgreSQL: ``pool_size`` connections kept open, half as
    many again opened for a burst (each new one costs a SCRAM handshake and a server process,
    milliseconds of CPU: a pool smaller than the requests in flight spends more on
    connecting than on querying).

    ``timeout`` (PostgreSQL; 0: none) bounds each statement, each connection attempt and
    each wait for a pooled connection, so that a server that stops answering (frozen,
    partitioned away, its disk stalled) costs a request a 503 after that long instead of a
    hang that ends only when the client gives up: without it a connection to a server that
    stopped answering waits on its socket forever, and so does every request queued behind
    the pool it fills. SQLite has its own bound (the busy timeout)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                               # sqlite_driver.INLINE reads run on the loop's thread
                               "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        _skip_empty_rollbacks(engine)
        sqlite_driver.install(engine)
        return engine
    if timeout > 0:
        # asyncpg: "timeout" for connecting, "command_timeout" for every statement (the
        # statement is then cancelled on the server and the connection discarded)
        kwargs = {"connect_args": {"timeout": timeout, "command_timeout": timeout},
                  "pool_timeout": timeout, **kwargs}
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size // 2,
                                 **kwargs)
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Ping a pooled connection on checkout once it has been idle PING_AFTER_IDLE_SECONDS;
    a dead one is replaced (the pool retries on DisconnectionError) before anyone uses it."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["easel_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("easel_idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # newly opened, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"connection lost while idle: {exc}") from exc


def _skip_empty_rollbacks(engine: AsyncEngine) -> None:
    """SQLite begins a transaction only before a write, so a session that only read has
    none to roll back when it closes; rolling back anyway costs a round trip to the
    connection's aiosqlite thread for nothing, on every read-only request."""
    dialect = engine.sync_engine.dialect
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            idle = not dbapi_connection._connection.in_transaction  # aiosqlite → sqlite3
        except Exception:  # closed, or not the connection we know: roll back as usual
            idle = False
        if not idle:
            rollback(dbapi_connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


class EaselSession(Session):
    """A session that hands the jobs it enqueued to the queue once they are committed."""


@event.listens_for(EaselSession, "after_commit")
def _dispatch_committed_jobs(session: Session) -> None:
    if session.in_nested_transaction():  # a SAVEPOINT released: nothing is committed yet
        return
    job_ids = session.info.pop("easel_job_ids", None)
    dispatch = session.info.get("dispatch_jobs")
    if job_ids and dispatch is not None:
        dispatch(job_ids)
    stream_events = session.info.pop("easel_stream_events", None)  # server.services.events
    publish = session.info.get("dispatch_events")
    if stream_events and publish is not None:
        publish(stream_events)


@event.listens_for(EaselSession, "after_rollback")
def _forget_rolled_back_jobs(session: Session) -> None:
    if session.in_nested_transaction():  # a SAVEPOINT rolled back: the rest may commit
        return
    session.info.pop("easel_job_ids", None)
    session.info.pop("easel_stream_events", None)


class Database:
    """One engine and its session factory; sessions commit explicitly.

    ``dispatch_jobs`` (set by the queue) is called with the ids of jobs a session added,
    after that session commits; a lost call is harmless, the reconciler finds due rows.
    """

    def __init__(self, url: str, *, federation_mode: str = "open", own_domain: str = "",
                 pool_size: int = DEFAULT_POOL_SIZE, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, timeout=timeout)
        self.dispatch_jobs: Callable[[list[tuple[int, str]]], None] | None = None
        # Set by the stream bus (server.streaming.bus): committed stream events go there.
        self.dispatch_events: Callable[[list[Any]], None] | None = None
        # federation_mode/own_domain: read by federation.domains (allowlist mode).
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=EaselSession,
            info={"dispatch_jobs": self._dispatch, "dispatch_events": self._dispatch_events,
                  "federation_mode": federation_mode, "own_domain": own_domain.lower()},
        )
        # Reads that need no transaction: PostgreSQL in autocommit (no BEGIN and ROLLBACK
        # round trips around one SELECT); SQLite begins no transaction for a read anyway.
        self._read_sessions = self.sessions if self.is_sqlite else async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False, sync_session_class=EaselSession, info=self.sessions.kw["info"])

    def _dispatch(self, job_ids: list[tuple[int, str]]) -> None:
        if self.dispatch_jobs is not None:
            self.dispatch_jobs(job_ids)

    def _dispatch_events(self, events: list[Any]) -> None:
        if self.dispatch_events is not None:
            self.dispatch_events(events)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings.effective_database_url, federation_mode=settings.federation_mode,
                   own_domain=settings.domain, pool_size=settings.database_pool_size,
                   timeout=settings.database_timeout)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

    def read_session(self) -> AsyncSession:
        """A session (``async with``) for a few hot reads that need no transaction (the
        token lookup of every request, a viewer's marks on a page): each statement sees what
        is committed when it runs. A write in it commits by itself, so it is for, at most,
        a bookkeeping stamp."""
        return self._read_sessions()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


# SQLSTATEs that say the server cannot be reached or will not take connections now (class 08:
# connection exceptions; 57P01-57P03: shut down by an operator, crashed, starting up), as
# opposed to a query the server refused.
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")
DRIVER_MODULES = ("sqlalchemy.", "asyncpg.", "aiosqlite.")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is down, restarting or cut off — worth a 503 and
    a retry — rather than a bug or a bad query (a 500)."""
    current: BaseException | None = exc
    for _ in range(10):  # the exception and what caused it
        if current is None:
            return False
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, PoolTimeout):
            return True  # no pooled connection came free in time: every one is stuck
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATES):
            return True
        if isinstance(current, (ConnectionError, TimeoutError)) and _raised_in_driver(current):
            return True  # connecting failed: refused, reset, timed out
        current = current.__cause__ or current.__context__
    return False


def _raised_in_driver(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(DRIVER_MODULES):
            return True
        traceback = traceback.tb_next
    return False


def insert_ignoring_conflict(session: AsyncSession, model: Any, values: dict[str, Any],
                             conflict: list[str]) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` for the session's dialect (SQLite, PostgreSQL)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(model).values(**values).on_conflict_do_nothing(index_elements=conflict)


# --------------------------------------------------------------------- bound lists

def bound_list(name: str, item: Any, *, json_lists: bool) -> Callable[[Any], ColumnElement[bool]]:
    """``column IN (the list bound as ``name``)`` for a statement built once and run with
    any list: one bound value, not an expanding ``IN (…)`` of one parameter per item, so
    the statement stays one compiled string and SQLAlchemy does not rewrite it and its
    parameters on every run. PostgreSQL: ``= ANY(array)``; SQLite (``json_lists``): the
    list as one JSON array read by ``json_each``. Bind it with ``list_value``."""
    if json_lists:
        values = func.json_each(bindparam(name, type_=String)).table_valued("value")
        return lambda column: column.in_(select(values.c.value))
    array: BindParameter[Any] = bindparam(name, type_=ARRAY(item))
    return lambda column: column == any_(array)


def list_value(items: Iterable[Any], *, json_lists: bool) -> Any:
    """What a ``bound_list`` parameter is given."""
    return json.dumps(list(items)) if json_lists else list(items)


def json_lists(session: AsyncSession) -> bool:
    """Whether ``bound_list`` binds lists as JSON for this session's database (not PostgreSQL)."""
    return session.get_bind().dialect.name != "postgresql"
