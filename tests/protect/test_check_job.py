"""Checking an outside image in the studio with a real (tiny) model: the full report with
the clean original, the blind test without it, shown to the owner only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

import httpx
import torch
from starlette.applications import Starlette

from protect.verify import BATTERY, sign_noise
from server.models import User
from server.settings import Settings
from tests.protect.conftest import run_protect
from tests.protect.test_jobs_protected import busy_png
from tests.server.web.test_studio import _browser, post_check


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def settings(settings: Settings, tiny_vae_dir: Path, fast_protection: None) -> Settings:
    return settings.with_changes(vae_paths=(tiny_vae_dir,), protect_device="cpu")


@pytest.fixture
async def alice_web(app: Starlette, client: httpx.AsyncClient,
                    alice: User) -> AsyncIterator[httpx.AsyncClient]:
    async with await _browser(app, client, alice) as browser:
        yield browser


def _noisy(png: bytes) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    sign_noise(Image.open(io.BytesIO(png)).convert("RGB"), 8, 0).save(out, "PNG")
    return out.getvalue()


async def test_with_the_clean_original_the_check_is_the_full_report(
        app: Starlette, alice_web: httpx.AsyncClient) -> None:
    clean = busy_png((96, 64))
    started = await post_check(alice_web, _noisy(clean), clean)
    assert started.status_code == 303
    assert await run_protect(app) == 1
    page = await alice_web.get(started.headers["location"])
    assert page.status_code == 200 and "Full report" in page.text
    assert "Verdict: " in page.text and "Each transform of the battery" in page.text
    for name in BATTERY:
        assert f">{name}" in page.text
    assert "Not tested" in page.text


async def test_without_the_original_the_check_is_the_blind_test(
        app: Starlette, alice_web: httpx.AsyncClient) -> None:
    started = await post_check(alice_web, busy_png((96, 64)))
    assert await run_protect(app) == 1
    page = await alice_web.get(started.headers["location"])
    assert "Blind test" in page.text and "tiny-vae" in page.text
    assert any(f"Verdict: {v}." in page.text for v in ("detected", "weak", "none"))
    assert "lightly purified copy" in page.text
