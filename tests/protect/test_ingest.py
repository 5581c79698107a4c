"""Ingest: what an upload must pass, and the upright, metadata-free sRGB image it becomes."""

from __future__ import annotations

import io

import pytest
from PIL import Image, features

from protect.ingest import (
    AVIF,
    GIF,
    JPEG,
    PNG,
    WEBP,
    ImageRejected,
    decode_upload,
    inspect_upload,
    sniff_type,
)
from server.limits import IMAGE_MATRIX_LIMIT
from tests.protect import images


def test_the_type_comes_from_the_bytes() -> None:
    assert sniff_type(images.jpeg()) is JPEG
    assert sniff_type(images.png()) is PNG
    assert sniff_type(images.animated_gif()) is GIF
    assert sniff_type(images.save(Image.new("RGB", (8, 8)), "WEBP")) is WEBP
    assert sniff_type(b"hello, I am text pretending to be a .png") is None
    assert sniff_type(b"") is None


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF codec")
def test_avif_is_recognised_and_decoded() -> None:
    data = images.avif()
    assert sniff_type(data) is AVIF
    image, info = decode_upload(data)
    assert info.type is AVIF and image.size == (48, 32) and image.mode == "RGB"


def test_a_text_file_is_not_an_image() -> None:
    with pytest.raises(ImageRejected, match="content type is invalid"):
        inspect_upload(b"just some text, named upload.png by its sender\n")


def test_a_file_over_the_size_limit_is_refused_before_anything_else() -> None:
    with pytest.raises(ImageRejected, match="File file size must be less than 1 MB"):
        inspect_upload(b"\xff\xd8\xff" + b"\x00" * (1024 * 1024), size_limit=1024 * 1024)


def test_an_empty_file_is_blank() -> None:
    with pytest.raises(ImageRejected, match="can't be blank"):
        inspect_upload(b"")


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = images.png_bomb(20000, 20000)
    assert len(bomb) < 1000
    with pytest.raises(ImageRejected) as refused:
        inspect_upload(bomb)
    assert refused.value.message == (
        f"Image is too large: 20000×20000 pixels (the limit is {IMAGE_MATRIX_LIMIT:,} pixels)")


def test_the_pixel_limit_is_ours_not_pillows_global(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # someone turned Pillow's guard off
    with pytest.raises(ImageRejected, match="6000×6000 pixels"):
        inspect_upload(images.png_bomb(6000, 6000))
    # and a stricter local limit applies even to a small, valid image
    with pytest.raises(ImageRejected, match="64×48 pixels"):
        inspect_upload(images.jpeg((64, 48)), pixel_limit=1000)


def test_a_truncated_file_cannot_be_read() -> None:
    with pytest.raises(ImageRejected, match="Could not read the image"):
        inspect_upload(images.truncated_jpeg())
    with pytest.raises(ImageRejected, match="Could not read the image"):
        inspect_upload(images.png()[:40])


def test_a_corrupt_header_cannot_be_read() -> None:
    with pytest.raises(ImageRejected, match="Could not read the image"):
        inspect_upload(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)


def test_exif_orientation_is_applied_and_metadata_dropped() -> None:
    image, info = decode_upload(images.sideways_jpeg_with_gps())
    assert (info.width, info.height) == (80, 40)
    assert image.size == (40, 80)  # upright
    top, bottom = image.getpixel((20, 5)), image.getpixel((20, 75))
    assert top[0] > 200 and top[2] < 50       # red on top
    assert bottom[2] > 200 and bottom[0] < 50  # blue below
    assert image.info == {}
    assert len(image.getexif()) == 0


def test_transparency_is_kept() -> None:
    image, _ = decode_upload(images.transparent_png())
    assert image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0 and image.getpixel((63, 0))[3] == 255


def test_an_unused_alpha_channel_is_dropped() -> None:
    image, _ = decode_upload(images.save(Image.new("RGBA", (8, 8), (1, 2, 3, 255)), "PNG"))
    assert image.mode == "RGB"


def test_cmyk_becomes_rgb() -> None:
    image, _ = decode_upload(images.cmyk_jpeg())
    assert image.mode == "RGB"
    red, green, blue = image.getpixel((10, 10))
    assert red > 200 and green < 60 and blue < 60


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    image, _ = decode_upload(images.sixteen_bit_png())
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((31, 0)) == (0, 0, 0)


def test_an_icc_profile_is_converted_to_srgb_and_not_kept() -> None:
    image, _ = decode_upload(images.srgb_tagged_png())
    assert "icc_profile" not in image.info
    assert all(abs(a - b) <= 2 for a, b in zip(image.getpixel((5, 5)), (10, 120, 230), strict=True))


def test_palette_and_greyscale_images_become_rgb() -> None:
    palette = Image.new("RGB", (16, 16), (0, 128, 255)).convert("P")
    grey = Image.new("L", (16, 16), 77)
    for data in (images.save(palette, "PNG"), images.save(grey, "PNG"), images.save(grey, "JPEG")):
        image, _ = decode_upload(data)
        assert image.mode == "RGB"


def test_an_animated_gif_gives_its_first_frame() -> None:
    image, info = decode_upload(images.animated_gif())
    assert info.animated and info.type is GIF
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (255, 0, 0)


def test_an_animated_webp_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((0, 0, 255), (0, 255, 0))]
    data = images.save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    image, info = decode_upload(data)
    assert info.animated and info.type is WEBP
    assert image.getpixel((5, 5)) == (0, 0, 255)


def test_decoded_images_are_plain_pillow_images() -> None:
    image, _ = decode_upload(images.jpeg())
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    assert buffer.getvalue().startswith(b"\x89PNG")
