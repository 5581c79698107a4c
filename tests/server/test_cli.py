"""The ``easel`` command as an admin runs it: real processes, real ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server.settings import Settings

EASEL = Path(sys.executable).parent / "easel"


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
    env.update({
        "EASEL_DOMAIN": settings.domain,
        "EASEL_DATA_DIR": str(settings.data_dir),
        "EASEL_DATABASE_URL": settings.database_url,
        "EASEL_BROKER_URL": settings.broker_url,
    })
    env.update(extra)
    return env


def easel(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EASEL), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_create_user_then_refuse_a_taken_or_bad_name(settings: Settings, tmp_path: Path) -> None:
    env = environment(settings)
    created = easel(["admin", "create-user", "alice", "--email", "alice@example.com",
                     "--password", "correct horse battery", "--admin"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    assert "created admin user alice" in created.stdout

    again = easel(["admin", "create-user", "Alice", "--email", "other@example.com",
                   "--password", "correct horse battery"], env, tmp_path)
    assert again.returncode == 1
    assert "Username has already been taken" in again.stderr

    bad = easel(["admin", "create-user", "al ice", "--email", "x@example.com",
                 "--password", "correct horse battery"], env, tmp_path)
    assert bad.returncode == 1
    assert "Username must contain only letters, numbers and underscores" in bad.stderr
    assert "Traceback" not in bad.stderr + again.stderr


def test_a_bad_setting_stops_the_command_with_a_clear_message(
    settings: Settings, tmp_path: Path
) -> None:
    result = easel(["migrate"], environment(settings, EASEL_REGISTRATIONS="sometimes"), tmp_path)
    assert result.returncode == 2
    assert "configuration error: EASEL_REGISTRATIONS='sometimes' must be one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_queues_are_refused(settings: Settings, tmp_path: Path) -> None:
    result = easel(["worker", "--queues", "default,bogus"], environment(settings), tmp_path)
    assert result.returncode == 2
    assert "unknown queue(s): bogus" in result.stderr


def test_migrate_creates_the_schema_on_an_empty_sqlite_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
    env["EASEL_DATA_DIR"] = str(tmp_path / "fresh")
    first = easel(["migrate"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "database migrated from empty to" in first.stdout
    assert (tmp_path / "fresh" / "easel.sqlite3").exists()
    second = easel(["migrate"], env, tmp_path)
    assert "database is up to date" in second.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(pid: int) -> list[int]:
    result = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(line) for line in result.stdout.split()]


@pytest.mark.slow
def test_serve_migrates_serves_and_federates_an_identity(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    domain = f"127.0.0.1:{port}"
    env = environment(settings, EASEL_DOMAIN=domain, EASEL_SCHEME="http")
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([str(EASEL), "serve", "--port", str(port)], env=env, cwd=tmp_path,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"http://{domain}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        assert f"listening on http://127.0.0.1:{port}" in log_path.read_text()

        created = easel(["admin", "create-user", "alice", "--email", "alice@example.com",
                         "--password", "correct horse battery"], env, tmp_path)
        assert created.returncode == 0, created.stderr

        finger = httpx.get(f"http://{domain}/.well-known/webfinger",
                           params={"resource": f"acct:alice@{domain}"})
        assert finger.status_code == 200
        actor_url = next(link["href"] for link in finger.json()["links"] if link["rel"] == "self")
        assert actor_url == f"http://{domain}/users/alice"
        actor = httpx.get(actor_url, headers={"Accept": "application/activity+json"}).json()
        assert actor["publicKey"]["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")

        if not settings.broker_url:  # embedded mode: protection runs in a child process
            deadline = time.monotonic() + 30
            while "worker polling the database for protect" not in log_path.read_text():
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            assert len(children_of(server.pid)) == 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    # uvicorn shuts down gracefully, then re-raises SIGTERM as the default handler would.
    assert server.returncode in (0, -signal.SIGTERM), log_path.read_text()
    assert "Application shutdown complete" in log_path.read_text()
    assert children_of(server.pid) == []


def test_the_protection_commands_are_listed_and_reprotect_and_reverify_need_a_model(
        settings: Settings, tmp_path: Path) -> None:
    listed = easel(["--help"], environment(settings), tmp_path)
    assert listed.returncode == 0 and "protect" in listed.stdout
    described = easel(["admin", "reprotect", "--help"], environment(settings), tmp_path)
    assert described.returncode == 0
    assert all(option in described.stdout for option in ("--all", "--dry-run", "--here"))
    refused = easel(["admin", "reprotect"], environment(settings), tmp_path)
    assert refused.returncode == 1
    assert "no protection model is configured (EASEL_VAE_PATH is empty)" in refused.stderr
    assert "Traceback" not in refused.stderr

    described = easel(["admin", "reverify", "--help"], environment(settings), tmp_path)
    assert described.returncode == 0
    assert all(option in described.stdout for option in ("--all", "--dry-run", "--here", "ID"))
    refused = easel(["admin", "reverify", "12"], environment(settings), tmp_path)
    assert refused.returncode == 1
    assert "no protection model is configured (EASEL_VAE_PATH is empty): there is nothing to " \
           "verify the protection against" in refused.stderr
    assert "Traceback" not in refused.stderr
