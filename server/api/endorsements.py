"""Endorsements in the Mastodon client API: ``POST /api/v1/accounts/:id/pin`` and
``/unpin`` (each answers the Relationship, whose ``endorsed`` says it) and ``GET
/api/v1/endorsements`` (paged by the endorsement's id, with a Link header). The rules
live in ``server/services/endorsements.py``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import EntityContext, account_to_entity, relationships_to_entities
from server.api.pagination import Page, paged_json
from server.api.params import Params, parse_id
from server.models import Account, Endorsement
from server.services import endorsements
from server.state import easel

Change = Callable[[AsyncSession, Account, int], Awaitable[Account]]


async def _relationship(request: Request, change: Change) -> JSONResponse:
    auth = await require(request, "write:accounts")
    _, me = auth.require_user()
    target_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        target = await change(session, me, target_id)
        [entity] = await relationships_to_entities(session, me, [target])
    return JSONResponse(entity)


async def pin(request: Request) -> JSONResponse:
    return await _relationship(request, endorsements.endorse)


async def unpin(request: Request) -> JSONResponse:
    return await _relationship(request, endorsements.unendorse)


async def index(request: Request) -> JSONResponse:
    auth = await require(request, "read:accounts")
    _, me = auth.require_user()
    params = await Params.from_request(request)
    page = Page.from_params(params, default=40, maximum=80)
    state = easel(request)
    async with state.db.session() as session:
        query = page.apply(cast("Select[Any]", endorsements.endorsements_query(me.id)),
                           Endorsement.id)
        rows: list[Any] = page.arrange(list((await session.execute(query)).all()))
    ctx = EntityContext.of(state)
    return paged_json(request, [account_to_entity(cast(Account, a), ctx) for _, a in rows],
                      [row_id for row_id, _ in rows], page)


routes: list[BaseRoute] = [
    Route("/api/v1/accounts/{id}/pin", pin, methods=["POST"]),
    Route("/api/v1/accounts/{id}/unpin", unpin, methods=["POST"]),
    Route("/api/v1/endorsements", index, methods=["GET"]),
]
