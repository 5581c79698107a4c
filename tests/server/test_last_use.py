"""``server.last_use``: a login's use is written once the request is answered.

I expect a burst of requests by a token unused for a while — more than the database pool
holds — to be answered, every one (each request holding its own session while waiting
for another connection to write the stamp stalled them all until the pool's timeout);
the token and its user to be stamped and the address recorded once the requests are
answered; and a stamp that cannot be written to be logged and dropped, never an error
for the request.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import event, func, select
from starlette.responses import Response

from server import last_use
from server.app import create_app
from server.db import Database
from server.ids import utcnow
from server.models import OAuthToken, User, UserIp
from server.settings import Settings
from server.web.session import SESSION_COOKIE, log_in
from tests.conftest import make_token

BURST = 40  # past any pool here: SQLite 5 + 10 overflow, PostgreSQL 20 + 10


@pytest.mark.parametrize("through", ["shared page", "web page"])
async def test_a_burst_of_a_stale_logins_requests_is_answered_and_stamped_once_done(
        settings: Settings, db: Database, alice: User, through: str) -> None:
    """Both paths look the login up in a session they keep open for more: a cached public
    page laid over with the viewer's marks, and a signed-in web page."""
    token = await make_token(db, alice)
    # The pool's wait is the database timeout: the burst's last requests wait for the first
    # ones, which a loaded machine may take seconds over (the bug would still show, as 503s).
    app = create_app(replace(settings, database_timeout=20.0, public_cache_seconds=60))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4711))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url=settings.base_url) as http:
        if through == "shared page":
            assert (await http.get("/api/v1/timelines/public")).status_code == 200  # cached
            path, headers = "/api/v1/timelines/public", {"Authorization": f"Bearer {token}"}
        else:
            cookie = Response()
            log_in(cookie, app.state.easel, alice)
            value = cookie.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
            path, headers = "/studio", {"Cookie": f"{SESSION_COOKIE}={value}"}
        answers = await asyncio.wait_for(asyncio.gather(
            *(http.get(path, headers=headers) for _ in range(BURST))), 60)
    assert [a.status_code for a in answers] == [200] * BURST, answers[0].text[:300]
    async with db.session() as session:
        stamped = await session.scalar(select(OAuthToken.last_used_at))
        user = await session.get(User, alice.id)
        addresses = list(await session.scalars(select(UserIp.ip)))
    assert user is not None and user.last_active_at is not None
    assert (stamped is not None) == (through == "shared page")
    assert addresses == ["203.0.113.9"]


async def test_a_stamp_that_cannot_be_written_is_logged_not_an_error(
        client: httpx.AsyncClient, db: Database, alice: User, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    async def broken(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(last_use, "write", broken)
    token = await make_token(db, alice)
    with caplog.at_level(logging.WARNING, logger="server.last_use"):
        answer = await client.get("/api/v1/accounts/verify_credentials",
                                  headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert "could not record the use of a login" in caplog.text
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(UserIp)) == 0


async def test_the_uses_a_request_noted_are_written_once_each(
        settings: Settings, db: Database, alice: User, bob: User) -> None:
    """A request carrying both a token and a web login notes its user twice: one write."""
    await make_token(db, alice)
    async with db.session() as session:
        token_id = await session.scalar(select(OAuthToken.id))
    now, later = utcnow(), utcnow() + timedelta(seconds=1)
    statements: list[str] = []
    listen = event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    listen(lambda conn, cursor, statement, *rest: statements.append(statement))
    await last_use.write(db, settings, [
        last_use.Use(token_id, alice.id, "192.0.2.1", now),
        last_use.Use(None, alice.id, "192.0.2.1", later),
        last_use.Use(None, bob.id, "192.0.2.2", now),
        last_use.Use(None, alice.id, "192.0.2.3", now)])
    writes = [s.split()[0:3] for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT"))]
    assert sum(1 for w in writes if w[:2] == ["UPDATE", "users"]) == 2, writes
    assert sum(1 for w in writes if w[:2] == ["UPDATE", "oauth_tokens"]) == 1, writes
    assert sum(1 for w in writes if w[:3] == ["INSERT", "INTO", "user_ips"]) == 3, writes
    async with db.session() as session:
        stamped = await session.get(User, alice.id)
        assert stamped is not None and stamped.last_active_at is not None
        assert abs(stamped.last_active_at.replace(tzinfo=None) - later.replace(tzinfo=None)) \
            < timedelta(milliseconds=1)  # the latest of its uses
        addresses = sorted(await session.scalars(select(UserIp.ip)))
    assert addresses == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
