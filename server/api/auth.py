"""Bearer-token authentication and scope checks for API endpoints."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from server import last_use
from server.errors import ApiError
from server.ids import utcnow
from server.models import Account, OAuthApplication, OAuthToken, User
from server.services import user_ips
from server.services.scopes import grants
from server.services.tokens import token_digest
from server.sqlite_driver import INLINE
from server.state import easel

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
            auth = await _look_up(own, token)
    else:
        auth = await _look_up(session, token)
    request.scope["easel.auth"] = auth
    now = utcnow()
    if last_use.due(auth.token.last_used_at, now):  # written once the request is answered
        state = easel(request)
        await last_use.note(request, state.db, state.settings, last_use.Use(
            auth.token.id, auth.user.id if auth.user is not None else None,
            user_ips.client_ip(request), now))
    return auth


async def _look_up(session: AsyncSession, token: str) -> Auth:
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
    return Auth(token=found, application=found.application, scopes=found.scopes.split(),
                user=user, account=account)


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


async def optional(request: Request, scope: str | None,
                   session: AsyncSession | None = None) -> Auth | None:
    """For public endpoints: the viewer if a valid token with ``scope`` is presented
    (``session``: as for ``authenticate``); ``scope`` None: any valid token (Mastodon's
    public lists that check none, like the trends)."""
    auth = await authenticate(request, session)
    if auth is not None and scope is not None and not grants(auth.scopes, scope):
        raise ApiError(403, "This action is outside the authorized scopes")
    return auth


async def viewer(request: Request, scope: str) -> Account | None:
    auth = await optional(request, scope)
    return auth.account if auth is not None else None
