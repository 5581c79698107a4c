"""Featured hashtags in the Mastodon client API: ``/api/v1/featured_tags`` (GET, POST
``name``, DELETE ``/:id``), ``/api/v1/featured_tags/suggestions`` and the public
``/api/v1/accounts/:id/featured_tags``; and ``/@name/tagged/:tag``, the web address a
featured tag links to (sent on to the tag page). The rules live in
``server/services/featured_tags.py``."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import optional, require
from server.api.entities import EntityContext, featured_tag_to_entity, tag_to_entity
from server.api.params import Params, parse_id
from server.services import featured_tags
from server.services.accounts import find_account
from server.state import easel


async def own(request: Request) -> JSONResponse:
    auth = await require(request, "read:accounts")
    _, me = auth.require_user()
    state = easel(request)
    async with state.db.session() as session:
        found = await featured_tags.featured_tags(session, me.id)
    ctx = EntityContext.of(state)
    return JSONResponse([featured_tag_to_entity(view, me, ctx) for view in found])


async def create(request: Request) -> JSONResponse:
    auth = await require(request, "write:accounts")
    _, me = auth.require_user()
    params = await Params.from_request(request)
    state = easel(request)
    async with state.db.session() as session:
        view = await featured_tags.feature_tag(session, me, params.get_str("name"))
    return JSONResponse(featured_tag_to_entity(view, me, EntityContext.of(state)))


async def remove(request: Request) -> JSONResponse:
    auth = await require(request, "write:accounts")
    _, me = auth.require_user()
    featured_tag_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await featured_tags.unfeature_tag(session, me, featured_tag_id)
    return JSONResponse({})


async def suggestions(request: Request) -> JSONResponse:
    auth = await require(request, "read:accounts")
    _, me = auth.require_user()
    state = easel(request)
    async with state.db.session() as session:
        found = await featured_tags.suggested_tags(session, me)
    ctx = EntityContext.of(state)
    return JSONResponse([tag_to_entity(tag, ctx) for tag in found])


async def of_account(request: Request) -> JSONResponse:
    await optional(request, "read:accounts")
    account_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        account = await find_account(session, account_id)
        found = await featured_tags.featured_tags(session, account.id)
    ctx = EntityContext.of(state)
    return JSONResponse([featured_tag_to_entity(view, account, ctx) for view in found])


async def tagged_page(request: Request) -> RedirectResponse:
    """``/@name/tagged/:tag`` has no page of its own yet: the tag's page shows those posts
    among the others."""
    base = easel(request).settings.base_url
    return RedirectResponse(f"{base}/tags/{quote(request.path_params['tag'])}", status_code=302)


routes: list[BaseRoute] = [
    Route("/api/v1/featured_tags", own, methods=["GET"]),
    Route("/api/v1/featured_tags", create, methods=["POST"]),
    Route("/api/v1/featured_tags/suggestions", suggestions, methods=["GET"]),
    Route("/api/v1/featured_tags/{id}", remove, methods=["DELETE"]),
    Route("/api/v1/accounts/{id}/featured_tags", of_account, methods=["GET"]),
    Route("/@{username}/tagged/{tag}", tagged_page, methods=["GET", "HEAD"]),
]
