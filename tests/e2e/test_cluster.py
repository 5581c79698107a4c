"""One Easel instance as a cluster: two ``easel serve`` and two ``easel worker`` processes on
one PostgreSQL database, one Redis and one shared media directory.

Given the two web processes (``web_a``, whose address is the instance's domain, and
``web_b`` behind the same name, as behind a load balancer), started at the same moment on
an empty database (both migrate it and make the instance actor, racing), a follower on another server
(a loopback inbox that counts what it is sent), a reader whose streams are open on both
web processes, and, made while no worker runs yet, a post on each web process, an upload
whose post waits for its protection, and a scheduled post already due; when the two
workers start (both consuming every queue, their reconcilers both re-sending every due
job at start-up, so most jobs get several messages), I expect every effect exactly once:

- each post delivered once to the follower's inbox, and its delivery row delivered;
- the upload protected once (one ``protect_media`` run: one claim, one attempt) with a
  tiny random VAE (``EASEL_VAE_PATH``), and its post published once;
- the scheduled post published once (one ``publish_scheduled_status`` claim);
- each post streamed once to a stream on ``web_b`` and one on ``web_a``, wherever it was
  committed (a web process or a worker), before a final marker post;
- a Like and a Follow from the remote follower, each delivered to both web processes at
  the same moment, taken once: one favourite, one follow, one notification each, and
  one Accept delivered back;
- every job done with one claim and one attempt, none failed;
- the rate limit counted once for the instance, whichever web process answers;
- every process stopping cleanly on SIGTERM.

It needs PostgreSQL and Redis: it skips unless ``EASEL_TEST_DATABASE_URL`` is PostgreSQL
and ``EASEL_TEST_BROKER_URL`` is Redis, and fails instead under ``EASEL_REQUIRE_CLUSTER=1``
(``.ci/run`` sets it for its PostgreSQL and Redis pass), as it does without torch.

"Nothing twice" on a stream is asserted by order: a stream delivers events in commit
order, so once the marker posted last arrives, any duplicate would have come before it.
Waiting is polling with deadlines, never sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from federation.signatures import CavageSigner
from server.db import Database
from server.ids import new_id, utcnow
from server.models import (
    Account,
    Delivery,
    Follow,
    InboxItem,
    Job,
    JobState,
    ScheduledStatus,
    Status,
)
from server.services.accounts import create_user
from server.services.keys import generate_key_pair
from server.settings import Settings
from tests.conftest import TEST_BROKER_URL, TEST_DATABASE_URL, make_token, reset_postgres
from tests.e2e.conftest import _create_database_if_missing as create_database_if_missing
from tests.protect import images
from tests.server.api.test_streaming import SSE
from tests.server.test_cli import EASEL, free_port

pytestmark = [pytest.mark.slow, pytest.mark.torch]

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = os.environ.get("EASEL_REQUIRE_CLUSTER", "").strip().lower() in ("1", "true", "yes", "on")
START_TIMEOUT = 90.0
# For the workers to do everything that waited for them (two cold starts, torch, the VAE).
WORK_TIMEOUT = 180.0
EVENT_TIMEOUT = 60.0
# High enough never to refuse the story; the count is what is checked.
RATE_LIMIT = 100_000


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (EASEL_REQUIRE_CLUSTER is set: run it as .ci/run's second pass does)")
    pytest.skip(reason)


@pytest.fixture
def cluster_backends() -> None:
    """Skip (or, under EASEL_REQUIRE_CLUSTER, fail) before anything starts when the
    cluster cannot be built here."""
    if not TEST_DATABASE_URL.startswith("postgresql"):
        _unavailable("a cluster needs PostgreSQL: set EASEL_TEST_DATABASE_URL (see .ci/services.sh)")
    if not TEST_BROKER_URL.startswith(("redis://", "rediss://")):
        _unavailable("a cluster needs Redis: set EASEL_TEST_BROKER_URL (see .ci/services.sh)")
    for module in ("torch", "diffusers"):
        try:
            __import__(module)
        except ImportError:
            _unavailable(f"the protect workers need {module} (pip install -e '.[protect]')")


# ------------------------------------------------------------------------ remote inbox

@dataclass
class Inbox:
    """A follower's server on loopback: takes every POST (202) and keeps the activities."""

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    signed: list[bool] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    def activities(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)


def serve_inbox() -> tuple[Inbox, ThreadingHTTPServer]:
    port = free_port()
    inbox = Inbox(port=port)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with inbox.lock:
                inbox.received.append(json.loads(body))
                inbox.signed.append("Signature" in self.headers)
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return inbox, server


# --------------------------------------------------------------------------- processes

@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-5000:]


@dataclass
class Cluster:
    settings: Settings  # the instance as its processes see it (for rows made here)
    env: dict[str, str]
    directory: Path
    web_a: Process
    web_b: Process
    workers: list[Process] = field(default_factory=list)

    @property
    def processes(self) -> list[Process]:
        return [self.web_a, self.web_b, *self.workers]

    def logs(self) -> str:
        return "\n".join(process.logs() for process in self.processes)

    def start_workers(self, count: int = 2) -> None:
        """``easel worker`` on every queue, through the protect test harness with cheap
        perturbation profiles (its hold file already exists: nothing is held)."""
        for number in range(1, count + 1):
            self.workers.append(spawn(
                f"worker-{number}", self.directory, self.env,
                [sys.executable, "-m", "tests.server.queue.worker_harness", "worker", "--threads", "2"]))


def spawn(name: str, directory: Path, env: dict[str, str], command: list[str],
          port: int | None = None) -> Process:
    log = directory / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, cwd=directory, stdout=out,
                                   stderr=subprocess.STDOUT)
    return Process(name=name, process=process, log=log, port=port)


def wait_until_up(web: Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert web.process.poll() is None, "exited at start-up\n" + web.logs()
        try:
            if httpx.get(f"{web.base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "did not start\n" + web.logs()
        time.sleep(0.1)


def stop(process: Process) -> int:
    if process.process.poll() is None:
        process.process.send_signal(signal.SIGTERM)
    try:
        return process.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.process.kill()
        process.process.wait(timeout=30)
        return -signal.SIGKILL


@pytest.fixture
def tiny_vae(tmp_path: Path) -> Path:
    from tests.protect.tiny_models import save_tiny_vae

    return save_tiny_vae(tmp_path / "tiny-vae")


@pytest.fixture
def cluster_database_url(cluster_backends: None) -> str:
    """The cluster's own PostgreSQL database (the test database's name + ``_cluster``),
    emptied: its processes migrate it themselves, as on a first deployment."""
    parsed = make_url(TEST_DATABASE_URL)
    url = parsed.set(database=f"{parsed.database}_cluster").render_as_string(hide_password=False)
    create_database_if_missing(url)
    reset_postgres(url)
    return url


@pytest.fixture
async def cluster_db(cluster_database_url: str) -> AsyncIterator[Database]:
    database = Database(cluster_database_url)
    yield database
    await database.dispose()


@pytest.fixture
def cluster(broker_url: str, cluster_database_url: str, tiny_vae: Path,
            tmp_path: Path) -> Iterator[Cluster]:
    """Both web processes started at once on the empty database: each applies the
    migrations and makes the instance actor at start-up, racing the other. The workers
    are started by the test."""
    port_a, port_b = free_port(), free_port()
    directory = tmp_path / "cluster"
    directory.mkdir()
    hold = directory / "protect-hold"
    hold.write_text("never hold")
    served = Settings(domain=f"127.0.0.1:{port_a}", scheme="http", data_dir=directory / "media",
                      database_url=cluster_database_url, broker_url=broker_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
    env.update({
        "EASEL_DOMAIN": served.domain,
        "EASEL_SCHEME": "http",
        "EASEL_DATA_DIR": str(served.data_dir),  # one volume every process mounts
        "EASEL_DATABASE_URL": served.database_url,
        "EASEL_BROKER_URL": served.broker_url,
        "EASEL_ALLOW_PRIVATE_ADDRESSES": "1",
        "EASEL_RATE_LIMITS": "on",
        "EASEL_API_RATE_LIMIT": str(RATE_LIMIT),
        "EASEL_PUBLIC_CACHE_SECONDS": "0",
        "EASEL_VAE_PATH": str(tiny_vae),
        "EASEL_PROTECT_DEVICE": "cpu",
        "EASEL_TEST_PROTECT_HOLD": str(hold),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    })
    web_a = spawn("web-a", directory, env, [str(EASEL), "serve", "--port", str(port_a)], port_a)
    web_b = spawn("web-b", directory, env, [str(EASEL), "serve", "--port", str(port_b)], port_b)
    cluster = Cluster(settings=served, env=env, directory=directory, web_a=web_a, web_b=web_b)
    try:
        wait_until_up(web_a)
        wait_until_up(web_b)
        yield cluster
    finally:
        for process in cluster.processes:
            stop(process)


@pytest.fixture
def remote_inbox() -> Iterator[Inbox]:
    inbox, server = serve_inbox()
    try:
        yield inbox
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- helpers

@dataclass
class Person:
    account_id: int
    token: str

    def api(self, web: Process) -> httpx.Client:
        return httpx.Client(base_url=web.base_url, timeout=30,
                            headers={"Authorization": f"Bearer {self.token}"})


async def person(db: Database, settings: Settings, name: str) -> Person:
    async with db.session() as session:
        user = await create_user(session, settings, username=name, email=f"{name}@example.com",
                                 password="a long enough password")
    return Person(account_id=user.account_id, token=await make_token(db, user))


@dataclass
class RemoteActor:
    uri: str
    key_id: str
    private_key_pem: str

    def send(self, activity: dict[str, Any], *inboxes: str, host: str) -> list[int]:
        """POST ``activity``, signed, to every inbox at once (as a sender retrying through
        a load balancer might); their status codes. ``host``: the instance's public host,
        which the balancer passes on to every web process (the signature covers it)."""
        body = json.dumps(activity).encode()
        start = threading.Barrier(len(inboxes))
        codes: dict[str, int] = {}

        def post(inbox: str) -> None:
            start.wait(timeout=30)
            answer = httpx.post(inbox, content=body, timeout=30,
                                auth=CavageSigner(self.key_id, self.private_key_pem),
                                headers={"Content-Type": "application/activity+json",
                                         "Host": host})
            codes[inbox] = answer.status_code

        threads = [threading.Thread(target=post, args=(inbox,)) for inbox in inboxes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        return [codes.get(inbox, 0) for inbox in inboxes]


async def remote_follower(db: Database, inbox: Inbox, followed: Person) -> RemoteActor:
    """``rita`` on the loopback inbox's server (her key stored: nothing is fetched),
    following ``followed`` (as if her Follow had been accepted)."""
    base = f"http://{inbox.domain}"
    private_pem, public_pem = generate_key_pair()
    uri = f"{base}/users/rita"
    async with db.session() as session:
        rita = Account(id=new_id(), username="rita", username_key="rita", domain=inbox.domain,
                       uri=uri, url=f"{base}/@rita", inbox_url=f"{uri}/inbox",
                       public_key_id=f"{uri}#main-key", public_key_pem=public_pem)
        session.add(rita)
        await session.flush()
        session.add(Follow(account_id=rita.id, target_account_id=followed.account_id,
                           uri=f"{base}/follows/1"))
        await session.commit()
    return RemoteActor(uri=uri, key_id=f"{uri}#main-key", private_key_pem=private_pem)


def posted(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code in (200, 202), f"{answer.request.url}: {answer.status_code} {answer.text}"
    body: dict[str, Any] = answer.json()
    return body


def open_stream(web: Process, path: str, token: str | None = None) -> SSE:
    client = httpx.Client(base_url=web.base_url, timeout=httpx.Timeout(30, read=None))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.send(client.build_request("GET", f"/api/v1/streaming/{path}",
                                                headers=headers), stream=True)
    assert response.status_code == 200, response.read()
    stream = SSE(response, client)
    threading.Thread(target=stream.run, daemon=True).start()
    assert stream.events.get(timeout=EVENT_TIMEOUT) == (":", ":)")  # subscribed
    return stream


def updates_until(stream: SSE, expected: list[str], cluster: Cluster) -> list[str]:
    """The texts of the posts streamed (``update``) until each of ``expected`` came."""
    texts: list[str] = []
    deadline = time.monotonic() + EVENT_TIMEOUT
    while not set(expected) <= set(texts):
        try:
            item = stream.events.get(timeout=max(deadline - time.monotonic(), 0.001))
        except queue.Empty:
            raise AssertionError(f"not all of {expected} streamed; got {texts}\n{cluster.logs()}") from None
        assert item is not None, "the stream ended\n" + cluster.logs()
        event, data = item
        if event == "update":
            texts.append(text_of(json.loads(data)["content"]))
    return texts


def text_of(content: str) -> str:
    return content.removeprefix("<p>").removesuffix("</p>")


async def eventually(check: Callable[[], Any], what: str, cluster: Cluster,
                     timeout: float = WORK_TIMEOUT) -> Any:
    """Poll ``check`` (sync or async) until it returns something true, or fail with the
    processes' logs (and fail at once when one of them died)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        for process in cluster.processes:
            assert process.process.poll() is None, f"{process.name} exited\n{cluster.logs()}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{cluster.logs()}")
        await asyncio.sleep(0.1)


async def all_jobs(db: Database) -> list[Job]:
    async with db.session() as session:
        return list(await session.scalars(select(Job).order_by(Job.id)))


def describe(jobs: list[Job]) -> str:
    return "\n".join(f"{job.id} {job.kind} ref={job.ref} {job.state} attempts={job.attempts} "
                     f"claims={job.claims} {(job.last_error or '')[-300:]}" for job in jobs)


# ------------------------------------------------------------------------------- story

async def test_a_cluster_handles_each_post_delivery_protection_schedule_and_event_once(
    cluster: Cluster, remote_inbox: Inbox, cluster_db: Database,
) -> None:
    db = cluster_db
    served, web_a, web_b = cluster.settings, cluster.web_a, cluster.web_b
    alice = await person(db, served, "alice")
    bob = await person(db, served, "bob")
    rita = await remote_follower(db, remote_inbox, alice)
    alice_a, alice_b, bob_b = alice.api(web_a), alice.api(web_b), bob.api(web_b)
    streams: list[SSE] = []
    try:
        # One rate-limit window for the instance: both web processes count in Redis.
        remaining = [int(api.get("/api/v1/accounts/verify_credentials").headers["X-RateLimit-Remaining"])
                     for api in (alice_a, alice_b, alice_a, alice_b)]
        assert remaining == list(range(remaining[0], remaining[0] - 4, -1)), remaining
        posted(bob_b.post(f"/api/v1/accounts/{alice.account_id}/follow"))
        streams = [open_stream(web_b, "user", bob.token), open_stream(web_a, "public/local")]

        # While no worker runs: a post through each web process, a post whose image waits
        # for its protection, and a scheduled post that is due by the time workers start.
        through_a = posted(alice_a.post("/api/v1/statuses", json={"status": "Through web A"}))
        through_b = posted(alice_b.post("/api/v1/statuses", json={"status": "Through web B"}))
        upload = alice_b.post("/api/v2/media", data={"description": "Harbour"},
                              files={"file": ("work.jpg", images.jpeg((64, 48)), "image/jpeg")})
        assert upload.status_code == 202, upload.text
        media_id = upload.json()["id"]
        posted(alice_a.post("/api/v1/statuses", json={"status": "With its image",
                                                      "media_ids": [media_id]}))
        later = (utcnow() + timedelta(hours=1)).isoformat()
        scheduled = posted(alice_b.post("/api/v1/statuses", json={"status": "Scheduled",
                                                                   "scheduled_at": later}))
        async with db.session() as session:  # stands in for the hour passing
            moved = await session.execute(update(Job).where(
                Job.kind == "publish_scheduled_status", Job.state == JobState.QUEUED,
                Job.ref.startswith(f"{scheduled['id']}@")).values(next_try_at=utcnow()))
            assert moved.rowcount == 1  # type: ignore[attr-defined]
            await session.commit()
        assert alice_a.get(f"/api/v1/media/{media_id}").status_code == 206  # not yet protected

        # rita's Like of the first post, delivered to both web processes at the same moment
        # (the shared inbox of one, bob's inbox on the other), and her Follow of bob. (A
        # Follow delivered twice is applied twice — a second Accept — as Mastodon does and
        # as Pixelfed's reused Follow ids need: federation.inbox.intake.)
        inboxes = (f"{web_a.base_url}/inbox", f"{web_b.base_url}/users/bob/inbox")
        like = {"@context": "https://www.w3.org/ns/activitystreams", "id": f"{rita.uri}#likes/1",
                "type": "Like", "actor": rita.uri, "object": through_a["uri"]}
        follow = {"@context": "https://www.w3.org/ns/activitystreams", "id": f"{rita.uri}#follows/2",
                  "type": "Follow", "actor": rita.uri, "object": f"{served.base_url}/users/bob"}
        assert rita.send(like, *inboxes, host=served.domain) == [202, 202]
        assert rita.send(follow, inboxes[1], host=served.domain) == [202]

        cluster.start_workers(2)
        texts = ["Through web A", "Through web B", "With its image", "Scheduled"]

        def creates() -> Counter[str]:
            return Counter(text_of(activity["object"]["content"])
                           for activity in remote_inbox.activities() if activity["type"] == "Create")

        await eventually(lambda: set(texts) <= set(creates()), "the four posts at the follower", cluster)
        await eventually(lambda: any(a["type"] == "Accept" for a in remote_inbox.activities()),
                         "bob's Accept of rita's follow", cluster)
        media = alice_b.get(f"/api/v1/media/{media_id}")
        assert media.status_code == 200, media.text
        assert media.json()["url"].startswith(web_a.base_url)

        # One more post, through B, after everything: each stream's marker.
        marker = posted(alice_b.post("/api/v1/statuses", json={"status": "Last"}))
        for stream in streams:
            seen = Counter(updates_until(stream, [*texts, "Last"], cluster))
            assert seen == Counter([*texts, "Last"]), seen

        async def quiet() -> list[Job] | None:
            jobs = await all_jobs(db)
            busy = [job for job in jobs if job.state == JobState.RUNNING
                    or (job.state == JobState.QUEUED and job.next_try_at <= utcnow())]
            return None if busy else jobs

        jobs = await eventually(quiet, "the queue to be done", cluster)
        assert Counter(text_of(a["object"]["content"]) for a in remote_inbox.activities()
                       if a["type"] == "Create") == Counter([*texts, "Last"]), remote_inbox.activities()
        accepts = [a for a in remote_inbox.activities() if a["type"] == "Accept"]
        assert [a["object"]["id"] for a in accepts] == [follow["id"]], accepts
        assert len(remote_inbox.activities()) == 6 and all(remote_inbox.signed)
        ids = [activity["id"] for activity in remote_inbox.activities()]
        assert len(set(ids)) == len(ids)

        # Every job that ran ran once: one claim, one attempt; none failed.
        ran = [job for job in jobs if job.state != JobState.QUEUED]
        assert all(job.state == JobState.DONE and job.attempts == 1 and job.claims == 1
                   for job in ran), describe(jobs)
        kinds = Counter(job.kind for job in ran)
        assert kinds["protect_media"] == 1 and kinds["publish_scheduled_status"] == 1, describe(jobs)
        assert kinds["process_inbox"] == 2, describe(jobs)  # the Like and the Follow, once each

        # The Like delivered twice was taken once: one favourite; one follow; one
        # notification each.
        liked = alice_a.get(f"/api/v1/statuses/{through_a['id']}").json()
        assert liked["favourites_count"] == 1, liked
        notified = [(n["type"], n["account"]["acct"]) for n in alice_a.get("/api/v1/notifications").json()]
        assert sorted(notified) == [("favourite", f"rita@{remote_inbox.domain}"), ("follow", "bob")], notified
        notified = [(n["type"], n["account"]["acct"]) for n in bob_b.get("/api/v1/notifications").json()]
        assert notified == [("follow", f"rita@{remote_inbox.domain}")], notified
        assert bob_b.get("/api/v1/accounts/verify_credentials").json()["followers_count"] == 1
        async with db.session() as session:
            assert await session.scalar(select(func.count()).select_from(InboxItem)) == 2
            deliveries = list(await session.scalars(select(Delivery)))
            assert len(deliveries) == 6
            assert all(d.status_code == 202 and d.delivered_at is not None for d in deliveries)
            assert await session.scalar(select(func.count()).select_from(ScheduledStatus)) == 0
            published = Counter(text_of(content) for content in await session.scalars(
                select(Status.content).where(Status.account_id == alice.account_id)))
        assert published == Counter([*texts, "Last"])
        assert {through_a["uri"], through_b["uri"], marker["uri"]} <= set(
            a["object"]["id"] for a in remote_inbox.activities())
    finally:
        for stream in streams:
            stream.response.close()
            stream.client.close()
        for client in (alice_a, alice_b, bob_b):
            client.close()

    # Every process stops cleanly on SIGTERM (uvicorn ends by re-raising the signal it
    # handled), having logged no error on the way.
    codes = {process.name: stop(process) for process in cluster.processes}
    assert all(code in (0, -signal.SIGTERM) if process.port else code == 0
               for process, code in zip(cluster.processes, codes.values(), strict=True)), \
        f"{codes}\n{cluster.logs()}"
    for process in cluster.processes:
        log = process.log.read_text(errors="replace")
        assert "Traceback" not in log and " ERROR " not in log, process.logs()
