"""POST /api/v1/accounts: self-registration from an app (Mastodon's sign-up API).

The app calls it with its own token (a client_credentials token is enough) and gets the
new user's token back. The rules per registration mode live in
``server/services/registrations.py``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.params import Params
from server.services import registrations
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
            )
        except registrations.RegistrationInvalid as error:
            return JSONResponse({"error": error.message, "details": error.details}, status_code=422)
    return JSONResponse(issued.to_json(), headers={"Cache-Control": "no-store"})


routes: list[BaseRoute] = [Route("/api/v1/accounts", register, methods=["POST"])]
