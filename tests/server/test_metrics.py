"""``GET /metrics``: off unless ``EASEL_METRICS`` is on; then served to loopback clients,
or to holders of ``EASEL_METRICS_TOKEN``; HTTP requests by route template, method and
status with a latency histogram; queue depth, job latency, deliveries by outcome and
protection time and verdicts, read from the database at each scrape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from server.app import AppOptions, create_app
from server.db import Database
from server.ids import utcnow
from server.models import Activity, Delivery, Job, JobState, MediaAttachment, User
from server.settings import SettingsError, load_settings
from tests.conftest import DOMAIN
from tests.server.queue import kinds_for_tests  # noqa: F401  (registers test kinds)

TOKEN = "s3cret-metrics-token-0123456789"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def metrics_app(settings) -> AsyncIterator[Starlette]:  # type: ignore[no-untyped-def]
    application = create_app(settings.with_changes(metrics=True),
                             options=AppOptions(run_workers=False, run_reconciler=False))
    async with application.router.lifespan_context(application):
        yield application


def http_client(app: Starlette, address: str = "127.0.0.1", **headers: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}", headers=headers)


def samples(text: str) -> Samples:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


async def scrape(app: Starlette) -> Samples:
    async with http_client(app) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert response.headers["cache-control"] == "no-store"
    return samples(response.text)


async def test_metrics_are_off_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 404
    assert response.json() == {"error": "Record not found"}


async def test_only_loopback_clients_without_a_token(metrics_app: Starlette) -> None:
    async with http_client(metrics_app, "203.0.113.9") as outsider:
        refused = await outsider.get("/metrics")
    assert refused.status_code == 403
    assert "loopback" in refused.json()["error"]
    async with http_client(metrics_app, "::1") as local:
        assert (await local.get("/metrics")).status_code == 200


async def test_with_a_token_only_its_holders(settings) -> None:  # type: ignore[no-untyped-def]
    application = create_app(settings.with_changes(metrics=True, metrics_token=TOKEN),
                             options=AppOptions(run_workers=False, run_reconciler=False))
    async with application.router.lifespan_context(application):
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Authorization": TOKEN}):
            async with http_client(application, **headers) as http:  # loopback, but no token
                refused = await http.get("/metrics")
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert refused.json() == {"error": "The access token is invalid"}
        async with http_client(application, "203.0.113.9",
                               Authorization=f"Bearer {TOKEN}") as http:
            allowed = await http.get("/metrics")
        assert allowed.status_code == 200
        assert "easel_jobs" in allowed.text


async def test_http_requests_by_route_template_method_and_status(
    metrics_app: Starlette, db: Database, alice: User
) -> None:
    async with http_client(metrics_app) as http:
        for _ in range(2):
            assert (await http.get(f"/api/v1/accounts/{alice.account_id}")).status_code == 200
        assert (await http.get("/api/v1/accounts/123456789")).status_code == 404
        slashed = await http.get("/api/v1/statuses/")  # the trailing slash is dropped
        assert (await http.get(f"/no/such/page/{alice.account_id}")).status_code == 404
        assert (await http.post("/api/v1/statuses", json={"status": "hi"})).status_code == 401
        assert (await http.get("/static/does-not-exist.css")).status_code == 404
        for made_up in ("BREW", "WHEN"):
            await http.request(made_up, "/api/v1/instance")
        response = await http.get("/metrics")
    text = response.text
    found = samples(text)
    route = "/api/v1/accounts/{id}"
    assert value(found, "easel_http_requests_total", route=route, method="GET", status="200") == 2
    assert value(found, "easel_http_requests_total", route=route, method="GET", status="404") == 1
    assert value(found, "easel_http_requests_total", route="/api/v1/statuses", method="POST",
                 status="401") == 1
    assert value(found, "easel_http_requests_total", route="/api/v1/statuses", method="GET",
                 status=str(slashed.status_code)) == 1
    assert value(found, "easel_http_requests_total", route="<unmatched>", method="GET",
                 status="404") == 1
    assert value(found, "easel_http_requests_total", route="/static/{path}", method="GET",
                 status="404") == 1
    assert value(found, "easel_http_request_duration_seconds_count", route=route, method="GET") == 3
    assert value(found, "easel_http_request_duration_seconds_bucket", route=route, method="GET",
                 le="+Inf") == 3
    assert sum(count for (name, labels), count in found.items()
               if name == "easel_http_requests_total" and ("method", "OTHER") in labels) == 2
    # No path, id, query or made-up method ever becomes a label.
    assert "BREW" not in text and "WHEN" not in text
    assert str(alice.account_id) not in text and "123456789" not in text
    assert "does-not-exist" not in text and "/no/such" not in text


async def test_queue_and_job_latency_from_the_jobs_table(metrics_app: Starlette, db: Database) -> None:
    now = utcnow()
    async with db.session() as session:
        session.add_all([
            Job(kind="test.record", queue="default", ref="a", next_try_at=now - timedelta(minutes=3)),
            Job(kind="test.record", queue="default", ref="b", next_try_at=now + timedelta(hours=1)),
            Job(kind="test.flaky", queue="default", ref="c", state=JobState.FAILED,
                finished_at=now - timedelta(minutes=1)),
            Job(kind="test.record", queue="default", ref="d", state=JobState.DONE,
                next_try_at=now - timedelta(seconds=10), finished_at=now - timedelta(seconds=8)),
            Job(kind="test.record", queue="default", ref="e", state=JobState.DONE,
                next_try_at=now - timedelta(hours=3), finished_at=now - timedelta(hours=2)),
        ])
        await session.commit()
    found = await scrape(metrics_app)
    assert value(found, "easel_jobs", queue="default", kind="test.record", state="queued") == 2
    assert value(found, "easel_jobs", queue="default", kind="test.flaky", state="failed") == 1
    assert value(found, "easel_jobs_due", queue="default") == 1
    oldest = value(found, "easel_jobs_oldest_due_seconds", queue="default")
    assert oldest is not None and 170 < oldest < 600
    # Only "d" finished within the hour: 2 s from due to done.
    assert value(found, "easel_jobs_done_recently", kind="test.record") == 1
    latency = value(found, "easel_job_latency_seconds", kind="test.record", quantile="0.5")
    assert latency is not None and abs(latency - 2.0) < 0.01


async def test_deliveries_by_outcome(metrics_app: Starlette, db: Database, alice: User) -> None:
    async with db.session() as session:
        activity = Activity(uri="https://easel.test/activities/1", account_id=alice.account_id,
                            type="Create")
        session.add(activity)
        await session.flush()
        outcomes = {"delivered": (JobState.DONE, 202), "refused": (JobState.DONE, 410),
                    "failed": (JobState.FAILED, 503), "pending": (JobState.QUEUED, None)}
        for name, (state, code) in outcomes.items():
            delivery = Delivery(activity_id=activity.id, inbox_url=f"https://{name}.example/inbox",
                                domain=f"{name}.example", status_code=code,
                                delivered_at=utcnow() if name == "delivered" else None)
            session.add(delivery)
            await session.flush()
            session.add(Job(kind="deliver", queue="federation", ref=str(delivery.id), state=state))
        await session.commit()
    found = await scrape(metrics_app)
    for outcome in ("delivered", "refused", "failed", "pending"):
        assert value(found, "easel_deliveries", outcome=outcome) == 1, outcome


async def test_protection_time_and_verdicts(metrics_app: Starlette, db: Database, alice: User) -> None:
    async with db.session() as session:
        for seconds, state, verdict in ((4.0, "protected", "strong"), (6.0, "protected", "weak"),
                                        (8.0, "protected", "strong"), (None, "pending", None)):
            protection = {"state": state, "seconds": seconds}
            if verdict:
                protection["verdict"] = verdict
            session.add(MediaAttachment(account_id=alice.account_id, protection=state,
                                        meta={"protection": protection}))
        session.add(MediaAttachment(account_id=alice.account_id, protection="pending",
                                    remote_url="https://remote.example/a.png"))
        await session.commit()
    found = await scrape(metrics_app)
    assert value(found, "easel_media_protection", state="protected") == 3
    assert value(found, "easel_media_protection", state="pending") == 1  # the remote one is not ours
    assert value(found, "easel_protection_seconds", quantile="0.5") == 6.0
    assert value(found, "easel_protection_verdicts", verdict="strong") == 2
    assert value(found, "easel_protection_verdicts", verdict="weak") == 1


@pytest.mark.parametrize(("name", "raw", "message"), [
    ("EASEL_METRICS", "sometimes", "EASEL_METRICS='sometimes' is not a boolean"),
    ("EASEL_METRICS_TOKEN", "short", "EASEL_METRICS_TOKEN must be at least 16 characters"),
    ("EASEL_METRICS_TOKEN", "has a space in it somewhere", "without spaces"),
    ("EASEL_LOG_FORMAT", "xml", "EASEL_LOG_FORMAT='xml' must be one of: text, json"),
])
def test_bad_settings_are_refused(name: str, raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({name: raw}, dotenv=None)


def test_settings_are_read() -> None:
    settings = load_settings({"EASEL_METRICS": "on", "EASEL_METRICS_TOKEN": TOKEN,
                              "EASEL_LOG_FORMAT": "JSON"}, dotenv=None)
    assert (settings.metrics, settings.metrics_token, settings.log_format) == (True, TOKEN, "json")
    assert TOKEN not in repr(settings)
    assert not settings.extra
    defaults = load_settings({}, dotenv=None)
    assert (defaults.metrics, defaults.metrics_token, defaults.log_format) == (False, "", "text")
