"""Observability: request ids in every log line, JSON logs, and Prometheus ``/metrics``.

Why it exists: an operator must be able to follow one request through the logs (its
``X-Request-Id``, taken from the proxy or made here, is on every line logged while it is
served, uvicorn's access line included, and on the response) and to watch the instance
from Prometheus: HTTP traffic by route template, method and status with a latency
histogram (counted in memory, per process), and, read from the database at scrape time,
queue depth and job latency per kind, deliveries by outcome and protection time and
verdicts.

What it must never do: put an unbounded value in a label (paths, ids: routes are their
templates, unmatched paths one label), make a request wait on the database for metrics
(only a scrape reads it), serve ``/metrics`` when ``EASEL_METRICS`` is off, or to anyone
but loopback clients or holders of ``EASEL_METRICS_TOKEN``.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import random
import re
import statistics
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import String, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.db import Database
from server.ids import utcnow
from server.models import Delivery, Instance, Job, JobState, MediaAttachment
from server.queue import admin as queue_admin
from server.settings import Settings
from server.state import easel
from server.storage import Storage

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------ request ids

REQUEST_ID_HEADER = b"x-request-id"
# A proxy's id is kept when it is a plain token; anything else (spaces, quotes, control
# characters that would forge log lines) is replaced by our own.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
request_id_var: ContextVar[str | None] = ContextVar("easel_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served in this context, if any."""
    return request_id_var.get()


def request_id_from(scope: Scope) -> str:
    """The client's (or proxy's) ``X-Request-Id`` when acceptable, otherwise a new one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            given = value.decode("latin-1")
            if _REQUEST_ID_RE.match(given):
                return given
            break
    # Not a secret, only unique: random's generator, without a system call per request.
    return f"{random.getrandbits(128):032x}"


# ---------------------------------------------------------------------------- logging

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (None outside a request) to every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class TextFormatter(logging.Formatter):
    """The usual one-line format, with ``[request id]`` after the logger's name."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id:
            prefix = f"{record.name}: "
            line = line.replace(prefix, f"{record.name} [{request_id}]: ", 1)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_handler(log_format: str, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Route every logger (uvicorn's too: serve it with ``log_config=None``) through one
    handler on the root logger that adds the request id, in ``log_format``. Called again,
    it replaces its own handler; like ``logging.basicConfig`` it leaves alone a root
    logger that someone else (a test runner, a program embedding Easel) configured."""
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if getattr(handler, "easel", False)]
    if root.handlers and not ours:
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = log_handler(log_format)
    handler.easel = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


# ---------------------------------------------------------------------- HTTP metrics

UNMATCHED_ROUTE = "<unmatched>"
OBSERVATION_KEY = "easel.observation"
# Long-lived responses (event streams): counted, but their duration is not a latency.
UNTIMED_PREFIXES = ("/api/v1/streaming",)
# Any other method a client makes up is one label, not one each.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """This process's HTTP counters and latency histogram, in their own registry (one
    per app: tests build many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "easel_http_requests", "HTTP requests served, by route template, method and status",
            ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "easel_http_request_duration_seconds",
            "Time to serve an HTTP request (until the response ends), by route template and method",
            ["route", "method"], registry=self.registry)

        # The labelled children, found once: ``labels()`` takes a lock and builds a key.
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float | None) -> None:
        counted = self._counted.get((route, method, status))
        if counted is None:
            counted = self._counted[route, method, status] = self.requests.labels(
                route, method, str(status))
        counted.inc()
        if seconds is not None:
            timed = self._timed.get((route, method))
            if timed is None:
                timed = self._timed[route, method] = self.latency.labels(route, method)
            timed.observe(seconds)


def route_template(routed: Scope | None) -> str:
    """The template of the route that served ``routed`` (the scope the router updated):
    its path with each path parameter's value put back as ``{name}``."""
    if routed is None or "endpoint" not in routed:
        return UNMATCHED_ROUTE
    path: str = routed.get("path", "")
    mounted = routed.get("root_path", "")[len(routed.get("app_root_path", "")):]
    if mounted:  # a mounted app (static files): its prefix and the rest
        return mounted + "/{path}"
    params: dict[str, Any] = routed.get("path_params") or {}
    by_value: dict[str, str] = {}
    for name, value in params.items():
        text = str(value)
        if "/" in text and path.endswith("/" + text):
            path = path[: len(path) - len(text)] + "{" + name + "}"
        else:
            by_value.setdefault(text, name)
    if not by_value:
        return path
    return "/".join("{" + by_value[part] + "}" if part in by_value else part
                    for part in path.split("/"))


class _Observation:
    __slots__ = ("routed",)

    def __init__(self) -> None:
        self.routed: Scope | None = None


class ObservabilityMiddleware:
    """Outermost: gives the request its id (in a contextvar for the logs and on the
    response), and, when metrics are on, counts it and times it. Pairs with
    :class:`RouteCapture`, innermost, which tells it which route served the request."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        token = request_id_var.set(request_id)
        try:
            if scope["type"] == "websocket" or self.metrics is None:
                await self.app(scope, receive, self._with_id(send, request_id))
            else:
                await self._observed(scope, receive, send, request_id, self.metrics)
        except Exception as exc:
            # Logged here, while the request's id is known; the server logs the traceback.
            log.error("unhandled %s while serving %s %s", type(exc).__name__,
                      scope.get("method", "WEBSOCKET"), scope["path"])
            raise
        finally:
            request_id_var.reset(token)

    @staticmethod
    def _with_id(send: Send, request_id: str) -> Send:
        header = (REQUEST_ID_HEADER, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        return send_with_id

    async def _observed(self, scope: Scope, receive: Receive, send: Send, request_id: str,
                        metrics: HttpMetrics) -> None:
        observation = _Observation()
        scope[OBSERVATION_KEY] = observation
        started = time.perf_counter()
        status = 500
        send_with_id = self._with_id(send, request_id)

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send_with_id(message)

        try:
            await self.app(scope, receive, send_observed)
        except Exception:
            status = 500  # whatever was started: the server ends it as an error
            raise
        finally:
            route = route_template(observation.routed)
            timed = not scope["path"].startswith(UNTIMED_PREFIXES)
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            metrics.observe(route, method, status,
                            time.perf_counter() - started if timed else None)


class RouteCapture:
    """Innermost: hands the scope the router fills in (endpoint, path parameters) to the
    :class:`ObservabilityMiddleware` outside, through which middleware may have copied
    the scope on the way in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        observation = scope.get(OBSERVATION_KEY)
        try:
            await self.app(scope, receive, send)
        finally:
            if observation is not None:
                observation.routed = scope


# ------------------------------------------------------------- metrics from the database

# Job latency and protection figures cover what finished within this window before the scrape.
RECENT = timedelta(hours=1)
RECENT_LIMIT = 10000
QUANTILES = (0.5, 0.9, 0.99)
DELIVER_JOB = "deliver"  # federation/delivery.py's kind (services never import federation)


def _quantiles(values: list[float]) -> dict[float, float]:
    if not values:
        return {}
    if len(values) == 1:
        return dict.fromkeys(QUANTILES, values[0])
    cuts = statistics.quantiles(sorted(values), n=100, method="inclusive")
    return {q: cuts[round(q * 100) - 1] for q in QUANTILES}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def database_metrics(session: AsyncSession, now: datetime | None = None) -> list[Metric]:
    """What ``/metrics`` reads from the database: the queue, deliveries and protection."""
    now = now or utcnow()
    metrics: list[Metric] = []

    jobs = GaugeMetricFamily("easel_jobs", "Jobs queued, running or failed, by queue, kind and state",
                             labels=["queue", "kind", "state"])
    for row in await queue_admin.depth(session):
        jobs.add_metric([row.queue, row.kind, row.state], row.count)
    metrics.append(jobs)

    due = GaugeMetricFamily("easel_jobs_due", "Queued jobs already due (waiting for a worker), by queue",
                            labels=["queue"])
    oldest = GaugeMetricFamily("easel_jobs_oldest_due_seconds",
                               "How long the oldest due job of each queue has waited", labels=["queue"])
    for backlog in await queue_admin.backlog(session, now):
        due.add_metric([backlog.queue], backlog.due)
        if backlog.oldest_due_at is not None:
            oldest.add_metric([backlog.queue],
                              max((now - _aware(backlog.oldest_due_at)).total_seconds(), 0.0))
    metrics += [due, oldest]

    latencies: dict[str, list[float]] = {}
    rows = await session.execute(
        select(Job.kind, Job.next_try_at, Job.finished_at)
        .where(Job.state == JobState.DONE, Job.finished_at >= now - RECENT)
        .order_by(Job.finished_at.desc()).limit(RECENT_LIMIT))
    for kind, due_at, finished_at in rows:
        if finished_at is None:
            continue
        seconds = (_aware(finished_at) - _aware(due_at)).total_seconds()
        latencies.setdefault(kind, []).append(max(seconds, 0.0))
    latency = GaugeMetricFamily(
        "easel_job_latency_seconds",
        "From falling due to done, for the jobs of each kind done in the last hour (quantiles)",
        labels=["kind", "quantile"])
    done = GaugeMetricFamily("easel_jobs_done_recently", "Jobs done in the last hour, by kind",
                             labels=["kind"])
    for kind, values in sorted(latencies.items()):
        done.add_metric([kind], len(values))
        for quantile, value in _quantiles(values).items():
            latency.add_metric([kind, str(quantile)], value)
    metrics += [latency, done]

    metrics.append(await _delivery_outcomes(session))
    metrics += await _protection(session, now)
    return metrics


async def _delivery_outcomes(session: AsyncSession) -> Metric:
    """Deliveries by outcome: delivered (2xx), refused (the server answered 4xx, or the
    domain was suspended: given up at once), failed (retries exhausted), pending."""
    rows = await session.execute(
        select(Delivery.delivered_at.is_not(None), Job.state, func.count(Delivery.id))
        .outerjoin(Job, and_(Job.kind == DELIVER_JOB, Job.ref == cast(Delivery.id, String)))
        .group_by(Delivery.delivered_at.is_not(None), Job.state))
    outcomes = dict.fromkeys(("delivered", "refused", "failed", "pending"), 0)
    for delivered, state, count in rows:
        if delivered:
            outcomes["delivered"] += count
        elif state == JobState.FAILED:
            outcomes["failed"] += count
        elif state == JobState.DONE:
            outcomes["refused"] += count
        else:
            outcomes["pending"] += count
    family = GaugeMetricFamily("easel_deliveries", "Deliveries to remote inboxes, by outcome",
                               labels=["outcome"])
    for outcome, count in outcomes.items():
        family.add_metric([outcome], count)
    return family


async def _protection(session: AsyncSession, now: datetime) -> list[Metric]:
    states = GaugeMetricFamily("easel_media_protection",
                               "Local media by protection state", labels=["state"])
    for state, count in await session.execute(
            select(MediaAttachment.protection, func.count(MediaAttachment.id))
            .where(MediaAttachment.remote_url.is_(None))
            .group_by(MediaAttachment.protection)):
        states.add_metric([state], count)
    seconds: list[float] = []
    verdicts: dict[str, int] = {}
    for (meta,) in await session.execute(
            select(MediaAttachment.meta)
            .where(MediaAttachment.remote_url.is_(None), MediaAttachment.updated_at >= now - RECENT)
            .order_by(MediaAttachment.updated_at.desc()).limit(RECENT_LIMIT)):
        document = (meta or {}).get("protection") or {}
        if isinstance(document.get("seconds"), int | float):
            seconds.append(float(document["seconds"]))
        verdict = document.get("verdict")
        if isinstance(verdict, str):
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
    time_family = GaugeMetricFamily(
        "easel_protection_seconds",
        "Time the protection of a local image took, over images changed in the last hour (quantiles)",
        labels=["quantile"])
    for quantile, value in _quantiles(seconds).items():
        time_family.add_metric([str(quantile)], value)
    verdict_family = GaugeMetricFamily(
        "easel_protection_verdicts",
        "Verification verdicts of local images changed in the last hour", labels=["verdict"])
    for verdict, count in sorted(verdicts.items()):
        verdict_family.add_metric([verdict], count)
    return [states, time_family, verdict_family]


class _Families:
    """A collector that yields metric families computed beforehand (async, at the scrape)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def exposition(http: HttpMetrics | None, families: Iterable[Metric]) -> bytes:
    """The Prometheus text for this process's HTTP metrics and the database's figures."""
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(_Families(families))
    return (generate_latest(http.registry) if http is not None else b"") + generate_latest(scraped)


# ---------------------------------------------------------------------- the endpoint

def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_refusal(request: Request, token: str) -> Response | None:
    """Why this request may not read the metrics, as a response; None when it may."""
    if token:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
            return None
        return JSONResponse({"error": "The access token is invalid"}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if _is_loopback(request):
        return None
    return JSONResponse({"error": "Metrics are only served to loopback clients "
                                  "(set EASEL_METRICS_TOKEN to read them from elsewhere)"},
                        status_code=403)


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text format. 404 when ``EASEL_METRICS`` is off."""
    state = easel(request)
    if not state.settings.metrics:
        return JSONResponse({"error": "Record not found"}, status_code=404)
    refusal = metrics_refusal(request, state.settings.metrics_token)
    if refusal is not None:
        return refusal
    async with state.db.session() as session:
        families = await database_metrics(session)
    return Response(exposition(state.http_metrics, families), media_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})


routes: list[BaseRoute] = [Route("/metrics", metrics, methods=["GET"])]


# ------------------------------------------------------------------ easel admin status

CHECK_TIMEOUT = 5.0
# A due job waiting this long means no worker is taking its queue.
STALLED_AFTER = timedelta(minutes=10)
OK, WARNING, ERROR = "ok", "warning", "error"


@dataclass(frozen=True)
class Check:
    """One line of ``easel admin status``: what was checked, how it stands, and why."""

    name: str
    level: str  # ok, warning (works, but look at it) or error (unhealthy)
    detail: str


def _ping_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT,
                                  socket_timeout=CHECK_TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()


async def _check_broker(settings: Settings) -> Check:
    url = settings.broker_url
    if not url:
        return Check("broker", OK, "none: embedded mode (in-process queue, `easel serve` runs the jobs)")
    if not url.startswith(("redis://", "rediss://")):
        return Check("broker", OK, "AMQP broker configured (not checked)")
    try:
        await asyncio.wait_for(asyncio.to_thread(_ping_redis, url), CHECK_TIMEOUT * 2)
    except Exception as exc:
        return Check("broker", ERROR, f"Redis unreachable: {type(exc).__name__}: {exc}")
    return Check("broker", OK, "Redis reachable")


async def _check_queue(session: AsyncSession, now: datetime) -> list[Check]:
    totals: dict[str, dict[str, int]] = {}
    failed = 0
    for row in await queue_admin.depth(session):
        states = totals.setdefault(row.queue, {})
        states[row.state] = states.get(row.state, 0) + row.count
        failed += row.count if row.state == JobState.FAILED else 0
    depth = "; ".join(f"{queue}: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
                      for queue, states in sorted(totals.items())) or "empty"
    checks = [Check("queue", OK, depth)]
    for backlog in await queue_admin.backlog(session, now):
        if backlog.oldest_due_at is None:
            continue
        waited = now - _aware(backlog.oldest_due_at)
        if waited > STALLED_AFTER:
            checks.append(Check(f"queue {backlog.queue}", ERROR,
                                f"{backlog.due} due job(s), the oldest waiting {_duration(waited)}: "
                                "is a worker running for this queue?"))
    if failed:
        checks.append(Check("failed jobs", WARNING,
                            f"{failed} failed job(s): `easel admin queue failures`, "
                            "then `easel admin queue retry`"))
    return checks


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


async def _check_deliveries(session: AsyncSession, now: datetime) -> Check:
    failing = list(await session.scalars(
        select(Instance).where(Instance.failures > 0)
        .order_by(Instance.failures.desc(), Instance.domain).limit(6)))
    if not failing:
        return Check("deliveries", OK, "no remote server failing")
    named = ", ".join(
        f"{instance.domain} ({instance.failures} failure(s)"
        + (f" over {_duration(now - _aware(instance.first_failure_at))}"
           if instance.first_failure_at else "") + ")"
        for instance in failing[:5])
    more = " and more" if len(failing) > 5 else ""
    return Check("deliveries", WARNING, f"failing: {named}{more}")


async def _check_storage(storage: Storage) -> Check:
    from server.storage import new_key

    key = new_key("status", "txt")
    try:
        await storage.put(key, b"easel admin status", private=True)
        if await storage.get(key, private=True) != b"easel admin status":
            return Check("storage", ERROR, "a file written could not be read back")
        await storage.delete(key, private=True)
    except Exception as exc:
        return Check("storage", ERROR, f"not writable: {type(exc).__name__}: {exc}")
    return Check("storage", OK, f"{type(storage).__name__} writable")


def _check_protection(settings: Settings) -> Check:
    if not settings.vae_paths:
        return Check("protection", WARNING,
                     "no model configured (EASEL_VAE_PATH): uploads are published unprotected")
    return Check("protection", OK, f"{len(settings.vae_paths)} model(s): "
                 + ", ".join(str(path) for path in settings.vae_paths)
                 + f"; strength {settings.protect_strength}, profile {settings.protect_profile}")


async def instance_status(settings: Settings, db: Database, storage: Storage) -> list[Check]:
    """Every check of ``easel admin status``, in order; an unreachable database skips
    what needs it (reported as errors)."""
    from server.migrate import current_revision, head_revision

    checks: list[Check] = []
    backend = "SQLite" if db.is_sqlite else "PostgreSQL"
    try:
        await asyncio.wait_for(db.ping(), CHECK_TIMEOUT)
    except Exception as exc:
        checks.append(Check("database", ERROR, f"{backend} unreachable: {type(exc).__name__}: {exc}"))
        checks.append(Check("migrations", ERROR, "not checked: the database is unreachable"))
        checks.append(Check("queue", ERROR, "not checked: the database is unreachable"))
    else:
        checks.append(Check("database", OK, f"{backend} reachable"))
        current, head = await current_revision(db.engine), head_revision()
        checks.append(Check("migrations", OK, f"at head ({head})") if current == head else
                      Check("migrations", ERROR, f"at {current or 'nothing'}, head is {head}: "
                                                 "run `easel migrate`"))
        if current is not None:
            now = utcnow()
            async with db.session() as session:
                checks += await _check_queue(session, now)
                checks.append(await _check_deliveries(session, now))
    checks.append(await _check_broker(settings))
    checks.append(await _check_storage(storage))
    checks.append(_check_protection(settings))
    return checks
