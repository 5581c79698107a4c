"""The admin web area under ``/admin``: what a moderator does in a browser.

Why it exists: moderators without a moderation app handle the instance here — the
dashboard (``easel admin status``'s checks, pending sign-ups, open reports), reports
(notes, assignment, resolving, an action on the reported account), appeals of warnings
(approving or rejecting), accounts (filters, warnings with their appeals, actions and
their lifting, sign-up approval, deletion of a suspended account),
domain blocks (with CSV import and export), domain allows, e-mail blocks, IP blocks,
invites, rules,
announcements (drafts, publishing, withdrawal) and the job queue (failures, retry, purge).

Every page needs the cookie session of an admin (``users.admin``): signed out, a page
redirects to ``/auth/sign_in?next=…``; anyone else gets a 403 page. Every POST checks the
CSRF token (``server/web/session.py``; 403 without it). Bad input comes back as the page
with the error (4xx), never a 500, and nothing half-written.

What it must never do: decide anything itself — each endpoint parses the form and calls
one function of the owning service (``server.services.moderation``, ``reports``, ``appeals``,
``domain_blocks``, ``email_blocks``, ``ip_blocks``, ``invites``, ``rules``, ``announcements``,
``server.queue.admin``, ``server.observability``); let a non-admin see or change anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from server.ids import parse_id, utcnow
from server.models import Account, Announcement, Report, Status, User
from server.observability import instance_status
from server.queue import admin as queue_admin
from server.services import (
    announcements,
    appeals,
    domain_blocks,
    email_blocks,
    invites,
    ip_blocks,
    moderation,
    reports,
    rules,
)
from server.services.errors import NotFound, ServiceError
from server.services.moderation import ACCOUNT_STATES, ACTION_TYPES, AccountFilter
from server.services.user_ips import recent_ips
from server.state import EaselState, easel
from server.web.session import current_user, render
from server.web.studio import FormRefused, read_checked_form

SIGN_IN = "/auth/sign_in"
# Admin pages are private: never indexed, never stored.
PAGE_HEADERS = {"Cache-Control": "private, no-store", "X-Robots-Tag": "noindex"}
MEGABYTE = 1024 * 1024
FORM_BODY_LIMIT = MEGABYTE
CSV_UPLOAD_LIMIT = 2 * MEGABYTE
LIST_LIMIT = 100
ACTION_LABELS = {"none": "Warn", "sensitive": "Mark media sensitive", "disable": "Disable login",
                 "silence": "Limit (silence)", "suspend": "Suspend"}
LIFTS = {"unsilence": "Lift the limit", "unsuspend": "Lift the suspension",
         "unsensitive": "Lift the sensitive mark", "enable": "Enable login"}
# Mastodon's invite expiry choices (seconds; "" is never).
INVITE_EXPIRIES = (("", "Never"), ("1800", "30 minutes"), ("3600", "1 hour"),
                   ("21600", "6 hours"), ("43200", "12 hours"), ("86400", "1 day"),
                   ("604800", "1 week"))


# ------------------------------------------------------------------------------ the visit

@dataclass
class AdminVisit:
    """One request of a signed-in admin: what every admin endpoint works with."""

    request: Request
    state: EaselState
    session: AsyncSession
    user: User
    form: FormData | None = None

    @property
    def account(self) -> Account:
        account = self.user.account
        assert account is not None
        return account

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else default

    def checked(self, name: str) -> bool:
        return self.field(name) in ("1", "on", "true")

    def query(self, name: str) -> str:
        return self.request.query_params.get(name, "")[:200]

    def path_id(self, name: str = "id") -> int:
        found = parse_id(str(self.request.path_params.get(name, "")))
        if found is None:
            raise NotFound("Record not found")
        return found

    async def rollback(self) -> None:
        """Undo what a refused change left in the session (the page shown next reads the
        admin again, which a rollback expired)."""
        await self.session.rollback()
        await self.session.refresh(self.user)
        await self.session.refresh(self.user, ["account"])

    def page(self, template: str, context: Mapping[str, Any], *, status_code: int = 200) -> Response:
        account = self.user.account
        admin_open = self.user.admin and account is not None and account.suspended_at is None
        return render(self.request, self.state, template,
                      {"viewer": self.user, "admin_open": admin_open, **context},
                      status_code=status_code, headers=PAGE_HEADERS)


def _see_other(location: str) -> Response:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def _sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _see_other(f"{SIGN_IN}?next={quote(target, safe='/')}")


def _message(visit: AdminVisit, status_code: int, heading: str, text: str) -> Response:
    return visit.page("admin_message.html", {"heading": heading, "message": text},
                      status_code=status_code)


Handler = Callable[[AdminVisit], Awaitable[Response]]


def admin_page(handler: Handler, *, multipart: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an admin endpoint: the cookie session (sign-in redirect), the admin check
    (403; a suspended admin's too), the form and its CSRF check for a POST (403), and "not found" pages."""

    async def endpoint(request: Request) -> Response:
        state = easel(request)
        async with state.db.session() as session:
            user = await current_user(request, session, state)
            if user is None or user.account is None:
                return _sign_in_redirect(request)
            visit = AdminVisit(request=request, state=state, session=session, user=user)
            if not user.admin:
                return _message(visit, 403, "Forbidden", "This area is for the administrators.")
            if user.account.suspended_at is not None:
                # A suspended admin (by another, or their own deletion waiting) signs in for
                # the Standing page only, as every suspended account: no moderation, least
                # of all lifting their own suspension.
                return _message(visit, 403, "Account suspended",
                                "This account is suspended: the administration is closed to it. "
                                "See why, or cancel its deletion, under Standing (/studio/standing).")
            if request.method == "POST":
                limit = CSV_UPLOAD_LIMIT + MEGABYTE if multipart else FORM_BODY_LIMIT
                form = await read_checked_form(request, state, limit,
                                               max_files=1 if multipart else 0, max_fields=50)
                if isinstance(form, FormRefused):
                    return _message(visit, form.status, form.title, form.text)
                visit.form = form
            try:
                return await handler(visit)
            except NotFound:
                await visit.rollback()
                return _message(visit, 404, "Not found", "There is nothing here.")
            finally:
                if visit.form is not None:
                    await visit.form.close()

    return endpoint


async def _count(session: AsyncSession, query: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _error_text(exc: ServiceError) -> str:
    return exc.message.removeprefix("Validation failed: ")


# ---------------------------------------------------------------------------- dashboard

async def dashboard(visit: AdminVisit) -> Response:
    state = visit.state
    checks = await instance_status(state.settings, state.db, state.storage)
    pending = await _count(visit.session, moderation.accounts_query(
        AccountFilter(origin="local", state="pending")))
    open_reports = await _count(visit.session, reports.reports_query(resolved=False))
    return visit.page("admin_dashboard.html", {
        "section": "dashboard", "checks": checks, "pending": pending,
        "open_reports": open_reports, "registrations": state.settings.registrations})


# ------------------------------------------------------------------------------ reports

async def _accounts_by_id(session: AsyncSession, ids: set[int | None]) -> dict[int, Account]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {a.id: a for a in await session.scalars(select(Account).where(Account.id.in_(wanted)))}


async def report_list(visit: AdminVisit) -> Response:
    resolved = visit.query("resolved") == "1"
    rows = list(await visit.session.scalars(
        reports.reports_query(resolved=resolved).order_by(Report.id.desc()).limit(LIST_LIMIT)))
    accounts = await _accounts_by_id(visit.session, {r.account_id for r in rows}
                                     | {r.target_account_id for r in rows}
                                     | {r.assigned_account_id for r in rows})
    return visit.page("admin_reports.html", {"section": "reports", "reports": rows,
                                             "accounts": accounts, "resolved": resolved})


async def _report_page(visit: AdminVisit, *, error: str | None = None,
                       status_code: int = 200) -> Response:
    report = await reports.get_report(visit.session, visit.path_id())
    notes = await reports.report_notes(visit.session, report.id)
    accounts = await _accounts_by_id(
        visit.session, {report.account_id, report.target_account_id, report.assigned_account_id,
                        report.action_taken_by_account_id} | {n.account_id for n in notes})
    statuses = list(await visit.session.scalars(
        select(Status).where(Status.id.in_(report.status_ids or [])).order_by(Status.id)))
    return visit.page("admin_report.html", {
        "section": "reports", "report": report, "notes": notes, "accounts": accounts,
        "statuses": statuses, "rules": await reports.cited_rules(visit.session, report),
        "action_labels": ACTION_LABELS, "error": error,
        "note_limit": reports.MAX_NOTE_LENGTH}, status_code=status_code)


async def report_detail(visit: AdminVisit) -> Response:
    return await _report_page(visit)


async def report_change(visit: AdminVisit) -> Response:
    report_id = visit.path_id()
    action = visit.field("action")
    session = visit.session
    try:
        if action == "note":
            await reports.add_report_note(session, report_id, visit.account, visit.field("content"))
        elif action == "assign":
            await reports.assign_report(session, report_id, visit.account)
        elif action == "unassign":
            await reports.assign_report(session, report_id, None)
        elif action == "resolve":
            await reports.resolve_report(session, report_id, visit.account)
        elif action == "reopen":
            await reports.reopen_report(session, report_id)
        elif action == "act":
            report = await reports.get_report(session, report_id)
            await moderation.take_action(
                session, visit.state.settings, moderator=visit.account,
                account_id=report.target_account_id, action=visit.field("type"),
                text=visit.field("text"), report_id=report.id)
        else:
            return await _report_page(visit, error="Unknown action.", status_code=422)
    except NotFound:
        raise
    except ServiceError as exc:
        await visit.rollback()
        return await _report_page(visit, error=_error_text(exc), status_code=422)
    return _see_other(f"/admin/reports/{report_id}")


# ------------------------------------------------------------------------------ appeals

async def _appeals_page(visit: AdminVisit, *, error: str | None = None,
                        status_code: int = 200) -> Response:
    session = visit.session
    pending = await appeals.list_appeals(session, limit=LIST_LIMIT)
    decided = await appeals.list_appeals(session, "decided", limit=LIST_LIMIT)
    rows = pending + decided
    accounts = await _accounts_by_id(
        session, {a.account_id for a, _ in rows} | {a.approved_by_account_id for a, _ in rows}
        | {a.rejected_by_account_id for a, _ in rows})
    return visit.page("admin_appeals.html", {
        "section": "appeals", "pending": pending, "decided": decided, "accounts": accounts,
        "action_labels": ACTION_LABELS, "appeal_days": appeals.APPEAL_WINDOW.days,
        "error": error}, status_code=status_code)


async def appeal_list(visit: AdminVisit) -> Response:
    return await _appeals_page(visit)


async def _decide_appeal(visit: AdminVisit, approve: bool) -> Response:
    decide = appeals.approve_appeal if approve else appeals.reject_appeal
    try:
        await decide(visit.session, visit.state.settings, visit.account, visit.path_id())
    except NotFound:
        raise
    except ServiceError as exc:
        await visit.rollback()
        return await _appeals_page(visit, error=_error_text(exc), status_code=422)
    return _see_other("/admin/appeals")


async def appeal_approve(visit: AdminVisit) -> Response:
    return await _decide_appeal(visit, approve=True)


async def appeal_reject(visit: AdminVisit) -> Response:
    return await _decide_appeal(visit, approve=False)


# ----------------------------------------------------------------------------- accounts

def _account_filter(visit: AdminVisit) -> AccountFilter:
    origin = visit.query("origin")
    state = visit.query("state")
    return AccountFilter(origin=origin if origin in ("local", "remote") else None,
                         state=state if state in ACCOUNT_STATES else None,
                         username=visit.query("username").strip() or None,
                         display_name=visit.query("display_name").strip() or None,
                         by_domain=visit.query("domain").strip() or None,
                         ip=visit.query("ip").strip() or None)


async def account_list(visit: AdminVisit) -> Response:
    wanted = _account_filter(visit)
    try:
        query = moderation.accounts_query(wanted)
    except ServiceError as error:  # an ip that is no address or network
        return visit.page("admin_accounts.html", {
            "section": "accounts", "rows": [], "wanted": wanted, "states": ACCOUNT_STATES,
            "older": None, "error": error.message}, status_code=422)
    before = parse_id(visit.query("before"))
    if before is not None:
        query = query.where(Account.id < before)
    rows = list((await visit.session.execute(
        query.order_by(Account.id.desc()).limit(LIST_LIMIT + 1))).all())
    older = None
    if len(rows) > LIST_LIMIT:
        rows = rows[:LIST_LIMIT]
        params = {k: v for k, v in visit.request.query_params.items() if k != "before"}
        older = "/admin/accounts?" + urlencode({**params, "before": rows[-1][0].id})
    return visit.page("admin_accounts.html", {
        "section": "accounts", "rows": rows, "wanted": wanted, "states": ACCOUNT_STATES,
        "older": older})


async def _account_page(visit: AdminVisit, *, error: str | None = None,
                        status_code: int = 200) -> Response:
    account, user = await moderation.account_with_user(visit.session, visit.path_id())
    warnings = await moderation.warnings_for(visit.session, account)
    appealed = await appeals.appeals_of(visit.session, [w.id for w in warnings])
    about = list(await visit.session.scalars(
        reports.reports_query(resolved=None, target_account_id=account.id)
        .order_by(Report.id.desc()).limit(LIST_LIMIT)))
    used = (await recent_ips(visit.session, [user.id])).get(user.id, []) if user is not None else []
    return visit.page("admin_account.html", {
        "section": "accounts", "account": account, "user": user, "warnings": warnings,
        "appeals": appealed, "reports": about, "action_labels": ACTION_LABELS, "lifts": LIFTS, "error": error,
        "is_self": account.id == visit.account.id, "ips": used}, status_code=status_code)


async def account_detail(visit: AdminVisit) -> Response:
    return await _account_page(visit)


async def account_change(visit: AdminVisit) -> Response:
    account_id = visit.path_id()
    action = visit.field("action")
    session, settings = visit.session, visit.state.settings
    if account_id == visit.account.id and action not in ("none", *LIFTS):
        return await _account_page(visit, error="You cannot take this action on yourself.",
                                   status_code=422)
    try:
        if action in ACTION_TYPES:
            await moderation.take_action(session, settings, moderator=visit.account,
                                         account_id=account_id, action=action,
                                         text=visit.field("text"))
        elif action in LIFTS:
            await moderation.lift(session, account_id, action)
        elif action == "approve":
            await moderation.approve(session, settings, account_id)
        elif action == "reject":
            await moderation.reject(session, settings, account_id)
            return _see_other("/admin/accounts?state=pending")
        elif action == "delete":
            await moderation.delete_by_moderator(session, account_id)
        else:
            return await _account_page(visit, error="Unknown action.", status_code=422)
    except NotFound:
        raise
    except ServiceError as exc:
        await visit.rollback()
        message = ("This action does not apply to the account as it stands."
                   if exc.status_code == 403 else _error_text(exc))
        return await _account_page(visit, error=message, status_code=422)
    return _see_other(f"/admin/accounts/{account_id}")


# ------------------------------------------------------------------------ domain blocks

async def _blocks_page(visit: AdminVisit, *, error: str | None = None, notice: str | None = None,
                       status_code: int = 200, form: Mapping[str, Any] | None = None) -> Response:
    blocks = await domain_blocks.list_domain_blocks(visit.session)
    return visit.page("admin_domain_blocks.html", {
        "section": "domain_blocks", "blocks": blocks, "severities": domain_blocks.SEVERITIES,
        "error": error, "notice": notice, "form": form or {}}, status_code=status_code)


def _block_fields(visit: AdminVisit) -> dict[str, Any]:
    return {"severity": visit.field("severity"), "reject_media": visit.checked("reject_media"),
            "reject_reports": visit.checked("reject_reports"),
            "public_comment": visit.field("public_comment"),
            "private_comment": visit.field("private_comment"),
            "obfuscate": visit.checked("obfuscate")}


async def domain_block_list(visit: AdminVisit) -> Response:
    return await _blocks_page(visit)


async def domain_block_create(visit: AdminVisit) -> Response:
    fields = _block_fields(visit)
    try:
        await domain_blocks.create_domain_block(
            visit.session, visit.field("domain"), own_domain=visit.state.settings.domain, **fields)
    except ServiceError as exc:
        await visit.rollback()
        return await _blocks_page(visit, error=_error_text(exc), status_code=422,
                                  form={"domain": visit.field("domain"), **fields})
    return _see_other("/admin/domain_blocks")


async def _block_page(visit: AdminVisit, *, error: str | None = None,
                      status_code: int = 200) -> Response:
    block = await domain_blocks.get_domain_block(visit.session, visit.path_id())
    return visit.page("admin_domain_block.html", {
        "section": "domain_blocks", "block": block, "severities": domain_blocks.SEVERITIES,
        "error": error}, status_code=status_code)


async def domain_block_detail(visit: AdminVisit) -> Response:
    return await _block_page(visit)


async def domain_block_change(visit: AdminVisit) -> Response:
    block_id = visit.path_id()
    try:
        if visit.field("action") == "remove":
            await domain_blocks.remove_domain_block(visit.session, block_id)
        else:
            await domain_blocks.update_domain_block(
                visit.session, block_id, own_domain=visit.state.settings.domain,
                **_block_fields(visit))
    except NotFound:
        raise
    except ServiceError as exc:
        await visit.rollback()
        return await _block_page(visit, error=_error_text(exc), status_code=422)
    return _see_other("/admin/domain_blocks")


async def domain_block_import(visit: AdminVisit) -> Response:
    upload = visit.form.get("file") if visit.form is not None else None
    if not isinstance(upload, UploadFile):
        return await _blocks_page(visit, error="Choose a CSV file to import.", status_code=422)
    data = await upload.read(CSV_UPLOAD_LIMIT + 1)
    if len(data) > CSV_UPLOAD_LIMIT:
        return await _blocks_page(visit, error="The file is too large (the limit is 2 MB).",
                                  status_code=413)
    try:
        parsed = domain_blocks.parse_csv(data.decode("utf-8-sig"))
        result = await domain_blocks.import_blocks(visit.session, parsed,
                                                   own_domain=visit.state.settings.domain)
    except UnicodeDecodeError:
        return await _blocks_page(visit, error="The file is not UTF-8 text.", status_code=422)
    except ServiceError as exc:
        await visit.rollback()
        return await _blocks_page(visit, error=_error_text(exc), status_code=422)
    notice = f"Imported: {result.created} new, {result.updated} updated."
    if result.skipped:
        notice += " Skipped (they cover this server): " + ", ".join(result.skipped)
    return await _blocks_page(visit, notice=notice)


async def domain_block_export(visit: AdminVisit) -> Response:
    blocks = await domain_blocks.list_domain_blocks(visit.session)
    return Response(domain_blocks.export_csv(blocks), media_type="text/csv; charset=utf-8",
                    headers={**PAGE_HEADERS, "X-Content-Type-Options": "nosniff",
                             "Content-Disposition": 'attachment; filename="domain_blocks.csv"'})


# ----------------------------------------------------------------------- domain allows

async def _allows_page(visit: AdminVisit, *, error: str | None = None,
                       status_code: int = 200) -> Response:
    allows = await domain_blocks.list_domain_allows(visit.session)
    return visit.page("admin_domain_allows.html", {
        "section": "domain_allows", "allows": allows, "error": error,
        "federation_mode": visit.state.settings.federation_mode},
        status_code=status_code)


async def domain_allow_list(visit: AdminVisit) -> Response:
    return await _allows_page(visit)


async def domain_allow_create(visit: AdminVisit) -> Response:
    try:
        await domain_blocks.allow_domain(visit.session, visit.field("domain"))
    except ServiceError as exc:
        await visit.rollback()
        return await _allows_page(visit, error=_error_text(exc), status_code=422)
    return _see_other("/admin/domain_allows")


async def domain_allow_remove(visit: AdminVisit) -> Response:
    await domain_blocks.remove_domain_allow(visit.session, visit.path_id())
    return _see_other("/admin/domain_allows")


# ----------------------------------------------------------------------- e-mail blocks

async def _email_blocks_page(visit: AdminVisit, *, error: str | None = None,
                             status_code: int = 200) -> Response:
    blocks = await email_blocks.list_email_blocks(visit.session)
    return visit.page("admin_email_blocks.html", {
        "section": "email_blocks", "blocks": blocks, "error": error}, status_code=status_code)


async def email_block_list(visit: AdminVisit) -> Response:
    return await _email_blocks_page(visit)


async def email_block_create(visit: AdminVisit) -> Response:
    try:
        await email_blocks.block_email(visit.session, email=visit.field("email").strip() or None)
    except ServiceError as exc:
        await visit.rollback()
        return await _email_blocks_page(visit, error=_error_text(exc), status_code=422)
    return _see_other("/admin/email_blocks")


async def email_block_remove(visit: AdminVisit) -> Response:
    await email_blocks.remove_email_block(visit.session, visit.path_id())
    return _see_other("/admin/email_blocks")


# --------------------------------------------------------------------------- IP blocks

# Expiry choices of the form (seconds; "" is never).
IP_BLOCK_EXPIRIES = (("", "Never"), ("86400", "1 day"), ("1209600", "2 weeks"),
                     ("2592000", "1 month"), ("15552000", "6 months"), ("31536000", "1 year"))


async def _ip_blocks_page(visit: AdminVisit, *, error: str | None = None, status_code: int = 200,
                          form: Mapping[str, Any] | None = None) -> Response:
    rows = await ip_blocks.list_ip_blocks(visit.session)
    now = utcnow()
    return visit.page("admin_ip_blocks.html", {
        "section": "ip_blocks", "blocks": rows, "severities": ip_blocks.SEVERITIES[::-1],
        "expiries": IP_BLOCK_EXPIRIES, "error": error, "form": form or {},
        "expired": {block.id for block in rows if not ip_blocks.is_active(block, now)},
        "reload_seconds": int(ip_blocks.RELOAD_SECONDS)}, status_code=status_code)


async def ip_block_list(visit: AdminVisit) -> Response:
    return await _ip_blocks_page(visit)


async def ip_block_create(visit: AdminVisit) -> Response:
    fields = {name: visit.field(name)[:ip_blocks.MAX_COMMENT_LENGTH + 1]
              for name in ("ip", "severity", "comment", "expires_in")}
    try:
        await ip_blocks.create_ip_block(
            visit.session, fields["ip"], fields["severity"], comment=fields["comment"],
            expires_in=fields["expires_in"].strip(), matcher=visit.state.ip_blocks)
    except ServiceError as exc:
        await visit.rollback()
        return await _ip_blocks_page(visit, error=_error_text(exc), status_code=422, form=fields)
    return _see_other("/admin/ip_blocks")


async def ip_block_remove(visit: AdminVisit) -> Response:
    await ip_blocks.remove_ip_block(visit.session, visit.path_id(), matcher=visit.state.ip_blocks)
    return _see_other("/admin/ip_blocks")


# ----------------------------------------------------------------------------- invites

async def _invites_page(visit: AdminVisit, *, error: str | None = None,
                        status_code: int = 200) -> Response:
    rows = await invites.list_invites(visit.session)
    return visit.page("admin_invites.html", {
        "section": "invites", "invites": rows, "error": error, "expiries": INVITE_EXPIRIES,
        "usable": {invite.id for invite in rows if invites.is_usable(invite)}},
        status_code=status_code)


async def invite_list(visit: AdminVisit) -> Response:
    return await _invites_page(visit)


async def invite_create(visit: AdminVisit) -> Response:
    max_uses_text = visit.field("max_uses").strip()
    expires_text = visit.field("expires_in").strip()
    if (max_uses_text and not (max_uses_text.isascii() and max_uses_text.isdigit())) or (
            expires_text and not (expires_text.isascii() and expires_text.isdigit())):
        return await _invites_page(visit, error="Max uses and expiry must be whole numbers.",
                                   status_code=422)
    try:
        await invites.create_invite(
            visit.session, created_by_id=visit.user.id,
            max_uses=int(max_uses_text[:12]) if max_uses_text else None,
            expires_in=timedelta(seconds=int(expires_text[:12])) if expires_text else None)
    except ServiceError as exc:
        await visit.rollback()
        return await _invites_page(visit, error=_error_text(exc), status_code=422)
    return _see_other("/admin/invites")


async def invite_revoke(visit: AdminVisit) -> Response:
    await invites.revoke_invite(visit.session, visit.field("code")[:invites.MAX_CODE_LENGTH])
    return _see_other("/admin/invites")


# ------------------------------------------------------------------------------- rules

async def _rules_page(visit: AdminVisit, *, error: str | None = None,
                      status_code: int = 200) -> Response:
    rows = await rules.list_rules(visit.session)
    return visit.page("admin_rules.html", {"section": "rules", "rules": rows, "error": error},
                      status_code=status_code)


async def rule_list(visit: AdminVisit) -> Response:
    return await _rules_page(visit)


async def rule_create(visit: AdminVisit) -> Response:
    try:
        await rules.add_rule(visit.session, visit.field("text"), visit.field("hint"))
    except ServiceError as exc:
        await visit.rollback()
        return await _rules_page(visit, error=_error_text(exc), status_code=422)
    return _see_other("/admin/rules")


async def rule_remove(visit: AdminVisit) -> Response:
    await rules.remove_rule(visit.session, visit.path_id())
    return _see_other("/admin/rules")


# ------------------------------------------------------------------------ announcements

async def _announcements_page(visit: AdminVisit, *, error: str | None = None,
                              status_code: int = 200,
                              form: Mapping[str, Any] | None = None) -> Response:
    rows = await announcements.all_announcements(visit.session)
    return visit.page("admin_announcements.html", {
        "section": "announcements", "error": error, "form": form or {}, "now": utcnow(),
        "state_of": announcements.state_of,
        "text_limit": announcements.MAX_TEXT,
        "views": await announcements.views(visit.session, rows, None)},
        status_code=status_code)


def _form_moment(raw: str, label: str) -> datetime | None:
    """A ``datetime-local`` field (no timezone: taken as UTC, as the form says), or None
    when empty; ValueError names the field when it is not a date and time."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw[:40])
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        raise ValueError(f"{label} is not a date and time.") from None


async def announcement_list(visit: AdminVisit) -> Response:
    return await _announcements_page(visit)


ANNOUNCEMENT_MOMENTS = {"starts_at": "Starts at", "ends_at": "Ends at", "scheduled_at": "Publish at"}


def _announcement_form(visit: AdminVisit) -> dict[str, Any]:
    """The announcement form as sent (to show again if it is refused)."""
    form: dict[str, Any] = {name: visit.field(name) for name in ("text", *ANNOUNCEMENT_MOMENTS)}
    form.update(all_day=visit.checked("all_day"), draft=visit.checked("draft"))
    return form


def _announcement_moments(form: Mapping[str, Any]) -> dict[str, datetime | None]:
    """Its dates and times; ValueError names a field that is not a date and time."""
    return {name: _form_moment(form[name], label) for name, label in ANNOUNCEMENT_MOMENTS.items()}


def _form_value(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}" if moment is not None else ""  # seconds kept


async def announcement_create(visit: AdminVisit) -> Response:
    form = _announcement_form(visit)
    try:
        moments = _announcement_moments(form)
        await announcements.create_announcement(
            visit.session, form["text"], starts_at=moments["starts_at"],
            ends_at=moments["ends_at"], all_day=form["all_day"], publish=not form["draft"],
            scheduled_at=moments["scheduled_at"])
    except ValueError as exc:
        return await _announcements_page(visit, error=str(exc), status_code=422, form=form)
    except ServiceError as exc:
        await visit.rollback()
        return await _announcements_page(visit, error=_error_text(exc), status_code=422, form=form)
    return _see_other("/admin/announcements")


async def _announcement_page(visit: AdminVisit, item: Announcement, *, error: str | None = None,
                             status_code: int = 200,
                             form: Mapping[str, Any] | None = None) -> Response:
    shown = form if form is not None else {
        "text": item.text, "all_day": item.all_day,
        **{name: _form_value(getattr(item, name)) for name in ANNOUNCEMENT_MOMENTS}}
    return visit.page("admin_announcement.html", {
        "section": "announcements", "error": error, "form": shown, "item": item,
        "text_limit": announcements.MAX_TEXT}, status_code=status_code)


async def announcement_edit_form(visit: AdminVisit) -> Response:
    item = await announcements.get_announcement(visit.session, visit.path_id())
    return await _announcement_page(visit, item)


async def announcement_edit(visit: AdminVisit) -> Response:
    item = await announcements.get_announcement(visit.session, visit.path_id())
    form = _announcement_form(visit)
    try:
        moments = _announcement_moments(form)
        await announcements.update_announcement(
            visit.session, item.id, form["text"], starts_at=moments["starts_at"],
            ends_at=moments["ends_at"], all_day=form["all_day"],
            scheduled_at=moments["scheduled_at"])
    except ValueError as exc:
        return await _announcement_page(visit, item, error=str(exc), status_code=422, form=form)
    except ServiceError as exc:
        await visit.rollback()
        await visit.session.refresh(item)
        return await _announcement_page(visit, item, error=_error_text(exc), status_code=422,
                                        form=form)
    return _see_other("/admin/announcements")


async def announcement_publish(visit: AdminVisit) -> Response:
    await announcements.publish_announcement(visit.session, visit.path_id())
    return _see_other("/admin/announcements")


async def announcement_unpublish(visit: AdminVisit) -> Response:
    await announcements.unpublish_announcement(visit.session, visit.path_id())
    return _see_other("/admin/announcements")


async def announcement_remove(visit: AdminVisit) -> Response:
    await announcements.remove_announcement(visit.session, visit.path_id())
    return _see_other("/admin/announcements")


# ------------------------------------------------------------------------------- queue

async def _queue_page(visit: AdminVisit, *, error: str | None = None, notice: str | None = None,
                      status_code: int = 200) -> Response:
    session = visit.session
    return visit.page("admin_queue.html", {
        "section": "queue", "depth": await queue_admin.depth(session),
        "backlog": await queue_admin.backlog(session),
        "failures": await queue_admin.failures(session, limit=LIST_LIMIT),
        "error": error, "notice": notice}, status_code=status_code)


async def queue_page(visit: AdminVisit) -> Response:
    return await _queue_page(visit)


async def queue_change(visit: AdminVisit) -> Response:
    action = visit.field("action")
    session = visit.session
    if action == "retry":
        job_id = parse_id(visit.field("job"))
        if job_id is None:
            return await _queue_page(visit, error="Name the job to retry.", status_code=422)
        requeued = await queue_admin.retry_failed(session, [job_id])
        if not requeued:
            return await _queue_page(visit, error=f"Job {job_id} is not a failed job.",
                                     status_code=422)
        await session.commit()
        notice = f"Job {job_id} requeued."
    elif action == "retry_all":
        requeued = await queue_admin.retry_failed(session)
        await session.commit()
        notice = f"{len(requeued)} failed job(s) requeued."
    elif action == "purge_failed":
        purged = await queue_admin.purge(session, failed=True)
        await session.commit()
        notice = f"{purged} failed job(s) purged."
    else:
        return await _queue_page(visit, error="Unknown action.", status_code=422)
    return await _queue_page(visit, notice=notice)


routes: list[BaseRoute] = [
    Route("/admin", admin_page(dashboard), methods=["GET", "HEAD"]),
    Route("/admin/reports", admin_page(report_list), methods=["GET", "HEAD"]),
    Route("/admin/reports/{id}", admin_page(report_detail), methods=["GET", "HEAD"]),
    Route("/admin/reports/{id}", admin_page(report_change), methods=["POST"]),
    Route("/admin/appeals", admin_page(appeal_list), methods=["GET", "HEAD"]),
    Route("/admin/appeals/{id}/approve", admin_page(appeal_approve), methods=["POST"]),
    Route("/admin/appeals/{id}/reject", admin_page(appeal_reject), methods=["POST"]),
    Route("/admin/accounts", admin_page(account_list), methods=["GET", "HEAD"]),
    Route("/admin/accounts/{id}", admin_page(account_detail), methods=["GET", "HEAD"]),
    Route("/admin/accounts/{id}", admin_page(account_change), methods=["POST"]),
    Route("/admin/domain_blocks", admin_page(domain_block_list), methods=["GET", "HEAD"]),
    Route("/admin/domain_blocks", admin_page(domain_block_create), methods=["POST"]),
    Route("/admin/domain_blocks/export.csv", admin_page(domain_block_export), methods=["GET", "HEAD"]),
    Route("/admin/domain_blocks/import", admin_page(domain_block_import, multipart=True),
          methods=["POST"]),
    Route("/admin/domain_blocks/{id}", admin_page(domain_block_detail), methods=["GET", "HEAD"]),
    Route("/admin/domain_blocks/{id}", admin_page(domain_block_change), methods=["POST"]),
    Route("/admin/domain_allows", admin_page(domain_allow_list), methods=["GET", "HEAD"]),
    Route("/admin/domain_allows", admin_page(domain_allow_create), methods=["POST"]),
    Route("/admin/domain_allows/{id}/remove", admin_page(domain_allow_remove), methods=["POST"]),
    Route("/admin/email_blocks", admin_page(email_block_list), methods=["GET", "HEAD"]),
    Route("/admin/email_blocks", admin_page(email_block_create), methods=["POST"]),
    Route("/admin/email_blocks/{id}/remove", admin_page(email_block_remove), methods=["POST"]),
    Route("/admin/ip_blocks", admin_page(ip_block_list), methods=["GET", "HEAD"]),
    Route("/admin/ip_blocks", admin_page(ip_block_create), methods=["POST"]),
    Route("/admin/ip_blocks/{id}/remove", admin_page(ip_block_remove), methods=["POST"]),
    Route("/admin/invites", admin_page(invite_list), methods=["GET", "HEAD"]),
    Route("/admin/invites", admin_page(invite_create), methods=["POST"]),
    Route("/admin/invites/revoke", admin_page(invite_revoke), methods=["POST"]),
    Route("/admin/rules", admin_page(rule_list), methods=["GET", "HEAD"]),
    Route("/admin/rules", admin_page(rule_create), methods=["POST"]),
    Route("/admin/rules/{id}/remove", admin_page(rule_remove), methods=["POST"]),
    Route("/admin/announcements", admin_page(announcement_list), methods=["GET", "HEAD"]),
    Route("/admin/announcements", admin_page(announcement_create), methods=["POST"]),
    Route("/admin/announcements/{id}/edit", admin_page(announcement_edit_form), methods=["GET", "HEAD"]),
    Route("/admin/announcements/{id}/edit", admin_page(announcement_edit), methods=["POST"]),
    Route("/admin/announcements/{id}/publish", admin_page(announcement_publish),
          methods=["POST"]),
    Route("/admin/announcements/{id}/unpublish", admin_page(announcement_unpublish),
          methods=["POST"]),
    Route("/admin/announcements/{id}/remove", admin_page(announcement_remove), methods=["POST"]),
    Route("/admin/queue", admin_page(queue_page), methods=["GET", "HEAD"]),
    Route("/admin/queue", admin_page(queue_change), methods=["POST"]),
]
