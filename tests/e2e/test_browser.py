"""The web pages in a real headless Chromium, against a real ``easel serve``.

Given a server process (plain HTTP on a loopback port, embedded queue, no protection model,
so images are published unprotected as soon as the protect worker has made their
renditions) and an artist made with ``easel admin create-user``, I expect a person with a
browser to: sign in, upload a work with an image and portfolio tags, watch the page say it
is published (the studio's script polling its progress), find it on their portfolio at
``/@name``, and find it again on the browse page filtered by one of its tags — with no
Content-Security-Policy violation on the way. A screenshot of the browse page is saved
(under pytest's tmp dir, and in ``$EASEL_ARTIFACTS_DIR`` when set) and its path printed.

The browser is Debian's ``chromium`` at /usr/bin/chromium, driven by Playwright through
``executable_path`` (``playwright install`` is never used: it downloads a browser of its
own). Without the browser or Playwright the test is skipped — except where
``EASEL_REQUIRE_BROWSER`` is set (``.ci/run`` sets it after ``.ci/browser.sh`` installed
the browser), where a missing browser fails it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from server.settings import Settings
from tests.e2e.test_two_servers import PASSWORD, Server, start, stop, wait_until_up
from tests.server.test_cli import EASEL

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
REQUIRED = os.environ.get("EASEL_REQUIRE_BROWSER", "").strip().lower() in ("1", "true", "yes", "on")
PUBLISH_TIMEOUT_MS = 90_000  # the protect worker starts with the server; a cold start is slow
STEP_TIMEOUT_MS = 30_000


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (EASEL_REQUIRE_BROWSER is set: run .ci/browser.sh)")
    pytest.skip(reason)


@pytest.fixture
def browser_available() -> None:
    """Skip (or, under EASEL_REQUIRE_BROWSER, fail) before anything starts when there is
    no browser to drive."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium, or bash .ci/browser.sh)")


@pytest.fixture
def server(browser_available: None, settings: Settings, tmp_path: Path) -> Iterator[Server]:
    web = start("web", tmp_path, settings.database_url)
    try:
        wait_until_up(web)
        yield web
    finally:
        stop(web)


@pytest.fixture
def chromium(server: Server) -> Iterator[Any]:
    """A headless Chromium, through Playwright's sync API. Started after the server (and
    the database fixtures, which run their own event loops): Playwright's sync API keeps
    one running in this thread until it stops."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


def _create_artist(server: Server, username: str) -> None:
    done = subprocess.run([str(EASEL), "admin", "create-user", username, "--email",
                           f"{username}@example.com", "--password", PASSWORD],
                          env=server.env, cwd=server.cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + server.logs()


def _artwork(path: Path) -> Path:
    """A small picture with some structure (a heron-ish shape on a wash)."""
    image = Image.new("RGB", (320, 240), (226, 232, 240))
    draw = ImageDraw.Draw(image)
    for y in range(0, 240, 8):
        draw.line([(0, y), (320, y + 40)], fill=(200, 210, 225), width=3)
    draw.ellipse((120, 60, 220, 120), fill=(40, 44, 52))
    draw.line([(170, 120), (150, 220)], fill=(40, 44, 52), width=5)
    draw.line([(180, 120), (200, 220)], fill=(40, 44, 52), width=5)
    draw.polygon([(210, 80), (300, 70), (212, 95)], fill=(230, 160, 40))
    image.save(path, "PNG")
    return path


def _save_screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    artifacts = os.environ.get("EASEL_ARTIFACTS_DIR")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        copy = Path(artifacts) / name
        shutil.copyfile(path, copy)
        print(f"screenshot: {copy}")
    print(f"screenshot: {path}")
    return path


def test_an_artist_signs_in_uploads_a_tagged_work_and_finds_it_by_tag(
        server: Server, chromium: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    _create_artist(server, "ada")
    picture = _artwork(tmp_path / "heron.png")
    context = chromium.new_context(viewport={"width": 1200, "height": 900}, base_url=server.base_url)
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    failed: list[str] = []
    page.on("response", lambda response: failed.append(f"{response.status} {response.url}")
            if response.status >= 500 else None)
    try:
        # The studio asks for a sign-in first, and comes back after it.
        page.goto("/studio")
        expect(page).to_have_url(re.compile(r"/auth/sign_in\?next="))
        page.fill("#login", "ada")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/studio$"))
        expect(page.locator("h1")).to_have_text("My works")

        # Upload a work with an image, alt text and portfolio tags.
        page.click("text=Upload a work >> nth=0")
        expect(page).to_have_url(re.compile(r"/studio/upload$"))
        page.set_input_files("#image_0", str(picture))
        page.fill("#alt_0", "A grey heron standing in shallow water, in ink")
        page.fill("#title", "Heron at dawn")
        page.fill("#description", "Brush and ink on paper.")
        page.fill("#year", "2024")
        page.fill("#tags_field", "Illustration")
        page.fill("#tags_medium", "Ink")
        page.fill("#tags_software", "Krita")
        page.click("text=Upload and protect")
        expect(page).to_have_url(re.compile(r"/studio/works/\d+$"))
        expect(page.locator("h1")).to_have_text("Heron at dawn")
        expect(page.locator("progress").first).to_be_attached()

        # The page's script follows the protection and says when the work is out.
        notice = page.locator("#published-notice")
        expect(notice).to_be_visible(timeout=PUBLISH_TIMEOUT_MS)
        public_url = notice.locator("a").get_attribute("href")
        assert public_url and re.search(r"/@ada/\d+$", public_url), public_url
        expect(page.locator("#work-state")).to_be_hidden()
        expect(page.locator(".studio-media img")).to_have_attribute(
            "alt", "A grey heron standing in shallow water, in ink")
        _save_screenshot(page, tmp_path, "studio-work.png")

        # The protection report (the owner's only), with its pictures loaded.
        page.click("text=Protection report")
        expect(page.locator("h1")).to_have_text("Protection report: Heron at dawn")
        expect(page.locator(".protection-state").first).to_contain_text("unprotected")
        for picture in page.locator(".report-pictures img").all():
            expect(picture).to_have_js_property("complete", True)
            assert picture.evaluate("image => image.naturalWidth") > 0, picture.get_attribute("src")
        _save_screenshot(page, tmp_path, "studio-protection-report.png")

        # The work's public page, then the artist's portfolio.
        page.goto(public_url)
        expect(page.locator("h1")).to_contain_text("Heron at dawn")
        expect(page.get_by_role("link", name="Ink").first).to_be_visible()
        page.goto("/@ada")
        expect(page.locator(".card-title", has_text="Heron at dawn")).to_be_visible()

        # Browse by a tag: the work is there; under another medium it is not.
        page.goto("/works?medium=Ink")
        card = page.locator(".card", has_text="Heron at dawn")
        expect(card).to_be_visible()
        expect(card.locator("img.image")).to_have_attribute(
            "alt", "A grey heron standing in shallow water, in ink")
        _save_screenshot(page, tmp_path, "browse-medium-ink.png")
        page.goto("/works?medium=Oil")
        expect(page.locator(".card", has_text="Heron at dawn")).to_have_count(0)
        page.goto("/works?medium=Ink&software=Krita")
        expect(page.locator(".card", has_text="Heron at dawn")).to_be_visible()
    except BaseException:
        _save_screenshot(page, tmp_path, "failure.png")
        print(server.logs())
        raise
    finally:
        context.close()
    assert violations == [], violations
    assert failed == [], failed
