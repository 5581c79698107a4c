"""Trends and suggestions in the Mastodon client API: ``/api/v1/trends/tags`` (and its
old name ``/api/v1/trends``), ``/api/v1/trends/statuses``, ``/api/v1/trends/links``
(always empty: Easel makes no link preview cards, so it knows no links to rank), and
``/api/v2/suggestions`` / ``/api/v1/suggestions`` (and ``DELETE
/api/v1/suggestions/:account_id``, which stops suggesting that account). The rules:
``server/services/trends.py``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import optional, require
from server.api.entities import EntityContext, account_to_entity, statuses_to_entities, tag_to_entity
from server.api.params import Params, parse_id
from server.services import trends
from server.state import easel


async def _window(request: Request, default: int, maximum: int) -> tuple[int, int]:
    params = await Params.from_request(request)
    limit = params.get_int("limit", default, minimum=1, maximum=maximum) or default
    offset = params.get_int("offset", 0, minimum=0, maximum=10_000) or 0
    return limit, offset


async def tags(request: Request) -> JSONResponse:
    await optional(request, None)
    limit, offset = await _window(request, 10, 20)
    state = easel(request)
    async with state.db.session() as session:
        found = await trends.trending_tags(session, limit=limit, offset=offset)
    ctx = EntityContext.of(state)
    body = []
    for trend in found:
        entity = tag_to_entity(trend.tag, ctx)
        entity["history"] = [{"day": str(d.day), "uses": str(d.uses), "accounts": str(d.accounts)}
                             for d in trend.history]
        body.append(entity)
    return JSONResponse(body)


async def statuses(request: Request) -> JSONResponse:
    auth = await optional(request, "read:statuses")
    limit, offset = await _window(request, 20, 40)
    state = easel(request)
    viewer = auth.account if auth else None
    async with state.db.session() as session:
        found = await trends.trending_statuses(session, viewer=viewer, limit=limit,
                                               offset=offset)
        body = await statuses_to_entities(session, found, EntityContext.of(state), viewer)
    return JSONResponse(body)


async def links(request: Request) -> JSONResponse:
    await optional(request, None)
    return JSONResponse([])


async def _suggested(request: Request) -> list[dict[str, object]]:
    auth = await require(request, "read:accounts")
    _, me = auth.require_user()
    limit, _ = await _window(request, 40, 80)
    state = easel(request)
    async with state.db.session() as session:
        found = await trends.suggested_accounts(session, me, limit=limit)
    ctx = EntityContext.of(state)
    return [account_to_entity(account, ctx) for account in found]


async def suggestions_v2(request: Request) -> JSONResponse:
    return JSONResponse([{"source": "global", "sources": ["most_followed"], "account": account}
                         for account in await _suggested(request)])


async def suggestions_v1(request: Request) -> JSONResponse:
    return JSONResponse(await _suggested(request))


async def dismiss_suggestion(request: Request) -> JSONResponse:
    auth = await require(request, "write:accounts")
    _, me = auth.require_user()
    account_id = parse_id(request.path_params["account_id"])
    async with easel(request).db.session() as session:
        await trends.dismiss_suggestion(session, me, account_id)
    return JSONResponse({})


routes: list[BaseRoute] = [
    Route("/api/v1/trends", tags, methods=["GET"]),
    Route("/api/v1/trends/tags", tags, methods=["GET"]),
    Route("/api/v1/trends/statuses", statuses, methods=["GET"]),
    Route("/api/v1/trends/links", links, methods=["GET"]),
    Route("/api/v2/suggestions", suggestions_v2, methods=["GET"]),
    Route("/api/v1/suggestions", suggestions_v1, methods=["GET"]),
    Route("/api/v1/suggestions/{account_id}", dismiss_suggestion, methods=["DELETE"]),
]
