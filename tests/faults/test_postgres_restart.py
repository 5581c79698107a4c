"""Given a real ``easel serve`` on a PostgreSQL of the test's own, with clients posting
statuses as fast as it takes them, when PostgreSQL goes away in the middle (stopped
abruptly: the connections cut, nothing listening) and comes back, I expect:

- no acknowledged write lost: every status answered 200 is there afterwards;
- every request answered, within a bound (no hang), and every refusal an error a client
  can read: 503 with a JSON ``{"error": ...}``, never an HTML page or a bare 500;
- the server recovering by itself, without a restart: writes succeed again once
  PostgreSQL is back, the same process answering;
- every job the writes made completing, none failed (an attempt the outage cut is
  redone once its claim's lease runs out: the test stands in for that wait).

PostgreSQL is a throwaway cluster (initdb in a temporary directory, a free port: see
conftest); the suite's shared cluster is never restarted. Waiting is polling with
deadlines: the outage lasts until the clients have seen it refused, not a fixed time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import utcnow
from server.models import Job, JobState, Status
from server.services import user_ips
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import make_token
from tests.faults.conftest import ThrowawayPostgres, wait_for
from tests.server.test_cli import EASEL, free_port

pytestmark = pytest.mark.slow

WRITERS = 4
START_TIMEOUT = 60.0
# The longest any one request may take, outage or not: an answer, not a hang.
ANSWER_BOUND = 20.0
PHASE_TIMEOUT = 60.0
# Not the writes' jobs: a token's address is kept for a year by its expiry job, due then.
LATER_JOBS = Job.kind != user_ips.EXPIRE_JOB


@dataclass
class Attempt:
    text: str
    status_code: int | None  # None: no answer at all (a transport error)
    seconds: float
    body: str = ""
    content_type: str = ""
    status_id: str | None = None


@dataclass
class Load:
    """Clients posting statuses until told to stop; every attempt recorded."""

    base_url: str
    token: str
    attempts: list[Attempt] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, writer: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=ANSWER_BOUND * 2,
                          headers={"Authorization": f"Bearer {self.token}"}) as http:
            number = 0
            while not self.stop.is_set():
                number += 1
                text = f"writer {writer} post {number}"
                started = time.monotonic()
                try:
                    answer = http.post("/api/v1/statuses", json={"status": text})
                except httpx.TransportError as exc:
                    attempt = Attempt(text, None, time.monotonic() - started, repr(exc))
                else:
                    attempt = Attempt(text, answer.status_code, time.monotonic() - started,
                                      answer.text, answer.headers.get("content-type", ""))
                    if answer.status_code == 200:
                        attempt.status_id = answer.json()["id"]
                with self.lock:
                    self.attempts.append(attempt)

    def count(self, predicate: Callable[[Attempt], bool]) -> int:
        with self.lock:
            return sum(1 for attempt in self.attempts if predicate(attempt))

    def acknowledged(self) -> int:
        return self.count(lambda a: a.status_code == 200)

    def start(self, writers: int = WRITERS) -> list[threading.Thread]:
        """``writers`` clients writing until ``stop`` is set."""
        threads = [threading.Thread(target=self.write, args=(n,), daemon=True)
                   for n in range(writers)]
        for thread in threads:
            thread.start()
        return threads


def logs(log: Path, postgres: ThrowawayPostgres) -> str:
    """The server's and PostgreSQL's latest log lines, for a failure's message."""
    return f"\n--- serve log ---\n{log.read_text(errors='replace')[-4000:]}\n" \
           f"--- postgres log ---\n{postgres.log()}"


Served = tuple[subprocess.Popen[bytes], Settings, Path, dict[str, str]]  # process, settings, log, env


@contextmanager
def serving(postgres: ThrowawayPostgres, tmp_path: Path,
            extra_env: dict[str, str] | None = None) -> Iterator[Served]:
    """``easel serve`` on ``postgres``, up and answering /health; stopped afterwards."""
    port = free_port()
    settings = Settings(domain=f"127.0.0.1:{port}", scheme="http", data_dir=tmp_path / "data",
                        database_url=postgres.url())
    env = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
    env.update({"EASEL_DOMAIN": settings.domain, "EASEL_SCHEME": "http",
                "EASEL_DATA_DIR": str(settings.data_dir), "EASEL_DATABASE_URL": settings.database_url,
                "EASEL_RATE_LIMITS": "off", "EASEL_PUBLIC_CACHE_SECONDS": "0", **(extra_env or {})})
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(EASEL), "serve", "--port", str(port)], env=env,
                                   cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert process.poll() is None, "easel serve exited\n" + log.read_text()
            try:
                return httpx.get(f"{settings.base_url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, "easel serve to start", START_TIMEOUT)
        yield process, settings, log, env
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture
def served(throwaway_postgres: ThrowawayPostgres, tmp_path: Path) -> Iterator[Served]:
    with serving(throwaway_postgres, tmp_path) as served:
        yield served


async def poster(settings: Settings) -> tuple[int, str]:
    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            user = await create_user(session, settings, username="alice", email="alice@example.com",
                                     password="a long enough password")
        return user.account_id, await make_token(db, user)
    finally:
        await db.dispose()


async def stored_texts(settings: Settings, account_id: int) -> set[str]:
    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            contents = await session.scalars(select(Status.content).where(
                Status.account_id == account_id))
            return {content.removeprefix("<p>").removesuffix("</p>") for content in contents}
    finally:
        await db.dispose()


async def status_count(settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            return await session.scalar(select(func.count()).select_from(Status)) or 0
    finally:
        await db.dispose()


async def test_postgres_restarted_under_load_loses_no_acknowledged_write(
    served: Served, throwaway_postgres: ThrowawayPostgres,
) -> None:
    process, settings, log, env = served
    account_id, token = await poster(settings)
    load = Load(base_url=settings.base_url, token=token)
    writers = load.start()
    acknowledged = load.acknowledged

    def context() -> str:
        return logs(log, throwaway_postgres)

    try:
        await asyncio.to_thread(wait_for, lambda: acknowledged() >= 20, "writes before the outage",
                                PHASE_TIMEOUT)
        # The outage: PostgreSQL stopped abruptly under the writes, then refused for a while.
        await asyncio.to_thread(throwaway_postgres.stop, "immediate")
        before_refusals = load.count(lambda a: a.status_code != 200)
        await asyncio.to_thread(
            wait_for, lambda: load.count(lambda a: a.status_code != 200) >= before_refusals + 2 * WRITERS,
            "the clients to be refused", PHASE_TIMEOUT)
        await asyncio.to_thread(throwaway_postgres.start)
        # Recovery without a restart: writes acknowledged again by the same process.
        after_restart = acknowledged()
        await asyncio.to_thread(wait_for, lambda: acknowledged() >= after_restart + 20,
                                "writes after PostgreSQL came back", PHASE_TIMEOUT)
    except AssertionError as exc:
        raise AssertionError(f"{exc}{context()}") from None
    finally:
        load.stop.set()
        for writer in writers:
            await asyncio.to_thread(writer.join, ANSWER_BOUND * 3)
    assert process.poll() is None, "easel serve died" + context()

    attempts = list(load.attempts)
    # Every request answered, in bounded time.
    assert [a for a in attempts if a.status_code is None] == [], context()
    slow = [a for a in attempts if a.seconds > ANSWER_BOUND]
    assert slow == [], f"{slow}{context()}"
    # Every refusal a 503 with a JSON error.
    refused = [a for a in attempts if a.status_code != 200]
    assert refused, "the outage refused nothing"
    wrong = [a for a in refused if a.status_code != 503 or "application/json" not in a.content_type
             or '"error"' not in a.body]
    assert wrong == [], f"{wrong[:5]}{context()}"
    # No acknowledged write lost (an unacknowledged one may or may not have committed).
    ok = [a for a in attempts if a.status_code == 200]
    stored = await stored_texts(settings, account_id)
    assert {a.text for a in ok} <= stored, sorted({a.text for a in ok} - stored)
    assert len(stored) <= len(attempts)
    with httpx.Client(base_url=settings.base_url, timeout=ANSWER_BOUND,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        for attempt in ok[:: max(len(ok) // 10, 1)]:
            answer = http.get(f"/api/v1/statuses/{attempt.status_id}")
            assert answer.status_code == 200 and attempt.text in answer.json()["content"]
        assert http.get("/api/v1/accounts/verify_credentials").status_code == 200
    assert await status_count(settings) == len(stored)

    # Every job the writes made completes. A job whose attempt the outage cut stays claimed
    # until its lease runs out (its failure could not be recorded either); stand in for
    # that, then a worker — polling the rows, as any process would — finishes the rest.
    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            await session.execute(update(Job).where(Job.state == JobState.RUNNING).values(
                locked_until=utcnow() - timedelta(seconds=1)))
            await session.commit()
            queues = set(await session.scalars(select(Job.queue).where(Job.state != JobState.DONE,
                                                                        LATER_JOBS)))
        worker_log = log.with_name("worker.log")
        with open(worker_log, "wb") as out:
            command = [str(EASEL), "worker", "--queues", ",".join(sorted(queues) or ["default"])]
            worker = subprocess.Popen(command, env=env, cwd=log.parent, stdout=out,
                                      stderr=subprocess.STDOUT)
        try:
            async def unfinished() -> list[tuple[str, str]]:
                async with db.session() as session:
                    rows = await session.execute(select(Job.kind, Job.state).where(
                        Job.state != JobState.DONE, LATER_JOBS))
                    return [(kind, str(state)) for kind, state in rows]

            deadline = time.monotonic() + PHASE_TIMEOUT
            while left := await unfinished():
                assert worker.poll() is None, worker_log.read_text()
                assert time.monotonic() < deadline, f"{left}\n{worker_log.read_text()}{context()}"
                await asyncio.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.wait, 30)
        async with db.session() as session:
            assert await session.scalar(select(func.count()).select_from(Job).where(
                Job.state == JobState.FAILED)) == 0
    finally:
        await db.dispose()
