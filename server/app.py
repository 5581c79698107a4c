"""The Starlette app factory: routes, middleware, error handlers, and the lifespan that
starts the database, the job queue and (embedded mode) the in-process workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

import federation.inbox.routes
import federation.routes
import server.api.accounts
import server.api.admin_accounts
import server.api.admin_domains
import server.api.admin_ip_blocks
import server.api.admin_reports
import server.api.announcements
import server.api.apps
import server.api.blocks
import server.api.conversations
import server.api.domain_blocks
import server.api.endorsements
import server.api.featured_tags
import server.api.filters
import server.api.instance
import server.api.lists
import server.api.markers
import server.api.media
import server.api.notifications
import server.api.oauth
import server.api.polls
import server.api.portfolio
import server.api.push
import server.api.registrations
import server.api.reports
import server.api.scheduled_statuses
import server.api.search
import server.api.statuses
import server.api.streaming
import server.api.tags
import server.api.timelines
import server.api.trends
import server.health
import server.observability
import server.web.account
import server.web.account_standing
import server.web.admin
import server.web.media_files
import server.web.pages
import server.web.robots
import server.web.studio
import server.wellknown
from federation.context import close_federation_context
from protect.optout_metadata import policy_url
from server.api.middleware import (
    BodyLimitMiddleware,
    CloseUploadsMiddleware,
    IpBlockMiddleware,
    RateLimitMiddleware,
    RateLimits,
    RejectNulMiddleware,
    TrailingSlashMiddleware,
)
from server.api.rate_counters import rate_counters
from server.cors import PathCORSMiddleware
from server.db import Database
from server.errors import EXCEPTION_HANDLERS, UnexpectedErrors
from server.last_use import LastUseMiddleware
from server.observability import HttpMetrics, ObservabilityMiddleware, RouteCapture
from server.queue.broker import JobQueue, make_broker
from server.queue.kinds import LIGHT_QUEUES, load_job_modules
from server.queue.runner import JobRunner
from server.routing import IndexedRouter
from server.services import user_ips
from server.services.accounts import instance_actor
from server.settings import Settings
from server.state import EaselState
from server.storage import media_storage
from server.streaming.bus import StreamBus
from server.urls import Urls
from server.web.optout import OptOutHeaders, TdmPolicy

log = logging.getLogger(__name__)


@dataclass
class AppOptions:
    """How much of the background machinery the app starts with itself."""

    # Run dramatiq worker threads for the light queues in this process (embedded mode).
    run_workers: bool = True
    worker_threads: int = 4
    # Re-send due jobs at start-up and when retries fall due.
    run_reconciler: bool = True
    # Command line of a child worker process to keep running (embedded protection).
    child_worker: list[str] = field(default_factory=list)


async def supervise_child(command: list[str], stop: asyncio.Event) -> None:
    """Keep a child worker process running until ``stop``; restart it if it dies."""
    delay = 1.0
    while not stop.is_set():
        process = await asyncio.create_subprocess_exec(*command)
        log.info("started child worker (pid %s): %s", process.pid, " ".join(command))
        waiter = asyncio.ensure_future(process.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            stopper.cancel()
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(waiter, timeout=15)
                except TimeoutError:
                    process.kill()
                    await waiter
            return
        stopper.cancel()
        log.error("child worker exited with %s; restarting in %.0f s", process.returncode, delay)
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, 60.0)


STATIC_DIR = Path(__file__).parent / "web" / "static"


def all_routes() -> list[BaseRoute]:
    return [
        *federation.inbox.routes.routes,  # first: the busiest routes, matched soonest
        Mount("/static", app=OptOutHeaders(StaticFiles(directory=STATIC_DIR)), name="static"),
        *server.wellknown.routes,
        *server.health.routes,
        *server.observability.routes,
        *server.api.apps.routes,
        *server.api.oauth.routes,
        *server.api.registrations.routes,
        *server.api.instance.routes,
        *server.api.announcements.routes,
        *server.api.blocks.routes,
        *server.api.conversations.routes,
        *server.api.featured_tags.routes,
        *server.api.endorsements.routes,
        *server.api.domain_blocks.routes,
        *server.api.lists.routes,
        *server.api.filters.routes,
        *server.api.tags.routes,
        *server.api.markers.routes,
        *server.api.push.routes,
        *server.api.trends.routes,
        *server.api.admin_accounts.routes,
        *server.api.accounts.routes,
        *server.api.statuses.routes,
        *server.api.scheduled_statuses.routes,
        *server.api.streaming.routes,
        *server.api.polls.routes,
        *server.api.portfolio.routes,
        *server.api.media.routes,
        *server.api.timelines.routes,
        *server.api.notifications.routes,
        *server.api.search.routes,
        *server.api.reports.routes,
        *server.api.admin_reports.routes, *server.api.admin_domains.routes,
        *server.api.admin_ip_blocks.routes,
        *federation.routes.routes,
        *server.web.media_files.routes,
        *server.web.robots.routes,
        *server.web.account_standing.routes,
        *server.web.admin.routes,
        *server.web.studio.routes,
        *server.web.account.routes,
        *server.web.pages.routes,
    ]


def build_state(settings: Settings, db: Database | None = None) -> EaselState:
    db = db or Database.from_settings(settings)
    runner = JobRunner(db, settings)
    queue = JobQueue(runner, make_broker(settings), consumed_queues=LIGHT_QUEUES)
    storage = media_storage(settings)
    streams = StreamBus(settings)
    db.dispatch_events = streams.publish
    state = EaselState(settings=settings, db=db, runner=runner, queue=queue, urls=Urls(settings),
                       storage=storage, streams=streams)
    # A status published, edited or deleted anywhere on the instance empties this process's
    # cached public pages (the bus carries every process's events to every web process).
    streams.watchers.append(state.public_cache.forget_on_status_events)
    if queue.in_process:  # jobs the embedded protect child committed run here now
        streams.job_listeners.append(queue.dispatch)
    return state


def create_app(
    settings: Settings, *, db: Database | None = None, options: AppOptions | None = None
) -> Starlette:
    options = options or AppOptions()
    load_job_modules()  # job kinds this process may enqueue or run
    state = build_state(settings, db)
    if settings.rate_limits:
        state.rate_counters = rate_counters(settings.broker_url)
    if settings.metrics:
        state.http_metrics = HttpMetrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with state.db.session() as session:
            await instance_actor(session, settings)
            await user_ips.expire_if_off(session, settings)  # EASEL_IP_RETENTION_DAYS=0
            await session.commit()
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        state.queue.bind_loop()
        if state.streams is not None:
            await state.streams.start(listen=True)
        if options.run_workers and state.queue.in_process:
            state.queue.start_worker(LIGHT_QUEUES, threads=options.worker_threads)
        if options.run_reconciler and state.queue.in_process:
            tasks.append(asyncio.create_task(state.queue.reconcile_forever(LIGHT_QUEUES, stop)))
        if options.child_worker:
            tasks.append(asyncio.create_task(supervise_child(options.child_worker, stop)))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                await task
            await state.queue.stop_worker()
            state.queue.close()
            if state.streams is not None:
                await state.streams.close()
            await close_federation_context(state.db)
            if state.rate_counters is not None:
                await state.rate_counters.close()
            await state.db.dispose()

    middleware = [Middleware(ObservabilityMiddleware, metrics=state.http_metrics),
                  Middleware(RejectNulMiddleware), Middleware(TdmPolicy, policy_url=policy_url(settings)),
                  Middleware(PathCORSMiddleware),
                  Middleware(TrailingSlashMiddleware), Middleware(UnexpectedErrors),
                  # no_access IP blocks: inside request ids, CORS and error pages, before
                  # the rate limits count the request and before any endpoint's database work
                  Middleware(IpBlockMiddleware, blocks=state.ip_blocks, db=state.db),
                  # writes a login's last use once the request is answered (server.last_use)
                  Middleware(LastUseMiddleware, db=state.db, settings=settings)]
    if settings.rate_limits:
        middleware.append(Middleware(RateLimitMiddleware, limits=RateLimits.from_settings(settings),
                                     counters=state.rate_counters))
    middleware += [Middleware(BodyLimitMiddleware), Middleware(CloseUploadsMiddleware)]
    if state.http_metrics is not None:
        middleware.append(Middleware(RouteCapture))  # innermost: sees the routed scope
    app = Starlette(middleware=middleware, exception_handlers=EXCEPTION_HANDLERS)
    # Starlette's own router, with its route lookup narrowed by an index (server.routing).
    app.router = IndexedRouter(all_routes(), lifespan=lifespan)
    app.state.easel = state
    return app
