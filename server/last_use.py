"""Stamping a login as used: when a token or a web login was last used, and from where.

Why it exists: ``last_used_at`` (a token), ``last_active_at`` (its user: the instance's
active-user counts) and the address the login was used from (``server.services.user_ips``,
for moderators) are written at most every ``TOUCH_INTERVAL`` per token or web login —
otherwise every request would be a write. The write is its own transaction, and it is
made once the request's own sessions are closed: ``LastUseMiddleware`` gives each HTTP
request a list where authentication notes a ``Use``, and writes what was noted after the
app has answered. (Written while the request held its own session, a burst of requests
of a login unused for a while would each hold one pooled connection while waiting for a
second: past the pool's size, every one of them stalls until the pool's timeout.)

A connection without that list — a WebSocket (which lasts as long as its stream), or an
app built without the middleware — writes at once, from outside any session of its own;
a server-sent event stream writes its list (``flush``) before its first byte.

What it must never do: fail or delay a request's answer (a write that fails is logged
and dropped: the next use stamps again), or write while the request holds a connection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from server.db import Database
from server.models import OAuthToken, User
from server.services import user_ips
from server.settings import Settings

log = logging.getLogger(__name__)

# A token's or web login's use is written at most this often (it would be a write per request).
TOUCH_INTERVAL = timedelta(minutes=5)
PENDING_KEY = "easel.last_use"


@dataclass(frozen=True)
class Use:
    """A login used at ``at`` from ``address``: the token (None: a web login) and its user."""

    token_id: int | None
    user_id: int | None
    address: str | None
    at: datetime


def due(last: datetime | None, now: datetime) -> bool:
    """Whether a login last stamped at ``last`` is to be stamped again ``now``."""
    return last is None or now - last > TOUCH_INTERVAL


async def write(db: Database, settings: Settings, uses: Sequence[Use]) -> None:
    """The stamps and addresses of ``uses``, in one transaction of their own: each token,
    user and (user, address) written once (a request carrying both a token and a web
    login notes its user twice)."""
    tokens: dict[int, datetime] = {}
    users: dict[int, datetime] = {}
    addresses: dict[tuple[int, str | None], None] = {}  # in order, once each
    for use in uses:
        if use.token_id is not None:
            tokens[use.token_id] = max(use.at, tokens.get(use.token_id, use.at))
        if use.user_id is not None:
            users[use.user_id] = max(use.at, users.get(use.user_id, use.at))
            addresses[use.user_id, use.address] = None
    if not (tokens or users):
        return
    async with db.session() as session:
        for token_id, at in tokens.items():
            await session.execute(update(OAuthToken).where(OAuthToken.id == token_id)
                                  .values(last_used_at=at))
        for user_id, at in users.items():
            await session.execute(update(User).where(User.id == user_id)
                                  .values(last_active_at=at))
        for user_id, address in addresses:
            await user_ips.record_ip(session, settings, user_id, address)
        await session.commit()


async def note(connection: HTTPConnection, db: Database, settings: Settings, use: Use) -> None:
    """Have ``use`` written once the request is answered (at once without the middleware's
    list: the caller must then hold no session)."""
    pending = connection.scope.get(PENDING_KEY)
    if pending is not None:
        pending.append(use)
    else:
        await _written(db, settings, [use])


async def flush(connection: HTTPConnection, db: Database, settings: Settings) -> None:
    """Write what the request noted now, not when it ends: for a response that lasts (a
    server-sent event stream ends when its client leaves). The caller holds no session."""
    pending = connection.scope.get(PENDING_KEY)
    if pending:
        uses = list(pending)
        pending.clear()
        await _written(db, settings, uses)


async def _written(db: Database, settings: Settings, uses: Sequence[Use]) -> None:
    try:
        await write(db, settings, uses)
    except Exception:  # a stamp is best effort: the next use writes it again
        log.warning("could not record the use of a login (users %s)",
                    sorted({use.user_id for use in uses if use.user_id is not None}),
                    exc_info=True)


class LastUseMiddleware:
    """Writes the uses an HTTP request noted (``note``) after the app has answered it."""

    def __init__(self, app: ASGIApp, *, db: Database, settings: Settings) -> None:
        self.app = app
        self.db = db
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pending: list[Use] = []
        scope[PENDING_KEY] = pending
        try:
            await self.app(scope, receive, send)
        finally:
            if pending:
                await _written(self.db, self.settings, pending)
