"""``server.routing``: the indexed router picks exactly the route Starlette's linear scan
would — for every route of the real app, its neighbours, and paths no route has."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Scope

from server.app import create_app
from server.routing import IndexedRouter, RouteIndex, literal_segments
from server.settings import Settings


def scan(routes: list[BaseRoute], scope: Scope) -> tuple[BaseRoute | None, BaseRoute | None]:
    """Starlette's rule: the first full match, and the first partial one."""
    full = partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route, None
        if match is Match.PARTIAL and partial is None:
            partial = route
    return full, partial


def sample_paths(route: BaseRoute) -> list[str]:
    path_format = getattr(route, "path_format", None)
    if not isinstance(path_format, str):
        return []
    filled = re.sub(r"\{[^}]+\}", "109876543210", path_format)
    words = re.sub(r"\{[^}]+\}", "alice", path_format)
    return [filled, words, filled + "/", filled + "/extra", filled.rstrip("/") + "x",
            filled.rsplit("/", 1)[0] or "/"]


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory) -> list[BaseRoute]:
    app = create_app(Settings(domain="routes.test", scheme="https",
                              data_dir=Path(tmp_path_factory.mktemp("routes"))))
    assert isinstance(app.router, IndexedRouter)
    return list(app.router.routes)


def test_every_path_gets_the_route_a_linear_scan_gives(app_routes: list[BaseRoute]) -> None:
    index = RouteIndex(app_routes)
    paths = {path for route in app_routes for path in sample_paths(route)}
    paths |= {"/", "/nothing/here", "//", "/api", "/api/", "/api/v1", "/api/v1/", "/@", "/@x",
              "/.well-known/", "/inbox/", "/users//inbox", "relative"}
    assert len(paths) > 500
    narrowed_total = 0
    for path in sorted(paths):
        for method in ("GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"):
            scope = {"type": "http", "path": path, "root_path": "", "method": method}
            candidates = index.candidates(path)
            narrowed_total += len(candidates)
            assert scan(candidates, scope) == scan(app_routes, scope), (method, path)
    # and it narrows: on average far fewer routes are tried than there are
    assert narrowed_total / (len(paths) * 6) < len(app_routes) / 4


def test_literal_segments() -> None:
    async def endpoint(_: object) -> PlainTextResponse:
        return PlainTextResponse("")

    assert literal_segments(Route("/api/v1/statuses/{id}/context", endpoint)) == [
        "api", "v1", "statuses"]
    assert literal_segments(Route("/api/v1/timelines/public", endpoint)) == [
        "api", "v1", "timelines", "public"]
    assert literal_segments(Route("/@{username}", endpoint)) == []
    assert literal_segments(Route("/", endpoint)) == [""]
    assert literal_segments(Mount("/static", routes=[])) == ["static"]


def _router() -> IndexedRouter:
    def named(text: str):  # type: ignore[no-untyped-def]
        async def endpoint(_: object) -> PlainTextResponse:
            return PlainTextResponse(text)
        return endpoint

    return IndexedRouter([
        Route("/things/new", named("new")),
        Route("/things/{id}", named("one"), methods=["GET"]),
        Route("/things/{id}", named("delete"), methods=["DELETE"]),
        Route("/deep/slash/", named("slash")),
        Route("/{anything}", named("catch-all")),
    ])


async def test_order_partial_redirect_and_404_as_starlette() -> None:
    router = _router()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=router),
                                 base_url="http://t") as http:
        assert (await http.get("/things/new")).text == "new"  # earlier route wins
        assert (await http.get("/things/7")).text == "one"
        assert (await http.delete("/things/7")).text == "delete"
        assert (await http.post("/things/7")).status_code == 405  # partial match
        redirected = await http.get("/deep/slash")
        assert redirected.status_code == 307
        assert redirected.headers["location"] == "http://t/deep/slash/"
        assert (await http.get("/zzz")).text == "catch-all"
        assert (await http.get("/a/b/c")).status_code == 404


async def test_routes_added_later_are_found() -> None:
    router = _router()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=router),
                                 base_url="http://t") as http:
        assert (await http.get("/late/route")).status_code == 404

        async def late(_: object) -> PlainTextResponse:
            return PlainTextResponse("late")

        router.routes.append(Route("/late/route", late))
        assert (await http.get("/late/route")).text == "late"
