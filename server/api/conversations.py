"""Direct conversations in the Mastodon client API: ``GET /api/v1/conversations`` (paged
by each conversation's last status id, with a Link header), ``DELETE
/api/v1/conversations/:id`` and ``POST /api/v1/conversations/:id/read``. The rules live in
``server/services/conversations.py``."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.orm import InstrumentedAttribute
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import EntityContext, conversations_to_entities
from server.api.pagination import Page, paged_json
from server.api.params import Params, parse_id
from server.services import conversations
from server.state import easel


async def index(request: Request) -> JSONResponse:
    auth = await require(request, "read:statuses")
    _, me = auth.require_user()
    params = await Params.from_request(request)
    page = Page.from_params(params, default=20, maximum=40)
    state = easel(request)
    async with state.db.session() as session:
        query = conversations.conversations_query(me.id)
        cursor = cast(InstrumentedAttribute[int], query.selected_columns[0])
        rows: list[Any] = page.arrange(list((await session.execute(page.apply(query, cursor))).all()))
        body = await conversations_to_entities(
            session, [(int(last), found) for last, found in rows], EntityContext.of(state), me)
    return paged_json(request, body, [int(last) for last, _ in rows], page)


async def mark_read(request: Request) -> JSONResponse:
    auth = await require(request, "write:conversations")
    _, me = auth.require_user()
    conversation_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        row = await conversations.mark_read(session, me, conversation_id)
        [entity] = await conversations_to_entities(session, [row], EntityContext.of(state), me)
    return JSONResponse(entity)


async def remove(request: Request) -> JSONResponse:
    auth = await require(request, "write:conversations")
    _, me = auth.require_user()
    conversation_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await conversations.remove(session, me, conversation_id)
    return JSONResponse({})


routes: list[BaseRoute] = [
    Route("/api/v1/conversations", index, methods=["GET"]),
    Route("/api/v1/conversations/{id}", remove, methods=["DELETE"]),
    Route("/api/v1/conversations/{id}/read", mark_read, methods=["POST"]),
]
