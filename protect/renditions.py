"""The public files made from a normalised image: full, small (display) and thumbnail
renditions, their blurhash and Mastodon's ``meta`` sizes.

Renditions are encoded from pixels only, so they carry no EXIF, GPS or XMP of the
upload. Given the artist's ``OptOut`` (``protect/optout_metadata.py``), each one is written
with the opt-out signals instead: XMP, EXIF Artist/Copyright and a signed C2PA manifest —
re-attached to every size, since a re-save keeps none of them. Without it (the
verification's clean comparison renditions) they carry no metadata at all. Opaque images
become JPEG (what every fediverse server can show); images with transparency become WebP.
Never imports torch.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import blurhash
from PIL import Image

from protect.optout_metadata import OptOut, encode_with_optout
from server.limits import FULL_MAX_EDGE, SMALL_MAX_PIXELS, THUMB_MAX_EDGE

BLURHASH_COMPONENTS = (4, 4)  # Mastodon's
BLURHASH_SAMPLE_EDGE = 32     # the hash is a blur: a tiny sample gives the same result


@dataclass(frozen=True)
class Rendition:
    name: str  # "full", "small" or "thumb"
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


@dataclass(frozen=True)
class RenditionSet:
    full: Rendition
    small: Rendition
    thumb: Rendition
    blurhash: str
    meta: dict[str, Any]

    def all(self) -> tuple[Rendition, Rendition, Rendition]:
        return (self.full, self.small, self.thumb)


def fit_edge(size: tuple[int, int], max_edge: int) -> tuple[int, int]:
    """``size`` scaled down (never up) so its longest edge is at most ``max_edge``."""
    width, height = size
    longest = max(width, height)
    if longest <= max_edge:
        return size
    scale = max_edge / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit_pixels(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """``size`` scaled down (never up) to at most ``max_pixels`` pixels, aspect kept."""
    width, height = size
    if width * height <= max_pixels:
        return size
    scale = math.sqrt(max_pixels / (width * height))
    new_width, new_height = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    return new_width, new_height


def resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode(image: Image.Image, name: str, *, quality: int = 88, optout: OptOut | None = None) -> Rendition:
    """Encode the pixels, with the opt-out metadata of ``optout`` when given; nothing of
    the upload (EXIF, ICC profile, XMP) is ever passed on."""
    if image.mode == "RGBA":
        target, params = image, {"quality": quality, "method": 4}
        image_format, content_type, extension = "WEBP", "image/webp", "webp"
    else:
        target = image if image.mode == "RGB" else image.convert("RGB")
        params = {"quality": quality, "optimize": True, "progressive": True}
        image_format, content_type, extension = "JPEG", "image/jpeg", "jpg"
    if optout is not None:
        data = encode_with_optout(target, image_format, optout, **params)
    else:
        buffer = io.BytesIO()
        target.save(buffer, image_format, **params)
        data = buffer.getvalue()
    return Rendition(name=name, data=data, content_type=content_type,
                     extension=extension, width=image.width, height=image.height)


def as_shown(image: Image.Image) -> Image.Image:
    """RGB as most clients draw it: transparency shows as white."""
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def compute_blurhash(image: Image.Image) -> str:
    sample = as_shown(resized(image, fit_edge(image.size, BLURHASH_SAMPLE_EDGE)))
    raw, width = sample.tobytes(), sample.width
    rows = [[list(raw[offset:offset + 3]) for offset in range(row * width * 3, (row + 1) * width * 3, 3)]
            for row in range(sample.height)]
    x_components, y_components = BLURHASH_COMPONENTS
    result: str = blurhash.encode(rows, components_x=x_components, components_y=y_components)
    return result


def size_meta(width: int, height: int) -> dict[str, Any]:
    """One entry of Mastodon's ``meta``: ``{"width", "height", "size": "WxH", "aspect"}``."""
    return {"width": width, "height": height, "size": f"{width}x{height}", "aspect": width / height}


def make_renditions(image: Image.Image, optout: OptOut | None = None) -> RenditionSet:
    """Full (longest edge ≤ FULL_MAX_EDGE), small (≈ SMALL_MAX_PIXELS) and thumbnail
    (longest edge ≤ THUMB_MAX_EDGE) from a normalised RGB/RGBA image, each carrying the
    artist's ``optout`` signals. The verification makes them from the clean original too,
    without metadata: what Easel would serve unprotected (the same pixels)."""
    full_image = resized(image, fit_edge(image.size, FULL_MAX_EDGE))
    small_image = resized(full_image, fit_pixels(full_image.size, SMALL_MAX_PIXELS))
    thumb_image = resized(small_image, fit_edge(small_image.size, THUMB_MAX_EDGE))
    full = encode(full_image, "full", quality=90, optout=optout)
    small = encode(small_image, "small", quality=85, optout=optout)
    thumb = encode(thumb_image, "thumb", quality=80, optout=optout)
    meta = {
        "original": size_meta(full.width, full.height),
        "small": size_meta(small.width, small.height),
    }
    return RenditionSet(full=full, small=small, thumb=thumb, blurhash=compute_blurhash(thumb_image),
                        meta=meta)
