"""HTTP Signatures: sign what Easel sends, verify what other servers send it.

Every server-to-server request in the fediverse is authenticated by a signature over a
few parts of the HTTP message, made with the sending actor's RSA key. Two schemes are
in use:

- **draft-cavage** (draft-cavage-http-signatures-12), what Mastodon, GoToSocial, Pixelfed,
  Misskey and nearly every other server send: one ``Signature`` header with ``keyId``,
  ``algorithm``, ``headers`` and ``signature``. Easel signs in exactly Mastodon's form
  (:class:`CavageSigner`) and verifies ``rsa-sha256`` and ``hs2019`` with RSA keys
  (PKCS#1 v1.5, SHA-256).
- **RFC 9421** HTTP Message Signatures, which Mastodon 4.5 sends (``Signature-Input`` and
  ``Signature``, usually label ``sig1``). Verified with the ``http-message-signatures``
  library; :class:`RFC9421Signer` is there for when Easel negotiates it.

:func:`verify_request` is independent of any web framework: it takes the method, the
request target, the headers and the raw body, and asks an injected async ``key_lookup``
for the public key. It checks, in order: the request was sent to ``expected_host``; the
header parses; the algorithm is supported; the signature covers what an ActivityPub
request must cover (the target, the host, a time and, with a body, the digest); the time
is inside Mastodon's window; the body matches its ``Digest`` / ``Content-Digest``; the
key is known; the signature verifies. Each
failure is a :class:`SignatureError` subclass with a reason a log line can carry:

    SignatureError
    ├── SignatureMissing             the request carries no signature
    ├── WrongHost                    signed for another server (expected_host)
    ├── MalformedSignature           a header does not parse, or names a part not in the request
    ├── UnsupportedAlgorithm         an algorithm (or key type) Easel does not verify
    ├── RequiredComponentNotCovered  target, host, time or digest left out of the signature
    ├── DateOutsideWindow            signed too long ago, or in the future
    ├── DigestMismatch               the body is not the one the digest names (or no digest)
    ├── KeyNotFound                  key_lookup has no usable key for the keyId
    └── BadSignature                 the signature does not verify with that key

Key rotation is the caller's business: on :class:`BadSignature` it may refetch the actor
and call :func:`verify_request` again with the fresh key, once.

This module never fetches anything (keys come from ``key_lookup``), never reads the
clock directly (``clock`` is injected), never decides who the signer *is* (mapping the
key to an actor and checking it against the activity is the inbox's job), and never
trusts a part of the request the signature does not cover.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import functools
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import http_sf
import httpx
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureAlgorithm,
    InvalidSignature,
    MappingKeyResolver,
)
from http_message_signatures.algorithms import ED25519, RSA_PSS_SHA512, RSA_V1_5_SHA256

Clock = Callable[[], datetime]
KeyLookup = Callable[[str], Awaitable[str | None]]

# Mastodon's SignedRequest (app/lib/signed_request.rb): a signature is good for five
# minutes after its creation unless it says otherwise, never more than twelve hours,
# and an hour of clock skew is forgiven either side.
CLOCK_SKEW_MARGIN = timedelta(hours=1)
EXPIRATION_WINDOW_LIMIT = timedelta(hours=12)
DEFAULT_EXPIRATION = timedelta(minutes=5)

CAVAGE = "draft-cavage"
RFC9421 = "rfc9421"

REQUEST_TARGET = "(request-target)"
CAVAGE_ALGORITHMS = ("rsa-sha256", "hs2019")
RFC9421_ALGORITHMS: dict[str, type[HTTPSignatureAlgorithm]] = {
    "rsa-v1_5-sha256": RSA_V1_5_SHA256,
    "rsa-pss-sha512": RSA_PSS_SHA512,
    "ed25519": ED25519,
}
# Methods whose requests carry a body that the signature must bind through a digest.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# More signatures than this in one request is not a federating server; don't look them all up.
MAX_RFC9421_SIGNATURES = 4
# Parsed headers up to this size are remembered (a few of them) for the next request.
MAX_REMEMBERED_HEADER = 4096


def utc_now() -> datetime:
    return datetime.now(UTC)


def http_date(moment: datetime) -> str:
    """IMF-fixdate (RFC 7231 §7.1.1.1): ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return email.utils.format_datetime(moment.astimezone(UTC), usegmt=True)


def digest_header(body: bytes) -> str:
    """The ``Digest`` value Mastodon sends and checks: ``SHA-256=<base64>``."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


# --- errors ---------------------------------------------------------------------------


class SignatureError(Exception):
    """A request's signature cannot be accepted; ``reason`` is a stable short code."""

    reason = "invalid"


class SignatureMissing(SignatureError):
    reason = "missing"


class MalformedSignature(SignatureError):
    reason = "malformed"


class UnsupportedAlgorithm(SignatureError):
    reason = "unsupported_algorithm"


class RequiredComponentNotCovered(SignatureError):
    reason = "not_covered"


class DateOutsideWindow(SignatureError):
    reason = "date_window"


class DigestMismatch(SignatureError):
    reason = "digest_mismatch"


class KeyNotFound(SignatureError):
    reason = "key_not_found"


class WrongHost(SignatureError):
    """Signed for another server: a delivery captured on its way elsewhere, replayed here."""

    reason = "wrong_host"


class BadSignature(SignatureError):
    reason = "bad_signature"


@dataclass(frozen=True)
class VerifiedSignature:
    """What a good signature proves: this key signed these parts of the request."""

    key_id: str
    algorithm: str  # as the signature named it, lower case: rsa-sha256, hs2019, rsa-v1_5-sha256 …
    covered_components: tuple[str, ...]  # cavage: "(request-target)", "host" …; RFC 9421: "@method" …
    scheme: str  # CAVAGE or RFC9421
    created: datetime | None  # when it says it was signed (Date or created)


# --- signing --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _load_private_key(private_key_pem: str | bytes) -> rsa.RSAPrivateKey:
    """Load (once per process) one of Easel's own signing keys.

    The keys are ones Easel generated itself (server.services.keys), so the RSA
    consistency check, which costs ~75 ms a load, is skipped: cryptography documents
    skipping it as safe for keys from a trusted source. A delivery burst signs with the
    same few keys thousands of times.
    """
    pem = private_key_pem.encode("ascii") if isinstance(private_key_pem, str) else private_key_pem
    key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("federation signing needs an RSA private key")
    return key


def sign_cavage(private_key: rsa.RSAPrivateKey, key_id: str, components: Iterable[tuple[str, str]]) -> str:
    """The ``Signature`` header value for ``(name, value)`` pairs, in the order given.

    ``rsa-sha256`` (RSASSA-PKCS1-v1_5 with SHA-256), formatted as Mastodon formats it.
    """
    pairs = list(components)
    signing_string = "\n".join(f"{name}: {value}" for name, value in pairs)
    raw = private_key.sign(signing_string.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    names = " ".join(name for name, _ in pairs)
    return (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{names}",'
        f'signature="{base64.b64encode(raw).decode("ascii")}"'
    )


class CavageSigner(httpx.Auth):
    """Signs each outgoing request in the draft-cavage form Mastodon sends.

    POST (and any request with a body): ``(request-target) host date digest``, adding
    ``Digest: SHA-256=…`` over the exact body bytes. GET/HEAD: ``(request-target) host
    date accept`` (``accept`` only when the request has one). ``host`` is the Host header
    as it will be sent — httpx sets it from the URL, port included when not the default —
    and ``date`` is set here from ``clock``.
    """

    requires_request_body = True

    def __init__(self, key_id: str, private_key_pem: str | bytes, *, clock: Clock = utc_now) -> None:
        self.key_id = key_id
        self._key = _load_private_key(private_key_pem)
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        if "host" not in request.headers:
            request.headers["Host"] = request.url.netloc.decode("ascii")
        request.headers["Date"] = http_date(self._clock())
        method = request.method.upper()
        components = [
            (REQUEST_TARGET, f"{method.lower()} {request.url.raw_path.decode('ascii')}"),
            ("host", request.headers["host"]),
            ("date", request.headers["date"]),
        ]
        if method in ("GET", "HEAD") and not request.content:
            if "accept" in request.headers:
                components.append(("accept", request.headers["accept"]))
        else:
            request.headers["Digest"] = digest_header(request.content)
            components.append(("digest", request.headers["digest"]))
        request.headers["Signature"] = sign_cavage(self._key, self.key_id, components)


class RFC9421Signer(httpx.Auth):
    """Signs with RFC 9421 as Mastodon 4.5 does: label ``sig1``, rsa-v1_5-sha256,
    ``"@method" "@target-uri"`` plus ``"content-digest"`` (sha-256) when there is a body,
    ``created`` from ``clock`` and ``keyid``. Easel sends cavage until it negotiates this.
    """

    requires_request_body = True
    label = "sig1"

    def __init__(self, key_id: str, private_key_pem: str | bytes, *, clock: Clock = utc_now) -> None:
        self.key_id = key_id
        self._signer = HTTPMessageSigner(
            signature_algorithm=RSA_V1_5_SHA256,
            key_resolver=MappingKeyResolver(
                public_keys={}, private_keys={key_id: _load_private_key(private_key_pem)}
            ),
        )
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        has_body = request.method.upper() not in ("GET", "HEAD") or bool(request.content)
        message = _Message(request.method.upper(), str(request.url), request.headers)
        self._signer.sign(
            message,
            key_id=self.key_id,
            created=self._clock(),
            label=self.label,
            covered_component_ids=("@method", "@target-uri"),
            body=request.content if has_body else None,
            use_existing_digest=has_body,  # a re-sent request keeps its (checked) digest
        )


# --- verification: shared -------------------------------------------------------------


def _field_values(headers: Mapping[str, str]) -> dict[str, str]:
    """Header fields by lower-case name; repeated lines joined with ", " (both specs)."""
    lines: dict[str, list[str]] = {}
    items: Iterable[tuple[str, str]]
    multi_items = getattr(headers, "multi_items", None)
    items = multi_items() if callable(multi_items) else headers.items()
    for name, value in items:
        lines.setdefault(name.lower(), []).append(value.strip(" \t"))
    return {name: ", ".join(values) for name, values in lines.items()}


def _needs_digest(method: str, body: bytes) -> bool:
    return bool(body) or method.upper() in BODY_METHODS


def _check_time_window(created: datetime | None, expires: datetime | None, now: datetime) -> None:
    """Mastodon's window: not created more than an hour ahead, not past its expiry
    (five minutes after creation unless stated, at most twelve hours) plus an hour."""
    if created is None:
        if expires is not None and now > expires + CLOCK_SKEW_MARGIN:
            raise DateOutsideWindow(f"signature expired at {expires.isoformat()}")
        return
    if created > now + CLOCK_SKEW_MARGIN:
        raise DateOutsideWindow(f"signature is dated in the future ({created.isoformat()})")
    limit = created + EXPIRATION_WINDOW_LIMIT
    effective = min(expires or created + DEFAULT_EXPIRATION, limit)
    if now > effective + CLOCK_SKEW_MARGIN:
        raise DateOutsideWindow(f"signature dated {created.isoformat()} expired at {effective.isoformat()}")


def _parse_http_date(value: str) -> datetime:
    """A ``Date`` header's time (remembered: the requests signed in one second share it)."""
    return (_parse_date if len(value) <= MAX_REMEMBERED_HEADER else _parse_date.__wrapped__)(value)


@functools.lru_cache(maxsize=64)
def _parse_date(value: str) -> datetime:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError) as e:
        raise MalformedSignature(f"Date header is not an HTTP date: {value!r}") from e
    if parsed.tzinfo is None:
        raise MalformedSignature(f"Date header has no time zone: {value!r}")
    return parsed.astimezone(UTC)


def _timestamp(value: object, name: str) -> datetime:
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**12:
        raise MalformedSignature(f"{name} is not a Unix timestamp: {value!r}")
    return datetime.fromtimestamp(value, UTC)


@functools.lru_cache(maxsize=4096)
def _load_public_pem(pem: str) -> Any:
    """Parsing a PEM costs about as much as an RSA verify; inboxes see the same few keys."""
    return serialization.load_pem_public_key(pem.encode("ascii"))


async def _public_key(key_lookup: KeyLookup, key_id: str) -> Any:
    pem = await key_lookup(key_id)
    if not pem:
        raise KeyNotFound(f"no public key for {key_id}")
    try:
        return _load_public_pem(pem)
    except (ValueError, TypeError, UnicodeEncodeError) as e:
        raise KeyNotFound(f"the public key for {key_id} is not a readable PEM key") from e


async def verify_request(
    *,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    key_lookup: KeyLookup,
    clock: Clock = utc_now,
    scheme: str = "https",
    enforce_coverage: bool = True,
    expected_host: str | None = None,
) -> VerifiedSignature:
    """Verify an inbound request's signature; raise a :class:`SignatureError` if it fails.

    ``target`` is the path with its query string, as received (``/users/a/inbox?x=1``);
    ``headers`` any mapping of the received headers (names case-insensitive; Starlette's
    and httpx's keep repeated fields); ``body`` the exact bytes received; ``scheme`` the
    public scheme (``EASEL_SCHEME``), used to rebuild RFC 9421's ``@target-uri`` with the
    Host header. RFC 9421 is used when ``Signature-Input`` is present, draft-cavage
    otherwise.

    ``enforce_coverage=False`` drops only the federation policy on *what* must be signed
    (target, host, time, digest): what the signature does cover is still checked. It is
    for the specifications' test vectors, which sign less than ActivityPub requires.

    ``expected_host`` (this server's ``EASEL_DOMAIN``) is the host the request must have
    been signed for: the signature covers ``Host`` (or RFC 9421's authority), and without
    this check a delivery to another server's ``/inbox``, captured, verifies here too
    (:class:`WrongHost`). Compared case-insensitively, the scheme's default port implied.
    """
    fields = _field_values(headers)
    now = clock()
    if expected_host is not None and ("signature-input" in fields or "signature" in fields):
        sent = fields.get("host", "")
        if _authority(sent, scheme) != _authority(expected_host, scheme):
            raise WrongHost(f"the request was signed for host {sent or '(none)'!r}, "
                            f"not {expected_host!r}")
    if "signature-input" in fields:
        return await _verify_rfc9421(
            method.upper(), target, fields, body, key_lookup, now, scheme, enforce_coverage
        )
    if "signature" in fields:
        return await _verify_cavage(method.upper(), target, fields, body, key_lookup, now, enforce_coverage)
    raise SignatureMissing("the request is not signed (no Signature header)")


def _authority(host: str, scheme: str) -> str:
    """``Host`` as compared: lower case, without the scheme's default port."""
    value = host.strip().lower()
    default = ":443" if scheme == "https" else ":80"
    return value[: -len(default)] if value.endswith(default) else value


# --- verification: draft-cavage -------------------------------------------------------

# Possessive quantifiers: a quoted value is read in runs, not one character at a time
# (a 2048-bit signature is 344 characters), and never backtracked into.
_CAVAGE_PARAM = re.compile(
    r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]++|\\.)*+)"|([^",\s]+))\s*(?:,|$)')


def parse_cavage_signature(value: str) -> dict[str, str]:
    """``keyId="…",algorithm="…",…`` → parameters (names as sent). Strict about syntax."""
    # Remembered for a few headers of ordinary size: the inbox reads the keyId (to check
    # the domain before a key fetch), then verifies, from one header.
    parse = _parse_cavage if len(value) <= MAX_REMEMBERED_HEADER else _parse_cavage.__wrapped__
    return dict(parse(value))


@functools.lru_cache(maxsize=64)
def _parse_cavage(value: str) -> tuple[tuple[str, str], ...]:
    text = value.strip()
    # Old node-http-signature put a "Signature " prefix in the header; Mastodon accepts it.
    if text[:10].lower() == "signature ":
        text = text[10:]
    params: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _CAVAGE_PARAM.match(text, position)
        if match is None or match.end() == position:
            raise MalformedSignature(
                f"cannot parse the Signature header at {text[position : position + 20]!r}"
            )
        name = match.group(1)
        quoted = match.group(2)
        if quoted is None:
            raw = match.group(3)
        else:
            raw = re.sub(r"\\(.)", r"\1", quoted) if "\\" in quoted else quoted
        if name in params:
            raise MalformedSignature(f"parameter {name} appears twice in the Signature header")
        params[name] = raw
        position = match.end()
    if not params:
        raise MalformedSignature("the Signature header is empty")
    return tuple(params.items())


def _decode_signature(value: str) -> bytes:
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise MalformedSignature("signature is not base64") from e
    if not raw:
        raise MalformedSignature("signature is empty")
    return raw


def _cavage_signing_string(
    covered: list[str],
    method: str,
    request_target: str,
    fields: Mapping[str, str],
    params: Mapping[str, str],
    algorithm: str,
) -> str:
    lines = []
    for name in covered:
        if name == REQUEST_TARGET:
            value = f"{method.lower()} {request_target}"
        elif name in ("(created)", "(expires)"):
            if algorithm != "hs2019":
                raise MalformedSignature(f"{name} cannot be signed with {algorithm}")
            param = name[1:-1]
            if param not in params:
                raise MalformedSignature(f"{name} is covered but the {param} parameter is missing")
            value = params[param]
        elif name.startswith("("):
            raise MalformedSignature(f"unknown pseudo-header {name}")
        elif name in fields:
            value = fields[name]
        else:
            raise MalformedSignature(f"covered header {name} is not in the request")
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


def _check_legacy_digest(fields: Mapping[str, str], body: bytes) -> None:
    if "digest" not in fields:
        raise DigestMismatch("Digest header missing")
    offered: list[tuple[str, str]] = []
    for part in fields["digest"].split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            offered.append((name.strip().lower(), value.strip()))
    sha256 = [value for name, value in offered if name == "sha-256"]
    if not sha256:
        names = ", ".join(name for name, _ in offered) or "none"
        raise DigestMismatch(f"no SHA-256 digest in the Digest header (offered: {names})")
    expected = digest_header(body).partition("=")[2]
    if not any(hmac.compare_digest(value.encode(), expected.encode()) for value in sha256):
        raise DigestMismatch(f"the body's SHA-256 is {expected}, the Digest header says {sha256[0]}")


def _verify_pkcs1_sha256(key: Any, signature: bytes, message: str) -> bool:
    try:
        data = message.encode("latin-1")
    except UnicodeEncodeError:
        data = message.encode("utf-8")
    try:
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except CryptoInvalidSignature:
        return False
    return True


async def _verify_cavage(
    method: str,
    target: str,
    fields: Mapping[str, str],
    body: bytes,
    key_lookup: KeyLookup,
    now: datetime,
    enforce_coverage: bool,
) -> VerifiedSignature:
    params = parse_cavage_signature(fields["signature"])
    key_id = params.get("keyId", "")
    if not key_id or not params.get("signature"):
        raise MalformedSignature("keyId and signature are required in the Signature header")
    algorithm = params.get("algorithm", "hs2019").lower()
    if algorithm not in CAVAGE_ALGORITHMS:
        raise UnsupportedAlgorithm(f"algorithm {algorithm} is not supported (rsa-sha256, hs2019)")
    signature = _decode_signature(params["signature"])
    default_headers = "(created)" if algorithm == "hs2019" else "date"
    covered = params.get("headers", default_headers).lower().split()
    if not covered:
        raise MalformedSignature("the headers parameter is empty")

    if enforce_coverage:
        missing = [name for name in (REQUEST_TARGET, "host") if name not in covered]
        if "date" not in covered and "(created)" not in covered:
            missing.append("date")
        if _needs_digest(method, body) and "digest" not in covered:
            missing.append("digest")
        if missing:
            raise RequiredComponentNotCovered(f"the signature must cover {', '.join(missing)}")

    created: datetime | None = None
    if "(created)" in covered and "created" in params:
        created = _timestamp(params["created"], "created")
    if "date" in covered and "date" in fields:
        date = _parse_http_date(fields["date"])
        _check_time_window(date, None, now)
        created = created or date
    expires = None
    if "(expires)" in covered and "expires" in params:
        expires = _timestamp(params["expires"], "expires")
    _check_time_window(created, expires, now)

    if "digest" in covered:
        _check_legacy_digest(fields, body)

    signing_string = _cavage_signing_string(covered, method, target, fields, params, algorithm)
    key = await _public_key(key_lookup, key_id)
    if not isinstance(key, rsa.RSAPublicKey):
        raise UnsupportedAlgorithm(f"{algorithm} needs an RSA key; {key_id} is not one")
    good = _verify_pkcs1_sha256(key, signature, signing_string)
    if not good and REQUEST_TARGET in covered and "?" in target:
        # Mastodon before 4.3 signed the path without its query string; Mastodon accepts both.
        path_only = target.partition("?")[0]
        legacy = _cavage_signing_string(covered, method, path_only, fields, params, algorithm)
        good = _verify_pkcs1_sha256(key, signature, legacy)
    if not good:
        raise BadSignature(f"the signature does not verify with {key_id}")
    return VerifiedSignature(key_id, algorithm, tuple(covered), CAVAGE, created)


# --- verification: RFC 9421 -----------------------------------------------------------


@dataclass
class _Message:
    """The request shape http_message_signatures resolves components from."""

    method: str
    url: str
    headers: Any


class _ClockedVerifier(HTTPMessageVerifier):
    """The library's verifier with its wall-clock checks off: ours use the injected clock."""

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


def _parse_sf_dictionary(value: str, name: str) -> dict[str, Any]:
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError) as e:
        raise MalformedSignature(f"{name} is not a structured-field dictionary") from e
    if not isinstance(parsed, dict):
        raise MalformedSignature(f"{name} is not a structured-field dictionary")
    return parsed


def _check_content_digest(fields: Mapping[str, str], body: bytes) -> None:
    """Every sha-256 / sha-512 member must match the body; at least one must be there."""
    if "content-digest" not in fields:
        raise DigestMismatch("Content-Digest header missing")
    members = _parse_sf_dictionary(fields["content-digest"], "Content-Digest")
    hashers = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
    checked = 0
    for name, (value, _params) in members.items():
        if name not in hashers:
            continue
        if not isinstance(value, bytes):
            raise MalformedSignature(f"Content-Digest {name} is not a byte sequence")
        if not hmac.compare_digest(value, hashers[name](body).digest()):
            raise DigestMismatch(f"the body does not match the Content-Digest {name}")
        checked += 1
    if not checked:
        raise DigestMismatch(
            f"no sha-256 or sha-512 in Content-Digest (offered: {', '.join(members) or 'none'})"
        )


def _algorithms_for(alg: str | None, key: Any, key_id: str) -> list[type[HTTPSignatureAlgorithm]]:
    if alg is not None:
        algorithm = RFC9421_ALGORITHMS[alg]
        wanted = ed25519.Ed25519PublicKey if algorithm is ED25519 else rsa.RSAPublicKey
        if not isinstance(key, wanted):
            raise UnsupportedAlgorithm(f"alg {alg} does not fit the key type of {key_id}")
        return [algorithm]
    # No alg: the key decides (RFC 9421 §3.2). RSA: PKCS#1 v1.5 as Mastodon signs, else PSS.
    if isinstance(key, rsa.RSAPublicKey):
        return [RSA_V1_5_SHA256, RSA_PSS_SHA512]
    if isinstance(key, ed25519.Ed25519PublicKey):
        return [ED25519]
    raise UnsupportedAlgorithm(f"the key type of {key_id} is not supported")


async def _verify_rfc9421(
    method: str,
    target: str,
    fields: Mapping[str, str],
    body: bytes,
    key_lookup: KeyLookup,
    now: datetime,
    scheme: str,
    enforce_coverage: bool,
) -> VerifiedSignature:
    if "signature" not in fields:
        raise SignatureMissing("Signature-Input without a Signature header")
    inputs = _parse_sf_dictionary(fields["signature-input"], "Signature-Input")
    signatures = _parse_sf_dictionary(fields["signature"], "Signature")
    if not inputs:
        raise MalformedSignature("Signature-Input names no signature")
    if inputs.keys() != signatures.keys():
        raise MalformedSignature("Signature-Input and Signature name different labels")
    if len(inputs) > MAX_RFC9421_SIGNATURES:
        raise MalformedSignature(f"more than {MAX_RFC9421_SIGNATURES} signatures")
    # Several signatures (a proxy adds one): the first that verifies wins; if none does,
    # the first one's error is the answer.
    first_error: SignatureError | None = None
    for label in inputs:
        try:
            return await _verify_rfc9421_label(
                label,
                inputs[label],
                signatures[label],
                method,
                target,
                fields,
                body,
                key_lookup,
                now,
                scheme,
                enforce_coverage,
            )
        except SignatureError as e:
            first_error = first_error or e
    assert first_error is not None
    raise first_error


async def _verify_rfc9421_label(
    label: str,
    sig_input: Any,
    signature: Any,
    method: str,
    target: str,
    fields: Mapping[str, str],
    body: bytes,
    key_lookup: KeyLookup,
    now: datetime,
    scheme: str,
    enforce_coverage: bool,
) -> VerifiedSignature:
    components_list, params = sig_input
    if not isinstance(components_list, list):
        raise MalformedSignature(f"Signature-Input {label} is not an inner list")
    if not isinstance(signature[0], bytes) or not signature[0]:
        raise MalformedSignature(f"Signature {label} is not a byte sequence")
    components = []
    for item, _item_params in components_list:
        if not isinstance(item, str):
            raise MalformedSignature(f"Signature-Input {label} lists a component that is not a string")
        components.append(item)  # parameters (;key=, ;sf …) are resolved by the library
    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not key_id:
        raise MalformedSignature(f"Signature-Input {label} has no keyid")
    alg = params.get("alg")
    if alg is not None and (not isinstance(alg, str) or alg not in RFC9421_ALGORITHMS):
        raise UnsupportedAlgorithm(f"alg {alg} is not supported ({', '.join(RFC9421_ALGORITHMS)})")

    if enforce_coverage:
        missing = []
        if "@method" not in components:
            missing.append("@method")
        has_target = "@target-uri" in components or (
            "@authority" in components and ("@request-target" in components or "@path" in components)
        )
        if not has_target:
            missing.append("@target-uri")
        if "created" not in params and "date" not in components:
            missing.append("created")
        if _needs_digest(method, body) and "content-digest" not in components:
            missing.append("content-digest")
        if missing:
            raise RequiredComponentNotCovered(f"signature {label} must cover {', '.join(missing)}")

    created = _timestamp(params["created"], "created") if "created" in params else None
    if "date" in components and "date" in fields:
        date = _parse_http_date(fields["date"])
        _check_time_window(date, None, now)
        created = created or date
    expires = _timestamp(params["expires"], "expires") if "expires" in params else None
    _check_time_window(created, expires, now)

    if "content-digest" in components:
        _check_content_digest(fields, body)

    if "host" not in fields:
        raise MalformedSignature("the request has no Host header")
    # Only the chosen label goes to the library, so it never has to choose.
    message_fields = dict(fields)
    message_fields["signature-input"] = http_sf.ser({label: sig_input})
    message_fields["signature"] = http_sf.ser({label: signature})
    message = _Message(method, f"{scheme}://{fields['host']}{target}", message_fields)

    key = await _public_key(key_lookup, key_id)
    last_failure: Exception | None = None
    for algorithm in _algorithms_for(alg, key, key_id):
        verifier = _ClockedVerifier(
            signature_algorithm=algorithm,
            key_resolver=MappingKeyResolver(public_keys={key_id: key}, private_keys={}),
        )
        try:
            verifier.verify(message, max_age=None)
        except InvalidSignature as e:
            if not isinstance(e.__cause__, CryptoInvalidSignature):
                raise MalformedSignature(f"signature {label}: {e}") from e
            last_failure = e
            continue
        except HTTPMessageSignaturesException as e:
            raise MalformedSignature(f"signature {label}: {e}") from e
        return VerifiedSignature(key_id, algorithm.algorithm_id, tuple(components), RFC9421, created)
    raise BadSignature(f"signature {label} does not verify with {key_id}") from last_failure
