"""Helpers for media tests that go through the app: upload, run the protect queue, read rows;
and fixtures for protection with a real (tiny, random) model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from server.ids import utcnow
from server.models import Activity, Job, MediaAttachment
from server.queue.runner import JobRunner
from server.services import user_ips


async def upload(api: httpx.AsyncClient, data: bytes, *, name: str = "upload.jpg",
                 content_type: str | None = "image/jpeg", version: str = "v2",
                 fields: dict[str, str] | None = None) -> httpx.Response:
    file: Any = (name, data, content_type) if content_type is not None else (name, data)
    return await api.post(f"/api/{version}/media", files={"file": file}, data=fields or {})


async def run_protect(app: Starlette) -> int:
    ran: int = await app.state.easel.runner.run_due(["protect"])
    return ran


async def settle(app: Starlette) -> None:
    """Let the light queues (federation) finish: the in-process workers, or — with a broker,
    which the test app does not consume itself — the due jobs run here."""
    state = app.state.easel
    if state.queue.in_process:
        await state.queue.drain()
    await state.runner.run_due(["default", "federation"])


async def media_row(app: Starlette, media_id: int | str) -> MediaAttachment:
    async with app.state.easel.db.session() as session:
        media = await session.get(MediaAttachment, int(media_id))
        assert media is not None
        return media


def stored_files(app: Starlette, *, private: bool = False) -> list[Path]:
    root: Path = app.state.easel.storage.root / ("private" if private else "public")
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def nothing_stored(app: Starlette) -> None:
    """A refused upload left no media row, no job and no file (the uploader's address,
    recorded at its login's first use, has its expiry job: that one is not the upload's)."""
    async with app.state.easel.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(MediaAttachment)) == 0
        assert await session.scalar(select(func.count()).select_from(Job).where(
            Job.kind != user_ips.EXPIRE_JOB)) == 0
    assert stored_files(app, private=True) == [] and stored_files(app) == []


# ----------------------------------------------------------- protection with a real model

@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random AutoencoderKL saved with save_pretrained (skips without torch)."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from tests.protect.tiny_models import save_tiny_vae

    return save_tiny_vae(tmp_path_factory.mktemp("models") / "tiny-vae")


@pytest.fixture
def fast_protection(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every perturbation profile cut to a few steps, and no models cached from before."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from protect import models, perturb
    from tests.protect.tiny_models import fast_profile

    for name in list(perturb.PROFILES):
        monkeypatch.setitem(perturb.PROFILES, name, fast_profile(name))
    models.clear_cache()
    yield
    models.clear_cache()


def later_runner(app: Starlette, *, minutes: float = 24 * 60) -> JobRunner:
    """A runner whose clock is ahead: retries' backoff and delayed jobs are due at once."""
    state = app.state.easel
    return JobRunner(state.db, state.settings,
                     clock=lambda: utcnow() + timedelta(minutes=minutes))


async def run_protect_later(app: Starlette, *, minutes: float = 24 * 60) -> int:
    """Run the protect queue ``minutes`` ahead, then again as much further each time until
    nothing is due: every retry after its backoff, delayed jobs too. Returns how many ran."""
    total = 0
    for times in range(1, 20):
        ran: int = await later_runner(app, minutes=minutes * times).run_due(["protect"])
        if not ran:
            break
        total += ran
    return total


async def activities(app: Starlette, type_: str) -> list[Activity]:
    async with app.state.easel.db.session() as session:
        return list(await session.scalars(select(Activity).where(Activity.type == type_)))


async def protect_job(app: Starlette, media_id: int | str) -> Job:
    async with app.state.easel.db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == "protect_media",
                                                     Job.ref == str(media_id)))
        assert job is not None
        return job
