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

from server.api.auth import bearer_token, optional, require
from server.api.cache import CachedPage, SharedPage
from server.api.entities import EntityContext, statuses_to_entities
from server.api.pagination import Page, link_header
from server.api.params import Params
from server.models import Account, Status
from server.services import timelines
from server.state import easel


async def _statuses_response(
    request: Request, statuses: Sequence[Status], cursors: Sequence[int], page: Page,
    viewer: Account | None, filter_context: str | None = None,
) -> Response:
    """``cursors`` come from the page as read, so a status a filter hides never stops paging."""
    state = easel(request)
    async with state.db.session() as session:
        body = await statuses_to_entities(session, statuses, EntityContext.of(state), viewer,
                                          filter_context=filter_context)
    return _with_link(JSONResponse(body), link_header(request, cursors, page))


def _with_link(response: Response, link: str | None) -> Response:
    if link is not None:
        response.headers["Link"] = link
    return response


async def home(request: Request) -> Response:
    auth = await require(request, "read:statuses")
    _, viewer = auth.require_user()
    page = Page.from_params(await Params.from_request(request))
    async with easel(request).db.session() as session:
        statuses = await timelines.home_timeline(session, viewer, page)
    return await _statuses_response(request, statuses, [s.id for s in statuses], page, viewer,
                                    "home")


# Builds a public or hashtag timeline page for a viewer (None: for everyone).
PageBuilder = Callable[[Params, Account | None], Awaitable[tuple[Sequence[Status], Page]]]


async def _shared_page(request: Request, build: PageBuilder) -> Response:
    """A public or hashtag timeline page from the shared page cache (``server.api.cache``):
    as cached for an anonymous reader; with a signed-in viewer's own flags laid over when
    the page is the same for it; built for the viewer alone otherwise. A miss builds the
    page for everyone and keeps it (one request at a time: the others wait for it)."""
    cache = easel(request).public_cache
    entry, waited = await cache.get_or_wait(request, wait=True)
    if entry is not None and bearer_token(request) is not None:
        if personal := await _personalised(request, entry):
            return personal
    auth = await optional(request, "read:statuses")  # already looked up, if tried above
    viewer = auth.account if auth else None
    if entry is None and (viewer is None or cache.enabled):
        # Built by another request while this one authenticated? A request that waited
        # once for a build that kept nothing (it failed) builds for itself, at once.
        entry, _ = await cache.get_or_wait(request, wait=not waited)
        if entry is None:
            response, entry = await _build_for_everyone(request, build)
            if viewer is None or entry is None:
                return response
        elif viewer is None:
            return entry.response()
        if personal := await _personalised(request, entry):
            return personal
    elif viewer is None:
        assert entry is not None
        return entry.response()
    params = await Params.from_request(request)
    statuses, page = await build(params, viewer)
    return await _statuses_response(request, statuses, [s.id for s in statuses], page, viewer,
                                    "public")


async def _build_for_everyone(request: Request,
                              build: PageBuilder) -> tuple[Response, CachedPage | None]:
    """The page as an anonymous reader sees it, and its cache entry (None: not kept)."""
    state = easel(request)
    cache = state.public_cache
    with cache.filling(request):
        params = await Params.from_request(request)
        statuses, page = await build(params, None)
        async with state.db.session() as session:
            entities = await statuses_to_entities(session, statuses, EntityContext.of(state), None)
            marks = await timelines.SharedPageMarks.prepare(session) if cache.enabled else None
        link = link_header(request, [s.id for s in statuses], page)
        if marks is None:
            return _with_link(JSONResponse(entities), link), None
        # Each status is encoded once: the anonymous page is made of the shared fragments.
        shared = SharedPage.of(entities, [s.id for s in statuses],
                               [s.account_id for s in statuses], marks)
        response = _with_link(Response(shared.anonymous_body(), media_type="application/json"),
                              link)
        return response, cache.put(request, response, shared)


async def _personalised(request: Request, entry: CachedPage) -> Response | None:
    """The cached page as the request's token sees it: the token looked up and the viewer's
    marks read in one read session. None when the page is not the viewer's to share (it
    hides something from it, has a poll, or there is no viewer: ``_shared_page`` goes on)."""
    shared = entry.shared
    if shared is None or shared.has_poll:
        return None  # a poll shows the viewer's own vote: built for it alone
    async with easel(request).db.read_session() as session:
        auth = await optional(request, "read:statuses", session)
        viewer = auth.account if auth else None
        if viewer is None:
            return None
        marks = await shared.marks.of(session, viewer, shared.status_ids, shared.author_ids,
                                      shared.domains)
    if marks is None:
        return None
    response = Response(shared.body_for(viewer.id, marks), media_type="application/json")
    response.headers.update(dict(entry.headers))
    return response


async def public(request: Request) -> Response:
    async def build(params: Params, viewer: Account | None) -> tuple[Sequence[Status], Page]:
        page = Page.from_params(params)
        async with easel(request).db.session() as session:
            return await timelines.public_timeline(
                session, page, local=bool(params.get_bool("local", False)),
                remote=bool(params.get_bool("remote", False)),
                only_media=bool(params.get_bool("only_media", False)), viewer=viewer), page

    return await _shared_page(request, build)


async def tag(request: Request) -> Response:
    async def build(params: Params, viewer: Account | None) -> tuple[Sequence[Status], Page]:
        page = Page.from_params(params)
        async with easel(request).db.session() as session:
            return await timelines.tag_timeline(
                session, page, request.path_params["hashtag"],
                any_=params.get_list("any"), all_=params.get_list("all"),
                none=params.get_list("none"),
                local=bool(params.get_bool("local", False)),
                remote=bool(params.get_bool("remote", False)),
                only_media=bool(params.get_bool("only_media", False)), viewer=viewer), page

    return await _shared_page(request, build)


async def bookmarks(request: Request) -> Response:
    auth = await require(request, "read:bookmarks")
    _, viewer = auth.require_user()
    page = Page.from_params(await Params.from_request(request))
    async with easel(request).db.session() as session:
        rows = await timelines.bookmarked_statuses(session, viewer, page)
    return await _statuses_response(request, [s for _, s in rows], [c for c, _ in rows], page, viewer)


async def favourites(request: Request) -> Response:
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
