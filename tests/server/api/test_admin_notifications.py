"""The moderators' notifications: ``admin.report`` and ``admin.sign_up``, as Mastodon's.

Given an admin (moira) and members, I expect a report to notify every admin who can act —
not the reporter, not a disabled admin, nobody else — once per account with open reports,
with the Report in the notification (v1 and grouped v2), whether it came from a member or
from another server's ``Flag``; and a sign-up to notify them once the address is confirmed
(at once with mail off; after the link is followed with mail on), for open and
approval-only registrations alike.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from server.db import Database
from server.models import Account, Notification, User
from server.services import reports
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.api.test_registrations_email import SIGN_UP, sign_up
from tests.server.smtp import Mailbox, deliver_mail, link_in, mail_app, mail_client, mailbox

__all__ = ["mail_app", "mail_client", "mailbox"]  # fixtures


async def admin(db: Database, settings: Settings, name: str) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username=name, email=f"{name}@example.com",
                                 password="moderation is care", admin=True)


@pytest.fixture
async def moira(db: Database, settings: Settings) -> User:
    return await admin(db, settings, "moira")


async def staff_notifications(client: httpx.AsyncClient, db: Database, user: User,
                              path: str = "/api/v1/notifications") -> Any:
    async with authorized(client, await make_token(db, user)) as api:
        answer = await api.get(path, params={"types[]": ["admin.report", "admin.sign_up"]}
                               if path.endswith("/notifications") else None)
        assert answer.status_code == 200, answer.text
        return answer.json()


async def test_a_report_notifies_the_admins_with_the_report(
        client: httpx.AsyncClient, db: Database, settings: Settings, moira: User, alice: User,
        alice_api: httpx.AsyncClient, bob: User, carol: User) -> None:
    resting = await admin(db, settings, "resting")
    async with db.session() as session:
        await session.execute(update(User).where(User.id == resting.id).values(disabled=True))
        await session.commit()
    filed = await alice_api.post("/api/v1/reports", json={
        "account_id": str(bob.account_id), "comment": "rude", "category": "spam"})
    assert filed.status_code == 200, filed.text
    [told] = await staff_notifications(client, db, moira)
    assert told["type"] == "admin.report" and told["account"]["acct"] == "alice"
    report = told["report"]
    assert report["id"] == filed.json()["id"] and report["comment"] == "rude"
    assert report["target_account"]["acct"] == "bob" and report["category"] == "spam"
    grouped = await staff_notifications(client, db, moira, "/api/v2/notifications")
    [group] = grouped["notification_groups"]
    assert group["type"] == "admin.report" and group["report"] == report
    assert await staff_notifications(client, db, alice) == []  # not an admin
    async with db.session() as session:  # a disabled admin (who could not read them)
        assert list(await session.scalars(select(Notification).where(
            Notification.account_id == resting.account_id))) == []

    # a second report while the first is open: the same pile, no new notification
    async with db.session() as session:
        reporter = await session.get(Account, carol.account_id)
        assert reporter is not None
        second = await reports.create_report(session, settings, reporter, bob.account_id)
        assert len(await staff_notifications(client, db, moira)) == 1
        moderator = await session.get(Account, moira.account_id)
        assert moderator is not None
        for open_one in (int(filed.json()["id"]), second.id):
            await reports.resolve_report(session, open_one, moderator)
        third = await reports.create_report(session, settings, reporter, bob.account_id)
    newest, first = await staff_notifications(client, db, moira)  # all resolved: told again
    assert (newest["report"]["id"], first["report"]["id"]) == (str(third.id), filed.json()["id"])


async def test_an_admins_own_report_does_not_notify_them(
        client: httpx.AsyncClient, db: Database, settings: Settings, moira: User, bob: User) -> None:
    other = await admin(db, settings, "otto")
    async with db.session() as session:
        reporter = await session.get(Account, moira.account_id)
        assert reporter is not None
        await reports.create_report(session, settings, reporter, bob.account_id)
    assert await staff_notifications(client, db, moira) == []
    assert [n["account"]["acct"] for n in await staff_notifications(client, db, other)] == ["moira"]


async def test_a_report_from_another_server_notifies_them_too(
        client: httpx.AsyncClient, db: Database, moira: User, bob: User) -> None:
    async with db.session() as session:
        actor = Account(username="remote.example", username_key="remote.example",
                        domain="remote.example", uri="https://remote.example/actor",
                        inbox_url="https://remote.example/inbox", actor_type="Application")
        session.add(actor)
        target = await session.get(Account, bob.account_id)
        assert target is not None
        await session.flush()
        await reports.record_remote_report(session, actor, target,
                                           uri="https://remote.example/flag/1", comment="spam")
        await session.commit()
    [told] = await staff_notifications(client, db, moira)
    assert told["account"]["acct"] == "remote.example@remote.example"
    assert told["report"]["comment"] == "spam" and told["report"]["target_account"]["acct"] == "bob"


@pytest.mark.parametrize("mode", ["open", "approval"])
async def test_a_sign_up_notifies_them_at_once_when_mail_is_off(
        app: Starlette, client: httpx.AsyncClient, db: Database, settings: Settings,
        moira: User, mode: str) -> None:
    app.state.easel.settings = settings.with_changes(registrations=mode)
    answer = await sign_up(client, db)
    assert answer.status_code == 200, answer.text
    [told] = await staff_notifications(client, db, moira)
    assert told["type"] == "admin.sign_up" and told["account"]["username"] == "carol"
    assert "report" not in told


async def test_with_mail_on_a_sign_up_notifies_them_once_confirmed(
        mail_app: Starlette, mail_client: httpx.AsyncClient, mailbox: Mailbox, db: Database,
        settings: Settings) -> None:
    moira = await admin(db, settings, "moira")
    answer = await sign_up(mail_client, db)
    assert answer.status_code == 200, answer.text
    assert await staff_notifications(mail_client, db, moira) == []  # not confirmed yet
    assert await deliver_mail(mail_app) == 1
    link = link_in(mailbox.last_to(SIGN_UP["email"]), "/auth/confirm?token=")
    assert (await mail_client.get(link)).status_code == 200
    [told] = await staff_notifications(mail_client, db, moira)
    assert told["type"] == "admin.sign_up" and told["account"]["username"] == "carol"
    async with db.session() as session:  # exactly one, even after the address changes later
        rows = list(await session.scalars(select(Notification).where(
            Notification.type == "admin.sign_up")))
    assert len(rows) == 1


async def test_sign_ups_are_grouped_in_v2_as_mastodon_groups_them(
        client: httpx.AsyncClient, db: Database, settings: Settings, moira: User) -> None:
    from server.services.notifications import notify_staff_of_sign_up

    for name in ("dora", "emil"):
        async with db.session() as session:
            user = await create_user(session, settings, username=name,
                                     email=f"{name}@example.com", password="a long password")
            await notify_staff_of_sign_up(session, user)
            await session.commit()
    grouped = await staff_notifications(client, db, moira, "/api/v2/notifications")
    [group] = grouped["notification_groups"]
    assert group["type"] == "admin.sign_up" and group["notifications_count"] == 2
    assert group["group_key"].startswith("admin.sign_up-")
    assert {a["username"] for a in grouped["accounts"]} == {"dora", "emil"}
