"""The admin web area (``/admin``), driven through the in-process app with cookie sessions.

Given moira (an admin), alice (a user who reports) and bob (reported), I expect every
admin page to render for moira, to be a 403 page for alice and a sign-in redirect when
signed out; every form to need its CSRF token; each form to change the database as the
matching service does (reports, appeals, accounts, domain blocks with CSV import/export, domain
allows, e-mail blocks, invites, rules, announcements, the job queue); bad input to come back as the page
with its error, never a 500 and with nothing stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from server.db import Database
from server.ids import utcnow
from server.models import (
    Account,
    AccountWarning,
    Announcement,
    AnnouncementReaction,
    Appeal,
    CanonicalEmailBlock,
    DomainAllow,
    DomainBlock,
    InstanceRule,
    Invite,
    Job,
    JobState,
    Report,
    ReportNote,
    User,
)
from server.services import announcements, appeals, moderation, reports, rules
from server.services.accounts import create_user
from server.settings import Settings
from tests.server.api.test_admin_accounts import run_purges_at
from tests.server.web.test_studio import _browser
from tests.server.web.works import csrf_of, remote_account

ADMIN_PASSWORD = "the moderator's password"


@pytest.fixture
async def moira(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="moira", email="moira@example.com",
                                 password=ADMIN_PASSWORD, admin=True)


@pytest.fixture
async def admin_web(app: Starlette, client: httpx.AsyncClient,
                    moira: User) -> AsyncIterator[httpx.AsyncClient]:
    async with await _browser(app, client, moira) as browser:
        yield browser


@pytest.fixture
async def user_web(app: Starlette, client: httpx.AsyncClient,
                   alice: User) -> AsyncIterator[httpx.AsyncClient]:
    async with await _browser(app, client, alice) as browser:
        yield browser


@pytest.fixture
async def report(db: Database, settings: Settings, alice: User, bob: User,
                 bob_api: httpx.AsyncClient) -> Report:
    """alice's report about bob and one of his statuses."""
    posted = await bob_api.post("/api/v1/statuses", data={"status": "Buy my pills"})
    assert posted.status_code == 200, posted.text
    async with db.session() as session:
        reporter = await session.get(Account, alice.account_id)
        assert reporter is not None
        return await reports.create_report(session, settings, reporter, bob.account_id,
                                           status_ids=[int(posted.json()["id"])],
                                           comment="Spam in my mentions", category="spam")


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def fetch(db: Database, model: Any, row_id: int) -> Any:
    async with db.session() as session:
        return await session.get(model, row_id)


async def submit(browser: httpx.AsyncClient, url: str, data: dict[str, str] | None = None,
                 **extra: Any) -> httpx.Response:
    """POST a form as the page would (with the browser's CSRF token)."""
    token = csrf_of(await browser.get("/admin"))
    return await browser.post(url, data={"authenticity_token": token, **(data or {})}, **extra)


class FormNesting(HTMLParser):
    """Fails on a form inside a form (a browser would drop the inner one)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            assert self.depth == 0, "a form inside a form"
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.depth -= 1


def refused_with(response: httpx.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    assert 'role="alert"' in response.text
    assert text in response.text, response.text


# ------------------------------------------------------------------------ who gets in

GET_PAGES = ["/admin", "/admin/reports", "/admin/reports?resolved=1", "/admin/reports/{report}",
             "/admin/appeals", "/admin/accounts", "/admin/accounts?origin=remote&state=suspended&username=b",
             "/admin/accounts/{bob}", "/admin/domain_blocks", "/admin/domain_blocks/{block}",
             "/admin/domain_blocks/export.csv", "/admin/domain_allows", "/admin/email_blocks",
             "/admin/invites", "/admin/rules", "/admin/announcements",
             "/admin/announcements/{announcement}/edit", "/admin/queue"]
POSTS = ["/admin/reports/{report}", "/admin/appeals/{appeal}/approve",
         "/admin/appeals/{appeal}/reject", "/admin/accounts/{bob}", "/admin/domain_blocks",
         "/admin/domain_blocks/import", "/admin/domain_blocks/{block}", "/admin/domain_allows",
         "/admin/domain_allows/{allow}/remove", "/admin/email_blocks",
         "/admin/email_blocks/{email_block}/remove", "/admin/invites", "/admin/invites/revoke",
         "/admin/rules", "/admin/rules/{rule}/remove", "/admin/announcements",
         "/admin/announcements/{announcement}/edit", "/admin/announcements/{announcement}/publish",
         "/admin/announcements/{announcement}/unpublish",
         "/admin/announcements/{announcement}/remove", "/admin/queue"]


@pytest.fixture
async def ids(db: Database, settings: Settings, report: Report, bob: User) -> dict[str, int]:
    """A row for every detail page (and bob's pending appeal of a warning)."""
    block, allow = DomainBlock(domain="spam.example"), DomainAllow(domain="friends.example")
    email_block = CanonicalEmailBlock(canonical_email_hash="a" * 64)
    rule = InstanceRule(text="Be kind", position=1)
    announcement = Announcement(text="Maintenance tonight", published=True,
                                published_at=utcnow())
    async with db.session() as session:
        session.add_all([block, allow, email_block, rule, announcement])
        await session.commit()
        warning = await moderation.take_action(session, settings, moderator=None,
                                               account_id=bob.account_id, action="none",
                                               text="Mind the mentions")
        bobs = await session.get(Account, bob.account_id)
        assert bobs is not None
        appeal = await appeals.file_appeal(session, bobs, warning.id, "I was provoked")
    return {"report": report.id, "bob": bob.account_id, "block": block.id, "allow": allow.id,
            "email_block": email_block.id, "rule": rule.id, "announcement": announcement.id,
            "appeal": appeal.id}


async def appeal_pending(db: Database, appeal_id: int) -> bool:
    found = await fetch(db, Appeal, appeal_id)
    return found is not None and found.state == "pending"


async def announcement_untouched(db: Database, announcement_id: int) -> bool:
    """The ``ids`` fixture's announcement is the only one, still there and published."""
    found = await fetch(db, Announcement, announcement_id)
    return await count(db, Announcement) == 1 and found is not None and found.published


async def test_every_page_renders_for_an_admin(admin_web: httpx.AsyncClient,
                                               ids: dict[str, int]) -> None:
    for page in GET_PAGES:
        response = await admin_web.get(page.format(**ids))
        assert response.status_code == 200, (page, response.text)
        assert response.headers["cache-control"] == "private, no-store"
        if not page.endswith(".csv"):
            assert 'aria-label="Administration"' in response.text
            nesting = FormNesting()
            nesting.feed(response.text)
            assert nesting.depth == 0, page
    detail = await admin_web.get(f"/admin/reports/{ids['report']}")
    assert "Spam in my mentions" in detail.text and "Buy my pills" in detail.text
    assert "@alice" in detail.text and "@bob" in detail.text


async def test_a_normal_user_gets_403_on_every_page_and_form(
        db: Database, user_web: httpx.AsyncClient, ids: dict[str, int]) -> None:
    for page in GET_PAGES:
        response = await user_web.get(page.format(**ids))
        assert response.status_code == 403, page
        assert "Domain blocks" not in response.text  # no admin navigation
    token = csrf_of(await user_web.get("/studio"))
    for url in POSTS:
        response = await user_web.post(url.format(**ids), data={
            "authenticity_token": token, "action": "resolve", "domain": "evil.example",
            "text": "A rule", "email": "x@example.com"})
        assert response.status_code == 403, url
    assert await count(db, DomainBlock) == 1 and await count(db, InstanceRule) == 1
    assert await announcement_untouched(db, ids["announcement"])
    assert await count(db, Report, Report.action_taken_at.is_not(None)) == 0
    assert await appeal_pending(db, ids["appeal"])


async def test_a_suspended_admin_is_shut_out_of_every_page_and_form(
        db: Database, admin_web: httpx.AsyncClient, moira: User, ids: dict[str, int]) -> None:
    # Suspended by another admin, or their own deletion waiting: the Standing page only.
    token = csrf_of(await admin_web.get("/studio/standing"))
    async with db.session() as session:
        await moderation.take_action(session, Settings(), moderator=None,
                                     account_id=moira.account_id, action="suspend", text="")
    for page in GET_PAGES:
        response = await admin_web.get(page.format(**ids))
        assert response.status_code == 403, page
        assert "Domain blocks" not in response.text
    unsuspend = await admin_web.post(f"/admin/accounts/{moira.account_id}",
                                     data={"authenticity_token": token, "action": "unsuspend"})
    assert unsuspend.status_code == 403 and "suspended" in unsuspend.text
    assert (await fetch(db, Account, moira.account_id)).suspended_at is not None
    assert (await admin_web.get("/studio/standing")).status_code == 200


async def test_signed_out_visitors_are_sent_to_sign_in(db: Database, client: httpx.AsyncClient,
                                                       ids: dict[str, int]) -> None:
    for page in GET_PAGES:
        response = await client.get(page.format(**ids))
        assert response.status_code == 303, page
        assert response.headers["location"].startswith("/auth/sign_in?next=/admin")
    for url in POSTS:
        response = await client.post(url.format(**ids), data={"domain": "evil.example"})
        assert response.status_code == 303, url
    assert await count(db, DomainBlock) == 1
    assert await announcement_untouched(db, ids["announcement"])
    assert await appeal_pending(db, ids["appeal"])


async def test_every_form_needs_its_csrf_token(db: Database, admin_web: httpx.AsyncClient,
                                               ids: dict[str, int]) -> None:
    for url in POSTS:
        for token in (None, "forged"):
            data = {"action": "resolve", "domain": "evil.example", "text": "A rule"}
            if token:
                data["authenticity_token"] = token
            response = await admin_web.post(url.format(**ids), data=data)
            assert response.status_code == 403, url
            assert "Form expired" in response.text
    assert await count(db, DomainBlock) == 1 and await count(db, InstanceRule) == 1
    assert await announcement_untouched(db, ids["announcement"])
    assert await count(db, Report, Report.action_taken_at.is_not(None)) == 0
    assert await appeal_pending(db, ids["appeal"])


async def test_unreadable_or_oversized_forms_are_refused(db: Database,
                                                         admin_web: httpx.AsyncClient) -> None:
    token = csrf_of(await admin_web.get("/admin"))
    huge = await admin_web.post("/admin/rules", data={"authenticity_token": token,
                                                      "text": "x" * (2 * 1024 * 1024)})
    assert huge.status_code == 413
    broken = await admin_web.post(
        "/admin/domain_blocks/import", content=b"--b\r\nnot a part",
        headers={"content-type": "multipart/form-data; boundary=b"})
    assert broken.status_code == 400
    two_files = await admin_web.post(
        "/admin/domain_blocks/import", data={"authenticity_token": token},
        files=[("file", ("a.csv", b"a.example", "text/csv")),
               ("file", ("b.csv", b"b.example", "text/csv"))])
    assert two_files.status_code == 400
    assert await count(db, InstanceRule) == 0 and await count(db, DomainBlock) == 0


async def test_unknown_ids_are_not_found(admin_web: httpx.AsyncClient) -> None:
    for page in ("/admin/reports/123", "/admin/accounts/123", "/admin/domain_blocks/123",
                 "/admin/reports/nope", "/admin/accounts/99999999999999999999999"):
        assert (await admin_web.get(page)).status_code == 404, page
    for url in ("/admin/reports/123", "/admin/accounts/123", "/admin/domain_blocks/123",
                "/admin/domain_allows/123/remove", "/admin/rules/123/remove",
                "/admin/email_blocks/123/remove", "/admin/announcements/123/publish",
                "/admin/announcements/123/unpublish", "/admin/announcements/123/remove",
                "/admin/announcements/nope/remove", "/admin/announcements/123/edit",
                "/admin/appeals/123/approve",
                "/admin/appeals/123/reject", "/admin/appeals/nope/approve"):
        response = await submit(admin_web, url, {"action": "resolve"})
        assert response.status_code == 404, url


async def test_the_studio_links_admins_to_the_admin_area(admin_web: httpx.AsyncClient,
                                                         user_web: httpx.AsyncClient) -> None:
    assert 'href="/admin"' in (await admin_web.get("/studio")).text
    assert 'href="/admin"' not in (await user_web.get("/studio")).text


# ----------------------------------------------------------------------------- dashboard

async def test_the_dashboard_counts_pending_sign_ups_and_open_reports(
        db: Database, settings: Settings, admin_web: httpx.AsyncClient, report: Report) -> None:
    async with db.session() as session:
        await create_user(session, settings, username="fern", email="fern@example.com",
                          password="a fine password", approved=False, reason="I paint herons")
    page = await admin_web.get("/admin")
    assert '<strong id="pending-count">1</strong>' in page.text
    assert '<strong id="open-reports-count">1</strong>' in page.text
    for check in ("database", "migrations", "queue", "storage", "protection"):
        assert f"<td>{check}</td>" in page.text


# ------------------------------------------------------------------------------ reports

async def test_a_report_is_noted_assigned_resolved_and_reopened(
        db: Database, admin_web: httpx.AsyncClient, moira: User, report: Report) -> None:
    url = f"/admin/reports/{report.id}"
    assert (await submit(admin_web, url, {"action": "note", "content": "Looking"})).status_code == 303
    assert "Looking" in (await admin_web.get(url)).text
    assert await count(db, ReportNote, ReportNote.report_id == report.id) == 1

    await submit(admin_web, url, {"action": "assign"})
    assert (await fetch(db, Report, report.id)).assigned_account_id == moira.account_id
    await submit(admin_web, url, {"action": "unassign"})
    assert (await fetch(db, Report, report.id)).assigned_account_id is None

    await submit(admin_web, url, {"action": "resolve"})
    resolved = await fetch(db, Report, report.id)
    assert resolved.action_taken_at is not None
    assert resolved.action_taken_by_account_id == moira.account_id
    assert "#" + str(report.id) in (await admin_web.get("/admin/reports?resolved=1")).text
    assert "#" + str(report.id) not in (await admin_web.get("/admin/reports")).text
    await submit(admin_web, url, {"action": "reopen"})
    assert (await fetch(db, Report, report.id)).action_taken_at is None


async def test_an_action_taken_from_a_report_resolves_it(
        db: Database, admin_web: httpx.AsyncClient, bob: User, report: Report) -> None:
    response = await submit(admin_web, f"/admin/reports/{report.id}",
                            {"action": "act", "type": "silence", "text": "No spam here"})
    assert response.status_code == 303
    assert (await fetch(db, Account, bob.account_id)).silenced_at is not None
    assert (await fetch(db, Report, report.id)).action_taken_at is not None
    async with db.session() as session:
        warning = await session.scalar(select(AccountWarning))
    assert warning is not None
    assert (warning.action, warning.text, warning.report_id) == ("silence", "No spam here", report.id)


async def test_bad_report_input_comes_back_on_the_page(
        db: Database, admin_web: httpx.AsyncClient, bob: User, report: Report) -> None:
    url = f"/admin/reports/{report.id}"
    refused_with(await submit(admin_web, url, {"action": "note", "content": "  "}), 422, "blank")
    refused_with(await submit(admin_web, url, {"action": "note", "content": "x" * 501}), 422, "too long")
    refused_with(await submit(admin_web, url, {"action": "act", "type": "explode"}), 422,
                 "not included in the list")
    refused_with(await submit(admin_web, url, {"action": "act", "type": "none", "text": "x" * 5001}),
                 422, "too long")
    refused_with(await submit(admin_web, url, {"action": "dance"}), 422, "Unknown action")
    assert await count(db, ReportNote) == 0 and await count(db, AccountWarning) == 0
    assert (await fetch(db, Report, report.id)).action_taken_at is None


# ------------------------------------------------------------------------------ appeals

async def appealed(db: Database, settings: Settings, moira: User, bob: User, action: str,
                   text: str) -> tuple[AccountWarning, Appeal]:
    """moira takes ``action`` on bob, who appeals it with ``text``."""
    async with db.session() as session:
        moderator = await session.get(Account, moira.account_id)
        warning = await moderation.take_action(session, settings, moderator=moderator,
                                               account_id=bob.account_id, action=action,
                                               text="No spam here")
        target = await session.get(Account, bob.account_id)
        assert target is not None
        return warning, await appeals.file_appeal(session, target, warning.id, text)


async def test_an_approved_appeal_overrules_the_decision(
        db: Database, settings: Settings, admin_web: httpx.AsyncClient, moira: User,
        bob: User) -> None:
    warning, appeal = await appealed(db, settings, moira, bob, "silence", "It was <i>one</i> post")
    assert (await fetch(db, Account, bob.account_id)).silenced_at is not None
    page = (await admin_web.get("/admin")).text
    assert '<a href="/admin/appeals">Appeals</a>' in page
    page = (await admin_web.get("/admin/appeals")).text
    assert '<a href="/admin/appeals" aria-current="page">Appeals</a>' in page
    assert f'<a href="/admin/accounts/{bob.account_id}">@bob</a>' in page
    assert "Limit (silence)" in page and "No spam here" in page
    assert "It was &lt;i&gt;one&lt;/i&gt; post" in page  # escaped
    assert f'action="/admin/appeals/{appeal.id}/approve"' in page
    assert f'action="/admin/appeals/{appeal.id}/reject"' in page
    account_page = (await admin_web.get(f"/admin/accounts/{bob.account_id}")).text
    assert "Appeal pending" in account_page and "It was &lt;i&gt;one&lt;/i&gt; post" in account_page

    approved = await submit(admin_web, f"/admin/appeals/{appeal.id}/approve")
    assert approved.status_code == 303 and approved.headers["location"] == "/admin/appeals"
    assert (await fetch(db, Account, bob.account_id)).silenced_at is None
    assert (await fetch(db, AccountWarning, warning.id)).overruled_at is not None
    decided = await fetch(db, Appeal, appeal.id)
    assert decided.state == "approved" and decided.approved_by_account_id == moira.account_id
    page = (await admin_web.get("/admin/appeals")).text
    assert f'action="/admin/appeals/{appeal.id}/approve"' not in page
    assert "approved " in page and '<a href="/admin/accounts/' in page and "@moira" in page
    assert "Appeal approved — overruled" in (
        await admin_web.get(f"/admin/accounts/{bob.account_id}")).text

    for again in ("approve", "reject"):  # decided once and for all
        refused_with(await submit(admin_web, f"/admin/appeals/{appeal.id}/{again}"), 422,
                     "This appeal has already been decided")
    assert (await fetch(db, Appeal, appeal.id)).rejected_at is None


async def test_a_rejected_appeal_lets_the_decision_stand(
        db: Database, settings: Settings, admin_web: httpx.AsyncClient, moira: User,
        bob: User) -> None:
    warning, appeal = await appealed(db, settings, moira, bob, "silence", "Please")
    rejected = await submit(admin_web, f"/admin/appeals/{appeal.id}/reject")
    assert rejected.status_code == 303
    assert (await fetch(db, Account, bob.account_id)).silenced_at is not None
    assert (await fetch(db, AccountWarning, warning.id)).overruled_at is None
    decided = await fetch(db, Appeal, appeal.id)
    assert decided.state == "rejected" and decided.rejected_by_account_id == moira.account_id
    assert "Appeal rejected" in (await admin_web.get(f"/admin/accounts/{bob.account_id}")).text
    refused_with(await submit(admin_web, f"/admin/appeals/{appeal.id}/approve"), 422,
                 "already been decided")
    assert (await fetch(db, Account, bob.account_id)).silenced_at is not None


# ----------------------------------------------------------------------------- accounts

async def test_accounts_are_listed_by_origin_standing_and_name(
        db: Database, admin_web: httpx.AsyncClient, alice: User, bob: User) -> None:
    await remote_account(db, "rita", "remote.example")
    everyone = (await admin_web.get("/admin/accounts")).text
    assert "@alice" in everyone and "@rita@remote.example" in everyone
    remote = (await admin_web.get("/admin/accounts", params={"origin": "remote"})).text
    assert "@rita@remote.example" in remote and "@alice" not in remote
    named = (await admin_web.get("/admin/accounts", params={"username": "BO"})).text
    assert "@bob" in named and "@alice" not in named
    async with db.session() as session:
        account = await session.get(Account, bob.account_id)
        assert account is not None
        account.suspended_at = utcnow()
        await session.commit()
    suspended = (await admin_web.get("/admin/accounts", params={"state": "suspended"})).text
    assert "@bob" in suspended and "@alice" not in suspended
    async with db.session() as session:
        shown = await session.get(Account, alice.account_id)
        assert shown is not None
        shown.display_name = "<script>alert(1)</script>"
        await session.commit()
    escaped = (await admin_web.get("/admin/accounts")).text
    assert "<script>alert" not in escaped and "&lt;script&gt;alert(1)" in escaped
    odd = await admin_web.get("/admin/accounts", params={"state": "<x>", "origin": "mars",
                                                          "before": "nope"})
    assert odd.status_code == 200 and "@alice" in odd.text


async def test_account_actions_and_their_lifting(db: Database, admin_web: httpx.AsyncClient,
                                                 bob: User) -> None:
    url = f"/admin/accounts/{bob.account_id}"
    for action in ("none", "sensitive", "disable", "silence"):
        response = await submit(admin_web, url, {"action": action, "text": f"Because {action}"})
        assert response.status_code == 303, response.text
    page = (await admin_web.get(url)).text
    assert "Because silence" in page and "Because none" in page
    account = await fetch(db, Account, bob.account_id)
    assert account.silenced_at is not None and account.sensitized_at is not None
    assert (await fetch(db, User, bob.id)).disabled
    assert await count(db, AccountWarning, AccountWarning.target_account_id == bob.account_id) == 4
    for lift in ("unsilence", "unsensitive", "enable"):
        assert (await submit(admin_web, url, {"action": lift})).status_code == 303
    account = await fetch(db, Account, bob.account_id)
    assert account.silenced_at is None and account.sensitized_at is None
    assert not (await fetch(db, User, bob.id)).disabled
    refused_with(await submit(admin_web, url, {"action": "unsilence"}), 422, "does not apply")
    refused_with(await submit(admin_web, url, {"action": "delete"}), 422, "does not apply")


async def test_suspend_then_delete_the_data(app: Starlette, db: Database,
                                            admin_web: httpx.AsyncClient, bob: User) -> None:
    url = f"/admin/accounts/{bob.account_id}"
    assert (await submit(admin_web, url, {"action": "suspend", "text": "Spam"})).status_code == 303
    assert (await fetch(db, Account, bob.account_id)).suspended_at is not None
    assert "Delete its data" in (await admin_web.get(url)).text
    assert (await submit(admin_web, url, {"action": "delete"})).status_code == 303
    await run_purges_at(app, utcnow() + timedelta(seconds=1))
    assert (await fetch(db, Account, bob.account_id)).deleted_at is not None
    assert await count(db, User, User.id == bob.id) == 0


async def test_an_admin_cannot_suspend_themselves(db: Database, admin_web: httpx.AsyncClient,
                                                  moira: User) -> None:
    refused_with(await submit(admin_web, f"/admin/accounts/{moira.account_id}",
                              {"action": "suspend"}), 422, "yourself")
    assert (await fetch(db, Account, moira.account_id)).suspended_at is None


async def test_bad_account_input_comes_back_on_the_page(db: Database, admin_web: httpx.AsyncClient,
                                                        bob: User) -> None:
    url = f"/admin/accounts/{bob.account_id}"
    refused_with(await submit(admin_web, url, {"action": "explode"}), 422, "Unknown action")
    refused_with(await submit(admin_web, url, {"action": "silence", "text": "x" * 5001}), 422,
                 "too long")
    refused_with(await submit(admin_web, url, {"action": "approve"}), 422, "does not apply")
    assert (await fetch(db, Account, bob.account_id)).silenced_at is None
    assert await count(db, AccountWarning) == 0


async def test_sign_ups_are_approved_or_rejected_with_their_reason_shown(
        db: Database, settings: Settings, admin_web: httpx.AsyncClient) -> None:
    async with db.session() as session:
        fern = await create_user(session, settings, username="fern", email="fern@example.com",
                                 password="a fine password", approved=False, reason="I paint herons")
        gus = await create_user(session, settings, username="gus", email="gus@example.com",
                                password="a fine password", approved=False, reason="Buy pills")
    pending = (await admin_web.get("/admin/accounts", params={"state": "pending"})).text
    assert "@fern" in pending and "@gus" in pending
    assert "I paint herons" in (await admin_web.get(f"/admin/accounts/{fern.account_id}")).text
    assert (await submit(admin_web, f"/admin/accounts/{fern.account_id}",
                         {"action": "approve"})).status_code == 303
    assert (await fetch(db, User, fern.id)).approved
    rejected = await submit(admin_web, f"/admin/accounts/{gus.account_id}", {"action": "reject"})
    assert rejected.status_code == 303
    assert await count(db, User, User.id == gus.id) == 0
    assert await count(db, Account, Account.id == gus.account_id) == 0


# ------------------------------------------------------------------------ domain blocks

async def test_domain_blocks_are_added_edited_and_removed(db: Database,
                                                          admin_web: httpx.AsyncClient) -> None:
    response = await submit(admin_web, "/admin/domain_blocks", {
        "domain": "Spam.Example", "severity": "silence", "reject_media": "1",
        "public_comment": "Spam", "private_comment": "Seen in reports", "obfuscate": "1"})
    assert response.status_code == 303, response.text
    async with db.session() as session:
        block = await session.scalar(select(DomainBlock))
    assert block is not None
    assert (block.domain, block.severity, block.reject_media, block.reject_reports,
            block.public_comment, block.private_comment, block.obfuscate) == (
        "spam.example", "silence", True, False, "Spam", "Seen in reports", True)
    assert "spam.example" in (await admin_web.get("/admin/domain_blocks")).text

    url = f"/admin/domain_blocks/{block.id}"
    assert 'value="silence" selected' in (await admin_web.get(url)).text
    assert (await submit(admin_web, url, {"severity": "suspend", "reject_reports": "1",
                                          "public_comment": "", "private_comment": "x"})
            ).status_code == 303
    changed = await fetch(db, DomainBlock, block.id)
    assert (changed.severity, changed.reject_media, changed.reject_reports, changed.obfuscate,
            changed.public_comment) == ("suspend", False, True, False, "")
    refused_with(await submit(admin_web, url, {"severity": "nuke"}), 422, "Severity")
    assert (await fetch(db, DomainBlock, block.id)).severity == "suspend"
    assert (await submit(admin_web, url, {"action": "remove"})).status_code == 303
    assert await count(db, DomainBlock) == 0


async def test_bad_domain_blocks_come_back_on_the_form(db: Database, settings: Settings,
                                                       admin_web: httpx.AsyncClient) -> None:
    for data, text in (({"domain": "not a domain", "severity": "suspend"}, "omain"),
                       ({"domain": "ok.example", "severity": "nuke"}, "Severity"),
                       ({"domain": settings.domain, "severity": "suspend"}, "own domain"),
                       ({"domain": "ok.example", "severity": "silence",
                         "public_comment": "x" * 5001}, "too long")):
        response = await submit(admin_web, "/admin/domain_blocks", data)
        assert 400 <= response.status_code < 500, response.text
        assert 'role="alert"' in response.text and text in response.text, (data, response.text)
    assert 'value="ok.example"' in response.text  # what was typed is kept
    assert await count(db, DomainBlock) == 0
    await submit(admin_web, "/admin/domain_blocks", {"domain": "ok.example", "severity": "silence"})
    again = await submit(admin_web, "/admin/domain_blocks", {"domain": "ok.example",
                                                             "severity": "suspend"})
    assert 400 <= again.status_code < 500 and 'role="alert"' in again.text
    assert await count(db, DomainBlock) == 1


async def test_domain_blocks_are_imported_and_exported_as_mastodon_csv(
        db: Database, settings: Settings, admin_web: httpx.AsyncClient) -> None:
    csv = ("#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
           "spam.example,suspend,false,true,Spam,false\n"
           "loud.example,silence,true,false,,true\n"
           f"{settings.domain},suspend,false,false,,false\n")
    response = await submit(admin_web, "/admin/domain_blocks/import",
                            files={"file": ("blocks.csv", csv.encode(), "text/csv")})
    assert response.status_code == 200, response.text
    assert "2 new" in response.text and settings.domain in response.text
    exported = await admin_web.get("/admin/domain_blocks/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    lines = exported.text.splitlines()
    assert lines[0] == "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate"
    assert sorted(lines[1:]) == ["loud.example,silence,true,false,,true",
                                 "spam.example,suspend,false,true,Spam,false"]

    bad = "#domain,#severity\nfine.example,suspend\nbad.example,nuke\n"
    refused_with(await submit(admin_web, "/admin/domain_blocks/import",
                              files={"file": ("b.csv", bad.encode(), "text/csv")}), 422, "line 3")
    refused_with(await submit(admin_web, "/admin/domain_blocks/import",
                              files={"file": ("b.csv", b"\xff\xfe\x00bad", "text/csv")}), 422,
                 "UTF-8")
    refused_with(await submit(admin_web, "/admin/domain_blocks/import",
                              {"file": "not a file"}), 422, "Choose a CSV")
    assert await count(db, DomainBlock) == 2


# ---------------------------------------------------------------- allows, e-mail blocks

async def test_domain_allows_are_added_and_removed(db: Database, admin_web: httpx.AsyncClient) -> None:
    assert (await submit(admin_web, "/admin/domain_allows", {"domain": "Friends.Example"})
            ).status_code == 303
    async with db.session() as session:
        allow = await session.scalar(select(DomainAllow))
    assert allow is not None and allow.domain == "friends.example"
    assert "friends.example" in (await admin_web.get("/admin/domain_allows")).text
    refused_with(await submit(admin_web, "/admin/domain_allows", {"domain": "not a domain"}),
                 422, "omain")
    assert await count(db, DomainAllow) == 1
    assert (await submit(admin_web, f"/admin/domain_allows/{allow.id}/remove")).status_code == 303
    assert await count(db, DomainAllow) == 0


async def test_email_blocks_are_added_and_removed(db: Database, admin_web: httpx.AsyncClient) -> None:
    assert (await submit(admin_web, "/admin/email_blocks", {"email": "Spam.Mer+x@Example.com"})
            ).status_code == 303
    assert await count(db, CanonicalEmailBlock) == 1
    refused_with(await submit(admin_web, "/admin/email_blocks", {"email": "spammer@example.com"}),
                 422, "already been taken")
    refused_with(await submit(admin_web, "/admin/email_blocks", {"email": "nope"}), 422, "invalid")
    refused_with(await submit(admin_web, "/admin/email_blocks", {"email": ""}), 422, "blank")
    assert await count(db, CanonicalEmailBlock) == 1
    async with db.session() as session:
        block = await session.scalar(select(CanonicalEmailBlock))
    assert block is not None
    assert (await submit(admin_web, f"/admin/email_blocks/{block.id}/remove")).status_code == 303
    assert await count(db, CanonicalEmailBlock) == 0


# ------------------------------------------------------------------------ invites, rules

async def test_invites_are_created_listed_with_links_and_revoked(
        db: Database, settings: Settings, admin_web: httpx.AsyncClient, moira: User) -> None:
    before = utcnow()
    assert (await submit(admin_web, "/admin/invites", {"max_uses": "5", "expires_in": "86400"})
            ).status_code == 303
    async with db.session() as session:
        invite = await session.scalar(select(Invite))
    assert invite is not None
    assert (invite.max_uses, invite.created_by_id) == (5, moira.id)
    assert invite.expires_at is not None
    expires = invite.expires_at.replace(tzinfo=before.tzinfo) if invite.expires_at.tzinfo is None \
        else invite.expires_at
    assert timedelta(hours=23) < expires - before <= timedelta(days=1, minutes=1)
    page = (await admin_web.get("/admin/invites")).text
    assert f"https://{settings.domain}/invite/{invite.code}" in page and "usable" in page
    for data, text in (({"max_uses": "abc"}, "whole numbers"), ({"max_uses": "0"}, "Max uses"),
                       ({"expires_in": "-5"}, "whole numbers"),
                       ({"max_uses": "9" * 40}, "Max uses")):
        refused_with(await submit(admin_web, "/admin/invites", data), 422, text)
    assert await count(db, Invite) == 1
    assert (await submit(admin_web, "/admin/invites/revoke", {"code": invite.code})).status_code == 303
    assert (await fetch(db, Invite, invite.id)).revoked_at is not None
    assert (await submit(admin_web, "/admin/invites/revoke", {"code": "nope"})).status_code == 404


async def test_rules_are_added_and_removed(db: Database, admin_web: httpx.AsyncClient) -> None:
    assert (await submit(admin_web, "/admin/rules", {"text": "Be kind", "hint": "Really"})
            ).status_code == 303
    assert "Be kind" in (await admin_web.get("/admin/rules")).text
    refused_with(await submit(admin_web, "/admin/rules", {"text": "   "}), 422, "blank")
    refused_with(await submit(admin_web, "/admin/rules", {"text": "x" * 5000}), 422, "too long")
    assert await count(db, InstanceRule) == 1
    async with db.session() as session:
        rule = await session.scalar(select(InstanceRule))
    assert rule is not None
    assert (await submit(admin_web, f"/admin/rules/{rule.id}/remove")).status_code == 303
    assert await count(db, InstanceRule) == 0


# ------------------------------------------------------------------------ announcements

async def test_announcements_are_added_published_unpublished_and_removed(
        db: Database, admin_web: httpx.AsyncClient, alice: User) -> None:
    assert (await admin_web.get("/admin")).text.count('href="/admin/announcements"') == 1
    assert "No announcements yet" in (await admin_web.get("/admin/announcements")).text
    posted = await submit(admin_web, "/admin/announcements", {
        "text": "  Meet-up <b>Saturday</b>  ", "starts_at": "2099-06-01T18:00",
        "ends_at": "2099-06-01T20:30:00", "all_day": "1"})
    assert posted.status_code == 303 and posted.headers["location"] == "/admin/announcements"
    async with db.session() as session:
        meetup = await session.scalar(select(Announcement))
    assert meetup is not None
    assert (meetup.text, meetup.published, meetup.all_day) == ("Meet-up <b>Saturday</b>", True, True)
    assert meetup.published_at is not None
    assert meetup.starts_at == datetime(2099, 6, 1, 18, 0, tzinfo=UTC)  # datetime-local: UTC
    assert meetup.ends_at == datetime(2099, 6, 1, 20, 30, tzinfo=UTC)
    assert (await submit(admin_web, "/admin/announcements", {
        "text": "Maintenance tonight", "draft": "1"})).status_code == 303
    async with db.session() as session:
        draft = await session.scalar(select(Announcement).where(Announcement.id != meetup.id))
        session.add(AnnouncementReaction(announcement_id=meetup.id, account_id=alice.account_id,
                                         name="🎨", created_at=utcnow()))
        await session.commit()
    assert draft is not None and not draft.published and draft.published_at is None

    page = (await admin_web.get("/admin/announcements")).text
    assert "Meet-up &lt;b&gt;Saturday&lt;/b&gt;" in page and "<b>Saturday" not in page
    assert "2099-06-01 – 2099-06-01 (all day)" in page and "🎨 1" in page
    assert page.index("Maintenance tonight") < page.index("Meet-up")  # newest first
    assert f'action="/admin/announcements/{draft.id}/publish"' in page
    assert f'action="/admin/announcements/{meetup.id}/unpublish"' in page
    assert f'action="/admin/announcements/{meetup.id}/publish"' not in page
    assert '<a href="/admin/announcements" aria-current="page">' in page

    assert (await submit(admin_web, f"/admin/announcements/{draft.id}/publish")).status_code == 303
    published = await fetch(db, Announcement, draft.id)
    assert published.published and published.published_at is not None
    assert (await submit(admin_web, f"/admin/announcements/{meetup.id}/unpublish")
            ).status_code == 303
    assert not (await fetch(db, Announcement, meetup.id)).published
    assert (await submit(admin_web, f"/admin/announcements/{meetup.id}/remove")).status_code == 303
    assert await fetch(db, Announcement, meetup.id) is None
    assert await count(db, AnnouncementReaction) == 0
    assert await count(db, Announcement) == 1


async def test_bad_announcements_come_back_on_the_form(db: Database,
                                                      admin_web: httpx.AsyncClient) -> None:
    for data, text in (
            ({"text": "   "}, "blank"),
            ({"text": "x" * 20_000}, "too long"),
            ({"text": "Soon", "starts_at": "2099-06-02T10:00", "ends_at": "2099-06-01T10:00"},
             "Ends at must be after starts at"),
            ({"text": "Soon", "starts_at": "2099-06-01T10:00", "ends_at": "2099-06-01T10:00"},
             "Ends at must be after starts at"),
            ({"text": "Soon", "starts_at": "2099-06-01T10:00"}, "must be given together"),
            ({"text": "Soon", "starts_at": "tomorrow", "ends_at": "2099-06-01T10:00"},
             "Starts at is not a date and time"),
            ({"text": "Soon", "starts_at": "2099-06-01T10:00", "ends_at": "2099-06-31T10:00"},
             "Ends at is not a date and time"),
            ({"text": "Soon", "starts_at": "0001-01-01T00:00+01:00", "ends_at": "2099-06-01T10:00"},
             "Starts at is not a date and time"),  # before year 1 in UTC: no 500
            ({"text": "Soon", "starts_at": "2099-06-01T10:00", "ends_at": "9999-12-31T10:00"},
             "Dates must be between the years 1900 and 9000")):
        response = await submit(admin_web, "/admin/announcements", {**data, "draft": "1"})
        refused_with(response, 422, text)
        assert 'name="draft" value="1" checked' in response.text  # the form keeps its input
        if data["text"].strip() and len(data["text"]) < 100:
            assert f">{data['text']}</textarea>" in response.text
    assert await count(db, Announcement) == 0


async def test_announcements_are_scheduled_and_edited(db: Database, admin_web: httpx.AsyncClient) -> None:
    posted = await submit(admin_web, "/admin/announcements", {
        "text": "Server move", "scheduled_at": "2099-05-01T07:00"})
    assert posted.status_code == 303
    async with db.session() as session:
        move = await session.scalar(select(Announcement))
    assert move is not None and not move.published
    assert move.scheduled_at == datetime(2099, 5, 1, 7, 0, tzinfo=UTC)
    page = (await admin_web.get("/admin/announcements")).text
    assert "scheduled for 2099-05-01 07:00" in page
    assert f'href="/admin/announcements/{move.id}/edit"' in page

    form = (await admin_web.get(f"/admin/announcements/{move.id}/edit")).text
    assert ">Server move</textarea>" in form and 'value="2099-05-01T07:00:00"' in form
    edited = await submit(admin_web, f"/admin/announcements/{move.id}/edit", {
        "text": "Server move, Monday", "starts_at": "2099-05-02T00:00",
        "ends_at": "2099-05-02T00:00", "all_day": "1", "scheduled_at": ""})
    assert edited.status_code == 303 and edited.headers["location"] == "/admin/announcements"
    stored = await fetch(db, Announcement, move.id)
    assert (stored.text, stored.all_day, stored.scheduled_at) == ("Server move, Monday", True, None)
    assert stored.starts_at == datetime(2099, 5, 2, tzinfo=UTC) and not stored.published

    assert (await submit(admin_web, f"/admin/announcements/{move.id}/publish")).status_code == 303
    form = (await admin_web.get(f"/admin/announcements/{move.id}/edit")).text
    assert 'name="scheduled_at"' not in form  # a published one is not scheduled
    for data, text in (({"text": " "}, "blank"),
                       ({"text": "Later", "scheduled_at": "2099-05-01T07:00"},
                        "Only a draft can be scheduled"),
                       ({"text": "Later", "starts_at": "soon"}, "Starts at is not a date and time")):
        response = await submit(admin_web, f"/admin/announcements/{move.id}/edit", data)
        refused_with(response, 422, text)
    assert (await fetch(db, Announcement, move.id)).text == "Server move, Monday"
    past = await submit(admin_web, "/admin/announcements",
                        {"text": "Past", "scheduled_at": "2001-01-01T00:00"})
    refused_with(past, 422, "Scheduled at must be in the future")
    assert await count(db, Announcement) == 1


async def test_saving_an_announcement_unchanged_keeps_its_times_to_the_second(
        db: Database, admin_web: httpx.AsyncClient) -> None:
    at = datetime(2099, 5, 1, 7, 0, 30, tzinfo=UTC)  # as the command line may set it
    async with db.session() as session:
        draft = await announcements.create_announcement(session, "Soon", scheduled_at=at)
    form = (await admin_web.get(f"/admin/announcements/{draft.id}/edit")).text
    assert 'value="2099-05-01T07:00:30"' in form
    saved = await submit(admin_web, f"/admin/announcements/{draft.id}/edit", {
        "text": "Soon", "scheduled_at": "2099-05-01T07:00:30"})
    assert saved.status_code == 303
    assert (await fetch(db, Announcement, draft.id)).scheduled_at == at


# -------------------------------------------------------------------------------- queue

async def failed_jobs(db: Database, how_many: int, start: int = 0) -> list[int]:
    now = utcnow()
    # A purge of an account that was never asked for: runs, finds nothing due, is done.
    jobs = [Job(kind="purge_account", queue="default", ref=f"{9_000 + start + n}@1",
                state=JobState.FAILED, attempts=10, finished_at=now - timedelta(minutes=n),
                last_error=f"RuntimeError: failure {n}") for n in range(how_many)]
    async with db.session() as session:
        session.add_all(jobs)
        await session.commit()
    return [job.id for job in jobs]


async def wait_until_done(app: Starlette, db: Database, job_ids: list[int]) -> None:
    """Run the due jobs here (the app's own worker may take them first), then wait."""
    await run_purges_at(app, utcnow() + timedelta(seconds=1))
    deadline = time.monotonic() + 20
    while await count(db, Job, Job.id.in_(job_ids), Job.state != JobState.DONE):
        assert time.monotonic() < deadline, "the retried jobs did not run"
        await asyncio.sleep(0.05)


async def test_the_queue_page_retries_and_purges_failed_jobs(
        app: Starlette, db: Database, admin_web: httpx.AsyncClient) -> None:
    first, second, third = await failed_jobs(db, 3)
    page = (await admin_web.get("/admin/queue")).text
    assert "RuntimeError: failure 1" in page and "purge_account" in page

    retried = await submit(admin_web, "/admin/queue", {"action": "retry", "job": str(first)})
    assert retried.status_code == 200 and f"Job {first} requeued" in retried.text
    await wait_until_done(app, db, [first])
    refused_with(await submit(admin_web, "/admin/queue", {"action": "retry", "job": str(first)}),
                 422, "not a failed job")
    refused_with(await submit(admin_web, "/admin/queue", {"action": "retry", "job": "x"}), 422,
                 "Name the job")
    refused_with(await submit(admin_web, "/admin/queue", {"action": "dance"}), 422, "Unknown")

    all_retried = await submit(admin_web, "/admin/queue", {"action": "retry_all"})
    assert "2 failed job(s) requeued" in all_retried.text
    await wait_until_done(app, db, [second, third])

    (purged,) = await failed_jobs(db, 1, start=3)
    answer = await submit(admin_web, "/admin/queue", {"action": "purge_failed"})
    assert "1 failed job(s) purged" in answer.text
    assert await count(db, Job, Job.id == purged) == 0
    assert await count(db, Job, Job.id.in_([first, second, third])) == 3


async def test_the_report_page_names_the_rules_it_cites(
        db: Database, settings: Settings, admin_web: httpx.AsyncClient, alice: User,
        bob: User) -> None:
    async with db.session() as session:
        kind = await rules.add_rule(session, "Be kind to <other> artists")
        gone = await rules.add_rule(session, "No reposts")
        reporter = await session.get(Account, alice.account_id)
        assert reporter is not None
        cited = await reports.create_report(session, settings, reporter, bob.account_id,
                                            rule_ids=[gone.id, kind.id])
        await rules.remove_rule(session, gone.id)
    page = await admin_web.get(f"/admin/reports/{cited.id}")
    assert page.status_code == 200
    assert "Rules broken" in page.text and "violation" in page.text
    assert "Be kind to &lt;other&gt; artists" in page.text  # escaped
    assert "No reposts" not in page.text and "1 cited rule(s) since removed" in page.text
