"""ActivityPub documents served to other servers: actors (and, later, inboxes, collections)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from federation.content_types import ACTIVITY_JSON, accepts_activity_json
from federation.serialize import account_to_actor
from server.errors import ApiError
from server.services.accounts import find_local_account, instance_actor
from server.state import easel


class ActivityJSONResponse(JSONResponse):
    media_type = ACTIVITY_JSON


async def actor_document(request: Request) -> Response:
    state = easel(request)
    username = request.path_params["username"]
    async with state.db.session() as session:
        account = await find_local_account(session, username)
    if account is None:
        raise ApiError(404, "Record not found")
    if not accepts_activity_json(request):
        return RedirectResponse(account.url, status_code=302)
    return ActivityJSONResponse(account_to_actor(account, state.urls, state.storage),
                                headers={"Vary": "Accept"})


async def instance_actor_document(request: Request) -> Response:
    state = easel(request)
    async with state.db.session() as session:
        actor = await instance_actor(session, state.settings)
    return ActivityJSONResponse(account_to_actor(actor, state.urls, state.storage))


routes: list[BaseRoute] = [
    Route("/users/{username}", actor_document, methods=["GET", "HEAD"]),
    Route("/actor", instance_actor_document, methods=["GET", "HEAD"]),
]
