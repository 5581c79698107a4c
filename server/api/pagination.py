"""Mastodon pagination: ``max_id``/``since_id``/``min_id``/``limit`` and the ``Link`` header.

The cursor column is whatever the list is ordered by (a status id for timelines, a
favourite's id for the favourites list). ``min_id`` pages forward from a point (oldest
first, then reversed to newest first), ``since_id`` returns the newest above a point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.api.params import Params
from server.ids import parse_id
from server.state import easel

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    max_id: int | None
    since_id: int | None
    min_id: int | None
    limit: int

    @classmethod
    def from_params(cls, params: Params, *, default: int = 20, maximum: int = 40) -> Page:
        def cursor(name: str) -> int | None:
            raw = params.get_str(name)
            if raw is None or not raw.strip():
                return None
            # Mastodon ignores cursors it cannot read rather than failing the request.
            return parse_id(raw)

        limit = params.get_int("limit", default, minimum=1, maximum=maximum) or default
        return cls(cursor("max_id"), cursor("since_id"), cursor("min_id"), limit)

    def apply(self, query: Select[Any], column: InstrumentedAttribute[int]) -> Select[Any]:
        """Filter and order ``query`` by ``column`` for this page (fetches limit rows)."""
        if self.max_id is not None:
            query = query.where(column < self.max_id)
        if self.since_id is not None:
            query = query.where(column > self.since_id)
        if self.min_id is not None:
            query = query.where(column > self.min_id).order_by(column.asc())
        else:
            query = query.order_by(column.desc())
        return query.limit(self.limit)

    def arrange(self, rows: Sequence[T]) -> list[T]:
        """Rows from ``apply`` in the order clients expect (newest first)."""
        return list(reversed(rows)) if self.min_id is not None else list(rows)


def link_header(request: Request, cursors: Sequence[int], page: Page) -> str | None:
    """``Link: <…max_id=…>; rel="next", <…min_id=…>; rel="prev"`` for a page whose
    cursor values (newest first) are ``cursors``; None for an empty page."""
    if not cursors:
        return None
    # The path is decoded (a hashtag may be any letter); a header must be Latin-1 / ASCII.
    base = easel(request).settings.base_url + quote(request.url.path)
    # The filters stay; the cursors are the page's own, and a token given in the query
    # is never written back out (a Link header is logged and cached by proxies).
    keep = [(k, v) for k, v in request.query_params.multi_items()
            if k not in ("max_id", "since_id", "min_id", "limit", "access_token")]
    keep.append(("limit", str(page.limit)))

    def url(**cursor: int) -> str:
        return f"{base}?{urlencode(keep + [(k, str(v)) for k, v in cursor.items()])}"

    return f'<{url(max_id=cursors[-1])}>; rel="next", <{url(min_id=cursors[0])}>; rel="prev"'


def paged_json(request: Request, body: Any, cursors: Sequence[int], page: Page) -> JSONResponse:
    """A page of entities as JSON, with its ``Link`` header when it is not empty."""
    response = JSONResponse(body)
    if link := link_header(request, cursors, page):
        response.headers["Link"] = link
    return response
