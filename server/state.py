"""What the running app holds: settings, database, job runner and queue, in one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from server.api.cache import PublicPageCache
from server.api.rate_counters import RateCounters
from server.db import Database
from server.queue.broker import JobQueue
from server.queue.runner import JobRunner
from server.services.ip_blocks import IpBlockMatcher
from server.settings import Settings
from server.storage import Storage
from server.streaming.bus import StreamBus
from server.urls import Urls

if TYPE_CHECKING:
    from server.observability import HttpMetrics


@dataclass
class EaselState:
    settings: Settings
    db: Database
    runner: JobRunner
    queue: JobQueue
    urls: Urls
    storage: Storage
    public_cache: PublicPageCache = field(default_factory=PublicPageCache)
    streams: StreamBus | None = None  # the streaming API's event bus (server.streaming.bus)
    rate_counters: RateCounters | None = None  # the API rate limiter's (None: limits off)
    http_metrics: HttpMetrics | None = None  # this process's HTTP metrics (None: metrics off)
    # this process's view of the IP blocks, for every request (server.services.ip_blocks)
    ip_blocks: IpBlockMatcher = field(default_factory=IpBlockMatcher)
    # /api/v1/instance/activity as last counted: (time.monotonic() then, the weeks)
    weekly_activity: tuple[float, list[dict[str, str]]] | None = None

    def __post_init__(self) -> None:
        self.public_cache.ttl = self.settings.public_cache_seconds


def easel(request: Request) -> EaselState:
    state: EaselState = request.app.state.easel
    return state
