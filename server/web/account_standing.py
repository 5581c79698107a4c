"""The studio's "Standing" page (``/studio/standing``): what moderators did to one's
account and why, appealing those decisions, and deleting one's own account (with its
grace period, cancellable).

Why it exists: Mastodon requires that an affected person can read the reasons for a
moderation action and contest them (an appeal, once per decision, within
``server.services.appeals.APPEAL_WINDOW``), and that people can leave: "delete my
account" needs the password, suspends the account at once and purges it after
``EASEL_ACCOUNT_DELETION_GRACE_DAYS``; until then this page cancels it. It is the one
studio page a suspended account reaches.

What it must never do: delete without the password, or decide what deletion or an appeal
does (that is ``server.services.moderation`` and ``server.services.appeals``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from server.ids import parse_id, utcnow
from server.services import appeals, moderation
from server.services.errors import NotFound, ServiceError
from server.web.studio import Visit, studio_page


async def _standing_page(visit: Visit, *, error: str | None = None, notice: str | None = None,
                         status_code: int = 200,
                         appeal_form: Mapping[str, Any] | None = None) -> Response:
    account = visit.account
    warnings = await moderation.warnings_for(visit.session, account)
    now = utcnow()
    return visit.page("studio_standing.html", {
        "account": account, "warnings": warnings, "error": error, "notice": notice,
        "grace_days": visit.state.settings.account_deletion_grace_days,
        "appeals": await appeals.appeals_of(visit.session, [w.id for w in warnings]),
        "appealable": {w.id for w in warnings if appeals.appealable(w, now)},
        "appeal_days": appeals.APPEAL_WINDOW.days, "appeal_limit": appeals.MAX_APPEAL_TEXT,
        "appeal_form": appeal_form or {},
    }, status_code=status_code)


async def standing(visit: Visit) -> Response:
    return await _standing_page(visit)


async def standing_action(visit: Visit) -> Response:
    action = visit.field("action")
    if action == "appeal":
        return await _appeal(visit)
    try:
        if action == "delete":
            if visit.account.delete_after is not None:
                return await _standing_page(visit, error="Your account is already being deleted.",
                                            status_code=422)
            await moderation.request_deletion(visit.session, visit.state.settings, visit.user,
                                              visit.field("password"))
        elif action == "cancel":
            await moderation.cancel_deletion(visit.session, visit.user)
        else:
            return await _standing_page(visit, error="Unknown action.", status_code=422)
    except ServiceError as exc:
        await visit.rollback()
        message = ("That is not your password." if exc.status_code == 403 and action == "delete"
                   else "There is no deletion to cancel.")
        return await _standing_page(visit, error=message, status_code=422)
    return _see_standing()


async def _appeal(visit: Visit) -> Response:
    """Appeal one of one's own warnings (another's, or none, is "not found")."""
    warning_id = parse_id(visit.field("warning_id"))
    if warning_id is None:
        raise NotFound("Record not found")
    try:
        await appeals.file_appeal(visit.session, visit.account, warning_id, visit.field("text"))
    except NotFound:
        raise
    except ServiceError as exc:
        await visit.rollback()
        return await _standing_page(visit, error=exc.message.removeprefix("Validation failed: "),
                                    status_code=422, appeal_form={"warning_id": warning_id,
                                                                  "text": visit.field("text")})
    return _see_standing()


def _see_standing() -> Response:
    return RedirectResponse("/studio/standing", status_code=303,
                            headers={"Cache-Control": "no-store"})


routes: list[BaseRoute] = [
    Route("/studio/standing", studio_page(standing, allow_suspended=True), methods=["GET", "HEAD"]),
    Route("/studio/standing", studio_page(standing_action, allow_suspended=True), methods=["POST"]),
]
