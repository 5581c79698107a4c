"""Mastodon's scheduled statuses API: ``/api/v1/scheduled_statuses`` (list, one, move,
cancel), and ``scheduled_at`` as ``POST /api/v1/statuses`` reads it.

Each endpoint authenticates, parses, makes one service call
(``server.services.scheduled``) and serialises; the rules live in the service.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import EntityContext, scheduled_status_to_entity
from server.api.pagination import Page, paged_json
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.services import scheduled
from server.state import easel

NOT_A_DATE = "Validation failed: Scheduled at is not a valid date"


def scheduled_at_from_params(params: Params) -> datetime | None:
    """``scheduled_at`` (ISO 8601; without an offset it is UTC) to the millisecond, or
    None when not given; 422 when it is not a date."""
    # An object or list sent as scheduled_at arrives as scheduled_at[…]: not a date either.
    if any(name.startswith("scheduled_at[") for name in params.values):
        raise ApiError(422, NOT_A_DATE)
    raw = params.get_str("scheduled_at")
    if raw is None or not raw.strip():
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ApiError(422, NOT_A_DATE) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


async def index(request: Request) -> JSONResponse:
    auth = await require(request, "read:statuses")
    _user, account = auth.require_user()
    page = Page.from_params(await Params.from_request(request))
    state = easel(request)
    async with state.db.session() as session:
        views = await scheduled.scheduled_statuses(session, account, page)
    ctx = EntityContext.of(state)
    return paged_json(request, [scheduled_status_to_entity(view, ctx) for view in views],
                      [view.scheduled.id for view in views], page)


async def show(request: Request) -> JSONResponse:
    auth = await require(request, "read:statuses")
    _user, account = auth.require_user()
    scheduled_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        view = await scheduled.scheduled_status(session, account, scheduled_id)
    return JSONResponse(scheduled_status_to_entity(view, EntityContext.of(state)))


async def update(request: Request) -> JSONResponse:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    scheduled_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    scheduled_at = scheduled_at_from_params(params)
    if params.has("scheduled_at") and scheduled_at is None:
        raise ApiError(422, "Validation failed: Scheduled at can't be blank")
    state = easel(request)
    async with state.db.session() as session:
        view = await scheduled.reschedule(session, account, scheduled_id, scheduled_at)
    return JSONResponse(scheduled_status_to_entity(view, EntityContext.of(state)))


async def destroy(request: Request) -> JSONResponse:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    scheduled_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await scheduled.cancel(session, account, scheduled_id)
    return JSONResponse({})


routes: list[BaseRoute] = [
    Route("/api/v1/scheduled_statuses", index, methods=["GET"]),
    Route("/api/v1/scheduled_statuses/{id}", show, methods=["GET"]),
    Route("/api/v1/scheduled_statuses/{id}", update, methods=["PUT"]),
    Route("/api/v1/scheduled_statuses/{id}", destroy, methods=["DELETE"]),
]
