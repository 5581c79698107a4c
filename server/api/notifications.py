"""Notifications: ``GET /api/v1/notifications`` (filters, pagination by notification id
with a ``Link`` header), ``GET /api/v1/notifications/:id``, ``POST …/clear`` and
``POST …/:id/dismiss``.

Thin endpoints over ``services.timelines``; a notification about a status the viewer can
no longer see is left out, and another account's notification is simply "Record not
found", never a hint that it exists.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import EntityContext, notifications_to_entities
from server.api.pagination import Page, link_header
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.ids import parse_id as parse_db_id
from server.services import timelines
from server.state import easel

# Mastodon's notification page: 40 by default, at most 80.
DEFAULT_LIMIT = 40
MAX_LIMIT = 80


async def index(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    params = await Params.from_request(request)
    page = Page.from_params(params, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    raw_sender = (params.get_str("account_id") or "").strip()
    # A sender id that is not a number matches no notification (Mastodon: an empty list).
    sender_ok = parse_db_id(raw_sender) is not None
    state = easel(request)
    async with state.db.session() as session:
        found = await timelines.list_notifications(
            session, viewer, page, types=params.get_list("types"),
            exclude_types=params.get_list("exclude_types"),
            from_account_id=int(raw_sender) if sender_ok else None,
            from_nobody=bool(raw_sender) and not sender_ok)
        body = await notifications_to_entities(session, found, EntityContext.of(state), viewer)
    response = JSONResponse(body)
    link = link_header(request, [n.id for n in found], page)
    if link is not None:
        response.headers["Link"] = link
    return response


async def show(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    notification_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        found = await timelines.get_notification(session, viewer, notification_id)
        body = await notifications_to_entities(session, [found], EntityContext.of(state), viewer)
    if not body:  # the sender's account is gone
        raise ApiError(404, "Record not found")
    return JSONResponse(body[0])


async def clear(request: Request) -> JSONResponse:
    auth = await require(request, "write:notifications")
    _, viewer = auth.require_user()
    async with easel(request).db.session() as session:
        await timelines.clear_notifications(session, viewer)
    return JSONResponse({})


async def dismiss(request: Request) -> JSONResponse:
    auth = await require(request, "write:notifications")
    _, viewer = auth.require_user()
    notification_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await timelines.dismiss_notification(session, viewer, notification_id)
    return JSONResponse({})


routes: list[BaseRoute] = [
    Route("/api/v1/notifications", index, methods=["GET"]),
    Route("/api/v1/notifications/clear", clear, methods=["POST"]),
    Route("/api/v1/notifications/{id}", show, methods=["GET"]),
    Route("/api/v1/notifications/{id}/dismiss", dismiss, methods=["POST"]),
]
