"""Timelines and the viewer's status lists: ``/api/v1/timelines/home``, ``/public``,
``/tag/:hashtag``, ``/api/v1/bookmarks`` and ``/api/v1/favourites``.

Thin endpoints: auth → parse → one ``services.timelines`` call → entities, with the
``Link`` header clients page with. Timelines page by status id; bookmarks and favourites
by the bookmark's or favourite's id (so they list in the order things were saved), as
Mastodon does. Membership and visibility rules live in the service, never here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.api.auth import optional, require
from server.api.entities import EntityContext, statuses_to_entities
from server.api.pagination import Page, link_header
from server.api.params import Params
from server.models import Account, Status
from server.services import timelines
from server.state import easel


async def _statuses_response(
    request: Request, statuses: Sequence[Status], cursors: Sequence[int], page: Page,
    viewer: Account | None, filter_context: str | None = None,
) -> JSONResponse:
    """``cursors`` come from the page as read, so a status a filter hides never stops paging."""
    state = easel(request)
    async with state.db.session() as session:
        body = await statuses_to_entities(session, statuses, EntityContext.of(state), viewer,
                                          filter_context=filter_context)
    response = JSONResponse(body)
    link = link_header(request, cursors, page)
    if link is not None:
        response.headers["Link"] = link
    return response


async def home(request: Request) -> JSONResponse:
    auth = await require(request, "read:statuses")
    _, viewer = auth.require_user()
    page = Page.from_params(await Params.from_request(request))
    async with easel(request).db.session() as session:
        statuses = await timelines.home_timeline(session, viewer, page)
    return await _statuses_response(request, statuses, [s.id for s in statuses], page, viewer,
                                    "home")


async def _anonymous_cached(
    request: Request, viewer: Account | None,
    build: Callable[[Params], Awaitable[tuple[Sequence[Status], Page]]],
    filter_context: str | None = None,
) -> Response:
    """Answer from the anonymous cache when there is no viewer; fill it when it missed."""
    cache = easel(request).anonymous_cache
    if viewer is None and (cached := cache.get(request)) is not None:
        return cached
    params = await Params.from_request(request)
    statuses, page = await build(params)
    response = await _statuses_response(request, statuses, [s.id for s in statuses], page, viewer,
                                        filter_context)
    if viewer is None:
        cache.put(request, response)
    return response


async def public(request: Request) -> Response:
    auth = await optional(request, "read:statuses")

    async def build(params: Params) -> tuple[Sequence[Status], Page]:
        page = Page.from_params(params)
        async with easel(request).db.session() as session:
            return await timelines.public_timeline(
                session, page, local=bool(params.get_bool("local", False)),
                remote=bool(params.get_bool("remote", False)),
                only_media=bool(params.get_bool("only_media", False)),
                viewer=auth.account if auth else None), page

    return await _anonymous_cached(request, auth.account if auth else None, build, "public")


async def tag(request: Request) -> Response:
    auth = await optional(request, "read:statuses")

    async def build(params: Params) -> tuple[Sequence[Status], Page]:
        page = Page.from_params(params)
        async with easel(request).db.session() as session:
            return await timelines.tag_timeline(
                session, page, request.path_params["hashtag"],
                any_=params.get_list("any"), all_=params.get_list("all"),
                none=params.get_list("none"),
                local=bool(params.get_bool("local", False)),
                remote=bool(params.get_bool("remote", False)),
                only_media=bool(params.get_bool("only_media", False)),
                viewer=auth.account if auth else None), page

    return await _anonymous_cached(request, auth.account if auth else None, build, "public")


async def bookmarks(request: Request) -> JSONResponse:
    auth = await require(request, "read:bookmarks")
    _, viewer = auth.require_user()
    page = Page.from_params(await Params.from_request(request))
    async with easel(request).db.session() as session:
        rows = await timelines.bookmarked_statuses(session, viewer, page)
    return await _statuses_response(request, [s for _, s in rows], [c for c, _ in rows], page, viewer)


async def favourites(request: Request) -> JSONResponse:
    auth = await require(request, "read:favourites")
    _, viewer = auth.require_user()
    page = Page.from_params(await Params.from_request(request))
    async with easel(request).db.session() as session:
        rows = await timelines.favourited_statuses(session, viewer, page)
    return await _statuses_response(request, [s for _, s in rows], [c for c, _ in rows], page, viewer)


routes: list[BaseRoute] = [
    Route("/api/v1/timelines/home", home, methods=["GET"]),
    Route("/api/v1/timelines/public", public, methods=["GET"]),
    Route("/api/v1/timelines/tag/{hashtag}", tag, methods=["GET"]),
    Route("/api/v1/bookmarks", bookmarks, methods=["GET"]),
    Route("/api/v1/favourites", favourites, methods=["GET"]),
]
