"""Token and scope abuse against every authenticated client API endpoint.

The endpoints come from the route table (tests/attacks/api_routes.py): a new endpoint is
attacked as soon as it exists, and one that should be public must be named in PUBLIC on
purpose. For each endpoint: no token → 401; a revoked token → 401; a token without the
needed scope → 403; an app-only (client_credentials) token where a user is needed → 422
(Mastodon's "This method requires an authenticated user"); a normal user on an admin
endpoint → 403; another user's private resources → 404. Always the
``{"error": ...}`` body, never a 5xx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import update

from server.db import Database
from server.ids import utcnow
from server.models import OAuthToken, User
from server.services.tokens import token_digest
from tests.attacks.api_routes import Endpoint, endpoints
from tests.conftest import authorized, make_token

EVERY_SCOPE = "read write follow push admin:read admin:write"
# Endpoints anyone may call without a token (Mastodon's public ones, and app registration).
PUBLIC = {
    "POST /api/v1/apps", "GET /api/v1/instance", "GET /api/v2/instance",
    "GET /api/v1/instance/rules", "GET /api/v1/instance/peers", "GET /api/v1/custom_emojis",
    "GET /api/v1/streaming/health", "GET /api/v1/trends", "GET /api/v1/trends/tags",
    "GET /api/v1/trends/statuses", "GET /api/v1/trends/links", "GET /api/v1/accounts/lookup",
    "GET /api/v1/accounts", "GET /api/v1/accounts/{id}", "GET /api/v1/accounts/{id}/statuses",
    "GET /api/v1/accounts/{id}/followers", "GET /api/v1/accounts/{id}/following",
    "GET /api/v1/accounts/{id}/featured_tags", "GET /api/v1/tags/{name}",
    "GET /api/v1/statuses", "GET /api/v1/statuses/{id}", "GET /api/v1/statuses/{id}/history",
    "GET /api/v1/statuses/{id}/context", "GET /api/v1/statuses/{id}/favourited_by",
    "GET /api/v1/statuses/{id}/reblogged_by", "GET /api/v1/polls/{id}",
    "GET /api/v1/timelines/public", "GET /api/v1/timelines/tag/{hashtag}", "GET /api/v2/search",
    "GET /api/v1/instance/domain_blocks",  # 404 unless show_domain_blocks allows it
    "GET /api/v1/instance/extended_description", "GET /api/v1/instance/languages",
    "GET /api/v1/instance/translation_languages", "GET /api/v1/instance/activity",
    "GET /api/v1/instance/privacy_policy",  # 404: Easel has none
    "GET /api/v1/easel/vocabulary", "GET /api/v1/easel/works", "GET /api/v1/easel/works/{id}",
    "GET /api/v1/easel/accounts/{id}/portfolio", "GET /api/v1/easel/accounts/{id}/projects",
    "GET /api/v1/easel/projects/{id}", "GET /api/v1/directory",
}
# A media's protection state: without a user token it is "not found", like someone else's
# media (media.py _owner), so these answer 404 where others answer 401.
NOT_FOUND_WITHOUT_USER = {"GET /api/v1/easel/media/{id}/protection",
                          "POST /api/v1/easel/media/{id}/retry",
                          "POST /api/v1/easel/media/{id}/publish_unprotected"}
# Answer any valid token, whatever its scopes or user (Mastodon's too).
ANY_TOKEN = {"GET /api/v1/apps/verify_credentials"}
# The Web Push subscription: what a ``push``-only token is for (and nothing else).
PUSH_SCOPE = {f"{method} /api/v1/push/subscription" for method in ("GET", "POST", "PUT", "DELETE")}
# Streams: with a valid token they never end, so only refusals are sent to them.
STREAMS = "/api/v1/streaming/{channel:path}"


def authenticated() -> list[Endpoint]:
    return [e for e in endpoints("/api/") if str(e) not in PUBLIC]


def error_body(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str)


async def check_all(api: httpx.AsyncClient, chosen: list[Endpoint], expected: tuple[int, ...],
                    *, skip_streams: bool = False) -> list[str]:
    failures = []
    for endpoint in chosen:
        if skip_streams and endpoint.template == STREAMS:
            continue
        response = await api.request(endpoint.method, endpoint.path,
                                     json={} if endpoint.method != "GET" else None)
        allowed = (*expected, 404) if str(endpoint) in NOT_FOUND_WITHOUT_USER else expected
        if endpoint.template == STREAMS:  # Mastodon's streaming server: 401 for a scope too
            allowed = (*allowed, 401)
        if response.status_code not in allowed or not error_body(response):
            failures.append(f"{endpoint}: {response.status_code} {response.text[:160]}")
    return failures


@pytest.fixture
async def anonymous(client: httpx.AsyncClient) -> httpx.AsyncClient:
    return client


async def test_every_authenticated_endpoint_without_a_token_is_401(
        client: httpx.AsyncClient) -> None:
    chosen = authenticated()
    assert len(chosen) > 150  # the table really was enumerated
    failures = await check_all(client, chosen, (401,))
    assert not failures, "\n".join(failures)


async def test_a_garbage_or_revoked_token_is_401_everywhere(
        client: httpx.AsyncClient, db: Database, alice: User) -> None:
    token = await make_token(db, alice, EVERY_SCOPE)
    async with authorized(client, token) as api:
        assert (await api.get("/api/v1/accounts/verify_credentials")).status_code == 200
    async with db.session() as session:
        await session.execute(update(OAuthToken).where(
            OAuthToken.token_digest == token_digest(token)).values(revoked_at=utcnow()))
        await session.commit()
    for bad in (token, "not-a-token", token[:-1]):
        async with authorized(client, bad) as api:
            failures = await check_all(api, authenticated(), (401,))
            assert not failures, "\n".join(failures)
            # Public endpoints that look at a presented token refuse a bad one too.
            for endpoint in endpoints("/api/v1/accounts/verify_credentials", "/api/v1/statuses/1"):
                assert (await api.request(endpoint.method, endpoint.path)).status_code == 401


async def test_a_token_without_the_needed_scope_is_403(
        client: httpx.AsyncClient, db: Database, alice: User) -> None:
    async with authorized(client, await make_token(db, alice, "push")) as api:
        chosen = [e for e in authenticated() if str(e) not in ANY_TOKEN | PUSH_SCOPE]
        failures = await check_all(api, chosen, (403,))
        assert not failures, "\n".join(failures)
    # Every scope but push: the push subscription refused.
    async with authorized(client, await make_token(db, alice, "read write follow")) as api:
        chosen = [e for e in authenticated() if str(e) in PUSH_SCOPE]
        assert len(chosen) == len(PUSH_SCOPE)
        failures = await check_all(api, chosen, (403,))
        assert not failures, "\n".join(failures)
    # Read-only: every write refused, whatever the endpoint.
    async with authorized(client, await make_token(db, alice, "read")) as api:
        writes = [e for e in authenticated() if e.method != "GET"]
        failures = await check_all(api, writes, (403,))
        assert not failures, "\n".join(failures)


async def test_an_app_token_where_a_user_is_needed_is_refused(
        client: httpx.AsyncClient, db: Database) -> None:
    async with authorized(client, await make_token(db, None, EVERY_SCOPE)) as api:
        chosen = [e for e in authenticated() if str(e) not in ANY_TOKEN]
        failures = await check_all(api, chosen, (401, 403, 422), skip_streams=True)
        assert not failures, "\n".join(failures)


async def test_a_normal_user_with_admin_scopes_is_403_on_every_admin_endpoint(
        client: httpx.AsyncClient, db: Database, alice: User) -> None:
    admin = [e for e in endpoints("/api/v1/admin/", "/api/v2/admin/", "/api/v1/easel/admin/")]
    assert len(admin) > 20
    async with authorized(client, await make_token(db, alice, EVERY_SCOPE)) as api:
        failures = await check_all(api, admin, (403,))
        assert not failures, "\n".join(failures)


@pytest.fixture
async def alice_all(client: httpx.AsyncClient, db: Database, alice: User) -> AsyncIterator[httpx.AsyncClient]:
    async with authorized(client, await make_token(db, alice, EVERY_SCOPE)) as http:
        yield http


async def test_another_users_private_resources_are_404(
        alice_all: httpx.AsyncClient, bob_api: httpx.AsyncClient) -> None:
    """Bob, with a good token, cannot read, change or delete what is Alice's alone."""
    def created(response: httpx.Response) -> str:
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    list_id = created(await alice_all.post("/api/v1/lists", json={"title": "mine"}))
    filter_id = created(await alice_all.post("/api/v2/filters", json={
        "title": "f", "context": ["home"], "keywords_attributes": [{"keyword": "x"}]}))
    direct_id = created(await alice_all.post("/api/v1/statuses", json={
        "status": "a secret", "visibility": "direct"}))
    private_id = created(await alice_all.post("/api/v1/statuses", json={
        "status": "followers only", "visibility": "private"}))
    scheduled_id = created(await alice_all.post("/api/v1/statuses", json={
        "status": "later", "scheduled_at": "2099-01-01T00:00:00Z"}))
    project_id = created(await alice_all.post("/api/v1/easel/projects", json={"title": "p"}))
    attempts = [
        ("GET", f"/api/v1/lists/{list_id}"), ("PUT", f"/api/v1/lists/{list_id}"),
        ("DELETE", f"/api/v1/lists/{list_id}"), ("GET", f"/api/v1/lists/{list_id}/accounts"),
        ("GET", f"/api/v1/timelines/list/{list_id}"),
        ("GET", f"/api/v2/filters/{filter_id}"), ("PUT", f"/api/v2/filters/{filter_id}"),
        ("DELETE", f"/api/v2/filters/{filter_id}"),
        ("GET", f"/api/v2/filters/{filter_id}/keywords"),
        ("GET", f"/api/v1/statuses/{direct_id}"), ("GET", f"/api/v1/statuses/{private_id}"),
        ("GET", f"/api/v1/statuses/{direct_id}/context"),
        ("GET", f"/api/v1/statuses/{direct_id}/source"),
        ("PUT", f"/api/v1/statuses/{private_id}"), ("DELETE", f"/api/v1/statuses/{private_id}"),
        ("POST", f"/api/v1/statuses/{direct_id}/favourite"),
        ("POST", f"/api/v1/statuses/{private_id}/reblog"),
        ("POST", f"/api/v1/statuses/{private_id}/pin"),
        ("GET", f"/api/v1/scheduled_statuses/{scheduled_id}"),
        ("PUT", f"/api/v1/scheduled_statuses/{scheduled_id}"),
        ("DELETE", f"/api/v1/scheduled_statuses/{scheduled_id}"),
        ("PATCH", f"/api/v1/easel/projects/{project_id}"),
        ("DELETE", f"/api/v1/easel/projects/{project_id}"),
        ("PUT", f"/api/v1/easel/projects/{project_id}/works"),
    ]
    failures = []
    for method, path in attempts:
        response = await bob_api.request(method, path,
                                         json={"status": "taken", "title": "taken"}
                                         if method in ("PUT", "PATCH") else None)
        if response.status_code not in (403, 404) or not error_body(response):
            failures.append(f"{method} {path}: {response.status_code} {response.text[:160]}")
    assert not failures, "\n".join(failures)
    # Nothing changed: Alice still sees all of it as she left it.
    assert (await alice_all.get(f"/api/v1/lists/{list_id}")).json()["title"] == "mine"
    assert (await alice_all.get(f"/api/v2/filters/{filter_id}")).json()["title"] == "f"
    assert (await alice_all.get(f"/api/v1/statuses/{private_id}")).status_code == 200
    assert (await alice_all.get(f"/api/v1/scheduled_statuses/{scheduled_id}")).status_code == 200
    assert (await alice_all.get(f"/api/v1/easel/projects/{project_id}")).json()["title"] == "p"
