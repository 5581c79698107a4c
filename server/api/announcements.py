"""Mastodon's announcements API: ``/api/v1/announcements``.

Why it exists: apps show the server's announcements (the admins' notices) above the home
timeline, and let each person mark one read and react with emoji. Each endpoint
authenticates (a user's token: ``read`` to list, ``write:accounts`` to dismiss,
``write:favourites`` to react, as Mastodon documents), calls ``server.services.announcements`` and
answers Mastodon's ``Announcement`` entities or ``{}``.

What it must never do: show a draft or an ended announcement, or answer anyone without a
user's token.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import EntityContext, announcement_to_entity
from server.api.params import parse_id
from server.services import announcements as service
from server.state import easel


async def list_announcements(request: Request) -> JSONResponse:
    auth = await require(request, "read")
    _user, viewer = auth.require_user()
    state = easel(request)
    async with state.db.session() as session:
        found = await service.active_announcements(session)
        views = await service.with_references(
            session, await service.views(session, found, viewer), state.urls)
    ctx = EntityContext.of(state)
    return JSONResponse([announcement_to_entity(view, ctx) for view in views])


async def dismiss(request: Request) -> JSONResponse:
    auth = await require(request, "write:accounts")
    _user, account = auth.require_user()
    announcement_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await service.dismiss(session, account, announcement_id)
    return JSONResponse({})


async def react(request: Request) -> JSONResponse:
    auth = await require(request, "write:favourites")
    _user, account = auth.require_user()
    announcement_id = parse_id(request.path_params["id"])
    name = request.path_params["name"]
    async with easel(request).db.session() as session:
        if request.method == "PUT":
            await service.add_reaction(session, account, announcement_id, name)
        else:
            await service.remove_reaction(session, account, announcement_id, name)
    return JSONResponse({})


routes: list[BaseRoute] = [
    Route("/api/v1/announcements", list_announcements, methods=["GET"]),
    Route("/api/v1/announcements/{id}/dismiss", dismiss, methods=["POST"]),
    Route("/api/v1/announcements/{id}/reactions/{name}", react, methods=["PUT", "DELETE"]),
]
