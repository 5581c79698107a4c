"""Test images made with Pillow, and checks on what Easel writes (shared by the media
tests of protect/ and server/)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import ExifTags, Image, ImageCms

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
       b' tiff:Artist="secret-artist-xmp"/></rdf:RDF></x:xmpmeta>')


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    return save(Image.new("RGB", size, colour), "JPEG", quality=95)


def png(size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (40, 200, 40)) -> bytes:
    return save(Image.new("RGB", size, colour), "PNG")


def sideways_jpeg_with_gps() -> bytes:
    """80×40 as stored, left half red and right half blue, EXIF orientation 6 (shown
    rotated 90° clockwise: 40×80, red on top), with GPS tags, a camera name and XMP."""
    image = Image.new("RGB", (80, 40), (255, 0, 0))
    image.paste((0, 0, 255), (40, 0, 80, 40))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "SecretCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    return save(image, "JPEG", quality=95, exif=exif, xmp=XMP)


def transparent_png(size: tuple[int, int] = (64, 64)) -> bytes:
    image = Image.new("RGBA", size, (255, 0, 0, 255))
    image.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    return save(image, "PNG")


def cmyk_jpeg() -> bytes:
    return save(Image.new("CMYK", (48, 48), (0, 255, 255, 0)), "JPEG", quality=95)  # red


def sixteen_bit_png() -> bytes:
    image = Image.new("I;16", (32, 32), 0)
    image.paste(65535, (0, 0, 16, 32))  # left half white
    return save(image, "PNG")


def srgb_tagged_png() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return save(Image.new("RGB", (32, 32), (10, 120, 230)), "PNG", icc_profile=profile)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def avif() -> bytes:
    return save(Image.new("RGB", (48, 32), (30, 60, 220)), "AVIF", quality=80)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A few hundred bytes whose header claims ``width``×``height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _chunk(b"IEND", b""))


def truncated_jpeg() -> bytes:
    data = save(Image.effect_noise((256, 256), 64).convert("RGB"), "JPEG", quality=95)
    return data[: len(data) // 3]


def assert_no_metadata(data: bytes) -> None:
    """No EXIF, GPS, XMP, camera name or ICC profile in an encoded file."""
    assert b"Exif" not in data
    assert b"SecretCam" not in data
    assert b"xmpmeta" not in data and b"secret-artist-xmp" not in data
    with Image.open(io.BytesIO(data)) as image:
        assert len(image.getexif()) == 0
        assert "exif" not in image.info and "xmp" not in image.info
        assert "XML:com.adobe.xmp" not in image.info


def assert_only_optout_metadata(data: bytes) -> None:
    """Nothing of the upload (EXIF, GPS, XMP, camera name, ICC profile) in a served file:
    only Easel's own opt-out XMP and EXIF Artist/Copyright (protect/optout_metadata.py)."""
    assert b"SecretCam" not in data and b"secret-artist-xmp" not in data
    with Image.open(io.BytesIO(data)) as image:
        exif = image.getexif()
        assert set(exif) == {0x013B, 0x8298}  # Artist, Copyright
        assert not exif.get_ifd(0x8825)  # no GPS
        xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
        assert xmp is not None and b"DMI-PROHIBITED-AIMLTRAINING" in (
            xmp if isinstance(xmp, bytes) else xmp.encode())
        assert "icc_profile" not in image.info


def colour_at(data: bytes, xy: tuple[float, float]) -> tuple[int, ...]:
    """The colour at a relative position (0..1, 0..1) of an encoded image."""
    with Image.open(io.BytesIO(data)) as image:
        rgba = image.convert("RGBA")
        x = min(int(xy[0] * rgba.width), rgba.width - 1)
        y = min(int(xy[1] * rgba.height), rgba.height - 1)
        pixel: tuple[int, ...] = rgba.getpixel((x, y))  # type: ignore[assignment]
        return pixel
