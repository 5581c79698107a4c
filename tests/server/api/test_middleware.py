from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from server.app import AppOptions, create_app
from server.settings import Settings

pytestmark = pytest.mark.usefixtures("mid_rate_window")  # tests/conftest.py


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.with_changes(rate_limits=True, api_rate_limit=3),
                     options=AppOptions(run_workers=False))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="https://easel.test") as client:
            yield client


async def test_api_responses_carry_rate_limit_headers_and_429_past_the_limit(
    limited: httpx.AsyncClient,
) -> None:
    seen = []
    token = {"Authorization": "Bearer some-token"}
    for _ in range(3):
        response = await limited.get("/api/v1/instance", headers=token)
        assert response.status_code == 200
        seen.append(int(response.headers["x-ratelimit-remaining"]))
        assert response.headers["x-ratelimit-limit"] == "3"
        assert response.headers["x-ratelimit-reset"].endswith("Z")
    assert seen == [2, 1, 0]
    refused = await limited.get("/api/v1/instance", headers=token)
    assert refused.status_code == 429
    assert refused.json() == {"error": "Too many requests"}
    assert int(refused.headers["retry-after"]) > 0
    anonymous = await limited.get("/api/v1/instance")  # the address has room left
    assert anonymous.status_code == 200 and anonymous.headers["x-ratelimit-limit"] == "15"
    # Pages and federation are not rate-limited by this middleware.
    assert "x-ratelimit-limit" not in (await limited.get("/.well-known/nodeinfo")).headers


async def test_routes_answer_with_or_without_a_trailing_slash(client: httpx.AsyncClient) -> None:
    plain = await client.get("/api/v1/instance")
    slashed = await client.get("/api/v1/instance/")
    assert plain.status_code == slashed.status_code == 200
    assert plain.json()["uri"] == slashed.json()["uri"]


async def test_browser_clients_get_cors_on_the_api(client: httpx.AsyncClient) -> None:
    preflight = await client.options("/api/v1/timelines/public", headers={
        "Origin": "https://elk.zone", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    response = await client.get("/api/v1/timelines/public", headers={"Origin": "https://elk.zone"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Link" in response.headers["access-control-expose-headers"]


async def test_inventing_tokens_does_not_escape_the_limit(limited: httpx.AsyncClient) -> None:
    """Each request with a fresh made-up token still counts against the address."""
    statuses = []
    for n in range(17):  # the address may make 5 × 3 = 15 requests
        response = await limited.get("/api/v1/instance", headers={"Authorization": f"Bearer made-up-{n}"})
        statuses.append(response.status_code)
    assert statuses[:15] == [200] * 15
    assert statuses[15:] == [429, 429]


async def test_sign_in_attempts_are_limited_per_address(limited: httpx.AsyncClient) -> None:
    codes = []
    for n in range(27):
        response = await limited.post("/oauth/token", data={
            "grant_type": "password", "client_id": "x", "client_secret": "y",
            "username": "alice", "password": f"guess {n}"},
            headers={"Authorization": f"Bearer made-up-{n}"})
        codes.append(response.status_code)
    assert 429 not in codes[:15]
    assert codes[-1] == 429


async def test_web_processes_sharing_redis_count_one_limit_together(settings: Settings) -> None:
    """Two apps (two web processes) on one Redis: a token's requests count once, across both."""
    if not settings.broker_url.startswith("redis://"):
        pytest.skip("needs a Redis broker (EASEL_TEST_BROKER_URL)")
    from server.api.rate_counters import RedisCounters

    limited = settings.with_changes(rate_limits=True, api_rate_limit=4)
    first = create_app(limited, options=AppOptions(run_workers=False))
    second = create_app(limited, options=AppOptions(run_workers=False))
    assert isinstance(first.state.easel.rate_counters, RedisCounters)
    token = {"Authorization": "Bearer shared-token"}
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="https://easel.test") for app in (first, second)]
        try:
            answers = [await clients[n % 2].get("/api/v1/instance", headers=token) for n in range(5)]
        finally:
            for client in clients:
                await client.aclose()
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in answers[:4]] == ["3", "2", "1", "0"]


async def test_a_redis_outage_falls_back_to_counting_in_the_process() -> None:
    import socket

    from server.api.rate_counters import RedisCounters

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    counters = RedisCounters(f"redis://127.0.0.1:{port}/0")
    try:
        assert await counters.hit([("token:x", 300.0), ("ip:y", 300.0)], 1000.0) == [
            (1, 1300.0), (1, 1300.0)]
        assert counters.failed_at is not None
        [(count, reset)] = await counters.hit([("token:x", 300.0)], 1001.0)
        assert count == 2 and reset == 1300.0  # still limited, by this process's own count
    finally:
        await counters.close()
