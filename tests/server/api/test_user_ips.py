"""Where local logins are used from, through the client API: recorded at registration, at
the OAuth password grant and the authorize form's sign-in, and on a token's use (at most
once per ``TOUCH_INTERVAL``); shown to moderators as Admin::Account ``ip`` and ``ips``;
and the admin account lists' ``ip`` filter (an address or a network, v1 and v2)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from server.addresses import address_key
from server.app import AppOptions, create_app
from server.db import Database
from server.ids import utcnow
from server.models import Account, OAuthToken, User, UserIp
from server.services import user_ips
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import DOMAIN, make_token
from tests.server.api.test_admin_accounts import ADMIN_SCOPES
from tests.server.api.test_oauth import authorize_query, log_in, password_grant, register_app

From = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def from_address(app: Starlette) -> From:
    """A client of the test's app whose requests come from ``ip`` (with ``token``)."""

    @asynccontextmanager
    async def client(ip: str, token: str | None = None,
                     application: Starlette | None = None) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=application or app, client=(ip, 4711))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}",
                                     headers=headers) as http:
            yield http

    return client


async def addresses(db: Database, user_id: int) -> list[str]:
    async with db.session() as session:
        return list(await session.scalars(select(UserIp.ip).where(UserIp.user_id == user_id)
                                          .order_by(UserIp.used_at.desc(), UserIp.id.desc())))


async def all_rows(db: Database) -> list[tuple[int, str]]:
    async with db.session() as session:
        return [(r.user_id, r.ip) for r in await session.scalars(select(UserIp))]


# -------------------------------------------------------------------------- recording

async def test_registration_records_the_address(db: Database, from_address: From) -> None:
    token = await make_token(db, None, "read write follow")
    async with from_address("203.0.113.5", token) as api:
        response = await api.post("/api/v1/accounts", data={
            "username": "fern", "email": "fern@example.com", "password": "a fine password",
            "agreement": "true", "reason": "I draw ferns"})
    assert response.status_code == 200, response.text
    async with db.session() as session:
        fern = await session.scalar(select(User).where(User.email == "fern@example.com"))
    assert fern is not None
    assert await addresses(db, fern.id) == ["203.0.113.5"]


async def test_the_password_grant_records_the_address(
        db: Database, alice: User, from_address: From) -> None:
    async with from_address("198.51.100.20") as http:
        app = await register_app(http)
        assert await all_rows(db) == []
        refused = await password_grant(http, app, password="wrong")
        assert refused.status_code == 400
        assert await all_rows(db) == []
        granted = await password_grant(http, app)
    assert granted.status_code == 200, granted.text
    assert await all_rows(db) == [(alice.id, "198.51.100.20")]


async def test_the_authorize_form_sign_in_records_the_address(
        db: Database, alice: User, from_address: From) -> None:
    async with from_address("2001:db8::20") as http:
        app = await register_app(http)
        wrong = await log_in(http, authorize_query(app), password="not the password")
        assert wrong.status_code == 422
        assert await all_rows(db) == []
        signed_in = await log_in(http, authorize_query(app))
    assert signed_in.status_code == 303, signed_in.text
    assert await all_rows(db) == [(alice.id, "2001:db8::20")]


async def test_a_token_use_records_the_address_once_per_interval(
        db: Database, alice: User, from_address: From) -> None:
    token = await make_token(db, alice)
    async with from_address("192.0.2.10", token) as api:
        assert (await api.get("/api/v1/accounts/verify_credentials")).status_code == 200
    assert await addresses(db, alice.id) == ["192.0.2.10"]
    async with from_address("192.0.2.11", token) as api:  # within the interval: not yet
        assert (await api.get("/api/v1/accounts/verify_credentials")).status_code == 200
        assert await addresses(db, alice.id) == ["192.0.2.10"]
        async with db.session() as session:
            await session.execute(update(OAuthToken).values(last_used_at=utcnow() - timedelta(minutes=6)))
            await session.commit()
        assert (await api.get("/api/v1/timelines/public")).status_code == 200
    assert await addresses(db, alice.id) == ["192.0.2.11", "192.0.2.10"]
    async with db.session() as session:
        user = await session.get(User, alice.id)
        stamped = await session.scalar(select(OAuthToken.last_used_at))
    assert user is not None and user.last_active_at is not None and stamped is not None
    assert utcnow() - stamped < timedelta(minutes=1)


async def test_an_app_token_records_nothing(db: Database, from_address: From) -> None:
    token = await make_token(db, None, "read")
    async with from_address("192.0.2.12", token) as api:
        assert (await api.get("/api/v1/timelines/public")).status_code == 200
    assert await all_rows(db) == []


async def test_a_retention_of_0_records_nothing(
        settings: Settings, db: Database, alice: User, from_address: From) -> None:
    application = create_app(settings.with_changes(ip_retention_days=0),
                             options=AppOptions(run_workers=False))
    token = await make_token(db, alice)
    async with application.router.lifespan_context(application):
        async with from_address("192.0.2.13", application=application) as http:
            app = await register_app(http)
            assert (await password_grant(http, app)).status_code == 200
        async with from_address("192.0.2.13", token, application=application) as api:
            assert (await api.get("/api/v1/accounts/verify_credentials")).status_code == 200
    assert await all_rows(db) == []


# ------------------------------------------------------------------ Admin::Account, ip filter

@pytest.fixture
async def moira(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="moira", email="moira@example.com",
                                 password="the moderator's password", admin=True)


async def used(db: Database, settings: Settings, user: User, *ips: str) -> None:
    """``user`` used ``ips``, the last one most recently."""
    async with db.session() as session:
        for n, ip in enumerate(ips):
            await user_ips.record_ip(session, settings, user.id, ip)
            await session.execute(update(UserIp).where(UserIp.user_id == user.id,
                                                       UserIp.ip_key == address_key(ip))
                                  .values(used_at=utcnow() - timedelta(hours=len(ips) - n)))
        await session.commit()


@pytest.fixture
async def moderator(db: Database, moira: User, from_address: From) -> AsyncIterator[httpx.AsyncClient]:
    async with from_address("127.0.0.1", await make_token(db, moira, ADMIN_SCOPES)) as api:
        yield api


async def usernames(api: httpx.AsyncClient, path: str, **params: str) -> set[str]:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    return {a["username"] for a in response.json()}


async def test_admin_accounts_show_their_addresses_newest_first(
        db: Database, settings: Settings, alice: User, bob: User, moderator: httpx.AsyncClient) -> None:
    await used(db, settings, alice, "192.0.2.1", "::ffff:198.51.100.7", "2001:db8::1")
    async with db.session() as session:
        session.add(Account(username="zed", username_key="zed", domain="remote.example",
                            uri="https://remote.example/users/zed"))
        await session.commit()
    shown = (await moderator.get(f"/api/v1/admin/accounts/{alice.account_id}")).json()
    assert shown["ip"] == "2001:db8::1"
    assert [i["ip"] for i in shown["ips"]] == ["2001:db8::1", "198.51.100.7", "192.0.2.1"]
    assert all(i["used_at"].endswith("Z") for i in shown["ips"])
    assert set(shown["ips"][0]) == {"ip", "used_at"}
    listed: dict[str, Any] = {a["username"]: a for a in
                              (await moderator.get("/api/v2/admin/accounts")).json()}
    assert listed["alice"]["ips"] == shown["ips"]
    assert (listed["bob"]["ip"], listed["bob"]["ips"]) == (None, [])
    assert (listed["zed"]["ip"], listed["zed"]["ips"]) == (None, [])
    assert listed["moira"]["ip"] == "127.0.0.1"  # her token's use


async def test_the_ip_filter_takes_an_address_or_a_network(
        db: Database, settings: Settings, alice: User, bob: User, carol: User,
        moderator: httpx.AsyncClient) -> None:
    await used(db, settings, alice, "192.0.2.1")
    await used(db, settings, bob, "192.0.2.200", "2001:db8:1::5")
    await used(db, settings, carol, "192.0.3.1")
    for path in ("/api/v1/admin/accounts", "/api/v2/admin/accounts"):
        assert await usernames(moderator, path, ip="192.0.2.1") == {"alice"}
        assert await usernames(moderator, path, ip="192.0.2.0/24") == {"alice", "bob"}
        assert await usernames(moderator, path, ip="2001:db8::/32") == {"bob"}
        assert await usernames(moderator, path, ip="2001:db8:2::/48") == set()
        assert await usernames(moderator, path, ip="127.0.0.1") == {"moira"}
        assert await usernames(moderator, path, ip="192.0.0.0/16", username="a") == {"alice", "carol"}
        for bad in ("192.0.2", "192.0.2.0/40", "example.org"):
            refused = await moderator.get(path, params={"ip": bad})
            assert refused.status_code == 422, bad
            assert refused.json()["error"].startswith("Validation failed: ip is not an IP address")


async def test_admin_reports_show_the_parties_addresses(
        db: Database, settings: Settings, alice: User, bob: User, moderator: httpx.AsyncClient,
        from_address: From) -> None:
    async with from_address("192.0.2.44", await make_token(db, alice)) as api:
        reported = await api.post("/api/v1/reports", data={"account_id": str(bob.account_id)})
    assert reported.status_code == 200, reported.text
    [report] = (await moderator.get("/api/v1/admin/reports")).json()
    assert report["account"]["ip"] == "192.0.2.44"
    assert report["target_account"]["ips"] == []
