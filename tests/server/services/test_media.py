"""The media service: accepting uploads, updating them, and profile images."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select
from starlette.applications import Starlette

from server.limits import AVATAR_SIZE, HEADER_SIZE, PROFILE_IMAGE_SIZE_LIMIT
from server.models import Account, Job, MediaAttachment, MediaState, ProtectionState, Status, User
from server.services.errors import NotFound, ValidationFailed
from server.services.media import create_media, parse_focus, process_profile_image, update_media
from tests.protect import images
from tests.protect.conftest import stored_files


async def _count(app: Starlette, model: type) -> int:
    async with app.state.easel.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_an_upload_is_stored_privately_and_queued(app: Starlette, alice: User) -> None:
    state = app.state.easel
    data = images.jpeg()
    async with state.db.session() as session:
        account = await session.get(Account, alice.account_id)
        media = await create_media(session, state, account, data, description="A red square",
                                   focus="0.5,-0.25")
    assert media.state == MediaState.PROCESSING and media.protection == ProtectionState.PENDING
    assert media.original_content_type == "image/jpeg" and media.original_size == len(data)
    assert (media.focus_x, media.focus_y) == (0.5, -0.25) and media.description == "A red square"
    assert media.original_key is not None and media.original_key.startswith("originals/")
    assert await state.storage.get(media.original_key, private=True) == data
    assert not await state.storage.exists(media.original_key)  # not public
    assert media.file_key is None and stored_files(app) == []
    async with state.db.session() as session:
        job = await session.scalar(select(Job).where(Job.ref == str(media.id)))
        assert job is not None and job.kind == "protect_media" and job.queue == "protect"


@pytest.mark.parametrize(("data", "message"), [
    (b"plain text", "content type is invalid"),
    (images.png_bomb(), "Image is too large: 20000×20000 pixels"),
    (images.truncated_jpeg(), "Could not read the image"),
])
async def test_a_bad_upload_writes_nothing(app: Starlette, alice: User, data: bytes, message: str) -> None:
    state = app.state.easel
    async with state.db.session() as session:
        account = await session.get(Account, alice.account_id)
        with pytest.raises(ValidationFailed, match=message):
            await create_media(session, state, account, data)
    assert await _count(app, MediaAttachment) == 0 and await _count(app, Job) == 0
    assert stored_files(app, private=True) == []


@pytest.mark.parametrize("focus", ["1.5,0", "a,b", "0.5", "0,0,0", "nan,0"])
def test_a_focus_must_be_two_numbers_within_the_frame(focus: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_focus(focus)


def test_a_focus_may_be_left_out() -> None:
    assert parse_focus(None) is None and parse_focus(" ") is None
    assert parse_focus("-1, 1") == (-1.0, 1.0)


async def test_media_is_updated_only_by_its_owner_and_only_before_publishing(
        app: Starlette, alice: User, bob: User) -> None:
    state = app.state.easel
    async with state.db.session() as session:
        alice_account = await session.get(Account, alice.account_id)
        bob_account = await session.get(Account, bob.account_id)
        media = await create_media(session, state, alice_account, images.png())
        updated = await update_media(session, alice_account, media.id, description="Green",
                                     focus="0.1,0.2")
        assert (updated.description, updated.focus_x, updated.focus_y) == ("Green", 0.1, 0.2)
        with pytest.raises(NotFound):
            await update_media(session, bob_account, media.id, description="mine now")
        with pytest.raises(ValidationFailed, match="too long"):
            await update_media(session, alice_account, media.id, description="x" * 1501)
        status = Status(account_id=alice.account_id, uri="https://easel.test/s/2", published=False)
        session.add(status)
        await session.flush()
        media.status_id = status.id
        await session.commit()
        await update_media(session, alice_account, media.id, description="still editable")
        status.published = True
        await session.commit()
        with pytest.raises(NotFound):
            await update_media(session, alice_account, media.id, description="too late")


@pytest.mark.parametrize(("purpose", "size"), [("avatar", AVATAR_SIZE), ("header", HEADER_SIZE)])
async def test_profile_images_are_cropped_to_size_and_public(
        app: Starlette, purpose: str, size: tuple[int, int]) -> None:
    storage = app.state.easel.storage
    key = await process_profile_image(storage, images.sideways_jpeg_with_gps(), purpose)
    assert key.startswith(f"{purpose}s/")
    data = await storage.get(key)
    images.assert_no_metadata(data)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == size


async def test_a_transparent_avatar_stays_transparent(app: Starlette) -> None:
    storage = app.state.easel.storage
    key = await process_profile_image(storage, images.transparent_png(), "avatar")
    assert key.endswith(".webp")
    assert images.colour_at(await storage.get(key), (0.1, 0.5))[3] == 0


@pytest.mark.parametrize(("data", "message"), [
    (b"GIF89a but not really", "Avatar: Could not read the image"),
    (b"hello", "Avatar content type is invalid"),
    (b"\xff\xd8\xff" + b"\0" * PROFILE_IMAGE_SIZE_LIMIT, "Avatar file size must be less than 8 MB"),
])
async def test_a_bad_profile_image_is_a_validation_error(app: Starlette, data: bytes, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        await process_profile_image(app.state.easel.storage, data, "avatar")
    assert stored_files(app) == []
