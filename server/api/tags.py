"""Hashtags in the Mastodon client API: ``GET /api/v1/tags/:name`` (with ``following``),
``POST /api/v1/tags/:name/follow`` and ``/unfollow``, and ``GET /api/v1/followed_tags``
(paged by the follow). Followed tags feed the home timeline (``services/timelines.py``)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import optional, require
from server.api.entities import EntityContext, tag_to_entity
from server.api.pagination import Page, paged_json
from server.api.params import Params
from server.models import TagFollow
from server.services import tags
from server.state import easel


async def show(request: Request) -> JSONResponse:
    auth = await optional(request, "read:follows")
    state = easel(request)
    async with state.db.session() as session:
        tag = await tags.tag_named(session, request.path_params["name"])
        following = (tag.id is not None
                     and await tags.is_following(session, auth.account if auth else None, tag))
    return JSONResponse(tag_to_entity(tag, EntityContext.of(state),
                                      following=following if auth and auth.account else None))


async def _change(request: Request, follow: bool) -> JSONResponse:
    auth = await require(request, "write:follows")
    _, me = auth.require_user()
    state = easel(request)
    async with state.db.session() as session:
        change = tags.follow_tag if follow else tags.unfollow_tag
        tag = await change(session, me, request.path_params["name"])
    return JSONResponse(tag_to_entity(tag, EntityContext.of(state), following=follow))


async def follow(request: Request) -> JSONResponse:
    return await _change(request, True)


async def unfollow(request: Request) -> JSONResponse:
    return await _change(request, False)


async def followed(request: Request) -> JSONResponse:
    auth = await require(request, "read:follows")
    _, me = auth.require_user()
    page = Page.from_params(await Params.from_request(request), default=100, maximum=200)
    state = easel(request)
    async with state.db.session() as session:
        query = cast("Select[Any]", tags.followed_tags_query(me.id))
        rows = page.arrange(list((await session.execute(page.apply(query, TagFollow.id))).all()))
    ctx = EntityContext.of(state)
    return paged_json(request, [tag_to_entity(tag, ctx, following=True) for _, tag in rows],
                      [row_id for row_id, _ in rows], page)


routes: list[BaseRoute] = [
    Route("/api/v1/followed_tags", followed, methods=["GET"]),
    Route("/api/v1/tags/{name}", show, methods=["GET"]),
    Route("/api/v1/tags/{name}/follow", follow, methods=["POST"]),
    Route("/api/v1/tags/{name}/unfollow", unfollow, methods=["POST"]),
]
