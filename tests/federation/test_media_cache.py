"""The remote media cache (federation.media_cache), from a signed Create to /system/.

Given a remote actor who delivers a note with attachments, when the federation queue runs,
I expect each attachment fetched once by the ``cache_remote_media`` job through the safe
client, stored under ``cache/`` (in the local directory or an S3 bucket) and shown by the
client API from /system/ with the original as ``remote_url``; until then, and whenever
the file is refused (a private address, a type that is not media, too large, too many
pixels, a domain whose media are rejected), the remote URL is shown and nothing is kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from federation.media_cache import CACHE_PREFIX, sniff_media
from protect.prune import CacheLimits, evict_cache
from server.db import Database
from server.models import DomainBlock, Job, JobState, MediaAttachment, User
from server.settings import Settings
from server.storage import S3Storage
from tests.conftest import make_token
from tests.federation.inbox import conftest as inbox_fixtures
from tests.federation.inbox.conftest import BASE, FakeActor, Fediverse, deliver, http, process
from tests.protect import images
from tests.protect.conftest import later_runner
from tests.server.test_storage import KEY_ID, SECRET, bucket, s3_endpoint  # noqa: F401 - fixtures

# The inbox tests' app (its federation context on the fake fediverse, private addresses
# refused as in production) and remote actor.
inbox_app = inbox_fixtures.inbox_app
app_db = inbox_fixtures.app_db
remote_carol = inbox_fixtures.remote_carol

CORPUS = Path(__file__).parent / "corpus"
PICTURE = "https://remote.example/media/heron.png"


@dataclass
class MediaFediverse(Fediverse):
    """The inbox tests' fediverse, which also serves files: URL → answer."""

    files: dict[str, httpx.Response | Callable[[], httpx.Response]] = field(default_factory=dict)
    # Actor uri → its avatar and header URLs (icon, image).
    profile_images: dict[str, tuple[str, str]] = field(default_factory=dict)

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if request.method == "GET" and url in self.profile_images and url in self.actors:
            self.requests.append(request)
            icon, image = self.profile_images[url]
            document = {**self.actors[url].document(),
                        "icon": {"type": "Image", "mediaType": "image/png", "url": icon},
                        "image": {"type": "Image", "mediaType": "image/png", "url": image}}
            return httpx.Response(200, json=document,
                                  headers={"Content-Type": "application/activity+json"})
        answer = self.files.get(url) if request.method == "GET" else None
        if answer is None:
            return super().handler(request)
        self.requests.append(request)
        return answer() if callable(answer) else answer

    def serve_file(self, url: str, data: bytes, content_type: str) -> None:
        self.files[url] = httpx.Response(200, content=data, headers={"Content-Type": content_type})


@pytest.fixture
def fediverse() -> MediaFediverse:
    return MediaFediverse()


@pytest.fixture(params=["local", "s3"])
def storage_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cache_mb() -> int:
    return 1


@pytest.fixture
def settings(settings: Settings, storage_kind: str, cache_mb: int,
             request: pytest.FixtureRequest) -> Settings:
    cached = settings.with_changes(remote_media_cache_mb=cache_mb)
    if storage_kind == "local":
        return cached
    endpoint = request.getfixturevalue("s3_endpoint")
    return cached.with_changes(storage="s3", s3_bucket=request.getfixturevalue("bucket"),
                               s3_endpoint=endpoint, s3_region="us-east-1",
                               s3_access_key_id=KEY_ID, s3_secret_access_key=SECRET)


def note_with(actor: FakeActor, *urls: str, number: int = 1) -> dict[str, Any]:
    """The corpus Mastodon note (it mentions alice), as ``actor``'s, with these attachments."""
    text = (CORPUS / "mastodon_create_note.json").read_text()
    text = text.replace("https://mastodon.example/users/carol", actor.uri)
    note: dict[str, Any] = json.loads(text)["object"]
    note["id"] = f"{actor.uri}/statuses/{number}"
    note.pop("url")
    note["attachment"] = [{"type": "Document", "mediaType": "image/png", "url": url,
                           "name": f"picture {n}"} for n, url in enumerate(urls)]
    return note


async def receive_note(app: Starlette, actor: FakeActor, note: dict[str, Any]) -> None:
    activity = actor.activity("Create", note, to=note["to"], cc=note["cc"])
    response = await deliver(app, actor, activity)
    assert response.status_code == 202, response.text
    await process(app)


async def attachments(app: Starlette, alice: User) -> list[dict[str, Any]]:
    """The media entities of the only status, as alice's client sees them."""
    db: Database = app.state.easel.db
    async with http(app, token=await make_token(db, alice)) as api:
        [status] = (await api.get("/api/v1/timelines/public")).json()
        entity = (await api.get(f"/api/v1/statuses/{status['id']}")).json()
    media: list[dict[str, Any]] = entity["media_attachments"]
    return media


async def media_rows(app: Starlette) -> list[MediaAttachment]:
    async with app.state.easel.db.session() as session:
        return list(await session.scalars(select(MediaAttachment).order_by(MediaAttachment.id)))


async def cache_jobs(app: Starlette) -> list[Job]:
    async with app.state.easel.db.session() as session:
        return list(await session.scalars(select(Job).where(Job.kind == "cache_remote_media")))


async def cached_files(app: Starlette) -> list[str]:
    files = await app.state.easel.storage.list_files(CACHE_PREFIX)
    return sorted(f.key for f in files)


def system_key(url: str) -> str:
    assert url.startswith(f"{BASE}/system/{CACHE_PREFIX}/"), url
    return url.removeprefix(f"{BASE}/system/")


# ------------------------------------------------------------------------ caching

async def test_a_remote_picture_is_cached_once_and_served_from_system(
        inbox_app: Starlette, fediverse: MediaFediverse, remote_carol: FakeActor,
        alice: User) -> None:
    picture = images.png((320, 200))
    fediverse.serve_file(PICTURE, picture, "image/png")
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, PICTURE))

    assert fediverse.fetched(PICTURE) == 1
    [media] = await attachments(inbox_app, alice)
    assert media["remote_url"] == PICTURE
    full, preview = system_key(media["url"]), system_key(media["preview_url"])
    assert full.endswith(".png") and preview.endswith(".jpg") and full != preview
    assert await cached_files(inbox_app) == sorted([full, preview])
    [row] = await media_rows(inbox_app)
    assert row.cache_key == full and row.cached_at is not None
    assert row.cache_size == len(picture) + len(await inbox_app.state.easel.storage.get(preview))
    async with http(inbox_app) as anonymous:
        served = await anonymous.get(media["url"])
        small = await anonymous.get(media["preview_url"])
    assert served.status_code == 200 and served.content == picture
    assert served.headers["content-type"] == "image/png"
    assert small.status_code == 200 and small.headers["content-type"] == "image/jpeg"
    if isinstance(inbox_app.state.easel.storage, S3Storage):
        assert await inbox_app.state.easel.storage.exists(full)
    # The same note again (redelivered, or an Update): nothing fetched twice.
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, PICTURE))
    assert fediverse.fetched(PICTURE) == 1
    assert [j.state for j in await cache_jobs(inbox_app)] == [JobState.DONE]


async def test_an_evicted_copy_shows_the_remote_url_and_is_fetched_again_on_an_update(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor, alice: User) -> None:
    fediverse.serve_file(PICTURE, images.png(), "image/png")
    note = note_with(remote_carol, PICTURE)
    await receive_note(inbox_app, remote_carol, note)
    before = await cached_files(inbox_app)
    async with app_db.session() as session:
        evicted = await evict_cache(session, inbox_app.state.easel.storage, CacheLimits(max_bytes=0))
    assert evicted.over_limit == 1 and await cached_files(inbox_app) == []
    [media] = await attachments(inbox_app, alice)
    assert media["url"] == media["preview_url"] == media["remote_url"] == PICTURE

    note["updated"] = "2030-01-01T00:00:00Z"
    update = remote_carol.activity("Update", note, to=note["to"], cc=note["cc"])
    assert (await deliver(inbox_app, remote_carol, update)).status_code == 202
    await process(inbox_app)
    assert fediverse.fetched(PICTURE) == 2
    [media] = await attachments(inbox_app, alice)
    assert system_key(media["url"]) in await cached_files(inbox_app)
    assert await cached_files(inbox_app) != before


async def test_a_remote_avatar_and_header_are_cached_and_shown_from_system(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor, alice: User) -> None:
    avatar, header = "https://remote.example/avatars/carol.png", "https://remote.example/h.mp4"
    fediverse.profile_images[remote_carol.uri] = (avatar, header)
    fediverse.serve_file(avatar, images.png((120, 120)), "image/png")
    fediverse.serve_file(header, b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "video/mp4")
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, PICTURE))

    assert fediverse.fetched(avatar) == 1 and fediverse.fetched(header) == 1
    async with http(inbox_app, token=await make_token(app_db, alice)) as api:
        [status] = (await api.get("/api/v1/timelines/public")).json()
    account = status["account"]
    assert system_key(account["avatar"]) in await cached_files(inbox_app)
    assert account["avatar_static"] == account["avatar"]
    assert account["header"] == header  # a header that is a video is not an image: not kept
    async with http(inbox_app) as anonymous:
        served = await anonymous.get(account["avatar"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"

    async with app_db.session() as session:
        evicted = await evict_cache(session, inbox_app.state.easel.storage, CacheLimits(max_bytes=0))
    assert evicted.over_limit == 1
    async with http(inbox_app, token=await make_token(app_db, alice)) as api:
        again = (await api.get(f"/api/v1/accounts/{account['id']}")).json()
    assert again["avatar"] == avatar and await cached_files(inbox_app) == []


async def test_until_the_copy_is_stored_the_remote_url_is_shown(
        inbox_app: Starlette, fediverse: MediaFediverse, remote_carol: FakeActor,
        alice: User) -> None:
    fediverse.files[PICTURE] = httpx.Response(503)  # the origin is down for now
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, PICTURE))

    [media] = await attachments(inbox_app, alice)
    assert media["url"] == media["preview_url"] == media["remote_url"] == PICTURE
    [job] = await cache_jobs(inbox_app)
    assert job.state == JobState.QUEUED and job.attempts == 1  # retried later
    assert await cached_files(inbox_app) == []

    fediverse.serve_file(PICTURE, images.jpeg(), "image/jpeg")
    assert await later_runner(inbox_app, minutes=60).run_due(["federation"]) == 1
    [media] = await attachments(inbox_app, alice)
    assert system_key(media["url"]).endswith(".jpg") and media["remote_url"] == PICTURE


async def test_video_and_audio_are_cached_without_a_preview(
        inbox_app: Starlette, fediverse: MediaFediverse, remote_carol: FakeActor,
        alice: User) -> None:
    video = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64
    fediverse.serve_file(PICTURE, video, "video/mp4")
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, PICTURE))

    [media] = await attachments(inbox_app, alice)
    # A note that called it a picture is corrected by the bytes: a video, without a preview.
    assert system_key(media["url"]).endswith(".mp4") and media["type"] == "video"
    assert media["preview_url"] is None
    async with http(inbox_app) as anonymous:
        served = await anonymous.get(media["url"])
    assert served.content == video and served.headers["content-type"] == "video/mp4"


# ----------------------------------------------------------------------- refusals

def _html() -> httpx.Response:
    return httpx.Response(200, content=b"<html>hello</html>", headers={"Content-Type": "text/html"})


def _html_said_to_be_png() -> httpx.Response:
    return httpx.Response(200, content=b"<html><script>x</script></html>",
                          headers={"Content-Type": "image/png"})


def _oversize() -> httpx.Response:  # the per-file cap is the whole cache here: 1 MB
    return httpx.Response(200, content=images.png() + b"\x00" * (1024 * 1024),
                          headers={"Content-Type": "image/png"})


def _pixel_bomb() -> httpx.Response:
    return httpx.Response(200, content=images.png_bomb(), headers={"Content-Type": "image/png"})


def _gone() -> httpx.Response:
    return httpx.Response(404)


@pytest.mark.parametrize("answer", [_html, _html_said_to_be_png, _oversize, _pixel_bomb, _gone])
async def test_what_is_not_acceptable_media_is_not_kept(
        inbox_app: Starlette, fediverse: MediaFediverse, remote_carol: FakeActor,
        alice: User, answer: Callable[[], httpx.Response]) -> None:
    fediverse.files[PICTURE] = answer
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, PICTURE))

    assert fediverse.fetched(PICTURE) == 1  # tried once, not retried: it will not change
    [job] = await cache_jobs(inbox_app)
    assert job.state == JobState.DONE
    [media] = await attachments(inbox_app, alice)
    assert media["url"] == media["remote_url"] == PICTURE
    assert await cached_files(inbox_app) == []
    [row] = await media_rows(inbox_app)
    assert row.cache_key is None and row.cache_size == 0


@pytest.mark.parametrize("url", ["https://private.example/media/a.png",  # resolves to 10.0.0.5
                                 "http://127.0.0.1/media/a.png",
                                 "http://[::1]:8080/media/a.png",
                                 "http://169.254.169.254/latest/meta-data/a.png"])
async def test_a_private_address_is_never_fetched(
        inbox_app: Starlette, fediverse: MediaFediverse, remote_carol: FakeActor,
        alice: User, url: str) -> None:
    fediverse.serve_file(url, images.png(), "image/png")
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, url))

    assert fediverse.fetched(url) == 0
    [media] = await attachments(inbox_app, alice)
    assert media["url"] == media["remote_url"] == url
    assert [j.state for j in await cache_jobs(inbox_app)] == [JobState.DONE]
    assert await cached_files(inbox_app) == []


async def test_media_of_a_domain_whose_media_are_rejected_are_not_fetched(
        inbox_app: Starlette, app_db: Database, fediverse: MediaFediverse,
        remote_carol: FakeActor, alice: User) -> None:
    blocked, allowed = "https://cdn.blocked.example/a.png", "https://cdn.fine.example/b.png"
    for url in (blocked, allowed):
        fediverse.serve_file(url, images.png(), "image/png")
    async with app_db.session() as session:
        session.add(DomainBlock(domain="blocked.example", severity="noop", reject_media=True))
        await session.commit()
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, blocked, allowed))

    assert fediverse.fetched(blocked) == 0 and fediverse.fetched(allowed) == 1
    first, second = await attachments(inbox_app, alice)
    assert first["url"] == blocked
    assert system_key(second["url"]) in await cached_files(inbox_app)


@pytest.mark.parametrize("cache_mb", [0])
async def test_nothing_is_queued_or_fetched_when_the_cache_is_off(
        inbox_app: Starlette, fediverse: MediaFediverse, remote_carol: FakeActor,
        alice: User) -> None:
    fediverse.serve_file(PICTURE, images.png(), "image/png")
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, PICTURE))

    assert fediverse.fetched(PICTURE) == 0 and await cache_jobs(inbox_app) == []
    [media] = await attachments(inbox_app, alice)
    assert media["url"] == media["remote_url"] == PICTURE


# --------------------------------------------------------------------- sniffing

@pytest.mark.parametrize(("data", "kind", "extension"), [
    (images.jpeg(), "image", "jpg"), (images.png(), "image", "png"),
    (images.animated_gif(), "image", "gif"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image", "webp"),
    (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "video", "mp4"),
    (b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00M4A mp42", "audio", "m4a"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", "video", "webm"),
    (b"OggS\x00\x02" + b"\x00" * 20, "audio", "ogg"), (b"ID3\x04\x00" + b"\x00" * 20, "audio", "mp3"),
    (b"fLaC\x00\x00\x00\x22", "audio", "flac"), (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio", "wav"),
])
def test_media_are_known_by_their_bytes(data: bytes, kind: str, extension: str) -> None:
    sniffed = sniff_media(data)
    assert sniffed is not None and (sniffed.kind, sniffed.extension) == (kind, extension)


@pytest.mark.parametrize("data", [b"", b"<html>", b"%PDF-1.7", b"PK\x03\x04", b"#!/bin/sh"])
def test_anything_else_is_not_media(data: bytes) -> None:
    assert sniff_media(data) is None
