"""Blurhash placeholders that need no inline style and no JavaScript.

A page must show something the shape and colour of an image before the image loads, and
the CSP allows neither ``style=""`` nor scripts. So the blurhash is decoded here, on the
server, to a tiny PNG (a few hundred bytes) sent as a ``data:`` URI in an ``<img>`` that
CSS places beneath the real image and stretches to its box (``.frame .placeholder``).
Decoding is pure Python (the ``blurhash`` package) and Pillow; results are cached, since
the same images appear on many pages.
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache

import blurhash
from PIL import Image

# The decoded image's longer side: a blurhash holds at most 9×9 components, so a larger
# decode adds bytes, not detail (the browser smooths the upscale).
PLACEHOLDER_SIZE = 16
MAX_BLURHASH_LENGTH = 4 + 2 * 81


def placeholder_size(width: int | None, height: int | None) -> tuple[int, int]:
    """The decoded size for an image of ``width``×``height`` (its aspect, small)."""
    if not width or not height or width <= 0 or height <= 0:
        return PLACEHOLDER_SIZE, PLACEHOLDER_SIZE
    if width >= height:
        return PLACEHOLDER_SIZE, max(1, round(PLACEHOLDER_SIZE * height / width))
    return max(1, round(PLACEHOLDER_SIZE * width / height)), PLACEHOLDER_SIZE


@lru_cache(maxsize=4096)
def _decode(hash_text: str, width: int, height: int) -> str | None:
    try:
        rows = blurhash.decode(hash_text, width, height)
    except (ValueError, IndexError, KeyError, TypeError):
        return None  # a remote server's malformed blurhash: no placeholder, no error
    pixels = bytes(max(0, min(255, int(c))) for row in rows for pixel in row for c in pixel)
    image = Image.frombytes("RGB", (width, height), pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def placeholder_uri(hash_text: str | None, width: int | None = None,
                    height: int | None = None) -> str | None:
    """A ``data:image/png`` URI of the blurhash at the image's aspect, or None."""
    if not hash_text or len(hash_text) > MAX_BLURHASH_LENGTH:
        return None
    w, h = placeholder_size(width, height)
    return _decode(hash_text, w, h)
