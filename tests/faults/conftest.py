"""What the fault suite shares: a loopback peer that can be down, hold a request or answer,
throwaway PostgreSQL and Redis servers, and skipping (or, under ``EASEL_REQUIRE_FAULTS=1``,
failing) when the binaries a fault needs are absent.

The faults are real: a worker process killed with SIGKILL, a server socket closed, a
database or broker process restarted. The services the rest of the suite shares (the CI
PostgreSQL cluster on 5432, the Redis on 6379) are never touched: a fault that restarts a
service starts its own on a free port in a temporary directory and removes it afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.server.test_cli import free_port

REQUIRED = os.environ.get("EASEL_REQUIRE_FAULTS", "").strip().lower() in ("1", "true", "yes", "on")
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
SERVICE_START_TIMEOUT = 30.0


def unavailable(reason: str) -> None:
    """Skip the test, or fail it when the fault suite is required (``.ci/run``)."""
    if REQUIRED:
        pytest.fail(f"{reason} (EASEL_REQUIRE_FAULTS is set)")
    pytest.skip(reason)


# ------------------------------------------------------------------------ the peer

ACCEPT, REFUSE, HOLD = "accept", "refuse", "hold"


@dataclass
class Peer:
    """Another server's inbox on loopback. ``mode``: ACCEPT (202, the activity counted as
    received), REFUSE (503) or HOLD (the request read, then no answer until ``release``).
    ``down()`` closes its socket (connections refused); ``up()`` listens again, same port."""

    port: int = field(default_factory=free_port)
    mode: str = ACCEPT
    accepted: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)   # every request read, in order
    refused: int = 0
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.domain}"

    def accepted_ids(self) -> Counter[str]:
        with self.lock:
            return Counter(str(activity.get("id")) for activity in self.accepted)

    def up(self) -> None:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with peer.lock:
                    peer.bodies.append(body)
                    mode = peer.mode
                    if mode == HOLD:
                        peer.mode = ACCEPT  # only the first request is held
                if mode == HOLD:
                    peer.held.set()
                    peer.release.wait(timeout=120)
                    return  # no answer: the sender is gone by now
                if mode == REFUSE:
                    with peer.lock:
                        peer.refused += 1
                    self.answer(503)
                    return
                with peer.lock:
                    peer.accepted.append(json.loads(body))
                self.answer(202)

            def answer(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self.answer(404)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Stop listening: connections to the port are refused."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def peer() -> Iterator[Peer]:
    remote = Peer()
    remote.up()
    try:
        yield remote
    finally:
        remote.release.set()
        remote.down()


# ------------------------------------------------------------- throwaway services

def wait_for(check: Any, what: str, timeout: float = SERVICE_START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _run_as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` user."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster of its own (initdb in a temporary directory, a free port),
    for tests that stop and restart it. User ``easel``, trust authentication, loopback only."""

    bin_dir: Path
    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "easel") -> str:
        return f"postgresql+asyncpg://easel@127.0.0.1:{self.port}/{database}"

    def ctl(self, *args: str) -> None:
        subprocess.run(_run_as_postgres([
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "pg.log"),
            "-w", "-t", "30", *args]), check=True, capture_output=True, timeout=60)

    def ready(self) -> bool:
        return subprocess.run([str(self.bin_dir / "pg_isready"), "-q", "-U", "easel", "-h", "127.0.0.1", "-p",
                               str(self.port)], timeout=10).returncode == 0

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.ctl("start", "-o", options)
        wait_for(self.ready, "the throwaway PostgreSQL to accept connections")

    def stop(self, mode: str = "fast") -> None:
        self.ctl("stop", "-m", mode)

    def processes(self) -> list[int]:
        """The postmaster's pid and its children's (backends, background workers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if int(fields[1]) == postmaster:  # the parent pid, after the state
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """Every process stopped (SIGSTOP): connections stay open, the port accepts, and
        nothing answers — a paused VM, a stalled disk, a partition that drops packets. The
        postmaster first, so that it forks nothing more."""
        for pid in self.processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.processes():
            os.kill(pid, signal.SIGCONT)

    def log(self) -> str:
        path = self.directory / "pg.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    if not PG_BIN_DIRS or not (PG_BIN_DIRS[0] / "initdb").exists():
        unavailable("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin "
                    "(apt-get install postgresql; .ci/services.sh does)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("running as root without runuser: PostgreSQL will not start as root")
    directory = Path(tempfile.mkdtemp(prefix="easel-fault-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
    server = ThrowawayPostgres(bin_dir=PG_BIN_DIRS[0], directory=directory)
    subprocess.run(_run_as_postgres([str(server.bin_dir / "initdb"), "-D", str(server.data),
                                     "-A", "trust", "-U", "easel", "--no-sync"]),
                   check=True, capture_output=True, timeout=120)
    server.start()
    subprocess.run([str(server.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(server.port),
                    "-U", "easel", "easel"], check=True, capture_output=True, timeout=60)
    try:
        yield server
    finally:
        try:
            server.stop("immediate")
        except Exception:  # already stopped
            pass
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class ThrowawayRedis:
    """A redis-server of its own on a free port, without persistence: stopping it loses
    every message it held."""

    binary: str
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_for(answers, "the throwaway Redis to answer PING")
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("no redis-server binary (apt-get install redis-server; .ci/services.sh does)")
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("the redis client library is not installed")
    assert binary is not None
    server = ThrowawayRedis(binary=binary, directory=tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
