"""AI-free upload screening (protect/provenance.py): crafted AI-marked files in each format
are caught and named; clean files pass; broken or hostile metadata never raises; and the
upload API applies EASEL_AI_UPLOADS (reject → 422 naming the marker, label, allow)."""

from __future__ import annotations

import io
import json
import logging
import random
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from protect import provenance
from protect.optout_metadata import DMI_PROHIBITED_AIML, OptOut, encode_with_optout
from protect.provenance import TRAINED, Finding, digital_source_type_of, screen
from tests.protect import ai_images as ai
from tests.protect import images
from tests.protect.conftest import media_row, run_protect, stored_files, upload

FORMATS = ("JPEG", "PNG", "WEBP")


# ---------------------------------------------------------------- XMP digital source type

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("source_type", provenance.AI_SOURCE_TYPES)
def test_an_xmp_digital_source_type_is_caught_in_every_format(fmt: str, source_type: str) -> None:
    finding = screen(ai.with_xmp(fmt, ai.xmp_with_source_type(source_type)))
    assert finding == Finding(f"XMP DigitalSourceType {source_type}", ai.DST + source_type)


@pytest.mark.parametrize("source_type", ["digitalCapture", "digitalCreation", "algorithmicallyEnhanced",
                                         "compositeSynthetic", "humanEdits"])
def test_other_digital_source_types_pass(source_type: str) -> None:
    assert screen(ai.with_xmp("JPEG", ai.xmp_with_source_type(source_type))) is None


def test_the_source_type_as_an_attribute_and_in_extended_xmp_is_caught() -> None:
    attribute = (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
                 f'Iptc4xmpExt:DigitalSourceType="{ai.DST}trainedAlgorithmicMedia"/></rdf:RDF></x:xmpmeta>')
    assert screen(ai.with_xmp("WEBP", attribute.encode())) is not None
    extended = (b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 32 + b"\x00\x00\x01\x00\x00\x00\x00\x00"
                + ai.xmp_with_source_type("compositeWithTrainedAlgorithmicMedia"))
    finding = screen(ai.jpeg_with_segment(0xE1, extended))
    assert finding is not None and "compositeWithTrainedAlgorithmicMedia" in finding.marker


def test_midjourney_and_generator_creator_tools_in_xmp_are_caught() -> None:
    job = ai.with_xmp("PNG", ai.xmp_with_source_type("digitalCreation",
                      "<dc:description>a fox Job ID: 0f3a1b2c-1234-4abc-9def-0123456789ab</dc:description>"))
    assert screen(job) == Finding("XMP description with a Midjourney job id", TRAINED)
    tool = ai.with_xmp("JPEG", b'<x:xmpmeta><rdf:Description xmp:CreatorTool="Draw Things"/></x:xmpmeta>')
    assert screen(tool) == Finding("XMP CreatorTool Draw Things", TRAINED)
    photoshop = ai.with_xmp("JPEG", b'<x:xmpmeta><rdf:Description xmp:CreatorTool="Adobe Photoshop 26.0"/>'
                            b"</x:xmpmeta>")
    assert screen(photoshop) is None


# ------------------------------------------------------------------------ generator text

@pytest.mark.parametrize("kind", ["tEXt", "zTXt", "iTXt"])
@pytest.mark.parametrize(("entries", "marker"), [
    ((("parameters", ai.A1111),), 'PNG text "parameters" written by AUTOMATIC1111/Forge'),
    ((("parameters", json.dumps({"sui_image_params": {"prompt": "x"}})),),
     'PNG text "parameters" written by SwarmUI'),
    ((("parameters", json.dumps({"Prompt": "x", "Version": "Fooocus v2.5"})),),
     'PNG text "parameters" written by Fooocus'),
    ((("prompt", json.dumps(ai.COMFY_PROMPT)),), 'PNG text "prompt" written by ComfyUI'),
    ((("workflow", json.dumps(ai.COMFY_WORKFLOW)),), 'PNG text "workflow" written by ComfyUI'),
    ((("invokeai_metadata", '{"model": {"name": "sdxl"}}'),),
     'PNG text "invokeai_metadata" written by InvokeAI'),
    ((("sd-metadata", '{"model": "stable diffusion"}'),), 'PNG text "sd-metadata" written by InvokeAI'),
    ((("Title", "AI generated image"), ("Software", "NovelAI"), ("Comment", json.dumps(ai.NOVELAI_COMMENT))),
     'PNG text "Software" "NovelAI"'),
    ((("Comment", json.dumps(ai.NOVELAI_COMMENT)),), 'PNG text "Comment" with generator sampler settings'),
    ((("Source", "Stable Diffusion XL C9B2F4F0"),), 'PNG text "Source" "Stable Diffusion"'),
    ((("Description", "a fox in snow Job ID: 0f3a1b2c-1234-4abc-9def-0123456789ab"),),
     'PNG text "Description" with a Midjourney job id'),
    ((("fooocus_scheme", "fooocus"),), 'PNG text "fooocus_scheme" written by Fooocus'),
])
def test_generator_png_text_is_caught(entries: tuple[tuple[str, str], ...], marker: str, kind: str) -> None:
    assert screen(ai.png_with_text(*entries, kind=kind)) == Finding(marker, TRAINED)


@pytest.mark.parametrize("entries", [
    (("parameters", "exposure +0.3, contrast 10"),),
    (("prompt", "What do you see in this painting?"),),
    (("workflow", '{"steps": ["sketch", "ink", "colour"]}'),),
    (("Software", "Krita 5.2"),),
    (("Comment", "Painted in three evenings, gouache"),),
    (("Description", "My cat, Job: painter"),),
])
def test_ordinary_png_text_passes(entries: tuple[tuple[str, str], ...]) -> None:
    assert screen(ai.png_with_text(*entries)) is None


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("codec", ["utf-16-be", "utf-16-le"])
def test_the_exif_user_comment_form_of_generation_parameters_is_caught(fmt: str, codec: str) -> None:
    data = ai.with_exif(fmt, comment=ai.user_comment(ai.A1111, codec))
    assert screen(data) == Finding("EXIF UserComment written by AUTOMATIC1111/Forge", TRAINED)


@pytest.mark.parametrize("fmt", FORMATS)
def test_exif_software_and_description_of_generators_are_caught(fmt: str) -> None:
    assert screen(ai.with_exif(fmt, software="NovelAI")) == Finding('EXIF Software "NovelAI"', TRAINED)
    assert screen(ai.with_exif(fmt, description=ai.A1111)) == Finding(
        "EXIF ImageDescription written by AUTOMATIC1111/Forge", TRAINED)
    assert screen(ai.with_exif(fmt, software="GIMP 2.10", description="a cat",
                               comment=ai.user_comment("scanned at 600 dpi"))) is None


def test_a_jpeg_comment_with_generation_parameters_is_caught() -> None:
    finding = screen(ai.jpeg_with_segment(0xFE, ai.A1111.encode()))
    assert finding == Finding("JPEG comment written by AUTOMATIC1111/Forge", TRAINED)


# ------------------------------------------------------------------------------- C2PA

@pytest.mark.parametrize("fmt", FORMATS)
def test_a_c2pa_manifest_of_a_generator_is_caught(fmt: str, tmp_path: Path) -> None:
    finding = screen(ai.c2pa_signed(fmt, tmp_path / "c2pa"))
    assert finding == Finding('C2PA action "c2pa.created" with digitalSourceType '
                              "trainedAlgorithmicMedia by DALL·E", ai.DST + "trainedAlgorithmicMedia")


def test_a_composite_c2pa_manifest_is_caught(tmp_path: Path) -> None:
    data = ai.c2pa_signed("JPEG", tmp_path / "c2pa", source_type="compositeWithTrainedAlgorithmicMedia",
                          agent="Adobe Firefly")
    finding = screen(data)
    assert finding is not None and finding.marker.endswith(
        "compositeWithTrainedAlgorithmicMedia by Adobe Firefly")
    assert finding.source_type == ai.DST + "compositeWithTrainedAlgorithmicMedia"


@pytest.mark.parametrize("fmt", FORMATS)
def test_without_the_c2pa_library_the_raw_manifest_is_searched(
        fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ai.c2pa_signed(fmt, tmp_path / "c2pa")
    monkeypatch.setitem(sys.modules, "c2pa", None)  # import c2pa: ImportError
    assert screen(data) == Finding("C2PA manifest with digitalSourceType trainedAlgorithmicMedia",
                                   ai.DST + "trainedAlgorithmicMedia")


@pytest.mark.parametrize("fmt", FORMATS)
def test_easels_own_signed_renditions_pass(fmt: str, tmp_path: Path) -> None:
    optout = OptOut(creator="Alice", handle="@alice@easel.test", profile_url="https://easel.test/@alice",
                    data_mining=DMI_PROHIBITED_AIML, policy_url="https://easel.test/about/ai",
                    credentials_dir=tmp_path / "c2pa")
    data = encode_with_optout(ai.image("RGBA" if fmt == "WEBP" else "RGB"), fmt, optout)
    assert b"c2pa" in data
    assert screen(data) is None
    # An upload the instance labelled says so in its renditions, which are caught again.
    labelled = OptOut(**{**optout.__dict__, "digital_source_type": ai.DST + "trainedAlgorithmicMedia"})
    finding = screen(encode_with_optout(ai.image("RGBA" if fmt == "WEBP" else "RGB"), fmt, labelled))
    assert finding is not None and "trainedAlgorithmicMedia" in finding.marker


# ------------------------------------------------------------------------- clean files

@pytest.mark.parametrize("data", [
    images.jpeg(), images.png(), images.transparent_png(), images.sideways_jpeg_with_gps(),
    images.cmyk_jpeg(), images.sixteen_bit_png(), images.srgb_tagged_png(), images.animated_gif(),
    images.avif(), ai.save("WEBP"), ai.with_xmp("JPEG", images.XMP),
], ids=lambda _: "clean")
def test_clean_files_pass(data: bytes) -> None:
    assert screen(data) is None


# ------------------------------------------------------------------ broken and hostile

def _garbage(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("data", [
    b"", b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP", b"GIF89a",
    ai.jpeg_with_segment(0xEB, b"JP\x00\x01\x00\x00\x00\x01" + _garbage(3000)),   # JUMBF garbage
    ai.jpeg_with_segment(0xEB, b"JP\x00\x01\x00\x00\x00\x01\x00\x00\x00\x10jumbc2pa" + _garbage(500, 1)),
    ai.png_with_chunks(ai.png_chunk(b"caBX", b"\x00\x00\x00\x10jumb" + _garbage(2000, 2))),
    ai.webp_with_chunk(b"C2PA", b"\xff" * 100),
    ai.jpeg_with_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><rdf:RDF><unclosed &bad;"),
    ai.jpeg_with_segment(0xE1, b"Exif\x00\x00MM\x00*\xff\xff\xff\xff"),              # IFD offset past the end
    ai.jpeg_with_segment(0xE1, b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + _garbage(200, 3)),
    ai.png_with_chunks(ai.png_chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x87\x69" * 50)),
    ai.png_with_chunks(ai.png_chunk(b"zTXt", b"parameters\x00\x00" + b"not zlib at all")),
    ai.png_with_chunks(ai.png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + b"\x78\x9c\xff")),
    ai.png_with_chunks(b"\xff\xff\xff\xfftEXt" + b"parameters\x00Steps: 1"),          # length past the end
    ai.png_with_chunks(ai.png_chunk(b"tEXt", b"prompt\x00{" * 1000)),
    ai.webp_with_chunk(b"XMP ", b"<x:xmpmeta>" + _garbage(1000, 4)),
    ai.webp_with_chunk(b"EXIF", b"II*\x00" + _garbage(64, 5)),
], ids=lambda _: "broken")
def test_broken_metadata_never_raises(data: bytes) -> None:
    assert screen(data) is None


def test_a_zip_bomb_in_png_text_is_bounded() -> None:
    bomb = zlib.compress(b"a" * (64 << 20), 9)  # 64 MB of text in ~64 KB
    data = ai.png_with_chunks(ai.png_chunk(b"zTXt", b"parameters\x00\x00" + bomb))
    meta = provenance.extract(data)
    assert len(meta.texts) == 1 and len(meta.texts[0][1]) <= provenance.MAX_TEXT_BYTES
    assert screen(data) is None


def test_many_zip_bombs_are_bounded_in_all() -> None:
    bomb = ai.png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"a" * (2 << 20), 9))
    meta = provenance.extract(ai.png_with_chunks(*[bomb] * 64))  # 128 MB of text
    assert meta.inflated <= provenance.MAX_METADATA_BYTES
    assert sum(len(value) for _, value in meta.texts) <= provenance.MAX_METADATA_BYTES


@pytest.mark.parametrize("data", [
    ai.png_with_text(("parameters", "Steps: 1, " * 100_000)),                # regex worst cases
    ai.png_with_text(("Comment", "Steps: 12, " * 50_000 + "Seed")),
    ai.png_with_text(("prompt", "[" * 100_000)),                             # nested past recursion
    ai.png_with_text(("workflow", '{"a":' * 50_000)),
    b"GIF89a" + b"<x:xmpmeta" * 200_000,                                      # unclosed loose packets
    ai.with_xmp("JPEG", b"<x:xmpmeta>" + b"CreatorTool=\"" * 5000),
], ids=lambda _: "hostile")
def test_hostile_text_is_handled_in_linear_time(data: bytes) -> None:
    assert screen(data) is None


def test_truncations_and_bit_flips_of_marked_files_never_raise(tmp_path: Path) -> None:
    samples = [ai.c2pa_signed(fmt, tmp_path / "c2pa") for fmt in FORMATS] + [
        ai.png_with_text(("parameters", ai.A1111), kind="iTXt"),
        ai.with_exif("JPEG", comment=ai.user_comment(ai.A1111)),
        ai.with_xmp("WEBP", ai.xmp_with_source_type("trainedAlgorithmicMedia"))]
    rng = random.Random(7)
    for sample in samples:
        for cut in range(0, len(sample), max(1, len(sample) // 40)):
            screen(sample[:cut])
        for _ in range(25):
            flipped = bytearray(sample)
            for _ in range(8):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            result = screen(bytes(flipped))
            assert result is None or isinstance(result, Finding)


def test_a_check_that_fails_is_logged_and_finds_nothing(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def explode(_meta: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(provenance, "check_texts", explode)
    with caplog.at_level(logging.WARNING, logger="protect.provenance"):
        assert screen(ai.png_with_text(("parameters", ai.A1111))) is None
    assert "a check failed" in caplog.text
    # The other checks still run.
    assert screen(ai.with_exif("PNG", software="NovelAI")) is not None


def test_digital_source_type_of_a_stored_marker() -> None:
    assert digital_source_type_of(None) is None
    assert digital_source_type_of('PNG text "parameters" written by AUTOMATIC1111/Forge') == TRAINED
    assert digital_source_type_of("XMP DigitalSourceType compositeWithTrainedAlgorithmicMedia") == (
        ai.DST + "compositeWithTrainedAlgorithmicMedia")
    assert digital_source_type_of("XMP DigitalSourceType algorithmicMedia") == ai.DST + "algorithmicMedia"


# ----------------------------------------------------------------- the upload policy

MARKED: list[tuple[str, Callable[[Path], bytes], str]] = [
    ("JPEG", lambda _: ai.with_xmp("JPEG", ai.xmp_with_source_type("trainedAlgorithmicMedia")),
     "XMP DigitalSourceType trainedAlgorithmicMedia"),
    ("PNG", lambda _: ai.png_with_text(("parameters", ai.A1111)),
     'PNG text "parameters" written by AUTOMATIC1111/Forge'),
    ("WEBP", lambda path: ai.c2pa_signed("WEBP", path),
     'C2PA action "c2pa.created" with digitalSourceType trainedAlgorithmicMedia by DALL·E'),
]
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def _set_policy(app: Starlette, policy: str) -> None:
    state = app.state.easel
    state.settings = state.settings.with_changes(ai_uploads=policy)


@pytest.mark.parametrize(("fmt", "make", "marker"), MARKED, ids=[m[0] for m in MARKED])
async def test_reject_answers_422_naming_the_marker(
        app: Starlette, alice_api: httpx.AsyncClient, tmp_path: Path, fmt: str, make: Callable[[Path], bytes],
        marker: str) -> None:
    data = make(tmp_path / "generator")
    response = await upload(alice_api, data, name=f"x.{fmt.lower()}", content_type=CONTENT_TYPES[fmt])
    assert response.status_code == 422
    assert response.json() == {"error": f"This server does not accept AI-generated images ({marker})"}
    assert stored_files(app, private=True) == [] and stored_files(app) == []


@pytest.mark.parametrize("policy", ["label", "allow"])
@pytest.mark.parametrize(("fmt", "make", "marker"), MARKED, ids=[m[0] for m in MARKED])
async def test_label_and_allow_keep_the_marker(
        app: Starlette, alice_api: httpx.AsyncClient, tmp_path: Path, policy: str, fmt: str,
        make: Callable[[Path], bytes], marker: str) -> None:
    _set_policy(app, policy)
    data = make(tmp_path / "generator")
    response = await upload(alice_api, data, name=f"x.{fmt.lower()}", content_type=CONTENT_TYPES[fmt])
    assert response.status_code == 202
    media = await media_row(app, response.json()["id"])
    assert media.ai_provenance == marker


async def test_a_labelled_uploads_renditions_say_it_is_ai_generated(
        app: Starlette, alice_api: httpx.AsyncClient) -> None:
    _set_policy(app, "label")
    data = ai.with_xmp("JPEG", ai.xmp_with_source_type("compositeWithTrainedAlgorithmicMedia"))
    media_id = (await upload(alice_api, data)).json()["id"]
    await run_protect(app)
    media = await media_row(app, media_id)
    storage = app.state.easel.storage
    for key in (media.file_key, media.small_key, media.thumb_key):
        served = await storage.get(key)
        with Image.open(io.BytesIO(served)) as opened:
            description = opened.getxmp()["xmpmeta"]["RDF"]["Description"]
        assert description["DigitalSourceType"] == ai.DST + "compositeWithTrainedAlgorithmicMedia"
        assert screen(served) is not None


@pytest.mark.parametrize("data", [
    images.jpeg(), images.png(),
    ai.jpeg_with_segment(0xEB, b"JP\x00\x01\x00\x00\x00\x01\x00\x00\x00\x10jumbc2pa" + _garbage(500, 1)),
    ai.png_with_chunks(ai.png_chunk(b"caBX", b"\x00\x00\x00\x10jumb" + _garbage(2000, 2))),
    ai.jpeg_with_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><rdf:RDF><unclosed &bad;"),
], ids=["jpeg", "png", "broken-jumbf-jpeg", "broken-cabx-png", "broken-xmp"])
async def test_clean_and_broken_uploads_are_accepted(app: Starlette, alice_api: httpx.AsyncClient,
                                                     data: bytes) -> None:
    content_type = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    response = await upload(alice_api, data, content_type=content_type)
    assert response.status_code == 202, response.text
    assert (await media_row(app, response.json()["id"])).ai_provenance is None


@pytest.mark.parametrize("field", ["avatar", "header"])
async def test_a_profile_image_is_screened_too(
        app: Starlette, alice_api: httpx.AsyncClient, tmp_path: Path, field: str) -> None:
    """``reject`` refuses an avatar or header with a marker, storing nothing; an avatar has
    no label to carry, so ``label`` (as ``allow``) takes it."""
    fmt, make, marker = MARKED[1]
    data = make(tmp_path / "generator")
    files = {field: (f"x.{fmt.lower()}", data, CONTENT_TYPES[fmt])}
    refused = await alice_api.patch("/api/v1/accounts/update_credentials", files=files)
    assert refused.status_code == 422
    assert refused.json() == {"error": f"This server does not accept AI-generated images ({marker})"}
    assert stored_files(app) == []
    shown = (await alice_api.get("/api/v1/accounts/verify_credentials")).json()
    _set_policy(app, "label")
    taken = await alice_api.patch("/api/v1/accounts/update_credentials", files=files)
    assert taken.status_code == 200, taken.text
    assert taken.json()[field] != shown[field] and len(stored_files(app)) == 1
