"""Hostile uploads: decompression bombs in every accepted format, animated frame bombs,
polyglots, and path traversal through every name a client controls.

A bomb is refused (422, nothing stored, no job) before it is decoded. A polyglot is either
refused or re-encoded, so that no byte of its payload is ever served, and whatever is
served carries its image type and ``nosniff``. No client-given name reaches a stored path.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from server.models import User
from tests.protect import images
from tests.protect.conftest import nothing_stored, run_protect, stored_files, upload
from tests.server.web.test_studio import _browser, _files, post_upload

SCRIPT = b"<script>alert(document.domain)</script>"
PHP = b"<?php system($_GET['c']); ?>"


def _path(url: str) -> str:
    assert url.startswith("https://easel.test/")
    return url[len("https://easel.test"):]


# ---------------------------------------------------------------- bombs, by format

def jpeg_bomb() -> bytes:
    """A real JPEG whose frame header (SOF0) claims 65000×65000 pixels."""
    data = bytearray(images.jpeg((16, 16)))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 65000, 65000)
    return bytes(data)


def gif_bomb() -> bytes:
    """A GIF whose screen and image descriptor claim 65535×65535 pixels."""
    data = bytearray(images.save(Image.new("P", (8, 8)), "GIF"))
    struct.pack_into("<HH", data, 6, 65535, 65535)
    descriptor = data.index(b"\x2c\x00\x00\x00\x00")
    struct.pack_into("<HH", data, descriptor + 5, 65535, 65535)
    return bytes(data)


def webp_bomb() -> bytes:
    """A lossless WebP whose VP8L header claims 16384×16384 pixels."""
    data = bytearray(images.save(Image.new("RGB", (8, 8)), "WEBP", lossless=True))
    assert data[12:16] == b"VP8L" and data[20] == 0x2F
    (bits,) = struct.unpack_from("<I", data, 21)
    bits = (bits & ~((1 << 28) - 1)) | 16383 | (16383 << 14)
    struct.pack_into("<I", data, 21, bits)
    return bytes(data)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_text_bomb() -> bytes:
    """A 16×16 PNG carrying a zTXt chunk that inflates to 64 MB (a zip bomb in metadata)."""
    bomb = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)
    raw = images.png((16, 16))
    end = raw.index(b"IEND") - 4
    return raw[:end] + _chunk(b"zTXt", b"Comment\0\0" + bomb) + raw[end:]


def png_idat_bomb() -> bytes:
    """A 64×64 PNG whose image data inflates to 64 MB: far more than its pixels need."""
    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data)
            + _chunk(b"IEND", b""))


@pytest.mark.parametrize(("name", "data", "message"), [
    ("png", images.png_bomb(), "Image is too large"),
    ("jpeg", jpeg_bomb(), "Image is too large"),
    ("gif", gif_bomb(), "Image is too large"),
    ("webp", webp_bomb(), "Image is too large"),
])
async def test_a_bomb_in_any_format_is_refused_before_decoding(
        app: Starlette, alice_api: httpx.AsyncClient, name: str, data: bytes, message: str) -> None:
    assert len(data) < 4096
    response = await upload(alice_api, data, name=f"bomb.{name}", content_type=f"image/{name}")
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]
    await nothing_stored(app)


@pytest.mark.parametrize("data", [png_text_bomb(), png_idat_bomb()], ids=["ztxt", "idat"])
async def test_deflate_bombs_are_refused_or_decoded_within_bounds(
        app: Starlette, alice_api: httpx.AsyncClient, client: httpx.AsyncClient, data: bytes) -> None:
    assert len(data) < 256 * 1024
    response = await upload(alice_api, data, name="bomb.png", content_type="image/png")
    assert response.status_code in (202, 422), response.text
    if response.status_code == 422:
        await nothing_stored(app)
        return
    await run_protect(app)
    entity = (await alice_api.get(f"/api/v1/media/{response.json()['id']}")).json()
    if entity["url"] is not None:
        served = await client.get(_path(entity["url"]))
        assert served.status_code == 200 and len(served.content) < 1024 * 1024
        assert served.headers["content-type"].startswith("image/")


async def test_an_animated_frame_bomb_is_not_expanded(
        app: Starlette, alice_api: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    """600 frames of 256×256 (39 Mpx in all, over the pixel limit though each frame is
    small): refused, or kept as one still frame, never decoded frame by frame to disk."""
    frames = [Image.new("P", (256, 256), color=i % 256) for i in range(600)]
    data = images.save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)
    response = await upload(alice_api, data, name="frames.gif", content_type="image/gif")
    assert response.status_code in (202, 422), response.text
    if response.status_code == 422:
        await nothing_stored(app)
        return
    await run_protect(app)
    entity = (await alice_api.get(f"/api/v1/media/{response.json()['id']}")).json()
    assert entity["url"], entity
    served = await client.get(_path(entity["url"]))
    with Image.open(io.BytesIO(served.content)) as image:
        assert getattr(image, "n_frames", 1) == 1
    total = sum(path.stat().st_size for path in stored_files(app) + stored_files(app, private=True))
    assert total < 4 * len(data) + 1024 * 1024


# ---------------------------------------------------------------------- polyglots

def gif_with_script_comment() -> bytes:
    return images.save(Image.new("P", (16, 16)), "GIF", comment=SCRIPT)


@pytest.mark.parametrize(("name", "data", "payload"), [
    ("jpeg-html", images.jpeg() + b"<html><body>" + SCRIPT + b"</body></html>", SCRIPT),
    ("png-php", images.png() + PHP, PHP),
    ("png-html", images.png() + SCRIPT, SCRIPT),
    ("gif-comment-js", gif_with_script_comment(), SCRIPT),
    ("gif-js", b"GIF89a=1;/*" + images.save(Image.new("P", (16, 16)), "GIF")[11:] + b"*/" + SCRIPT,
     SCRIPT),
])
async def test_a_polyglot_is_reencoded_and_its_payload_never_served(
        app: Starlette, alice_api: httpx.AsyncClient, client: httpx.AsyncClient,
        name: str, data: bytes, payload: bytes) -> None:
    response = await upload(alice_api, data, name=f"{name}.html", content_type="text/html")
    assert response.status_code in (202, 422), response.text
    if response.status_code == 422:
        await nothing_stored(app)
        return
    await run_protect(app)
    entity = (await alice_api.get(f"/api/v1/media/{response.json()['id']}")).json()
    assert entity["url"] and entity["preview_url"], entity
    for url in (entity["url"], entity["preview_url"]):
        served = await client.get(_path(url))
        assert served.status_code == 200
        assert served.headers["content-type"] in ("image/jpeg", "image/png", "image/webp",
                                                   "image/gif", "image/avif")
        assert served.headers["x-content-type-options"] == "nosniff"
        assert payload not in served.content and b"<script" not in served.content
        assert not _path(url).endswith((".html", ".php", ".js", ".svg"))
    for path in stored_files(app):  # nothing public keeps the payload either
        assert payload not in path.read_bytes()


@pytest.mark.parametrize(("data", "content_type"), [
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/svg+xml"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
     "image/svg+xml"),
    (b"<html><body>" + SCRIPT + b"</body></html>", "image/png"),
    (b"%PDF-1.4\n" + SCRIPT, "image/jpeg"),
])
async def test_svg_and_html_are_refused(app: Starlette, alice_api: httpx.AsyncClient,
                                        data: bytes, content_type: str) -> None:
    response = await upload(alice_api, data, name="picture.svg", content_type=content_type)
    assert response.status_code == 422
    assert response.json()["error"].startswith("Validation failed: File content type is invalid")
    await nothing_stored(app)


# ------------------------------------------------------------------ path traversal

@pytest.mark.parametrize("filename", [
    "../../../../etc/passwd.png", "..%2f..%2fescape.png", "..\\..\\escape.png",
    "/etc/cron.d/evil.png", "a/../../b.png", "%2e%2e%2fx.png", "x.png\x00.html",
])
async def test_an_upload_filename_never_reaches_a_stored_path(
        app: Starlette, alice_api: httpx.AsyncClient, filename: str) -> None:
    response = await upload(alice_api, images.png(), name=filename, content_type="image/png")
    assert response.status_code in (202, 400, 422), response.text
    if response.status_code != 202:
        await nothing_stored(app)
        return
    await run_protect(app)
    root = app.state.easel.storage.root.resolve()
    for path in stored_files(app) + stored_files(app, private=True):
        assert path.resolve().is_relative_to(root)
        assert "passwd" not in str(path) and "escape" not in str(path) and "evil" not in str(path)
    entity = (await alice_api.get(f"/api/v1/media/{response.json()['id']}")).json()
    assert ".." not in entity["url"] and "%2" not in entity["url"]


@pytest.mark.parametrize("path", [
    "/system/..%2f..%2fprivate/originals/aa/bb/x.jpg",
    "/system/media/%2e%2e/%2e%2e/private/originals/aa/bb/x.jpg",
    "/system/media/%252e%252e/%252e%252e/private/originals/aa/bb/x.jpg",
    "/system/media/..%5c..%5cprivate%5coriginals%5caa%5cbb%5cx.jpg",
    "/system/media/..\\..\\private\\originals\\aa\\bb\\x.jpg",
    "/system/private/originals/aa/bb/x.jpg",
    "/system//private/originals/aa/bb/x.jpg",
    "/system/media/aa/bb/x.jpg%00.png",
    "/system/%c0%ae%c0%ae/private/originals/aa/bb/x.jpg",
])
async def test_system_paths_never_escape_the_public_root(
        app: Starlette, client: httpx.AsyncClient, path: str) -> None:
    await app.state.easel.storage.put("originals/aa/bb/x.jpg", images.jpeg(), private=True)
    response = await client.get(path)
    assert response.status_code in (400, 404), response.text
    assert response.content != images.jpeg() and b"\xff\xd8" not in response.content[:2]


@pytest.mark.parametrize("media_id", ["..%2f..%2fx", "%2e%2e", "1%2f..%2f2", "-1", "1e3",
                                      "99999999999999999999999"])
async def test_a_traversal_media_id_is_not_found(alice_api: httpx.AsyncClient, media_id: str) -> None:
    for method, path in (("GET", f"/api/v1/media/{media_id}"), ("PUT", f"/api/v1/media/{media_id}"),
                         ("GET", f"/api/v1/easel/media/{media_id}/original")):
        response = await alice_api.request(method, path)
        assert response.status_code in (400, 404, 422), (path, response.text)
        assert "error" in response.json()


@pytest.mark.parametrize("field", ["avatar", "header"])
@pytest.mark.parametrize("data", [images.png_bomb(), gif_bomb(), webp_bomb(), jpeg_bomb(),
                                  b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'],
                         ids=["png", "gif", "webp", "jpeg", "svg"])
async def test_a_bomb_or_svg_as_avatar_or_header_is_refused(
        app: Starlette, alice_api: httpx.AsyncClient, field: str, data: bytes) -> None:
    before = (await alice_api.get("/api/v1/accounts/verify_credentials")).json()
    response = await alice_api.patch("/api/v1/accounts/update_credentials",
                                     files={field: ("face.png", data, "image/png")})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("Validation failed")
    assert stored_files(app) == [] and stored_files(app, private=True) == []
    after = (await alice_api.get("/api/v1/accounts/verify_credentials")).json()
    assert after[field] == before[field]


# -------------------------------------------------------- studio uploads and exports

@pytest.fixture
async def alice_web(app: Starlette, client: httpx.AsyncClient,
                    alice: User) -> AsyncIterator[httpx.AsyncClient]:
    async with await _browser(app, client, alice) as browser:
        yield browser


async def test_studio_names_never_reach_stored_paths_or_the_export(
        app: Starlette, alice_web: httpx.AsyncClient) -> None:
    """A studio upload named ``../../…`` with a ``../`` title: every stored file stays under
    the storage root, and the archive's member names are the server's own (no ``..``, no
    absolute path, nothing of the client's names)."""
    response = await post_upload(alice_web, {"title": "../../../etc/cron.d/x", "alt": "..\\..\\a",
                                             "tags_medium": "Ink"},
                                 _files(("../../../../etc/passwd.png", images.png((32, 32)))))
    assert response.status_code == 303, response.text
    await run_protect(app)
    root = app.state.easel.storage.root.resolve()
    for path in stored_files(app) + stored_files(app, private=True):
        assert path.resolve().is_relative_to(root) and "passwd" not in str(path)
    archive = await alice_web.get("/studio/export/archive.zip")
    assert archive.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert any(name.startswith("originals/") for name in names)
    for name in names:
        assert not name.startswith(("/", "\\")) and ".." not in name and "passwd" not in name
        assert "cron" not in name


@pytest.mark.parametrize("path", [
    "/studio/export/..%2f..%2fetc%2fpasswd.csv", "/studio/export/%2e%2e.csv",
    "/studio/export/../../etc/passwd.csv", "/studio/export/following_accounts%00.csv",
    "/studio/export/passwords.csv",
])
async def test_a_traversal_export_name_is_not_found(alice_web: httpx.AsyncClient, path: str) -> None:
    response = await alice_web.get(path)
    assert response.status_code in (400, 404), response.text
    assert "root:" not in response.text
