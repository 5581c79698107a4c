"""Notifications: v1 ``GET /api/v1/notifications`` (filters, pagination by notification id
with a ``Link`` header), ``GET /api/v1/notifications/:id``, ``GET …/unread_count``,
``POST …/clear`` and ``POST …/:id/dismiss``; and Mastodon 4.3's grouped notifications,
``GET /api/v2/notifications`` (a page of groups), ``GET /api/v2/notifications/:group_key``,
``…/:group_key/accounts``, ``POST …/:group_key/dismiss`` and ``GET …/unread_count``.
Policies and requests live in ``server.api.notification_requests`` (routed first here,
so ``/requests`` and ``/policy`` are never read as an id or a group key).

Thin endpoints over ``services.timelines`` and ``services.notification_groups``; a
notification about a status the viewer can no longer see is left out, another account's
notification is simply "Record not found", never a hint that it exists, and one the
viewer's policy filtered shows only with ``include_filtered``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api import notification_requests
from server.api.auth import require
from server.api.entities import (
    EntityContext,
    account_to_entity,
    notification_groups_to_entity,
    notifications_to_entities,
)
from server.api.pagination import Page, link_header, paged_json
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.ids import parse_id as parse_db_id
from server.models import Account
from server.services import notification_groups, timelines
from server.state import easel

# Mastodon's notification page: 40 by default, at most 80.
DEFAULT_LIMIT = 40
MAX_LIMIT = 80
# unread_count counts up to 100 by default, at most 1000.
DEFAULT_COUNT_LIMIT = 100
MAX_COUNT_LIMIT = 1000
EXPAND_ACCOUNTS = ("full", "partial_avatars")


def browsing_filters(params: Params) -> dict[str, Any]:
    """``types``, ``exclude_types``, ``account_id`` and ``include_filtered`` as
    ``timelines.browserable_notifications`` takes them (both API versions read them)."""
    raw_sender = (params.get_str("account_id") or "").strip()
    # A sender id that is not a number matches no notification (Mastodon: an empty list).
    sender_ok = parse_db_id(raw_sender) is not None
    return {"types": params.get_list("types"), "exclude_types": params.get_list("exclude_types"),
            "from_account_id": int(raw_sender) if sender_ok else None,
            "from_nobody": bool(raw_sender) and not sender_ok,
            "include_filtered": bool(params.get_bool("include_filtered", False))}


def browsing_query(params: Params, viewer: Account) -> Select[Any]:
    return timelines.browserable_notifications(viewer, **browsing_filters(params))


# -------------------------------------------------------------------------------- v1

async def index(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    params = await Params.from_request(request)
    page = Page.from_params(params, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    filters = browsing_filters(params)
    state = easel(request)
    async with state.db.session() as session:
        found = await timelines.list_notifications(session, viewer, page, **filters)
        body = await notifications_to_entities(session, found, EntityContext.of(state), viewer)
    response = JSONResponse(body)
    link = link_header(request, [n.id for n in found], page)
    if link is not None:
        response.headers["Link"] = link
    return response


async def unread_count(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    params = await Params.from_request(request)
    limit = params.get_int("limit", DEFAULT_COUNT_LIMIT, minimum=1, maximum=MAX_COUNT_LIMIT)
    query = browsing_query(params, viewer)
    async with easel(request).db.session() as session:
        count = await timelines.count_unread_notifications(
            session, viewer, query, limit or DEFAULT_COUNT_LIMIT)
    return JSONResponse({"count": count})


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


# -------------------------------------------------------------------------------- v2

def _expand_accounts(params: Params) -> str:
    value = params.get_str("expand_accounts") or "full"
    if value not in EXPAND_ACCOUNTS:
        raise ApiError(400, f"Invalid value for 'expand_accounts': '{value}', "
                            "allowed values are 'full' and 'partial_avatars'")
    return value


async def grouped_index(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    params = await Params.from_request(request)
    page = Page.from_params(params, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    expand_accounts = _expand_accounts(params)
    grouped_types = notification_groups.grouped_types_from(params.get_list("grouped_types"))
    query = browsing_query(params, viewer)
    state = easel(request)
    async with state.db.session() as session:
        groups = await notification_groups.list_groups(
            session, query, limit=page.limit, max_id=page.max_id, since_id=page.since_id,
            min_id=page.min_id, grouped_types=grouped_types)
        body = await notification_groups_to_entity(
            session, groups, EntityContext.of(state), viewer, expand_accounts=expand_accounts)
    cursors = sorted({g.most_recent_notification_id for g in groups}
                     | {g.page_min_id for g in groups if g.page_min_id is not None}, reverse=True)
    return paged_json(request, body, cursors, page)


async def grouped_unread_count(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    params = await Params.from_request(request)
    limit = params.get_int("limit", DEFAULT_COUNT_LIMIT, minimum=1, maximum=MAX_COUNT_LIMIT)
    grouped_types = notification_groups.grouped_types_from(params.get_list("grouped_types"))
    query = browsing_query(params, viewer)
    async with easel(request).db.session() as session:
        count = await notification_groups.count_unread_groups(
            session, viewer, query, limit=limit or DEFAULT_COUNT_LIMIT,
            grouped_types=grouped_types)
    return JSONResponse({"count": count})


async def grouped_show(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    group_key = request.path_params["group_key"]
    state = easel(request)
    async with state.db.session() as session:
        group = await notification_groups.get_group(session, viewer, group_key)
        body = await notification_groups_to_entity(session, [group], EntityContext.of(state),
                                                   viewer)
    if not body["notification_groups"]:  # the sender is gone, or a filter hides the status
        raise ApiError(404, "Record not found")
    return JSONResponse(body)


async def grouped_accounts(request: Request) -> JSONResponse:
    auth = await require(request, "read:notifications")
    _, viewer = auth.require_user()
    params = await Params.from_request(request)
    page = Page.from_params(params, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    state = easel(request)
    ctx = EntityContext.of(state)
    async with state.db.session() as session:
        senders = await notification_groups.group_senders(
            session, viewer, request.path_params["group_key"], page)
    body = [account_to_entity(sender, ctx) for _, sender in senders]
    return paged_json(request, body, [notification_id for notification_id, _ in senders], page)


async def grouped_dismiss(request: Request) -> JSONResponse:
    auth = await require(request, "write:notifications")
    _, viewer = auth.require_user()
    async with easel(request).db.session() as session:
        await notification_groups.dismiss_group(session, viewer, request.path_params["group_key"])
    return JSONResponse({})


routes: list[BaseRoute] = [
    *notification_requests.routes,
    Route("/api/v1/notifications", index, methods=["GET"]),
    Route("/api/v1/notifications/clear", clear, methods=["POST"]),
    Route("/api/v1/notifications/unread_count", unread_count, methods=["GET"]),
    Route("/api/v1/notifications/{id}", show, methods=["GET"]),
    Route("/api/v1/notifications/{id}/dismiss", dismiss, methods=["POST"]),
    Route("/api/v2/notifications", grouped_index, methods=["GET"]),
    Route("/api/v2/notifications/clear", clear, methods=["POST"]),
    Route("/api/v2/notifications/unread_count", grouped_unread_count, methods=["GET"]),
    Route("/api/v2/notifications/{group_key}", grouped_show, methods=["GET"]),
    Route("/api/v2/notifications/{group_key}/accounts", grouped_accounts, methods=["GET"]),
    Route("/api/v2/notifications/{group_key}/dismiss", grouped_dismiss, methods=["POST"]),
]
