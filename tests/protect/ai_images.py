"""Crafted image files with (and without) generative-AI provenance, as generators write it:
for the screening tests (tests/protect/test_provenance.py) and the upload API tests."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from protect import optout_metadata

DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"
A1111 = ("a castle on a hill, oil painting\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
         "CFG scale: 7, Seed: 1234, Size: 512x512, Model hash: abcdef, Model: sd15")
COMFY_PROMPT = {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}},
                "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd.safetensors"}}}
COMFY_WORKFLOW = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": []}
NOVELAI_COMMENT = {"prompt": "a cat", "steps": 28, "height": 832, "width": 1216, "scale": 5.0,
                   "seed": 42, "sampler": "k_euler_ancestral", "uc": "lowres"}


def image(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> Image.Image:
    colour = (30, 120, 200, 255) if mode == "RGBA" else (30, 120, 200)
    return Image.new(mode, size, colour)


def save(fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image("RGBA" if fmt == "WEBP" else "RGB").save(buffer, fmt, **options)
    return buffer.getvalue()


def xmp_with_source_type(source_type: str, extra: str = "") -> bytes:
    return (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            f'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            f'xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
            f"<Iptc4xmpExt:DigitalSourceType>{DST}{source_type}</Iptc4xmpExt:DigitalSourceType>{extra}"
            f"</rdf:Description></rdf:RDF></x:xmpmeta>").encode()


def with_xmp(fmt: str, xmp: bytes) -> bytes:
    """A JPEG, PNG or WebP file carrying ``xmp`` where that format keeps it."""
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode())
        return save("PNG", pnginfo=info)
    return save(fmt, xmp=xmp)


def png_with_text(*entries: tuple[str, str], kind: str = "tEXt") -> bytes:
    """A PNG with text chunks: ``tEXt``, ``zTXt`` or ``iTXt`` (compressed)."""
    info = PngImagePlugin.PngInfo()
    for key, value in entries:
        if kind == "tEXt":
            info.add_text(key, value)
        elif kind == "zTXt":
            info.add_text(key, value, zip=True)
        else:
            info.add_itxt(key, value, zip=True)
    return save("PNG", pnginfo=info)


def user_comment(text: str, codec: str = "utf-16-be") -> bytes:
    return b"UNICODE\x00" + text.encode(codec)


def with_exif(fmt: str, *, software: str | None = None, comment: bytes | None = None,
              description: str | None = None) -> bytes:
    exif = Image.Exif()
    if software is not None:
        exif[0x0131] = software
    if description is not None:
        exif[0x010E] = description
    if comment is not None:
        exif.get_ifd(0x8769)[0x9286] = comment
    return save(fmt, exif=exif.tobytes())


def c2pa_signed(fmt: str, credentials_dir: Path, *, source_type: str = "trainedAlgorithmicMedia",
                agent: str = "DALL·E") -> bytes:
    """A file with a C2PA manifest saying it was created by ``agent`` with ``source_type``
    (as DALL·E, Firefly and Bing Image Creator sign theirs)."""
    import c2pa

    credentials = optout_metadata.signing_credentials(credentials_dir, "Test generator")
    manifest = {
        "claim_generator_info": [{"name": "Test generator", "version": "1.0"}],
        "title": "generated",
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": DST + source_type,
             "softwareAgent": {"name": agent}}]}}],
    }
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, credentials.chain_pem, credentials.key_pem, None)
    content_type = optout_metadata.FORMATS[fmt]
    context = c2pa.Context.from_dict(optout_metadata.C2PA_SETTINGS)
    with c2pa.Signer.from_info(info) as signer, \
            c2pa.Builder(json.dumps(manifest), context=context) as builder:
        destination = io.BytesIO()
        builder.sign(signer, content_type, io.BytesIO(save(fmt)), destination)
    return destination.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with_chunks(*chunks: bytes) -> bytes:
    """A valid PNG with ``chunks`` inserted right after IHDR."""
    data = save("PNG")
    ihdr_end = 8 + 12 + 13
    return data[:ihdr_end] + b"".join(chunks) + data[ihdr_end:]


def jpeg_with_segment(marker: int, payload: bytes) -> bytes:
    """A valid JPEG with one more segment right after SOI."""
    data = save("JPEG")
    return data[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def webp_with_chunk(kind: bytes, body: bytes) -> bytes:
    """A WebP (extended format) with one more chunk at its end."""
    data = save("WEBP")  # RGBA: the extended format (VP8X), which has room for more chunks
    chunk = kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) & 1 else b"")
    data += chunk
    return data[:4] + struct.pack("<I", len(data) - 8) + data[8:]
