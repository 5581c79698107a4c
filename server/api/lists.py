"""Lists in the Mastodon client API: ``/api/v1/lists`` (CRUD), their members
(``/api/v1/lists/:id/accounts``), ``/api/v1/accounts/:id/lists`` and the list timeline
``/api/v1/timelines/list/:id``. The rules live in ``server/services/lists.py``."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import EntityContext, account_to_entity, list_to_entity, statuses_to_entities
from server.api.pagination import Page, link_header, paged_json
from server.api.params import Params, parse_id
from server.models import ListAccount
from server.services import lists, timelines
from server.services.accounts import find_account
from server.state import easel


async def _me(request: Request, scope: str) -> Any:
    auth = await require(request, scope)
    _, me = auth.require_user()
    return me


async def index(request: Request) -> JSONResponse:
    me = await _me(request, "read:lists")
    async with easel(request).db.session() as session:
        found = await lists.lists_of(session, me)
    return JSONResponse([list_to_entity(f) for f in found])


async def create(request: Request) -> JSONResponse:
    me = await _me(request, "write:lists")
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        created = await lists.create_list(
            session, me, title=params.get_str("title"),
            replies_policy=params.get_str("replies_policy"), exclusive=params.get_bool("exclusive"))
        return JSONResponse(list_to_entity(created))


async def show(request: Request) -> JSONResponse:
    me = await _me(request, "read:lists")
    list_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        return JSONResponse(list_to_entity(await lists.own_list(session, me, list_id)))


async def update(request: Request) -> JSONResponse:
    me = await _me(request, "write:lists")
    list_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        changed = await lists.update_list(
            session, me, list_id, title=params.get_str("title"),
            replies_policy=params.get_str("replies_policy"), exclusive=params.get_bool("exclusive"))
        return JSONResponse(list_to_entity(changed))


async def destroy(request: Request) -> JSONResponse:
    me = await _me(request, "write:lists")
    list_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await lists.delete_list(session, me, list_id)
    return JSONResponse({})


async def members(request: Request) -> JSONResponse:
    """The members, paged by membership; ``limit=0`` returns them all, as Mastodon."""
    me = await _me(request, "read:lists")
    list_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    state = easel(request)
    everyone = params.get_str("limit") == "0"
    page = Page.from_params(params, default=40, maximum=80) if not everyone else None
    async with state.db.session() as session:
        found = await lists.own_list(session, me, list_id)
        query = cast("Select[Any]", lists.members_query(found))
        if page is None:
            rows = list((await session.execute(query.order_by(ListAccount.id.desc()))).all())
        else:
            rows = page.arrange(list((await session.execute(page.apply(query, ListAccount.id))).all()))
    ctx = EntityContext.of(state)
    response = JSONResponse([account_to_entity(account, ctx) for _, account in rows])
    if page is not None and (link := link_header(request, [row_id for row_id, _ in rows], page)):
        response.headers["Link"] = link
    return response


async def add_members(request: Request) -> JSONResponse:
    me = await _me(request, "write:lists")
    list_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        await lists.add_accounts(session, me, list_id, params.get_ids("account_ids"))
    return JSONResponse({})


async def remove_members(request: Request) -> JSONResponse:
    me = await _me(request, "write:lists")
    list_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        await lists.remove_accounts(session, me, list_id, params.get_ids("account_ids"))
    return JSONResponse({})


async def account_lists(request: Request) -> JSONResponse:
    me = await _me(request, "read:lists")
    member_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await find_account(session, member_id)
        found = await lists.lists_with(session, me, member_id)
    return JSONResponse([list_to_entity(f) for f in found])


async def timeline(request: Request) -> JSONResponse:
    me = await _me(request, "read:lists")
    list_id = parse_id(request.path_params["id"])
    page = Page.from_params(await Params.from_request(request))
    state = easel(request)
    async with state.db.session() as session:
        statuses = await timelines.list_timeline(session, me, list_id, page)
        body = await statuses_to_entities(session, statuses, EntityContext.of(state), me,
                                          filter_context="home")
    return paged_json(request, body, [s.id for s in statuses], page)


routes: list[BaseRoute] = [
    Route("/api/v1/lists", index, methods=["GET"]),
    Route("/api/v1/lists", create, methods=["POST"]),
    Route("/api/v1/lists/{id}", show, methods=["GET"]),
    Route("/api/v1/lists/{id}", update, methods=["PUT"]),
    Route("/api/v1/lists/{id}", destroy, methods=["DELETE"]),
    Route("/api/v1/lists/{id}/accounts", members, methods=["GET"]),
    Route("/api/v1/lists/{id}/accounts", add_members, methods=["POST"]),
    Route("/api/v1/lists/{id}/accounts", remove_members, methods=["DELETE"]),
    Route("/api/v1/accounts/{id}/lists", account_lists, methods=["GET"]),
    Route("/api/v1/timelines/list/{id}", timeline, methods=["GET"]),
]
