"""Media storage: the local directory and S3-compatible object storage pass the same tests.

The S3 backend talks to moto's standalone server on loopback (a real S3 API over HTTP; no
real S3-compatible server installs here): the storage code only knows the endpoint URL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from server import storage as storage_module
from server.ids import utcnow
from server.settings import Settings
from server.storage import LocalStorage, S3Storage, Storage, StorageError, media_storage, new_key
from tests.conftest import DOMAIN
from tests.protect import images
from tests.protect.conftest import later_runner, run_protect, upload

boto3 = pytest.importorskip("boto3")
KEY_ID, SECRET = "easel-test", "easel-test-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on a loopback port, for this module."""
    pytest.importorskip("moto.server")
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET})
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    name = f"easel-{abs(hash(request.node.nodeid)) % 10**10}"
    _client(s3_endpoint).create_bucket(Bucket=name)
    return name


def _s3(endpoint: str, bucket: str, **options: Any) -> S3Storage:
    return S3Storage(bucket=bucket, base_url=f"https://{DOMAIN}", endpoint_url=endpoint,
                     region="us-east-1", access_key_id=KEY_ID, secret_access_key=SECRET, **options)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "media", f"https://{DOMAIN}")
    endpoint = request.getfixturevalue("s3_endpoint")
    return _s3(endpoint, request.getfixturevalue("bucket"))


# ----------------------------------------------------------------- the same tests for both

async def test_a_file_is_stored_read_and_deleted(storage: Storage) -> None:
    key = new_key("media", "webp")
    assert not await storage.exists(key)
    await storage.put(key, b"RIFF-picture")
    assert await storage.exists(key)
    assert await storage.get(key) == b"RIFF-picture"
    await storage.put(key, b"RIFF-replaced")
    assert await storage.get(key) == b"RIFF-replaced"
    await storage.delete(key)
    assert not await storage.exists(key)
    with pytest.raises(StorageError, match="no such file"):
        await storage.get(key)
    await storage.delete(key)  # deleting what is gone is not an error


async def test_private_and_public_files_are_apart(storage: Storage) -> None:
    key = new_key("originals", "png")
    await storage.put(key, b"original", private=True)
    assert await storage.exists(key, private=True)
    assert not await storage.exists(key)
    with pytest.raises(StorageError):
        await storage.get(key)  # the public side has no such file
    assert await storage.get(key, private=True) == b"original"
    await storage.delete(key)  # a public delete leaves the private file
    assert await storage.get(key, private=True) == b"original"
    await storage.delete(key, private=True)
    assert not await storage.exists(key, private=True)


@pytest.mark.parametrize("key", ["../escape.png", "media/../../x.png", "Media/UPPER.png",
                                 "/abs/olute.png", "no-extension", "media/a b.png", ""])
async def test_keys_that_are_not_easels_own_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(StorageError, match="invalid storage key"):
        await storage.put(key, b"x")
    with pytest.raises(StorageError, match="invalid storage key"):
        await storage.get(key, private=True)
    with pytest.raises(StorageError, match="invalid storage key"):
        storage.public_url(key)


async def test_public_urls_are_served_by_easel(storage: Storage) -> None:
    key = new_key("media", "jpg")
    assert storage.public_url(key) == f"https://{DOMAIN}/system/{key}"


async def test_files_are_listed_by_prefix_with_their_size_and_age(storage: Storage) -> None:
    media, avatar, original = new_key("media", "webp"), new_key("avatars", "png"), new_key("originals", "png")
    await storage.put(media, b"12345")
    await storage.put(avatar, b"1")
    await storage.put(original, b"123", private=True)
    listed = await storage.list_files("media")
    assert [(f.key, f.size) for f in listed] == [(media, 5)]
    assert abs((listed[0].modified - utcnow()).total_seconds()) < 120
    assert [f.key for f in await storage.list_files("originals", private=True)] == [original]
    assert await storage.list_files("originals") == []
    assert await storage.list_files("headers") == []
    with pytest.raises(StorageError, match="invalid storage prefix"):
        await storage.list_files("../private")


# ----------------------------------------------------------------------------- S3 only

async def test_objects_carry_their_type_and_caching_and_private_ones_are_never_cached(
        s3_endpoint: str, bucket: str) -> None:
    storage = _s3(s3_endpoint, bucket)
    public, private = new_key("media", "webp"), new_key("originals", "jpg")
    await storage.put(public, b"p")
    await storage.put(private, b"o", private=True)
    client = _client(s3_endpoint)
    head = client.head_object(Bucket=bucket, Key=f"public/{public}")
    assert head["ContentType"] == "image/webp" and "immutable" in head["CacheControl"]
    head = client.head_object(Bucket=bucket, Key=f"private/{private}")
    assert head["ContentType"] == "image/jpeg" and head["CacheControl"] == "private, no-store"


async def test_a_cdn_url_serves_only_the_public_prefix(s3_endpoint: str, bucket: str) -> None:
    storage = _s3(s3_endpoint, bucket, public_url="https://cdn.art.example/easel/")
    key = new_key("media", "jpg")
    assert storage.public_url(key) == f"https://cdn.art.example/easel/public/{key}"


async def test_an_unreachable_store_is_a_storage_error(tmp_path: Path) -> None:
    storage = _s3(f"http://127.0.0.1:{_free_port()}", "nowhere")
    with pytest.raises(StorageError, match="could not store"):
        await storage.put(new_key("media", "jpg"), b"x")
    with pytest.raises(StorageError, match="could not read"):
        await storage.get(new_key("media", "jpg"))


async def test_a_missing_bucket_is_a_storage_error(s3_endpoint: str) -> None:
    storage = _s3(s3_endpoint, "no-such-bucket")
    with pytest.raises(StorageError, match="could not store"):
        await storage.put(new_key("media", "jpg"), b"x")


def test_the_settings_choose_the_backend(tmp_path: Path) -> None:
    local = Settings(domain=DOMAIN, data_dir=tmp_path)
    assert isinstance(media_storage(local), LocalStorage)
    s3 = local.with_changes(storage="s3", s3_bucket="art", s3_endpoint="http://127.0.0.1:9")
    chosen = media_storage(s3)
    assert isinstance(chosen, S3Storage) and chosen.bucket == "art"


# ------------------------------------------------------- the whole media flow on S3

@pytest.fixture
def cdn_url() -> str:
    return ""  # Easel serves the bucket's public files itself; a test may name a CDN


@pytest.fixture
def settings(settings: Settings, s3_endpoint: str, bucket: str, cdn_url: str) -> Settings:
    return settings.with_changes(storage="s3", s3_bucket=bucket, s3_endpoint=s3_endpoint,
                                 s3_region="us-east-1", s3_access_key_id=KEY_ID,
                                 s3_secret_access_key=SECRET, s3_public_url=cdn_url)


def _objects(endpoint: str, bucket: str) -> list[str]:
    listed = _client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


async def test_uploads_renditions_originals_and_deletion_go_through_the_bucket(
        app: Starlette, alice_api: httpx.AsyncClient, client: httpx.AsyncClient,
        s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    assert isinstance(app.state.easel.storage, S3Storage)
    uploaded = await upload(alice_api, images.sideways_jpeg_with_gps())
    assert uploaded.status_code == 202
    media_id = uploaded.json()["id"]
    originals = _objects(s3_endpoint, bucket)
    assert len(originals) == 1 and originals[0].startswith("private/")
    await run_protect(app)

    entity = (await alice_api.get(f"/api/v1/media/{media_id}")).json()
    path = entity["url"][len(f"https://{DOMAIN}"):]
    assert path.startswith("/system/")
    served = await client.get(path)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-robots-tag"] == "noai, noimageai"
    images.assert_only_optout_metadata(served.content)
    head = await client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert (await client.get("/system/media/00/00/0000.jpg")).status_code == 404

    objects = _objects(s3_endpoint, bucket)
    assert any(name.startswith("public/") for name in objects)
    # The original is the owner's alone, read from the bucket's private side.
    original = await alice_api.get(f"/api/v1/easel/media/{media_id}/original")
    assert original.status_code == 200 and original.content
    assert "no-store" in original.headers["cache-control"]
    private_key = next(name for name in objects if name.startswith("private/"))
    assert (await client.get("/system/" + private_key.removeprefix("private/"))).status_code == 404

    # Posted, deleted, and a day later purged: every object of it leaves the bucket.
    status = await alice_api.post("/api/v1/statuses", data={"status": "s3", "media_ids[]": media_id})
    assert status.status_code == 200
    assert (await alice_api.delete(f"/api/v1/statuses/{status.json()['id']}")).status_code == 200
    assert await later_runner(app, minutes=24 * 60 + 1).run_due(["default"]) == 1
    assert _objects(s3_endpoint, bucket) == []


async def test_the_bucket_answers_byte_ranges_as_local_files_do(
        app: Starlette, alice_api: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    # A video player seeks with ranges (Safari plays no video without them).
    uploaded = await upload(alice_api, images.sideways_jpeg_with_gps())
    await run_protect(app)
    entity = (await alice_api.get(f"/api/v1/media/{uploaded.json()['id']}")).json()
    path = entity["url"][len(f"https://{DOMAIN}"):]
    whole = await client.get(path)
    size = len(whole.content)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes" and size > 20

    first = await client.get(path, headers={"Range": "bytes=0-9"})
    assert first.status_code == 206 and first.content == whole.content[:10]
    assert first.headers["content-range"] == f"bytes 0-9/{size}"
    assert first.headers["x-robots-tag"] == "noai, noimageai"
    last = await client.get(path, headers={"Range": "bytes=-5"})
    assert last.status_code == 206 and last.content == whole.content[-5:]
    rest = await client.get(path, headers={"Range": f"bytes={size - 3}-"})
    assert rest.status_code == 206 and rest.content == whole.content[-3:]
    past = await client.get(path, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    # Several ranges, or one that is not well formed: the whole file, as RFC 9110 allows.
    for odd in ("bytes=0-1,4-5", "bytes=9-2", "lines=1-2", "bytes=-"):
        answer = await client.get(path, headers={"Range": odd})
        assert answer.status_code == 200 and answer.content == whole.content, odd
    head = await client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)
    assert (await client.get("/system/media/00/00/0000.jpg",
                             headers={"Range": "bytes=0-1"})).status_code == 404


async def test_a_large_object_is_streamed_a_chunk_at_a_time(
        s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A 40 MB video read by many players at once must not be held whole per request.
    storage = _s3(s3_endpoint, bucket)
    monkeypatch.setattr(storage_module, "STREAM_CHUNK", 64 * 1024)
    data = os.urandom(300 * 1024)
    await storage.put("media/aa/bb/video.mp4", data)

    stream = await storage.open_public("media/aa/bb/video.mp4")
    chunks = [chunk async for chunk in stream.chunks]
    assert stream.length == len(data) and stream.content_range is None
    assert b"".join(chunks) == data and max(map(len, chunks)) <= 64 * 1024 and len(chunks) >= 5

    part = await storage.open_public("media/aa/bb/video.mp4", "bytes=100000-")
    assert part.length == len(data) - 100000
    assert part.content_range == f"bytes 100000-{len(data) - 1}/{len(data)}"
    assert b"".join([chunk async for chunk in part.chunks]) == data[100000:]

    # A player that goes away mid-file: the stream is closed, the rest never read.
    left = await storage.open_public("media/aa/bb/video.mp4")
    first = await anext(left.chunks)
    await left.chunks.aclose()  # type: ignore[attr-defined]
    assert len(first) <= 64 * 1024
    with pytest.raises(StorageError):
        await storage.open_public("media/aa/bb/missing.mp4")


def _image_sources(response: httpx.Response) -> list[str]:
    policy = dict(part.strip().split(" ", 1) for part in
                  response.headers["content-security-policy"].split(";"))
    return policy["img-src"].split()


@pytest.mark.parametrize("cdn_url", ["https://cdn.art.example/easel"])
async def test_pages_allow_the_images_a_cdn_serves(
        app: Starlette, alice_api: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    # The works, avatars and headers of this instance come from the CDN: every page's
    # policy must allow it, or browsers show none of them.
    uploaded = await upload(alice_api, images.sideways_jpeg_with_gps())
    await run_protect(app)
    status = await alice_api.post("/api/v1/statuses", data={
        "status": "served by a CDN", "media_ids[]": uploaded.json()["id"]})
    assert status.status_code == 200
    work = await client.get(f"/@alice/{status.json()['id']}")
    assert work.status_code == 200
    assert 'src="https://cdn.art.example/easel/public/media/' in work.text
    assert _image_sources(work) == ["'self'", "data:", "https://cdn.art.example"]
    for path in ("/", "/@alice", "/auth/sign_in"):
        page = await client.get(path)
        assert page.status_code == 200
        assert "https://cdn.art.example" in _image_sources(page), path


async def test_pages_allow_only_themselves_when_easel_serves_the_bucket(
        app: Starlette, client: httpx.AsyncClient) -> None:
    page = await client.get("/auth/sign_in")
    assert _image_sources(page) == ["'self'", "data:"]
