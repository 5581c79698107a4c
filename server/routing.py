"""A router that tries only the routes a path can match.

Starlette's router tries every route's regular expression in order until one matches.
With some 300 routes that is 100–250 µs per request on this hardware — more than an
anonymous timeline page takes to serve from its cache — and a POST to ``/inbox`` tries
them all. ``IndexedRouter`` keeps the same rules (routes tried in order, the first full
match wins, else the first partial one — a 405 —, else the trailing-slash redirect, else
the default 404), but first narrows the routes to those whose literal leading segments
the path starts with: ``/api/v1/statuses/{id}/context`` can only match a path beginning
``/api/v1/statuses/``. The narrowing is an index of literal segments (a trie), rebuilt
when routes are added or removed; a route whose path is not known (a ``Host``, or anything
without a ``path_format``) is always tried.
"""

from __future__ import annotations

from starlette._utils import get_route_path
from starlette.datastructures import URL
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match, Router
from starlette.types import Receive, Scope, Send


def literal_segments(route: BaseRoute) -> list[str] | None:
    """The path segments every path a route matches starts with (None: unknown)."""
    path_format = getattr(route, "path_format", None)
    if not isinstance(path_format, str) or not path_format.startswith("/"):
        return None
    prefix, brace, _ = path_format.partition("{")
    segments = prefix[1:].split("/")
    if brace:
        segments.pop()  # the segment the first parameter is in is not wholly literal
    return segments


class _Node:
    __slots__ = ("children", "routes")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.routes: list[int] = []


class RouteIndex:
    """Route positions by literal leading path segments."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.routes = routes
        self.size = len(routes)
        self.root = _Node()
        for position, route in enumerate(routes):
            node = self.root
            for segment in literal_segments(route) or ():
                node = node.children.setdefault(segment, _Node())
            node.routes.append(position)

    def current(self, routes: list[BaseRoute]) -> bool:
        return routes is self.routes and len(routes) == self.size

    def candidates(self, path: str) -> list[BaseRoute]:
        """The routes that could match ``path``, in their order."""
        if not path.startswith("/"):
            return self.routes
        node = self.root
        found = list(node.routes)
        for segment in path[1:].split("/"):
            child = node.children.get(segment)
            if child is None:
                break
            node = child
            found += node.routes
        found.sort()
        return [self.routes[position] for position in found]


class IndexedRouter(Router):
    """``starlette.routing.Router`` that tries only ``RouteIndex.candidates``."""

    _index: RouteIndex | None = None

    def _candidates(self, scope: Scope) -> list[BaseRoute]:
        index = self._index
        if index is None or not index.current(self.routes):
            index = self._index = RouteIndex(self.routes)
        return index.candidates(get_route_path(scope))

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] in ("http", "websocket", "lifespan")
        if "router" not in scope:
            scope["router"] = self
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return

        partial: BaseRoute | None = None
        partial_scope: Scope = {}
        for route in self._candidates(scope):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        if partial is not None:  # e.g. the path is known, the method is not: 405
            scope["route"] = partial
            scope.update(partial_scope)
            await partial.handle(scope, receive, send)
            return

        route_path = get_route_path(scope)
        if scope["type"] == "http" and self.redirect_slashes and route_path != "/":
            redirect_scope = dict(scope)
            if route_path.endswith("/"):
                redirect_scope["path"] = redirect_scope["path"].rstrip("/")
            else:
                redirect_scope["path"] = redirect_scope["path"] + "/"
            for route in self._candidates(redirect_scope):
                match, _ = route.matches(redirect_scope)
                if match is not Match.NONE:
                    response = RedirectResponse(url=str(URL(scope=redirect_scope)))
                    await response(scope, receive, send)
                    return

        await self.default(scope, receive, send)
