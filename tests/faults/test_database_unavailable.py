"""Given the database unreachable in the middle of a request (its connection cut, the
server refusing connections or starting up), I expect a 503 with Mastodon's
``{"error": ...}`` and a ``Retry-After``, answered rather than re-raised (so the server
keeps the client's connection); and any other error still a 500 that reveals nothing.

The real fault — PostgreSQL stopped under a real server — is ``test_postgres_restart``;
this is the same mapping on either database, in-process and fast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette

from server.db import database_unavailable


class SQLState(Exception):
    """A driver error carrying a SQLSTATE, as asyncpg's do."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def raised_in(module: str, exc: BaseException) -> BaseException:
    """``exc`` as raised by code in ``module`` (its traceback passes through it)."""
    namespace: dict[str, Any] = {"__name__": module, "exc": exc}
    exec("def fail():\n    raise exc\n", namespace)
    try:
        namespace["fail"]()
    except BaseException as raised:  # handed back to the test
        return raised
    raise AssertionError("unreachable")


def cut() -> BaseException:
    return DBAPIError("SELECT 1", {}, ConnectionResetError("connection was closed"),
                      connection_invalidated=True)


def starting_up() -> BaseException:
    try:
        raise DBAPIError("SELECT 1", {}, Exception("the database system is starting up")) \
            from SQLState("the database system is starting up", "57P03")
    except DBAPIError as exc:
        return exc


def refused() -> BaseException:
    return raised_in("asyncpg.connect_utils", ConnectionRefusedError(111, "Connection refused"))


def statement_timed_out() -> BaseException:  # EASEL_DATABASE_TIMEOUT, asyncpg's command_timeout
    return raised_in("asyncpg.connection", TimeoutError())


def pool_exhausted() -> BaseException:  # no pooled connection came free in time
    return PoolTimeout("QueuePool limit of size 20 overflow 10 reached, connection timed out")


UNAVAILABLE: list[Callable[[], BaseException]] = [cut, starting_up, refused, statement_timed_out,
                                                  pool_exhausted]


def a_bug() -> BaseException:
    return IntegrityError("INSERT", {}, Exception("duplicate key"))


def a_file_error() -> BaseException:
    return raised_in("server.media_store", FileNotFoundError(2, "No such file"))


@pytest.mark.parametrize("make", UNAVAILABLE)
def test_an_unreachable_database_is_told_apart(make: Callable[[], BaseException]) -> None:
    assert database_unavailable(make())


@pytest.mark.parametrize("make", [a_bug, a_file_error, lambda: ConnectionRefusedError(111, "x"),
                                  lambda: ValueError("nope")])
def test_other_errors_are_not_unavailability(make: Callable[[], BaseException]) -> None:
    assert not database_unavailable(make())


def failing_sessions(app: Starlette, make: Callable[[], BaseException]) -> None:
    db = app.state.easel.db

    @asynccontextmanager
    async def session() -> AsyncIterator[Any]:
        raise make()
        yield  # pragma: no cover

    db.session = session
    db.read_session = session  # the token lookup's sessions (server.db.read_session)


@pytest.mark.parametrize("make", UNAVAILABLE)
async def test_a_request_meeting_an_unreachable_database_gets_a_503(
    app: Starlette, client: httpx.AsyncClient, make: Callable[[], BaseException],
) -> None:
    failing_sessions(app, make)
    for method, path in (("POST", "/api/v1/statuses"), ("GET", "/api/v1/timelines/public"),
                         ("GET", "/api/v1/accounts/1")):
        answer = await client.request(method, path, headers={"Authorization": "Bearer whatever"},
                                      json={"status": "hello"} if method == "POST" else None)
        assert answer.status_code == 503, (path, answer.text)
        assert answer.json() == {"error": "Service temporarily unavailable"}
        assert answer.headers["Retry-After"] == "5"
    page = await client.get("/@alice")
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("make", [a_bug, a_file_error])
async def test_any_other_error_is_still_a_500_revealing_nothing(
    app: Starlette, client: httpx.AsyncClient, make: Callable[[], BaseException],
) -> None:
    failing_sessions(app, make)
    answer = await client.get("/api/v1/timelines/public")
    assert answer.status_code == 500
    assert answer.json() == {"error": "Internal server error"}
