"""The in-file half of "not for AI training": XMP, EXIF and a signed C2PA manifest.

Every rendition Easel serves (full, small, thumbnail), and every avatar and header, is
written with:

- an **XMP packet**: IPTC PLUS ``plus:DataMining`` (the artist's choice, by default
  ``DMI-PROHIBITED-AIMLTRAINING``), ``plus:OtherConstraints`` (the same in words),
  ``plus:Licensor`` (the artist and their profile), ``dc:creator``, ``dc:rights``,
  ``xmpRights:Marked``, ``xmpRights:UsageTerms`` and ``xmpRights:WebStatement``. The web
  statement is the **instance's AI policy page** (``/about/ai``), not the artist's profile:
  it is the page that states the terms (what the signals mean, how to ask), and the same
  URL the ``tdm-policy`` header names; the profile is in ``plus:Licensor`` instead. When
  the upload was labelled AI-generated (``EASEL_AI_UPLOADS=label``/``allow``), the packet
  says so with ``Iptc4xmpExt:DigitalSourceType``.
- **EXIF** ``Artist`` and ``Copyright`` (ASCII, as EXIF 2.3 requires: a name that is not
  ASCII is replaced by the artist's handle there; XMP carries it in full).
- a **C2PA manifest** (Content Credentials), signed with the instance's own certificate
  chain (created offline on first use under ``EASEL_DATA_DIR/c2pa``, no timestamp
  authority): the ``cawg.training-mining`` assertion and, for older readers,
  ``c2pa.training-mining``, every entry ``notAllowed`` when the artist prohibits AI
  training; the actions say the file was opened from the artist's upload and transcoded
  — never whether it was perturbed (that is private to its owner). Readers report it
  valid except that the signer is not on their trust list (it is the instance's own CA).

Pillow drops XMP on every plain re-save, so every derivative is written through
:func:`encode_with_optout`, which attaches everything again. The manifest is written after
the XMP (it hashes the final bytes). Signing never fails an upload: if the C2PA library is
missing or the chain is broken, the file ships with its XMP and EXIF and the failure is
logged.

Torch-free: Pillow, cryptography and (lazily) the ``c2pa`` package only.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

from PIL import Image, PngImagePlugin

if TYPE_CHECKING:
    from server.models import Account
    from server.settings import Settings

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ the PLUS vocabulary

DMI_VOCABULARY = "http://ns.useplus.org/ldf/vocab/"
DMI_UNSPECIFIED = DMI_VOCABULARY + "DMI-UNSPECIFIED"
DMI_ALLOWED = DMI_VOCABULARY + "DMI-ALLOWED"
DMI_PROHIBITED_AIML = DMI_VOCABULARY + "DMI-PROHIBITED-AIMLTRAINING"
DMI_PROHIBITED_GENAIML = DMI_VOCABULARY + "DMI-PROHIBITED-GENAIMLTRAINING"
DMI_PROHIBITED_EXCEPT_SEARCH = DMI_VOCABULARY + "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING"
DMI_PROHIBITED = DMI_VOCABULARY + "DMI-PROHIBITED"
DMI_PROHIBITED_SEE_CONSTRAINT = DMI_VOCABULARY + "DMI-PROHIBITED-SEECONSTRAINT"
DMI_PROHIBITED_SEE_EMBEDDED = DMI_VOCABULARY + "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR"
DMI_PROHIBITED_SEE_LINKED = DMI_VOCABULARY + "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR"

#: Every value of the PLUS DataMining vocabulary (what a remote actor may state).
DATA_MINING_VALUES: tuple[str, ...] = (
    DMI_UNSPECIFIED, DMI_ALLOWED, DMI_PROHIBITED_AIML, DMI_PROHIBITED_GENAIML,
    DMI_PROHIBITED_EXCEPT_SEARCH, DMI_PROHIBITED, DMI_PROHIBITED_SEE_CONSTRAINT,
    DMI_PROHIBITED_SEE_EMBEDDED, DMI_PROHIBITED_SEE_LINKED)

#: What an artist may choose (value, label), the default first: the vocabulary's values
#: less the three that point at a rights expression or constraint Easel does not write.
DATA_MINING_CHOICES: list[tuple[str, str]] = [
    (DMI_PROHIBITED_AIML, "Prohibited for AI/ML training (default)"),
    (DMI_PROHIBITED_GENAIML, "Prohibited for generative AI/ML training only"),
    (DMI_PROHIBITED_EXCEPT_SEARCH, "Prohibited, except for search engine indexing"),
    (DMI_PROHIBITED, "All data mining prohibited"),
    (DMI_UNSPECIFIED, "Unspecified (say nothing about data mining)"),
    (DMI_ALLOWED, "Allowed, including AI/ML training"),
]

#: Values that prohibit (at least) AI training: the restrictive signals apply.
PROHIBITS_AI_TRAINING = frozenset({
    DMI_PROHIBITED_AIML, DMI_PROHIBITED_GENAIML, DMI_PROHIBITED_EXCEPT_SEARCH, DMI_PROHIBITED,
    DMI_PROHIBITED_SEE_CONSTRAINT, DMI_PROHIBITED_SEE_EMBEDDED, DMI_PROHIBITED_SEE_LINKED})

#: The IPTC digital source type vocabulary (for AI-labelled uploads).
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def effective_data_mining(account: Account | None) -> str:
    """The artist's PLUS DataMining value: their choice, else the instance default
    (``DMI-PROHIBITED-AIMLTRAINING``)."""
    return effective_value(getattr(account, "data_mining", None))


def effective_value(data_mining: str | None) -> str:
    """A stored DataMining value as it applies: None, or a value outside the vocabulary
    (the safe reading of something Easel does not understand), is the default."""
    return data_mining if data_mining in DATA_MINING_VALUES else DMI_PROHIBITED_AIML


def constraint_text(data_mining: str) -> str:
    """``plus:OtherConstraints``: the choice in words."""
    return {
        DMI_ALLOWED: "Data mining and AI/ML training are allowed by the artist.",
        DMI_UNSPECIFIED: "The artist states nothing about data mining.",
        DMI_PROHIBITED_GENAIML: "Not for use in training generative AI/ML models.",
        DMI_PROHIBITED_EXCEPT_SEARCH: ("No data mining or AI/ML training; indexing by search "
                                       "engines is allowed."),
        DMI_PROHIBITED: "No data mining of any kind, including AI/ML training.",
    }.get(data_mining, "Not for AI/ML training, including generative AI.")


# ------------------------------------------------------------------------ what is said

@dataclass(frozen=True)
class OptOut:
    """What a file says about its artist and their choice (plain data: it crosses threads
    and outlives database sessions)."""

    creator: str                 # the artist's display name (or handle when blank); "": unnamed
    handle: str                  # "@alice@example.com" (or the name again, offline)
    profile_url: str             # the artist's page ("": none)
    data_mining: str             # a PLUS DataMining URI (effective_data_mining)
    policy_url: str              # the instance's AI policy page: xmpRights:WebStatement ("": none)
    instance: str = "Easel"      # the instance's title (the claim generator's organisation)
    # The IPTC digital source type of an upload labelled AI-generated (a full URI), else None.
    digital_source_type: str | None = None
    # Where the instance's C2PA signing chain lives; None: no manifest is written.
    credentials_dir: Path | None = None

    @property
    def prohibits_ai_training(self) -> bool:
        return self.data_mining in PROHIBITS_AI_TRAINING

    @property
    def rights(self) -> str:
        owner = ""
        if self.creator:
            owner = f"© {self.creator}" + (f" ({self.handle})" if self.handle != self.creator else "") + ". "
        return f"{owner}All rights reserved. {constraint_text(self.data_mining)}"


#: The instance's AI policy page (``server/web/robots.py`` serves it).
POLICY_PATH = "/about/ai"


def policy_url(settings: Settings) -> str:
    return f"{settings.base_url}{POLICY_PATH}"


def credentials_dir(settings: Settings) -> Path:
    return settings.data_dir / "c2pa"


def optout_for(account: Account, settings: Settings, *, digital_source_type: str | None = None,
               sign: bool = True) -> OptOut:
    """The opt-out of a local account's files, as of now (``sign``: with a C2PA manifest)."""
    return optout_at(account, settings.base_url, instance=settings.title,
                     digital_source_type=digital_source_type,
                     credentials_dir=credentials_dir(settings) if sign else None)


def optout_at(account: Account, base_url: str, *, instance: str = "Easel",
              digital_source_type: str | None = None, credentials_dir: Path | None = None,
              display_name: str | None = None) -> OptOut:
    """The opt-out of a local account's files on the instance at ``base_url``; the
    ``display_name`` about to be saved, when it changes in the same request."""
    base_url = base_url.rstrip("/")
    handle = f"@{account.username}@{urlsplit(base_url).netloc}"
    name = account.display_name if display_name is None else display_name
    return OptOut(creator=(name or "").strip() or handle, handle=handle,
                  profile_url=f"{base_url}/@{quote(account.username)}",
                  data_mining=effective_data_mining(account), policy_url=f"{base_url}{POLICY_PATH}",
                  instance=instance, digital_source_type=digital_source_type,
                  credentials_dir=credentials_dir)


# ----------------------------------------------------------------------------- XMP

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NAMESPACES = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
}


def _text(value: str) -> str:
    """``value`` as XML character data: escaped, and without characters XML 1.0 forbids."""
    return escape(_NOT_XML.sub("", value))


def _alt(value: str) -> str:
    return f'<rdf:Alt><rdf:li xml:lang="x-default">{_text(value)}</rdf:li></rdf:Alt>'


def xmp_packet(optout: OptOut) -> bytes:
    """The XMP packet (UTF-8) of ``optout``."""
    declarations = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in _NAMESPACES.items()
                            if prefix != "x")
    source = ""
    if optout.digital_source_type:
        source = (f"<Iptc4xmpExt:DigitalSourceType>{_text(optout.digital_source_type)}"
                  "</Iptc4xmpExt:DigitalSourceType>")
    creator = licensor = statement = ""
    if optout.creator:
        creator = f"<dc:creator><rdf:Seq><rdf:li>{_text(optout.creator)}</rdf:li></rdf:Seq></dc:creator>"
        url = ""
        if optout.profile_url:
            url = f"<plus:LicensorURL>{_text(optout.profile_url)}</plus:LicensorURL>"
        licensor = (f'<plus:Licensor><rdf:Seq><rdf:li rdf:parseType="Resource">'
                    f"<plus:LicensorName>{_text(optout.creator)}</plus:LicensorName>{url}"
                    f"</rdf:li></rdf:Seq></plus:Licensor>")
    if optout.policy_url:
        statement = f"<xmpRights:WebStatement>{_text(optout.policy_url)}</xmpRights:WebStatement>"
    body = (
        f'<rdf:Description rdf:about="" {declarations}>'
        f"{creator}"
        f"<dc:rights>{_alt(optout.rights)}</dc:rights>"
        f"<xmpRights:Marked>True</xmpRights:Marked>"
        f"{statement}"
        f"<xmpRights:UsageTerms>{_alt(constraint_text(optout.data_mining))}</xmpRights:UsageTerms>"
        f"<plus:DataMining>{_text(optout.data_mining)}</plus:DataMining>"
        f"<plus:OtherConstraints>{_alt(constraint_text(optout.data_mining))}</plus:OtherConstraints>"
        f"{licensor}"
        f"{source}"
        f"</rdf:Description>"
    )
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        f'<x:xmpmeta xmlns:x="{_NAMESPACES["x"]}"><rdf:RDF xmlns:rdf="{_NAMESPACES["rdf"]}">'
        f"{body}</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


# ---------------------------------------------------------------------------- EXIF

EXIF_ARTIST = 0x013B
EXIF_COPYRIGHT = 0x8298


def _ascii(*candidates: str) -> str | None:
    """The first candidate that is plain ASCII (EXIF 2.3 text), without control characters."""
    for candidate in candidates:
        value = _NOT_XML.sub("", candidate)
        if value and value.isascii():
            return value
    return None


def exif_bytes(optout: OptOut) -> bytes:
    """EXIF with ``Artist`` and ``Copyright`` only (no orientation, no GPS, nothing else)."""
    exif = Image.Exif()
    terms = f"All rights reserved. {constraint_text(optout.data_mining)}"
    if optout.creator:
        named = optout.creator if optout.handle == optout.creator else f"{optout.creator} ({optout.handle})"
        artist = _ascii(named, optout.handle)
        if artist:
            exif[EXIF_ARTIST] = artist
    exif[EXIF_COPYRIGHT] = _ascii(optout.rights.replace("©", "(c)"), f"(c) {optout.handle}. {terms}", terms)
    return exif.tobytes()


# ------------------------------------------------------------------------- encoding

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def save_with_metadata(image: Image.Image, image_format: str, optout: OptOut,
                       **params: Any) -> bytes:
    """``image`` encoded as ``image_format`` (JPEG, PNG or WEBP) with the XMP packet and
    EXIF of ``optout`` (no C2PA)."""
    buffer = io.BytesIO()
    xmp, exif = xmp_packet(optout), exif_bytes(optout)
    if image_format == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"), zip=False)
        image.save(buffer, "PNG", pnginfo=info, exif=exif, **params)
    elif image_format in ("JPEG", "WEBP"):
        image.save(buffer, image_format, xmp=xmp, exif=exif, **params)
    else:
        raise ValueError(f"unsupported format for opt-out metadata: {image_format!r}")
    return buffer.getvalue()


def encode_with_optout(image: Image.Image, image_format: str, optout: OptOut, **params: Any) -> bytes:
    """``image`` encoded with every in-file signal: XMP and EXIF, then (when
    ``optout.credentials_dir`` is set) the signed C2PA manifest. A failure to sign is
    logged and the file returned with XMP and EXIF only."""
    data = save_with_metadata(image, image_format, optout, **params)
    if optout.credentials_dir is None:
        return data
    return sign_or_keep(data, FORMATS[image_format], optout)


# ------------------------------------------------------------------------------ C2PA

CAWG_ENTRIES = ("cawg.ai_generative_training", "cawg.ai_training", "cawg.ai_inference",
                "cawg.data_mining")


def training_mining_entries(data_mining: str) -> dict[str, dict[str, str]] | None:
    """The CAWG training-and-data-mining entries (``cawg.*`` names) of a PLUS value, or
    None when the artist states nothing (``DMI-UNSPECIFIED``: no assertion)."""
    if data_mining == DMI_UNSPECIFIED:
        return None
    if data_mining == DMI_ALLOWED:
        return {name: {"use": "allowed"} for name in CAWG_ENTRIES}
    if data_mining == DMI_PROHIBITED_GENAIML:
        return {
            "cawg.ai_generative_training": {"use": "notAllowed"},
            "cawg.ai_training": {"use": "constrained",
                                 "constraint_info": "not for training generative AI/ML models"},
            "cawg.ai_inference": {"use": "allowed"},
            "cawg.data_mining": {"use": "allowed"},
        }
    return {name: {"use": "notAllowed"} for name in CAWG_ENTRIES}


def manifest_definition(optout: OptOut, content_type: str) -> dict[str, Any]:
    """The C2PA manifest definition of one file (``c2pa.Builder`` JSON)."""
    from server import __version__

    opened: dict[str, Any] = {"action": "c2pa.opened", "parameters": {"ingredientIds": ["upload"]}}
    if optout.digital_source_type:
        opened["digitalSourceType"] = optout.digital_source_type
    assertions: list[dict[str, Any]] = [
        {"label": "c2pa.actions.v2", "data": {"actions": [
            opened, {"action": "c2pa.transcoded"}]}},
    ]
    entries = training_mining_entries(optout.data_mining)
    if entries is not None:
        assertions.append({"label": "cawg.training-mining", "data": {"entries": entries}})
        assertions.append({"label": "c2pa.training-mining", "data": {"entries": {
            "c2pa." + name.removeprefix("cawg."): value for name, value in entries.items()}}})
    return {
        "claim_generator_info": [{"name": "Easel", "version": __version__}],
        "title": f"A work by {optout.creator}",
        "format": content_type,
        # The artist's upload, described only: its bytes (and any metadata in them) stay private.
        "ingredients": [{"title": "the artist's upload", "relationship": "parentOf",
                         "label": "upload", "instance_id": "upload"}],
        "assertions": assertions,
    }


@dataclass(frozen=True)
class SigningCredentials:
    chain_pem: bytes   # the signing certificate, then the root CA
    key_pem: bytes     # the signing certificate's private key (PKCS#8)


ROOT_KEY, ROOT_CERT = "root-ca.key", "root-ca.pem"
SIGNER_KEY, SIGNER_CHAIN = "signer.key", "signer-chain.pem"
ROOT_DAYS, SIGNER_DAYS = 20 * 365, 5 * 365
RENEW_BEFORE = datetime.timedelta(days=30)
# c2pa-kp-claimSigning; id-kp-documentSigning (RFC 9336) is 1.3.6.1.5.5.7.3.36.
C2PA_CLAIM_SIGNING = "1.3.6.1.4.1.62558.2.1"
DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"

_credentials: dict[str, SigningCredentials] = {}
_credentials_lock = threading.Lock()


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole (a temporary file renamed over it), mode 0600."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)
    os.replace(partial, path)


def _write_public(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, path)


@contextlib.contextmanager
def _chain_lock(folder: Path) -> Iterator[None]:
    """Every process (web, workers) creates, renews and reads the chain under one file
    lock beside it, so nobody ever pairs one signer's key with another's certificate."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "ab") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _key_matches(key_pem: bytes, chain_pem: bytes) -> bool:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificates(chain_pem)[0]
    except ValueError:
        return False
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*der) == cert.public_key().public_bytes(*der)


def _name(instance: str, common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, instance[:64] or "Easel"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


def _new_root(instance: str, now: datetime.datetime) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(instance, f"{instance} content credentials root")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=ROOT_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _new_signer(instance: str, root_key: Any, root_cert: Any, now: datetime.datetime) -> tuple[Any, Any]:
    """A signing certificate as C2PA requires it: end entity, digitalSignature, an EKU C2PA
    accepts (claim signing, document signing, email protection), issued by the root."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(instance, f"{instance} content credentials"))
            .issuer_name(root_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(min(now + datetime.timedelta(days=SIGNER_DAYS), root_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ObjectIdentifier(C2PA_CLAIM_SIGNING),
                                                  ObjectIdentifier(DOCUMENT_SIGNING),
                                                  ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                           critical=False)
            .sign(root_key, hashes.SHA256()))
    return key, cert


def _pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    data: bytes = cert.public_bytes(serialization.Encoding.PEM)
    return data


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    data: bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return data


def _write_signer(folder: Path, instance: str, root_key: Any, root_cert: Any,
                  now: datetime.datetime) -> None:
    key, cert = _new_signer(instance, root_key, root_cert, now)
    _write_private(folder / SIGNER_KEY, _key_pem(key))
    _write_public(folder / SIGNER_CHAIN, _pem(cert) + _pem(root_cert))


def _create_chain(folder: Path, instance: str) -> None:
    """Create the root CA and the signing certificate in a private temporary folder, then
    rename it into place: of two processes starting at once, one chain wins, whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=".c2pa-", dir=folder.parent))  # mode 0700
    try:
        now = datetime.datetime.now(datetime.UTC)
        root_key, root_cert = _new_root(instance, now)
        _write_private(temporary / ROOT_KEY, _key_pem(root_key))
        _write_public(temporary / ROOT_CERT, _pem(root_cert))
        _write_signer(temporary, instance, root_key, root_cert, now)
        try:
            os.rename(temporary, folder)
        except OSError:
            if not (folder / SIGNER_CHAIN).exists():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _renew_if_due(folder: Path, instance: str, chain_pem: bytes) -> bytes:
    """A new signing certificate from the root when the current one ends within 30 days,
    or when the stored key is not the certificate's (a write interrupted long ago)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    now = datetime.datetime.now(datetime.UTC)
    signer = x509.load_pem_x509_certificates(chain_pem)[0]
    if signer.not_valid_after_utc - now > RENEW_BEFORE \
            and _key_matches((folder / SIGNER_KEY).read_bytes(), chain_pem):
        return chain_pem
    root_key = serialization.load_pem_private_key((folder / ROOT_KEY).read_bytes(), password=None)
    root_cert = x509.load_pem_x509_certificate((folder / ROOT_CERT).read_bytes())
    log.info("renewing the C2PA signing certificate in %s", folder)
    _write_signer(folder, instance, root_key, root_cert, now)
    return (folder / SIGNER_CHAIN).read_bytes()


def signing_credentials(folder: Path, instance: str = "Easel") -> SigningCredentials:
    """The instance's C2PA signing chain in ``folder``, created on first use (root CA →
    signing certificate, ES256 on P-256, keys mode 0600). Read once per process."""
    folder = folder.resolve()
    with _credentials_lock:
        cached = _credentials.get(str(folder))
        if cached is not None:
            return cached
        with _chain_lock(folder):
            if not (folder / SIGNER_CHAIN).exists():
                _create_chain(folder, instance)
            chain = _renew_if_due(folder, instance, (folder / SIGNER_CHAIN).read_bytes())
            credentials = SigningCredentials(chain_pem=chain,
                                             key_pem=(folder / SIGNER_KEY).read_bytes())
        _credentials[str(folder)] = credentials
        return credentials


def forget_credentials() -> None:
    """Drop the per-process cache (tests; a rotated chain)."""
    with _credentials_lock:
        _credentials.clear()


#: The C2PA library's settings for everything Easel does with it: never touch the network
#: (no OCSP, no remote manifests), no thumbnails (they would repeat the image in the file).
C2PA_SETTINGS: dict[str, Any] = {
    "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False},
    "builder": {"thumbnail": {"enabled": False}},
}


def sign_c2pa(data: bytes, content_type: str, optout: OptOut) -> bytes:
    """``data`` with a C2PA manifest signed by the instance (raises on any failure)."""
    import c2pa

    assert optout.credentials_dir is not None
    credentials = signing_credentials(optout.credentials_dir, optout.instance)
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, credentials.chain_pem, credentials.key_pem, None)
    context = c2pa.Context.from_dict(C2PA_SETTINGS)
    with c2pa.Signer.from_info(info) as signer, \
            c2pa.Builder(json.dumps(manifest_definition(optout, content_type)), context=context) as builder:
        destination = io.BytesIO()
        builder.sign(signer, content_type, io.BytesIO(data), destination)
    return destination.getvalue()


def sign_or_keep(data: bytes, content_type: str, optout: OptOut) -> bytes:
    """``data`` with its C2PA manifest, or ``data`` as it is (XMP and EXIF) when signing
    fails: logged, never a failed upload."""
    try:
        return sign_c2pa(data, content_type, optout)
    except Exception:
        log.warning("C2PA manifest not written (the file keeps its XMP and EXIF)", exc_info=True)
        return data
