"""Load run: posting, timeline reads, uploads and inbound federation together, against a
real `easel serve` (and `easel worker`) on loopback, for a bounded time.

    .venv/bin/python bench/load.py [--seconds 60] [--posters 4] [--readers 4] [--uploaders 2]
                                   [--federators 2] [--actors 4]
                                   [--database-url postgresql+asyncpg://…]
                                   [--broker-url redis://…]

SQLite in a temporary directory by default: `easel serve` alone, which runs the light
queues in-process and the ``protect`` queue in its child worker process (the embedded
mode). With ``--database-url`` (PostgreSQL; its tables are emptied first) and
``--broker-url`` (Redis), `easel serve` plus one `easel worker` on every queue, as a
deployment runs them. Rate limits are off (``EASEL_RATE_LIMITS=off``): this measures the
server, not its refusals.

Seeds ``--posters`` local users (each following the others, each with a ``read write``
token) and ``--actors`` remote actors on a loopback HTTP server in this process, which
serves their actor documents (with their public keys) and WebFinger: Easel fetches each
actor on its first signed POST (``EASEL_ALLOW_PRIVATE_ADDRESSES=1``). Then, for
``--seconds``, each kind has its own bounded number of concurrent clients (one
request at a time each, keep-alive), all at once:

- **post** — ``POST /api/v1/statuses`` (public text status with a hashtag);
- **read** — ``GET /api/v1/timelines/home`` and ``/api/v1/timelines/public`` (signed in,
  so never the anonymous cache), alternating;
- **upload** — ``POST /api/v2/media``, a 256×256 random-noise PNG. ``EASEL_VAE_PATH`` is
  unset, so the upload answers 202 (processing) and its ``protect_media`` job publishes it
  unprotected (renditions made, the owner told "no model configured"); the job's work
  without the perturbation is what is measured;
- **inbound** — signed ``Create(Note)`` POSTs to ``/inbox`` from the remote actors, each
  note cc'ing and mentioning a local user (so it is stored, not dropped as irrelevant).

Any answer other than 200/202, and any exception (60 s timeout), is an error; the first
contact with each remote actor (its fetch) is part of the inbound latencies. Prints, per
kind: requests, errors, throughput, p50/p99 latency (of the successful requests); the web
process's RSS peak (VmHWM), its children's (the embedded protect worker) and the
worker's, from /proc; the CPU the server processes and this client used during the load
(which stays meaningful when the machine is shared); the queue backlog (due jobs queued or
running) at its peak, sampled each second, and when the load stops, and the time for it to
drain. Then errors are also: a failed job, a job still due after ``--drain-timeout``, an
upload not ``ready``, an inbox item not ``processed``, and a difference between the writes
acknowledged and the rows stored (local statuses, remote statuses, media). Exit status 1
when there was any error, with the tails of the server logs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image
from sqlalchemy import func, select, text

from federation.signatures import CavageSigner
from server.db import Database
from server.ids import utcnow
from server.migrate import upgrade
from server.models import (
    Base,
    Follow,
    InboxItem,
    Job,
    MediaAttachment,
    OAuthApplication,
    OAuthToken,
    Status,
)
from server.services.accounts import create_user
from server.services.keys import generate_key_pair
from server.services.tokens import token_digest
from server.settings import Settings

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
OK = (200, 202)
KINDS = ("post", "read", "upload", "inbound")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------ remote actors

@dataclass
class RemoteActor:
    username: str
    uri: str
    private_pem: str
    public_pem: str

    def document(self) -> dict[str, Any]:
        return {
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
            "id": self.uri, "type": "Person", "preferredUsername": self.username,
            "name": self.username.title(), "inbox": f"{self.uri}/inbox",
            "outbox": f"{self.uri}/outbox", "followers": f"{self.uri}/followers",
            "following": f"{self.uri}/following", "url": self.uri,
            "publicKey": {"id": f"{self.uri}#main-key", "owner": self.uri,
                          "publicKeyPem": self.public_pem},
        }


def serve_actors(port: int, actors: list[RemoteActor]) -> tuple[ThreadingHTTPServer, Counter[str]]:
    """The remote server: actor documents and WebFinger; every other GET 404, POST 202.
    Returns the server and a count of what Easel asked it for."""
    by_path = {urlsplit(a.uri).path: a for a in actors}
    by_acct = {f"acct:{a.username}@127.0.0.1:{port}": a for a in actors}
    asked: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, code: int, body: bytes = b"", content_type: str = "") -> None:
            self.send_response(code)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            with lock:
                asked[parts.path] += 1
            if parts.path in by_path:
                doc = by_path[parts.path].document()
                self._answer(200, json.dumps(doc).encode(), "application/activity+json")
            elif parts.path == "/.well-known/webfinger":
                resource = parse_qs(parts.query).get("resource", [""])[0]
                actor = by_acct.get(resource)
                if actor is None:
                    self._answer(404)
                    return
                doc = {"subject": resource, "aliases": [actor.uri],
                       "links": [{"rel": "self", "type": "application/activity+json",
                                  "href": actor.uri}]}
                self._answer(200, json.dumps(doc).encode(), "application/jrd+json")
            else:
                self._answer(404)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer(202)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, asked


# ------------------------------------------------------------------------------- seeding

@dataclass
class Local:
    username: str
    uri: str
    token: str


async def seed(settings: Settings, posters: int, reset: bool) -> list[Local]:
    """``posters`` local users following one another, each with a read/write token."""
    db = Database(settings.effective_database_url)
    try:
        await upgrade(db.engine)
        if reset:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables
                               if t.name not in ("portfolio_tags", "portfolio_tag_aliases"))
            async with db.engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        users = []
        for n in range(posters):
            async with db.session() as session:
                users.append(await create_user(
                    session, settings, username=f"poster{n}", email=f"poster{n}@example.com",
                    password="load run password"))
        locals_: list[Local] = []
        async with db.session() as session:
            app = OAuthApplication(name="load run", client_id=secrets.token_hex(16),
                                   client_secret=secrets.token_hex(16), scopes="read write")
            session.add(app)
            await session.flush()
            for user in users:
                token = secrets.token_urlsafe(32)
                session.add(OAuthToken(token_digest=token_digest(token), application_id=app.id,
                                       user_id=user.id, scopes="read write"))
                for other in users:
                    if other is not user:
                        session.add(Follow(account_id=user.account_id,
                                           target_account_id=other.account_id))
                name = f"poster{len(locals_)}"
                locals_.append(Local(name, f"{settings.base_url}/users/{name}", token))
            await session.commit()
        return locals_
    finally:
        await db.dispose()


def noise_png(size: int = 256) -> bytes:
    image = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# ----------------------------------------------------------------------------- the load

@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # by status code or exception
    examples: dict[str, str] = field(default_factory=dict)  # the first of each, in full

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.errors.values())


async def drive(base_url: str, domain: str, seconds: float, locals_: list[Local],
                actors: list[RemoteActor], counts: dict[str, int], database_url: str
                ) -> tuple[dict[str, Tally], float, int]:
    """Every kind's clients at once until ``seconds`` have passed; the tallies, the
    seconds the load really ran (the last requests finish after the deadline) and the
    largest queue backlog seen (counted once a second)."""
    tallies = {kind: Tally() for kind in KINDS}
    backlog_peak = 0
    limits = httpx.Limits(max_connections=sum(counts.values()) + 4,
                          max_keepalive_connections=sum(counts.values()) + 4)
    signers = [CavageSigner(f"{a.uri}#main-key", a.private_pem) for a in actors]
    pngs = [noise_png() for _ in range(8)]
    sequence = iter(range(10**9))
    run_id = secrets.token_hex(4)
    start = time.perf_counter()
    deadline = start + seconds

    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

        def auth(n: int) -> dict[str, str]:
            return {"Authorization": f"Bearer {locals_[n % len(locals_)].token}"}

        async def post(n: int, i: int) -> httpx.Response:
            return await client.post("/api/v1/statuses", headers=auth(n), data={
                "status": f"Load run post {i} #loadrun", "visibility": "public"})

        async def read(n: int, i: int) -> httpx.Response:
            path = "/api/v1/timelines/home" if i % 2 else "/api/v1/timelines/public"
            return await client.get(path, params={"limit": 20}, headers=auth(n))

        async def upload(n: int, i: int) -> httpx.Response:
            return await client.post("/api/v2/media", headers=auth(n), data={
                "description": f"Noise {i}"}, files={"file": (f"noise{i}.png", pngs[i % len(pngs)],
                                                              "image/png")})

        async def inbound(n: int, i: int) -> httpx.Response:
            actor_n = i % len(actors)
            actor = actors[actor_n]
            target = locals_[i % len(locals_)]
            note_id = f"{actor.uri}/statuses/{run_id}-{i}"
            published = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            activity = {
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": f"{note_id}/activity", "type": "Create", "actor": actor.uri,
                "published": published, "to": [PUBLIC], "cc": [target.uri],
                "object": {
                    "id": note_id, "type": "Note", "attributedTo": actor.uri,
                    "published": published, "to": [PUBLIC], "cc": [target.uri], "url": note_id,
                    "content": f"<p><span class=\"h-card\"><a href=\"{target.uri}\" "
                               f"class=\"u-url mention\">@{target.username}</a></span> "
                               f"Sketch {i}</p>",
                    "tag": [{"type": "Mention", "href": target.uri,
                             "name": f"@{target.username}@{domain}"}]}}
            request = client.build_request(
                "POST", "/inbox", content=json.dumps(activity).encode(),
                headers={"Content-Type": "application/activity+json"})
            signers[actor_n].sign(request)
            return await client.send(request)

        calls: dict[str, Callable[[int, int], Awaitable[httpx.Response]]] = {
            "post": post, "read": read, "upload": upload, "inbound": inbound}

        async def client_loop(kind: str, n: int) -> None:
            tally = tallies[kind]
            while time.perf_counter() < deadline:
                i = next(sequence)
                began = time.perf_counter()
                try:
                    answer = await calls[kind](n, i)
                except Exception as exc:  # every failure is counted
                    tally.errors[type(exc).__name__] += 1
                    tally.examples.setdefault(type(exc).__name__, repr(exc)[:300])
                    continue
                if answer.status_code in OK:
                    tally.latencies.append(time.perf_counter() - began)
                else:
                    tally.errors[f"HTTP {answer.status_code}"] += 1
                    tally.examples.setdefault(f"HTTP {answer.status_code}", answer.text[:300])

        async def watch_backlog() -> None:
            nonlocal backlog_peak
            while time.perf_counter() < deadline:
                states, _ = await job_states(database_url)
                backlog_peak = max(backlog_peak, backlog(states))
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.perf_counter())))

        await asyncio.gather(watch_backlog(), *(client_loop(kind, n) for kind in KINDS
                                                for n in range(counts[kind])))
    return tallies, time.perf_counter() - start, backlog_peak


# ------------------------------------------------------------------------------ processes

def proc_kb(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/PID/task/*/children)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                pending.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class MemorySampler:
    """The peak summed RSS of each watched process tree, sampled every 0.25 s, and
    every process's own VmHWM (its kernel-kept peak) seen on the way."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.peak_kb = dict.fromkeys(roots, 0)
        self.hwm_kb: dict[str, dict[int, int]] = {name: {} for name in roots}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for name, root in self.roots.items():
            pids = tree(root)
            self.peak_kb[name] = max(self.peak_kb[name], sum(proc_kb(p, "VmRSS") for p in pids))
            for pid in pids:
                self.hwm_kb[name][pid] = max(self.hwm_kb[name].get(pid, 0), proc_kb(pid, "VmHWM"))

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def spawn(name: str, command: list[str], env: dict[str, str], data_dir: Path
          ) -> tuple[subprocess.Popen[bytes], Path]:
    log = data_dir / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    return process, log


def wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(log.read_text(errors="replace")[-5000:])
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


# ------------------------------------------------------------------------- the database

async def job_states(database_url: str) -> tuple[Counter[str], list[tuple[str, str | None, int]]]:
    """Jobs by state (queued ones not due yet apart, as ``delayed``: timed work, not
    backlog), and the failed ones as (kind, last error, count)."""
    db = Database(database_url)
    try:
        async with db.session() as session:
            states = Counter(dict((await session.execute(
                select(Job.state, func.count()).group_by(Job.state))).all()))
            delayed = await session.scalar(select(func.count()).select_from(Job).where(
                Job.state == "queued", Job.next_try_at > utcnow())) or 0
            if delayed:
                states["queued"] -= delayed
                states["delayed"] = delayed
            failed = [(k, e, c) for k, e, c in (await session.execute(
                select(Job.kind, Job.last_error, func.count()).where(Job.state == "failed")
                .group_by(Job.kind, Job.last_error))).all()]
    finally:
        await db.dispose()
    return states, failed


@dataclass
class Stored:
    media: Counter[str]       # "state/protection"
    inbox: Counter[str]       # outcome
    local_statuses: int
    remote_statuses: int


async def stored(database_url: str) -> Stored:
    """What the load left in the database."""
    db = Database(database_url)
    try:
        async with db.session() as session:
            media = Counter({f"{state}/{protection}": count for state, protection, count in (
                await session.execute(select(
                    MediaAttachment.state, MediaAttachment.protection, func.count())
                    .group_by(MediaAttachment.state, MediaAttachment.protection))).all()})
            inbox = Counter(dict((await session.execute(
                select(InboxItem.outcome, func.count()).group_by(InboxItem.outcome))).all()))
            by_origin = dict((await session.execute(
                select(Status.local, func.count()).group_by(Status.local))).all())
    finally:
        await db.dispose()
    return Stored(media, inbox, by_origin.get(True, 0), by_origin.get(False, 0))


def backlog(states: Counter[str]) -> int:
    return states.get("queued", 0) + states.get("running", 0)


def drain(database_url: str, timeout: float) -> tuple[Counter[str], float]:
    """Poll until no job is queued or running (or ``timeout``); the last states and the
    seconds it took."""
    start = time.perf_counter()
    while True:
        states, _ = asyncio.run(job_states(database_url))
        if not backlog(states) or time.perf_counter() - start > timeout:
            return states, time.perf_counter() - start
        time.sleep(0.25)


# ---------------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--posters", type=int, default=4, help="posting clients (and local users)")
    parser.add_argument("--readers", type=int, default=4, help="timeline-reading clients")
    parser.add_argument("--uploaders", type=int, default=2, help="uploading clients")
    parser.add_argument("--federators", type=int, default=2, help="inbound federation clients")
    parser.add_argument("--actors", type=int, default=4, help="remote actors signing Creates")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--broker-url", default="")
    parser.add_argument("--drain-timeout", type=float, default=300)
    args = parser.parse_args()
    if args.broker_url and not args.database_url:
        parser.error("--broker-url needs --database-url (PostgreSQL): SQLite runs embedded")
    if min(args.posters, args.actors) < 1 or min(args.readers, args.uploaders, args.federators) < 0:
        parser.error("--posters and --actors must be at least 1; client counts not negative")

    data_dir = Path(tempfile.mkdtemp(prefix="easel-bench-load-"))
    port, remote_port = free_port(), free_port()
    domain = f"127.0.0.1:{port}"
    settings = Settings(domain=domain, scheme="http", data_dir=data_dir,
                        database_url=args.database_url)
    database_url = settings.effective_database_url
    locals_ = asyncio.run(seed(settings, args.posters, reset=bool(args.database_url)))
    actors = []
    for n in range(args.actors):
        private_pem, public_pem = generate_key_pair()
        actors.append(RemoteActor(f"artist{n}", f"http://127.0.0.1:{remote_port}/users/artist{n}",
                                  private_pem, public_pem))
    remote, asked = serve_actors(remote_port, actors)

    env = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
    env.update(EASEL_DOMAIN=domain, EASEL_SCHEME="http", EASEL_DATA_DIR=str(settings.data_dir),
               EASEL_DATABASE_URL=args.database_url, EASEL_BROKER_URL=args.broker_url,
               EASEL_RATE_LIMITS="off", EASEL_ALLOW_PRIVATE_ADDRESSES="1",
               EASEL_PROTECT_DEVICE="cpu", OMP_NUM_THREADS="1")
    easel = str(Path(sys.executable).parent / "easel")
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    errors = 0
    try:
        server, server_log = spawn("serve", [easel, "serve", "--port", str(port)], env, data_dir)
        processes.append(server)
        logs.append(server_log)
        wait_healthy(f"http://{domain}", server, server_log)
        roots = {"web": server.pid}
        if args.broker_url:
            worker, worker_log = spawn("worker", [easel, "worker"], env, data_dir)
            processes.append(worker)
            logs.append(worker_log)
            roots["worker"] = worker.pid
        sampler = MemorySampler(roots)
        sampler.start()

        counts = {"post": args.posters, "read": args.readers, "upload": args.uploaders,
                  "inbound": args.federators}
        pids = {name: tree(root) for name, root in roots.items()}
        cpu_before = {name: cpu_seconds(p) for name, p in pids.items()}
        client_cpu = time.process_time()
        tallies, ran, backlog_peak = asyncio.run(drive(
            f"http://{domain}", domain, args.seconds, locals_, actors, counts, database_url))
        client_cpu = time.process_time() - client_cpu
        cpu_used = {name: cpu_seconds(p) - cpu_before[name] for name, p in pids.items()}
        states_at_stop, _ = asyncio.run(job_states(database_url))
        final_states, drain_seconds = drain(database_url, args.drain_timeout)
        sampler.stop()
        _, failed_jobs = asyncio.run(job_states(database_url))
        left = asyncio.run(stored(database_url))

        mode = ("PostgreSQL + Redis, easel serve + easel worker" if args.broker_url else
                "PostgreSQL, easel serve (embedded queues)" if args.database_url else
                "SQLite, easel serve (embedded queues, protect child)")
        print(f"Easel load run — {mode}; {ran:.1f} s, {os.cpu_count()} cores; clients: "
              + ", ".join(f"{counts[k]} {k}" for k in KINDS) + f"; {args.actors} remote actors")
        print(f"  {'kind':<8} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for kind in KINDS:
            tally = tallies[kind]
            ok = sorted(tally.latencies)
            p50 = statistics.median(ok) * 1000 if ok else float("nan")
            p99 = (statistics.quantiles(ok, n=100, method="inclusive")[98] * 1000
                   if len(ok) > 1 else p50)
            errors += sum(tally.errors.values())
            print(f"  {kind:<8} {tally.requests:>9} {sum(tally.errors.values()):>7} "
                  f"{tally.requests / ran:>8.1f} {p50:>8.1f} {p99:>8.1f}")
            for what, count in tally.errors.most_common():
                print(f"           {count} × {what}, the first: {tally.examples[what]}")
        for name, root in roots.items():
            own = sampler.hwm_kb[name].get(root, 0)
            children = [kb for pid, kb in sampler.hwm_kb[name].items() if pid != root]
            print(f"  {name} RSS peak {own / 1024:.1f} MB (VmHWM)"
                  + (f"; its {len(children)} child process(es) (the embedded protect worker) "
                     f"peak {max(children) / 1024:.1f} MB; together, sampled, "
                     f"{sampler.peak_kb[name] / 1024:.1f} MB" if children else ""))
        print("  CPU during the load: " + ", ".join(
            f"{name} (and children) {used:.1f} s ({used / ran:.2f} cores)"
            for name, used in cpu_used.items())
            + f", this client {client_cpu:.1f} s ({client_cpu / ran:.2f} cores)")
        print(f"  queue backlog peak during the load (sampled each second): {backlog_peak} jobs")
        print(f"  queue backlog when the load stopped: {backlog(states_at_stop)} jobs "
              f"({dict(states_at_stop)}); drained in {drain_seconds:.1f} s")
        print(f"  stored: {left.local_statuses} local statuses, {left.remote_statuses} remote; "
              f"media (state/protection) {dict(left.media)}; inbox items {dict(left.inbox)}; "
              f"the remote server was asked {sum(asked.values())} GETs ({len(asked)} paths)")
        if backlog(final_states):
            errors += backlog(final_states)
            print(f"  ERROR: {backlog(final_states)} jobs still queued or running after "
                  f"{args.drain_timeout:.0f} s")
        for kind, error, count in failed_jobs:
            errors += count
            print(f"  ERROR: {count} failed {kind} job(s): {error}")
        not_ready = sum(c for state, c in left.media.items() if not state.startswith("ready/"))
        unprocessed = sum(c for outcome, c in left.inbox.items() if outcome != "processed")
        if not_ready or unprocessed:
            errors += not_ready + unprocessed
            print(f"  ERROR: {not_ready} uploads not ready, {unprocessed} inbox items not processed")
        # Every acknowledged write is there, once.
        expected = {"local statuses": (len(tallies["post"].latencies), left.local_statuses),
                    "remote statuses": (len(tallies["inbound"].latencies), left.remote_statuses),
                    "media": (len(tallies["upload"].latencies), sum(left.media.values()))}
        for what, (acknowledged, found) in expected.items():
            if acknowledged != found:
                errors += 1
                print(f"  ERROR: {acknowledged} {what} acknowledged, {found} stored")
        print(f"  {'no errors' if not errors else f'{errors} ERRORS'}")
    finally:
        for process in reversed(processes):
            stop(process)
        remote.shutdown()
        remote.server_close()
        if errors:
            for log in logs:
                print(f"--- {log.name} (tail) ---\n" + log.read_text(errors="replace")[-3000:])
        shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
