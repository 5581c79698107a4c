"""server/web/session.py: the login cookie, CSRF tokens, and render()'s headers."""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import Response

from server.db import Database
from server.models import User
from server.settings import Settings
from server.web import session as web_session
from server.web.security import CONTENT_SECURITY_POLICY
from tests.server.web.works import csrf_of


def _request(cookies: dict[str, str]) -> Request:
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": b"",
                    "headers": [(b"cookie", header.encode())] if header else []})


class _State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def test_csrf_token_round_trip_and_forgeries(settings: Settings) -> None:
    state = _State(settings)
    token, cookie = web_session.csrf_token(_request({}), state)  # type: ignore[arg-type]
    assert cookie is not None and len(cookie) >= 32
    with_cookie = _request({web_session.CSRF_COOKIE: cookie})
    assert web_session.csrf_ok(with_cookie, state, token)  # type: ignore[arg-type]
    # The same browser gets the same token and no new cookie.
    assert web_session.csrf_token(with_cookie, state) == (token, None)  # type: ignore[arg-type]
    assert not web_session.csrf_ok(with_cookie, state, None)  # type: ignore[arg-type]
    assert not web_session.csrf_ok(with_cookie, state, "")  # type: ignore[arg-type]
    assert not web_session.csrf_ok(with_cookie, state, token[:-1] + "x")  # type: ignore[arg-type]
    assert not web_session.csrf_ok(with_cookie, state, "é" * 40)  # type: ignore[arg-type]
    # Another browser's cookie, or none, makes the token worthless.
    other = _request({web_session.CSRF_COOKIE: "o" * 43})
    assert not web_session.csrf_ok(other, state, token)  # type: ignore[arg-type]
    assert not web_session.csrf_ok(_request({}), state, token)  # type: ignore[arg-type]
    short = _request({web_session.CSRF_COOKIE: "short"})
    assert not web_session.csrf_ok(short, state, web_session._token_for(state, "short"))  # type: ignore[arg-type]


def test_cookie_flags(settings: Settings, alice: User) -> None:
    state = _State(settings)
    response = Response()
    web_session.log_in(response, state, alice)  # type: ignore[arg-type]
    web_session.set_csrf_cookie(response, state, "c" * 43)  # type: ignore[arg-type]
    cookies = response.headers.getlist("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("easel_session=") and "Max-Age=604800" in c)
    for cookie in (session_cookie, cookies[-1]):
        assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie
        assert "Path=/;" in cookie or cookie.endswith("Path=/")
    # log_in drops the CSRF cookie: a token seen before signing in is worth nothing after.
    assert any(c.startswith('easel_csrf=""') or "easel_csrf=;" in c or
               ("easel_csrf=" in c and "Max-Age=0" in c) for c in cookies)
    plain = Response()
    web_session.log_in(plain, _State(settings.with_changes(scheme="http")), alice)  # type: ignore[arg-type]
    assert "Secure" not in plain.headers["set-cookie"]


async def test_a_changed_password_ends_the_session(client: httpx.AsyncClient, db: Database,
                                                  alice: User) -> None:
    form = await client.get("/auth/sign_in")
    signed_in = await client.post("/auth/sign_in", data={
        "login": "alice", "password": "correct horse battery",
        "authenticity_token": csrf_of(form)})
    assert signed_in.status_code == 303
    assert "@alice" in (await client.get("/")).text
    async with db.session() as session:
        user = await session.get(User, alice.id)
        assert user is not None
        user.password_hash = user.password_hash + "x"
        await session.commit()
    assert "Sign in" in (await client.get("/")).text


async def test_forged_or_expired_session_cookies_are_ignored(client: httpx.AsyncClient,
                                                             alice: User) -> None:
    for value in ("", "garbage", "a.b.c", "1:x.123.sig", "9" * 40 + ".1.x"):
        client.cookies.set("easel_session", value, domain="easel.test")
        page = await client.get("/")
        assert page.status_code == 200 and "Sign in" in page.text


async def test_every_page_has_the_security_headers(client: httpx.AsyncClient, alice: User) -> None:
    for path in ("/", "/works", "/@alice", "/tags/ink", "/auth/sign_in", "/@nobody", "/@alice/1",
                 "/oauth/authorize"):
        page = await client.get(path)
        assert page.status_code in (200, 400, 404), path
        headers = page.headers
        assert headers["content-security-policy"].startswith(CONTENT_SECURITY_POLICY.split(";")[0])
        for directive in ("default-src 'none'", "img-src 'self' data:", "style-src 'self'",
                          "script-src 'self'", "form-action 'self'", "frame-ancestors 'none'",
                          "base-uri 'none'"):
            assert directive in headers["content-security-policy"], (path, directive)
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"]
        assert "camera=()" in headers["permissions-policy"]
        assert headers["strict-transport-security"].startswith("max-age=")
        assert "noai" in headers["x-robots-tag"] and "noimageai" in headers["x-robots-tag"]
        assert headers["content-type"].startswith("text/html")
        # No inline styles or scripts anywhere (the CSP would block them).
        assert "style=" not in page.text and "<style" not in page.text
        assert "<script" not in page.text, path
        assert '<meta name="robots" content="noai, noimageai">' in page.text
        assert '<meta name="tdm-reservation" content="1">' in page.text
