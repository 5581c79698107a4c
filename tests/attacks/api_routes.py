"""The route table as the attack suites see it: every HTTP endpoint of the app, with its
methods and a concrete path to call it at (path parameters filled with harmless values),
so a new endpoint is attacked the moment it is added to ``server.app.all_routes()``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.routing import Route

from server.app import all_routes

# A value for each path parameter: an id nothing has, a local user's name, a tag.
PATH_VALUES = {"id": "1", "account_id": "1", "username": "alice", "name": "art",
               "hashtag": "art", "group_key": "ungrouped-1", "channel": "user"}
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str

    @property
    def path(self) -> str:
        return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_VALUES[m.group(1)], self.template)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def endpoints(*prefixes: str, methods: tuple[str, ...] = ("GET", *WRITE_METHODS)) -> list[Endpoint]:
    """Every (method, path) of the app under ``prefixes``, HEAD left out."""
    found = []
    for route in all_routes():
        if not isinstance(route, Route) or not route.path.startswith(prefixes):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            if method in methods:
                found.append(Endpoint(method, route.path))
    return found


def json_endpoints() -> list[Endpoint]:
    """Every endpoint that may be sent a JSON body: the client API's and OAuth's writes,
    and the inboxes."""
    return [e for e in endpoints("/api/", "/oauth/", "/inbox", "/users/", methods=WRITE_METHODS)
            if not e.template.startswith("/users/") or e.template.endswith("/inbox")]
