"""Where the rate limiter counts: in this process, or in Redis shared by every web process.

Why it exists: with several web processes behind a load balancer, per-process counters let a
client make N× the limit. When the instance has a Redis broker (``EASEL_BROKER_URL=redis://…``)
the counters live there — one fixed window per bucket, ``INCR`` + ``EXPIRE`` in one
transaction — so every process counts the same requests. Without one (the embedded mode has
one web process) they stay in memory.

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
# Mastodon's window: 5 minutes.
RATE_WINDOW = 300.0


class RateCounters(Protocol):
    async def hit(self, keys: list[str], now: float) -> list[tuple[int, float]]:
        """Count one request against each of ``keys`` (one round trip): for each, (requests
        in this window, when it resets)."""
        ...

    async def close(self) -> None: ...


class LocalCounters:
    """Fixed windows per key, in this process; the least recently used keys are dropped
    past ``max_keys``."""

    def __init__(self, window: float, max_keys: int = 100_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self.counters: OrderedDict[str, tuple[float, int]] = OrderedDict()

    async def hit(self, keys: list[str], now: float) -> list[tuple[int, float]]:
        return [self._hit(key, now) for key in keys]

    def _hit(self, key: str, now: float) -> tuple[int, float]:
        window_start, count = self.counters.get(key, (now, 0))
        if now - window_start >= self.window:
            window_start, count = now, 0
        count += 1
        self.counters[key] = (window_start, count)
        self.counters.move_to_end(key)
        while len(self.counters) > self.max_keys:
            self.counters.popitem(last=False)
        return count, window_start + self.window

    async def close(self) -> None:
        self.counters.clear()


class RedisCounters:
    """Windows aligned on multiples of ``window`` (every process agrees on them), one Redis
    key per bucket and window, expiring with it."""

    RETRY_AFTER = 30.0  # seconds on local counters after a Redis failure

    def __init__(self, url: str, window: float, *, client: Any = None) -> None:
        import redis.asyncio as redis

        self.window = window
        self.redis = client if client is not None else redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.fallback = LocalCounters(window)
        self.failed_at: float | None = None

    async def hit(self, keys: list[str], now: float) -> list[tuple[int, float]]:
        if self.failed_at is not None and time.monotonic() - self.failed_at < self.RETRY_AFTER:
            return await self.fallback.hit(keys, now)
        index = int(now // self.window)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    name = f"{KEY_PREFIX}{key}:{index}"
                    pipe.incr(name)
                    pipe.expire(name, int(self.window) + 1)
                answers = await pipe.execute()
        except Exception as exc:  # redis.RedisError, OSError, timeouts
            if self.failed_at is None:
                log.warning("rate limits: Redis failed (%s); counting in this process for now",
                            type(exc).__name__)
            self.failed_at = time.monotonic()
            return await self.fallback.hit(keys, now)
        if self.failed_at is not None:
            log.info("rate limits: Redis answers again")
            self.failed_at = None
        reset = (index + 1) * self.window
        return [(int(count), reset) for count in answers[::2]]

    async def close(self) -> None:
        await self.redis.aclose()


def rate_counters(broker_url: str, window: float) -> RateCounters:
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisCounters(broker_url, window)
    return LocalCounters(window)
