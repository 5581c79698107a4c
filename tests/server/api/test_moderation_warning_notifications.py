"""Mastodon 4.3's ``moderation_warning`` notification for a warned local user.

Given a moderator's action on a local account (with the default e-mail notification), I
expect the person to find a ``moderation_warning`` notification whose ``moderation_warning``
is the warning (id, action, text, status_ids, target_account, appeal null, created_at),
in v1 and grouped v2 notifications, selectable and excludable with the ``types`` filters;
none when the moderator asks for no notification, none for a remote account, and an
action refused for bad input leaves no notification.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from server.db import Database
from server.models import Account, AccountWarning, Notification, User
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import authorized, make_token

ADMIN_SCOPES = "read write admin:read admin:write"


@pytest.fixture
async def root_api(client: httpx.AsyncClient, db: Database,
                   settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with db.session() as session:
        root = await create_user(session, settings, username="moira", email="moira@example.com",
                                 password="the moderator's password", admin=True)
    async with authorized(client, await make_token(db, root, ADMIN_SCOPES)) as http:
        yield http


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def act(api: httpx.AsyncClient, account_id: int, **body: str) -> None:
    answer = await api.post(f"/api/v1/admin/accounts/{account_id}/action", data=body)
    assert answer.status_code == 200, answer.text


async def test_a_warned_user_gets_a_moderation_warning_notification(
        root_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice_api: httpx.AsyncClient,
        db: Database, bob: User) -> None:
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")  # a follow: another type
    await act(root_api, bob.account_id, type="sensitive", text="Mark your nudes, please.")
    async with db.session() as session:
        warning = await session.scalar(select(AccountWarning))
        assert warning is not None
    everything = (await bob_api.get("/api/v1/notifications")).json()
    assert [n["type"] for n in everything] == ["moderation_warning", "follow"]
    notification = everything[0]
    assert notification["account"]["id"] == str(bob.account_id)
    entity = notification["moderation_warning"]
    assert entity == {
        "id": str(warning.id), "action": "sensitive", "text": "Mark your nudes, please.",
        "status_ids": [], "target_account": entity["target_account"], "appeal": None,
        "created_at": entity["created_at"]}
    assert entity["target_account"]["id"] == str(bob.account_id)
    assert "moderation_warning" not in everything[1]

    only = (await bob_api.get("/api/v1/notifications",
                              params={"types[]": "moderation_warning"})).json()
    assert [n["id"] for n in only] == [notification["id"]]
    without = (await bob_api.get("/api/v1/notifications",
                                 params={"exclude_types[]": "moderation_warning"})).json()
    assert [n["type"] for n in without] == ["follow"]
    single = (await bob_api.get(f"/api/v1/notifications/{notification['id']}")).json()
    assert single["moderation_warning"] == entity

    grouped = (await bob_api.get("/api/v2/notifications")).json()
    [group] = [g for g in grouped["notification_groups"] if g["type"] == "moderation_warning"]
    assert group["moderation_warning"] == entity
    assert group["sample_account_ids"] == [str(bob.account_id)]


async def test_no_notification_when_not_asked_for_or_not_local_or_refused(
        root_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database,
        bob: User) -> None:
    await act(root_api, bob.account_id, type="none", text="quiet",
              send_email_notification="false")
    async with db.session() as session:
        remote = Account(username="zed", username_key="zed", domain="remote.example",
                         uri="https://remote.example/users/zed")
        session.add(remote)
        await session.commit()
    await act(root_api, remote.id, type="silence", text="spam")
    refused = await root_api.post(f"/api/v1/admin/accounts/{bob.account_id}/action",
                                  data={"type": "banish"})
    assert refused.status_code == 422
    too_long = await root_api.post(f"/api/v1/admin/accounts/{bob.account_id}/action",
                                   data={"type": "none", "text": "x" * 5001})
    assert too_long.status_code == 422
    assert await count(db, AccountWarning) == 2
    assert await count(db, Notification) == 0
    assert (await bob_api.get("/api/v1/notifications")).json() == []


async def test_a_normal_user_cannot_warn(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database,
        bob: User) -> None:
    answer = await alice_api.post(f"/api/v1/admin/accounts/{bob.account_id}/action",
                                  data={"type": "none", "text": "ha"})
    assert answer.status_code == 403
    assert await count(db, Notification) == 0


async def test_an_appeal_filed_through_the_api_shows_on_the_warning_and_notification(
        root_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice_api: httpx.AsyncClient,
        client: httpx.AsyncClient, db: Database, bob: User) -> None:
    from tests.conftest import authorized, make_token

    await act(root_api, bob.account_id, type="silence", text="Too many ads.")
    [warning] = (await bob_api.get("/api/v1/easel/account_warnings")).json()
    assert warning["appeal"] is None and warning["overruled_at"] is None
    url = f"/api/v1/easel/account_warnings/{warning['id']}/appeal"
    for body, status, error in (({}, 422, "Validation failed: Text can't be blank"),
                                ({"text": "x" * 2001}, 422,
                                 "Validation failed: Text is too long (maximum is 2000 characters)")):
        refused = await bob_api.post(url, json=body)
        assert (refused.status_code, refused.json()) == (status, {"error": error})
    assert (await alice_api.post(url, json={"text": "not mine"})).status_code == 404
    async with authorized(client, await make_token(db, bob, "read")) as reader:
        assert (await reader.post(url, json={"text": "no scope"})).status_code == 403
    filed = await bob_api.post(url, json={"text": "They were my own prints, not ads."})
    assert filed.status_code == 200, filed.text
    assert filed.json()["appeal"] == {"text": "They were my own prints, not ads.",
                                      "state": "pending"}
    again = await bob_api.post(url, json={"text": "again"})
    assert again.status_code == 422 and "already been appealed" in again.json()["error"]
    [notification] = (await bob_api.get("/api/v1/notifications",
                                        params={"types[]": "moderation_warning"})).json()
    assert notification["moderation_warning"]["appeal"]["state"] == "pending"
