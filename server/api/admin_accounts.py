"""Mastodon's admin accounts API (``/api/v1/admin/accounts``, ``/api/v2/admin/accounts``)
and the affected person's view of the warnings they received.

Why it exists: moderation apps (and Mastodon.py's ``admin_account_*``) list accounts by
standing, act on one (warn, mark sensitive, disable, silence, suspend), lift those
actions, approve or reject sign-ups and delete a suspended account's data, with
Mastodon's parameters, entities and errors. Each endpoint checks the admin, parses, makes
one call to ``server.services.moderation`` and serialises.

What it must never do: let anyone but an admin (``users.admin``) with an ``admin:…``
scope in, or decide what an action does (the service does).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import (
    Entity,
    EntityContext,
    account_warning_to_entity,
    admin_account_to_entity,
)
from server.api.pagination import Page, paged_json
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.ids import parse_id as parse_db_id
from server.models import Account, AccountWarning, User, UserIp
from server.services import moderation
from server.services.appeals import MAX_APPEAL_TEXT, appeals_of, file_appeal
from server.services.moderation import ACCOUNT_STATES, AccountFilter
from server.services.user_ips import recent_ips
from server.state import easel

NOT_ALLOWED = "This action is not allowed"


async def _moderator(request: Request, scope: str) -> Account:
    auth = await require(request, scope)
    user, account = auth.require_user()
    if not user.admin:
        raise ApiError(403, NOT_ALLOWED)
    return account


def _v1_filter(params: Params) -> AccountFilter:
    origin = ("local" if params.get_bool("local") else
              "remote" if params.get_bool("remote") else None)
    state = next((s for s in ACCOUNT_STATES if params.get_bool(s)), None)
    return AccountFilter(origin=origin, state=state, by_domain=params.get_str("by_domain"),
                         username=params.get_str("username"),
                         display_name=params.get_str("display_name"),
                         email=params.get_str("email"), staff=bool(params.get_bool("staff")),
                         sensitized=bool(params.get_bool("sensitized")), ip=params.get_str("ip"))


def _v2_filter(params: Params) -> AccountFilter:
    origin = params.get_str("origin") or None
    if origin not in (None, "local", "remote"):
        raise ApiError(422, "Validation failed: origin must be local or remote")
    state = params.get_str("status") or None
    if state is not None and state not in ACCOUNT_STATES:
        raise ApiError(422, f"Validation failed: status must be one of {', '.join(ACCOUNT_STATES)}")
    permissions = params.get_str("permissions") or None
    if permissions not in (None, "staff"):
        raise ApiError(422, "Validation failed: permissions must be staff")
    return AccountFilter(origin=origin, state=state, by_domain=params.get_str("by_domain"),
                         username=params.get_str("username"),
                         display_name=params.get_str("display_name"),
                         email=params.get_str("email"), staff=permissions == "staff",
                         ip=params.get_str("ip"))


async def index(request: Request) -> JSONResponse:
    await _moderator(request, "admin:read:accounts")
    params = await Params.from_request(request)
    wanted = _v2_filter(params) if request.url.path.startswith("/api/v2/") else _v1_filter(params)
    page = Page.from_params(params, default=100, maximum=200)
    state = easel(request)
    async with state.db.session() as session:
        rows = page.arrange(list((await session.execute(
            page.apply(moderation.accounts_query(wanted), Account.id))).all()))
        ips = await recent_ips(session, [u.id for _, u in rows if u is not None])
    ctx = EntityContext.of(state)
    return paged_json(request, [admin_account_to_entity(a, u, ctx, _ips_of(ips, u)) for a, u in rows],
                      [a.id for a, _ in rows], page)


def _ips_of(ips: dict[int, list[UserIp]], user: User | None) -> list[UserIp]:
    return ips.get(user.id, []) if user is not None else []


async def _entity(session: AsyncSession, account: Account, user: User | None,
                  ctx: EntityContext) -> Entity:
    """One Admin::Account with its addresses."""
    ips = await recent_ips(session, [user.id] if user is not None else [])
    return admin_account_to_entity(account, user, ctx, _ips_of(ips, user))


async def show(request: Request) -> JSONResponse:
    await _moderator(request, "admin:read:accounts")
    account_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        account, user = await moderation.account_with_user(session, account_id)
        return JSONResponse(await _entity(session, account, user, EntityContext.of(state)))


async def action(request: Request) -> JSONResponse:
    moderator = await _moderator(request, "admin:write:accounts")
    account_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    raw_report = params.get_str("report_id")
    report_id = parse_db_id(raw_report) if raw_report else None
    if raw_report and report_id is None:
        raise ApiError(404, "Record not found")
    state = easel(request)
    async with state.db.session() as session:
        await moderation.take_action(
            session, state.settings, moderator=moderator, account_id=account_id,
            action=params.get_str("type") or "none",
            text=params.get_str("text", max_length=moderation.MAX_WARNING_TEXT) or "",
            report_id=report_id,
            notify_by_email=params.get_bool("send_email_notification", True) is not False)
    return JSONResponse({})


def _lifting(what: str) -> Callable[[Request], Awaitable[JSONResponse]]:
    """The endpoint that approves, deletes or lifts (``enable``, ``unsilence``,
    ``unsuspend``, ``unsensitive``) and answers the Admin::Account."""

    async def endpoint(request: Request) -> JSONResponse:
        await _moderator(request, "admin:write:accounts")
        account_id = parse_id(request.path_params["id"])
        state = easel(request)
        async with state.db.session() as session:
            if what == "approve":
                account, user = await moderation.approve(session, state.settings, account_id)
            elif what == "delete":
                account, user = await moderation.delete_by_moderator(session, account_id)
            else:
                account, user = await moderation.lift(session, account_id, what)
            return JSONResponse(await _entity(session, account, user, EntityContext.of(state)))

    endpoint.__name__ = what
    return endpoint


async def reject(request: Request) -> JSONResponse:
    await _moderator(request, "admin:write:accounts")
    account_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        account, user = await moderation.account_with_user(session, account_id)
        entity = await _entity(session, account, user, EntityContext.of(state))
        await moderation.reject(session, state.settings, account_id)
    return JSONResponse(entity)


async def own_warnings(request: Request) -> JSONResponse:
    """``GET /api/v1/easel/account_warnings``: the moderation actions taken on one's own
    account, with the moderators' reasons (Mastodon shows them on its web "strikes")."""
    auth = await require(request, "read:accounts")
    _user, account = auth.require_user()
    async with easel(request).db.session() as session:
        found = await moderation.warnings_for(session, account)
        appeals = await appeals_of(session, [w.id for w in found])
    return JSONResponse([account_warning_to_entity(w, appeals.get(w.id)) for w in found])


async def appeal_warning(request: Request) -> JSONResponse:
    """``POST /api/v1/easel/account_warnings/:id/appeal`` (``text``): appeal one's own
    warning (Easel's: Mastodon takes appeals on its web pages only); the AccountWarning
    with its pending appeal."""
    auth = await require(request, "write:accounts")
    _user, account = auth.require_user()
    warning_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    text = params.get_str("text", "", max_length=MAX_APPEAL_TEXT * 2) or ""
    async with easel(request).db.session() as session:
        appeal = await file_appeal(session, account, warning_id, text)
        warning = await session.get(AccountWarning, appeal.account_warning_id)
        assert warning is not None
        return JSONResponse(account_warning_to_entity(warning, appeal))


routes: list[BaseRoute] = [
    Route("/api/v1/admin/accounts", index, methods=["GET"]),
    Route("/api/v2/admin/accounts", index, methods=["GET"]),
    Route("/api/v1/admin/accounts/{id}", show, methods=["GET"]),
    Route("/api/v1/admin/accounts/{id}", _lifting("delete"), methods=["DELETE"]),
    Route("/api/v1/admin/accounts/{id}/action", action, methods=["POST"]),
    Route("/api/v1/admin/accounts/{id}/approve", _lifting("approve"), methods=["POST"]),
    Route("/api/v1/admin/accounts/{id}/reject", reject, methods=["POST"]),
    *(Route(f"/api/v1/admin/accounts/{{id}}/{what}", _lifting(what), methods=["POST"])
      for what in ("enable", "unsilence", "unsuspend", "unsensitive")),
    Route("/api/v1/easel/account_warnings", own_warnings, methods=["GET"]),
    Route("/api/v1/easel/account_warnings/{id}/appeal", appeal_warning, methods=["POST"]),
]
