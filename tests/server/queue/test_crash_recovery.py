"""Given a real worker process killed with SIGKILL mid-job, when a worker starts again,
I expect the job to complete and its effect to have happened exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from server.db import Database
from server.models import Job, JobState
from server.queue.jobs import enqueue
from server.queue.kinds import KINDS
from server.settings import Settings
from tests.server.queue.kinds_for_tests import effects

ROOT = Path(__file__).resolve().parents[3]


def start_worker(settings: Settings, cwd: Path, name: str) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EASEL_")},
        "PYTHONPATH": str(ROOT),
        "EASEL_DOMAIN": settings.domain,
        "EASEL_DATA_DIR": str(settings.data_dir),
        "EASEL_DATABASE_URL": settings.database_url,
        "EASEL_BROKER_URL": settings.broker_url,
    }
    with open(cwd / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.server.queue.worker_harness",
             "worker", "--queues", "default", "--threads", "1"],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
        )


async def wait_for(predicate, what: str, process: subprocess.Popen[bytes], log: Path,  # type: ignore[no-untyped-def]
                   timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if process.poll() is not None:
            pytest.fail(f"worker exited ({process.returncode}) before {what}:\n{log.read_text()}")
        if asyncio.get_running_loop().time() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()}")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_job_survives_its_worker_being_killed(
    db: Database, settings: Settings, tmp_path: Path, effects_table: None
) -> None:
    marker = tmp_path / "attempt-started"
    async with db.session() as session:
        job = await enqueue(session, KINDS["test.crash"], str(marker))
        await session.commit()

    async def job_state() -> Job:
        async with db.session() as session:
            found = await session.get(Job, job.id)
            assert found is not None
            return found

    first = start_worker(settings, tmp_path, "first")
    try:
        await wait_for(lambda: asyncio.to_thread(marker.exists), "the job to start", first,
                       tmp_path / "first.log")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    killed = await job_state()
    assert killed.state == JobState.RUNNING and killed.attempts == 1
    assert await effects(db, str(marker)) == []  # the killed attempt committed nothing

    second = start_worker(settings, tmp_path, "second")
    try:
        async def done() -> bool:
            return (await job_state()).state == JobState.DONE

        await wait_for(done, "the job to be redone", second, tmp_path / "second.log")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    assert second.returncode == 0
    finished = await job_state()
    assert finished.attempts == 2
    assert await effects(db, str(marker)) == [2]  # once
