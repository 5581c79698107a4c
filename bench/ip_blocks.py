"""What the IP-block door costs every request: ``IpBlockMiddleware`` around an empty ASGI
app, with no block, and with 1,000 blocks (merged key ranges, one bisect per lookup).

    .venv/bin/python bench/ip_blocks.py [--rounds 200000]

Prints nanoseconds per request for a bare app, a pass-through middleware, and the door
with 0 and 1,000 blocks, with the extra cost over the pass-through. Target: with no block,
within 1 µs of a pass-through middleware (the door must cost nothing until an admin uses it).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.addresses import network_range
from server.api.middleware import IpBlockMiddleware
from server.services.ip_blocks import IpBlockMatcher

TARGET_NS = 1000.0


async def inner(scope: Any, receive: Any, send: Any) -> None:
    return None


class PassThrough:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


async def per_request(app: Any, rounds: int) -> float:
    scope = {"type": "http", "path": "/api/v1/timelines/home", "client": ("192.0.2.1", 1234)}
    for _ in range(1000):
        await app(scope, None, None)
    started = time.perf_counter()
    for _ in range(rounds):
        await app(scope, None, None)
    return (time.perf_counter() - started) / rounds * 1e9


def blocks(count: int) -> list[tuple[str, str, str, None]]:
    """``count`` /24 networks in 10.0.0.0/8, every third a sign-up block, the rest no access."""
    rows = []
    for n in range(count):
        first, last = network_range(ipaddress.ip_network(f"10.{n // 256}.{n % 256}.0/24"))
        rows.append((first, last, "sign_up_block" if n % 3 == 0 else "no_access", None))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200_000)
    rounds = parser.parse_args().rounds
    figures = {"bare app": await per_request(inner, rounds),
               "pass-through middleware": await per_request(PassThrough(inner), rounds)}
    for count in (0, 1000):
        matcher = IpBlockMatcher(ttl=3600)
        matcher.load(blocks(count))
        door = IpBlockMiddleware(inner, blocks=matcher, db=None)  # type: ignore[arg-type]
        figures[f"door, {count} blocks"] = await per_request(door, rounds)
    print(f"IP-block door, {rounds} requests each (one process)")
    base = figures["pass-through middleware"]
    for name, ns in figures.items():
        extra = f"  (+{ns - base:.0f} ns over a pass-through)" if name.startswith("door") else ""
        print(f"  {name:<26} {ns:8.0f} ns/request{extra}")
    extra = figures["door, 0 blocks"] - base
    print(f"  no-block extra vs target {TARGET_NS:.0f} ns: ratio {extra / TARGET_NS:.2f} (≤ 1 meets it)")


if __name__ == "__main__":
    asyncio.run(main())
