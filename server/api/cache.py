"""A short-lived cache of the public and hashtag timeline pages, shared by every reader.

The public and hashtag timelines are the same for everyone for as long as nothing new is
published; they are also what crawlers, logged-out web clients and every signed-in app's
"federated" tab hammer. Each web process keeps each page (by path and query) for ``ttl``
seconds (``EASEL_PUBLIC_CACHE_SECONDS``, one by default). A status published, edited or
deleted anywhere on the instance empties the cache of every web process as its stream
event arrives (``forget_on_status_events``, a stream bus watcher), so those show at once;
changed counters and profiles show at most ``ttl`` later.

* an anonymous reader gets the cached bytes as they are;
* a signed-in viewer gets the cached statuses with its own favourited, reblogged,
  bookmarked and pinned flags laid over them (one query,
  ``server.services.timelines.SharedPageMarks``), unless the page would differ for it —
  an author it blocks, mutes or is blocked by, a filter, a followed silenced account, a
  poll (its own vote shows) — in which case its page is built for it alone, uncached.

A page is built by one request at a time: when it expires under load, the requests that
miss it meanwhile wait for that one build (``filling``/``get_or_wait``) instead of
each building it again — which, with dozens of requests in flight, cost more CPU than
serving, and a p99 of hundreds of milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.services.timelines import SharedPageMarks, ViewerMarks

Entity = dict[str, object]


# The Status keys that differ between viewers of a shared page.
VIEWER_KEYS = ("favourited", "reblogged", "bookmarked", "pinned")


def _encode(value: object) -> bytes:
    """JSON as ``JSONResponse`` writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode()


@dataclass(frozen=True)
class SharedPage:
    """What a signed-in viewer's copy of a cached page is made from: each status as JSON
    without the viewer's keys (``fragments``: the object's text after its opening brace),
    its id and author, the authors' domains, and the statement that checks a viewer."""

    fragments: Sequence[bytes]
    status_ids: Sequence[int]
    author_ids: Sequence[int]
    domains: Sequence[str]
    has_poll: bool
    marks: SharedPageMarks

    @classmethod
    def of(cls, entities: Sequence[Entity], status_ids: Sequence[int],
           author_ids: Sequence[int], marks: SharedPageMarks) -> SharedPage:
        fragments = []
        domains = set()
        for entity in entities:
            fragment = _encode({k: v for k, v in entity.items() if k not in VIEWER_KEYS})
            fragments.append(fragment[1:])  # a status always has keys: "{" then the rest
            account = entity["account"]
            assert isinstance(account, dict)
            if domain := str(account["acct"]).partition("@")[2]:
                domains.add(domain)
        return cls(fragments=fragments, status_ids=status_ids, author_ids=author_ids,
                   domains=sorted(domains), has_poll=any(e["poll"] is not None for e in entities),
                   marks=marks)

    def anonymous_body(self) -> bytes:
        """The page as a reader without a token sees it (no marks, never ``pinned``): the
        same statuses as the entities it was made of, encoded once."""
        return b"[" + b",".join(_NO_MARKS + fragment for fragment in self.fragments) + b"]"

    def body_for(self, viewer_id: int, marks: ViewerMarks) -> bytes:
        """The page as ``viewer_id`` sees it, with its marks."""
        parts = []
        for fragment, status_id, author_id in zip(self.fragments, self.status_ids,
                                                  self.author_ids, strict=True):
            flags = (b'{"favourited":' + _BOOL[status_id in marks.favourited]
                     + b',"reblogged":' + _BOOL[status_id in marks.reblogged]
                     + b',"bookmarked":' + _BOOL[status_id in marks.bookmarked])
            if author_id == viewer_id:  # public, not a boost: the viewer could pin it
                flags += b',"pinned":' + _BOOL[status_id in marks.pinned]
            parts.append(flags + b"," + fragment)
        return b"[" + b",".join(parts) + b"]"


_BOOL = {True: b"true", False: b"false"}
_NO_MARKS = b'{"favourited":false,"reblogged":false,"bookmarked":false,'


@dataclass(frozen=True)
class CachedPage:
    expires: float
    body: bytes
    headers: tuple[tuple[str, str], ...]
    shared: SharedPage | None

    def response(self) -> Response:
        return Response(self.body, media_type="application/json", headers=dict(self.headers))


class PublicPageCache:
    # Each page is kept twice (the bytes, and the statuses for signed-in viewers): ~60 KB for
    # 20 statuses with media, so at most ~15 MB however many distinct pages are asked for.
    def __init__(self, ttl: float = 1.0, max_entries: int = 256) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.entries: OrderedDict[str, CachedPage] = OrderedDict()
        self.building: dict[str, asyncio.Future[None]] = {}  # key → done when built

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    @staticmethod
    def key(request: Request) -> str:
        """The page's path and query; a token passed as ``access_token`` is not part of
        the page (and is not kept in memory as a key)."""
        scope = request.scope
        query = scope.get("query_string", b"").decode("latin-1")
        if "token" in query and "access_token" in request.query_params:  # or access%5Ftoken
            query = "&".join(f"{k}={v}" for k, v in request.query_params.multi_items()
                             if k != "access_token")
        return f"{scope.get('root_path', '')}{scope['path']}?{query}"

    def get(self, request: Request) -> CachedPage | None:
        entry = self.entries.get(self.key(request))
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry

    async def get_or_wait(self, request: Request, *,
                          wait: bool) -> tuple[CachedPage | None, bool]:
        """``get``; on a miss with ``wait``, while another request is building the page,
        wait for it and return what it kept (None when its build failed or kept nothing).
        Also whether it waited."""
        entry = self.get(request)
        building = self.building.get(self.key(request)) if entry is None and wait else None
        if building is None:
            return entry, False
        await asyncio.shield(building)  # a waiter cancelled does not cancel the build
        return self.get(request), True

    @contextmanager
    def filling(self, request: Request) -> Iterator[None]:
        """Around building a page to ``put``: requests missing it meanwhile wait."""
        key = self.key(request)
        building = asyncio.get_running_loop().create_future()
        self.building[key] = building
        try:
            yield
        finally:
            if self.building.get(key) is building:
                del self.building[key]
            building.set_result(None)

    def forget_on_status_events(self, messages: Sequence[dict[str, Any]]) -> None:
        """Drop every page when a status was published, edited or deleted (a stream bus
        watcher): new posts and deletions show at once, not a ``ttl`` later."""
        if any(str(message.get("kind", "")).startswith("status.") for message in messages):
            self.entries.clear()

    def put(self, request: Request, response: Response,
            shared: SharedPage | None = None) -> CachedPage | None:
        """Keep ``response`` (a 200 built for no viewer; with ``shared``, its body is
        ``shared.anonymous_body()``); the entry, or None when the cache is off or the
        response is not one to keep."""
        if response.status_code != 200 or not self.enabled:
            return None
        headers = tuple((k, v) for k, v in response.headers.items() if k.lower() == "link")
        key = self.key(request)
        entry = self.entries[key] = CachedPage(
            time.monotonic() + self.ttl, bytes(response.body), headers, shared)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return entry
