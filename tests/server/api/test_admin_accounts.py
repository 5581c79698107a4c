"""The admin accounts API: who may use it, listing by standing, each action and its
lifting with their effects (tokens, timelines, visibility, entities), the warnings the
person reads, approval, deletion (by a moderator and by the person, with its grace), and
Mastodon.py's ``admin_account*`` calls against a live server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from mastodon import Mastodon
from sqlalchemy import func, select
from starlette.applications import Starlette

from server.db import Database
from server.ids import utcnow
from server.models import Account, AccountWarning, Job, JobState, OAuthToken, Report, Status, User
from server.queue.kinds import kind_named
from server.queue.runner import JobRunner
from server.services import moderation
from server.services.accounts import create_user
from server.services.errors import ServiceError
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.api.live import LiveServer, live_server
from tests.server.web.works import NewWork, add_work

ADMIN_SCOPES = "read write follow admin:read admin:write"


@pytest.fixture
async def root(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="moira", email="moira@example.com",
                                 password="the moderator's password", admin=True)


@pytest.fixture
async def root_api(client: httpx.AsyncClient, db: Database, root: User) -> AsyncIterator[httpx.AsyncClient]:
    async with authorized(client, await make_token(db, root, ADMIN_SCOPES)) as http:
        yield http


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def post(api: httpx.AsyncClient, text: str, **extra: str) -> str:
    response = await api.post("/api/v1/statuses", data={"status": text, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def ids_of(api: httpx.AsyncClient, path: str, params: dict[str, str] | None = None,
                 ) -> list[str]:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()]


async def public_ids(api: httpx.AsyncClient) -> list[str]:
    return await ids_of(api, "/api/v1/timelines/public")


async def run_purges_at(app: Starlette, moment: Any) -> None:
    """Run the purge jobs due at ``moment`` (the clock seam); one the app's own worker
    took first is waited for, with a deadline."""
    state = app.state.easel
    runner = JobRunner(state.db, state.settings, clock=lambda: moment,
                       kinds={moderation.PURGE_JOB: kind_named(moderation.PURGE_JOB)})
    await runner.run_due(["default"])
    deadline = asyncio.get_running_loop().time() + 20
    while await count(state.db, Job, Job.kind == moderation.PURGE_JOB,
                      Job.state == JobState.RUNNING):
        assert asyncio.get_running_loop().time() < deadline, "a purge job never finished"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------------ permissions

ENDPOINTS = [("GET", "/api/v1/admin/accounts"), ("GET", "/api/v2/admin/accounts"),
             ("GET", "/api/v1/admin/accounts/{id}"), ("DELETE", "/api/v1/admin/accounts/{id}"),
             *(("POST", f"/api/v1/admin/accounts/{{id}}/{what}") for what in (
                 "action", "approve", "reject", "enable", "unsilence", "unsuspend",
                 "unsensitive"))]


async def test_only_admins_with_admin_scopes_get_in(
        client: httpx.AsyncClient, db: Database, alice: User, bob: User, root: User) -> None:
    async with authorized(client, await make_token(db, alice, ADMIN_SCOPES)) as not_admin, \
            authorized(client, await make_token(db, root)) as admin_without_scope:
        for method, path in ENDPOINTS:
            url = path.format(id=bob.account_id)
            assert (await client.request(method, url)).status_code == 401, url
            refused = await not_admin.request(method, url)
            assert refused.status_code == 403, url
            assert refused.json() == {"error": "This action is not allowed"}
            assert (await admin_without_scope.request(method, url)).status_code == 403, url
    assert await count(db, AccountWarning) == 0


# ---------------------------------------------------------------------------- reading

async def test_listing_and_showing_accounts_with_filters(
        root_api: httpx.AsyncClient, db: Database, settings: Settings, alice: User, bob: User) -> None:
    async with db.session() as session:
        pending = await create_user(session, settings, username="newcomer",
                                    email="new@example.com", password="a password long enough",
                                    approved=False, reason="I paint harbours")
        session.add(Account(username="zed", username_key="zed", domain="remote.example",
                            uri="https://remote.example/users/zed"))
        await session.commit()
    everyone = (await root_api.get("/api/v2/admin/accounts")).json()
    assert {a["username"] for a in everyone} == {"moira", "alice", "bob", "newcomer", "zed"}
    local = (await root_api.get("/api/v2/admin/accounts", params={"origin": "local"})).json()
    assert "zed" not in {a["username"] for a in local}
    queue = (await root_api.get("/api/v2/admin/accounts", params={"status": "pending"})).json()
    assert [(a["username"], a["invite_request"], a["approved"]) for a in queue] == [
        ("newcomer", "I paint harbours", False)]
    v1 = (await root_api.get("/api/v1/admin/accounts", params={"pending": "true"})).json()
    assert [a["id"] for a in v1] == [str(pending.account_id)]
    remote = (await root_api.get("/api/v1/admin/accounts",
                                 params={"remote": "true", "by_domain": "Remote.Example"})).json()
    assert [(a["username"], a["domain"], a["email"]) for a in remote] == [
        ("zed", "remote.example", "")]
    staff = (await root_api.get("/api/v2/admin/accounts", params={"permissions": "staff"})).json()
    assert [a["username"] for a in staff] == ["moira"]
    named = (await root_api.get("/api/v2/admin/accounts", params={"username": "LIC"})).json()
    assert [a["username"] for a in named] == ["alice"]
    paged = await root_api.get("/api/v2/admin/accounts", params={"limit": "2"})
    assert len(paged.json()) == 2 and 'rel="next"' in paged.headers["link"]

    shown = (await root_api.get(f"/api/v1/admin/accounts/{alice.account_id}")).json()
    assert shown["email"] == "alice@example.com" and shown["account"]["acct"] == "alice"
    assert (shown["suspended"], shown["silenced"], shown["disabled"], shown["sensitized"],
            shown["confirmed"]) == (False, False, False, False, True)
    for bad in ({"status": "sleepy"}, {"origin": "mars"}, {"permissions": "root"}):
        answer = await root_api.get("/api/v2/admin/accounts", params=bad)
        assert answer.status_code == 422 and "error" in answer.json()
    for missing in ("123", "nope"):
        assert (await root_api.get(f"/api/v1/admin/accounts/{missing}")).status_code == 404


# ---------------------------------------------------------------------------- actions

async def test_bad_actions_are_refused_and_write_nothing(
        root_api: httpx.AsyncClient, db: Database, bob: User) -> None:
    url = f"/api/v1/admin/accounts/{bob.account_id}/action"
    bad_type = await root_api.post(url, data={"type": "banish"})
    assert bad_type.status_code == 422 and bad_type.json()["error"].startswith("Validation failed")
    too_long = await root_api.post(url, data={"type": "silence", "text": "x" * 5001})
    assert too_long.status_code == 422
    no_report = await root_api.post(url, data={"type": "silence", "report_id": "999"})
    assert no_report.status_code == 404
    not_a_report = await root_api.post(url, data={"type": "silence", "report_id": "abc"})
    assert not_a_report.status_code == 404
    no_account = await root_api.post("/api/v1/admin/accounts/42/action", data={"type": "none"})
    assert no_account.status_code == 404
    bad_bool = await root_api.post(url, data={"type": "none", "send_email_notification": "maybe"})
    assert bad_bool.status_code == 422
    assert await count(db, AccountWarning) == 0
    async with db.session() as session:
        account = await session.get(Account, bob.account_id)
        assert account is not None and account.silenced_at is None


async def test_a_warning_is_shown_to_the_person_and_resolves_its_report(
        root_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User,
        bob: User) -> None:
    async with db.session() as session:
        report = Report(account_id=alice.account_id, target_account_id=bob.account_id,
                        comment="rude")
        other = Report(account_id=alice.account_id, target_account_id=bob.account_id)
        session.add_all([report, other])
        await session.commit()
    answer = await root_api.post(f"/api/v1/admin/accounts/{bob.account_id}/action",
                                 json={"type": "none", "text": "Please be kind.",
                                       "report_id": str(report.id)})
    assert answer.status_code == 200 and answer.json() == {}
    warnings = (await bob_api.get("/api/v1/easel/account_warnings")).json()
    assert [(w["action"], w["text"], w["report_id"]) for w in warnings] == [
        ("none", "Please be kind.", str(report.id))]
    async with db.session() as session:
        resolved = await session.get(Report, report.id)
        untouched = await session.get(Report, other.id)
        assert resolved is not None and resolved.action_taken_at is not None
        assert untouched is not None and untouched.action_taken_at is None
    # Any action but a warning resolves every open report on the account.
    await root_api.post(f"/api/v1/admin/accounts/{bob.account_id}/action", data={"type": "sensitive"})
    assert await count(db, Report, Report.action_taken_at.is_(None)) == 0


async def test_silence_keeps_posts_out_of_public_timelines_for_non_followers(
        root_api: httpx.AsyncClient, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
        carol_api: httpx.AsyncClient, client: httpx.AsyncClient, db: Database,
        settings: Settings, alice: User, bob: User) -> None:
    bobs = await post(bob_api, "a loud post")
    async with db.session() as session:
        bob_account = await session.get(Account, bob.account_id)
    assert bob_account is not None
    work = str((await add_work(db, settings, bob_account, NewWork(tags={"medium": ["Ink"]}))).id)
    await carol_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    assert bobs in await public_ids(alice_api)
    for query in ({}, {"medium": "Ink"}):
        assert work in await ids_of(alice_api, "/api/v1/easel/works", query)
    silenced = await root_api.post(f"/api/v1/admin/accounts/{bob.account_id}/action",
                                   data={"type": "silence", "text": "spam"})
    assert silenced.status_code == 200
    assert bobs not in await public_ids(alice_api)
    assert bobs not in await public_ids(client)  # nor to anyone signed out
    assert bobs in await public_ids(carol_api)  # a follower still sees it
    for query in ({}, {"medium": "Ink"}):  # browsing works, with and without terms
        assert work not in await ids_of(alice_api, "/api/v1/easel/works", query)
        assert work in await ids_of(carol_api, "/api/v1/easel/works", query)
    assert (await alice_api.get(f"/api/v1/statuses/{bobs}")).status_code == 200  # not hidden
    entity = (await alice_api.get(f"/api/v1/accounts/{bob.account_id}")).json()
    assert entity["limited"] is True
    shown = (await root_api.get(f"/api/v1/admin/accounts/{bob.account_id}")).json()
    assert shown["silenced"] is True
    lifted = await root_api.post(f"/api/v1/admin/accounts/{bob.account_id}/unsilence")
    assert lifted.status_code == 200 and lifted.json()["silenced"] is False
    assert bobs in await public_ids(alice_api)
    assert work in await ids_of(alice_api, "/api/v1/easel/works", {"medium": "Ink"})
    again = await root_api.post(f"/api/v1/admin/accounts/{bob.account_id}/unsilence")
    assert again.status_code == 403


async def test_sensitive_and_disable_and_their_lifting(
        root_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice_api: httpx.AsyncClient,
        client: httpx.AsyncClient, bob: User) -> None:
    bobs = await post(bob_api, "a plain one")

    async def shown_sensitive() -> tuple[bool, bool, bool, bool]:
        # To alice, to anyone, to bob himself, and in the federated note.
        url = f"/api/v1/statuses/{bobs}"
        note = await client.get(f"/users/bob/statuses/{bobs}",
                                headers={"Accept": "application/activity+json"})
        return ((await alice_api.get(url)).json()["sensitive"],
                (await client.get(url)).json()["sensitive"],
                (await bob_api.get(url)).json()["sensitive"], note.json()["sensitive"])

    assert await shown_sensitive() == (False, False, False, False)
    base = f"/api/v1/admin/accounts/{bob.account_id}"
    await root_api.post(f"{base}/action", data={"type": "sensitive"})
    assert (await root_api.get(base)).json()["sensitized"] is True
    # Every status of the account is covered for everyone but its author, as in Mastodon.
    assert await shown_sensitive() == (True, True, False, True)
    assert (await root_api.post(f"{base}/unsensitive")).json()["sensitized"] is False
    assert await shown_sensitive() == (False, False, False, False)
    assert (await root_api.post(f"{base}/unsensitive")).status_code == 403

    await root_api.post(f"{base}/action", data={"type": "disable", "text": "cool down"})
    refused = await bob_api.get("/api/v1/accounts/verify_credentials")
    assert refused.status_code == 403
    assert refused.json() == {"error": "Your login is currently disabled"}
    assert (await root_api.get(base)).json()["disabled"] is True
    assert (await root_api.post(f"{base}/enable")).json()["disabled"] is False
    assert (await bob_api.get("/api/v1/accounts/verify_credentials")).status_code == 200
    assert (await root_api.post(f"{base}/enable")).status_code == 403


async def test_suspension_makes_tokens_useless_and_posts_invisible_until_lifted(
        root_api: httpx.AsyncClient, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
        client: httpx.AsyncClient, bob: User) -> None:
    bobs = await post(bob_api, "soon gone")
    base = f"/api/v1/admin/accounts/{bob.account_id}"
    assert (await root_api.post(f"{base}/unsuspend")).status_code == 403  # not suspended
    assert (await root_api.post(f"{base}/action", data={"type": "suspend"})).status_code == 200
    refused = await bob_api.get("/api/v1/accounts/verify_credentials")
    assert refused.status_code == 403 and refused.json()["error"] == "Your login is currently disabled"
    assert (await alice_api.get(f"/api/v1/statuses/{bobs}")).status_code == 404
    assert bobs not in await public_ids(alice_api)
    assert (await alice_api.get(f"/api/v1/accounts/{bob.account_id}/statuses")).json() == []
    assert (await alice_api.get(f"/api/v1/accounts/{bob.account_id}")).json()["suspended"] is True
    actor = await client.get("/users/bob", headers={"Accept": "application/activity+json"})
    assert actor.status_code == 200 and actor.json()["suspended"] is True
    assert actor.json()["name"] == "" and "icon" not in actor.json()
    assert (await client.get("/@bob")).status_code == 404  # the profile page shows nothing
    note = await client.get(f"/users/bob/statuses/{bobs}",
                            headers={"Accept": "application/activity+json"})
    assert note.status_code == 404
    found = (await alice_api.get("/api/v1/accounts/search", params={"q": "bob"})).json()
    assert found == []  # nor found by search
    listed = (await root_api.get("/api/v2/admin/accounts", params={"status": "suspended"})).json()
    assert [a["username"] for a in listed] == ["bob"]

    assert (await root_api.post(f"{base}/unsuspend")).json()["suspended"] is False
    assert (await bob_api.get("/api/v1/accounts/verify_credentials")).status_code == 200
    assert (await alice_api.get(f"/api/v1/statuses/{bobs}")).status_code == 200


async def test_approving_and_rejecting_sign_ups(
        root_api: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    async with db.session() as session:
        one = await create_user(session, settings, username="one", email="one@example.com",
                                password="a password long enough", approved=False)
        two = await create_user(session, settings, username="two", email="two@example.com",
                                password="a password long enough", approved=False)
    approved = await root_api.post(f"/api/v1/admin/accounts/{one.account_id}/approve")
    assert approved.status_code == 200 and approved.json()["approved"] is True
    assert (await root_api.post(f"/api/v1/admin/accounts/{one.account_id}/approve")).status_code == 403
    assert (await root_api.post(f"/api/v1/admin/accounts/{one.account_id}/reject")).status_code == 403
    rejected = await root_api.post(f"/api/v1/admin/accounts/{two.account_id}/reject")
    assert rejected.status_code == 200 and rejected.json()["username"] == "two"
    assert await count(db, User, User.id == two.id) == 0
    assert await count(db, Account, Account.id == two.account_id) == 0
    assert (await root_api.post(f"/api/v1/admin/accounts/{alice.account_id}/reject")).status_code == 403


async def test_the_person_is_mailed_the_action_when_smtp_is_set(
        db: Database, settings: Settings, bob: User) -> None:
    from server.models import OutgoingMail

    with_mail = settings.with_changes(smtp_host="127.0.0.1", smtp_from="mod@easel.test")
    async with db.session() as session:
        await moderation.take_action(session, with_mail, moderator=None,
                                     account_id=bob.account_id, action="silence",
                                     text="Less shouting, please.")
        await moderation.take_action(session, with_mail, moderator=None,
                                     account_id=bob.account_id, action="none",
                                     notify_by_email=False)
        mails = list(await session.scalars(select(OutgoingMail)))
    assert [(m.to, "Less shouting, please." in m.text) for m in mails] == [
        ("bob@example.com", True)]


async def test_the_person_is_mailed_the_decision_on_a_sign_up_when_smtp_is_set(
        db: Database, settings: Settings) -> None:
    from server.models import OutgoingMail

    with_mail = settings.with_changes(smtp_host="127.0.0.1", smtp_from="mod@easel.test")
    async with db.session() as session:
        one = await create_user(session, settings, username="one", email="one@example.com",
                                password="a password long enough", approved=False)
        two = await create_user(session, settings, username="two", email="two@example.com",
                                password="a password long enough", approved=False)
        await moderation.approve(session, with_mail, one.account_id)
        await moderation.reject(session, with_mail, two.account_id)
        mails = list(await session.scalars(select(OutgoingMail).order_by(OutgoingMail.to)))
    assert [(m.to, "approved" in m.subject) for m in mails] == [
        ("one@example.com", True), ("two@example.com", False)]


# --------------------------------------------------------------------------- deletion

async def test_a_moderator_deletes_a_suspended_account(
        app: Starlette, root_api: httpx.AsyncClient, alice_api: httpx.AsyncClient,
        bob_api: httpx.AsyncClient, db: Database, alice: User, bob: User) -> None:
    alices = await post(alice_api, "hello")
    await bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow")
    await bob_api.post(f"/api/v1/statuses/{alices}/favourite")
    await post(bob_api, "mine")
    await post(bob_api, "a reply", in_reply_to_id=alices)
    base = f"/api/v1/admin/accounts/{bob.account_id}"
    assert (await root_api.delete(base)).status_code == 403  # only a suspended account
    await root_api.post(f"{base}/action", data={"type": "suspend"})
    deleted = await root_api.delete(base)
    assert deleted.status_code == 200 and deleted.json()["suspended"] is True
    await run_purges_at(app, utcnow() + timedelta(seconds=1))
    assert await count(db, Status, Status.account_id == bob.account_id) == 0
    assert await count(db, User, User.id == bob.id) == 0
    me = (await alice_api.get("/api/v1/accounts/verify_credentials")).json()
    assert me["followers_count"] == 0
    alices_now = (await alice_api.get(f"/api/v1/statuses/{alices}")).json()
    assert (alices_now["favourites_count"], alices_now["replies_count"]) == (0, 0)
    async with db.session() as session:
        row = await session.get(Account, bob.account_id)
        assert row is not None and row.deleted_at is not None and row.display_name == ""
    assert (await root_api.get(base)).status_code == 404
    gone = await root_api.get("/users/bob", headers={"Accept": "application/activity+json"})
    assert gone.status_code == 410


async def test_self_service_deletion_waits_for_its_grace_and_can_be_cancelled(
        app: Starlette, db: Database, settings: Settings, bob_api: httpx.AsyncClient,
        alice_api: httpx.AsyncClient, bob: User) -> None:
    bobs = await post(bob_api, "still here")
    async with db.session() as session:
        user = await session.get(User, bob.id)
        assert user is not None
        with pytest.raises(ServiceError) as wrong:
            await moderation.request_deletion(session, settings, user, "not my password")
        assert wrong.value.status_code == 403
        account = await session.get(Account, bob.account_id)
        assert account is not None and account.suspended_at is None
        await moderation.request_deletion(session, settings, user, "another good password")
    assert (await bob_api.get("/api/v1/accounts/verify_credentials")).status_code == 401  # revoked
    assert (await alice_api.get(f"/api/v1/statuses/{bobs}")).status_code == 404
    # Before the grace ends nothing is purged.
    await run_purges_at(app, utcnow() + timedelta(days=settings.account_deletion_grace_days - 1))
    assert await count(db, Status, Status.account_id == bob.account_id) == 1
    async with db.session() as session:
        user = await session.get(User, bob.id)
        assert user is not None
        await moderation.cancel_deletion(session, user)
        with pytest.raises(ServiceError):
            await moderation.cancel_deletion(session, user)
    assert (await alice_api.get(f"/api/v1/statuses/{bobs}")).status_code == 200
    # A cancelled deletion's job, when its time comes, leaves the account alone.
    await run_purges_at(app, utcnow() + timedelta(days=settings.account_deletion_grace_days + 1))
    assert await count(db, Status, Status.account_id == bob.account_id) == 1
    assert await count(db, OAuthToken, OAuthToken.user_id == bob.id,
                       OAuthToken.revoked_at.is_(None)) == 0

    async with db.session() as session:
        user = await session.get(User, bob.id)
        assert user is not None
        await moderation.request_deletion(session, settings, user, "another good password")
    await run_purges_at(app, utcnow() + timedelta(days=settings.account_deletion_grace_days + 1))
    assert await count(db, Status, Status.account_id == bob.account_id) == 0
    assert await count(db, User, User.id == bob.id) == 0


async def test_a_suspended_user_gets_no_token(
        root_api: httpx.AsyncClient, client: httpx.AsyncClient, db: Database, bob: User) -> None:
    from server.models import OAuthApplication

    async with db.session() as session:
        app = OAuthApplication(name="x", website="", redirect_uris="urn:ietf:wg:oauth:2.0:oob",
                               scopes="read", client_id="cid-1", client_secret="secret-1")
        session.add(app)
        await session.commit()
    form = {"grant_type": "password", "username": "bob", "password": "another good password",
            "client_id": "cid-1", "client_secret": "secret-1", "scope": "read"}
    assert (await client.post("/oauth/token", data=form)).status_code == 200
    await root_api.post(f"/api/v1/admin/accounts/{bob.account_id}/action", data={"type": "suspend"})
    refused = await client.post("/oauth/token", data=form)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


# ------------------------------------------------------------------------- Mastodon.py

@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings) as live:
        yield live


def test_mastodon_py_admin_account_calls(server: LiveServer) -> None:
    async def setup() -> tuple[str, int]:
        state = server.app.state.easel
        async with state.db.session() as session:
            admin = await create_user(session, server.settings, username="moira",
                                      email="moira@example.com", password="a long password!",
                                      admin=True)
            bob = await create_user(session, server.settings, username="bob",
                                    email="bob@example.com", password="a long password!")
        return await make_token(state.db, admin, ADMIN_SCOPES), bob.account_id

    token, bob_id = server.call(setup())
    api = Mastodon(access_token=token, api_base_url=server.base_url, version_check_mode="none",
                   request_timeout=30)
    assert {a.username for a in api.admin_accounts_v2(origin="local")} == {"moira", "bob"}
    api.admin_account_moderate(bob_id, "silence", text="too loud")
    assert api.admin_account(bob_id).silenced is True
    assert [a.username for a in api.admin_accounts_v2(status="silenced")] == ["bob"]
    assert api.admin_account_unsilence(bob_id).silenced is False
    api.admin_account_moderate(bob_id, "sensitive")
    assert api.admin_account_unsensitive(bob_id).sensitized is False
    api.admin_account_moderate(bob_id, "disable")
    assert api.admin_account_enable(bob_id).disabled is False
    api.admin_account_moderate(bob_id, "suspend")
    assert api.admin_account(bob_id).suspended is True
    assert api.admin_account_unsuspend(bob_id).suspended is False
    api.admin_account_moderate(bob_id, "suspend")
    assert api.admin_account_delete(bob_id).suspended is True
