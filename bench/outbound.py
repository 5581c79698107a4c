"""Outbound delivery: one post to N distinct remote inboxes, from publish to all delivered.

Why it exists: the issue's target is one post → 10,000 distinct inboxes (no shared inbox)
delivered in ≤ 30 s on 2 cores, against a floor of 10,000 RSA-2048 signatures. This
script measures it end to end through the real code path — ``create_status`` records the
Create, the ``federate`` job builds it, inserts the deliveries and their jobs, and makes
their first attempt concurrently over the keep-alive delivery client — against loopback
receivers in a separate process (raw asyncio HTTP/1.1 servers on a few 127.0.0.1 ports,
each accepting any inbox path: they read the body and answer 202, verifying nothing).

Usage:
    .venv/bin/python bench/outbound.py [--inboxes 10000] [--ports 4]
        [--database-url postgresql+asyncpg://…]   (default: a fresh SQLite file)

The PostgreSQL database given is migrated and every Easel table in it is emptied first:
never point it at a database whose data you want.

Prints deliveries/s, total seconds, the CPU seconds this (sending) process used meanwhile
(steadier than the wall time on a shared machine), the measured cost of one signature, and
the ratio of the total to N × that cost. It never reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import func, insert, select, text

from federation.signatures import CavageSigner
from server.db import Database
from server.ids import new_id, utcnow
from server.migrate import upgrade
from server.models import Account, Base, Delivery, Follow, Job, JobState
from server.queue.kinds import load_job_modules
from server.queue.runner import JobRunner
from server.services import statuses
from server.services.accounts import create_user
from server.settings import Settings

RESPONSE = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


# ------------------------------------------------------------------------ receivers

async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            counter: list[int]) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            counter[0] += 1
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _receivers(ports: list[int], ready: multiprocessing.synchronize.Event,
               stop: multiprocessing.synchronize.Event) -> None:
    async def main() -> None:
        counter = [0]
        servers = [await asyncio.start_server(
            lambda r, w: _serve_connection(r, w, counter), "127.0.0.1", port, backlog=1024)
            for port in ports]
        ready.set()
        await asyncio.to_thread(stop.wait)
        for server in servers:
            server.close()

    asyncio.run(main())


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


# ------------------------------------------------------------------------ database

async def _fresh_database(settings: Settings) -> Database:
    db = Database.from_settings(settings)
    await upgrade(db.engine)
    if not db.is_sqlite:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        async with db.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return db


async def _audience(db: Database, settings: Settings, ports: list[int], count: int) -> Account:
    async with db.session() as session:
        user = await create_user(session, settings, username="alice",
                                 email="alice@example.com", password="a long bench password")
    now = utcnow()
    accounts, follows = [], []
    ids: dict[int, None] = {}
    while len(ids) < 2 * count:
        ids[new_id()] = None
    id_list = list(ids)
    for i in range(count):
        port = ports[i % len(ports)]
        base = f"http://127.0.0.1:{port}/users/f{i}"
        accounts.append({"id": id_list[i], "username": f"f{i}", "username_key": f"f{i}",
                         "domain": f"127.0.0.1:{port}", "uri": base, "inbox_url": base + "/inbox",
                         "created_at": now, "updated_at": now})
        follows.append({"id": id_list[count + i], "account_id": id_list[i],
                        "target_account_id": user.account_id, "created_at": now})
    async with db.session() as session:
        for start in range(0, count, 1000):
            await session.execute(insert(Account), accounts[start:start + 1000])
        for start in range(0, count, 1000):
            await session.execute(insert(Follow), follows[start:start + 1000])
        author = await session.get(Account, user.account_id)
        assert author is not None
        await session.commit()
    return author


# ------------------------------------------------------------------------ measuring

def signing_cost(author: Account, samples: int = 2000) -> float:
    """Seconds per CavageSigner signature of an inbox POST (the floor's unit)."""
    assert author.private_key_pem is not None
    signer = CavageSigner(author.public_key_id, author.private_key_pem)
    request = httpx.Request("POST", "http://127.0.0.1:9/users/x/inbox", content=b"{}" * 700)
    start = time.perf_counter()
    for _ in range(samples):
        signer.sign(request)
    return (time.perf_counter() - start) / samples


async def _delivered(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        done = await session.scalar(select(func.count()).select_from(Job).where(
            Job.kind == "deliver", Job.state == JobState.DONE.value)) or 0
        total = await session.scalar(select(func.count()).select_from(Delivery)) or 0
    return done, total


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    ports = _free_ports(args.ports)
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    receivers = multiprocessing.Process(target=_receivers, args=(ports, ready, stop), daemon=True)
    receivers.start()
    ready.wait(10)
    settings = Settings(domain="bench.easel.test", scheme="https", data_dir=data_dir,
                        database_url=args.database_url or "", allow_private_addresses=True,
                        rate_limits=False)
    load_job_modules()
    if args.concurrency:
        import federation.delivery

        federation.delivery.CONCURRENCY = args.concurrency
    db = await _fresh_database(settings)
    try:
        author = await _audience(db, settings, ports, args.inboxes)
        sign = signing_cost(author)
        runner = JobRunner(db, settings)
        start, cpu_start = time.perf_counter(), time.process_time()
        async with db.session() as session:
            await statuses.create_status(session, settings, author, None,
                                         text="A new piece #art for everyone")
        await runner.run_due(["federation"])
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        done, total = await _delivered(db)
    finally:
        from federation.context import close_federation_context

        await close_federation_context(db)
        await db.dispose()
        stop.set()
        receivers.join(5)
    import importlib.util
    import os

    import federation.delivery

    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"backend: {backend}; inboxes: {args.inboxes} on {args.ports} loopback ports; "
          f"{federation.delivery.CONCURRENCY} in flight; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores; sniffio installed: "
          f"{importlib.util.find_spec('sniffio') is not None}")
    print(f"delivered: {done}/{total} in {elapsed:.2f} s -> {done / elapsed:.0f} deliveries/s; "
          f"CPU of this process: {cpu:.2f} s (less noisy than the wall time on a busy machine)")
    print(f"one signature: {sign * 1000:.3f} ms; signing floor: {args.inboxes * sign:.2f} s; "
          f"ratio to the floor: {elapsed / (args.inboxes * sign):.1f}x")
    print(f"target: <= 30 s -> {'met' if done == args.inboxes and elapsed <= 30 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inboxes", type=int, default=10_000)
    parser.add_argument("--ports", type=int, default=4)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="deliveries in flight (default: federation.delivery.CONCURRENCY)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="easel-bench-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
