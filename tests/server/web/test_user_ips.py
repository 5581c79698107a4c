"""Where local logins are used from, on the web: recorded by the sign-in and sign-up forms
and by a web login's use (at most once per ``TOUCH_INTERVAL``); the admin account page
lists an account's addresses, each linking to the accounts list filtered by it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from html import unescape

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette
from starlette.responses import Response

from server.db import Database
from server.ids import utcnow
from server.models import User, UserIp
from server.services import user_ips
from server.services.accounts import create_user
from server.settings import Settings
from server.web.session import SESSION_COOKIE, log_in
from tests.conftest import DOMAIN
from tests.server.web.test_sign_in import sign_in
from tests.server.web.works import csrf_of

Browser = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def browser_at(app: Starlette) -> Browser:
    """A browser (its own cookie jar) whose requests come from ``ip``, signed in as ``user``."""

    @asynccontextmanager
    async def browser(ip: str, user: User | None = None) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(ip, 4711))
        async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
            if user is not None:
                response = Response()
                log_in(response, app.state.easel, user)
                cookie = response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
                http.cookies.set(SESSION_COOKIE, cookie, domain=DOMAIN)
            yield http

    return browser


async def addresses(db: Database, user_id: int) -> list[str]:
    async with db.session() as session:
        return list(await session.scalars(select(UserIp.ip).where(UserIp.user_id == user_id)
                                          .order_by(UserIp.used_at.desc(), UserIp.id.desc())))


async def test_signing_in_records_the_address(db: Database, alice: User, browser_at: Browser) -> None:
    async with browser_at("203.0.113.30") as http:
        assert (await sign_in(http, password="not it")).status_code == 422
        assert await addresses(db, alice.id) == []
        assert (await sign_in(http)).status_code == 303
    assert await addresses(db, alice.id) == ["203.0.113.30"]


async def test_signing_up_records_the_address(db: Database, browser_at: Browser) -> None:
    async with browser_at("2001:db8::30") as http:
        page = await http.get("/auth/sign_up")
        done = await http.post("/auth/sign_up", data={
            "username": "fern", "email": "fern@example.com", "password": "a fine password",
            "agreement": "1", "reason": "I draw ferns", "authenticity_token": csrf_of(page)})
    assert done.status_code == 200, done.text
    async with db.session() as session:
        fern = await session.scalar(select(User).where(User.email == "fern@example.com"))
    assert fern is not None
    assert await addresses(db, fern.id) == ["2001:db8::30"]


async def test_a_web_login_in_use_records_the_address_once_per_interval(
        db: Database, alice: User, browser_at: Browser) -> None:
    async with browser_at("192.0.2.30", alice) as http:
        assert (await http.get("/studio")).status_code == 200
    assert await addresses(db, alice.id) == ["192.0.2.30"]
    async with db.session() as session:
        user = await session.get(User, alice.id)
        assert user is not None and user.last_active_at is not None
    async with browser_at("192.0.2.31", alice) as http:
        assert (await http.get("/studio")).status_code == 200
        assert await addresses(db, alice.id) == ["192.0.2.30"]
        async with db.session() as session:
            await session.execute(update(User).values(last_active_at=utcnow() - timedelta(minutes=6)))
            await session.commit()
        assert (await http.get("/")).status_code == 200
    assert await addresses(db, alice.id) == ["192.0.2.31", "192.0.2.30"]


@pytest.fixture
async def moira(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="moira", email="moira@example.com",
                                 password="the moderator's password", admin=True)


async def test_the_admin_account_page_lists_the_addresses_as_filter_links(
        db: Database, settings: Settings, alice: User, bob: User, moira: User,
        browser_at: Browser) -> None:
    async with db.session() as session:
        for ip in ("192.0.2.1", "2001:db8::1"):
            await user_ips.record_ip(session, settings, alice.id, ip)
        await user_ips.record_ip(session, settings, bob.id, "192.0.2.2")
        await session.commit()
    async with browser_at("127.0.0.1", moira) as admin:
        page = await admin.get(f"/admin/accounts/{alice.account_id}")
        assert page.status_code == 200
        links = [unescape(link) for link in re.findall(r'href="(/admin/accounts\?ip=[^"]+)"', page.text)]
        assert sorted(links) == ["/admin/accounts?ip=192.0.2.1", "/admin/accounts?ip=2001%3Adb8%3A%3A1"]
        for link, value in zip(sorted(links), ("192.0.2.1", "2001:db8::1"), strict=True):
            listed = await admin.get(link)
            assert listed.status_code == 200 and f'value="{value}"' in listed.text
            assert "@alice" in listed.text and "@bob" not in listed.text
        network = await admin.get("/admin/accounts", params={"ip": "192.0.2.0/24"})
        assert {int(i) for i in re.findall(r'href="/admin/accounts/(\d+)"', network.text)} == {
            alice.account_id, bob.account_id}  # not moira: 127.0.0.1
        bad = await admin.get("/admin/accounts", params={"ip": "192.0.2"})
        assert bad.status_code == 422 and "is not an IP address" in bad.text
        nothing = await admin.get(f"/admin/accounts/{bob.account_id}")
        assert "192.0.2.2" in nothing.text and "2001:db8::1" not in nothing.text
