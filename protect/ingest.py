"""Reading an uploaded image safely: size limit, type from the bytes, decode under a pixel
limit, and normalisation to an upright, metadata-free sRGB image.

This is the part of the pipeline an upload must pass before it is accepted, so the web
process uses it too: it must never import torch. Everything it refuses is an
``ImageRejected`` whose message is safe to show the uploader. The pixel limit is checked
on the header *before* any pixel is decoded, and set here rather than through Pillow's
process-wide ``Image.MAX_IMAGE_PIXELS`` (which other code may change).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageFile, ImageOps

from server.limits import IMAGE_MATRIX_LIMIT, IMAGE_SIZE_LIMIT

MEGABYTE = 1024 * 1024


class ImageRejected(Exception):
    """An image Easel will not take; the message is meant for the person who sent it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ImageType:
    content_type: str
    extension: str
    pil_format: str


JPEG = ImageType("image/jpeg", "jpg", "JPEG")
PNG = ImageType("image/png", "png", "PNG")
WEBP = ImageType("image/webp", "webp", "WEBP")
GIF = ImageType("image/gif", "gif", "GIF")
AVIF = ImageType("image/avif", "avif", "AVIF")

UNSUPPORTED_TYPE = "File content type is invalid (accepted: JPEG, PNG, WebP, GIF and AVIF images)"
UNREADABLE = "Could not read the image: the file is damaged or not an image"


def sniff_type(data: bytes) -> ImageType | None:
    """The image type from the file's magic numbers; the declared Content-Type is ignored."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if len(data) >= 16 and data[4:8] == b"ftyp":
        box_size = struct.unpack(">I", data[:4])[0]
        brands_end = min(max(box_size, 16), len(data), 256)
        brands = {data[8:12]} | {data[i:i + 4] for i in range(16, brands_end - 3, 4)}
        if brands & {b"avif", b"avis"}:
            return AVIF
    return None


@dataclass(frozen=True)
class ImageInfo:
    """What the header says about an accepted image."""

    type: ImageType
    width: int
    height: int
    animated: bool


def _size_message(limit: int) -> str:
    return f"File file size must be less than {limit // MEGABYTE} MB"


def _too_many_pixels(width: int, height: int, limit: int) -> ImageRejected:
    return ImageRejected(
        f"Image is too large: {width}×{height} pixels (the limit is {limit:,} pixels)")


def _open_header(data: bytes, kind: ImageType) -> ImageFile.ImageFile:
    """Open ``data`` as ``kind`` reading only the header. Uses the format's plugin class
    directly, so Pillow's global bomb check does not run before ours can."""
    from PIL import GifImagePlugin, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

    plugins: dict[str, type[ImageFile.ImageFile]] = {
        "JPEG": JpegImagePlugin.JpegImageFile,
        "PNG": PngImagePlugin.PngImageFile,
        "GIF": GifImagePlugin.GifImageFile,
        "WEBP": WebPImagePlugin.WebPImageFile,
    }
    try:
        from PIL import AvifImagePlugin  # Pillow ≥ 11.2, built with libavif

        plugins["AVIF"] = AvifImagePlugin.AvifImageFile
    except ImportError:
        pass
    plugin = plugins.get(kind.pil_format)
    if plugin is None:
        raise ImageRejected(f"{kind.pil_format} images cannot be read on this server")
    try:
        return plugin(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise
    except Exception as exc:  # Pillow raises many types for bad headers
        raise ImageRejected(UNREADABLE) from exc


def open_image(
    data: bytes,
    *,
    size_limit: int = IMAGE_SIZE_LIMIT,
    pixel_limit: int = IMAGE_MATRIX_LIMIT,
) -> tuple[Image.Image, ImageInfo]:
    """Check and fully decode the first frame of ``data``; raise ``ImageRejected``.

    Order matters: size, then type from the bytes, then the header's pixel count, and only
    then the decode (a bomb is refused before it can allocate anything).
    """
    if len(data) > size_limit:
        raise ImageRejected(_size_message(size_limit))
    if not data:
        raise ImageRejected("File can't be blank")
    kind = sniff_type(data)
    if kind is None:
        raise ImageRejected(UNSUPPORTED_TYPE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = _open_header(data, kind)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(f"Image is too large (the limit is {pixel_limit:,} pixels)") from exc
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageRejected(UNREADABLE)
        if width * height > pixel_limit:
            raise _too_many_pixels(width, height, pixel_limit)
        animated = bool(getattr(image, "is_animated", False))
        try:
            if animated:
                image.seek(0)
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_many_pixels(width, height, pixel_limit) from exc
        except Exception as exc:  # truncated or corrupt data
            raise ImageRejected(UNREADABLE) from exc
    return image, ImageInfo(type=kind, width=width, height=height, animated=animated)


def inspect_upload(data: bytes, *, size_limit: int = IMAGE_SIZE_LIMIT,
                   pixel_limit: int = IMAGE_MATRIX_LIMIT) -> ImageInfo:
    """What the web process checks before it accepts an upload: the same checks as the
    pipeline, decode included, so a file that can never be processed is refused at once."""
    image, info = open_image(data, size_limit=size_limit, pixel_limit=pixel_limit)
    image.close()
    return info


# ---------------------------------------------------------------------------- normalise

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info) or (
        image.mode in ("L", "RGB") and "transparency" in image.info)


def _to_8bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit integer greyscale (16-bit PNGs) scaled to 8 bits, not clipped."""
    if image.mode.startswith("I;16") or image.mode == "I":
        scaled = image.convert("I").point(lambda value: value * (1 / 256))
        return scaled.convert("L")
    if image.mode == "F":
        return image.point(lambda value: value * 255).convert("L")  # floats in [0, 1]
    return image


def _apply_icc(image: Image.Image, icc: bytes) -> Image.Image:
    """Convert from the embedded profile to sRGB; alpha is carried across untouched."""
    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    colour = image.convert("RGB") if image.mode == "RGBA" else image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(
            colour, source, _SRGB, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image  # an unusable profile: keep the pixels as they are (assumed sRGB)
    assert converted is not None
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def normalise(image: Image.Image) -> Image.Image:
    """An upright, 8-bit sRGB image (RGB, or RGBA where transparency is really used),
    carrying no metadata at all: EXIF, GPS, XMP, ICC and comments are gone."""
    icc = image.info.get("icc_profile")
    upright = ImageOps.exif_transpose(image) or image
    working = _to_8bit(upright)
    if working.mode == "CMYK" and not icc:
        working = working.convert("RGB")
    elif working.mode in ("P", "PA", "LA", "La", "RGBa") or (
            working.mode in ("L", "RGB") and "transparency" in working.info):
        working = working.convert("RGBA" if _has_alpha(working) else "RGB")
    elif working.mode == "L" and not icc:
        working = working.convert("RGB")
    elif working.mode not in ("RGB", "RGBA", "L", "CMYK"):
        working = working.convert("RGB")
    if icc and working.mode in ("RGB", "RGBA", "L", "CMYK"):
        working = _apply_icc(working, icc)
    if working.mode not in ("RGB", "RGBA"):
        working = working.convert("RGB")
    if working.mode == "RGBA" and working.getchannel("A").getextrema() == (255, 255):
        working = working.convert("RGB")  # an alpha channel nobody uses
    # A fresh image: nothing of the file's metadata (info, cached EXIF) can follow it.
    clean = Image.frombytes(working.mode, working.size, working.tobytes())
    return clean


def decode_upload(data: bytes, *, size_limit: int = IMAGE_SIZE_LIMIT,
                  pixel_limit: int = IMAGE_MATRIX_LIMIT) -> tuple[Image.Image, ImageInfo]:
    """Open, check and normalise: what the pipeline works on."""
    image, info = open_image(data, size_limit=size_limit, pixel_limit=pixel_limit)
    try:
        return normalise(image), info
    except ImageRejected:
        raise
    except Exception as exc:  # a mode or profile Pillow cannot convert
        raise ImageRejected(UNREADABLE) from exc
    finally:
        image.close()
