"""POST /api/v1/accounts: self-registration from an app (Mastodon's sign-up API), and the
e-mail confirmation endpoints an app calls while its new user waits for the link.

The app calls POST /api/v1/accounts with its own token (a client_credentials token is
enough) and gets the new user's token back. The rules per registration mode, invites and
confirmation live in ``server/services/registrations.py`` and ``confirmations.py``.

``/api/v1/emails/*`` must work for a user whose address is not confirmed yet — the
ordinary authentication refuses them — so those endpoints look the token up themselves;
they never serve anything but the token's own user.
"""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.params import Params
from server.errors import ApiError
from server.models import OAuthToken, User
from server.services import confirmations, registrations
from server.services.scopes import grants
from server.services.tokens import token_digest
from server.services.user_ips import client_ip, record_ip
from server.state import easel


async def register(request: Request) -> JSONResponse:
    auth = await require(request, "write:accounts", user=False)
    state = easel(request)
    params = await Params.from_request(request)
    async with state.db.session() as session:
        try:
            issued = await registrations.register(
                session, state.settings, auth.application,
                username=params.get_str("username") or "",
                email=params.get_str("email") or "",
                password=params.get_str("password") or "",
                agreement=bool(params.get_bool("agreement", False)),
                locale=params.get_str("locale"),
                reason=params.get_str("reason"),
                invite_code=params.get_str("invite_code", max_length=64),
                address=request.client.host if request.client else None,
            )
        except registrations.RegistrationInvalid as error:
            return JSONResponse({"error": error.message, "details": error.details}, status_code=422)
        await record_ip(session, state.settings, issued.user_id, client_ip(request))
        await session.commit()
    return JSONResponse(issued.to_json(), headers={"Cache-Control": "no-store"})


async def _awaiting_user(request: Request, scope: str) -> int:
    """The id of the user behind the bearer token, confirmed or not (401/403 otherwise)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "The access token is invalid")
    state = easel(request)
    async with state.db.session() as session:
        found = await session.scalar(select(OAuthToken).where(
            OAuthToken.token_digest == token_digest(token.strip()), OAuthToken.revoked_at.is_(None)))
    if found is None:
        raise ApiError(401, "The access token is invalid")
    if not grants(found.scopes.split(), scope):
        raise ApiError(403, "This action is outside the authorized scopes")
    if found.user_id is None:
        raise ApiError(422, "This method requires an authenticated user")
    return found.user_id


async def resend_confirmation(request: Request) -> JSONResponse:
    """POST /api/v1/emails/confirmations (``email``: correct the address first)."""
    user_id = await _awaiting_user(request, "write:accounts")
    state = easel(request)
    params = await Params.from_request(request)
    email = params.get_str("email", max_length=320)
    async with state.db.session() as session:
        user = await session.get(User, user_id)
        if user is None or user.disabled:
            raise ApiError(403, "Your login is currently disabled")
        await confirmations.resend_confirmation(session, state.settings, user, email)
    return JSONResponse({})


async def check_confirmation(request: Request) -> JSONResponse:
    """GET /api/v1/emails/check_confirmation: whether the address is confirmed yet."""
    user_id = await _awaiting_user(request, "read:accounts")
    state = easel(request)
    async with state.db.session() as session:
        user = await session.get(User, user_id)
    return JSONResponse(user is not None and user.confirmed_at is not None)


routes: list[BaseRoute] = [
    Route("/api/v1/accounts", register, methods=["POST"]),
    Route("/api/v1/emails/confirmations", resend_confirmation, methods=["POST"]),
    Route("/api/v1/emails/check_confirmation", check_confirmation, methods=["GET"]),
]
