"""Blocks and mutes in the Mastodon client API: ``POST /api/v1/accounts/:id/block``,
``/unblock``, ``/mute``, ``/unmute`` (each answers the Relationship), and the lists
``GET /api/v1/blocks`` and ``GET /api/v1/mutes`` (paged by the block's or mute's id, with a
Link header). The rules live in ``server/services/blocks.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import EntityContext, account_to_entity, iso, relationships_to_entities
from server.api.pagination import Page, paged_json
from server.api.params import Params, parse_id
from server.models import Account, Block, Mute
from server.services import blocks
from server.services.errors import ServiceError
from server.state import easel


async def _relationship(request: Request, scope: str, change: Any, **options: Any) -> JSONResponse:
    auth = await require(request, scope)
    _, me = auth.require_user()
    target_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        target = await change(session, me, target_id, **options)
        entity = (await relationships_to_entities(session, me, [target]))[0]
    return JSONResponse(entity)


async def block_account(request: Request) -> JSONResponse:
    return await _relationship(request, "write:blocks", blocks.block)


async def unblock_account(request: Request) -> JSONResponse:
    return await _relationship(request, "write:blocks", blocks.unblock)


async def mute_account(request: Request) -> JSONResponse:
    params = await Params.from_request(request)
    notifications = params.get_bool("notifications")
    raw = params.get_str("duration")
    try:
        seconds = int(raw) if raw not in (None, "") else None
    except ValueError:
        raise ServiceError("Validation failed: Duration is not a number", 422) from None
    return await _relationship(request, "write:mutes", blocks.mute,
                               notifications=True if notifications is None else notifications,
                               duration=blocks.mute_duration(seconds))


async def unmute_account(request: Request) -> JSONResponse:
    return await _relationship(request, "write:mutes", blocks.unmute)


async def _accounts(request: Request, scope: str, query: Callable[[int], Select[int, Account]],
                    cursor: InstrumentedAttribute[int], *, mutes: bool = False) -> JSONResponse:
    auth = await require(request, scope)
    _, me = auth.require_user()
    params = await Params.from_request(request)
    page = Page.from_params(params, default=40, maximum=80)
    state = easel(request)
    async with state.db.session() as session:
        paged = page.apply(cast("Select[Any]", query(me.id)), cursor)
        rows = page.arrange(list((await session.execute(paged)).all()))
        expiries = await blocks.mute_expiries(session, me.id, [a.id for _, a in rows]) if mutes else {}
    ctx = EntityContext.of(state)
    entities = []
    for _, account in rows:
        entity = account_to_entity(cast(Account, account), ctx)
        if mutes:
            expires = expiries.get(account.id)
            entity["mute_expires_at"] = iso(expires)
        entities.append(entity)
    return paged_json(request, entities, [row_id for row_id, _ in rows], page)


async def list_blocks(request: Request) -> JSONResponse:
    return await _accounts(request, "read:blocks", blocks.blocks_query, Block.id)


async def list_mutes(request: Request) -> JSONResponse:
    return await _accounts(request, "read:mutes", blocks.mutes_query, Mute.id, mutes=True)


routes: list[BaseRoute] = [
    Route("/api/v1/accounts/{id}/block", block_account, methods=["POST"]),
    Route("/api/v1/accounts/{id}/unblock", unblock_account, methods=["POST"]),
    Route("/api/v1/accounts/{id}/mute", mute_account, methods=["POST"]),
    Route("/api/v1/accounts/{id}/unmute", unmute_account, methods=["POST"]),
    Route("/api/v1/blocks", list_blocks, methods=["GET"]),
    Route("/api/v1/mutes", list_mutes, methods=["GET"]),
]
