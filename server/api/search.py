"""``GET /api/v2/search``: accounts, hashtags and statuses for a query (Mastodon 4.2).

Thin endpoint: auth (optional, ``read:search``) → parse → ``services.search.search`` →
entities. Input rules are Mastodon's: ``q`` is required (400); without a token, ``offset``
and ``resolve=true`` are refused with 401, as Mastodon's controller does. With a token,
``resolve=true`` first asks ``federation.search.resolve_query`` about a handle
(``user@host[:port]``) or a URL of another server: a URL then answers exactly what it
names (the account or status, or nothing — never an error), a handle's account is put
first in the usual local results. A local URL or URI is always looked up, resolve or not.
``exclude_unreviewed`` is accepted and ignored too: Easel has no hashtag review yet.
A ``limit`` or ``offset`` that is not a number is a 422 naming the parameter.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from federation.context import federation_context
from federation.search import NOT_HANDLED, is_url, resolve_query
from server.api.auth import optional
from server.api.entities import EntityContext, account_to_entity, statuses_to_entities, tag_to_entity
from server.api.params import Params
from server.errors import ApiError
from server.ids import parse_id
from server.models import Account, Status
from server.services.search import SearchQuery, SearchResults, search
from server.state import easel

DEFAULT_LIMIT = 20
# The deepest a search may page (offsets are cheap to ask for, expensive to answer).
MAX_OFFSET = 10_000
MAX_LIMIT = 40


async def search_v2(request: Request) -> JSONResponse:
    auth = await optional(request, "read:search")
    viewer = auth.account if auth is not None else None
    params = await Params.from_request(request)
    q = params.get_str("q", max_length=2048)
    if q is None or not q.strip():
        raise ApiError(400, "param is missing or the value is empty: q")
    resolve = bool(params.get_bool("resolve", False))
    if viewer is None:
        if params.get_str("offset"):
            raise ApiError(401, "Search queries pagination is not supported without authentication")
        if resolve:
            raise ApiError(401, "Search queries that resolve remote resources are not supported "
                                "without authentication")
    limit = params.get_int("limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT) or DEFAULT_LIMIT
    offset = params.get_int("offset", 0, minimum=0, maximum=MAX_OFFSET) or 0
    following = bool(params.get_bool("following", False))
    params.get_bool("exclude_unreviewed", False)  # validated, then ignored (no tag review yet)
    raw_account = (params.get_str("account_id") or "").strip()
    account_ok = parse_id(raw_account) is not None
    kind = (params.get_str("type") or "").strip() or None
    query = SearchQuery(q=q, type=kind, limit=limit, offset=offset, following=following,
                        account_id=int(raw_account) if account_ok else None,
                        account_id_invalid=bool(raw_account) and not account_ok)
    state = easel(request)
    ctx = EntityContext.of(state)
    async with state.db.session() as session:
        if resolve and viewer is not None and offset == 0:
            fed = federation_context(state.settings, state.db)
            resolution = await resolve_query(fed, session, q, viewer=viewer)
        else:
            resolution = NOT_HANDLED
        if resolution.handled and is_url(q.strip()):
            found = _exactly(resolution.found, kind, offset)
        else:
            found = await search(session, query, viewer=viewer, urls=state.urls)
            if isinstance(resolution.found, Account) and not following \
                    and kind in (None, "accounts"):
                others = [a for a in found.accounts if a.id != resolution.found.id]
                found.accounts = [resolution.found, *others][:limit]
        statuses = await statuses_to_entities(session, found.statuses, ctx, viewer)
    return JSONResponse({
        "accounts": [account_to_entity(a, ctx) for a in found.accounts],
        "statuses": statuses,
        "hashtags": [tag_to_entity(t, ctx) for t in found.hashtags],
    })


def _exactly(resource: Account | Status | None, kind: str | None, offset: int) -> SearchResults:
    """A remote URL with ``resolve``: the one thing it names, when the ``type`` asked
    for allows it (Mastodon's ``url_resource_results``), else nothing."""
    results = SearchResults()
    if offset > 0:
        return results
    if isinstance(resource, Status) and kind in (None, "statuses"):
        results.statuses = [resource]
    elif isinstance(resource, Account) and kind in (None, "accounts"):
        results.accounts = [resource]
    return results


routes: list[BaseRoute] = [
    Route("/api/v2/search", search_v2, methods=["GET"]),
]
