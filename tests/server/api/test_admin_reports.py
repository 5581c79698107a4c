"""``/api/v1/admin/reports``: moderators list, read, assign, resolve and reopen reports.

Given alice reporting bob (with one of his statuses) and an admin, I expect the admin to
see the report (unresolved by default) as Mastodon's ``Admin::Report``, to assign it to
themselves, unassign it, change its category and the rules it cites, resolve it (then it
leaves the default list and shows in ``resolved=true``) and reopen it; bob and alice get
403 on every endpoint, no token 401; bad ids are 404 and bad input 422, changing nothing.
``easel admin report`` does the same from the shell and keeps notes. Mastodon.py's
``admin_report*`` calls work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from mastodon import Mastodon

from server.cli import main
from server.db import Database
from server.models import Report, ReportNote, User
from server.services import reports, rules
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.api.live import live_server

ADMIN_SCOPES = "read write admin:read admin:write"
PASSWORD = "a long enough password"
ENDPOINTS = [
    ("GET", "/api/v1/admin/reports"),
    ("GET", "/api/v1/admin/reports/{id}"),
    ("PUT", "/api/v1/admin/reports/{id}"),
    ("POST", "/api/v1/admin/reports/{id}/assign_to_self"),
    ("POST", "/api/v1/admin/reports/{id}/unassign"),
    ("POST", "/api/v1/admin/reports/{id}/resolve"),
    ("POST", "/api/v1/admin/reports/{id}/reopen"),
]


@pytest.fixture
async def moderator(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="moira", email="moira@example.com",
                                 password="moderation is care", admin=True)


@pytest.fixture
async def admin_api(client: httpx.AsyncClient, db: Database,
                    moderator: User) -> AsyncIterator[httpx.AsyncClient]:
    async with authorized(client, await make_token(db, moderator, ADMIN_SCOPES)) as http:
        yield http


@pytest.fixture
async def report_id(alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, bob: User) -> str:
    status = (await bob_api.post("/api/v1/statuses", json={"status": "spam spam spam"})).json()
    response = await alice_api.post("/api/v1/reports", json={
        "account_id": str(bob.account_id), "status_ids": [status["id"]],
        "comment": "this is spam", "category": "spam"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def test_an_admin_sees_the_report_as_mastodon_admin_report(
        admin_api: httpx.AsyncClient, report_id: str, alice: User, bob: User) -> None:
    listed = await admin_api.get("/api/v1/admin/reports")
    assert listed.status_code == 200
    [entity] = listed.json()
    assert entity["id"] == report_id
    assert entity["action_taken"] is False
    assert entity["category"] == "spam" and entity["comment"] == "this is spam"
    assert entity["account"]["id"] == str(alice.account_id)
    assert entity["account"]["email"] == "alice@example.com"
    assert entity["account"]["account"]["username"] == "alice"
    assert entity["target_account"]["username"] == "bob"
    assert entity["assigned_account"] is None and entity["action_taken_by_account"] is None
    assert [s["content"] for s in entity["statuses"]] == ["<p>spam spam spam</p>"]
    one = await admin_api.get(f"/api/v1/admin/reports/{report_id}")
    assert one.json() == entity


async def test_assign_unassign_resolve_and_reopen(
        admin_api: httpx.AsyncClient, report_id: str, moderator: User) -> None:
    base = f"/api/v1/admin/reports/{report_id}"
    assigned = (await admin_api.post(f"{base}/assign_to_self")).json()
    assert assigned["assigned_account"]["id"] == str(moderator.account_id)
    assert (await admin_api.post(f"{base}/unassign")).json()["assigned_account"] is None

    resolved = (await admin_api.post(f"{base}/resolve")).json()
    assert resolved["action_taken"] is True and resolved["action_taken_at"]
    assert resolved["action_taken_by_account"]["username"] == "moira"
    assert (await admin_api.get("/api/v1/admin/reports")).json() == []
    assert [r["id"] for r in (await admin_api.get(
        "/api/v1/admin/reports", params={"resolved": "true"})).json()] == [report_id]

    reopened = (await admin_api.post(f"{base}/reopen")).json()
    assert reopened["action_taken"] is False and reopened["action_taken_by_account"] is None
    assert [r["id"] for r in (await admin_api.get("/api/v1/admin/reports")).json()] == [report_id]

    changed = await admin_api.put(base, json={"category": "violation"})
    assert changed.status_code == 200 and changed.json()["category"] == "violation"


async def test_filters_by_reporter_and_target(
        admin_api: httpx.AsyncClient, report_id: str, alice: User, bob: User) -> None:
    def ids(response: httpx.Response) -> list[str]:
        return [r["id"] for r in response.json()]

    assert ids(await admin_api.get("/api/v1/admin/reports",
                                   params={"account_id": str(alice.account_id)})) == [report_id]
    assert ids(await admin_api.get("/api/v1/admin/reports",
                                   params={"target_account_id": str(alice.account_id)})) == []
    assert ids(await admin_api.get("/api/v1/admin/reports",
                                   params={"target_account_id": str(bob.account_id)})) == [report_id]


async def test_bad_input_is_refused_and_changes_nothing(
        admin_api: httpx.AsyncClient, report_id: str, db: Database) -> None:
    assert (await admin_api.get("/api/v1/admin/reports/123456")).status_code == 404
    assert (await admin_api.post("/api/v1/admin/reports/123456/resolve")).status_code == 404
    assert (await admin_api.post("/api/v1/admin/reports/nope/resolve")).status_code == 404
    bad = await admin_api.put(f"/api/v1/admin/reports/{report_id}", json={"category": "gossip"})
    assert bad.status_code == 422 and "error" in bad.json()
    bad = await admin_api.put(f"/api/v1/admin/reports/{report_id}",
                              json={"category": "violation", "rule_ids": ["424242"]})
    assert bad.json() == {"error": "Validation failed: Rule ids do not reference valid rules"}
    async with db.session() as session:
        report = await session.get(Report, int(report_id))
        assert report is not None and report.category == "spam" and report.updated_at is None
        assert report.rule_ids is None


async def test_rules_cited_by_a_report_are_shown_and_changed_by_moderators(
        admin_api: httpx.AsyncClient, alice_api: httpx.AsyncClient, bob: User, db: Database,
        report_id: str) -> None:
    async with db.session() as session:
        kind = await rules.add_rule(session, "Be kind", "No harassment")
        credit = await rules.add_rule(session, "Credit other artists")
    base = f"/api/v1/admin/reports/{report_id}"
    assert (await admin_api.get(base)).json()["rules"] == []
    cited = await alice_api.post("/api/v1/reports", json={
        "account_id": str(bob.account_id), "rule_ids": [str(kind.id)]})
    shown = (await admin_api.get(f"/api/v1/admin/reports/{cited.json()['id']}")).json()
    assert shown["category"] == "violation"
    assert shown["rules"] == [{"id": str(kind.id), "text": "Be kind", "hint": "No harassment"}]

    changed = (await admin_api.put(base, json={"rule_ids": [str(credit.id), str(kind.id)]})).json()
    assert changed["category"] == "violation"  # rules make it one
    assert [r["text"] for r in changed["rules"]] == ["Credit other artists", "Be kind"]
    async with db.session() as session:
        await rules.remove_rule(session, credit.id)  # still cited, no longer listed
    assert [r["text"] for r in (await admin_api.get(base)).json()["rules"]] == ["Be kind"]
    kept = (await admin_api.put(base, json={"comment": "ignored"})).json()  # rule_ids absent
    assert [r["text"] for r in kept["rules"]] == ["Be kind"]
    cleared = (await admin_api.put(base, data={"rule_ids[]": ""})).json()
    assert (cleared["category"], cleared["rules"]) == ("violation", [])
    await admin_api.put(base, json={"rule_ids": [str(kind.id)]})
    both = await admin_api.put(base, json={"category": "spam", "rule_ids": [str(kind.id)]})
    assert both.json() == {
        "error": "Validation failed: Rule ids must be blank unless the category is violation"}
    other = (await admin_api.put(base, json={"category": "spam"})).json()
    assert (other["category"], other["rules"]) == ("spam", [])  # rules mean a violation
    async with db.session() as session:
        report = await session.get(Report, int(report_id))
        assert report is not None and report.rule_ids is None


async def test_normal_users_get_403_and_no_token_401(
        client: httpx.AsyncClient, alice_api: httpx.AsyncClient, db: Database, alice: User,
        report_id: str) -> None:
    async with authorized(client, await make_token(db, alice, ADMIN_SCOPES)) as scoped:
        for method, path in ENDPOINTS:
            url = path.format(id=report_id)
            assert (await alice_api.request(method, url)).status_code == 403, url
            assert (await scoped.request(method, url)).status_code == 403, url
            assert (await client.request(method, url)).status_code == 401, url
    async with db.session() as session:
        report = await session.get(Report, int(report_id))
        assert report is not None and report.action_taken_at is None


async def test_an_admin_token_without_admin_scopes_gets_403(
        client: httpx.AsyncClient, db: Database, moderator: User, report_id: str) -> None:
    async with authorized(client, await make_token(db, moderator, "read write")) as http:
        assert (await http.get("/api/v1/admin/reports")).status_code == 403


def _run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_the_cli_resolves_and_keeps_notes(
        report_id: str, moderator: User, db: Database, settings: Settings,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EASEL_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("EASEL_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("EASEL_DOMAIN", settings.domain)

    def run(*argv: str) -> tuple[int, str, str]:
        return _run_cli(capsys, *argv)

    code, out, _ = await asyncio.to_thread(run, "admin", "report", "note", report_id,
                                           "looked at it", "--by", "moira")
    assert code == 0 and "note by moira" in out and "looked at it" in out
    code, out, _ = await asyncio.to_thread(run, "admin", "report", "resolve", report_id, "--by", "moira")
    assert code == 0 and "resolved by moira" in out
    code, _, err = await asyncio.to_thread(run, "admin", "report", "note", report_id, "", "--by", "moira")
    assert code == 1 and "blank" in err
    code, _, err = await asyncio.to_thread(run, "admin", "report", "resolve", "999", "--by", "moira")
    assert code == 1 and "not found" in err
    async with db.session() as session:
        report = await session.get(Report, int(report_id))
        assert report is not None and report.action_taken_by_account_id == moderator.account_id
        notes = (await session.execute(
            ReportNote.__table__.select().where(ReportNote.report_id == report.id))).all()
        assert [n.content for n in notes] == ["looked at it"]


def test_mastodon_py_admin_reports(settings: Settings) -> None:
    with live_server(settings) as server:
        async def seed() -> tuple[str, str]:
            state = server.app.state.easel
            async with state.db.session() as session:
                mod = await create_user(session, server.settings, username="moira",
                                        email="moira@example.com", password=PASSWORD, admin=True)
                alice = await create_user(session, server.settings, username="alice",
                                          email="alice@example.com", password=PASSWORD)
                bob = await create_user(session, server.settings, username="bob",
                                        email="bob@example.com", password=PASSWORD)
                report = await reports.create_report(
                    session, server.settings, alice.account, bob.account_id, comment="rude")
            return str(report.id), await make_token(state.db, mod, ADMIN_SCOPES)

        report_id, token = server.call(seed())
        api = Mastodon(access_token=token, api_base_url=server.base_url,
                       version_check_mode="none", request_timeout=30)
        assert [str(r.id) for r in api.admin_reports()] == [report_id]
        assert api.admin_report_assign(report_id).assigned_account.username == "moira"
        assert api.admin_report_unassign(report_id).assigned_account is None
        assert api.admin_report_resolve(report_id).action_taken is True
        assert api.admin_reports() == []
        assert [str(r.id) for r in api.admin_reports(resolved=True)] == [report_id]
        assert api.admin_report_reopen(report_id).action_taken is False
        assert api.admin_report(report_id).target_account.username == "bob"
