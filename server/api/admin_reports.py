"""Mastodon's admin reports API: ``/api/v1/admin/reports``.

Why it exists: moderators handle reports (from local users and remote ``Flag``s) from
their usual client: list them (unresolved by default; by reporter or target), read one,
change its category and the rules it cites, assign it to themselves or unassign it,
resolve and reopen it. Each endpoint authenticates (an ``admin:…:reports`` scope and an
admin user), parses, calls one ``server.services.reports`` function and answers Mastodon's ``Admin::Report``.

What it must never do: show a report to anyone but an admin (a normal user gets 403, no
token 401), or change a report on a GET.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import (
    Entity,
    EntityContext,
    admin_account_to_entity,
    admin_report_to_entity,
    rule_to_entity,
    statuses_to_entities,
)
from server.api.pagination import Page, paged_json
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.models import Account, InstanceRule, Report, Status, User
from server.services import reports as service
from server.services.user_ips import recent_ips
from server.state import easel

READ = "admin:read:reports"
WRITE = "admin:write:reports"


async def require_admin(request: Request, scope: str) -> Account:
    """The admin's account behind a token with ``scope``: 401 without a valid token, 403
    for a token without the scope or a user who is not an admin."""
    auth = await require(request, scope)
    user, account = auth.require_user()
    if not user.admin:
        raise ApiError(403, "This action is not allowed")
    return account


async def reports_to_entities(session: AsyncSession, reports: Sequence[Report],
                              ctx: EntityContext, viewer: Account) -> list[Entity]:
    """Admin::Report entities for ``reports`` in a few queries."""
    ids = {i for r in reports for i in (r.account_id, r.target_account_id,
                                        r.assigned_account_id, r.action_taken_by_account_id)
           if i is not None}
    accounts = {a.id: a for a in await session.scalars(select(Account).where(Account.id.in_(ids)))}
    users = {u.account_id: u for u in await session.scalars(select(User).where(User.account_id.in_(ids)))}
    ips = await recent_ips(session, [u.id for u in users.values()])
    parties = {i: admin_account_to_entity(a, users.get(i), ctx,
                                          ips.get(users[i].id, []) if i in users else [])
               for i, a in accounts.items()}
    status_ids = {i for r in reports for i in r.status_ids or []}
    statuses = list(await session.scalars(select(Status).where(Status.id.in_(status_ids)))) \
        if status_ids else []
    status_entities = {int(e["id"]): e for e in await statuses_to_entities(session, statuses, ctx, viewer)}
    rule_ids = {i for r in reports for i in r.rule_ids or []}
    rules = {rule.id: rule_to_entity(rule) for rule in await session.scalars(
        select(InstanceRule).where(InstanceRule.id.in_(rule_ids)))} if rule_ids else {}
    return [admin_report_to_entity(r, parties, [status_entities[i] for i in r.status_ids or []
                                                if i in status_entities],
                                   [rules[i] for i in r.rule_ids or [] if i in rules])
            for r in reports]


async def _one(request: Request, report: Report, viewer: Account) -> JSONResponse:
    state = easel(request)
    async with state.db.session() as session:
        [entity] = await reports_to_entities(session, [report], EntityContext.of(state), viewer)
    return JSONResponse(entity)


def _report_id(request: Request) -> int:
    return parse_id(request.path_params["id"])


async def list_reports(request: Request) -> JSONResponse:
    viewer = await require_admin(request, READ)
    params = await Params.from_request(request)
    page = Page.from_params(params, default=100, maximum=200)
    resolved = params.get_bool("resolved", False)
    account_id = params.get_str("account_id")
    target_id = params.get_str("target_account_id")
    query = service.reports_query(
        resolved=resolved,
        account_id=parse_id(account_id) if account_id else None,
        target_account_id=parse_id(target_id) if target_id else None)
    state = easel(request)
    async with state.db.session() as session:
        found = page.arrange(list(await session.scalars(page.apply(query, Report.id))))
        entities = await reports_to_entities(session, found, EntityContext.of(state), viewer)
    return paged_json(request, entities, [r.id for r in found], page)


async def show_report(request: Request) -> JSONResponse:
    viewer = await require_admin(request, READ)
    report_id = _report_id(request)
    async with easel(request).db.session() as session:
        report = await service.get_report(session, report_id)
    return await _one(request, report, viewer)


async def update_report(request: Request) -> JSONResponse:
    viewer = await require_admin(request, WRITE)
    report_id = _report_id(request)
    params = await Params.from_request(request)
    # rule_ids absent: unchanged; given (even empty, ``rule_ids[]=``): the rules it cites now
    rule_ids = params.get_ids("rule_ids", skip_blank=True) if params.has("rule_ids") else None
    category = params.get_str("category")
    async with easel(request).db.session() as session:
        report = await service.update_report(session, report_id, category=category,
                                             rule_ids=rule_ids)
    return await _one(request, report, viewer)


def _state_change(change: Callable[[AsyncSession, int, Account], Awaitable[Report]],
                  ) -> Callable[[Request], Awaitable[JSONResponse]]:
    """``assign_to_self``, ``unassign``, ``resolve``, ``reopen``: one change of the
    report's state by the moderator asking; answers the Admin::Report."""

    async def endpoint(request: Request) -> JSONResponse:
        viewer = await require_admin(request, WRITE)
        report_id = _report_id(request)
        async with easel(request).db.session() as session:
            report = await change(session, report_id, viewer)
        return await _one(request, report, viewer)

    return endpoint


assign_to_self = _state_change(service.assign_report)
unassign = _state_change(lambda session, report_id, _viewer: service.assign_report(session, report_id, None))
resolve = _state_change(service.resolve_report)
reopen = _state_change(lambda session, report_id, _viewer: service.reopen_report(session, report_id))


routes: list[BaseRoute] = [
    Route("/api/v1/admin/reports", list_reports, methods=["GET"]),
    Route("/api/v1/admin/reports/{id}", show_report, methods=["GET"]),
    Route("/api/v1/admin/reports/{id}", update_report, methods=["PUT"]),
    Route("/api/v1/admin/reports/{id}/assign_to_self", assign_to_self, methods=["POST"]),
    Route("/api/v1/admin/reports/{id}/unassign", unassign, methods=["POST"]),
    Route("/api/v1/admin/reports/{id}/resolve", resolve, methods=["POST"]),
    Route("/api/v1/admin/reports/{id}/reopen", reopen, methods=["POST"]),
]
