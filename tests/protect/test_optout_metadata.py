"""The in-file opt-out (protect/optout_metadata.py), read back from real files: XMP with
Pillow's getxmp(), EXIF, and the C2PA manifest with c2pa's Reader — in each format, at
every served size, from files the pipeline wrote and served over HTTP; the artist's
choice; the instance's signing chain; and signing failures that never fail an upload."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import c2pa
import httpx
import pytest
from cryptography import x509
from PIL import Image
from starlette.applications import Starlette

from protect import optout_metadata as om
from protect.ingest import decode_upload
from protect.renditions import make_renditions
from server.models import Account
from tests.protect import images
from tests.protect.conftest import media_row, run_protect, upload

ARTIST = 'Ada <Lovelace> & "Co" \'s 山田'


def optout(tmp_path: Path, **changes: Any) -> om.OptOut:
    values: dict[str, Any] = {
        "creator": ARTIST, "handle": "@ada@easel.test", "profile_url": "https://easel.test/@ada",
        "data_mining": om.DMI_PROHIBITED_AIML, "policy_url": "https://easel.test/about/ai",
        "instance": "Easel test", "credentials_dir": tmp_path / "c2pa"}
    return om.OptOut(**{**values, **changes})


def xmp_of(data: bytes) -> dict[str, Any]:
    with Image.open(io.BytesIO(data)) as image:
        description: dict[str, Any] = image.getxmp()["xmpmeta"]["RDF"]["Description"]
    return description


def exif_of(data: bytes) -> dict[int, Any]:
    with Image.open(io.BytesIO(data)) as image:
        return dict(image.getexif())


def manifest_of(data: bytes, content_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the active manifest, its validation results) as c2pa's Reader sees them."""
    with c2pa.Reader(content_type, io.BytesIO(data)) as reader:
        store = json.loads(reader.json())
        return store["manifests"][store["active_manifest"]], store["validation_results"]


def assertion(manifest: dict[str, Any], label: str) -> dict[str, Any]:
    found = [a["data"] for a in manifest["assertions"] if a["label"] == label]
    assert len(found) == 1, [a["label"] for a in manifest["assertions"]]
    result: dict[str, Any] = found[0]
    return result


def assert_all_signals(data: bytes, content_type: str, *, creator: str = ARTIST,
                       profile_url: str = "https://easel.test/@ada",
                       policy_url: str = "https://easel.test/about/ai") -> None:
    """XMP, EXIF and C2PA of the default choice (DMI-PROHIBITED-AIMLTRAINING)."""
    xmp = xmp_of(data)
    assert xmp["DataMining"] == om.DMI_PROHIBITED_AIML
    assert xmp["OtherConstraints"]["Alt"]["li"]["text"] == "Not for AI/ML training, including generative AI."
    assert xmp["creator"]["Seq"]["li"] == creator
    assert xmp["rights"]["Alt"]["li"]["text"].startswith(f"© {creator} (")
    assert xmp["Marked"] == "True"
    assert xmp["WebStatement"] == policy_url
    assert xmp["Licensor"]["Seq"]["li"]["LicensorURL"] == profile_url
    assert "DigitalSourceType" not in xmp
    exif = exif_of(data)
    assert set(exif) == {om.EXIF_ARTIST, om.EXIF_COPYRIGHT}
    assert "All rights reserved" in exif[om.EXIF_COPYRIGHT]
    manifest, validation = manifest_of(data, content_type)
    # Valid, except that the instance's own CA is on no trust list.
    assert [f["code"] for f in validation["activeManifest"]["failure"]] == ["signingCredential.untrusted"]
    for label, prefix in (("cawg.training-mining", "cawg."), ("c2pa.training-mining", "c2pa.")):
        entries = assertion(manifest, label)["entries"]
        assert set(entries) == {prefix + name for name in (
            "ai_generative_training", "ai_training", "ai_inference", "data_mining")}
        assert all(entry["use"] == "notAllowed" for entry in entries.values())
    actions = [a["action"] for a in assertion(manifest, "c2pa.actions.v2")["actions"]]
    assert actions == ["c2pa.opened", "c2pa.transcoded"]  # nothing says "perturbed"
    assert "thumbnail" not in manifest


# --------------------------------------------------------------------- one file, each format

@pytest.mark.parametrize(("fmt", "mode"),
                         [("JPEG", "RGB"), ("PNG", "RGBA"), ("PNG", "RGB"), ("WEBP", "RGBA")])
def test_every_signal_is_read_back_in_each_format(tmp_path: Path, fmt: str, mode: str) -> None:
    data = om.encode_with_optout(Image.new(mode, (80, 60), (10, 200, 30)), fmt, optout(tmp_path))
    assert_all_signals(data, om.FORMATS[fmt])
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == fmt and image.size == (80, 60)


def test_the_xmp_packet_is_escaped_and_well_formed(tmp_path: Path) -> None:
    hostile = '</rdf:li></rdf:Seq><x:evil/>&amp; "quoted" \x01\x0b'
    packet = om.xmp_packet(optout(tmp_path, creator=hostile, profile_url="https://e.test/@a?x=1&y=<2>"))
    from defusedxml import ElementTree

    root = ElementTree.fromstring(packet.split(b"?>", 1)[1].rsplit(b"<?xpacket", 1)[0])
    texts = [element.text for element in root.iter() if element.text]
    assert '</rdf:li></rdf:Seq><x:evil/>&amp; "quoted" ' in texts
    assert "https://e.test/@a?x=1&y=<2>" in texts
    assert b"<x:evil/>" not in packet


def test_exif_is_ascii_and_falls_back_to_the_handle(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif.load(om.exif_bytes(optout(tmp_path)))
    assert exif[om.EXIF_ARTIST] == "@ada@easel.test"  # the name is not ASCII
    assert exif[om.EXIF_COPYRIGHT].startswith("(c) @ada@easel.test. All rights reserved.")
    exif.load(om.exif_bytes(optout(tmp_path, creator="Ada Lovelace")))
    assert exif[om.EXIF_ARTIST] == "Ada Lovelace (@ada@easel.test)"
    assert exif[om.EXIF_COPYRIGHT].startswith("(c) Ada Lovelace (@ada@easel.test). All rights reserved.")


# ----------------------------------------------------------------------- the artist's choice

@pytest.mark.parametrize(("choice", "uses"), [
    (om.DMI_PROHIBITED, {"ai_generative_training": "notAllowed", "ai_training": "notAllowed",
                         "ai_inference": "notAllowed", "data_mining": "notAllowed"}),
    (om.DMI_PROHIBITED_EXCEPT_SEARCH, {"ai_generative_training": "notAllowed", "ai_training": "notAllowed",
                                       "ai_inference": "notAllowed", "data_mining": "notAllowed"}),
    (om.DMI_PROHIBITED_GENAIML, {"ai_generative_training": "notAllowed", "ai_training": "constrained",
                                 "ai_inference": "allowed", "data_mining": "allowed"}),
    (om.DMI_ALLOWED, {"ai_generative_training": "allowed", "ai_training": "allowed",
                      "ai_inference": "allowed", "data_mining": "allowed"}),
    (om.DMI_UNSPECIFIED, None),
])
def test_each_choice_says_what_it_means(tmp_path: Path, choice: str, uses: dict[str, str] | None) -> None:
    data = om.encode_with_optout(Image.new("RGB", (32, 32)), "JPEG", optout(tmp_path, data_mining=choice))
    xmp = xmp_of(data)
    assert xmp["DataMining"] == choice
    assert xmp["OtherConstraints"]["Alt"]["li"]["text"] == om.constraint_text(choice)
    manifest, _ = manifest_of(data, "image/jpeg")
    labels = {a["label"] for a in manifest["assertions"]}
    if uses is None:
        assert "cawg.training-mining" not in labels and "c2pa.training-mining" not in labels
        return
    for prefix in ("cawg", "c2pa"):
        entries = assertion(manifest, f"{prefix}.training-mining")["entries"]
        assert {name.split(".", 1)[1]: entry["use"] for name, entry in entries.items()} == uses


def test_effective_data_mining() -> None:
    assert om.effective_data_mining(Account(username="a", data_mining=None)) == om.DMI_PROHIBITED_AIML
    assert om.effective_data_mining(Account(username="a", data_mining="nonsense")) == om.DMI_PROHIBITED_AIML
    assert om.effective_data_mining(Account(username="a", data_mining=om.DMI_ALLOWED)) == om.DMI_ALLOWED
    assert om.effective_data_mining(None) == om.DMI_PROHIBITED_AIML
    assert om.DATA_MINING_CHOICES[0][0] == om.DMI_PROHIBITED_AIML
    assert {value for value, _ in om.DATA_MINING_CHOICES} <= set(om.DATA_MINING_VALUES)


# --------------------------------------------------------------------- the signing chain

def test_the_instance_chain_is_made_once_with_private_keys(tmp_path: Path) -> None:
    om.forget_credentials()
    folder = tmp_path / "c2pa"
    first = om.signing_credentials(folder, "Easel test")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in (om.ROOT_KEY, om.SIGNER_KEY):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    om.forget_credentials()
    assert om.signing_credentials(folder, "Easel test") == first  # read back, not made again
    signer, root = x509.load_pem_x509_certificates(first.chain_pem)
    assert signer.issuer == root.subject and signer.subject != root.subject
    assert not signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert signer.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    usages = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    ekus = {oid.dotted_string for oid in usages}
    assert om.C2PA_CLAIM_SIGNING in ekus
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # No temporary folder or file left; the lock every process takes stays beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c2pa.lock", "c2pa"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [om.ROOT_KEY, om.ROOT_CERT, om.SIGNER_KEY, om.SIGNER_CHAIN])


def test_a_signing_certificate_about_to_expire_is_renewed(tmp_path: Path) -> None:
    import datetime

    om.forget_credentials()
    folder = tmp_path / "c2pa"
    om.signing_credentials(folder)
    from cryptography.hazmat.primitives import serialization

    root_key = serialization.load_pem_private_key((folder / om.ROOT_KEY).read_bytes(), password=None)
    root_cert = x509.load_pem_x509_certificate((folder / om.ROOT_CERT).read_bytes())
    old_now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=om.SIGNER_DAYS - 10)
    om._write_signer(folder, "Easel", root_key, root_cert, old_now)
    om.forget_credentials()
    renewed = x509.load_pem_x509_certificates(om.signing_credentials(folder).chain_pem)[0]
    assert renewed.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=365)
    data = om.encode_with_optout(Image.new("RGB", (16, 16)), "JPEG", optout(tmp_path))
    assert manifest_of(data, "image/jpeg")[0]["signature_info"]["cert_serial_number"] == str(
        renewed.serial_number)


def test_a_key_that_is_not_the_certificates_is_replaced_with_a_fresh_pair(tmp_path: Path) -> None:
    # E.g. two processes once renewed at the same time and interleaved their writes.
    from cryptography.hazmat.primitives.asymmetric import ec

    om.forget_credentials()
    folder = tmp_path / "c2pa"
    first = om.signing_credentials(folder)
    stray = om._key_pem(ec.generate_private_key(ec.SECP256R1()))
    (folder / om.SIGNER_KEY).write_bytes(stray)
    (folder / om.SIGNER_KEY).chmod(0o644)
    om.forget_credentials()
    fixed = om.signing_credentials(folder)
    assert fixed.key_pem != stray and fixed.chain_pem != first.chain_pem
    assert om._key_matches(fixed.key_pem, fixed.chain_pem)
    assert stat.S_IMODE((folder / om.SIGNER_KEY).stat().st_mode) == 0o600
    data = om.encode_with_optout(Image.new("RGB", (16, 16)), "PNG", optout(tmp_path))
    assert manifest_of(data, "image/png")  # signs again
    om.forget_credentials()


def test_a_broken_chain_still_ships_the_xmp_and_logs(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    om.forget_credentials()
    folder = tmp_path / "c2pa"
    om.signing_credentials(folder)
    (folder / om.SIGNER_CHAIN).write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    om.forget_credentials()
    with caplog.at_level(logging.WARNING, logger="protect.optout_metadata"):
        data = om.encode_with_optout(Image.new("RGB", (16, 16)), "JPEG", optout(tmp_path))
    assert "C2PA manifest not written" in caplog.text
    assert xmp_of(data)["DataMining"] == om.DMI_PROHIBITED_AIML
    assert b"c2pa" not in data
    om.forget_credentials()


def test_without_the_c2pa_library_the_xmp_still_ships(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "c2pa", None)
    with caplog.at_level(logging.WARNING, logger="protect.optout_metadata"):
        data = om.encode_with_optout(Image.new("RGBA", (16, 16)), "WEBP", optout(tmp_path))
    assert "C2PA manifest not written" in caplog.text
    assert xmp_of(data)["Marked"] == "True" and exif_of(data)[om.EXIF_ARTIST] == "@ada@easel.test"


# --------------------------------------------------------------- the pipeline, every size

@pytest.mark.parametrize(("source", "content_type"), [
    (lambda: images.jpeg((1200, 900)), "image/jpeg"),
    (lambda: images.transparent_png((700, 700)), "image/webp"),
], ids=["opaque-jpeg", "transparent-webp"])
def test_every_rendition_size_carries_every_signal(tmp_path: Path, source: Any, content_type: str) -> None:
    image, _ = decode_upload(source())
    result = make_renditions(image, optout(tmp_path))
    for rendition in result.all():
        assert rendition.content_type == content_type
        assert_all_signals(rendition.data, content_type)
    clean = make_renditions(image)  # the verification's comparison: no metadata at all
    for rendition in clean.all():
        images.assert_no_metadata(rendition.data)


def _path(url: str) -> str:
    return url.removeprefix("https://easel.test")


async def _set_account(app: Starlette, username: str, **values: Any) -> None:
    from sqlalchemy import update

    async with app.state.easel.db.session() as session:
        await session.execute(update(Account).where(Account.username == username).values(**values))
        await session.commit()


@pytest.mark.parametrize(("data", "content_type"), [
    (images.sideways_jpeg_with_gps(), "image/jpeg"),
    (images.transparent_png((300, 200)), "image/webp"),
], ids=["jpeg", "webp"])
async def test_served_renditions_carry_the_artists_signals_over_http(
        app: Starlette, alice_api: httpx.AsyncClient, client: httpx.AsyncClient,
        data: bytes, content_type: str) -> None:
    await _set_account(app, "alice", display_name='Alice <& "Co">')
    response = await upload(alice_api, data, content_type="image/png" if content_type == "image/webp"
                            else "image/jpeg")
    media_id = response.json()["id"]
    await run_protect(app)
    media = await media_row(app, media_id)
    for key in (media.file_key, media.small_key, media.thumb_key):
        served = await client.get(f"/system/{key}")
        assert served.status_code == 200 and served.headers["content-type"] == content_type
        assert served.headers["x-robots-tag"] == "noai, noimageai"
        assert served.headers["tdm-reservation"] == "1"
        assert served.headers["tdm-policy"] == "https://easel.test/about/ai"
        assert served.headers["content-usage"] == "train-ai=n"
        assert_all_signals(served.content, content_type, creator='Alice <& "Co">',
                           profile_url="https://easel.test/@alice")
        images.assert_only_optout_metadata(served.content)
    original = await alice_api.get(f"/api/v1/easel/media/{media_id}/original")
    assert original.status_code == 200
    assert original.headers["x-robots-tag"] == "noai, noimageai"
    assert original.headers["tdm-reservation"] == "1" and original.headers["content-usage"] == "train-ai=n"


async def test_a_changed_choice_applies_to_the_next_renditions(
        app: Starlette, alice_api: httpx.AsyncClient) -> None:
    await _set_account(app, "alice", data_mining=om.DMI_PROHIBITED_GENAIML)
    media_id = (await upload(alice_api, images.jpeg((300, 200)))).json()["id"]
    await run_protect(app)
    media = await media_row(app, media_id)
    served = await app.state.easel.storage.get(media.small_key)
    assert xmp_of(served)["DataMining"] == om.DMI_PROHIBITED_GENAIML
    manifest, _ = manifest_of(served, "image/jpeg")
    assert assertion(manifest, "cawg.training-mining")["entries"]["cawg.ai_generative_training"] == {
        "use": "notAllowed"}


async def test_avatars_and_headers_carry_the_xmp_and_exif(
        app: Starlette, alice_api: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    files = {"avatar": ("a.jpg", images.sideways_jpeg_with_gps(), "image/jpeg"),
             "header": ("h.png", images.transparent_png(), "image/png")}
    response = await alice_api.patch("/api/v1/accounts/update_credentials",
                                     data={"display_name": "Alice A."}, files=files)
    assert response.status_code == 200, response.text
    for field in ("avatar", "header"):
        served = await client.get(_path(response.json()[field]))
        assert served.status_code == 200
        assert served.headers["x-robots-tag"] == "noai, noimageai"
        assert served.headers["tdm-reservation"] == "1"
        xmp = xmp_of(served.content)
        assert xmp["DataMining"] == om.DMI_PROHIBITED_AIML
        assert xmp["creator"]["Seq"]["li"] == "Alice A."  # the name given in the same request
        assert xmp["WebStatement"] == "https://easel.test/about/ai"
        assert exif_of(served.content)[om.EXIF_ARTIST] == "Alice A. (@alice@easel.test)"
        images.assert_only_optout_metadata(served.content)


def test_no_key_file_is_readable_by_others(tmp_path: Path) -> None:
    om.forget_credentials()
    om.signing_credentials(tmp_path / "c2pa")
    for path in (tmp_path / "c2pa").iterdir():
        if path.suffix == ".key":
            assert not os.stat(path).st_mode & 0o077


@pytest.mark.parametrize(("artist", "url"),
                         [("Ada Lovelace", "https://ada.example/"), ("山田", ""), ("", "")])
def test_offline_outputs_say_not_for_ai_training(tmp_path: Path, artist: str, url: str) -> None:
    import argparse

    from protect import offline

    target = tmp_path / "out.png"
    offline.write_png(Image.new("RGB", (8, 8)), target,
                      offline.optout_of(argparse.Namespace(artist=artist, artist_url=url)))
    data = target.read_bytes()
    xmp = xmp_of(data)
    assert xmp["DataMining"] == om.DMI_PROHIBITED_AIML and xmp["Marked"] == "True"
    assert "WebStatement" not in xmp
    exif = exif_of(data)
    if artist:
        assert xmp["creator"]["Seq"]["li"] == artist
        assert xmp["rights"]["Alt"]["li"]["text"].startswith(f"© {artist}. All rights reserved.")
    else:
        assert "creator" not in xmp and "Licensor" not in xmp
    if url:
        assert xmp["Licensor"]["Seq"]["li"]["LicensorURL"] == url
    assert exif.get(om.EXIF_ARTIST) == (artist if artist.isascii() and artist else None)
    assert "All rights reserved." in exif[om.EXIF_COPYRIGHT]
