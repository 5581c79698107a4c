"""Timeline throughput and web-process memory, against a real `easel serve`.

    .venv/bin/python bench/timelines.py [--database sqlite|postgres] [--seconds 10]
                                        [--set EASEL_NAME=VALUE ...]

Seeds 40 statuses with one ready image each (rows written directly, as the pipeline would
leave them), starts `easel serve` on a loopback port, then drives the public timeline
(anonymous, which the 1-second page cache serves as it is; signed in, which the same page
serves with the viewer's flags laid over by one query; and signed in with the cache off,
`EASEL_PUBLIC_CACHE_SECONDS=0`, in a second server: every page built per request) and the
home timeline (never cached) with `wrk` (Debian package `wrk`; a second process, so the
load generator does not share the server's interpreter). Prints requests per second, p99
latency, the web process's CPU time per request and its RSS afterwards, with the ratios to
the targets:
  public timeline ≥ 500 req/s on 2 cores; web process ≤ 150 MB RSS without torch.
PostgreSQL: set EASEL_BENCH_DATABASE_URL (or run `eval "$(bash .ci/services.sh)"`, whose
EASEL_TEST_DATABASE_URL is used; its tables are emptied first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text

from server.db import Database
from server.ids import new_id
from server.migrate import upgrade
from server.models import (
    Base,
    Follow,
    MediaAttachment,
    OAuthApplication,
    OAuthToken,
    Status,
)
from server.services.accounts import create_user
from server.services.tokens import token_digest
from server.settings import Settings

PUBLIC_TARGET_RPS = 500.0
RSS_TARGET_MB = 150.0
STATUSES = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def seed(settings: Settings, reset: bool) -> str:
    """Alice posts 40 works; Bob follows her. Returns Bob's access token."""
    db = Database(settings.effective_database_url)
    try:
        await upgrade(db.engine)
        if reset:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            async with db.engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        async with db.session() as session:
            alice = await create_user(session, settings, username="alice",
                                      email="alice@example.com", password="bench password 1")
            bob = await create_user(session, settings, username="bob",
                                    email="bob@example.com", password="bench password 2")
        token = secrets.token_urlsafe(32)
        start = datetime.now(UTC) - timedelta(hours=1)
        async with db.session() as session:
            app = OAuthApplication(name="bench", client_id=secrets.token_hex(16),
                                   client_secret=secrets.token_hex(16), scopes="read")
            session.add(app)
            await session.flush()
            session.add(OAuthToken(token_digest=token_digest(token), application_id=app.id,
                                   user_id=bob.id, scopes="read"))
            session.add(Follow(account_id=bob.account_id, target_account_id=alice.account_id))
            base = settings.base_url
            for n in range(STATUSES):
                at = start + timedelta(seconds=n)
                status_id = new_id(at)
                session.add(Status(
                    id=status_id, account_id=alice.account_id,
                    uri=f"{base}/users/alice/statuses/{status_id}",
                    url=f"{base}/@alice/{status_id}", text=f"Work {n} #painting",
                    content=f"<p>Work {n} #painting</p>", visibility="public",
                    published=True, published_at=at, created_at=at))
                await session.flush()
                session.add(MediaAttachment(
                    account_id=alice.account_id, status_id=status_id, state="ready",
                    protection="unprotected", file_key=f"media/aa/bb/{n:032x}.webp",
                    small_key=f"media/aa/bb/{n:032x}s.webp", thumb_key=f"media/aa/bb/{n:032x}t.webp",
                    blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj", description=f"Work {n}",
                    meta={"original": {"width": 2048, "height": 1536, "size": "2048x1536",
                                       "aspect": 1.3333},
                          "small": {"width": 640, "height": 480, "size": "640x480",
                                    "aspect": 1.3333}}))
            await session.commit()
        return token
    finally:
        await db.dispose()


def run_wrk(url: str, seconds: int, token: str | None) -> tuple[float, float, str]:
    command = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99_raw = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    assert p99_raw is not None, output
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99_raw.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses:\n{output}")
    return rps, float(p99_raw.group(1)) * scale, output


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="EASEL_NAME=VALUE",
                        help="a setting for the servers under test (to compare one's cost)")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    if any(not name.startswith("EASEL_") for name in extra):
        raise SystemExit("--set takes EASEL_* settings, e.g. --set EASEL_DATABASE_TIMEOUT=0")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    data_dir = Path(tempfile.mkdtemp(prefix="easel-bench-"))
    port = free_port()
    domain = f"127.0.0.1:{port}"
    database_url = ""
    if args.database == "postgres":
        database_url = (os.environ.get("EASEL_BENCH_DATABASE_URL")
                        or os.environ.get("EASEL_TEST_DATABASE_URL", ""))
        if not database_url:
            raise SystemExit("set EASEL_BENCH_DATABASE_URL (or EASEL_TEST_DATABASE_URL) for PostgreSQL")
    settings = Settings(domain=domain, scheme="http", data_dir=data_dir, database_url=database_url)
    token = asyncio.run(seed(settings, reset=bool(database_url)))

    env = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
    env.update(EASEL_DOMAIN=domain, EASEL_SCHEME="http", EASEL_DATA_DIR=str(data_dir),
               EASEL_DATABASE_URL=database_url, EASEL_RATE_LIMITS="off", **extra)
    print(f"Easel timelines benchmark — {args.database}, {STATUSES} statuses with media, "
          f"wrk 2 threads × 16 connections × {args.seconds} s, {os.cpu_count()} cores"
          + "".join(f", {name}={value}" for name, value in extra.items()))
    results: dict[str, float] = {}
    try:
        with serving(data_dir, port, env) as pid:
            for name, path, auth in (
                # Anonymous: the 1-second page cache's bytes (server/api/cache.py).
                ("public", "/api/v1/timelines/public?limit=20", None),
                # Signed in: the same page with the viewer's flags laid over (one query).
                ("public, signed in", "/api/v1/timelines/public?limit=20", token),
                # Never cached: every request queries and renders.
                ("home", "/api/v1/timelines/home?limit=20", token),
            ):
                results[name] = measure(domain, name, path, auth, args.seconds, pid)
            rss = rss_mb(pid)
        # A second server with the page cache off: every page built for its viewer.
        with serving(data_dir, port, {**env, "EASEL_PUBLIC_CACHE_SECONDS": "0"}) as pid:
            results["no cache"] = measure(domain, "public, signed in, cache off",
                                          "/api/v1/timelines/public?limit=20", token,
                                          args.seconds, pid)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"  public timeline vs target {PUBLIC_TARGET_RPS:.0f} req/s: "
          f"ratio {results['public'] / PUBLIC_TARGET_RPS:.2f} anonymous, "
          f"{results['public, signed in'] / PUBLIC_TARGET_RPS:.2f} signed in, "
          f"{results['no cache'] / PUBLIC_TARGET_RPS:.2f} signed in with the cache off")
    print(f"  web process RSS {rss:.1f} MB vs target {RSS_TARGET_MB:.0f} MB: "
          f"ratio {rss / RSS_TARGET_MB:.2f} (≤ 1 meets it)")


def measure(domain: str, name: str, path: str, token: str | None, seconds: int,
            pid: int) -> float:
    """wrk's rate and p99, and the web process's CPU time per request over the run (what
    one fully used core would serve: meaningful even when wrk or PostgreSQL share it)."""
    before = cpu_seconds(pid)
    rps, p99, _ = run_wrk(f"http://{domain}{path}", seconds, token)
    per_request = (cpu_seconds(pid) - before) / max(rps * seconds, 1) * 1000
    print(f"  {name:<30} {rps:8.1f} req/s   p99 {p99:7.1f} ms   "
          f"server CPU {per_request:.2f} ms/request", flush=True)
    return rps


@contextlib.contextmanager
def serving(data_dir: Path, port: int, env: dict[str, str]) -> Iterator[int]:
    """`easel serve` on ``port`` until the block ends; yields its pid once it is healthy."""
    domain = env["EASEL_DOMAIN"]
    easel = Path(sys.executable).parent / "easel"
    with open(data_dir / "serve.log", "wb") as log:
        server = subprocess.Popen([str(easel), "serve", "--port", str(port)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://{domain}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit((data_dir / "serve.log").read_text())
                time.sleep(0.2)
            check = httpx.get(f"http://{domain}/api/v1/timelines/public?limit=40")
            check.raise_for_status()
            assert len(check.json()) == STATUSES, \
                f"expected {STATUSES} statuses, got {len(check.json())}"
            yield server.pid
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
