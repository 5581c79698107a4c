"""Reading positions: ``GET``/``POST /api/v1/markers`` (home and notifications, synced
between apps)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import marker_to_entity
from server.api.params import Params
from server.errors import ApiError
from server.ids import parse_id as parse_db_id
from server.models import MARKER_TIMELINES
from server.services import markers
from server.state import easel


async def show(request: Request) -> JSONResponse:
    auth = await require(request, "read:statuses")
    _, me = auth.require_user()
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        found = await markers.get_markers(session, me, params.get_list("timeline"))
    return JSONResponse({m.timeline: marker_to_entity(m) for m in found})


async def save(request: Request) -> JSONResponse:
    """Form ``home[last_read_id]=…`` or JSON ``{"home": {"last_read_id": "…"}}``."""
    auth = await require(request, "write:statuses")
    _, me = auth.require_user()
    params = await Params.from_request(request)
    positions: dict[str, int] = {}
    for timeline in MARKER_TIMELINES:
        raw = params.get_str(f"{timeline}[last_read_id]")  # JSON objects arrive flattened
        if raw is None:
            continue
        last_read_id = parse_db_id(raw)
        if last_read_id is None:
            raise ApiError(422, f"Validation failed: {timeline}[last_read_id] is not an id")
        positions[timeline] = last_read_id
    if not positions:
        raise ApiError(422, "Validation failed: give home[last_read_id] or notifications[last_read_id]")
    async with easel(request).db.session() as session:
        saved = await markers.save_markers(session, me, positions)
        return JSONResponse({m.timeline: marker_to_entity(m) for m in saved})


routes: list[BaseRoute] = [
    Route("/api/v1/markers", show, methods=["GET"]),
    Route("/api/v1/markers", save, methods=["POST"]),
]
