"""``POST /api/v1/reports``: a user reports an account, optionally forwarded to its server.

Given alice, bob (local) and dave on remote.example, when alice reports bob I expect
Mastodon's Report entity and a stored report, nothing sent anywhere; when she reports
dave with ``forward``, I expect remote.example's shared inbox to receive one signed
``Flag`` by our instance actor naming dave and the reported statuses, never alice. Bad
input is refused with Mastodon's status codes and stores nothing. ``easel admin reports``
lists them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from federation.context import FederationContext, install_federation_context
from server.cli import main
from server.db import Database
from server.models import Account, Activity, Report, Status, User
from server.services.rules import add_rule
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.api.test_timelines import Factory

REMOTE = "remote.example"


@pytest.fixture
def make(db: Database, settings: Settings) -> Factory:
    return Factory(db, settings)


@pytest.fixture
async def dave(make: Factory, db: Database) -> Account:
    account = await make.remote_account("dave", REMOTE)
    async with db.session() as session:
        row = await session.get(Account, account.id)
        assert row is not None
        row.inbox_url = f"https://{REMOTE}/users/dave/inbox"
        row.shared_inbox_url = f"https://{REMOTE}/inbox"
        await session.commit()
        return row


class RemoteInboxes:
    """remote.example: records every POST it gets and answers 202."""

    def __init__(self) -> None:
        self.received: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.received.append(request)
            return httpx.Response(202)
        return httpx.Response(404)

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.received]


@pytest.fixture
async def remote(app: Starlette) -> AsyncIterator[RemoteInboxes]:
    inboxes = RemoteInboxes()

    async def resolver(host: str, port: int) -> list[str]:
        return ["203.0.113.7"]

    state = app.state.easel
    install_federation_context(FederationContext.build(
        state.settings, state.db, transport=httpx.MockTransport(inboxes.handler), resolver=resolver))
    yield inboxes


async def run_queue(app: Starlette) -> None:
    """Let the federation queue finish: the in-process workers, or (with a broker, which
    the app does not consume itself) the due jobs run here."""
    state = app.state.easel
    if state.queue.in_process:
        await state.queue.drain()
    await state.runner.run_due(["federation"])


async def report_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Report)) or 0)


async def test_reporting_a_local_account_stores_the_report_and_sends_nothing(
    app: Starlette, alice: User, alice_api: httpx.AsyncClient, db: Database, make: Factory, bob: User,
    remote: RemoteInboxes,
) -> None:
    first = await make.status(bob.account, "rude")
    second = await make.status(bob.account, "ruder")
    response = await alice_api.post("/api/v1/reports", json={
        "account_id": str(bob.account_id), "status_ids": [str(second.id), str(first.id)],
        "comment": "Not nice", "category": "violation", "forward": True})
    assert response.status_code == 200, response.text
    entity = response.json()
    assert set(entity) == {"id", "action_taken", "action_taken_at", "category", "comment",
                           "forwarded", "created_at", "status_ids", "rule_ids", "target_account"}
    assert entity["action_taken"] is False and entity["action_taken_at"] is None
    assert entity["category"] == "violation" and entity["comment"] == "Not nice"
    assert entity["forwarded"] is False  # a local account: nothing to forward to
    assert entity["status_ids"] == [str(second.id), str(first.id)]
    assert entity["rule_ids"] is None
    assert entity["target_account"]["acct"] == "bob"
    assert entity["created_at"].endswith("Z")

    async with db.session() as session:
        report = await session.get(Report, int(entity["id"]))
        assert report is not None
        assert (report.account_id, report.target_account_id) == (alice.account_id, bob.account_id)
        assert report.uri is None and report.status_ids == [second.id, first.id]
        assert await session.scalar(select(func.count()).select_from(Activity)) == 0
    await run_queue(app)
    assert remote.received == []


async def test_the_defaults_are_the_other_category_and_no_statuses(
    alice_api: httpx.AsyncClient, bob: User
) -> None:
    response = await alice_api.post("/api/v1/reports", data={"account_id": str(bob.account_id)})
    assert response.status_code == 200, response.text
    assert response.json()["category"] == "other"
    assert response.json()["status_ids"] == [] and response.json()["comment"] == ""


async def test_a_forwarded_report_goes_to_the_remote_server_as_the_instance_actors_flag(
    app: Starlette, alice: User, alice_api: httpx.AsyncClient, db: Database, make: Factory,
    dave: Account, remote: RemoteInboxes,
) -> None:
    stolen = await make.status(dave, "my art (not mine)")
    response = await alice_api.post("/api/v1/reports", json={
        "account_id": str(dave.id), "status_ids": [str(stolen.id)],
        "comment": "Reposting my artwork without credit", "category": "spam", "forward": True})
    assert response.status_code == 200, response.text
    assert response.json()["forwarded"] is True
    assert response.json()["target_account"]["acct"] == f"dave@{REMOTE}"

    await run_queue(app)
    assert [str(request.url) for request in remote.received] == [f"https://{REMOTE}/inbox"]
    flag = remote.documents()[0]
    assert flag["type"] == "Flag"
    assert flag["actor"] == "https://easel.test/actor"
    assert flag["object"] == [dave.uri, stolen.uri]
    assert flag["content"] == "Reposting my artwork without credit"
    assert "alice" not in json.dumps(flag)  # the reporter stays anonymous
    signature = remote.received[0].headers["signature"]
    assert 'keyId="https://easel.test/actor#main-key"' in signature
    async with db.session() as session:
        activity = await session.scalar(select(Activity))
        assert activity is not None and activity.type == "Flag"
        assert activity.payload["object_type"] == "Account"
        report = await session.scalar(select(Report))
        assert report is not None and report.forwarded and report.account_id == alice.account_id


async def test_a_report_about_a_remote_account_without_forward_stays_here(
    app: Starlette, alice_api: httpx.AsyncClient, dave: Account, remote: RemoteInboxes
) -> None:
    response = await alice_api.post("/api/v1/reports", data={
        "account_id": str(dave.id), "forward": "false"})
    assert response.status_code == 200 and response.json()["forwarded"] is False
    await run_queue(app)
    assert remote.received == []


async def test_bad_reports_are_refused_and_store_nothing(
    alice: User, alice_api: httpx.AsyncClient, db: Database, make: Factory, bob: User,
    carol: User, client: httpx.AsyncClient,
) -> None:
    carols = await make.status(carol.account, "carol's")
    bobs_private = await make.status(bob.account, "for followers", visibility="private")
    bob_id = str(bob.account_id)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({}, 422, "Validation failed: account_id can't be blank"),
        ({"account_id": "nope"}, 404, "Record not found"),
        ({"account_id": "12345"}, 404, "Record not found"),
        ({"account_id": str(alice.account_id)}, 422, "Validation failed: You cannot report yourself"),
        ({"account_id": bob_id, "comment": "x" * 1001}, 422,
         "Validation failed: Comment is too long (maximum is 1000 characters)"),
        ({"account_id": bob_id, "category": "boring"}, 422,
         "Validation failed: Category must be one of spam, legal, violation, other"),
        ({"account_id": bob_id, "status_ids": ["abc"]}, 422,
         "Validation failed: status_ids must contain ids"),
        ({"account_id": bob_id, "rule_ids": ["abc"]}, 422, "Validation failed: rule_ids must contain ids"),
        ({"account_id": bob_id, "rule_ids": ["424242"]}, 422,
         "Validation failed: Rule ids do not reference valid rules"),
        ({"account_id": bob_id, "rule_ids": [str(n) for n in range(1, 102)]}, 422,
         "Validation failed: A report may cite at most 100 rules"),
        ({"account_id": bob_id, "status_ids": [str(carols.id)]}, 404, "Record not found"),
        ({"account_id": bob_id, "status_ids": [str(bobs_private.id)]}, 404, "Record not found"),
        ({"account_id": bob_id, "status_ids": [str(n) for n in range(1, 102)]}, 422,
         "Validation failed: A report may name at most 100 statuses"),
        ({"account_id": bob_id, "forward": "perhaps"}, 422,
         "Validation failed: forward must be true or false"),
    ]
    for body, status_code, message in cases:
        response = await alice_api.post("/api/v1/reports", json=body)
        assert (response.status_code, response.json()) == (status_code, {"error": message}), body
    assert await report_count(db) == 0

    assert (await client.post("/api/v1/reports", data={"account_id": bob_id})).status_code == 401
    async with authorized(client, await make_token(db, alice, "read write:statuses")) as narrow:
        refused = await narrow.post("/api/v1/reports", data={"account_id": bob_id})
        assert refused.status_code == 403
    async with authorized(client, await make_token(db, alice, "write:reports")) as exact:
        assert (await exact.post("/api/v1/reports", data={"account_id": bob_id})).status_code == 200
    async with authorized(client, await make_token(db, None, "write")) as app_only:
        response = await app_only.post("/api/v1/reports", data={"account_id": bob_id})
        assert response.status_code == 422
    assert await report_count(db) == 1


async def test_a_status_renumbered_on_publishing_is_found_by_its_old_id(
    alice_api: httpx.AsyncClient, db: Database, make: Factory, bob: User
) -> None:
    from server.models import StatusAlias

    status = await make.status(bob.account, "published late")
    async with db.session() as session:
        session.add(StatusAlias(old_id=status.id - 1, status_id=status.id))
        await session.commit()
    response = await alice_api.post("/api/v1/reports", json={
        "account_id": str(bob.account_id), "status_ids": [str(status.id - 1), str(status.id)]})
    assert response.status_code == 200, response.text
    assert response.json()["status_ids"] == [str(status.id)]
    async with db.session() as session:
        assert (await session.get(Status, status.id)) is not None


async def test_the_admin_lists_reports_from_the_command_line(
    alice_api: httpx.AsyncClient, bob: User, dave: Account, db: Database, settings: Settings,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    async with db.session() as session:
        rule = await add_rule(session, "Be kind")
    await alice_api.post("/api/v1/reports", data={"account_id": str(bob.account_id),
                                                  "rule_ids[]": str(rule.id)})
    await alice_api.post("/api/v1/reports", data={"account_id": str(bob.account_id),
                                                  "comment": "rude\nreally", "category": "spam"})
    await alice_api.post("/api/v1/reports", data={"account_id": str(dave.id), "forward": "true"})
    for name in list(os.environ):
        if name.startswith("EASEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EASEL_DOMAIN", settings.domain)
    monkeypatch.setenv("EASEL_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("EASEL_DATABASE_URL", settings.database_url)
    assert await asyncio.to_thread(main, ["admin", "reports"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert "local forwarded  alice -> dave@remote.example  other  statuses=0  open" in lines[0]
    assert "local  alice -> bob  spam  statuses=0  open  rude really" in lines[1]
    assert f"local  alice -> bob  violation (rules {rule.id})  statuses=0  open" in lines[2]


async def test_a_report_cites_the_instance_rules_and_becomes_a_violation(
    alice: User, alice_api: httpx.AsyncClient, db: Database, bob: User,
) -> None:
    async with db.session() as session:
        kind = await add_rule(session, "Be kind")
        credit = await add_rule(session, "Credit other artists")
    response = await alice_api.post("/api/v1/reports", data={
        "account_id": str(bob.account_id), "category": "spam",  # rules win, as Mastodon
        "rule_ids[]": [str(credit.id), str(kind.id), str(credit.id)]})
    assert response.status_code == 200, response.text
    entity = response.json()
    assert entity["category"] == "violation"
    assert entity["rule_ids"] == [str(credit.id), str(kind.id)]  # once each, in order
    async with db.session() as session:
        report = await session.get(Report, int(entity["id"]))
        assert report is not None and report.rule_ids == [credit.id, kind.id]
    # a blank rule_ids[] (a form with nothing ticked) cites nothing
    response = await alice_api.post("/api/v1/reports", data={
        "account_id": str(bob.account_id), "category": "other", "rule_ids[]": [""]})
    assert response.status_code == 200, response.text
    assert (response.json()["category"], response.json()["rule_ids"]) == ("other", None)
