"""Given a real worker process killed with SIGKILL mid-job, when a worker starts again,
I expect the job to complete and its effect to have happened exactly once — also for a
protect job killed mid-perturbation, whose claim is a short lease."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update
from starlette.applications import Starlette

from server.db import Database
from server.ids import utcnow
from server.models import Activity, Job, JobState, MediaState, ProtectionState
from server.queue.jobs import enqueue
from server.queue.kinds import KINDS
from server.settings import Settings
from tests.protect import images
from tests.protect.conftest import media_row, stored_files, upload
from tests.server.queue.kinds_for_tests import effects

ROOT = Path(__file__).resolve().parents[3]


def start_worker(settings: Settings, cwd: Path, name: str, *, queue: str = "default",
                 **extra_env: str) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EASEL_")},
        "PYTHONPATH": str(ROOT),
        "EASEL_DOMAIN": settings.domain,
        "EASEL_DATA_DIR": str(settings.data_dir),
        "EASEL_DATABASE_URL": settings.database_url,
        "EASEL_BROKER_URL": settings.broker_url,
        **extra_env,
    }
    with open(cwd / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.server.queue.worker_harness",
             "worker", "--queues", queue, "--threads", "1"],
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


@pytest.mark.slow
@pytest.mark.torch
async def test_a_protect_job_survives_its_worker_being_killed_mid_perturbation(
    app: Starlette, settings: Settings, tmp_path: Path, alice_api: httpx.AsyncClient,
    bob_api: httpx.AsyncClient,
) -> None:
    """Real `easel worker --queues protect` processes with a tiny model; the harness holds
    the first attempt after its first perturbation step (EASEL_TEST_PROTECT_HOLD)."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from tests.protect.tiny_models import save_tiny_vae

    vae = save_tiny_vae(tmp_path / "tiny-vae")
    marker = tmp_path / "perturbing"
    env = {"EASEL_VAE_PATH": str(vae), "EASEL_PROTECT_DEVICE": "cpu",
           "EASEL_TEST_PROTECT_HOLD": str(marker), "OMP_NUM_THREADS": "1"}
    media_id = (await upload(alice_api, images.jpeg((64, 64)))).json()["id"]
    status_id = (await alice_api.post("/api/v1/statuses", json={
        "status": "protected, eventually", "media_ids": [media_id]})).json()["id"]
    db = app.state.easel.db

    async def job_state() -> Job:
        async with db.session() as session:
            found = await session.scalar(select(Job).where(Job.kind == "protect_media",
                                                           Job.ref == str(media_id)))
            assert found is not None
            return found

    first = start_worker(settings, tmp_path, "first", queue="protect", **env)
    try:
        await wait_for(lambda: asyncio.to_thread(marker.exists), "the perturbation to start",
                       first, tmp_path / "first.log", timeout=180)
        held = await job_state()
        assert held.state == JobState.RUNNING and held.attempts == 1
        assert held.locked_until is not None
        assert held.locked_until - utcnow() <= timedelta(minutes=2)  # a lease, not 30 minutes
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert stored_files(app) == []  # the killed attempt published nothing
    assert (await bob_api.get(f"/api/v1/statuses/{status_id}")).status_code == 404

    # Stand in for the two minutes of lease running out (no heartbeat renews it any more);
    # the lease itself is tested with an injected clock in test_lease.py.
    async with db.session() as session:
        await session.execute(update(Job).where(Job.id == held.id).values(
            locked_until=utcnow() - timedelta(seconds=1)))
        await session.commit()

    second = start_worker(settings, tmp_path, "second", queue="protect", **env)
    try:
        async def done() -> bool:
            return (await job_state()).state == JobState.DONE

        await wait_for(done, "the job to be redone", second, tmp_path / "second.log", timeout=180)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert second.returncode == 0
    assert (await job_state()).attempts == 2
    media = await media_row(app, media_id)
    assert media.state == MediaState.READY and media.protection == ProtectionState.PROTECTED
    assert media.meta["protection"]["models"] == ["tiny-vae"]
    assert len(stored_files(app)) == 3  # one set of renditions
    assert (await bob_api.get(f"/api/v1/statuses/{status_id}")).status_code == 200
    async with db.session() as session:
        creates = await session.scalar(select(func.count()).select_from(Activity).where(
            Activity.type == "Create"))
    assert creates == 1  # published once
