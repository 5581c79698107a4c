"""The studio (``/studio``): the signed-in artist's pages, driven through the in-process app.

Given alice signed in with the cookie session (and bob, another artist), I expect every
studio page to need the session, every form to need its CSRF token, everything of
alice's to be "not found" for bob, a work uploaded in one form to become media, a status
and portfolio metadata, bad input to come back on the form with nothing lost and never a
500, and the owner's private views (progress, original, difference, report, pictures) to
answer only her.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.responses import Response

from protect import document as doc
from protect import optout_metadata
from protect.naming import model_names
from server.models import Account, MediaAttachment, Project, Status, StatusPin, User
from server.services import portfolio
from server.web.session import CSRF_FIELD, SESSION_COOKIE, log_in
from tests.protect import ai_images as ai
from tests.protect import images
from tests.protect.conftest import activities, media_row, run_protect
from tests.server.web.works import NewWork, add_work

TOKEN = re.compile(rf'name="{CSRF_FIELD}" value="([^"]+)"')


# ------------------------------------------------------------------------------ helpers

async def _browser(app: Starlette, client: httpx.AsyncClient, user: User | None) -> httpx.AsyncClient:
    """A client with its own cookie jar, signed in as ``user`` (None: signed out)."""
    browser = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
    if user is not None:
        response = Response()
        log_in(response, app.state.easel, user)
        cookie = response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
        browser.cookies.set(SESSION_COOKIE, cookie, domain="easel.test")
    return browser


async def token(browser: httpx.AsyncClient, page: str = "/studio/upload") -> str:
    response = await browser.get(page)
    assert response.status_code == 200, response.text
    found = TOKEN.search(response.text)
    assert found, "no CSRF token on the page"
    return found.group(1)


def _files(*items: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (name, data, "application/octet-stream")) for name, data in items]


async def post_upload(browser: httpx.AsyncClient, fields: dict[str, Any],
                      files: list[tuple[str, tuple[str, bytes, str]]]) -> httpx.Response:
    data = {CSRF_FIELD: await token(browser), "visibility": "public", **fields}
    if not files:  # still a multipart form, as a browser sends it with an empty file input
        files = [("images", ("", b"", "application/octet-stream"))]
    return await browser.post("/studio/upload", data=data, files=files)


async def upload_work(browser: httpx.AsyncClient, **fields: Any) -> int:
    response = await post_upload(browser, {"title": "Heron", "alt": "A heron in ink",
                                           "tags_medium": "Ink", "tags_software": "Krita", **fields},
                                 _files(("heron.png", images.png((96, 64)))))
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/studio/works/")
    return int(location.rsplit("/", 1)[1])


async def _count(app: Starlette, model: Any) -> int:
    async with app.state.easel.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _media_of(app: Starlette, status_id: int) -> list[MediaAttachment]:
    async with app.state.easel.db.session() as session:
        return list(await session.scalars(select(MediaAttachment).where(
            MediaAttachment.status_id == status_id).order_by(MediaAttachment.id)))


async def _published_id(app: Starlette, status_id: int) -> int:
    from server.services.statuses import current_id

    async with app.state.easel.db.session() as session:
        return await current_id(session, status_id)


# -------------------------------------------------------------------- session and CSRF

STUDIO_PAGES = ["/studio", "/studio/upload", "/studio/works/123", "/studio/works/123/protection",
                "/studio/projects", "/studio/settings", "/studio/works/123/delete"]
PRIVATE_FILES = ["/studio/media/123/progress.json", "/studio/media/123/original",
                 "/studio/media/123/difference.png", "/studio/media/123/pictures/reconstruction_clean"]


@pytest.mark.parametrize("path", STUDIO_PAGES)
async def test_studio_pages_send_the_signed_out_to_sign_in(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path + "?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == f"/auth/sign_in?next={path}%3Fx%3D1"


@pytest.mark.parametrize("path", PRIVATE_FILES)
async def test_private_studio_urls_are_not_found_when_signed_out(client: httpx.AsyncClient,
                                                                  path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["cache-control"] == "private, no-store"


async def test_a_post_without_a_session_changes_nothing(app: Starlette, client: httpx.AsyncClient,
                                                        alice: User) -> None:
    response = await client.post("/studio/upload", data={"title": "x"},
                                 files=_files(("a.png", images.png())))
    assert response.status_code == 303 and response.headers["location"].startswith("/auth/sign_in")
    assert await _count(app, MediaAttachment) == 0


@pytest.mark.parametrize("submitted", [None, "", "forged-token"])
async def test_every_studio_form_needs_its_csrf_token(app: Starlette, alice_web: httpx.AsyncClient,
                                                      submitted: str | None) -> None:
    await token(alice_web)  # the browser has a CSRF cookie
    fields = {"title": "No token"} if submitted is None else {"title": "No token", CSRF_FIELD: submitted}
    response = await alice_web.post("/studio/upload", data=fields, files=_files(("a.png", images.png())))
    assert response.status_code == 403
    assert "expired" in response.text
    for path, data in [("/studio/settings", {"display_name": "Mallory"}),
                       ("/studio/projects", {"action": "create", "title": "P"})]:
        assert (await alice_web.post(path, data=data)).status_code == 403
    assert await _count(app, MediaAttachment) == 0
    assert await _count(app, Status) == 0
    assert await _count(app, Project) == 0


async def test_studio_pages_are_private_and_csp_clean(alice_web: httpx.AsyncClient) -> None:
    response = await alice_web.get("/studio/upload")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "noindex" in response.headers["x-robots-tag"] and "noai" in response.headers["x-robots-tag"]
    assert "<script>" not in response.text and "style=" not in response.text
    assert '<script src="/static/studio.js" defer></script>' in response.text


# ------------------------------------------------------------------------------- upload

async def test_an_upload_creates_media_a_status_and_its_portfolio_data(
        app: Starlette, alice_web: httpx.AsyncClient, alice: User) -> None:
    response = await post_upload(alice_web, {
        "title": "Herons at dawn", "description": "Two herons.", "year": "2024",
        "dimensions": "30 × 40 cm", "tags_medium": "Ink, sumi wash", "tags_software": "Krita",
        "tags_field": "Illustration", "sensitive": "on", "content_warning": "birds",
        "visibility": "unlisted", "alt": ["The first heron", "The second heron"],
    }, _files(("one.png", images.png((80, 60))), ("two.jpg", images.jpeg((60, 80)))))
    assert response.status_code == 303, response.text
    status_id = int(response.headers["location"].rsplit("/", 1)[1])

    media = await _media_of(app, status_id)
    assert [m.description for m in media] == ["The first heron", "The second heron"]
    assert all(m.state == "processing" for m in media)
    async with app.state.easel.db.session() as session:
        status = await session.get(Status, status_id)
        assert status is not None and not status.published
        assert (status.visibility, status.sensitive, status.spoiler_text) == ("unlisted", True, "birds")
        assert status.text.startswith("Herons at dawn")
        work = (await portfolio.work_metadata(session, [status_id]))[status_id]
    assert (work.title, work.description, work.year, work.dimensions) == (
        "Herons at dawn", "Two herons.", 2024, "30 × 40 cm")
    assert {kind: [t.name for t in terms] for kind, terms in work.tags.items() if terms} == {
        "field": ["Illustration"], "medium": ["Ink", "sumi wash"], "software": ["Krita"]}

    page = await alice_web.get(f"/studio/works/{status_id}")
    assert page.status_code == 200
    for item in media:
        assert f'data-progress-url="/studio/media/{item.id}/progress.json"' in page.text
    assert "<progress" in page.text and "Processing" in page.text

    await run_protect(app)
    published_id = await _published_id(app, status_id)
    assert published_id != status_id  # renumbered when published; the old URL still leads there
    moved = await alice_web.get(f"/studio/works/{status_id}")
    assert moved.status_code == 303 and moved.headers["location"] == f"/studio/works/{published_id}"
    page = await alice_web.get(f"/studio/works/{published_id}")
    assert "Published" in page.text and f"/@alice/{published_id}" in page.text


async def test_the_progress_json_follows_the_protection(app: Starlette, alice_web: httpx.AsyncClient) -> None:
    status_id = await upload_work(alice_web)
    [media] = await _media_of(app, status_id)
    pending = await alice_web.get(f"/studio/media/{media.id}/progress.json")
    assert pending.status_code == 200
    assert pending.headers["cache-control"] == "private, no-store"
    assert pending.json() == {
        "id": str(media.id), "state": "processing", "protection": "pending", "progress": 0.0,
        "reason": None, "verification": None, "verification_progress": None, "published": False,
        "status_id": str(status_id), "url": None, "preview_url": None}
    await run_protect(app)
    done = (await alice_web.get(f"/studio/media/{media.id}/progress.json")).json()
    published_id = await _published_id(app, status_id)
    assert done["state"] == "ready" and done["protection"] == "unprotected" and done["progress"] == 1.0
    assert done["published"] is True and done["status_id"] == str(published_id)
    assert done["url"] == f"https://easel.test/@alice/{published_id}"
    assert "EASEL_VAE_PATH" in done["reason"]
    assert done["preview_url"].startswith("https://easel.test/system/")


async def test_the_studio_lists_my_works_in_every_state(app: Starlette, alice_web: httpx.AsyncClient,
                                                        bob_web: httpx.AsyncClient) -> None:
    first = await upload_work(alice_web, title="Published heron")
    await run_protect(app)
    await upload_work(alice_web, title="Waiting heron")
    await upload_work(bob_web, title="Bob's crow")
    page = await alice_web.get("/studio")
    assert page.status_code == 200
    assert "Published heron" in page.text and "Waiting heron" in page.text
    assert "Bob&#39;s crow" not in page.text and "Bob's crow" not in page.text
    assert "Processing" in page.text and "Published" in page.text
    published_id = await _published_id(app, first)
    assert f"/studio/works/{published_id}/protection" in page.text


PNG = [("a.png", images.png())]
BAD_FORMS = [
    ({"title": "Kept title"}, [], "Choose at least one image"),
    ({"title": "Kept title"}, [("notes.png", b"I am a text file")],
     "notes.png: Validation failed: File content type"),
    ({"title": "Kept title", "year": "19x5"}, PNG, "Year must be a year"),
    ({"title": "Kept title", "year": "3000"}, PNG, "Year must be between"),
    ({"title": "Kept title", "description": "d" * 6000}, PNG, "Description is too long"),
    ({"title": "Kept title", "visibility": "everyone"}, PNG, "Choose who can see"),
    ({"title": "Kept title", "tags_medium": "!!!"}, PNG, "needs a letter or a digit"),
    ({"title": "Kept title"}, [(f"{n}.png", images.png()) for n in range(5)], "at most 4 images"),
]


@pytest.mark.parametrize(("fields", "files", "error"), BAD_FORMS)
async def test_bad_uploads_come_back_on_the_form_with_nothing_lost(
        app: Starlette, alice_web: httpx.AsyncClient, fields: dict[str, str],
        files: list[tuple[str, bytes]], error: str) -> None:
    response = await post_upload(alice_web, {"tags_software": "Krita", "content_warning": "kept cw",
                                             **fields}, _files(*files))
    assert response.status_code == 422, response.text
    assert error in response.text.replace("&#39;", "'")
    assert 'value="Kept title"' in response.text and 'value="Krita"' in response.text
    assert 'value="kept cw"' in response.text
    assert await _count(app, Status) == 0


async def test_a_too_long_title_is_refused(app: Starlette, alice_web: httpx.AsyncClient) -> None:
    response = await post_upload(alice_web, {"title": "t" * 300}, _files(("a.png", images.png())))
    assert response.status_code == 422 and "Title is too long" in response.text
    assert await _count(app, MediaAttachment) == 0


async def test_images_accepted_before_a_bad_one_are_kept_for_the_next_try(
        app: Starlette, alice_web: httpx.AsyncClient) -> None:
    response = await post_upload(alice_web, {"title": "Pair", "alt": ["Good one", "Bad one"]},
                                 _files(("good.png", images.png()), ("bad.png", images.truncated_jpeg())))
    assert response.status_code == 422 and "bad.png: Validation failed" in response.text
    [kept] = re.findall(r'name="kept_media" value="(\d+)"', response.text)
    assert "Good one" in response.text
    again = await alice_web.post("/studio/upload", data={
        CSRF_FIELD: TOKEN.search(response.text).group(1),  # type: ignore[union-attr]
        "title": "Pair", "visibility": "public", "kept_media": kept, "alt": "Second"},
        files=_files(("second.png", images.png())))
    assert again.status_code == 303, again.text
    status_id = int(again.headers["location"].rsplit("/", 1)[1])
    assert [m.description for m in await _media_of(app, status_id)] == ["Good one", "Second"]
    assert await _count(app, MediaAttachment) == 2


async def test_someone_elses_upload_cannot_be_kept(app: Starlette, alice_web: httpx.AsyncClient,
                                                   bob_web: httpx.AsyncClient) -> None:
    response = await post_upload(bob_web, {"title": "x"},
                                 _files(("good.png", images.png()), ("bad.png", b"nope")))
    [bobs] = re.findall(r'name="kept_media" value="(\d+)"', response.text)
    stolen = await post_upload(alice_web, {"title": "Mine", "kept_media": bobs}, [])
    assert stolen.status_code == 422 and "Choose at least one image" in stolen.text
    assert (await media_row(app, bobs)).status_id is None


# ------------------------------------------------------------------------ owner only

async def test_another_artists_work_and_media_are_not_found(app: Starlette, alice_web: httpx.AsyncClient,
                                                            bob_web: httpx.AsyncClient) -> None:
    status_id = await upload_work(alice_web)
    [media] = await _media_of(app, status_id)
    await run_protect(app)
    status_id = await _published_id(app, status_id)
    for path in [f"/studio/works/{status_id}", f"/studio/works/{status_id}/protection",
                 f"/studio/works/{status_id}/delete"]:
        assert (await bob_web.get(path)).status_code == 404, path
    for path in [f"/studio/media/{media.id}/progress.json", f"/studio/media/{media.id}/original",
                 f"/studio/media/{media.id}/difference.png",
                 f"/studio/media/{media.id}/pictures/reconstruction_clean"]:
        response = await bob_web.get(path)
        assert response.status_code == 404, path
        assert "image" not in response.headers["content-type"]
    bobs_token = await token(bob_web)
    for path, data in [(f"/studio/works/{status_id}/delete", {"confirm": "yes"}),
                       (f"/studio/works/{status_id}", {"title": "Stolen"}),
                       (f"/studio/works/{status_id}/pin", {}),
                       (f"/studio/media/{media.id}/retry", {}),
                       (f"/studio/media/{media.id}/publish_unprotected", {})]:
        response = await bob_web.post(path, data={CSRF_FIELD: bobs_token, **data})
        assert response.status_code == 404, path
    async with app.state.easel.db.session() as session:
        assert await session.get(Status, status_id) is not None
        assert (await portfolio.work_metadata(session, [status_id]))[status_id].title == "Heron"


@pytest.mark.parametrize("path", ["/studio/works/abc", "/studio/works/99999999999999999999999",
                                  "/studio/works/²", "/studio/media/9999999999999999999/original",
                                  "/studio/media/-1/progress.json"])
async def test_bad_ids_are_not_found(alice_web: httpx.AsyncClient, path: str) -> None:
    assert (await alice_web.get(path)).status_code == 404


# ---------------------------------------------------------------------- private views

async def test_the_original_and_the_difference_are_the_owners_uncached_pngs(
        app: Starlette, alice_web: httpx.AsyncClient) -> None:
    original_bytes = images.png((96, 64))
    response = await post_upload(alice_web, {"title": "Diff"}, _files(("d.png", original_bytes)))
    status_id = int(response.headers["location"].rsplit("/", 1)[1])
    [media] = await _media_of(app, status_id)
    assert (await alice_web.get(f"/studio/media/{media.id}/difference.png")).status_code == 404  # not ready
    await run_protect(app)

    original = await alice_web.get(f"/studio/media/{media.id}/original")
    assert original.status_code == 200 and original.content == original_bytes
    assert original.headers["cache-control"] == "private, no-store"
    assert "noai" in original.headers["x-robots-tag"]

    difference = await alice_web.get(f"/studio/media/{media.id}/difference.png")
    assert difference.status_code == 200 and difference.headers["content-type"] == "image/png"
    assert difference.headers["cache-control"] == "private, no-store"
    with Image.open(io.BytesIO(difference.content)) as picture:
        assert picture.format == "PNG" and picture.size == (96, 64)
        # Unprotected: only the JPEG re-encoding differs, a little, amplified.
        assert max(high for _low, high in picture.convert("RGB").getextrema()) < 255


async def test_the_protection_report_page_shows_the_report_and_its_pictures(
        app: Starlette, alice_web: httpx.AsyncClient) -> None:
    status_id = await upload_work(alice_web)
    await run_protect(app)
    status_id = await _published_id(app, status_id)
    [media] = await _media_of(app, status_id)

    page = await alice_web.get(f"/studio/works/{status_id}/protection")
    assert page.status_code == 200 and page.headers["cache-control"] == "private, no-store"
    assert "unprotected" in page.text and "EASEL_VAE_PATH" in page.text
    assert f"/studio/media/{media.id}/difference.png" in page.text
    assert f"/studio/media/{media.id}/original" in page.text
    assert "reconstruction" not in page.text

    # A verified image, as the verify job leaves it (figures made up), with its pictures.
    storage = app.state.easel.storage
    await storage.put("reports/aa/bb/clean.png", images.png((8, 8)), private=True)
    transforms = {name: {"verdict": verdict, "ratio": ratio, "retention": 0.61, "shift": 1.0,
                         "noise_shift": 0.3, "natural": 2.0, "natural_units": 0.5,
                         "target_progress": 0.1, "recon_psnr": 21.5}
                  for name, verdict, ratio in [("identity", "holds", 3.1), ("jpeg75", "weakened", 1.31),
                                               ("noise_upscale", "defeated", 1.05)]}
    report = {"budget": {"linf": 9, "psnr": 38.21, "ssim": 0.9712}, "transforms": transforms,
              "verdict": "defeated", "summary": "Defeated by noise_upscale; not tested: diffusion.",
              "battery": list(transforms), "untested": ["diffusion-based purification (DiffPure)"],
              "resolution": [96, 64], "size": [96, 64], "thresholds": {"ratio_holds": 1.5}}
    async with app.state.easel.db.session() as session:
        row = await session.get(MediaAttachment, media.id)
        assert row is not None
        stored = doc.with_report(
            {**doc.stored(row), "state": "protected", "models": ["tiny"]}, report,
            {"small": {**report, "verdict": "weakened", "summary": "Small summary."}},
            {"model": "tiny", "crop": [0, 0, 8, 8], "reconstruction_clean": "reports/aa/bb/clean.png",
             "reconstruction_bad": "../../etc/passwd.png"})
        doc.store(row, stored)
        await session.commit()

    page = await alice_web.get(f"/studio/works/{status_id}/protection")
    text = page.text
    assert "Verdict: defeated." in text and "Defeated by noise_upscale" in text
    assert "38.21 dB" in text and "0.9712" in text and "9/255" in text
    assert "jpeg75" in text and "1.31" in text and "weakened" in text and "21.5 dB" in text
    assert "Small summary." in text and "diffusion-based purification (DiffPure)" in text
    picture_url = f"/studio/media/{media.id}/pictures/reconstruction_clean"
    assert picture_url in text
    served = await alice_web.get(picture_url)
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.headers["cache-control"] == "private, no-store"
    for name in ("secret", "reconstruction_bad", "model", "crop"):
        assert (await alice_web.get(f"/studio/media/{media.id}/pictures/{name}")).status_code == 404
    assert "(tiny)" in text and "reconstruction_bad" not in text


# ------------------------------------------------------------------- editing a work

async def test_editing_a_works_metadata(app: Starlette, alice_web: httpx.AsyncClient) -> None:
    status_id = await upload_work(alice_web)
    csrf = await token(alice_web, f"/studio/works/{status_id}")
    response = await alice_web.post(f"/studio/works/{status_id}", data={
        CSRF_FIELD: csrf, "title": "Grey heron", "year": "2023", "tags_medium": "Oil",
        "tags_category": "Animals", "content_warning": "eye contact"})
    assert response.status_code == 303 and response.headers["location"].endswith("?done=saved")
    async with app.state.easel.db.session() as session:
        work = (await portfolio.work_metadata(session, [status_id]))[status_id]
        status = await session.get(Status, status_id)
        assert status is not None and (status.sensitive, status.spoiler_text) == (True, "eye contact")
    assert work.title == "Grey heron" and work.year == 2023
    assert [t.name for t in work.tags["medium"]] == ["Oil"] and not work.tags.get("software")
    page = await alice_web.get(f"/studio/works/{status_id}")
    assert 'value="eye contact"' in page.text and 'name="sensitive" value="on" checked' in page.text
    assert await activities(app, "Update") == []  # not published yet: nothing to tell anyone

    await run_protect(app)
    status_id = await _published_id(app, status_id)
    cleared = await alice_web.post(f"/studio/works/{status_id}", data={
        CSRF_FIELD: csrf, "title": "Grey heron", "tags_medium": "Oil"})
    assert cleared.status_code == 303
    async with app.state.easel.db.session() as session:
        status = await session.get(Status, status_id)
        assert status is not None and (status.sensitive, status.spoiler_text) == (False, "")
    assert [a.object_uri for a in await activities(app, "Update")] == [status.uri]

    bad = await alice_web.post(f"/studio/works/{status_id}", data={
        CSRF_FIELD: csrf, "title": "Lost?", "year": "last year", "tags_medium": "Ink",
        "content_warning": "kept"})
    assert bad.status_code == 422 and "Year must be a year" in bad.text
    assert 'value="Lost?"' in bad.text and 'value="Ink"' in bad.text and 'value="kept"' in bad.text
    async with app.state.easel.db.session() as session:
        assert (await portfolio.work_metadata(session, [status_id]))[status_id].title == "Grey heron"


async def test_pinning_unpinning_and_deleting_a_work(app: Starlette, alice_web: httpx.AsyncClient) -> None:
    status_id = await upload_work(alice_web)
    await run_protect(app)
    status_id = await _published_id(app, status_id)
    csrf = await token(alice_web, f"/studio/works/{status_id}")
    pinned = await alice_web.post(f"/studio/works/{status_id}/pin", data={CSRF_FIELD: csrf})
    assert pinned.status_code == 303 and await _count(app, StatusPin) == 1
    assert "Unpin" in (await alice_web.get(f"/studio/works/{status_id}")).text
    await alice_web.post(f"/studio/works/{status_id}/unpin", data={CSRF_FIELD: csrf})
    assert await _count(app, StatusPin) == 0

    unconfirmed = await alice_web.post(f"/studio/works/{status_id}/delete", data={CSRF_FIELD: csrf})
    assert unconfirmed.status_code == 422 and await _count(app, Status) == 1
    deleted = await alice_web.post(f"/studio/works/{status_id}/delete",
                                   data={CSRF_FIELD: csrf, "confirm": "yes"})
    assert deleted.status_code == 303 and await _count(app, Status) == 0
    assert (await alice_web.get(f"/studio/works/{status_id}")).status_code == 404


async def test_a_failed_protection_offers_the_authors_choices(app: Starlette,
                                                              alice_web: httpx.AsyncClient) -> None:
    status_id = await upload_work(alice_web)
    [media] = await _media_of(app, status_id)
    assert media.original_key is not None
    await app.state.easel.storage.put(media.original_key, b"\x89PNG\r\n\x1a\nbroken", private=True)
    await run_protect(app)
    page = await alice_web.get(f"/studio/works/{status_id}")
    assert "Protection failed" in page.text
    assert f'action="/studio/media/{media.id}/retry"' in page.text
    assert f'action="/studio/media/{media.id}/publish_unprotected"' in page.text
    csrf = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    chosen = await alice_web.post(f"/studio/media/{media.id}/publish_unprotected", data={CSRF_FIELD: csrf})
    assert chosen.status_code == 303
    assert chosen.headers["location"] == f"/studio/works/{status_id}?done=unprotected"
    assert (await media_row(app, media.id)).state == "processing"
    again = await alice_web.post(f"/studio/media/{media.id}/publish_unprotected", data={CSRF_FIELD: csrf})
    assert again.status_code == 422 and "failed" in again.text


# --------------------------------------------------------------------------- projects

async def test_projects_are_made_filled_ordered_and_removed(app: Starlette, alice_web: httpx.AsyncClient,
                                                            alice: User) -> None:
    first = await upload_work(alice_web, title="First")
    second = await upload_work(alice_web, title="Second")
    csrf = await token(alice_web, "/studio/projects")

    async def act(**fields: Any) -> httpx.Response:
        return await alice_web.post("/studio/projects", data={CSRF_FIELD: csrf, **fields})

    assert (await act(action="create", title="Birds")).status_code == 303
    async with app.state.easel.db.session() as session:
        project_id = await session.scalar(select(Project.id))
    for work_id in (first, second):
        assert (await act(action="add", project=project_id, work=work_id)).status_code == 303

    async def order() -> tuple[list[int], int | None]:
        async with app.state.easel.db.session() as session:
            account = await session.get(Account, alice.account_id)
            [view] = await portfolio.projects_of(session, account, alice.account_id)
            return view.work_ids, view.cover_id

    assert await order() == ([first, second], first)
    await act(action="up", project=project_id, work=second)
    assert await order() == ([second, first], second)
    await act(action="cover", project=project_id, work=first)
    assert await order() == ([second, first], first)
    await act(action="rename", project=project_id, title="Herons", description="")
    page = await alice_web.get("/studio/projects")
    assert "Herons" in page.text and "cover" in page.text
    await act(action="remove", project=project_id, work=first)
    assert (await order())[0] == [second]
    blank = await act(action="rename", project=project_id, title=" ")
    assert blank.status_code == 422 and "Title can&#39;t be blank" in blank.text
    assert (await act(action="delete", project=project_id)).status_code == 303
    assert await _count(app, Project) == 0
    assert await _count(app, Status) == 2


async def test_any_work_is_added_to_a_project_from_its_own_page(
        app: Starlette, alice_web: httpx.AsyncClient) -> None:
    # The projects page lists only the newest works; a work's page reaches every project.
    work = await upload_work(alice_web, title="An old one")
    page = await alice_web.get(f"/studio/works/{work}")
    assert "In no project." in page.text and 'id="add-to-project"' not in page.text
    csrf = await token(alice_web, "/studio/projects")
    for title in ("Birds", "Trees"):
        await alice_web.post("/studio/projects",
                             data={CSRF_FIELD: csrf, "action": "create", "title": title})
    async with app.state.easel.db.session() as session:
        ids = {p.title: p.id for p in await session.scalars(select(Project))}
    page = await alice_web.get(f"/studio/works/{work}")
    form = page.text[page.text.index('<select id="add-to-project"'):]
    assert f'value="{ids["Birds"]}">Birds' in form and f'value="{ids["Trees"]}">Trees' in form
    added = await alice_web.post("/studio/projects", data={
        CSRF_FIELD: csrf, "action": "add", "project": ids["Trees"], "work": work})
    assert added.status_code == 303
    page = await alice_web.get(f"/studio/works/{work}")
    assert f'<a href="/studio/projects#project-{ids["Trees"]}">Trees</a>' in page.text
    form = page.text[page.text.index('<select id="add-to-project"'):page.text.index("</select>")]
    assert "Birds" in form and "Trees" not in form


async def test_another_artists_project_is_not_found(app: Starlette, alice_web: httpx.AsyncClient,
                                                    bob_web: httpx.AsyncClient) -> None:
    csrf = await token(alice_web, "/studio/projects")
    await alice_web.post("/studio/projects", data={CSRF_FIELD: csrf, "action": "create", "title": "Mine"})
    async with app.state.easel.db.session() as session:
        project_id = await session.scalar(select(Project.id))
    bobs = await token(bob_web, "/studio/projects")
    for action in ("delete", "rename"):
        response = await bob_web.post("/studio/projects", data={
            CSRF_FIELD: bobs, "action": action, "project": project_id, "title": "Bob's"})
        assert response.status_code == 404
    assert await _count(app, Project) == 1


# --------------------------------------------------------------------------- settings

async def test_settings_change_the_profile_and_the_ai_choice(app: Starlette, alice_web: httpx.AsyncClient,
                                                             alice: User) -> None:
    page = await alice_web.get("/studio/settings")
    assert f'value="{optout_metadata.DMI_PROHIBITED_AIML}" selected' in page.text
    csrf = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    saved = await alice_web.post("/studio/settings", data={
        CSRF_FIELD: csrf, "display_name": "Alice Ink", "note": "Herons, mostly.",
        "data_mining": optout_metadata.DMI_PROHIBITED_GENAIML},
        files={"avatar": ("face.png", images.png((50, 50)), "image/png")})
    assert saved.status_code == 303, saved.text
    async with app.state.easel.db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        assert (account.display_name, account.note) == ("Alice Ink", "Herons, mostly.")
        assert account.data_mining == optout_metadata.DMI_PROHIBITED_GENAIML
        assert account.avatar_key is not None

    for fields, error in [({"data_mining": "http://example.com/anything-goes"}, "AI training"),
                          ({"display_name": "x" * 40}, "Display name is too long")]:
        refused = await alice_web.post("/studio/settings", data={
            CSRF_FIELD: csrf, "display_name": "Alice Ink", "note": "Changed?",
            "data_mining": optout_metadata.DMI_PROHIBITED, **fields})
        assert refused.status_code == 422 and error in refused.text
        assert "Changed?" in refused.text
    bad_avatar = await alice_web.post("/studio/settings", data={
        CSRF_FIELD: csrf, "display_name": "Alice", "note": "", "data_mining": optout_metadata.DMI_PROHIBITED},
        files={"avatar": ("face.png", b"not an image", "image/png")})
    assert bad_avatar.status_code == 422 and "Avatar" in bad_avatar.text
    generated = await alice_web.post("/studio/settings", data={
        CSRF_FIELD: csrf, "display_name": "Alice", "note": "", "data_mining": optout_metadata.DMI_PROHIBITED},
        files={"avatar": ("face.png", ai.png_with_text(("parameters", ai.A1111)), "image/png")})
    assert generated.status_code == 422 and "does not accept AI-generated images" in generated.text
    async with app.state.easel.db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        assert account.display_name == "Alice Ink"
        assert account.data_mining == optout_metadata.DMI_PROHIBITED_GENAIML


async def test_an_oversized_form_is_refused_without_reading_it(app: Starlette,
                                                                alice_web: httpx.AsyncClient) -> None:
    csrf = await token(alice_web, "/studio/projects")
    response = await alice_web.post("/studio/projects", data={
        CSRF_FIELD: csrf, "action": "create", "title": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413 and "too large" in response.text
    garbled = await alice_web.post("/studio/upload", content=b"--nope\r\n\r\n",
                                   headers={"content-type": "multipart/form-data; boundary=b"})
    assert garbled.status_code in (400, 403)
    assert await _count(app, Project) == 0


# ---------------------------------------------------------------- checking an outside image

async def post_check(browser: httpx.AsyncClient, image: bytes | None,
                     original: bytes | None = None) -> httpx.Response:
    files = [("image", ("glazed.png", image or b"", "image/png") if image is not None
              else ("", b"", "application/octet-stream"))]
    if original is not None:
        files.append(("original", ("clean.png", original, "image/png")))
    return await browser.post("/studio/check", data={CSRF_FIELD: await token(browser, "/studio/check")},
                              files=files)


async def test_checking_an_outside_image_is_private_and_says_when_no_model_is_there(
        app: Starlette, alice_web: httpx.AsyncClient, bob_web: httpx.AsyncClient,
        client: httpx.AsyncClient) -> None:
    # Signed out: sign in first; the form says what the check can and cannot tell.
    assert (await client.get("/studio/check")).status_code == 303
    form = await alice_web.get("/studio/check")
    assert "DiffPure" in form.text and 'name="original"' in form.text
    started = await post_check(alice_web, images.png((64, 48)), images.png((64, 48)))
    assert started.status_code == 303
    url = started.headers["location"]
    assert re.fullmatch(r"/studio/check/[0-9a-f]{32}", url)
    pending = await alice_web.get(url)
    assert pending.status_code == 200 and "Waiting for the protection worker" in pending.text
    assert 'http-equiv="refresh"' in pending.text and "Full report" in pending.text
    assert pending.headers["cache-control"] == "private, no-store"
    # Nobody else sees it, and a made-up token is nothing.
    assert (await bob_web.get(url)).status_code == 404
    assert (await alice_web.get("/studio/check/" + "0" * 32)).status_code == 404
    assert (await alice_web.get("/studio/check/../../etc")).status_code == 404
    # Without a model the worker says so, and the uploads are deleted.
    private = app.state.easel.storage.root / "private" / "checks"
    assert {p.name for p in private.rglob("*.png")} == {"image.png", "original.png"}
    assert await run_protect(app) == 1
    done = await alice_web.get(url)
    assert "No protection model is configured" in done.text and 'http-equiv="refresh"' not in done.text
    assert not list(private.rglob("*.png")) and len(list(private.rglob("result.json"))) == 1


async def test_a_bad_check_upload_is_refused_on_the_form(alice_web: httpx.AsyncClient,
                                                         app: Starlette) -> None:
    for image, original, message in ((None, None, "Choose the image to check"),
                                     (b"not an image", None, "The image:"),
                                     (images.png((32, 32)), b"nope", "The original:")):
        refused = await post_check(alice_web, image, original)
        assert refused.status_code == 422 and message in refused.text, message
    assert not (app.state.easel.storage.root / "private" / "checks").exists()


async def test_the_check_page_names_the_configured_models(
        app: Starlette, alice_web: httpx.AsyncClient, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert "(none is configured yet)" in (await alice_web.get("/studio/check")).text
    single = tmp_path / "vae-ft-mse-840000-ema-pruned.safetensors"
    single.write_bytes(b"")
    pipeline = tmp_path / "stable-diffusion-v1-5" / "vae"
    pipeline.mkdir(parents=True)
    weights = tmp_path / "sd-vae-ft-ema" / "diffusion_pytorch_model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"")
    again = tmp_path / "again" / "vae-ft-mse-840000-ema-pruned.safetensors"
    again.parent.mkdir()
    again.write_bytes(b"")
    state = app.state.easel
    monkeypatch.setattr(state, "settings", state.settings.with_changes(
        vae_paths=(single, pipeline, weights, again)))
    # The names the protect worker gives them (protect.naming), without importing torch.
    assert model_names(state.settings.vae_paths) == [
        "vae-ft-mse-840000-ema-pruned", "stable-diffusion-v1-5", "sd-vae-ft-ema",
        "vae-ft-mse-840000-ema-pruned-2"]
    page = await alice_web.get("/studio/check")
    assert ("with the models configured on this server (vae-ft-mse-840000-ema-pruned, "
            "stable-diffusion-v1-5, sd-vae-ft-ema, vae-ft-mse-840000-ema-pruned-2)") in page.text


# ------------------------------------------------------------------------ public pages

async def test_only_public_and_unlisted_works_link_to_a_public_page(
        app: Starlette, alice_web: httpx.AsyncClient, alice: User) -> None:
    state = app.state.easel
    async with state.db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
    works = {visibility: await add_work(state.db, state.settings, account, NewWork(
        title=f"A {visibility} sketch", visibility=visibility))
        for visibility in ("public", "unlisted", "private", "direct")}
    listing = await alice_web.get("/studio")
    linked = re.findall(r'<a href="https://easel.test/@alice/(\d+)">Public page</a>', listing.text)
    assert sorted(linked) == sorted(str(works[v].id) for v in ("public", "unlisted"))
    assert "Followers only: not on your public pages" in listing.text
    assert "Direct: not on your public pages" in listing.text
    for visibility, status in works.items():
        page = await alice_web.get(f"/studio/works/{status.id}")
        public = visibility in ("public", "unlisted")
        assert ('id="public-link"' in page.text) is public, visibility
        assert ("see the public page" in page.text) is public, visibility
        assert ("not on your public pages" in page.text) is not public, visibility
        # The link goes to a page that is there; the others' page would be a 404.
        answer = await alice_web.get(f"/@alice/{status.id}")
        assert answer.status_code == (200 if public else 404), visibility
    followers = await alice_web.get(f"/studio/works/{works['private'].id}")
    assert "— followers only, not on your public pages." in followers.text
    assert "Published: followers only, not on your public pages." in followers.text  # the script's notice


# ---------------------------------------------------------------------------- messages

@pytest.mark.parametrize(("page", "path", "form", "message"), [
    ("/studio/account", "/studio/account/password",
     {"current_password": "wrong", "password": "new long password 123",
      "password_confirmation": "new long password 123"}, "Current password is invalid"),
    ("/studio/move", "/studio/move", {"action": "move", "handle": "x@y.example", "password": "wrong"},
     "That is not your password."),
    ("/studio/move", "/studio/move", {"action": "aliases", "aliases": ""}, "Aliases saved."),
    ("/studio/standing", "/studio/standing", {"action": "delete", "password": "a guess"},
     "That is not your password."),
])
async def test_a_studio_message_is_shown_once(alice_web: httpx.AsyncClient, page: str, path: str,
                                             form: dict[str, str], message: str) -> None:
    answer = await alice_web.post(path, data={CSRF_FIELD: await token(alice_web, page), **form})
    assert answer.text.count(message) == 1, answer.text
    assert answer.text.count('role="alert"') + answer.text.count('role="status"') == 1
    assert answer.text.count('id="form-error"') <= 1


async def test_an_import_error_is_shown_once(alice_web: httpx.AsyncClient) -> None:
    answer = await alice_web.post("/studio/import", data={
        CSRF_FIELD: await token(alice_web, "/studio/import"), "type": "following", "mode": "bad"},
        files={"file": ("", b"", "text/csv")})
    assert answer.status_code == 422
    assert answer.text.count("Choose merge or overwrite.") == 1
    assert answer.text.count('role="alert"') == 1
