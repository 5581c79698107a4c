"""Mastodon's admin API for IP blocks: ``/api/v1/admin/ip_blocks``.

Why it exists: moderators' clients list, create, change and lift the networks the instance
refuses (``no_access``) or lets sign up only for approval or not at all (Mastodon 4.0's
``Admin::IpBlock``: ``ip``, ``severity``, ``comment``, ``expires_in`` seconds). Each
endpoint authenticates (an ``admin:…:ip_blocks`` scope and an admin user, as for domain
blocks), parses, calls one ``server.services.ip_blocks`` function — which reloads this
process's matcher, so the change applies here at once (other processes: within
``RELOAD_SECONDS``) — and answers the entity.

What it must never do: let anyone but an admin see or change a block (a normal user gets
403, no token 401), or store anything for invalid input (422).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.admin_reports import require_admin
from server.api.entities import admin_ip_block_to_entity
from server.api.pagination import Page, paged_json
from server.api.params import Params, parse_id
from server.models import IpBlock
from server.services import ip_blocks
from server.state import easel

MAX_IP_LENGTH = 100


def _id(request: Request) -> int:
    return parse_id(request.path_params["id"])


async def list_ip_blocks(request: Request) -> JSONResponse:
    await require_admin(request, "admin:read:ip_blocks")
    params = await Params.from_request(request)
    page = Page.from_params(params, default=100, maximum=200)
    async with easel(request).db.session() as session:
        rows = page.arrange(list(await session.scalars(page.apply(select(IpBlock), IpBlock.id))))
    return paged_json(request, [admin_ip_block_to_entity(row) for row in rows],
                      [row.id for row in rows], page)


async def show_ip_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:read:ip_blocks")
    block_id = _id(request)
    async with easel(request).db.session() as session:
        block = await ip_blocks.get_ip_block(session, block_id)
    return JSONResponse(admin_ip_block_to_entity(block))


def _given(params: Params) -> dict[str, Any]:
    """The attributes the request sends (``expires_in`` null or empty: never expires)."""
    given: dict[str, Any] = {}
    if params.has("ip"):
        given["ip"] = params.get_str("ip", max_length=MAX_IP_LENGTH)
    if params.has("severity"):
        given["severity"] = params.get_str("severity", max_length=64)
    if params.has("comment"):
        given["comment"] = params.get_str("comment", max_length=ip_blocks.MAX_COMMENT_LENGTH)
    if params.has("expires_in"):
        given["expires_in"] = params.raw("expires_in")
    return given


async def create_ip_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:write:ip_blocks")
    given = _given(await Params.from_request(request))
    state = easel(request)
    async with state.db.session() as session:
        block = await ip_blocks.create_ip_block(
            session, given.get("ip"), given.get("severity"), comment=given.get("comment"),
            expires_in=given.get("expires_in"), matcher=state.ip_blocks)
    return JSONResponse(admin_ip_block_to_entity(block))


async def update_ip_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:write:ip_blocks")
    block_id = _id(request)
    given = _given(await Params.from_request(request))
    state = easel(request)
    async with state.db.session() as session:
        block = await ip_blocks.update_ip_block(session, block_id, matcher=state.ip_blocks, **given)
    return JSONResponse(admin_ip_block_to_entity(block))


async def delete_ip_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:write:ip_blocks")
    block_id = _id(request)
    state = easel(request)
    async with state.db.session() as session:
        await ip_blocks.remove_ip_block(session, block_id, matcher=state.ip_blocks)
    return JSONResponse({})


routes: list[BaseRoute] = [
    Route("/api/v1/admin/ip_blocks", list_ip_blocks, methods=["GET"]),
    Route("/api/v1/admin/ip_blocks", create_ip_block, methods=["POST"]),
    Route("/api/v1/admin/ip_blocks/{id}", show_ip_block, methods=["GET"]),
    Route("/api/v1/admin/ip_blocks/{id}", update_ip_block, methods=["PUT"]),
    Route("/api/v1/admin/ip_blocks/{id}", delete_ip_block, methods=["DELETE"]),
]
