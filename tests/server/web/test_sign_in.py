"""Signing in and out of the web session: /auth/sign_in and /auth/sign_out."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import update

from server.app import AppOptions, create_app
from server.db import Database
from server.models import User
from server.settings import Settings
from tests.server.web.works import csrf_of

PASSWORD = "correct horse battery"


async def sign_in(client: httpx.AsyncClient, login: str = "alice", password: str = PASSWORD,
                  **extra: str) -> httpx.Response:
    form = await client.get("/auth/sign_in")
    assert form.status_code == 200
    return await client.post("/auth/sign_in", data={
        "login": login, "password": password, "authenticity_token": csrf_of(form), **extra})


async def test_sign_in_form(client: httpx.AsyncClient) -> None:
    form = await client.get("/auth/sign_in?next=/@alice")
    assert form.status_code == 200
    assert '<label for="login">' in form.text and '<label for="password">' in form.text
    assert 'name="next" value="/@alice"' in form.text
    assert form.headers["cache-control"] == "no-store"
    assert "noindex" in form.headers["x-robots-tag"] and "noai" in form.headers["x-robots-tag"]
    cookie = form.headers["set-cookie"]
    assert cookie.startswith("easel_csrf=") and "HttpOnly" in cookie and "Secure" in cookie
    assert "Path=/" in cookie and "SameSite=lax" in cookie


@pytest.mark.parametrize("login", ["alice", "ALICE", "@alice", "alice@example.com", "Alice@Example.com"])
async def test_sign_in_with_username_or_email(client: httpx.AsyncClient, alice: User, login: str) -> None:
    response = await sign_in(client, login)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("easel_session="))
    assert "HttpOnly" in session_cookie and "Secure" in session_cookie and "SameSite=lax" in session_cookie
    home = await client.get("/")
    assert 'href="/@alice">@alice</a>' in home.text and 'action="/auth/sign_out"' in home.text
    assert home.headers["cache-control"] == "private, no-store"


async def test_sign_in_goes_to_next_only_if_local(client: httpx.AsyncClient, alice: User) -> None:
    response = await sign_in(client, next="/@alice?project=1")
    assert response.headers["location"] == "/@alice?project=1"
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example", "\\\\evil.example",
                 "javascript:alert(1)", "evil.example", "/ok\r\nSet-Cookie: x=1", ""):
        client.cookies.clear()
        response = await sign_in(client, next=evil)
        assert response.status_code == 303 and response.headers["location"] == "/", evil
    # Signed in already: the form sends you on, to a safe place.
    already = await client.get("/auth/sign_in?next=https://evil.example")
    assert already.status_code == 303 and already.headers["location"] == "/"


async def test_wrong_password_or_unknown_login(client: httpx.AsyncClient, alice: User) -> None:
    for login, password in (("alice", "wrong password"), ("nobody", PASSWORD), ("", ""),
                            ("alice", "")):
        response = await sign_in(client, login, password)
        assert response.status_code == 422, (login, password)
        assert "Invalid e-mail address, username or password." in response.text
        assert "easel_session" not in response.headers.get("set-cookie", "")
        assert f'value="{login}"' in response.text  # the login is kept, the password not
        assert "wrong password" not in response.text


async def test_refused_logins(client: httpx.AsyncClient, db: Database, alice: User) -> None:
    async with db.session() as session:  # pending approval: refused, no session
        await session.execute(update(User).where(User.id == alice.id).values(approved=False))
        await session.commit()
    response = await sign_in(client)
    assert response.status_code == 403 and "pending approval" in response.text
    assert "easel_session" not in response.headers.get("set-cookie", "")
    async with db.session() as session:  # disabled by a moderator and pending: refused too
        await session.execute(update(User).where(User.id == alice.id).values(disabled=True))
        await session.commit()
    assert (await sign_in(client)).status_code == 403
    async with db.session() as session:  # only disabled: its Standing page, to appeal
        await session.execute(update(User).where(User.id == alice.id).values(approved=True))
        await session.commit()
    response = await sign_in(client)
    assert response.status_code == 303 and response.headers["location"] == "/studio/standing"
    # (tests/server/web/test_account_standing.py: that session reaches nothing else)


async def test_csrf_is_checked(client: httpx.AsyncClient, alice: User) -> None:
    form = await client.get("/auth/sign_in")
    token = csrf_of(form)
    forged = await client.post("/auth/sign_in", data={
        "login": "alice", "password": PASSWORD, "authenticity_token": token[:-2] + "xx"})
    assert forged.status_code == 403 and "expired" in forged.text
    assert "easel_session" not in forged.headers.get("set-cookie", "")
    missing = await client.post("/auth/sign_in", data={"login": "alice", "password": PASSWORD})
    assert missing.status_code == 403
    client.cookies.clear()
    no_cookie = await client.post("/auth/sign_in", data={
        "login": "alice", "password": PASSWORD, "authenticity_token": token})
    assert no_cookie.status_code == 403
    # Bodies that are not forms are refused the same way, never with a 500.
    for body, content_type in ((b"[1,2]", "application/json"), (b"\xff\xfe", "multipart/form-data"),
                               (b"login=a&login=b", "application/x-www-form-urlencoded")):
        odd = await client.post("/auth/sign_in", content=body, headers={"Content-Type": content_type})
        assert odd.status_code in (400, 403), (body, odd.status_code)


async def test_sign_out(client: httpx.AsyncClient, alice: User) -> None:
    await sign_in(client)
    home = await client.get("/")
    token = csrf_of(home)
    refused = await client.post("/auth/sign_out", data={"authenticity_token": "nope"})
    assert refused.status_code == 403 and "expired" in refused.text
    assert 'href="/@alice">@alice</a>' in (await client.get("/")).text
    assert (await client.post("/auth/sign_out")).status_code == 403
    assert (await client.get("/auth/sign_out")).status_code == 405
    response = await client.post("/auth/sign_out", data={"authenticity_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert any(c.startswith("easel_session=") and ("Max-Age=0" in c or 'easel_session=""' in c)
               for c in response.headers.get_list("set-cookie"))
    assert "Sign in" in (await client.get("/")).text


async def test_a_token_from_before_signing_in_is_worthless_after(client: httpx.AsyncClient,
                                                                 alice: User) -> None:
    form = await client.get("/auth/sign_in")
    old_token = csrf_of(form)
    await client.post("/auth/sign_in", data={
        "login": "alice", "password": PASSWORD, "authenticity_token": old_token})
    refused = await client.post("/auth/sign_out", data={"authenticity_token": old_token})
    assert refused.status_code == 403


@pytest.mark.usefixtures("mid_rate_window")
async def test_sign_in_attempts_are_rate_limited(settings: Settings, alice: User) -> None:
    app = create_app(settings.with_changes(rate_limits=True), options=AppOptions(worker_threads=1))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://easel.test") as client:
            form = await client.get("/auth/sign_in")
            token = csrf_of(form)
            statuses = []
            for _ in range(27):
                response = await client.post("/auth/sign_in", data={
                    "login": "alice", "password": "wrong", "authenticity_token": token})
                statuses.append(response.status_code)
            assert statuses[:25] == [422] * 25
            assert statuses[25:] == [429, 429]
            assert "Retry-After" in response.headers and "Too many" in response.text
            # Pages are not counted as sign-in attempts.
            assert (await client.get("/auth/sign_in")).status_code == 200
