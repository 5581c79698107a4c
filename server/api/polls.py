"""Polls in the Mastodon client API: ``GET /api/v1/polls/:id``, ``POST
/api/v1/polls/:id/votes``, and the parsing of ``poll[...]`` for posting and editing
statuses (``poll_spec_from_params``). The rules live in ``server/services/polls.py``.

What it must never do: decide whether a poll or a vote is valid (the service does).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.api.auth import require, viewer
from server.api.entities import poll_to_entity
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.services import polls
from server.services.polls import PollSpec
from server.state import easel


def poll_spec_from_params(params: Params) -> PollSpec | None:
    """The ``poll[...]`` a client sent with a status (form brackets or a JSON object), or
    None when it sent none; ApiError 422 when they are malformed. Whether the poll is
    valid (counts, lengths, duration) is ``polls.validate_poll``'s to say."""
    names = [name for name in params.values if name.startswith("poll[")]
    if not names:
        if params.has("poll") and params.raw("poll") not in (None, ""):
            raise ApiError(422, "Validation failed: poll must be an object")
        return None
    options = params.get_list("poll[options]")
    if params.get_str("poll[expires_in]") in (None, ""):
        raise ApiError(422, "Validation failed: Poll expires at The poll has already ended")
    expires_in = params.get_int("poll[expires_in]")
    assert expires_in is not None
    return PollSpec(options=options, expires_in=expires_in,
                    multiple=bool(params.get_bool("poll[multiple]", False)),
                    hide_totals=bool(params.get_bool("poll[hide_totals]", False)))


async def show_poll(request: Request) -> Response:
    poll_id = parse_id(request.path_params["id"])
    account = await viewer(request, "read:statuses")
    async with easel(request).db.session() as session:
        view = await polls.poll_view(session, account, poll_id)
    return JSONResponse(poll_to_entity(view))


async def vote_in_poll(request: Request) -> Response:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    poll_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    choices = params.get_list("choices")
    async with easel(request).db.session() as session:
        view = await polls.vote(session, account, poll_id, choices)
    return JSONResponse(poll_to_entity(view))


routes: list[BaseRoute] = [
    Route("/api/v1/polls/{id}", show_poll, methods=["GET"]),
    Route("/api/v1/polls/{id}/votes", vote_in_poll, methods=["POST"]),
]
