"""Mastodon's statuses API: post, read, delete, thread context, favourite, boost, bookmark,
mute the thread.

Each endpoint authenticates, parses, makes one service call (``server.services.statuses``)
and serialises with ``server.api.entities``; the rules live in the service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from federation.context import federation_context
from federation.mentions import resolve_unknown_mentions
from server.api.auth import optional, require, viewer
from server.api.entities import (
    EntityContext,
    account_to_entity,
    scheduled_status_to_entity,
    status_edits_to_entities,
    status_to_entity,
    statuses_to_entities,
)
from server.api.pagination import Page, link_header
from server.api.params import Params, parse_id
from server.api.polls import poll_spec_from_params
from server.api.portfolio import work_meta_from_params
from server.api.scheduled_statuses import scheduled_at_from_params
from server.errors import ApiError
from server.ids import parse_id as parse_db_id
from server.models import Account, Status
from server.services import edits, scheduled
from server.services import statuses as service
from server.state import easel

# GET /api/v1/statuses?id[]=… answers at most this many (Mastodon's limit).
MAX_STATUSES_BY_ID = 20


def _optional_id(params: Params, name: str) -> int | None:
    raw = params.get_str(name)
    if raw is None or not raw.strip():
        return None
    value = parse_db_id(raw)
    if value is None:
        raise ApiError(404, "Record not found")  # Mastodon: Status.find fails
    return value


async def create_status(request: Request) -> Response:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    params = await Params.from_request(request)
    text = params.get_str("status")
    media_ids = params.get_ids("media_ids")
    sensitive = params.get_bool("sensitive")
    spoiler_text = params.get_str("spoiler_text")
    visibility = params.get_str("visibility")
    in_reply_to_id = _optional_id(params, "in_reply_to_id")
    language = params.get_str("language")
    poll = poll_spec_from_params(params)
    scheduled_at = scheduled_at_from_params(params)
    # Easel: a work's portfolio data in the same call (the shape of PUT /api/v1/easel/works/:id).
    work = (work_meta_from_params(params, "easel")[0]
            if any(name.startswith("easel[") for name in params.values) else None)
    if params.has("easel") and work is None:
        raise ApiError(422, "Validation failed: easel must be an object")
    state = easel(request)
    # Unknown @user@host mentions are looked up first (bounded), so the service links them.
    await resolve_unknown_mentions(federation_context(state.settings, state.db), text)
    if scheduled_at is not None and not scheduled.posts_now(scheduled_at):
        async with state.db.session() as session:
            later = await scheduled.schedule_status(
                session, state.settings, account, auth.application.id, scheduled_at=scheduled_at,
                text=text, media_ids=media_ids, sensitive=sensitive, spoiler_text=spoiler_text,
                visibility=visibility, in_reply_to_id=in_reply_to_id, language=language,
                idempotency_key=request.headers.get("idempotency-key"), work=work, poll=poll)
        return JSONResponse(scheduled_status_to_entity(later, EntityContext.of(state)))
    async with state.db.session() as session:
        status = await service.create_status(
            session, state.settings, account, auth.application.id,
            text=text, media_ids=media_ids, sensitive=sensitive, spoiler_text=spoiler_text,
            visibility=visibility, in_reply_to_id=in_reply_to_id, language=language,
            idempotency_key=request.headers.get("idempotency-key"), work=work, poll=poll)
        entity = await status_to_entity(session, status, EntityContext.of(state), account)
    return JSONResponse(entity)


async def get_status(request: Request) -> Response:
    status_id = parse_id(request.path_params["id"])
    account = await viewer(request, "read:statuses")
    state = easel(request)
    async with state.db.session() as session:
        status = await service.visible_status(session, account, status_id)
        entity = await status_to_entity(session, status, EntityContext.of(state), account)
    return JSONResponse(entity)


async def get_statuses(request: Request) -> Response:
    account = await viewer(request, "read:statuses")
    params = await Params.from_request(request)
    ids = list(dict.fromkeys(params.get_ids("id")))[:MAX_STATUSES_BY_ID]
    state = easel(request)
    async with state.db.session() as session:
        statuses = await service.visible_statuses(session, account, ids)
        entities = await statuses_to_entities(session, statuses, EntityContext.of(state), account)
    return JSONResponse(entities)


async def delete_status(request: Request) -> Response:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    status_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        status = await service.own_status(session, account, status_id)
        # The entity (with its source text and media) is what a client redrafts from.
        entity = await status_to_entity(session, status, EntityContext.of(state), account)
        entity["text"] = status.text
        await service.delete_status(session, status)
    return JSONResponse(entity)


async def status_context(request: Request) -> Response:
    status_id = parse_id(request.path_params["id"])
    account = await viewer(request, "read:statuses")
    state = easel(request)
    ctx = EntityContext.of(state)
    async with state.db.session() as session:
        thread = await service.context(session, account, status_id)
        entities = await statuses_to_entities(
            session, [*thread.ancestors, *thread.descendants], ctx, account, filter_context="thread")
    # A status a "hide" filter matches is left out, so split by id, not by position.
    ancestor_ids = {str(s.id) for s in thread.ancestors}
    return JSONResponse({"ancestors": [e for e in entities if e["id"] in ancestor_ids],
                         "descendants": [e for e in entities if e["id"] not in ancestor_ids]})


async def status_source(request: Request) -> Response:
    auth = await require(request, "read:statuses")
    _user, account = auth.require_user()
    status_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        status = await service.status_source(session, account, status_id)
    return JSONResponse({"id": str(status.id), "text": status.text,
                         "spoiler_text": status.spoiler_text})


def _media_changes(params: Params) -> list[edits.MediaChange]:
    """``media_attributes[][id|description|focus]`` (form or JSON)."""
    changes = []
    for entry in params.get_indexed("media_attributes"):
        raw_id = entry.get("id")
        media_id = parse_db_id(str(raw_id)) if isinstance(raw_id, str | int) else None
        if media_id is None:
            raise ApiError(422, "Validation failed: media_attributes must name media ids")
        texts = {}
        for name in ("description", "focus"):
            value = entry.get(name)
            if value is not None and not isinstance(value, str | int | float):
                raise ApiError(422, f"Validation failed: media_attributes {name} must be text")
            texts[name] = None if value is None else str(value)
        changes.append(edits.MediaChange(media_id, texts["description"], texts["focus"]))
    return changes


async def edit_status(request: Request) -> Response:
    """PUT /api/v1/statuses/:id, as Mastodon reads it: the edit is the whole new status, so
    an omitted content warning is cleared and an omitted (or empty, or null) poll removed
    (apps remove a poll by leaving it out). Except the media: what an edit does not name in
    ``media_ids`` is kept, so a client that sends only the text never takes an artist's
    images down (``media_ids[]`` empty, or JSON ``[]`` or null, removes them). The text,
    sensitivity (only ever raised by a content warning), language and portfolio data are
    kept when not sent."""
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    status_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    text = params.get_str("status")
    # Blank values are dropped, so a form can say "no media" with one empty media_ids[].
    media_ids = (params.get_ids("media_ids", skip_blank=True)
                 if params.has("media_ids") else None)
    poll = poll_spec_from_params(params)
    remove_poll = poll is None
    work = (work_meta_from_params(params, "easel")[0]
            if any(name.startswith("easel[") for name in params.values) else None)
    if params.has("easel") and work is None:
        raise ApiError(422, "Validation failed: easel must be an object")
    changes = _media_changes(params)
    state = easel(request)
    if text:
        await resolve_unknown_mentions(federation_context(state.settings, state.db), text)
    async with state.db.session() as session:
        status = await edits.edit_status(
            session, state.settings, account, status_id, text=text,
            spoiler_text=params.get_str("spoiler_text") or "",
            sensitive=params.get_bool("sensitive"),
            language=params.get_str("language"),
            media_ids=media_ids,
            media_attributes=changes, poll=poll, remove_poll=remove_poll, work=work)
        entity = await status_to_entity(session, status, EntityContext.of(state), account)
    return JSONResponse(entity)


async def status_history(request: Request) -> Response:
    status_id = parse_id(request.path_params["id"])
    account = await viewer(request, "read:statuses")
    state = easel(request)
    async with state.db.session() as session:
        status, versions = await edits.status_history(session, account, status_id)
        entities = await status_edits_to_entities(session, status, versions,
                                                  EntityContext.of(state))
    return JSONResponse(entities)


StatusAction = Callable[[AsyncSession, Account, int], Awaitable[Status]]


def _action(scope: str, action: StatusAction) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint for one of the idempotent actions on a status (favourite, bookmark…):
    it answers with the status acted on."""

    async def endpoint(request: Request) -> Response:
        auth = await require(request, scope)
        _user, account = auth.require_user()
        status_id = parse_id(request.path_params["id"])
        state = easel(request)
        async with state.db.session() as session:
            status = await action(session, account, status_id)
            entity = await status_to_entity(session, status, EntityContext.of(state), account)
        return JSONResponse(entity)

    endpoint.__name__ = action.__name__
    return endpoint


async def reblog_status(request: Request) -> Response:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    status_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    visibility = params.get_str("visibility")
    state = easel(request)
    async with state.db.session() as session:
        boost = await service.reblog(session, state.settings, account, status_id, visibility)
        entity = await status_to_entity(session, boost, EntityContext.of(state), account)
    return JSONResponse(entity)


def _accounts_page(request: Request, rows: Sequence[tuple[int, Account]], page: Page,
                   ctx: EntityContext) -> Response:
    response = JSONResponse([account_to_entity(account, ctx) for _cursor, account in rows])
    link = link_header(request, [cursor for cursor, _account in rows], page)
    if link:
        response.headers["Link"] = link
    return response


async def favourited_by(request: Request) -> Response:
    status_id = parse_id(request.path_params["id"])
    auth = await optional(request, "read:accounts")
    account = auth.account if auth is not None else None
    page = Page.from_params(await Params.from_request(request))
    state = easel(request)
    async with state.db.session() as session:
        rows = await service.favourited_by(session, account, status_id, page)
    return _accounts_page(request, rows, page, EntityContext.of(state))


async def reblogged_by(request: Request) -> Response:
    status_id = parse_id(request.path_params["id"])
    auth = await optional(request, "read:accounts")
    account = auth.account if auth is not None else None
    page = Page.from_params(await Params.from_request(request))
    state = easel(request)
    async with state.db.session() as session:
        rows = await service.reblogged_by(session, account, status_id, page)
    return _accounts_page(request, rows, page, EntityContext.of(state))


routes: list[BaseRoute] = [
    Route("/api/v1/statuses", create_status, methods=["POST"]),
    Route("/api/v1/statuses", get_statuses, methods=["GET"]),
    Route("/api/v1/statuses/{id}", get_status, methods=["GET"]),
    Route("/api/v1/statuses/{id}", delete_status, methods=["DELETE"]),
    Route("/api/v1/statuses/{id}", edit_status, methods=["PUT"]),
    Route("/api/v1/statuses/{id}/history", status_history, methods=["GET"]),
    Route("/api/v1/statuses/{id}/context", status_context, methods=["GET"]),
    Route("/api/v1/statuses/{id}/source", status_source, methods=["GET"]),
    Route("/api/v1/statuses/{id}/favourite", _action("write:favourites", service.favourite),
          methods=["POST"]),
    Route("/api/v1/statuses/{id}/unfavourite", _action("write:favourites", service.unfavourite),
          methods=["POST"]),
    Route("/api/v1/statuses/{id}/bookmark", _action("write:bookmarks", service.bookmark),
          methods=["POST"]),
    Route("/api/v1/statuses/{id}/unbookmark", _action("write:bookmarks", service.unbookmark),
          methods=["POST"]),
    Route("/api/v1/statuses/{id}/mute", _action("write:mutes", service.mute_conversation),
          methods=["POST"]),
    Route("/api/v1/statuses/{id}/unmute", _action("write:mutes", service.unmute_conversation),
          methods=["POST"]),
    Route("/api/v1/statuses/{id}/reblog", reblog_status, methods=["POST"]),
    Route("/api/v1/statuses/{id}/pin", _action("write:accounts", service.pin_status),
          methods=["POST"]),
    Route("/api/v1/statuses/{id}/unpin", _action("write:accounts", service.unpin_status),
          methods=["POST"]),
    Route("/api/v1/statuses/{id}/unreblog", _action("write:statuses", service.unreblog),
          methods=["POST"]),
    Route("/api/v1/statuses/{id}/favourited_by", favourited_by, methods=["GET"]),
    Route("/api/v1/statuses/{id}/reblogged_by", reblogged_by, methods=["GET"]),
]
