"""Easel's portfolio API (``/api/v1/easel/…``): works' metadata, browsing by tags,
artists' portfolios and projects, and the instance's tag vocabulary.

Why it exists: Mastodon has no notion of a work, a project or a vocabulary of fields and
mediums; these routes add them beside the Mastodon API without changing it (a work is
still a status, and is returned as a status entity with an extra ``easel`` key). Each
endpoint authenticates, parses, makes one service call (``server.services.portfolio`` or
``server.services.statuses``) and serialises with ``server.api.entities``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.api.auth import require, viewer
from server.api.entities import Entity, EntityContext, iso, statuses_to_entities
from server.api.pagination import Page, link_header
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.ids import parse_id as parse_db_id
from server.models import Account
from server.services import accounts as account_service
from server.services import portfolio as service
from server.services import statuses as status_service
from server.services.portfolio import API_PARAM, KINDS, ProjectView, Suggestion, WorkMeta
from server.state import easel


def _json(data: Any, *, link: str | None = None) -> JSONResponse:
    response = JSONResponse(data)
    if link:
        response.headers["Link"] = link
    return response


# ------------------------------------------------------------------ parsing

def work_meta_from_params(params: Params, prefix: str = "") -> tuple[WorkMeta, list[str]]:
    """A work's portfolio data from a request — top-level names (``title``, ``field[]``,
    or ``tags[field][]``), or under ``prefix`` (``easel[title]``, ``easel[field][]`` …) —
    and the names of the fields it gave."""

    def name(*parts: str) -> str:
        head, *rest = parts
        inner = "".join(f"[{part}]" for part in rest)
        return f"{prefix}[{head}]{inner}" if prefix else f"{head}{inner}"

    given: list[str] = []
    meta = WorkMeta()
    for text_field, limit in (("title", 1000), ("description", 20000), ("dimensions", 1000)):
        value = params.get_str(name(text_field), max_length=limit)
        if value is not None:
            setattr(meta, text_field, value)
            given.append(text_field)
    if params.has(name("year")):
        meta.year = params.get_int(name("year"))
        given.append("year")
    if params.has(name("ai_generated")):
        meta.ai_generated = bool(params.get_bool(name("ai_generated"), False))
        given.append("ai_generated")
    tag_prefixes = tuple(name(p) for p in ("tags",))
    for key in params.values:
        for tags_name in tag_prefixes:
            if key.startswith(tags_name + "["):
                kind = key[len(tags_name) + 1:].split("]")[0]
                if kind not in KINDS:
                    raise ApiError(422, f"Validation failed: Unknown portfolio tag kind "
                                        f"{kind!r}; the kinds are {', '.join(KINDS)}")
    for kind in KINDS:
        names = [*params.get_list(name(API_PARAM[kind])), *params.get_list(name("tags", kind))]
        if params.has(name(API_PARAM[kind])) or params.has(name("tags", kind)):
            meta.tags[kind] = names
    if meta.tags:
        given.append("tags")
    return meta, given


def _filters(params: Params) -> dict[str, list[str]]:
    return {kind: params.get_list(API_PARAM[kind]) for kind in KINDS
            if params.get_list(API_PARAM[kind])}


def _status_ids(params: Params, name: str) -> list[int]:
    return params.get_ids(name)


# ------------------------------------------------------------------ entities

def suggestion_to_entity(suggestion: Suggestion) -> Entity:
    return {"name": suggestion.term.name, "hashtag": suggestion.hashtag,
            "aliases": suggestion.aliases}


async def _project_entities(session: AsyncSession, views: Sequence[ProjectView],
                            ctx: EntityContext, me: Account | None, *,
                            with_works: bool = False) -> list[Entity]:
    """Projects with their cover (a status entity) and, for one project, its works."""
    wanted: list[int] = []
    for view in views:
        wanted.extend(view.work_ids if with_works else
                      [view.cover_id] if view.cover_id is not None else [])
    statuses = await status_service.visible_statuses(session, me, wanted)
    entities = {int(e["id"]): e for e in await statuses_to_entities(session, statuses, ctx, me)}
    result = []
    for view in views:
        project = view.project
        entity: Entity = {
            "id": str(project.id),
            "account_id": str(project.account_id),
            "title": project.title,
            "description": project.description,
            "position": project.position,
            "cover_id": str(view.cover_id) if view.cover_id is not None else None,
            "cover": entities.get(view.cover_id) if view.cover_id is not None else None,
            "works_count": len(view.work_ids),
            "work_ids": [str(i) for i in view.work_ids],
            "created_at": iso(project.created_at),
            "updated_at": iso(project.updated_at),
        }
        if with_works:
            entity["works"] = [entities[i] for i in view.work_ids if i in entities]
        result.append(entity)
    return result


# ------------------------------------------------------------------ vocabulary

async def get_vocabulary(request: Request) -> Response:
    params = await Params.from_request(request)
    kind = params.get_str("kind") or None
    async with easel(request).db.session() as session:
        lists = await service.vocabulary(session, kind)
    return _json({kind: [suggestion_to_entity(s) for s in items] for kind, items in lists.items()})


async def _require_admin(request: Request) -> None:
    auth = await require(request, "admin:write")
    user, _account = auth.require_user()
    if not user.admin:
        raise ApiError(403, "This action is not allowed")


async def add_vocabulary(request: Request) -> Response:
    await _require_admin(request)
    params = await Params.from_request(request)
    kind = params.require_str("kind")
    name = params.require_str("name", max_length=1000)
    aliases = params.get_list("aliases")
    async with easel(request).db.session() as session:
        suggestion = await service.add_suggestion(session, kind, name, aliases)
    return _json({"kind": suggestion.term.kind, **suggestion_to_entity(suggestion)})


async def remove_vocabulary(request: Request) -> Response:
    await _require_admin(request)
    params = await Params.from_request(request)
    kind = params.require_str("kind")
    name = params.require_str("name", max_length=1000)
    async with easel(request).db.session() as session:
        await service.remove_suggestion(session, kind, name)
    return _json({})


# ------------------------------------------------------------------ works

async def browse_works(request: Request) -> Response:
    me = await viewer(request, "read:statuses")
    params = await Params.from_request(request)
    page = Page.from_params(params)
    filters = _filters(params)
    local = params.get_bool("local")
    if params.get_bool("remote"):
        local = False
    state = easel(request)
    async with state.db.session() as session:
        statuses = await service.browse(
            session, me, filters, local=local, max_id=page.max_id, since_id=page.since_id,
            min_id=page.min_id, limit=page.limit)
        entities = await statuses_to_entities(session, statuses, EntityContext.of(state), me)
    return _json(entities, link=link_header(request, [s.id for s in statuses], page))


async def get_work(request: Request) -> Response:
    status_id = parse_id(request.path_params["id"])
    me = await viewer(request, "read:statuses")
    state = easel(request)
    async with state.db.session() as session:
        status = await status_service.visible_work(session, me, status_id)
        entities = await statuses_to_entities(session, [status], EntityContext.of(state), me)
    return _json(entities[0])


async def edit_work(request: Request) -> Response:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    status_id = parse_id(request.path_params["id"])
    meta, given = work_meta_from_params(await Params.from_request(request))
    state = easel(request)
    async with state.db.session() as session:
        status = await status_service.edit_work(
            session, account, status_id, meta,
            given=given if request.method == "PATCH" else None)
        entities = await statuses_to_entities(session, [status], EntityContext.of(state), account)
    return _json(entities[0])


# ------------------------------------------------------------------ portfolios

async def account_portfolio(request: Request) -> Response:
    me = await viewer(request, "read:statuses")
    account_id = parse_id(request.path_params["id"])
    page = Page.from_params(await Params.from_request(request))
    state = easel(request)
    async with state.db.session() as session:
        account = await account_service.find_account(session, account_id)
        pinned, statuses = await service.portfolio(
            session, me, account, max_id=page.max_id, since_id=page.since_id,
            min_id=page.min_id, limit=page.limit)
        entities = await statuses_to_entities(
            session, [*pinned, *statuses], EntityContext.of(state), me)
    for entity in entities[:len(pinned)]:
        entity.setdefault("easel", {})["featured"] = True
    return _json(entities, link=link_header(request, [s.id for s in statuses], page))


async def account_projects(request: Request) -> Response:
    me = await viewer(request, "read:statuses")
    account_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        account = await account_service.find_account(session, account_id)
        views = await service.projects_of(session, me, account.id)
        entities = await _project_entities(session, views, EntityContext.of(state), me)
    return _json(entities)


# ------------------------------------------------------------------ projects

def _cover(params: Params) -> Any:
    """``cover_id``: an id, "" or null for none (the first work), absent for unchanged."""
    if not params.has("cover_id"):
        return None, False
    raw = params.raw("cover_id")
    if raw is None or str(raw).strip() == "":
        return None, True
    value = parse_db_id(str(raw))
    if value is None:
        raise ApiError(422, "Validation failed: cover_id must be an id")
    return value, True


async def create_project(request: Request) -> Response:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    params = await Params.from_request(request)
    title = params.require_str("title", max_length=1000)
    description = params.get_str("description", "", max_length=20000) or ""
    work_ids = _status_ids(params, "work_ids")
    cover, _given = _cover(params)
    state = easel(request)
    async with state.db.session() as session:
        view = await service.create_project(session, account, title=title,
                                            description=description, work_ids=work_ids,
                                            cover_id=cover)
        entity = (await _project_entities(session, [view], EntityContext.of(state), account,
                                          with_works=True))[0]
    return _json(entity)


async def get_project(request: Request) -> Response:
    me = await viewer(request, "read:statuses")
    project_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        view = await service.get_project(session, me, project_id)
        entity = (await _project_entities(session, [view], EntityContext.of(state), me,
                                          with_works=True))[0]
    return _json(entity)


async def update_project(request: Request) -> Response:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    project_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    title = params.get_str("title", max_length=1000)
    description = params.get_str("description", max_length=20000)
    cover, cover_given = _cover(params)
    state = easel(request)
    async with state.db.session() as session:
        if cover_given:
            view = await service.update_project(session, account, project_id, title=title,
                                                description=description, cover_id=cover)
        else:
            view = await service.update_project(session, account, project_id, title=title,
                                                description=description)
        entity = (await _project_entities(session, [view], EntityContext.of(state), account,
                                          with_works=True))[0]
    return _json(entity)


async def delete_project(request: Request) -> Response:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    project_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        await service.delete_project(session, account, project_id)
    return _json({})


async def set_project_works(request: Request) -> Response:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    project_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    work_ids = _status_ids(params, "work_ids")
    state = easel(request)
    async with state.db.session() as session:
        view = await service.set_project_works(session, account, project_id, work_ids)
        entity = (await _project_entities(session, [view], EntityContext.of(state), account,
                                          with_works=True))[0]
    return _json(entity)


async def order_projects(request: Request) -> Response:
    auth = await require(request, "write:statuses")
    _user, account = auth.require_user()
    params = await Params.from_request(request)
    project_ids = _status_ids(params, "project_ids")
    state = easel(request)
    async with state.db.session() as session:
        await service.reorder_projects(session, account, project_ids)
        views = await service.projects_of(session, account, account.id)
        entities = await _project_entities(session, views, EntityContext.of(state), account)
    return _json(entities)


routes: list[BaseRoute] = [
    Route("/api/v1/easel/vocabulary", get_vocabulary, methods=["GET"]),
    Route("/api/v1/easel/admin/vocabulary", add_vocabulary, methods=["POST"]),
    Route("/api/v1/easel/admin/vocabulary", remove_vocabulary, methods=["DELETE"]),
    Route("/api/v1/easel/works", browse_works, methods=["GET"]),
    Route("/api/v1/easel/works/{id}", get_work, methods=["GET"]),
    Route("/api/v1/easel/works/{id}", edit_work, methods=["PUT", "PATCH"]),
    Route("/api/v1/easel/accounts/{id}/portfolio", account_portfolio, methods=["GET"]),
    Route("/api/v1/easel/accounts/{id}/projects", account_projects, methods=["GET"]),
    Route("/api/v1/easel/projects", create_project, methods=["POST"]),
    Route("/api/v1/easel/projects/order", order_projects, methods=["PUT"]),
    Route("/api/v1/easel/projects/{id}", get_project, methods=["GET"]),
    Route("/api/v1/easel/projects/{id}", update_project, methods=["PATCH"]),
    Route("/api/v1/easel/projects/{id}", delete_project, methods=["DELETE"]),
    Route("/api/v1/easel/projects/{id}/works", set_project_works, methods=["PUT"]),
]
