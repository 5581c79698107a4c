"""The Mastodon-like buckets on top of the API's: posting, uploads, sign-ups and the inboxes.

Each refuses at its limit with 429 ``{"error": "Too many requests"}``, ``X-RateLimit-*`` and
``Retry-After``, and the refused request never reaches its endpoint (nothing is written).
Run with ``EASEL_TEST_BROKER_URL`` set, the same tests count in Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from server.api.rate_counters import LocalCounters, RateCounters, RedisCounters
from server.app import AppOptions, create_app
from server.db import Database
from server.models import MediaAttachment, Status, User
from server.settings import Settings, SettingsError, load_settings
from tests.conftest import DOMAIN, authorized, make_token
from tests.protect import images

pytestmark = pytest.mark.usefixtures("mid_rate_window")  # tests/conftest.py

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
LIMITS = {"status_rate_limit": 2, "media_rate_limit": 2, "sign_up_rate_limit": 2,
          "inbox_rate_limit": 3}


@pytest.fixture
def serve(settings: Settings) -> Serve:
    """A client for this test's database, served with rate limits on and tiny buckets."""

    @asynccontextmanager
    async def serving(**changes: Any) -> AsyncIterator[httpx.AsyncClient]:
        limited = settings.with_changes(**{"rate_limits": True, "api_rate_limit": 100,
                                           **LIMITS, **changes})
        application = create_app(limited, options=AppOptions(run_workers=False))
        if limited.rate_limits and settings.broker_url.startswith("redis://"):
            assert isinstance(application.state.easel.rate_counters, RedisCounters)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
                yield http

    return serving


def assert_refused(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {"error": "Too many requests"}
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.headers["x-ratelimit-reset"].endswith("Z")
    assert int(response.headers["retry-after"]) > 0


async def count(db: Database, model: Any) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_posting_is_limited_per_token_statuses_and_boosts_together(
    serve: Serve, db: Database, alice: User,
) -> None:
    async with serve() as http, authorized(http, await make_token(db, alice)) as api:
        first = await api.post("/api/v1/statuses", data={"status": "one"})
        assert first.status_code == 200, first.text
        assert first.headers["x-ratelimit-limit"] == "2"  # the tightest bucket
        assert first.headers["x-ratelimit-remaining"] == "1"
        boost = await api.post(f"/api/v1/statuses/{first.json()['id']}/reblog")
        assert boost.status_code == 200, boost.text
        written = await count(db, Status)
        refused = await api.post("/api/v1/statuses", data={"status": "three"})
        assert_refused(refused, 2)
        assert 0 < int(refused.headers["retry-after"]) <= 3 * 3600  # the 3-hour window
        assert_refused(await api.post(f"/api/v1/statuses/{first.json()['id']}/reblog"), 2)
        assert await count(db, Status) == written
        # Reading is not posting, and another token (another app) has its own bucket.
        assert (await api.get("/api/v1/timelines/home")).status_code == 200
        async with authorized(http, await make_token(db, alice)) as other:
            assert (await other.post("/api/v1/statuses", data={"status": "elsewhere"})).status_code == 200


async def test_uploads_are_limited_per_token(serve: Serve, db: Database, alice: User) -> None:
    async with serve() as http, authorized(http, await make_token(db, alice)) as api:
        for version in ("v2", "v1"):
            response = await api.post(f"/api/{version}/media",
                                      files={"file": ("a.png", images.png(), "image/png")})
            assert response.status_code in (200, 202), response.text
        stored = await count(db, MediaAttachment)
        picture = {"file": ("a.png", images.png(), "image/png")}
        assert_refused(await api.post("/api/v2/media", files=picture), 2)
        assert_refused(await api.post("/api/v1/media", files=picture), 2)
        assert await count(db, MediaAttachment) == stored
        # Posting is a bucket of its own.
        assert (await api.post("/api/v1/statuses", data={"status": "words"})).status_code == 200


async def test_sign_ups_are_limited_per_address_api_and_web_form_together(
    serve: Serve, db: Database,
) -> None:
    async with serve(registrations="open") as http:
        async with authorized(http, await make_token(db, None, "write:accounts")) as api:
            for name in ("carol", "dave"):
                response = await api.post("/api/v1/accounts", data={
                    "username": name, "email": f"{name}@example.com", "password": "a fine password",
                    "agreement": "true", "locale": "en"})
                assert response.status_code == 200, response.text
            users = await count(db, User)
            refused = await api.post("/api/v1/accounts", data={
                "username": "erin", "email": "erin@example.com", "password": "a fine password",
                "agreement": "true", "locale": "en"})
            assert_refused(refused, 2)
            assert await count(db, User) == users
        form = await http.post("/auth/sign_up", data={"username": "frank"})
        assert form.status_code == 429 and "Too many" in form.text
        assert form.headers["x-ratelimit-limit"] == "2"  # the sign-up bucket refused
        assert 0 < int(form.headers["retry-after"]) <= 1800  # in its 30-minute window
        # The sign-up page itself is not an attempt.
        assert (await http.get("/auth/sign_up")).status_code == 200


async def test_inbox_deliveries_are_limited_per_address_apart_from_the_api(serve: Serve) -> None:
    async with serve() as http:
        answers = [await http.post(path, content=b"not json",
                                   headers={"Content-Type": "application/activity+json"})
                   for path in ("/inbox", "/users/nobody/inbox", "/inbox")]
        assert [a.status_code for a in answers] == [400, 404, 400]  # refused by the inbox itself
        assert all("x-ratelimit-limit" not in a.headers for a in answers)
        refused = await http.post("/users/nobody/inbox", content=b"{}")
        assert_refused(refused, 3)
        assert_refused(await http.post("/inbox", content=b"{}"), 3)
        # Deliveries were not counted against the API, nor the API against deliveries' bucket.
        api = await http.get("/api/v1/instance")
        assert api.status_code == 200
        assert api.headers["x-ratelimit-remaining"] == str(100 * 5 - 1)
        # Fetching (GET) is not delivering.
        assert (await http.get("/users/nobody")).status_code != 429


async def test_rate_limits_off_disables_every_bucket(serve: Serve, db: Database, alice: User) -> None:
    async with serve(rate_limits=False, api_rate_limit=1, inbox_rate_limit=1) as http:
        async with authorized(http, await make_token(db, alice)) as api:
            posts = [await api.post("/api/v1/statuses", data={"status": f"n{n}"}) for n in range(4)]
            uploads = [await api.post("/api/v2/media", files={"file": ("a.png", images.png(), "image/png")})
                       for _ in range(3)]
        sign_ups = [await http.post("/api/v1/accounts", data={}) for _ in range(3)]
        inbox = [await http.post("/inbox", content=b"{}") for _ in range(3)]
    for response in (*posts, *uploads, *sign_ups, *inbox):
        assert response.status_code != 429
        assert "x-ratelimit-limit" not in response.headers
    assert [r.status_code for r in posts] == [200] * 4


async def test_counters_keep_each_bucket_in_its_own_window(settings: Settings) -> None:
    counters: RateCounters = (RedisCounters(settings.broker_url) if settings.broker_url.startswith("redis://")
                              else LocalCounters())
    try:
        now = 3 * 10_800.0 + 100.0
        buckets = [("ip:a", 300.0), ("statuses:t", 10_800.0), ("media:t", 1800.0)]
        first = await counters.hit(buckets, now)
        assert [count for count, _reset in first] == [1, 1, 1]
        later = await counters.hit(buckets, now + 400.0)  # the 5-minute window has passed
        assert [count for count, _reset in later] == [1, 2, 2]
    finally:
        await counters.close()


async def test_local_counters_start_each_window_at_its_first_request() -> None:
    counters = LocalCounters()
    assert await counters.hit([("ip:a", 300.0), ("media:t", 1800.0)], 1000.0) == [
        (1, 1300.0), (1, 2800.0)]


async def test_redis_counts_every_bucket_in_aligned_windows(settings: Settings) -> None:
    if not settings.broker_url.startswith("redis://"):
        pytest.skip("needs a Redis broker (EASEL_TEST_BROKER_URL)")
    counters = RedisCounters(settings.broker_url)
    try:
        now = 3 * 10_800.0 + 100.0
        answers = await counters.hit([("ip:a", 300.0), ("statuses:t", 10_800.0)], now)
        assert answers == [(1, 3 * 10_800.0 + 300.0), (1, 4 * 10_800.0)]
        assert counters.failed_at is None
    finally:
        await counters.close()


@pytest.mark.parametrize("name", ["EASEL_STATUS_RATE_LIMIT", "EASEL_MEDIA_RATE_LIMIT",
                                  "EASEL_SIGN_UP_RATE_LIMIT", "EASEL_INBOX_RATE_LIMIT",
                                  "EASEL_API_RATE_LIMIT"])
@pytest.mark.parametrize(("raw", "message"), [
    ("0", "must be at least 1"), ("-5", "must be at least 1"),
    ("lots", "is not a whole number"), ("", "is not a whole number")])
def test_bucket_settings_are_validated(name: str, raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}={raw!r} {message}"):
        load_settings({name: raw}, dotenv=None)


def test_bucket_settings_default_to_mastodons_figures_and_are_read() -> None:
    defaults = load_settings({}, dotenv=None)
    assert (defaults.status_rate_limit, defaults.media_rate_limit, defaults.sign_up_rate_limit,
            defaults.inbox_rate_limit) == (300, 30, 5, 3000)
    chosen = load_settings({"EASEL_STATUS_RATE_LIMIT": "10", "EASEL_MEDIA_RATE_LIMIT": " 3 ",
                            "EASEL_SIGN_UP_RATE_LIMIT": "1", "EASEL_INBOX_RATE_LIMIT": "50000"},
                           dotenv=None)
    assert (chosen.status_rate_limit, chosen.media_rate_limit, chosen.sign_up_rate_limit,
            chosen.inbox_rate_limit) == (10, 3, 1, 50000)
    assert not any(name.endswith("RATE_LIMIT") for name in chosen.extra)
