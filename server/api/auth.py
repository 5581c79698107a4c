"""Bearer-token authentication and scope checks for API endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from server.errors import ApiError
from server.ids import utcnow
from server.models import Account, OAuthApplication, OAuthToken, User
from server.services import user_ips
from server.services.scopes import grants
from server.services.tokens import token_digest
from server.sqlite_driver import INLINE
from server.state import easel

# last_used_at is written at most this often per token (it would be a write per request).
TOUCH_INTERVAL = timedelta(minutes=5)


# One query: the token, its app and user (joined by the model), and the account. Built
# once: every authenticated request runs it. An indexed lookup of one row, so on SQLite it
# runs on the loop's thread (server.sqlite_driver.INLINE).
_TOKEN_QUERY = (
    select(OAuthToken, Account)
    .outerjoin(Account, Account.id == select(User.account_id).where(
        User.id == OAuthToken.user_id).scalar_subquery())
    .where(OAuthToken.token_digest == bindparam("digest"), OAuthToken.revoked_at.is_(None))
    .execution_options(**INLINE)
)


@dataclass
class Auth:
    token: OAuthToken
    application: OAuthApplication
    scopes: list[str]
    user: User | None
    account: Account | None

    def require_user(self) -> tuple[User, Account]:
        if self.user is None or self.account is None:
            raise ApiError(422, "This method requires an authenticated user")
        return self.user, self.account


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    # Mastodon also accepts ?access_token= (used by streaming and some clients).
    return request.query_params.get("access_token") or None


async def authenticate(request: Request, session: AsyncSession | None = None) -> Auth | None:
    """The request's token, if it presents a valid one; ApiError 401 if it presents a bad one.
    ``session``: a read session (``Database.read_session``) to look it up in, for a request
    that reads more there; by default one of its own."""
    cached = request.scope.get("easel.auth")
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        return None
    if session is None:
        async with easel(request).db.read_session() as own:
            auth = await _look_up(own, token, request)
    else:
        auth = await _look_up(session, token, request)
    request.scope["easel.auth"] = auth
    return auth


async def _look_up(session: AsyncSession, token: str, request: Request) -> Auth:
    row = (await session.execute(_TOKEN_QUERY, {"digest": token_digest(token)})).first()
    if row is None:
        raise ApiError(401, "The access token is invalid")
    found, account = row
    user = found.user
    if user is not None:
        if user.disabled or (account is not None and account.suspended_at is not None):
            raise ApiError(403, "Your login is currently disabled")
        if user.confirmed_at is None:
            raise ApiError(403, "Your login is missing a confirmed e-mail address")
        if not user.approved:
            raise ApiError(403, "Your login is currently pending approval")
    now = utcnow()
    if found.last_used_at is None or now - found.last_used_at > TOUCH_INTERVAL:
        await _touch(request, found.id, user.id if user is not None else None, now)
    return Auth(token=found, application=found.application, scopes=found.scopes.split(),
                user=user, account=account)


async def _touch(request: Request, token_id: int, user_id: int | None,
                 now: datetime) -> None:
    """Stamp the token (and its user) as used now and record the address it was used
    from, in a transaction of its own: the lookup's session may be a read session, where
    each write would commit by itself and the address's expiry job could be lost."""
    state = easel(request)
    async with state.db.session() as session:
        await session.execute(update(OAuthToken).where(OAuthToken.id == token_id)
                              .values(last_used_at=now))
        if user_id is not None:
            await session.execute(update(User).where(User.id == user_id)
                                  .values(last_active_at=now))
            await user_ips.record_ip(session, state.settings, user_id, user_ips.client_ip(request))
        await session.commit()


async def require(request: Request, scope: str, *, user: bool = True) -> Auth:
    """A valid token with ``scope`` (and, by default, a user behind it), or 401/403/422."""
    auth = await authenticate(request)
    if auth is None:
        raise ApiError(401, "The access token is invalid")
    if not grants(auth.scopes, scope):
        raise ApiError(403, "This action is outside the authorized scopes")
    if user:
        auth.require_user()
    return auth


async def optional(request: Request, scope: str,
                   session: AsyncSession | None = None) -> Auth | None:
    """For public endpoints: the viewer if a valid token with ``scope`` is presented
    (``session``: as for ``authenticate``)."""
    auth = await authenticate(request, session)
    if auth is not None and not grants(auth.scopes, scope):
        raise ApiError(403, "This action is outside the authorized scopes")
    return auth


async def viewer(request: Request, scope: str) -> Account | None:
    auth = await optional(request, scope)
    return auth.account if auth is not None else None
