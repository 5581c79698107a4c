"""Inbound federation: signed ``Create`` POSTs accepted per second, then processed per second.

    .venv/bin/python bench/inbound.py [--requests 5000] [--connections 32]
                                      [--database-url postgresql+asyncpg://…]
                                      [--accept-only]

Seeds a fresh instance (SQLite in a temporary directory by default; with
``--database-url`` a PostgreSQL database, whose tables are emptied first) with alice and
100 remote actors whose rows and public keys are already stored (fresh, so nothing is
fetched), alice following each (so their posts are stored, not dropped as irrelevant).
Then, with every request signed beforehand (signing is the sender's cost, not ours):

1. **accepted/s** — a real uvicorn process serving the app *without* queue workers
   (``AppOptions(run_workers=False)``, access log off) receives N signed ``Create`` POSTs
   on ``/inbox`` over C keep-alive connections from a raw-asyncio client (a second
   process, so the client does not share the server's interpreter); every answer must be
   202, and N items must be stored;
2. **processed/s** — that server is stopped, and the stored ``process_inbox`` jobs are
   run by the queue's own :class:`~server.queue.runner.JobRunner` with ``--workers``
   (4) concurrent runners on one event loop, as the in-process queue's worker threads
   run them (each job: claim, parse, actor from the cache, the ``Create`` handler storing
   the note, outcome, done). Timing ``easel serve``'s own start-up pass instead would
   measure its reconciler (1,000 jobs re-sent per 60 s pass), not the processing.
   Every item must end ``processed``. ``--accept-only`` skips this phase (it takes minutes
   on SQLite), for comparing changes to the accepting path back to back.

Prints both rates, the ratio of accepted/s to the target (1,000/s on 2 cores), the web
process's CPU time per accepted request (from /proc: the rate one fully used core would
give, which stays meaningful when the machine is shared and wall-clock rates are not),
and the floor set by signature verification alone (RSA-2048 PKCS#1 v1.5 verify, measured
here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import func, select, text

from federation.signatures import CavageSigner
from server.db import Database
from server.ids import new_id
from server.migrate import upgrade
from server.models import Account, Base, Follow, InboxItem, Job
from server.services.accounts import create_user
from server.services.keys import generate_key_pair
from server.settings import Settings

ACCEPT_TARGET = 1000.0
ACTORS = 100
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def actor_uri(n: int) -> str:
    return f"https://remote{n}.example/users/artist{n}"


async def seed(settings: Settings, keys: list[tuple[str, str]], reset: bool) -> None:
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
        now = datetime.now(UTC)
        async with db.session() as session:
            for n, (_, public_pem) in enumerate(keys):
                uri = actor_uri(n)
                account = Account(
                    id=new_id(), username=f"artist{n}", username_key=f"artist{n}",
                    domain=f"remote{n}.example", uri=uri, url=uri, inbox_url=uri + "/inbox",
                    shared_inbox_url=f"https://remote{n}.example/inbox",
                    followers_url=uri + "/followers", public_key_id=uri + "#main-key",
                    public_key_pem=public_pem, created_at=now, updated_at=now)
                session.add(account)
                await session.flush()
                session.add(Follow(account_id=alice.account_id, target_account_id=account.id))
            await session.commit()
    finally:
        await db.dispose()


def signed_requests(keys: list[tuple[str, str]], count: int, host: str) -> list[bytes]:
    """``count`` raw HTTP/1.1 POSTs of distinct Creates, each signed by its actor."""
    signers = [CavageSigner(actor_uri(n) + "#main-key", private) for n, (private, _) in
               enumerate(keys)]
    requests = []
    for i in range(count):
        n = i % len(keys)
        uri = actor_uri(n)
        note_id = f"{uri}/statuses/{i + 1}"
        # Distinct times: remote statuses get Snowflake ids from ``published``.
        published = datetime.fromtimestamp(1_714_557_600 + i, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        activity = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": note_id + "/activity", "type": "Create", "actor": uri,
            "published": published, "to": [PUBLIC], "cc": [uri + "/followers"],
            "object": {"id": note_id, "type": "Note", "attributedTo": uri,
                       "published": published, "to": [PUBLIC],
                       "cc": [uri + "/followers"], "url": note_id,
                       "content": f"<p>Sketch number {i} <a href=\"https://remote{n}.example"
                                  f"/tags/ink\" rel=\"tag\">#ink</a></p>",
                       "tag": [{"type": "Hashtag", "name": "#ink",
                                "href": f"https://remote{n}.example/tags/ink"}]}}
        body = json.dumps(activity).encode()
        request = httpx.Request("POST", f"http://{host}/inbox", content=body,
                                headers={"Content-Type": "application/activity+json"})
        signers[n].sign(request)
        head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
        requests.append(f"POST /inbox HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body)
    return requests


async def post_all(host: str, port: int, requests: list[bytes], connections: int) -> list[int]:
    """Send every request over ``connections`` keep-alive connections; the status codes."""
    statuses: list[int] = []
    queue = list(reversed(requests))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while queue:
                writer.write(queue.pop())
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                statuses.append(int(status_line.split()[1]))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return statuses


def rsa_verify_seconds(keys: list[tuple[str, str]], rounds: int = 2000) -> float:
    """Seconds one RSA-2048 PKCS#1 v1.5 SHA-256 verify takes here."""
    private = serialization.load_pem_private_key(keys[0][0].encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    public = private.public_key()
    message = b"(request-target): post /inbox\nhost: example\ndate: now\ndigest: x"
    signature = private.sign(message, padding.PKCS1v15(), hashes.SHA256())
    start = time.perf_counter()
    for _ in range(rounds):
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    return (time.perf_counter() - start) / rounds


async def counts(database_url: str) -> tuple[int, int, int]:
    """(items, pending, processed) in the database."""
    db = Database(database_url)
    try:
        async with db.session() as session:
            rows = dict((await session.execute(
                select(InboxItem.outcome, func.count()).group_by(InboxItem.outcome))).all())
    finally:
        await db.dispose()
    return sum(rows.values()), rows.get("pending", 0), rows.get("processed", 0)


async def process_all(settings: Settings, workers: int) -> float:
    """Run every due federation job with ``workers`` concurrent runners, as the
    in-process queue's worker threads do (each runs one job at a time on the event
    loop); the seconds it took."""
    from federation.context import close_federation_context
    from server.queue.kinds import load_job_modules
    from server.queue.runner import JobRunner

    load_job_modules()
    db = Database(settings.effective_database_url)
    runner = JobRunner(db, settings)
    try:
        due = [job_id for job_id, _ in await runner.due_jobs(["federation"], limit=10**9)]
        due.reverse()
        start = time.perf_counter()

        async def worker() -> None:
            while due:
                await runner.run(due.pop())

        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - start
        async with db.session() as session:
            errors = (await session.execute(
                select(Job.last_error, func.count()).where(Job.state != "done")
                .group_by(Job.last_error))).all()
        for error, count in errors:
            print(f"  not done ({count}): {error}")
        return elapsed
    finally:
        await close_federation_context(db)
        await db.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(log.read_text())
        time.sleep(0.05)


def stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def serve_accept_only(port: int) -> None:
    """The accept phase's server: the app without queue workers, no access log."""
    import uvicorn

    from server.app import AppOptions, create_app
    from server.settings import load_settings

    settings = load_settings()
    app = create_app(settings, options=AppOptions(run_workers=False, run_reconciler=False))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--workers", type=int, default=4,
                        help="concurrent job runners for the processing phase")
    parser.add_argument("--accept-only", action="store_true",
                        help="measure accepted/s only: skip the processing phase")
    parser.add_argument("--serve-accept-only", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_accept_only:
        serve_accept_only(args.serve_accept_only)
        return

    data_dir = Path(tempfile.mkdtemp(prefix="easel-bench-inbound-"))
    port = free_port()
    domain = f"127.0.0.1:{port}"
    settings = Settings(domain=domain, scheme="http", data_dir=data_dir,
                        database_url=args.database_url)
    database_url = settings.effective_database_url
    keys = [generate_key_pair() for _ in range(ACTORS)]
    asyncio.run(seed(settings, keys, reset=bool(args.database_url)))
    requests = signed_requests(keys, args.requests, domain)
    verify = rsa_verify_seconds(keys)

    env = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
    env.update(EASEL_DOMAIN=domain, EASEL_SCHEME="http", EASEL_DATA_DIR=str(data_dir),
               EASEL_DATABASE_URL=args.database_url, EASEL_RATE_LIMITS="off")
    log_path = data_dir / "serve.log"
    try:
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve-accept-only", str(port)], env=env,
                stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_healthy(f"http://{domain}", server, log_path)
                cpu_before = cpu_seconds(server.pid)
                start = time.perf_counter()
                statuses = asyncio.run(post_all("127.0.0.1", port, requests, args.connections))
                accept_seconds = time.perf_counter() - start
                accept_cpu = cpu_seconds(server.pid) - cpu_before
            finally:
                stop(server)
        refused = [s for s in statuses if s != 202]
        items, pending, _ = asyncio.run(counts(database_url))
        if refused or items != args.requests:
            raise SystemExit(f"{len(refused)} refused ({sorted(set(refused))}), {items} stored:\n"
                             + log_path.read_text()[-3000:])

        process_seconds = 0.0
        if not args.accept_only:
            process_seconds = asyncio.run(process_all(settings, args.workers))
            _, pending, processed = asyncio.run(counts(database_url))

        accepted_rate = args.requests / accept_seconds
        floor_rate = 1 / verify
        print(f"Easel inbound benchmark — {'PostgreSQL' if args.database_url else 'SQLite'}, "
              f"{args.requests} signed Creates from {ACTORS} known actors, "
              f"{args.connections} connections, {os.cpu_count()} cores")
        print(f"  accepted   {accepted_rate:8.1f} /s  ({accept_seconds:.2f} s, all 202)  "
              f"vs target {ACCEPT_TARGET:.0f}/s: ratio {accepted_rate / ACCEPT_TARGET:.2f}")
        cpu_per_request = accept_cpu / args.requests
        print(f"  server CPU {cpu_per_request * 1e6:8.0f} µs per accepted request → "
              f"{1 / cpu_per_request:,.0f} /s per fully used core "
              f"(ratio {1 / cpu_per_request / ACCEPT_TARGET:.2f} to the target)")
        print(f"  RSA verify {verify * 1e6:8.1f} µs → floor {floor_rate:,.0f} /s; "
              f"accepted/s is {accepted_rate / floor_rate:.3f} of it "
              f"({accept_seconds / args.requests * 1e6:.0f} µs per request)")
        if args.accept_only:
            return
        print(f"  processed  {processed / process_seconds:8.1f} /s  ({processed} processed "
              f"in {process_seconds:.2f} s by {args.workers} concurrent job runners; "
              f"{pending} still pending)")
        if pending or processed != args.requests:
            print("  WARNING: not every item was processed; see the outcomes in the database")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
