"""Where the rate limiter counts: in this process, or in Redis shared by every web process.

Why it exists: with several web processes behind a load balancer, per-process counters let a
client make N× the limit. When the instance has a Redis broker (``EASEL_BROKER_URL=redis://…``)
the counters live there — one fixed window per bucket, ``INCR`` + ``EXPIRE`` in one
transaction — so every process counts the same requests. Without one (the embedded mode has
one web process) they stay in memory. Each bucket has its own window (5 minutes for most,
30 minutes for uploads and sign-ups, 3 hours for posting), and every bucket a request counts
against is counted in one round trip.

What it must never do: turn a Redis outage into an outage of the API. A failing Redis is
logged and the process falls back to its own counters until Redis answers again.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

log = logging.getLogger(__name__)

KEY_PREFIX = "easel:ratelimit:"
# Mastodon's window for the API buckets: 5 minutes.
RATE_WINDOW = 300.0

# A bucket: its key and its window in seconds (a key always comes with the same window).
Bucket = tuple[str, float]


class RateCounters(Protocol):
    async def hit(self, buckets: list[Bucket], now: float) -> list[tuple[int, float]]:
        """Count one request against each of ``buckets`` (one round trip): for each,
        (requests in its current window, when that window resets)."""
        ...

    async def close(self) -> None: ...


class LocalCounters:
    """Fixed windows per key, in this process; the least recently used keys are dropped
    past ``max_keys``."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self.counters: OrderedDict[str, tuple[float, int]] = OrderedDict()

    async def hit(self, buckets: list[Bucket], now: float) -> list[tuple[int, float]]:
        return [self._hit(key, window, now) for key, window in buckets]

    def _hit(self, key: str, window: float, now: float) -> tuple[int, float]:
        window_start, count = self.counters.get(key, (now, 0))
        if now - window_start >= window:
            window_start, count = now, 0
        count += 1
        self.counters[key] = (window_start, count)
        self.counters.move_to_end(key)
        while len(self.counters) > self.max_keys:
            self.counters.popitem(last=False)
        return count, window_start + window

    async def close(self) -> None:
        self.counters.clear()


class RedisCounters:
    """Windows aligned on multiples of each bucket's window (every process agrees on them),
    one Redis key per bucket and window, expiring with it."""

    RETRY_AFTER = 30.0  # seconds on local counters after a Redis failure

    def __init__(self, url: str, *, client: Any = None) -> None:
        import redis.asyncio as redis

        self.redis = client if client is not None else redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.fallback = LocalCounters()
        self.failed_at: float | None = None

    async def hit(self, buckets: list[Bucket], now: float) -> list[tuple[int, float]]:
        if self.failed_at is not None and time.monotonic() - self.failed_at < self.RETRY_AFTER:
            return await self.fallback.hit(buckets, now)
        indexes = [int(now // window) for _key, window in buckets]
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for (key, window), index in zip(buckets, indexes, strict=True):
                    name = f"{KEY_PREFIX}{key}:{index}"
                    pipe.incr(name)
                    pipe.expire(name, int(window) + 1)
                answers = await pipe.execute()
        except Exception as exc:  # redis.RedisError, OSError, timeouts
            if self.failed_at is None:
                log.warning("rate limits: Redis failed (%s); counting in this process for now",
                            type(exc).__name__)
            self.failed_at = time.monotonic()
            return await self.fallback.hit(buckets, now)
        if self.failed_at is not None:
            log.info("rate limits: Redis answers again")
            self.failed_at = None
        return [(int(count), (index + 1) * window)
                for count, index, (_key, window) in zip(answers[::2], indexes, buckets, strict=True)]

    async def close(self) -> None:
        await self.redis.aclose()


def rate_counters(broker_url: str) -> RateCounters:
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisCounters(broker_url)
    return LocalCounters()
