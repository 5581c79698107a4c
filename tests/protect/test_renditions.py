"""Renditions: sizes within the limits, the right formats, no metadata, blurhash and meta."""

from __future__ import annotations

import io

import blurhash
from PIL import Image

from protect.ingest import decode_upload
from protect.renditions import fit_edge, fit_pixels, make_renditions
from server.limits import FULL_MAX_EDGE, SMALL_MAX_PIXELS, THUMB_MAX_EDGE
from tests.protect import images


def test_sizes_shrink_but_never_grow() -> None:
    assert fit_edge((100, 50), 400) == (100, 50)
    assert fit_edge((8000, 2000), 4096) == (4096, 1024)
    assert fit_pixels((100, 100), 10_000) == (100, 100)
    width, height = fit_pixels((4000, 3000), SMALL_MAX_PIXELS)
    assert width * height <= SMALL_MAX_PIXELS and abs(width / height - 4 / 3) < 0.01


def test_a_large_photo_gets_three_renditions_within_the_limits() -> None:
    photo = Image.effect_noise((5000, 2500), 40).convert("RGB")
    result = make_renditions(photo)
    for rendition in result.all():
        with Image.open(io.BytesIO(rendition.data)) as opened:
            assert opened.format == "JPEG" and opened.size == (rendition.width, rendition.height)
        images.assert_no_metadata(rendition.data)
    assert (result.full.width, result.full.height) == (FULL_MAX_EDGE, FULL_MAX_EDGE // 2)
    assert result.small.width * result.small.height <= SMALL_MAX_PIXELS
    assert result.small.width * result.small.height > SMALL_MAX_PIXELS * 0.95
    assert max(result.thumb.width, result.thumb.height) <= THUMB_MAX_EDGE
    assert result.meta == {
        "original": {"width": 4096, "height": 2048, "size": "4096x2048", "aspect": 2.0},
        "small": {"width": result.small.width, "height": result.small.height,
                  "size": f"{result.small.width}x{result.small.height}",
                  "aspect": result.small.width / result.small.height},
    }


def test_the_blurhash_is_valid_and_describes_the_image() -> None:
    result = make_renditions(Image.new("RGB", (300, 200), (220, 30, 30)))
    assert len(result.blurhash) == 36  # 4×4 components: 6 + 2 × 15 characters
    pixels = blurhash.decode(result.blurhash, 4, 4)
    red, green, blue = pixels[2][2][:3]
    assert red > 150 and green < 90 and blue < 90


def test_transparent_images_stay_transparent_as_webp() -> None:
    image, _ = decode_upload(images.transparent_png((600, 600)))
    result = make_renditions(image)
    for rendition in result.all():
        assert rendition.content_type == "image/webp"
        assert images.colour_at(rendition.data, (0.1, 0.5))[3] == 0
        assert images.colour_at(rendition.data, (0.9, 0.5))[3] == 255


def test_renditions_of_a_sideways_gps_photo_are_upright_and_clean() -> None:
    image, _ = decode_upload(images.sideways_jpeg_with_gps())
    result = make_renditions(image)
    for rendition in result.all():
        images.assert_no_metadata(rendition.data)
        assert (rendition.width, rendition.height) == (40, 80)
        top = images.colour_at(rendition.data, (0.5, 0.1))
        bottom = images.colour_at(rendition.data, (0.5, 0.9))
        assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
