"""Mastodon's admin API for other servers and blocked e-mail addresses, and the public
list of blocked domains.

Why it exists: moderators manage federation from their client: domain blocks
(``/api/v1/admin/domain_blocks``: severity, media and report rules, comments,
obfuscation), domain allows for allowlist federation mode (``/api/v1/admin/domain_allows``)
and canonical e-mail blocks (``/api/v1/admin/canonical_email_blocks`` and its ``/test``).
``GET /api/v1/instance/domain_blocks`` shows the silenced and suspended domains to whom
``EASEL_SHOW_DOMAIN_BLOCKS`` allows (``disabled``: 404; ``users``: signed-in users; ``all``).
Each endpoint authenticates (an ``admin:…`` scope and an admin user), parses, calls one
``server.services.domain_blocks`` / ``email_blocks`` function and answers Mastodon's entity.

What it must never do: let anyone but an admin see or change these (a normal user gets 403,
no token 401), show a private comment publicly, or store anything for invalid input.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.admin_reports import require_admin
from server.api.auth import optional
from server.api.entities import (
    admin_domain_allow_to_entity,
    admin_domain_block_to_entity,
    canonical_email_block_to_entity,
    public_domain_block_to_entity,
)
from server.api.pagination import Page, paged_json
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.models import CanonicalEmailBlock, DomainAllow, DomainBlock, DomainBlockSeverity
from server.services import domain_blocks as blocks
from server.services import email_blocks
from server.state import easel


def _id(request: Request) -> int:
    return parse_id(request.path_params["id"])


async def _page(request: Request, model: Any, convert: Any) -> JSONResponse:
    params = await Params.from_request(request)
    page = Page.from_params(params, default=100, maximum=200)
    async with easel(request).db.session() as session:
        rows = page.arrange(list(await session.scalars(page.apply(select(model), model.id))))
    return paged_json(request, [convert(row) for row in rows], [row.id for row in rows], page)


# --------------------------------------------------------------------- domain blocks

async def list_domain_blocks(request: Request) -> JSONResponse:
    await require_admin(request, "admin:read:domain_blocks")
    return await _page(request, DomainBlock, admin_domain_block_to_entity)


async def show_domain_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:read:domain_blocks")
    block_id = _id(request)
    async with easel(request).db.session() as session:
        block = await blocks.get_domain_block(session, block_id)
    return JSONResponse(admin_domain_block_to_entity(block))


def _block_attributes(params: Params) -> dict[str, Any]:
    return {
        "severity": params.get_str("severity"),
        "reject_media": params.get_bool("reject_media"),
        "reject_reports": params.get_bool("reject_reports"),
        "private_comment": params.get_str("private_comment"),
        "public_comment": params.get_str("public_comment"),
        "obfuscate": params.get_bool("obfuscate"),
    }


async def create_domain_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:write:domain_blocks")
    params = await Params.from_request(request)
    domain = params.require_str("domain")
    given = {k: v for k, v in _block_attributes(params).items() if v is not None}
    state = easel(request)
    async with state.db.session() as session:
        try:
            result = await blocks.create_domain_block(
                session, domain, own_domain=state.settings.domain, **given)
        except blocks.ExistingDomainBlock as conflict:  # Mastodon answers the block too
            return JSONResponse({"error": conflict.message, "existing_domain_block":
                                 admin_domain_block_to_entity(conflict.existing)}, 422)
    return JSONResponse(admin_domain_block_to_entity(result.block))


async def update_domain_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:write:domain_blocks")
    block_id = _id(request)
    params = await Params.from_request(request)
    state = easel(request)
    async with state.db.session() as session:
        result = await blocks.update_domain_block(
            session, block_id, own_domain=state.settings.domain, **_block_attributes(params))
    return JSONResponse(admin_domain_block_to_entity(result.block))


async def delete_domain_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:write:domain_blocks")
    block_id = _id(request)
    async with easel(request).db.session() as session:
        await blocks.remove_domain_block(session, block_id)
    return JSONResponse({})


# --------------------------------------------------------------------- domain allows

async def list_domain_allows(request: Request) -> JSONResponse:
    await require_admin(request, "admin:read:domain_allows")
    return await _page(request, DomainAllow, admin_domain_allow_to_entity)


async def show_domain_allow(request: Request) -> JSONResponse:
    await require_admin(request, "admin:read:domain_allows")
    allow_id = _id(request)
    async with easel(request).db.session() as session:
        allow = await blocks.get_domain_allow(session, allow_id)
    return JSONResponse(admin_domain_allow_to_entity(allow))


async def create_domain_allow(request: Request) -> JSONResponse:
    await require_admin(request, "admin:write:domain_allows")
    params = await Params.from_request(request)
    domain = params.require_str("domain")
    async with easel(request).db.session() as session:
        allow = await blocks.allow_domain(session, domain)
    return JSONResponse(admin_domain_allow_to_entity(allow))


async def delete_domain_allow(request: Request) -> JSONResponse:
    await require_admin(request, "admin:write:domain_allows")
    allow_id = _id(request)
    async with easel(request).db.session() as session:
        await blocks.remove_domain_allow(session, allow_id)
    return JSONResponse({})


# ------------------------------------------------------------ canonical e-mail blocks

async def list_email_blocks(request: Request) -> JSONResponse:
    await require_admin(request, "admin:read:canonical_email_blocks")
    return await _page(request, CanonicalEmailBlock, canonical_email_block_to_entity)


async def show_email_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:read:canonical_email_blocks")
    block_id = _id(request)
    async with easel(request).db.session() as session:
        block = await email_blocks.get_email_block(session, block_id)
    return JSONResponse(canonical_email_block_to_entity(block))


async def test_email_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:read:canonical_email_blocks")
    params = await Params.from_request(request)
    email = params.require_str("email")
    async with easel(request).db.session() as session:
        found = await email_blocks.matching_blocks(session, email)
    return JSONResponse([canonical_email_block_to_entity(block) for block in found])


async def create_email_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:write:canonical_email_blocks")
    params = await Params.from_request(request)
    email = params.get_str("email")
    digest = params.get_str("canonical_email_hash")
    async with easel(request).db.session() as session:
        block = await email_blocks.block_email(session, email=email, digest=digest)
    return JSONResponse(canonical_email_block_to_entity(block))


async def delete_email_block(request: Request) -> JSONResponse:
    await require_admin(request, "admin:write:canonical_email_blocks")
    block_id = _id(request)
    async with easel(request).db.session() as session:
        await email_blocks.remove_email_block(session, block_id)
    return JSONResponse({})


# ------------------------------------------------------------------- the public list

async def public_domain_blocks(request: Request) -> JSONResponse:
    state = easel(request)
    show = state.settings.show_domain_blocks
    if show == "disabled":
        raise ApiError(404, "Record not found")
    auth = await optional(request, None)
    if show == "users" and (auth is None or auth.user is None):
        raise ApiError(401, "This method requires an authenticated user")
    async with state.db.session() as session:
        rows = list(await session.scalars(select(DomainBlock).where(DomainBlock.severity.in_(
            (DomainBlockSeverity.SUSPEND.value, DomainBlockSeverity.SILENCE.value)))
            .order_by(DomainBlock.domain)))
    return JSONResponse([public_domain_block_to_entity(row, with_comment=True) for row in rows])


routes: list[BaseRoute] = [
    Route("/api/v1/admin/domain_blocks", list_domain_blocks, methods=["GET"]),
    Route("/api/v1/admin/domain_blocks", create_domain_block, methods=["POST"]),
    Route("/api/v1/admin/domain_blocks/{id}", show_domain_block, methods=["GET"]),
    Route("/api/v1/admin/domain_blocks/{id}", update_domain_block, methods=["PUT"]),
    Route("/api/v1/admin/domain_blocks/{id}", delete_domain_block, methods=["DELETE"]),
    Route("/api/v1/admin/domain_allows", list_domain_allows, methods=["GET"]),
    Route("/api/v1/admin/domain_allows", create_domain_allow, methods=["POST"]),
    Route("/api/v1/admin/domain_allows/{id}", show_domain_allow, methods=["GET"]),
    Route("/api/v1/admin/domain_allows/{id}", delete_domain_allow, methods=["DELETE"]),
    Route("/api/v1/admin/canonical_email_blocks", list_email_blocks, methods=["GET"]),
    Route("/api/v1/admin/canonical_email_blocks", create_email_block, methods=["POST"]),
    Route("/api/v1/admin/canonical_email_blocks/test", test_email_block, methods=["POST"]),
    Route("/api/v1/admin/canonical_email_blocks/{id}", show_email_block, methods=["GET"]),
    Route("/api/v1/admin/canonical_email_blocks/{id}", delete_email_block, methods=["DELETE"]),
    Route("/api/v1/instance/domain_blocks", public_domain_blocks, methods=["GET"]),
]
