"""A short-lived cache of responses that are the same for every anonymous reader.

The public and hashtag timelines, asked for without a token, are identical for everyone
for as long as nothing new is published; they are also what crawlers and logged-out web
clients hammer. Each web process keeps such responses for ``ttl`` seconds (one by default),
so a new post reaches anonymous readers at most that much later. Responses for a signed-in
viewer are never cached (they carry the viewer's favourited/bookmarked flags).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response


@dataclass(frozen=True)
class CachedResponse:
    expires: float
    body: bytes
    headers: tuple[tuple[str, str], ...]


class AnonymousCache:
    def __init__(self, ttl: float = 1.0, max_entries: int = 512) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.entries: OrderedDict[str, CachedResponse] = OrderedDict()

    @staticmethod
    def key(request: Request) -> str:
        return f"{request.url.path}?{request.url.query}"

    def get(self, request: Request) -> Response | None:
        entry = self.entries.get(self.key(request))
        if entry is None or entry.expires < time.monotonic():
            return None
        return Response(entry.body, media_type="application/json", headers=dict(entry.headers))

    def put(self, request: Request, response: Response) -> None:
        if response.status_code != 200 or self.ttl <= 0:
            return
        headers = tuple((k, v) for k, v in response.headers.items() if k.lower() == "link")
        self.entries[self.key(request)] = CachedResponse(
            time.monotonic() + self.ttl, bytes(response.body), headers)
        self.entries.move_to_end(self.key(request))
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
