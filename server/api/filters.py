"""Filters in the Mastodon client API.

v2: ``/api/v2/filters`` (CRUD, with ``keywords_attributes[]`` to add, change and
``_destroy`` keywords), a filter's keywords (``/api/v2/filters/:id/keywords``,
``/api/v2/filters/keywords/:id``) and statuses (``/api/v2/filters/:id/statuses``,
``/api/v2/filters/statuses/:id``). v1: ``/api/v1/filters``, where each keyword is a
"filter" with a phrase. Thin endpoints; the rules, and how filters apply to timelines,
live in ``server/services/filters.py``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import (
    filter_keyword_to_entity,
    filter_status_to_entity,
    filter_view_to_entity,
    v1_filter_to_entity,
)
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.ids import parse_id as parse_db_id
from server.models import Account
from server.services import filters
from server.state import easel


async def _me(request: Request, scope: str) -> Account:
    auth = await require(request, scope)
    _, me = auth.require_user()
    return me


def _expiry(params: Params) -> filters.Expiry | None:
    """``expires_in``: absent leaves the expiry alone; empty or null means "never"."""
    if not params.has("expires_in"):
        return None
    return filters.Expiry(params.get_int("expires_in"))


def _contexts(params: Params) -> list[str] | None:
    return params.get_list("context") if params.has("context") else None


def _keyword_changes(params: Params) -> list[filters.KeywordChange]:
    # Given bare: an empty list or null changes nothing (as Mastodon); a value is an error.
    if any(value is not None for value in params.values.get("keywords_attributes", [])):
        raise ApiError(422, "Validation failed: keywords_attributes must be a list of objects")
    changes = []
    for entry in params.get_indexed("keywords_attributes"):
        fields = Params({key: [value] for key, value in entry.items()})
        raw_id = fields.get_str("id")
        keyword_id = parse_db_id(raw_id) if raw_id not in (None, "") else None
        if raw_id not in (None, "") and keyword_id is None:
            raise ApiError(404, "Record not found")
        changes.append(filters.KeywordChange(
            id=keyword_id, keyword=fields.get_str("keyword"),
            whole_word=fields.get_bool("whole_word"),
            destroy=bool(fields.get_bool("_destroy", False))))
    return changes


# ------------------------------------------------------------------ v2 filters

async def index(request: Request) -> JSONResponse:
    me = await _me(request, "read:filters")
    async with easel(request).db.session() as session:
        found = await filters.filters_of(session, me)
    return JSONResponse([filter_view_to_entity(v) for v in found])


async def show(request: Request) -> JSONResponse:
    me = await _me(request, "read:filters")
    filter_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        return JSONResponse(filter_view_to_entity(await filters.filter_of(session, me, filter_id)))


async def create(request: Request) -> JSONResponse:
    me = await _me(request, "write:filters")
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        created = await filters.create_filter(
            session, me, title=params.get_str("title"), context=params.get_list("context"),
            action=params.get_str("filter_action"), expiry=_expiry(params),
            keywords=_keyword_changes(params))
        return JSONResponse(filter_view_to_entity(created))


async def update(request: Request) -> JSONResponse:
    me = await _me(request, "write:filters")
    filter_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        changed = await filters.update_filter(
            session, me, filter_id, title=params.get_str("title"), context=_contexts(params),
            action=params.get_str("filter_action"), expiry=_expiry(params),
            keywords=_keyword_changes(params))
        return JSONResponse(filter_view_to_entity(changed))


async def destroy(request: Request) -> JSONResponse:
    me = await _me(request, "write:filters")
    filter_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await filters.delete_filter(session, me, filter_id)
    return JSONResponse({})


# ------------------------------------------------------------------ v2 keywords

async def keywords(request: Request) -> JSONResponse:
    me = await _me(request, "read:filters")
    filter_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        found = await filters.keywords_of(session, me, filter_id)
    return JSONResponse([filter_keyword_to_entity(k) for k in found])


async def add_keyword(request: Request) -> JSONResponse:
    me = await _me(request, "write:filters")
    filter_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        created = await filters.add_keyword(session, me, filter_id, keyword=params.get_str("keyword"),
                                            whole_word=params.get_bool("whole_word"))
        return JSONResponse(filter_keyword_to_entity(created))


async def show_keyword(request: Request) -> JSONResponse:
    me = await _me(request, "read:filters")
    keyword_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        found, _ = await filters.own_keyword(session, me, keyword_id)
        return JSONResponse(filter_keyword_to_entity(found))


async def update_keyword(request: Request) -> JSONResponse:
    me = await _me(request, "write:filters")
    keyword_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        changed = await filters.update_keyword(session, me, keyword_id,
                                               keyword=params.get_str("keyword"),
                                               whole_word=params.get_bool("whole_word"))
        return JSONResponse(filter_keyword_to_entity(changed))


async def destroy_keyword(request: Request) -> JSONResponse:
    me = await _me(request, "write:filters")
    keyword_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await filters.delete_keyword(session, me, keyword_id)
    return JSONResponse({})


# ------------------------------------------------------------------ v2 statuses

async def statuses(request: Request) -> JSONResponse:
    me = await _me(request, "read:filters")
    filter_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        found = await filters.statuses_of(session, me, filter_id)
    return JSONResponse([filter_status_to_entity(r) for r in found])


async def add_status(request: Request) -> JSONResponse:
    me = await _me(request, "write:filters")
    filter_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    raw = params.get_str("status_id")
    async with easel(request).db.session() as session:
        created = await filters.add_status(session, me, filter_id, parse_db_id(raw) if raw else None)
        return JSONResponse(filter_status_to_entity(created))


async def show_status(request: Request) -> JSONResponse:
    me = await _me(request, "read:filters")
    rule_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        return JSONResponse(filter_status_to_entity(await filters.own_filter_status(session, me, rule_id)))


async def destroy_status(request: Request) -> JSONResponse:
    me = await _me(request, "write:filters")
    rule_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await filters.delete_filter_status(session, me, rule_id)
    return JSONResponse({})


# ------------------------------------------------------------------ v1

async def v1_index(request: Request) -> JSONResponse:
    me = await _me(request, "read:filters")
    async with easel(request).db.session() as session:
        found = await filters.v1_filters(session, me)
    return JSONResponse([v1_filter_to_entity(k, f) for k, f in found])


async def v1_show(request: Request) -> JSONResponse:
    me = await _me(request, "read:filters")
    keyword_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        keyword, found = await filters.own_keyword(session, me, keyword_id)
        return JSONResponse(v1_filter_to_entity(keyword, found))


async def v1_create(request: Request) -> JSONResponse:
    me = await _me(request, "write:filters")
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        keyword, found = await filters.create_v1_filter(
            session, me, phrase=params.get_str("phrase"), context=params.get_list("context"),
            irreversible=params.get_bool("irreversible"), whole_word=params.get_bool("whole_word"),
            expiry=_expiry(params))
        return JSONResponse(v1_filter_to_entity(keyword, found))


async def v1_update(request: Request) -> JSONResponse:
    me = await _me(request, "write:filters")
    keyword_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    async with easel(request).db.session() as session:
        keyword, found = await filters.update_v1_filter(
            session, me, keyword_id, phrase=params.get_str("phrase"), context=_contexts(params),
            irreversible=params.get_bool("irreversible"), whole_word=params.get_bool("whole_word"),
            expiry=_expiry(params))
        return JSONResponse(v1_filter_to_entity(keyword, found))


async def v1_destroy(request: Request) -> JSONResponse:
    me = await _me(request, "write:filters")
    keyword_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await filters.delete_v1_filter(session, me, keyword_id)
    return JSONResponse({})


routes: list[BaseRoute] = [
    Route("/api/v2/filters", index, methods=["GET"]),
    Route("/api/v2/filters", create, methods=["POST"]),
    Route("/api/v2/filters/keywords/{id}", show_keyword, methods=["GET"]),
    Route("/api/v2/filters/keywords/{id}", update_keyword, methods=["PUT"]),
    Route("/api/v2/filters/keywords/{id}", destroy_keyword, methods=["DELETE"]),
    Route("/api/v2/filters/statuses/{id}", show_status, methods=["GET"]),
    Route("/api/v2/filters/statuses/{id}", destroy_status, methods=["DELETE"]),
    Route("/api/v2/filters/{id}", show, methods=["GET"]),
    Route("/api/v2/filters/{id}", update, methods=["PUT"]),
    Route("/api/v2/filters/{id}", destroy, methods=["DELETE"]),
    Route("/api/v2/filters/{id}/keywords", keywords, methods=["GET"]),
    Route("/api/v2/filters/{id}/keywords", add_keyword, methods=["POST"]),
    Route("/api/v2/filters/{id}/statuses", statuses, methods=["GET"]),
    Route("/api/v2/filters/{id}/statuses", add_status, methods=["POST"]),
    Route("/api/v1/filters", v1_index, methods=["GET"]),
    Route("/api/v1/filters", v1_create, methods=["POST"]),
    Route("/api/v1/filters/{id}", v1_show, methods=["GET"]),
    Route("/api/v1/filters/{id}", v1_update, methods=["PUT"]),
    Route("/api/v1/filters/{id}", v1_destroy, methods=["DELETE"]),
]
