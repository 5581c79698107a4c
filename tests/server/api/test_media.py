"""Media endpoints: upload, processing states, update, the private original, /system/, and
the owner's protection state and choices (without a model; tests/protect has them with one)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from server.db import Database
from server.models import Job, MediaState, User
from server.storage import LocalStorage, StorageError
from tests.conftest import authorized, make_token
from tests.protect import images
from tests.protect.conftest import (
    activities,
    media_row,
    nothing_stored,
    run_protect,
    run_protect_later,
    settle,
    upload,
)


def _path(url: str) -> str:
    assert url.startswith("https://easel.test/")
    return url[len("https://easel.test"):]


async def test_an_upload_is_accepted_then_processed(app: Starlette, alice_api: httpx.AsyncClient,
                                                    client: httpx.AsyncClient) -> None:
    response = await upload(alice_api, images.sideways_jpeg_with_gps(),
                            fields={"description": "Sketch", "focus": "0.0,0.5"})
    assert response.status_code == 202
    entity = response.json()
    assert entity["type"] == "image" and entity["url"] is None and entity["preview_url"] is None
    assert entity["description"] == "Sketch" and entity["meta"]["focus"] == {"x": 0.0, "y": 0.5}
    media_id = entity["id"]
    assert isinstance(media_id, str)

    processing = await alice_api.get(f"/api/v1/media/{media_id}")
    assert processing.status_code == 206 and processing.json()["url"] is None

    await run_protect(app)
    ready = await alice_api.get(f"/api/v1/media/{media_id}")
    assert ready.status_code == 200
    entity = ready.json()
    assert entity["blurhash"] and entity["url"] and entity["preview_url"]
    assert entity["meta"]["original"] == {"width": 40, "height": 80, "size": "40x80", "aspect": 0.5}
    assert entity["meta"]["small"]["size"] == "40x80"
    assert "protection" not in entity["meta"]

    served = await client.get(_path(entity["url"]))
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-robots-tag"] == "noai, noimageai"
    assert "immutable" in served.headers["cache-control"]
    images.assert_only_optout_metadata(served.content)
    preview = await client.get(_path(entity["preview_url"]))
    assert preview.status_code == 200 and preview.headers["x-robots-tag"] == "noai, noimageai"


async def test_v1_answers_200_with_no_url_while_processing(alice_api: httpx.AsyncClient) -> None:
    response = await upload(alice_api, images.png(), version="v1", name="pic.png", content_type="image/png")
    assert response.status_code == 200 and response.json()["url"] is None


@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "text/plain"])
async def test_the_declared_content_type_does_not_matter(app: Starlette, alice_api: httpx.AsyncClient,
                                                         content_type: str | None) -> None:
    response = await upload(alice_api, images.png(), name="noname", content_type=content_type)
    assert response.status_code == 202
    assert (await media_row(app, response.json()["id"])).original_content_type == "image/png"


async def test_gif_and_transparent_png_uploads(app: Starlette, alice_api: httpx.AsyncClient,
                                               client: httpx.AsyncClient) -> None:
    gif = (await upload(alice_api, images.animated_gif(), name="a.gif")).json()["id"]
    alpha = (await upload(alice_api, images.transparent_png(), name="a.png")).json()["id"]
    await run_protect(app)
    gif_entity = (await alice_api.get(f"/api/v1/media/{gif}")).json()
    assert gif_entity["type"] == "image"
    served_gif = await client.get(_path(gif_entity["url"]))
    red, green, blue, _alpha = images.colour_at(served_gif.content, (0.5, 0.5))
    assert red > 240 and green < 20 and blue < 20  # the first frame
    alpha_entity = (await alice_api.get(f"/api/v1/media/{alpha}")).json()
    served = await client.get(_path(alpha_entity["url"]))
    assert served.headers["content-type"] == "image/webp"
    assert images.colour_at(served.content, (0.1, 0.5))[3] == 0


@pytest.mark.parametrize(("data", "message"), [
    (b"I am a text file called picture.png", "Validation failed: File content type is invalid"),
    (images.png_bomb(), "Validation failed: Image is too large: 20000×20000 pixels (the limit is 33,177,600"),
    (images.truncated_jpeg(), "Validation failed: Could not read the image"),
])
async def test_bad_files_are_refused_and_nothing_is_written(
        app: Starlette, alice_api: httpx.AsyncClient, data: bytes, message: str) -> None:
    response = await upload(alice_api, data, name="picture.png", content_type="image/png")
    assert response.status_code == 422
    assert response.json()["error"].startswith(message)
    await nothing_stored(app)


async def test_a_missing_file_is_blank(app: Starlette, alice_api: httpx.AsyncClient) -> None:
    for response in (await alice_api.post("/api/v2/media", data={"description": "no file"}),
                     await alice_api.post("/api/v2/media", json={"file": "not a file"}),
                     await upload(alice_api, b"")):
        assert response.status_code == 422
        assert response.json()["error"].lower().startswith("validation failed: file")
    assert (await alice_api.post("/api/v2/media", data={})).json() == {
        "error": "Validation failed: File can't be blank"}
    await nothing_stored(app)


async def test_an_oversized_file_is_refused_with_the_limit(app: Starlette,
                                                           alice_api: httpx.AsyncClient) -> None:
    response = await upload(alice_api, b"\xff\xd8\xff" + b"\0" * (16 * 1024 * 1024))
    assert response.status_code == 422
    assert response.json()["error"] == "Validation failed: File file size must be less than 16 MB"
    await nothing_stored(app)


async def test_bad_description_or_focus_is_refused(app: Starlette, alice_api: httpx.AsyncClient) -> None:
    too_long = await upload(alice_api, images.png(), fields={"description": "x" * 1501})
    assert too_long.status_code == 422 and "too long" in too_long.json()["error"]
    bad_focus = await upload(alice_api, images.png(), fields={"focus": "2,2"})
    assert bad_focus.status_code == 422 and "Focus" in bad_focus.json()["error"]
    await nothing_stored(app)


async def test_media_is_updated_by_its_owner(app: Starlette, alice_api: httpx.AsyncClient,
                                            bob_api: httpx.AsyncClient) -> None:
    media_id = (await upload(alice_api, images.png())).json()["id"]
    updated = await alice_api.put(f"/api/v1/media/{media_id}",
                                  json={"description": "Now described", "focus": "-0.5,0.25"})
    assert updated.status_code == 206
    assert updated.json()["description"] == "Now described"
    assert updated.json()["meta"]["focus"] == {"x": -0.5, "y": 0.25}
    assert (await alice_api.put(f"/api/v1/media/{media_id}", data={"focus": "left"})).status_code == 422
    stranger = await bob_api.put(f"/api/v1/media/{media_id}", data={"description": "mine"})
    assert stranger.status_code == 404 and stranger.json() == {"error": "Record not found"}
    assert (await media_row(app, media_id)).description == "Now described"
    await run_protect(app)
    assert (await alice_api.put(f"/api/v1/media/{media_id}", data={"description": "x"})).status_code == 200


async def test_other_peoples_media_is_not_found(alice_api: httpx.AsyncClient,
                                                bob_api: httpx.AsyncClient) -> None:
    media_id = (await upload(alice_api, images.png())).json()["id"]
    for path in (f"/api/v1/media/{media_id}", f"/api/v1/easel/media/{media_id}/original"):
        response = await bob_api.get(path)
        assert response.status_code == 404 and response.json() == {"error": "Record not found"}
    assert (await alice_api.get("/api/v1/media/12345")).status_code == 404
    assert (await alice_api.get("/api/v1/media/abc")).status_code == 404


async def test_the_original_is_served_to_its_owner_only(app: Starlette, alice_api: httpx.AsyncClient,
                                                        client: httpx.AsyncClient) -> None:
    data = images.sideways_jpeg_with_gps()
    media_id = (await upload(alice_api, data)).json()["id"]
    original = await alice_api.get(f"/api/v1/easel/media/{media_id}/original")
    assert original.status_code == 200
    assert original.content == data  # the owner's own file, untouched
    assert original.headers["content-type"] == "image/jpeg"
    assert original.headers["cache-control"] == "private, no-store"
    assert (await client.get(f"/api/v1/easel/media/{media_id}/original")).status_code == 401
    key = (await media_row(app, media_id)).original_key
    assert key is not None
    assert (await client.get(f"/system/{key}")).status_code == 404  # private root is never served


async def test_scopes_are_required(client: httpx.AsyncClient, db: Database, alice: User,
                                   alice_api: httpx.AsyncClient) -> None:
    media_id = (await upload(alice_api, images.png())).json()["id"]
    async with authorized(client, await make_token(db, alice, "read")) as reader:
        response = await upload(reader, images.png())
        assert response.status_code == 403
        assert (await reader.get(f"/api/v1/media/{media_id}")).status_code == 403
        assert (await reader.put(f"/api/v1/media/{media_id}", data={"description": "x"})).status_code == 403
    async with authorized(client, await make_token(db, alice, "write:media")) as writer:
        assert (await upload(writer, images.png())).status_code == 202
        assert (await writer.get(f"/api/v1/easel/media/{media_id}/original")).status_code == 403
    assert (await upload(client, images.png())).status_code == 401


async def test_a_failed_media_tells_its_owner_why(app: Starlette, alice_api: httpx.AsyncClient) -> None:
    media_id = (await upload(alice_api, images.png())).json()["id"]
    key = (await media_row(app, media_id)).original_key
    assert key is not None
    await app.state.easel.storage.put(key, b"\x89PNG\r\n\x1a\nbroken", private=True)
    await run_protect(app)
    response = await alice_api.get(f"/api/v1/media/{media_id}")
    assert response.status_code == 422
    assert "could not be processed" in response.json()["error"]


@pytest.mark.parametrize("path", [
    "/system/media/..%2f..%2fprivate/originals/aa/bb/x.jpg",
    "/system/%2e%2e/private/x.jpg",
    "/system/media/aa/bb/missing.jpg",
    "/system/media/aa/bb/file.exe",
    "/system/MEDIA/x.jpg",
    "/system/",
])
async def test_system_serves_only_public_files(app: Starlette, client: httpx.AsyncClient, path: str) -> None:
    storage = app.state.easel.storage
    await storage.put("originals/aa/bb/x.jpg", images.jpeg(), private=True)
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["x-robots-tag"] == "noai, noimageai"


async def test_system_serves_public_files_with_their_type(app: Starlette, client: httpx.AsyncClient) -> None:
    storage = app.state.easel.storage
    await storage.put("avatars/aa/bb/face.webp", images.save(images.Image.new("RGB", (4, 4)), "WEBP"))
    response = await client.get("/system/avatars/aa/bb/face.webp")
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    assert response.headers["x-robots-tag"] == "noai, noimageai"
    head = await client.head("/system/avatars/aa/bb/face.webp")
    assert head.status_code == 200 and head.headers["x-robots-tag"] == "noai, noimageai"


# ------------------------------------------------------------------------- protection

def _protection_paths(media_id: str) -> list[tuple[str, str]]:
    return [("GET", f"/api/v1/easel/media/{media_id}/protection"),
            ("POST", f"/api/v1/easel/media/{media_id}/retry"),
            ("POST", f"/api/v1/easel/media/{media_id}/publish_unprotected")]


async def test_without_a_model_the_owner_is_told_the_media_is_unprotected_and_why(
        app: Starlette, alice_api: httpx.AsyncClient) -> None:
    media_id = (await upload(alice_api, images.png())).json()["id"]
    pending = await alice_api.get(f"/api/v1/easel/media/{media_id}/protection")
    assert pending.status_code == 200 and pending.headers["cache-control"] == "private, no-store"
    assert pending.json()["state"] == "pending" and pending.json()["progress"] == 0.0
    await run_protect(app)
    document = (await alice_api.get(f"/api/v1/easel/media/{media_id}/protection")).json()
    assert document["state"] == "unprotected" and document["progress"] == 1.0
    assert document["reason"] == "no protection model is configured (EASEL_VAE_PATH is empty)"
    assert (document["models"], document["strength"], document["profile"]) == ([], None, None)
    assert document["updated_at"].endswith("Z")
    # Nothing was perturbed, so there is nothing to verify (and no verification job).
    assert document["verification"] == "skipped"
    assert document["verification_reason"] == "nothing to verify: the image was not perturbed"
    assert "transforms" not in document and "verdict" not in document
    async with app.state.easel.db.session() as session:
        assert await session.scalar(select(Job).where(Job.kind == "verify_media")) is None


async def test_protection_is_the_owners_business_only(
        app: Starlette, client: httpx.AsyncClient, db: Database, alice: User,
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient) -> None:
    media_id = (await upload(alice_api, images.png())).json()["id"]
    async with authorized(client, await make_token(db, None, "read write")) as app_only:
        for method, path in _protection_paths(media_id):
            for who in (bob_api, client, app_only):
                response = await who.request(method, path)
                assert response.status_code == 404, (method, path, who)
                assert response.json() == {"error": "Record not found"}
            assert (await alice_api.request(method, path.replace(media_id, "12345"))).status_code == 404
    async with authorized(client, await make_token(db, alice, "read")) as reader:
        for method, path in _protection_paths(media_id):
            assert (await reader.request(method, path)).status_code == 403
    assert (await media_row(app, media_id)).state == MediaState.PROCESSING  # nothing changed


async def test_the_author_chooses_only_once_protection_has_failed(
        app: Starlette, alice_api: httpx.AsyncClient) -> None:
    media_id = (await upload(alice_api, images.png())).json()["id"]
    for _method, path in _protection_paths(media_id)[1:]:
        response = await alice_api.post(path)  # still processing
        assert response.status_code == 422 and "failed" in response.json()["error"]
    await run_protect(app)
    for _method, path in _protection_paths(media_id)[1:]:
        response = await alice_api.post(path)  # ready (unprotected: no model)
        assert response.status_code == 422 and "failed" in response.json()["error"]


async def _fail_every_attempt(app: Starlette, monkeypatch: pytest.MonkeyPatch) -> None:
    async def unavailable(self: LocalStorage, key: str, *, private: bool = False) -> bytes:
        raise StorageError("the shared disk is away")

    with monkeypatch.context() as patch:
        patch.setattr(LocalStorage, "get", unavailable)
        assert await run_protect_later(app) == 5


async def test_after_failing_for_good_the_author_retries_and_the_status_is_published(
        app: Starlette, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    media_id = (await upload(alice_api, images.png())).json()["id"]
    status = (await alice_api.post("/api/v1/statuses", json={
        "status": "a new study", "media_ids": [media_id]})).json()
    await _fail_every_attempt(app, monkeypatch)
    failed = (await alice_api.get(f"/api/v1/easel/media/{media_id}/protection")).json()
    assert failed["state"] == "failed" and failed["progress"] == 0.0
    assert failed["reason"] == "The original file could not be read from storage; please upload it again."
    assert (await bob_api.get(f"/api/v1/statuses/{status['id']}")).status_code == 404
    mine = (await alice_api.get(f"/api/v1/statuses/{status['id']}")).json()
    assert mine["media_attachments"][0]["url"].endswith("/static/processing.png")

    retried = await alice_api.post(f"/api/v1/easel/media/{media_id}/retry")
    assert retried.status_code == 202 and retried.json()["state"] == "pending"
    # Nothing the worker decides (its settings, not the web process's) is claimed yet.
    assert (retried.json()["models"], retried.json()["strength"]) == ([], None)
    assert (await media_row(app, media_id)).state == MediaState.PROCESSING
    assert (await alice_api.get(f"/api/v1/media/{media_id}")).status_code == 206
    again = await alice_api.post(f"/api/v1/easel/media/{media_id}/retry")
    assert again.status_code == 422  # no longer failed
    assert await run_protect(app) == 1
    assert (await bob_api.get(f"/api/v1/statuses/{status['id']}")).status_code == 200
    assert (await media_row(app, media_id)).state == MediaState.READY


async def test_the_author_publishes_unprotected_and_the_status_federates_once(
        app: Starlette, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    media_id = (await upload(alice_api, images.png())).json()["id"]
    status = (await alice_api.post("/api/v1/statuses", json={
        "status": "as it is", "media_ids": [media_id]})).json()
    await _fail_every_attempt(app, monkeypatch)
    chosen = await alice_api.post(f"/api/v1/easel/media/{media_id}/publish_unprotected")
    assert chosen.status_code == 202 and chosen.json()["state"] == "pending"
    assert chosen.json()["requested"] == "unprotected"
    assert await run_protect(app) == 1
    document = (await alice_api.get(f"/api/v1/easel/media/{media_id}/protection")).json()
    assert document["state"] == "unprotected"
    assert document["reason"] == "published unprotected at the author's request"
    published = await bob_api.get(f"/api/v1/statuses/{status['id']}")
    assert published.status_code == 200 and published.json()["media_attachments"][0]["url"]
    await settle(app)
    assert await run_protect_later(app) == 0
    assert [a.payload["status_id"] for a in await activities(app, "Create")] == [
        int(published.json()["id"])]
