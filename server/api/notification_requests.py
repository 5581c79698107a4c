"""Notification policies and requests (Mastodon 4.3): ``GET``/``PATCH
/api/v2/notifications/policy`` (accept / filter / drop per kind of sender) and the older
``/api/v1/notifications/policy`` (``filter_*`` booleans); ``GET
/api/v1/notifications/requests`` (paginated), ``GET …/requests/:id``, ``POST
…/requests/:id/accept`` and ``/dismiss``, the bulk ``POST …/requests/accept`` and
``/dismiss`` (``id[]``), and ``GET …/requests/merged``.

Thin endpoints over ``services.notification_policies``. Accepting merges the filtered
notifications at once, so ``merged`` is always true. Another account's request is "Record
not found"; bulk calls skip ids that are not the viewer's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import (
    EntityContext,
    notification_policy_to_entity,
    notification_requests_to_entities,
    v1_notification_policy_to_entity,
)
from server.api.pagination import Page, paged_json
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.models import Account
from server.services import notification_policies
from server.state import easel

DEFAULT_LIMIT = 40
MAX_LIMIT = 80


# ------------------------------------------------------------------------------ policy

async def _policy_response(request: Request, viewer: Account, changes: dict[str, str] | None,
                           *, v1: bool) -> JSONResponse:
    async with easel(request).db.session() as session:
        if changes is not None:
            policy = await notification_policies.update_policy(session, viewer, changes)
        else:
            policy = await notification_policies.get_policy(session, viewer)
        summary = await notification_policies.summarize(session, viewer)
    convert = v1_notification_policy_to_entity if v1 else notification_policy_to_entity
    return JSONResponse(convert(policy, summary))


async def show_policy(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    return await _policy_response(request, viewer, None, v1=False)


async def update_policy(request: Request) -> JSONResponse:
    auth = await require(request, "write:notifications")
    _, viewer = auth.require_user()
    params = await Params.from_request(request)
    changes = {}
    for field in notification_policies.POLICY_FIELDS:
        value = params.get_str(field)
        if value is not None:
            changes[field] = value.strip()
    return await _policy_response(request, viewer, changes, v1=False)


async def show_v1_policy(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    return await _policy_response(request, viewer, None, v1=True)


async def update_v1_policy(request: Request) -> JSONResponse:
    auth = await require(request, "write:notifications")
    _, viewer = auth.require_user()
    params = await Params.from_request(request)
    changes = {}
    for v1_field, field in notification_policies.V1_POLICY_FIELDS.items():
        value = params.get_bool(v1_field)
        if value is not None:
            changes[field] = "filter" if value else "accept"
    return await _policy_response(request, viewer, changes, v1=True)


# ---------------------------------------------------------------------------- requests

async def index(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    params = await Params.from_request(request)
    page = Page.from_params(params, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    state = easel(request)
    async with state.db.session() as session:
        found = await notification_policies.list_requests(session, viewer, page)
        body = await notification_requests_to_entities(session, found, EntityContext.of(state),
                                                       viewer)
    return paged_json(request, body, [r.id for r in found], page)


async def show(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    request_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        found = await notification_policies.get_request(session, viewer, request_id)
        body = await notification_requests_to_entities(session, [found], EntityContext.of(state),
                                                       viewer)
    if not body:  # the sender's account is gone
        raise ApiError(404, "Record not found")
    return JSONResponse(body[0])


async def accept(request: Request) -> JSONResponse:
    auth = await require(request, "write:notifications")
    _, viewer = auth.require_user()
    request_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await notification_policies.accept_request(session, viewer, request_id)
    return JSONResponse({})


async def dismiss(request: Request) -> JSONResponse:
    auth = await require(request, "write:notifications")
    _, viewer = auth.require_user()
    request_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await notification_policies.dismiss_request(session, viewer, request_id)
    return JSONResponse({})


async def _bulk_ids(request: Request) -> list[int]:
    params = await Params.from_request(request)
    # Mastodon.py 2.3.3 sends "id[][]" (its own "[]" added to a list named "id[]").
    ids = params.get_ids("id") + params.get_ids("id[]")
    if not ids:
        raise ApiError(400, "param is missing or the value is empty: id")
    return ids


async def accept_bulk(request: Request) -> JSONResponse:
    auth = await require(request, "write:notifications")
    _, viewer = auth.require_user()
    ids = await _bulk_ids(request)
    async with easel(request).db.session() as session:
        await notification_policies.accept_requests(session, viewer, ids)
    return JSONResponse({})


async def dismiss_bulk(request: Request) -> JSONResponse:
    auth = await require(request, "write:notifications")
    _, viewer = auth.require_user()
    ids = await _bulk_ids(request)
    async with easel(request).db.session() as session:
        await notification_policies.dismiss_requests(session, viewer, ids)
    return JSONResponse({})


async def merged(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    auth.require_user()
    return JSONResponse({"merged": True})


routes: list[BaseRoute] = [
    Route("/api/v2/notifications/policy", show_policy, methods=["GET"]),
    Route("/api/v2/notifications/policy", update_policy, methods=["PATCH", "PUT"]),
    Route("/api/v1/notifications/policy", show_v1_policy, methods=["GET"]),
    Route("/api/v1/notifications/policy", update_v1_policy, methods=["PATCH", "PUT"]),
    Route("/api/v1/notifications/requests", index, methods=["GET"]),
    Route("/api/v1/notifications/requests/accept", accept_bulk, methods=["POST"]),
    Route("/api/v1/notifications/requests/dismiss", dismiss_bulk, methods=["POST"]),
    Route("/api/v1/notifications/requests/merged", merged, methods=["GET"]),
    Route("/api/v1/notifications/requests/{id}", show, methods=["GET"]),
    Route("/api/v1/notifications/requests/{id}/accept", accept, methods=["POST"]),
    Route("/api/v1/notifications/requests/{id}/dismiss", dismiss, methods=["POST"]),
]
