"""Request ids: every response carries ``X-Request-Id`` (the proxy's when it is a plain
token, otherwise a new one), and every log line written while a request is served carries
it too, in the text format and in ``EASEL_LOG_FORMAT=json``; ``easel serve``'s own access
lines included."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from server.observability import ObservabilityMiddleware, current_request_id, log_handler
from server.settings import Settings
from tests.server.test_cli import EASEL, environment, free_port

GENERATED = re.compile(r"^[0-9a-f]{32}$")


async def test_every_response_carries_a_new_request_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/v1/instance")
    second = await client.get("/api/v1/no/such/endpoint")
    assert first.status_code == 200 and second.status_code == 404
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(GENERATED.match(request_id) for request_id in ids)
    assert ids[0] != ids[1]


async def test_the_proxys_request_id_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-Id": "req-42.abc_DEF:9"})
    assert response.headers["x-request-id"] == "req-42.abc_DEF:9"


@pytest.mark.parametrize("given", ["two words", "x" * 129, "line\\nbreak", "quote\"d", ""])
async def test_a_request_id_that_could_forge_log_lines_is_replaced(
    client: httpx.AsyncClient, given: str
) -> None:
    response = await client.get("/health", headers={"X-Request-Id": given})
    assert GENERATED.match(response.headers["x-request-id"])


# A tiny app around the same middleware, whose endpoint logs: what a log line carries.
endpoint_log = logging.getLogger("tests.request_ids")


async def logs_something(request: Request) -> PlainTextResponse:
    endpoint_log.warning("painting %s received", request.path_params["name"])
    return PlainTextResponse(current_request_id() or "")


@pytest.fixture
def logged() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """What the text and the JSON handler write while the test runs."""
    text, as_json = io.StringIO(), io.StringIO()
    handlers = [log_handler("text", text), log_handler("json", as_json)]
    for handler in handlers:
        endpoint_log.addHandler(handler)
    yield text, as_json
    for handler in handlers:
        endpoint_log.removeHandler(handler)


async def test_log_lines_of_a_request_carry_its_id(logged: tuple[io.StringIO, io.StringIO]) -> None:
    app = Starlette(routes=[Route("/paint/{name}", logs_something)])
    app.add_middleware(ObservabilityMiddleware)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:
        given = await http.get("/paint/sunflowers", headers={"X-Request-Id": "abc-123"})
        made = await http.get("/paint/irises")
    assert given.text == "abc-123"  # the endpoint saw it in its context
    made_id = made.headers["x-request-id"]
    assert made.text == made_id
    text, as_json = logged
    lines = text.getvalue().splitlines()
    assert "tests.request_ids [abc-123]: painting sunflowers received" in lines[0]
    assert f"tests.request_ids [{made_id}]: painting irises received" in lines[1]
    entries = [json.loads(line) for line in as_json.getvalue().splitlines()]
    assert [(e["request_id"], e["message"], e["level"], e["logger"]) for e in entries] == [
        ("abc-123", "painting sunflowers received", "warning", "tests.request_ids"),
        (made_id, "painting irises received", "warning", "tests.request_ids"),
    ]
    assert current_request_id() is None  # nothing leaks out of the request


def test_a_line_logged_outside_a_request_has_no_id(logged: tuple[io.StringIO, io.StringIO]) -> None:
    endpoint_log.warning("at start-up")
    text, as_json = logged
    assert text.getvalue().rstrip().endswith("tests.request_ids: at start-up")
    assert json.loads(as_json.getvalue())["request_id"] is None


@pytest.mark.slow
def test_easel_serve_logs_json_with_the_request_id(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    domain = f"127.0.0.1:{port}"
    env = environment(settings, EASEL_DOMAIN=domain, EASEL_SCHEME="http", EASEL_LOG_FORMAT="json")
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([str(EASEL), "serve", "--port", str(port)], env=env, cwd=tmp_path,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log_path.read_text()
            try:
                response = httpx.get(f"http://{domain}/health", timeout=2,
                                     headers={"X-Request-Id": "probe-7"})
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        assert response.headers["x-request-id"] == "probe-7"
        deadline = time.monotonic() + 10
        while '"probe-7"' not in log_path.read_text():  # the access line is written at once
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
    finally:
        server.terminate()
        server.wait(timeout=30)
    entries = [json.loads(line) for line in log_path.read_text().splitlines()
               if line.startswith("{")]
    access = [e for e in entries if e["request_id"] == "probe-7"]
    assert access and access[0]["logger"] == "uvicorn.access"
    assert "GET /health HTTP/1.1\" 200" in access[0]["message"]
    started = [e for e in entries if "Application startup complete" in e["message"]]
    assert started and started[0]["request_id"] is None


async def broken(request: Request) -> PlainTextResponse:
    raise RuntimeError("the easel fell over")


async def test_an_unhandled_error_is_logged_with_the_id_and_counted_as_500() -> None:
    from prometheus_client import generate_latest

    from server.observability import HttpMetrics, RouteCapture

    metrics = HttpMetrics()
    app = Starlette(routes=[Route("/boom/{n:int}", broken)])
    app.add_middleware(RouteCapture)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    written = io.StringIO()
    handler = log_handler("json", written)
    logging.getLogger("server.observability").addHandler(handler)
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get("/boom/3", headers={"X-Request-Id": "oops-1"})
    finally:
        logging.getLogger("server.observability").removeHandler(handler)
    assert response.status_code == 500
    entry = json.loads(written.getvalue().splitlines()[0])
    assert entry["request_id"] == "oops-1"
    assert entry["message"] == "unhandled RuntimeError while serving GET /boom/3"
    exposition = generate_latest(metrics.registry).decode()
    assert 'easel_http_requests_total{method="GET",route="/boom/{n}",status="500"} 1.0' in exposition


def test_configure_logging_replaces_only_its_own_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.observability import JsonFormatter, TextFormatter, configure_logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    configure_logging("text")
    configure_logging("json")  # after the settings are read
    assert len(root.handlers) == 1 and isinstance(root.handlers[0].formatter, JsonFormatter)
    foreign = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(root, "handlers", [foreign])
    configure_logging("text")  # someone else configured logging: left alone
    assert root.handlers == [foreign]
    assert not isinstance(foreign.formatter, TextFormatter)


async def test_a_bug_in_the_real_app_is_answered_with_the_id_cors_and_one_log_line(
    app: Starlette, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = app.state.easel.db

    def broken_session(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the easel fell over")

    monkeypatch.setattr(db, "session", broken_session)
    monkeypatch.setattr(db, "read_session", broken_session)
    written = io.StringIO()
    handler = log_handler("json", written)
    logging.getLogger().addHandler(handler)
    try:
        origin = {"Origin": "https://elk.example", "X-Request-Id": "bug-1"}
        answer = await client.get("/api/v1/timelines/public", headers=origin)
        page = await client.get("/@alice", headers={"X-Request-Id": "bug-2"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert answer.status_code == 500
    assert answer.json() == {"error": "Internal server error"}  # nothing of the cause
    assert answer.headers["x-request-id"] == "bug-1"
    assert answer.headers["access-control-allow-origin"] == "*"  # a browser app can read it
    assert page.status_code == 500 and page.headers["x-request-id"] == "bug-2"
    assert page.headers["content-type"].startswith("text/plain")
    assert "fell over" not in page.text
    entries = [json.loads(line) for line in written.getvalue().splitlines() if line.startswith("{")]
    errors = [e for e in entries if e["level"] == "error" and e["request_id"] == "bug-1"]
    assert len(errors) == 1  # once, with its traceback, not again by the outer layers
    assert errors[0]["message"] == "unhandled error on GET /api/v1/timelines/public"
    assert "RuntimeError: the easel fell over" in errors[0]["exc"]
