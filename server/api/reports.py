"""Mastodon's reports API: ``POST /api/v1/reports``.

Why it exists: clients let a user report an account (and some of its statuses) to the
moderators, and optionally have the report forwarded, anonymously, to the account's own
server. The endpoint only authenticates (``write:reports``), parses, calls
``server.services.reports.create_report`` and answers Mastodon's ``Report`` entity; every
rule is the service's. Listing and handling reports is the admin API's (not here).

``rule_ids[]`` cite the instance's rules (``GET /api/v1/instance/rules``); citing any makes
the report a "violation" one, as Mastodon does; ``rule_ids`` in the entity is null when it
cites none.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import require
from server.api.entities import EntityContext, report_to_entity
from server.api.params import Params, parse_id
from server.models import Account
from server.services import reports as service
from server.state import easel


async def create_report(request: Request) -> JSONResponse:
    auth = await require(request, "write:reports")
    _user, account = auth.require_user()
    params = await Params.from_request(request)
    target_id = parse_id(params.require_str("account_id"))
    status_ids = params.get_ids("status_ids")
    rule_ids = params.get_ids("rule_ids", skip_blank=True)
    params.get_list("forward_to_domains")  # replies' servers: only the target's is told
    comment = params.get_str("comment", "") or ""
    category = params.get_str("category")
    forward = bool(params.get_bool("forward", False))
    state = easel(request)
    async with state.db.session() as session:
        report = await service.create_report(
            session, state.settings, account, target_id, status_ids=status_ids,
            comment=comment, category=category, rule_ids=rule_ids, forward=forward)
        target = await session.get(Account, report.target_account_id)
        assert target is not None
        entity = report_to_entity(report, target, EntityContext.of(state))
    return JSONResponse(entity)


routes: list[BaseRoute] = [
    Route("/api/v1/reports", create_report, methods=["POST"]),
]
