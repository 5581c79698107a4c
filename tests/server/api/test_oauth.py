"""OAuth as a Mastodon app meets it: the authorize pages driven like a browser, every grant
of /oauth/token, revocation, and the RFC 8414 metadata."""

from __future__ import annotations

import base64
import html
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import utcnow
from server.models import OAuthApplication, OAuthAuthorizationCode, OAuthToken, User
from server.services.oauth import s256_challenge
from server.services.passwords import hash_password
from server.services.scopes import ALL_SCOPES
from tests.conftest import authorized

REDIRECT = "https://client.example/callback"
OOB = "urn:ietf:wg:oauth:2.0:oob"
VERIFIER = "dBjftJeZ4CVP-mJ92jnb8Sq4xZjvnAAOKWm1Z9kqcWU"
CSRF_RE = re.compile(r'name="authenticity_token" value="([^"]+)"')


async def register_app(client: httpx.AsyncClient, scopes: str = "read write follow",
                       redirect_uris: str = f"{REDIRECT}\n{OOB}", name: str = "Pinafore") -> dict[str, Any]:
    response = await client.post("/api/v1/apps", data={
        "client_name": name, "redirect_uris": redirect_uris, "scopes": scopes,
        "website": "https://client.example"})
    assert response.status_code == 200, response.text
    return response.json()


async def password_grant(client: httpx.AsyncClient, app: dict[str, Any], username: str = "alice@example.com",
                         password: str = "correct horse battery", **extra: str) -> httpx.Response:
    return await client.post("/oauth/token", data={
        "grant_type": "password", "client_id": app["client_id"], "client_secret": app["client_secret"],
        "username": username, "password": password, **extra})


def authorize_query(app: dict[str, Any], **extra: str) -> str:
    params = {"client_id": app["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
              "scope": "read write", "state": "s-123", **extra}
    return "/oauth/authorize?" + urlencode(params)


def csrf_of(page: httpx.Response) -> str:
    match = CSRF_RE.search(page.text)
    assert match, page.text
    return match.group(1)


def hidden_fields(page: httpx.Response) -> dict[str, str]:
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    return {name: html.unescape(value) for name, value in fields.items()}


async def log_in(client: httpx.AsyncClient, query: str, login: str = "alice",
                 password: str = "correct horse battery") -> httpx.Response:
    page = await client.get(query)
    assert page.status_code == 200, page.text
    assert 'name="password"' in page.text
    return await client.post("/oauth/authorize/login", data={
        **hidden_fields(page), "login": login, "password": password})


async def consent(client: httpx.AsyncClient, query: str, decision: str = "authorize") -> httpx.Response:
    page = await client.get(query)
    assert page.status_code == 200 and 'value="authorize"' in page.text, page.text
    return await client.post("/oauth/authorize", data={**hidden_fields(page), "decision": decision})


async def authorize_code(client: httpx.AsyncClient, app: dict[str, Any], **extra: str) -> str:
    query = authorize_query(app, **extra)
    logged_in = await log_in(client, query)
    assert logged_in.status_code == 303, logged_in.text
    answer = await consent(client, logged_in.headers["location"])
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    values = parse_qs(location.query)
    return values["code"][0]


async def exchange(client: httpx.AsyncClient, app: dict[str, Any], code: str, **extra: str) -> httpx.Response:
    return await client.post("/oauth/token", data={
        "grant_type": "authorization_code", "client_id": app["client_id"],
        "client_secret": app["client_secret"], "code": code, "redirect_uri": REDIRECT, **extra})


async def token_works(client: httpx.AsyncClient, token: str) -> int:
    async with authorized(client, token) as api:
        return (await api.get("/api/v1/preferences")).status_code


async def count(db: Database, model: Any) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


# ------------------------------------------------------------------- authorization code

async def test_the_authorize_pages_lead_to_a_code_and_a_token(
    client: httpx.AsyncClient, alice: User, db: Database
) -> None:
    app = await register_app(client)
    query = authorize_query(app)
    page = await client.get(query)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert "Pinafore" in page.text and csrf_of(page)

    logged_in = await client.post("/oauth/authorize/login", data={
        **hidden_fields(page), "login": "alice@example.com", "password": "correct horse battery"})
    assert logged_in.status_code == 303
    assert "easel_session" in logged_in.headers["set-cookie"]
    assert "HttpOnly" in logged_in.headers["set-cookie"]

    consent_page = await client.get(logged_in.headers["location"])
    assert consent_page.status_code == 200
    assert "@alice@easel.test" in consent_page.text
    assert "<code>read</code>" in consent_page.text and "<code>write</code>" in consent_page.text
    assert 'value="deny"' in consent_page.text

    answer = await client.post("/oauth/authorize", data={**hidden_fields(consent_page),
                                                         "decision": "authorize"})
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    values = parse_qs(location.query)
    assert values["state"] == ["s-123"]

    response = await exchange(client, app, values["code"][0])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "read write"
    assert isinstance(body["created_at"], int) and body["refresh_token"]
    assert response.headers["cache-control"] == "no-store"
    assert await token_works(client, body["access_token"]) == 200
    async with db.session() as session:
        stored = (await session.scalars(select(OAuthAuthorizationCode))).all()
    assert len(stored) == 1 and stored[0].used_at is not None
    assert values["code"][0] not in stored[0].code_digest


async def test_a_code_works_only_once(client: httpx.AsyncClient, alice: User) -> None:
    app = await register_app(client)
    code = await authorize_code(client, app)
    assert (await exchange(client, app, code)).status_code == 200
    again = await exchange(client, app, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert "error_description" in again.json()


async def test_an_expired_code_is_refused(client: httpx.AsyncClient, alice: User, db: Database) -> None:
    app = await register_app(client)
    code = await authorize_code(client, app)
    async with db.session() as session:
        await session.execute(update(OAuthAuthorizationCode)
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    response = await exchange(client, app, code)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_a_code_needs_the_same_redirect_uri_and_client(client: httpx.AsyncClient, alice: User) -> None:
    app = await register_app(client)
    other = await register_app(client, name="Other")
    code = await authorize_code(client, app)
    wrong_uri = await exchange(client, app, code, redirect_uri=OOB)
    assert wrong_uri.status_code == 400 and wrong_uri.json()["error"] == "invalid_grant"
    wrong_client = await exchange(client, other, code)
    assert wrong_client.status_code == 400 and wrong_client.json()["error"] == "invalid_grant"
    missing = await client.post("/oauth/token", data={
        "grant_type": "authorization_code", "client_id": app["client_id"],
        "client_secret": app["client_secret"], "code": code})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    # None of the failures used the code up.
    assert (await exchange(client, app, code)).status_code == 200


async def test_pkce_s256_is_checked(client: httpx.AsyncClient, alice: User) -> None:
    app = await register_app(client)
    code = await authorize_code(client, app, code_challenge=s256_challenge(VERIFIER),
                                code_challenge_method="S256")
    no_verifier = await exchange(client, app, code)
    assert no_verifier.status_code == 400 and no_verifier.json()["error"] == "invalid_grant"
    wrong = await exchange(client, app, code, code_verifier="x" * 43)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    right = await exchange(client, app, code, code_verifier=VERIFIER)
    assert right.status_code == 200, right.text


async def test_pkce_methods_other_than_s256_are_refused_clearly(
    client: httpx.AsyncClient, alice: User
) -> None:
    app = await register_app(client)
    for extra in ({"code_challenge": VERIFIER, "code_challenge_method": "plain"},
                  {"code_challenge": VERIFIER}):
        response = await client.get(authorize_query(app, **extra))
        assert response.status_code == 302
        values = parse_qs(urlsplit(response.headers["location"]).query)
        assert values["error"] == ["invalid_request"]
        assert "S256" in values["error_description"][0]
        assert values["state"] == ["s-123"]


async def test_the_oob_redirect_shows_the_code_on_a_page(client: httpx.AsyncClient, alice: User) -> None:
    app = await register_app(client)
    query = authorize_query(app, redirect_uri=OOB)
    logged_in = await log_in(client, query)
    answer = await consent(client, logged_in.headers["location"])
    assert answer.status_code == 200
    code = re.search(r'class="code" readonly size="50" value="([^"]+)"', answer.text)
    assert code is not None
    response = await exchange(client, app, code.group(1), redirect_uri=OOB)
    assert response.status_code == 200, response.text


async def test_deny_sends_access_denied_back(client: httpx.AsyncClient, alice: User, db: Database) -> None:
    app = await register_app(client)
    logged_in = await log_in(client, authorize_query(app))
    answer = await consent(client, logged_in.headers["location"], decision="deny")
    assert answer.status_code == 302
    values = parse_qs(urlsplit(answer.headers["location"]).query)
    assert values["error"] == ["access_denied"] and values["state"] == ["s-123"]
    assert await count(db, OAuthAuthorizationCode) == 0


async def test_a_fragment_response_mode_puts_the_code_in_the_fragment(client: httpx.AsyncClient,
                                                                      alice: User) -> None:
    app = await register_app(client)
    logged_in = await log_in(client, authorize_query(app, response_mode="fragment"))
    answer = await consent(client, logged_in.headers["location"])
    location = urlsplit(answer.headers["location"])
    assert location.query == "" and "code" in parse_qs(location.fragment)


async def test_bad_authorize_requests_are_shown_or_sent_back(client: httpx.AsyncClient, alice: User) -> None:
    app = await register_app(client, scopes="read")
    unknown = await client.get(authorize_query({"client_id": "nope"}))
    assert unknown.status_code == 400 and "text/html" in unknown.headers["content-type"]
    assert "invalid_client" in unknown.text
    # An unregistered redirect URI is never redirected to.
    foreign = await client.get(authorize_query(app, redirect_uri="https://evil.example/cb"))
    assert foreign.status_code == 400 and "location" not in foreign.headers
    assert "invalid_redirect_uri" in foreign.text
    escalated = await client.get(authorize_query(app, scope="read write"))
    assert escalated.status_code == 302
    assert parse_qs(urlsplit(escalated.headers["location"]).query)["error"] == ["invalid_scope"]
    unknown_scope = await client.get(authorize_query(app, scope="read delete:all"))
    assert parse_qs(urlsplit(unknown_scope.headers["location"]).query)["error"] == ["invalid_scope"]
    token_type = await client.get(authorize_query(app, response_type="token", scope="read"))
    assert parse_qs(urlsplit(token_type.headers["location"]).query)["error"] == [
        "unsupported_response_type"]
    oob_error = await client.get(authorize_query(app, redirect_uri=OOB, scope="admin:write"))
    assert oob_error.status_code == 400 and "invalid_scope" in oob_error.text


async def test_the_login_form_refuses_wrong_passwords_and_forged_posts(
    client: httpx.AsyncClient, alice: User
) -> None:
    app = await register_app(client)
    query = authorize_query(app)
    wrong = await log_in(client, query, password="not the password")
    assert wrong.status_code == 422
    assert "Invalid e-mail address, username or password." in wrong.text
    assert "set-cookie" not in wrong.headers or "easel_session" not in wrong.headers["set-cookie"]
    page = await client.get(query)
    fields = hidden_fields(page)
    forged = await client.post("/oauth/authorize/login", data={
        **fields, "authenticity_token": "forged", "login": "alice", "password": "correct horse battery"})
    assert forged.status_code == 403 and "easel_session" not in forged.headers.get("set-cookie", "")
    client.cookies.clear()
    no_cookie = await client.post("/oauth/authorize/login", data={
        **fields, "login": "alice", "password": "correct horse battery"})
    assert no_cookie.status_code == 403


async def test_a_user_pending_approval_cannot_log_in(
    client: httpx.AsyncClient, alice: User, db: Database
) -> None:
    async with db.session() as session:
        await session.execute(update(User).where(User.id == alice.id).values(approved=False))
        await session.commit()
    app = await register_app(client)
    response = await log_in(client, authorize_query(app))
    assert response.status_code == 403 and "pending approval" in response.text


async def test_consent_needs_a_login_and_a_csrf_token(client: httpx.AsyncClient, alice: User,
                                                      db: Database) -> None:
    app = await register_app(client)
    logged_in = await log_in(client, authorize_query(app))
    page = await client.get(logged_in.headers["location"])
    fields = {**hidden_fields(page), "decision": "authorize"}
    forged = await client.post("/oauth/authorize", data={**fields, "authenticity_token": "x"})
    assert forged.status_code == 403
    client.cookies.delete("easel_session")
    logged_out = await client.post("/oauth/authorize", data=fields)
    assert logged_out.status_code == 401 and 'name="password"' in logged_out.text
    assert await count(db, OAuthAuthorizationCode) == 0


async def test_force_login_and_a_new_password_end_the_session(
    client: httpx.AsyncClient, alice: User, db: Database
) -> None:
    app = await register_app(client)
    logged_in = await log_in(client, authorize_query(app))
    consent_query = logged_in.headers["location"]
    assert 'value="authorize"' in (await client.get(consent_query)).text
    forced = await client.get(consent_query + "&force_login=true")
    assert 'name="password"' in forced.text and 'value="authorize"' not in forced.text
    async with db.session() as session:
        await session.execute(update(User).where(User.id == alice.id)
                              .values(password_hash=hash_password("a brand new password")))
        await session.commit()
    assert 'name="password"' in (await client.get(consent_query)).text


async def test_pages_escape_what_apps_and_clients_send(client: httpx.AsyncClient, alice: User) -> None:
    app = await register_app(client, name="<script>alert(1)</script>")
    query = authorize_query(app, state='"><script>x</script>')
    page = await client.get(query)
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert '"><script>x</script>' not in page.text
    logged_in = await client.post("/oauth/authorize/login", data={
        **hidden_fields(page), "login": "alice", "password": "correct horse battery"})
    answer = await consent(client, logged_in.headers["location"])
    assert parse_qs(urlsplit(answer.headers["location"]).query)["state"] == ['"><script>x</script>']


# ------------------------------------------------------------------------- other grants

async def test_password_grant_accepts_email_or_username(client: httpx.AsyncClient, alice: User) -> None:
    app = await register_app(client)
    by_email = await password_grant(client, app, scope="read write")
    assert by_email.status_code == 200, by_email.text
    assert by_email.json()["scope"] == "read write"
    by_name = await password_grant(client, app, username="alice")
    assert by_name.status_code == 200 and by_name.json()["scope"] == "read"
    assert await token_works(client, by_name.json()["access_token"]) == 200


async def test_password_grant_refusals(client: httpx.AsyncClient, alice: User, db: Database) -> None:
    app = await register_app(client, scopes="read")
    wrong = await password_grant(client, app, password="wrong password")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    unknown = await password_grant(client, app, username="nobody@example.com")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"
    escalation = await password_grant(client, app, scope="read write")
    assert escalation.status_code == 400 and escalation.json()["error"] == "invalid_scope"
    bad_secret = await client.post("/oauth/token", data={
        "grant_type": "password", "client_id": app["client_id"], "client_secret": "wrong",
        "username": "alice", "password": "correct horse battery"})
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    no_client = await client.post("/oauth/token", data={
        "grant_type": "password", "username": "alice", "password": "correct horse battery"})
    assert no_client.status_code == 401 and no_client.json()["error"] == "invalid_client"
    for change in ({"disabled": True}, {"approved": False}, {"confirmed_at": None}):
        async with db.session() as session:
            await session.execute(update(User).where(User.id == alice.id).values(
                disabled=False, approved=True, confirmed_at=utcnow()))
            await session.execute(update(User).where(User.id == alice.id).values(**change))
            await session.commit()
        refused = await password_grant(client, app)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", change
    assert await count(db, OAuthToken) == 0


async def test_unknown_and_missing_grant_types(client: httpx.AsyncClient) -> None:
    app = await register_app(client)
    unknown = await client.post("/oauth/token", data={
        "grant_type": "implicit", "client_id": app["client_id"], "client_secret": app["client_secret"]})
    assert unknown.status_code == 400 and unknown.json()["error"] == "unsupported_grant_type"
    missing = await client.post("/oauth/token", data={"client_id": app["client_id"]})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    malformed = await client.post("/oauth/token", content=b"{oops",
                                  headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"] == "invalid_request"
    wrong_type = await client.post("/oauth/token", json={"grant_type": {"nested": 1}})
    assert wrong_type.status_code == 400 and wrong_type.json()["error"] == "invalid_request"


async def test_client_credentials_with_basic_auth_and_json(client: httpx.AsyncClient, db: Database) -> None:
    app = await register_app(client, scopes="read write:accounts")
    basic = base64.b64encode(f"{app['client_id']}:{app['client_secret']}".encode()).decode()
    response = await client.post("/oauth/token", json={
        "grant_type": "client_credentials", "scope": "write:accounts", "unknown_field": "ignored"},
        headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "write:accounts" and "refresh_token" not in body
    async with authorized(client, body["access_token"]) as api:
        assert (await api.get("/api/v1/apps/verify_credentials")).json()["name"] == "Pinafore"
    async with db.session() as session:
        token = await session.scalar(select(OAuthToken))
    assert token is not None and token.user_id is None
    escalation = await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "scope": "write", "client_id": app["client_id"],
        "client_secret": app["client_secret"]})
    assert escalation.status_code == 400 and escalation.json()["error"] == "invalid_scope"


async def test_refresh_rotates_both_tokens(client: httpx.AsyncClient, alice: User) -> None:
    app = await register_app(client)
    first = (await password_grant(client, app, scope="read write")).json()
    refreshed = await client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
        "client_id": app["client_id"], "client_secret": app["client_secret"]})
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["scope"] == "read write"
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert await token_works(client, first["access_token"]) == 401
    assert await token_works(client, second["access_token"]) == 200
    reused = await client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
        "client_id": app["client_id"], "client_secret": app["client_secret"]})
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    other = await register_app(client, name="Other")
    stolen = await client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": second["refresh_token"],
        "client_id": other["client_id"], "client_secret": other["client_secret"]})
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    wider = await client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": second["refresh_token"], "scope": "read write follow",
        "client_id": app["client_id"], "client_secret": app["client_secret"]})
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


# ------------------------------------------------------------------------------- revoke

async def test_revoke_ends_a_token(client: httpx.AsyncClient, alice: User, db: Database) -> None:
    app = await register_app(client)
    issued = (await password_grant(client, app)).json()
    response = await client.post("/oauth/revoke", data={
        "client_id": app["client_id"], "client_secret": app["client_secret"],
        "token": issued["access_token"]})
    assert response.status_code == 200 and response.json() == {}
    assert await token_works(client, issued["access_token"]) == 401
    async with db.session() as session:
        token = await session.scalar(select(OAuthToken))
    assert token is not None and token.revoked_at is not None
    refresh = await client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": issued["refresh_token"],
        "client_id": app["client_id"], "client_secret": app["client_secret"]})
    assert refresh.status_code == 400


async def test_revoking_by_refresh_token_and_unknown_tokens(client: httpx.AsyncClient, alice: User) -> None:
    app = await register_app(client)
    issued = (await password_grant(client, app)).json()
    by_refresh = await client.post("/oauth/revoke", data={
        "client_id": app["client_id"], "client_secret": app["client_secret"],
        "token": issued["refresh_token"]})
    assert by_refresh.status_code == 200
    assert await token_works(client, issued["access_token"]) == 401
    unknown = await client.post("/oauth/revoke", data={
        "client_id": app["client_id"], "client_secret": app["client_secret"], "token": "no-such-token"})
    assert unknown.status_code == 200 and unknown.json() == {}


async def test_revoke_needs_the_owning_client(client: httpx.AsyncClient, alice: User) -> None:
    app = await register_app(client)
    other = await register_app(client, name="Other")
    issued = (await password_grant(client, app)).json()
    wrong_secret = await client.post("/oauth/revoke", data={
        "client_id": app["client_id"], "client_secret": "wrong", "token": issued["access_token"]})
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    foreign = await client.post("/oauth/revoke", data={
        "client_id": other["client_id"], "client_secret": other["client_secret"],
        "token": issued["access_token"]})
    assert foreign.status_code == 403 and foreign.json()["error"] == "unauthorized_client"
    assert await token_works(client, issued["access_token"]) == 200


# ----------------------------------------------------------------------------- metadata

async def test_authorization_server_metadata(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    body = response.json()
    base = "https://easel.test"
    assert body["issuer"] == f"{base}/"
    assert body["authorization_endpoint"] == f"{base}/oauth/authorize"
    assert body["token_endpoint"] == f"{base}/oauth/token"
    assert body["revocation_endpoint"] == f"{base}/oauth/revoke"
    assert body["app_registration_endpoint"] == f"{base}/api/v1/apps"
    assert set(body["scopes_supported"]) == ALL_SCOPES
    assert body["response_types_supported"] == ["code"]
    assert "query" in body["response_modes_supported"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert sorted(body["grant_types_supported"]) == sorted(
        ["authorization_code", "password", "client_credentials", "refresh_token"])
    assert "client_secret_basic" in body["token_endpoint_auth_methods_supported"]
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("grant_type", ["authorization_code", "password", "client_credentials",
                                        "refresh_token"])
async def test_every_advertised_grant_type_is_served(client: httpx.AsyncClient, grant_type: str) -> None:
    app = await register_app(client)
    response = await client.post("/oauth/token", data={
        "grant_type": grant_type, "client_id": app["client_id"], "client_secret": app["client_secret"]})
    assert response.json().get("error") != "unsupported_grant_type"


async def test_tokens_are_stored_only_as_digests(
    client: httpx.AsyncClient, alice: User, db: Database
) -> None:
    app = await register_app(client)
    issued = (await password_grant(client, app)).json()
    async with db.session() as session:
        token = await session.scalar(select(OAuthToken))
        stored_app = await session.scalar(select(OAuthApplication))
    assert token is not None and stored_app is not None
    assert issued["access_token"] not in (token.token_digest, token.refresh_token_digest)
    assert len(token.token_digest) == 64


@pytest.mark.parametrize(("redirect_uri", "form_targets"), [
    (REDIRECT, "'self' https://client.example"),
    ("myapp://oauth/callback", "'self' myapp:"),
    ("http://127.0.0.1:8765/cb", "'self' http://127.0.0.1:8765"),
    (OOB, "'self'"),
])
async def test_the_consent_page_may_post_to_where_its_answer_redirects(
        client: httpx.AsyncClient, alice: User, redirect_uri: str, form_targets: str) -> None:
    # Browsers apply form-action to the redirect after a form post: the app's redirect
    # URI's origin (or custom scheme) must be allowed, and nothing else.
    app = await register_app(client, redirect_uris=redirect_uri)
    logged_in = await log_in(client, authorize_query(app, redirect_uri=redirect_uri))
    page = await client.get(logged_in.headers["location"])
    assert 'value="authorize"' in page.text
    policy = dict(part.split(" ", 1) for part in page.headers["content-security-policy"].split("; "))
    assert policy["form-action"] == form_targets
    assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"


@pytest.mark.parametrize(("uri", "source"), [
    ("https://Client.Example:8443/cb?x=1", "https://client.example:8443"),
    ("com.example.app:/oauth", "com.example.app:"),
    ("https://x@a.example;sandbox/cb", None),
    ("https://[::1]:9/cb", "https://[::1]:9"),
    ("urn:ietf:wg:oauth:2.0:oob", None),
    ("javascript alert(1)", None),
    ("https://a.example:99999/", None),
])
def test_csp_sources_are_written_only_when_safe(uri: str, source: str | None) -> None:
    from server.web.security import source_of

    assert source_of(uri) == source
