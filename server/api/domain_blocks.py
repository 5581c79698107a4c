"""A user's blocked domains in the Mastodon client API: ``GET /api/v1/domain_blocks``
(the domains as strings, paged by the block's id, with a Link header), ``POST`` and
``DELETE`` with ``domain`` (each answers ``{}``). The rules live in
``server/services/blocks.py``; the admin's domain blocks are another thing
(``server/services/domain_blocks.py``)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.pagination import Page, paged_json
from server.api.params import Params
from server.models import AccountDomainBlock
from server.services import blocks
from server.state import easel


async def index(request: Request) -> JSONResponse:
    auth = await require(request, "read:blocks")
    _, me = auth.require_user()
    params = await Params.from_request(request)
    page = Page.from_params(params, default=100, maximum=200)
    async with easel(request).db.session() as session:
        query = page.apply(cast("Select[Any]", blocks.domain_blocks_query(me.id)),
                           AccountDomainBlock.id)
        rows: list[Any] = page.arrange(list((await session.execute(query)).all()))
    return paged_json(request, [domain for _, domain in rows], [row_id for row_id, _ in rows], page)


async def create(request: Request) -> JSONResponse:
    auth = await require(request, "write:blocks")
    _, me = auth.require_user()
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        await blocks.block_domain(session, me, params.get_str("domain"))
    return JSONResponse({})


async def remove(request: Request) -> JSONResponse:
    auth = await require(request, "write:blocks")
    _, me = auth.require_user()
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        await blocks.unblock_domain(session, me, params.get_str("domain"))
    return JSONResponse({})


routes: list[BaseRoute] = [
    Route("/api/v1/domain_blocks", index, methods=["GET"]),
    Route("/api/v1/domain_blocks", create, methods=["POST"]),
    Route("/api/v1/domain_blocks", remove, methods=["DELETE"]),
]
