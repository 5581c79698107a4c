"""Client app registration (POST /api/v1/apps) and an app's view of itself.

Registration is open to anyone, as in Mastodon: an app is only a client id and secret
until a user authorises it. The secret is shown once, in the registration response.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import authenticate
from server.api.entities import application_to_entity
from server.api.params import Params
from server.errors import ApiError
from server.services import oauth
from server.services.web_push import vapid_public_key
from server.state import easel


async def create_app(request: Request) -> JSONResponse:
    state = easel(request)
    params = await Params.from_request(request)
    name = params.get_str("client_name")
    redirect_uris = params.get_list("redirect_uris")
    scopes = " ".join(params.get_list("scopes")) or None
    website = params.get_str("website")
    async with state.db.session() as session:
        app = await oauth.create_application(session, name=name, redirect_uris=redirect_uris,
                                             scopes=scopes, website=website)
    return JSONResponse(application_to_entity(
        app, with_secret=True, vapid_key=vapid_public_key(state.settings)))


async def verify_app_credentials(request: Request) -> JSONResponse:
    """Any valid token of the app, with or without a user behind it."""
    auth = await authenticate(request)
    if auth is None:
        raise ApiError(401, "The access token is invalid")
    return JSONResponse(application_to_entity(
        auth.application, vapid_key=vapid_public_key(easel(request).settings)))


routes: list[BaseRoute] = [
    Route("/api/v1/apps", create_app, methods=["POST"]),
    Route("/api/v1/apps/verify_credentials", verify_app_credentials, methods=["GET"]),
]
