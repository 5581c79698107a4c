"""AI-free upload screening: does an upload say it was made by generative AI?

Easel instances can keep themselves AI-free (``EASEL_AI_UPLOADS``: ``reject``, ``label``
or ``allow``). Before anything else happens to an upload, :func:`screen` reads the
**original bytes** for the provenance that generators and AI platforms write:

- **IPTC DigitalSourceType** ``trainedAlgorithmicMedia``,
  ``compositeWithTrainedAlgorithmicMedia`` or ``algorithmicMedia``, in XMP (JPEG APP1
  and extended XMP, PNG ``iTXt XML:com.adobe.xmp``, the WebP ``XMP`` chunk, any packet in
  other formats). Midjourney, Google, Meta, OpenAI and Adobe Firefly write it.
- **C2PA manifests** (JUMBF in JPEG APP11, the PNG ``caBX`` chunk, the WebP ``C2PA``
  chunk) with an action whose ``digitalSourceType`` is one of those: DALL·E / ChatGPT,
  Adobe Firefly, Bing Image Creator and others. Read with the ``c2pa`` library (every
  manifest of the store, ingredients included; never touching the network), and, when
  that fails or the library is missing, by a bounded search of the raw manifest bytes.
- **Text that image generators write**: PNG text ``parameters`` (AUTOMATIC1111, Forge,
  SD.Next; SwarmUI's JSON form; Fooocus), the same in EXIF ``UserComment`` (their JPEG
  and WebP form) or ``ImageDescription``; ComfyUI ``prompt`` (its API graph) and
  ``workflow``; InvokeAI ``invokeai_metadata``/``invokeai_graph`` (and the older
  ``sd-metadata``, ``Dream``); NovelAI (``Software: NovelAI``, ``Source``, and the
  ``Comment`` JSON with its sampler settings); Midjourney's description with its job id;
  Fooocus ``fooocus_scheme``; a ``Software``/``CreatorTool`` naming a generator
  (:data:`GENERATORS`).

What it finds is a :class:`Finding` whose ``marker`` names the evidence, e.g.
``PNG text "parameters" written by AUTOMATIC1111/Forge``. Missing markers prove
nothing: metadata is stripped by screenshots, re-saves and most platforms, and anyone
can remove it on purpose. This is a filter for honest or careless files, not a detector.

Everything is bounded (bytes looked at, chunks, decompressed text), and no error in a
file — a broken XMP packet, a malicious manifest, a truncated chunk — ever escapes:
each check that fails is logged and counts as "no marker". Pure Python and Pillow-free;
the ``c2pa`` library is imported lazily. Never imports torch.
"""

from __future__ import annotations

import io
import json
import logging
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
AI_SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia")
TRAINED = DIGITAL_SOURCE_TYPE + "trainedAlgorithmicMedia"

# Bounds: how much metadata is looked at, at most.
MAX_SEGMENTS = 4096            # JPEG segments / PNG or WebP chunks walked
MAX_METADATA_BYTES = 32 << 20  # XMP + EXIF + text + manifests collected, in all
MAX_TEXT_BYTES = 1 << 20       # one decompressed PNG text chunk
MAX_EXIF_ENTRIES = 512         # entries read per EXIF directory

_SOURCE_TYPE = re.compile(
    rb"digitalsourcetype/(compositeWithTrainedAlgorithmicMedia|trainedAlgorithmicMedia|algorithmicMedia)"
    rb"(?![A-Za-z])", re.IGNORECASE)
_A1111_STEPS = re.compile(r"\bSteps: \d{1,6}, ")
_A1111_KEYS = ("Sampler: ", "Seed: ", "CFG scale: ")
_MIDJOURNEY_JOB = re.compile(r"\bJob ID: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_CREATOR_TOOL = re.compile(rb"CreatorTool(?:>|=\")([^<\"]{1,200})")

#: Software names that mean generative AI wherever a file names its software.
GENERATORS = ("NovelAI", "Midjourney", "DALL-E", "DALL·E", "DALLE", "Stable Diffusion",
              "Adobe Firefly", "Ideogram", "Leonardo.Ai", "Draw Things", "DiffusionBee", "Fooocus",
              "ComfyUI", "InvokeAI", "NightCafe", "Bing Image Creator", "Google Imagen", "Craiyon",
              "Dream by WOMBO", "SwarmUI", "StableSwarmUI", "Stable Horde", "AI Horde", "NMKD")
_GENERATOR = re.compile(r"(?<![\w])(" + "|".join(re.escape(name) for name in GENERATORS) + r")(?![\w])",
                        re.IGNORECASE)

_SHORT_TYPE = {name.lower(): name for name in AI_SOURCE_TYPES}


@dataclass(frozen=True)
class Finding:
    """Generative-AI provenance found in a file."""

    marker: str        # what was found and where, for the uploader and the media row
    source_type: str   # the IPTC digital source type it implies (a full URI)


@dataclass
class Metadata:
    """The metadata of an image file, as bytes, for the checks."""

    content_type: str | None = None
    xmp: list[bytes] = field(default_factory=list)
    exif: list[bytes] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # PNG text, JPEG comments
    manifests: list[bytes] = field(default_factory=list)         # C2PA JUMBF
    collected: int = 0
    inflated: int = 0  # bytes decompressed so far (PNG zTXt/iTXt), kept or not

    def inflate(self, data: bytes) -> bytes:
        """Decompress at most MAX_TEXT_BYTES, and at most MAX_METADATA_BYTES per file in all
        (a zip bomb, or thousands of them, stops there)."""
        budget = min(MAX_TEXT_BYTES, MAX_METADATA_BYTES - self.inflated)
        if budget <= 0:
            return b""
        text = zlib.decompressobj().decompress(data, budget)
        self.inflated += len(text)
        return text

    def add(self, kind: list[bytes], data: bytes) -> None:
        if self.collected + len(data) <= MAX_METADATA_BYTES:
            kind.append(data)
            self.collected += len(data)

    def add_text(self, key: str, value: str) -> None:
        if self.collected + len(value) <= MAX_METADATA_BYTES:
            self.texts.append((key, value))
            self.collected += len(value)


# ---------------------------------------------------------------------- format walkers

def _jpeg(data: bytes, meta: Metadata) -> None:
    position, segments = 2, 0
    while position + 4 <= len(data) and segments < MAX_SEGMENTS:
        if data[position] != 0xFF:
            return
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata follows
            return
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if length < 2:
            return
        payload = data[position + 4:position + 2 + length]
        segments += 1
        if marker == 0xE1:
            if payload.startswith(b"Exif\x00\x00"):
                meta.add(meta.exif, payload[6:])
            elif payload.startswith(b"http://ns.adobe.com/xap/1.0/\x00"):
                meta.add(meta.xmp, payload[29:])
            elif payload.startswith(b"http://ns.adobe.com/xmp/extension/\x00"):
                meta.add(meta.xmp, payload[35 + 32 + 8:])
        elif marker == 0xEB and payload.startswith(b"JP"):  # JPEG XT box: C2PA JUMBF
            meta.add(meta.manifests, payload[8:])
        elif marker == 0xFE:
            meta.add_text("Comment", payload.decode("utf-8", "replace"))
        position += 2 + length


def _png_text(kind: bytes, body: bytes, meta: Metadata) -> tuple[str, str] | None:
    key, _, rest = body.partition(b"\x00")
    name = key.decode("latin-1")
    if kind == b"tEXt":
        return name, rest[:MAX_TEXT_BYTES].decode("latin-1")
    if kind == b"zTXt":
        return name, meta.inflate(rest[1:]).decode("latin-1")
    # iTXt: compression flag, method, language\0, translated keyword\0, text (UTF-8)
    if len(rest) < 2:
        return None
    compressed = rest[0] == 1
    _language, _, rest2 = rest[2:].partition(b"\x00")
    _translated, _, text = rest2.partition(b"\x00")
    return name, (meta.inflate(text) if compressed else text[:MAX_TEXT_BYTES]).decode("utf-8", "replace")


def _png(data: bytes, meta: Metadata) -> None:
    position, chunks = 8, 0
    while position + 12 <= len(data) and chunks < MAX_SEGMENTS:
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        chunks += 1
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            text = _png_text(kind, body, meta)
            if text is not None:
                key, value = text
                if key == "XML:com.adobe.xmp":
                    meta.add(meta.xmp, value.encode("utf-8"))
                else:
                    meta.add_text(key, value)
        elif kind == b"eXIf":
            meta.add(meta.exif, body[6:] if body.startswith(b"Exif\x00\x00") else body)
        elif kind == b"caBX":
            meta.add(meta.manifests, body)
        elif kind == b"IEND":
            return
        position += 12 + length


def _webp(data: bytes, meta: Metadata) -> None:
    position, chunks = 12, 0
    while position + 8 <= len(data) and chunks < MAX_SEGMENTS:
        kind = data[position:position + 4]
        length = int.from_bytes(data[position + 4:position + 8], "little")
        body = data[position + 8:position + 8 + length]
        chunks += 1
        if kind == b"EXIF":
            meta.add(meta.exif, body[6:] if body.startswith(b"Exif\x00\x00") else body)
        elif kind == b"XMP ":
            meta.add(meta.xmp, body)
        elif kind == b"C2PA":
            meta.add(meta.manifests, body)
        position += 8 + length + (length & 1)


MAX_LOOSE_PACKETS, MAX_LOOSE_PACKET = 8, 1 << 20


def _other(data: bytes, meta: Metadata) -> None:
    """GIF, AVIF, HEIC…: XMP packets are plain text somewhere in the file (the first few,
    each at most 1 MB: linear time whatever the file holds)."""
    start = data.find(b"<x:xmpmeta")
    for _ in range(MAX_LOOSE_PACKETS):
        if start < 0:
            break
        end = data.find(b"</x:xmpmeta>", start, start + MAX_LOOSE_PACKET)
        meta.add(meta.xmp, data[start:end + 12] if end >= 0 else data[start:start + MAX_LOOSE_PACKET])
        start = data.find(b"<x:xmpmeta", end + 12 if end >= 0 else start + MAX_LOOSE_PACKET)
    if b"jumb" in data and b"c2pa" in data:
        meta.add(meta.manifests, data[:MAX_METADATA_BYTES])


def extract(data: bytes) -> Metadata:
    """The metadata of ``data`` (JPEG, PNG, WebP; XMP packets of anything else)."""
    if data.startswith(b"\xff\xd8"):
        meta = Metadata("image/jpeg")
        _jpeg(data, meta)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        meta = Metadata("image/png")
        _png(data, meta)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        meta = Metadata("image/webp")
        _webp(data, meta)
    else:
        meta = Metadata(None)
        _other(data, meta)
    return meta


# --------------------------------------------------------------------------- EXIF (TIFF)

EXIF_DESCRIPTION, EXIF_SOFTWARE, EXIF_IFD, EXIF_USER_COMMENT = 0x010E, 0x0131, 0x8769, 0x9286
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8}


def exif_fields(tiff: bytes) -> dict[int, bytes]:
    """ImageDescription, Software and UserComment of an EXIF (TIFF) block, raw; bounded,
    and silent about anything malformed (what cannot be read is simply not there)."""
    found: dict[int, bytes] = {}
    if tiff[:2] == b"II":
        order = "<"
    elif tiff[:2] == b"MM":
        order = ">"
    else:
        return found

    def directory(offset: int, wanted: tuple[int, ...]) -> Iterator[tuple[int, bytes]]:
        if offset <= 0 or offset + 2 > len(tiff):
            return
        (count,) = struct.unpack_from(order + "H", tiff, offset)
        for index in range(min(count, MAX_EXIF_ENTRIES)):
            entry = offset + 2 + 12 * index
            if entry + 12 > len(tiff):
                return
            tag, kind, number = struct.unpack_from(order + "HHI", tiff, entry)
            if tag not in wanted or kind not in _TYPE_SIZES:
                continue
            size = _TYPE_SIZES[kind] * number
            if size <= 4:
                yield tag, tiff[entry + 8:entry + 8 + size]
            else:
                (start,) = struct.unpack_from(order + "I", tiff, entry + 8)
                yield tag, tiff[start:start + min(size, MAX_TEXT_BYTES)]

    (first,) = struct.unpack_from(order + "I", tiff, 4) if len(tiff) >= 8 else (0,)
    exif_offset = 0
    for tag, value in directory(first, (EXIF_DESCRIPTION, EXIF_SOFTWARE, EXIF_IFD)):
        if tag == EXIF_IFD and len(value) == 4:
            (exif_offset,) = struct.unpack(order + "I", value)
        else:
            found[tag] = value
    for tag, value in directory(exif_offset, (EXIF_USER_COMMENT,)):
        found[tag] = value
    return found


def user_comment(raw: bytes) -> str:
    """An EXIF UserComment as text: its 8-byte character code, then the text."""
    code, text = raw[:8], raw[8:]
    if code.startswith(b"UNICODE"):
        # piexif (AUTOMATIC1111) writes UTF-16 big-endian, others little-endian: the
        # reading with more plain ASCII letters is the right one.
        readings = [text.decode(codec, "replace") for codec in ("utf-16-be", "utf-16-le")]
        return max(readings, key=lambda reading: sum(" " <= c <= "~" for c in reading))
    if code.startswith(b"ASCII") or code == b"\x00" * 8:
        return text.decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _ascii_field(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace")


# ------------------------------------------------------------------------------- checks

def source_type_uri(name: str) -> str:
    return DIGITAL_SOURCE_TYPE + _SHORT_TYPE.get(name.lower(), "trainedAlgorithmicMedia")


def _generation_text(text: str) -> str | None:
    """Which tool wrote generation parameters ``text`` (AUTOMATIC1111's form and its kin)."""
    if '"sui_image_params"' in text:
        return "SwarmUI"
    if text.lstrip().startswith("{") and "fooocus" in text.lower():
        return "Fooocus"
    if _A1111_STEPS.search(text) and any(key in text for key in _A1111_KEYS):
        return "AUTOMATIC1111/Forge"
    return None


def _json(text: str) -> Any:
    try:
        return json.loads(text) if len(text) < MAX_TEXT_BYTES and text.lstrip()[:1] in "{[" else None
    except (ValueError, RecursionError):  # not JSON; nested past the interpreter's limit
        return None


def check_xmp(meta: Metadata) -> Finding | None:
    for packet in meta.xmp:
        match = _SOURCE_TYPE.search(packet)
        if match:
            name = _SHORT_TYPE[match.group(1).decode("ascii").lower()]
            return Finding(f"XMP DigitalSourceType {name}", source_type_uri(name))
        text = packet.decode("utf-8", "replace")
        if _MIDJOURNEY_JOB.search(text):
            return Finding("XMP description with a Midjourney job id", TRAINED)
        tool = _CREATOR_TOOL.search(packet)
        if tool:
            generator = _GENERATOR.search(tool.group(1).decode("utf-8", "replace"))
            if generator:
                return Finding(f"XMP CreatorTool {generator.group(1)}", TRAINED)
    return None


def _text_finding(key: str, value: str, texts: dict[str, str]) -> Finding | None:
    where = f'PNG text "{key}"'
    if key == "parameters":
        tool = _generation_text(value)
        if tool:
            return Finding(f"{where} written by {tool}", TRAINED)
    elif key == "prompt":
        graph = _json(value)
        if isinstance(graph, dict) and any(isinstance(node, dict) and "class_type" in node
                                           for node in graph.values()):
            return Finding(f"{where} written by ComfyUI", TRAINED)
    elif key == "workflow":
        graph = _json(value)
        if isinstance(graph, dict) and "nodes" in graph:
            return Finding(f"{where} written by ComfyUI", TRAINED)
    elif key in ("invokeai_metadata", "invokeai_graph", "invokeai_workflow", "sd-metadata", "Dream"):
        return Finding(f"{where} written by InvokeAI", TRAINED)
    elif key == "fooocus_scheme":
        return Finding(f"{where} written by Fooocus", TRAINED)
    elif key in ("Software", "Source"):
        generator = _GENERATOR.search(value)
        if generator:
            return Finding(f'{where} "{generator.group(1)}"', TRAINED)
    elif key == "Comment":
        settings = _json(value)
        if isinstance(settings, dict) and "sampler" in settings and (
                "steps" in settings or "uc" in settings or "scale" in settings):
            software = texts.get("Software", "")
            return Finding(f"{where} with {'NovelAI' if 'novelai' in software.lower() else 'generator'}"
                           " sampler settings", TRAINED)
        tool = _generation_text(value)
        if tool:
            return Finding(f"{where} written by {tool}", TRAINED)
    elif key == "Description" and _MIDJOURNEY_JOB.search(value):
        return Finding(f"{where} with a Midjourney job id", TRAINED)
    return None


def check_texts(meta: Metadata) -> Finding | None:
    texts = dict(meta.texts)
    for key, value in meta.texts:
        finding = _text_finding(key, value, texts)
        if finding is not None:
            if key == "Comment" and meta.content_type == "image/jpeg":
                finding = Finding(finding.marker.replace('PNG text "Comment"', "JPEG comment"),
                                  finding.source_type)
            return finding
    return None


def check_exif(meta: Metadata) -> Finding | None:
    for block in meta.exif:
        fields = exif_fields(block)
        comment = fields.get(EXIF_USER_COMMENT)
        if comment:
            tool = _generation_text(user_comment(comment))
            if tool:
                return Finding(f"EXIF UserComment written by {tool}", TRAINED)
        description = _ascii_field(fields.get(EXIF_DESCRIPTION, b""))
        if description:
            tool = _generation_text(description)
            if tool:
                return Finding(f"EXIF ImageDescription written by {tool}", TRAINED)
            if _MIDJOURNEY_JOB.search(description):
                return Finding("EXIF ImageDescription with a Midjourney job id", TRAINED)
        generator = _GENERATOR.search(_ascii_field(fields.get(EXIF_SOFTWARE, b"")))
        if generator:
            return Finding(f'EXIF Software "{generator.group(1)}"', TRAINED)
    return None


#: The c2pa library's settings for reading uploads: never the network, no trust lists.
C2PA_READ_SETTINGS: dict[str, Any] = {
    "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False, "verify_trust": False},
}


def _agent(action: dict[str, Any], manifest: dict[str, Any]) -> str:
    agent = action.get("softwareAgent")
    if isinstance(agent, dict):
        agent = agent.get("name")
    if not isinstance(agent, str) or not agent:
        info = manifest.get("claim_generator_info")
        agent = info[0].get("name") if isinstance(info, list) and info and isinstance(info[0], dict) \
            else manifest.get("claim_generator")
    return str(agent)[:80] if agent else ""


def manifest_finding(store: dict[str, Any]) -> Finding | None:
    """An AI ``digitalSourceType`` in any action of any manifest of a C2PA store (the
    Reader's JSON)."""
    manifests = store.get("manifests")
    if not isinstance(manifests, dict):
        return None
    for manifest in manifests.values():
        if not isinstance(manifest, dict):
            continue
        for assertion in manifest.get("assertions") or []:
            label = str(assertion.get("label", "")) if isinstance(assertion, dict) else ""
            if not label.startswith("c2pa.actions"):
                continue
            data = assertion.get("data")
            for action in (data.get("actions") if isinstance(data, dict) else None) or []:
                if not isinstance(action, dict):
                    continue
                parameters = action.get("parameters")
                source = action.get("digitalSourceType") or (
                    parameters.get("digitalSourceType") if isinstance(parameters, dict) else None)
                match = _SOURCE_TYPE.search(str(source or "").encode("utf-8", "replace"))
                if match:
                    name = _SHORT_TYPE[match.group(1).decode("ascii").lower()]
                    agent = _agent(action, manifest)
                    by = f" by {agent}" if agent else ""
                    return Finding(f'C2PA action "{action.get("action")}" with digitalSourceType '
                                   f"{name}{by}", source_type_uri(name))
    return None


def _read_c2pa(data: bytes, content_type: str | None) -> dict[str, Any] | None:
    import c2pa

    context = c2pa.Context.from_dict(C2PA_READ_SETTINGS)
    with c2pa.Reader(content_type or "", io.BytesIO(data), None, context) as reader:
        store = json.loads(reader.json())
    return store if isinstance(store, dict) else None


def check_c2pa(data: bytes, meta: Metadata) -> Finding | None:
    if not meta.manifests:
        return None
    try:
        store = _read_c2pa(data, meta.content_type)
        finding = manifest_finding(store) if store else None
        if finding is not None:
            return finding
    except Exception as exc:  # missing library, malformed or malicious manifest
        log.info("C2PA manifest not readable (%s: %s); searching its raw bytes",
                 type(exc).__name__, str(exc)[:200])
    for manifest in meta.manifests:
        match = _SOURCE_TYPE.search(manifest)
        if match:
            name = _SHORT_TYPE[match.group(1).decode("ascii").lower()]
            return Finding(f"C2PA manifest with digitalSourceType {name}", source_type_uri(name))
    return None


def screen(data: bytes) -> Finding | None:
    """The first generative-AI marker in ``data`` (an upload's original bytes), or None.
    Never raises: a check that fails on a malformed file is logged and finds nothing."""
    try:
        meta = extract(data)
    except Exception:
        log.warning("provenance screening: metadata unreadable; no marker assumed", exc_info=True)
        return None
    checks: tuple[Callable[[], Finding | None], ...] = (
        lambda: check_c2pa(data, meta), lambda: check_xmp(meta), lambda: check_texts(meta),
        lambda: check_exif(meta))
    for check in checks:
        try:
            finding = check()
        except Exception:
            log.warning("provenance screening: a check failed; no marker assumed", exc_info=True)
            continue
        if finding is not None:
            return finding
    return None


def digital_source_type_of(ai_provenance: str | None) -> str | None:
    """The IPTC digital source type of an upload labelled with ``ai_provenance`` (the
    stored marker), for its renditions' metadata; None for an unlabelled one."""
    if not ai_provenance:
        return None
    for name in sorted(AI_SOURCE_TYPES, key=len, reverse=True):  # the composite first
        if name.lower() in ai_provenance.lower():
            return source_type_uri(name)
    return TRAINED
