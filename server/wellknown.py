"""How the fediverse finds this instance and its people: WebFinger, host-meta, NodeInfo."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import server
from server.errors import ApiError
from server.ids import utcnow
from server.models import Account, Status, User
from server.services.accounts import find_local_account, instance_actor
from server.state import EaselState, easel

JRD = "application/jrd+json; charset=utf-8"
XRD = "application/xrd+xml; charset=utf-8"
NODEINFO_SCHEMAS = {
    "2.0": "http://nodeinfo.diaspora.software/ns/schema/2.0",
    "2.1": "http://nodeinfo.diaspora.software/ns/schema/2.1",
}


def _username_for_resource(state: EaselState, resource: str) -> str:
    """The local username a WebFinger ``resource`` names; ApiError 400/404 otherwise."""
    resource = resource.strip()
    if resource.startswith(("http://", "https://")):
        try:
            parts = urlsplit(resource)
        except ValueError:
            raise ApiError(400, "Bad resource: not a valid URL") from None
        if parts.netloc.lower() != state.settings.domain:
            raise ApiError(404, "Record not found")
        path = unquote(parts.path).rstrip("/")
        if path == "/actor":
            return state.settings.domain
        for prefix in ("/users/", "/@"):
            if path.startswith(prefix) and "/" not in path[len(prefix):]:
                return path[len(prefix):]
        raise ApiError(404, "Record not found")
    if resource.lower().startswith("acct:"):
        resource = resource[5:]
    resource = resource.lstrip("@")
    username, sep, domain = resource.rpartition("@")
    if not sep or not username or not domain:
        raise ApiError(400, "Bad resource: expected acct:user@domain or an actor URL")
    if domain.lower() != state.settings.domain:
        raise ApiError(404, "Record not found")
    return username


async def webfinger(request: Request) -> Response:
    state = easel(request)
    resource = request.query_params.get("resource")
    if not resource:
        raise ApiError(400, "The resource parameter is required")
    username = _username_for_resource(state, resource)
    async with state.db.session() as session:
        if username.lower() == state.settings.domain:
            account: Account | None = await instance_actor(session, state.settings)
        else:
            account = await find_local_account(session, username)
    if account is None:
        raise ApiError(404, "Record not found")
    links: list[dict[str, Any]] = [
        {"rel": "self", "type": "application/activity+json", "href": account.uri},
    ]
    if account.actor_type != "Application":
        links.insert(0, {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
                         "href": account.url})
    body = {
        "subject": f"acct:{account.username}@{state.settings.domain}",
        "aliases": [account.uri, account.url] if account.url else [account.uri],
        "links": links,
    }
    return JSONResponse(body, media_type=JRD, headers={"Cache-Control": "max-age=300, public"})


def _lrdd_template(state: EaselState) -> str:
    return f"{state.urls.base}/.well-known/webfinger?resource={{uri}}"


async def host_meta(request: Request) -> Response:
    state = easel(request)
    if request.query_params.get("format") == "json" or request.url.path.endswith(".json"):
        return JSONResponse({"links": [{"rel": "lrdd", "template": _lrdd_template(state)}]})
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" template="{escape(_lrdd_template(state), {chr(34): "&quot;"})}"/>\n'
        "</XRD>\n"
    )
    return Response(xml, media_type=XRD)


async def nodeinfo_links(request: Request) -> Response:
    state = easel(request)
    return JSONResponse({
        "links": [
            {"rel": schema, "href": f"{state.urls.base}/nodeinfo/{version}"}
            for version, schema in NODEINFO_SCHEMAS.items()
        ]
    })


async def _usage(state: EaselState) -> dict[str, Any]:
    now = utcnow()
    async with state.db.session() as session:
        users = select(func.count(User.id)).where(User.disabled.is_(False), User.approved.is_(True))
        total = await session.scalar(users) or 0
        month = await session.scalar(users.where(User.last_active_at >= now - timedelta(days=30)))
        halfyear = await session.scalar(
            users.where(User.last_active_at >= now - timedelta(days=180)))
        # Published posts by local people (boosts and unpublished drafts not counted).
        posts = await session.scalar(
            select(func.count(Status.id)).where(Status.local.is_(True), Status.published.is_(True),
                                                Status.reblog_of_id.is_(None)))
    return {
        "users": {"total": total, "activeMonth": month or 0, "activeHalfyear": halfyear or 0},
        "localPosts": posts or 0,
    }


async def nodeinfo(request: Request) -> Response:
    state = easel(request)
    version = request.path_params["version"]
    if version not in NODEINFO_SCHEMAS:
        raise ApiError(404, "Record not found")
    software: dict[str, Any] = {"name": "easel", "version": server.__version__}
    body = {
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"outbound": [], "inbound": []},
        "usage": await _usage(state),
        "openRegistrations": state.settings.registrations == "open",
        "metadata": {"nodeName": state.settings.title},
    }
    media_type = f'application/json; profile="{NODEINFO_SCHEMAS[version]}#"'
    return JSONResponse(body, media_type=media_type)


routes: list[BaseRoute] = [
    Route("/.well-known/webfinger", webfinger, methods=["GET", "HEAD"]),
    Route("/.well-known/host-meta", host_meta, methods=["GET", "HEAD"]),
    Route("/.well-known/host-meta.json", host_meta, methods=["GET", "HEAD"]),
    Route("/.well-known/nodeinfo", nodeinfo_links, methods=["GET", "HEAD"]),
    Route("/nodeinfo/{version}", nodeinfo, methods=["GET", "HEAD"]),
]
