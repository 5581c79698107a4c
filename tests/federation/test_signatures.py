"""HTTP Signatures: the specifications' vectors, round trips through httpx, what Mastodon
sends, and every way a signature is refused."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver
from http_message_signatures.algorithms import RSA_V1_5_SHA256

from federation.signatures import (
    CAVAGE,
    RFC9421,
    BadSignature,
    CavageSigner,
    DateOutsideWindow,
    DigestMismatch,
    KeyNotFound,
    MalformedSignature,
    RequiredComponentNotCovered,
    RFC9421Signer,
    SignatureError,
    SignatureMissing,
    UnsupportedAlgorithm,
    VerifiedSignature,
    digest_header,
    http_date,
    parse_cavage_signature,
    sign_cavage,
    verify_request,
)
from server.services.keys import generate_key_pair

VECTORS = Path(__file__).parent / "vectors"
CAVAGE_VECTORS = json.loads((VECTORS / "draft-cavage-12.json").read_text())
RFC9421_VECTORS = json.loads((VECTORS / "rfc9421.json").read_text())

NOW = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
ALICE_KEY_ID = "https://easel.test/users/alice#main-key"
CAROL_KEY_ID = "https://mastodon.example/users/carol#main-key"
ALICE_PRIVATE, ALICE_PUBLIC = generate_key_pair()
MALLORY_PRIVATE, MALLORY_PUBLIC = generate_key_pair()
CAROL_PRIVATE, CAROL_PUBLIC = generate_key_pair()
INBOX = "https://remote.example:8443/users/bob/inbox"
ACTIVITY = b'{"type":"Create","actor":"https://easel.test/users/alice"}'


def fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def keys(mapping: dict[str, str]) -> Callable[[str], Awaitable[str | None]]:
    async def lookup(key_id: str) -> str | None:
        return mapping.get(key_id)

    return lookup


ALICE_KEYS = keys({ALICE_KEY_ID: ALICE_PUBLIC})


async def verify(
    request: httpx.Request,
    lookup: Callable[[str], Awaitable[str | None]] = ALICE_KEYS,
    *,
    now: datetime = NOW,
    body: bytes | None = None,
    **options: Any,
) -> VerifiedSignature:
    """Verify an httpx request as the receiving end would see it."""
    return await verify_request(
        method=request.method,
        target=request.url.raw_path.decode("ascii"),
        headers=request.headers,
        body=request.content if body is None else body,
        key_lookup=lookup,
        clock=fixed(now),
        **options,
    )


def signed_post(url: str = INBOX, body: bytes = ACTIVITY, at: datetime = NOW) -> httpx.Request:
    request = httpx.Request("POST", url, content=body, headers={"Content-Type": "application/activity+json"})
    CavageSigner(ALICE_KEY_ID, ALICE_PRIVATE, clock=fixed(at)).sign(request)
    return request


def with_signature(request: httpx.Request, **changes: str | None) -> httpx.Request:
    """The request with parameters of its cavage Signature header changed (None drops one)."""
    params = parse_cavage_signature(request.headers["signature"])
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    request.headers["Signature"] = ",".join(f'{name}="{value}"' for name, value in params.items())
    return request


def resign(request: httpx.Request, private_pem: str, key_id: str, covered: list[str]) -> httpx.Request:
    """Sign ``covered`` of the request as it stands (for hand-made coverage)."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    target = f"{request.method.lower()} {request.url.raw_path.decode()}"
    components = [(name, target if name == "(request-target)" else request.headers[name]) for name in covered]
    request.headers["Signature"] = sign_cavage(key, key_id, components)
    return request


# --- draft-cavage-http-signatures-12, Appendix C --------------------------------------

CAVAGE_KEY = (VECTORS / "cavage-test-key.pem").read_text()
CAVAGE_PUBLIC = (VECTORS / "cavage-test-key.pub.pem").read_text()
CAVAGE_NOW = datetime(2014, 1, 5, 21, 31, 40, tzinfo=UTC)
CAVAGE_CASES = CAVAGE_VECTORS["cases"]


def cavage_request(case: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    spec = CAVAGE_VECTORS["request"]
    headers = dict(spec["headers"])
    header = 'keyId="Test",algorithm="rsa-sha256",'
    if case["headers"] is not None:
        header += f'headers="{case["headers"]}",'
    headers["Signature"] = header + f'signature="{case["signature"]}"'
    return headers, spec["body"].encode()


@pytest.mark.parametrize("name", sorted(CAVAGE_CASES))
def test_the_signer_reproduces_the_draft_signatures(name: str) -> None:
    case = CAVAGE_CASES[name]
    spec = CAVAGE_VECTORS["request"]
    headers = {key.lower(): value for key, value in spec["headers"]}
    target = f"post {spec['target']}"
    components = [(c, target if c == "(request-target)" else headers[c]) for c in case["covered"]]
    key = serialization.load_pem_private_key(CAVAGE_KEY.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    produced = parse_cavage_signature(sign_cavage(key, "Test", components))
    assert produced["signature"] == case["signature"]
    assert produced["headers"] == " ".join(case["covered"])
    assert digest_header(spec["body"].encode()) == headers["digest"]


@pytest.mark.parametrize("name", sorted(CAVAGE_CASES))
async def test_the_draft_vectors_verify(name: str) -> None:
    case = CAVAGE_CASES[name]
    headers, body = cavage_request(case)
    verified = await verify_request(
        method="POST",
        target=CAVAGE_VECTORS["request"]["target"],
        headers=headers,
        body=body,
        key_lookup=keys({"Test": CAVAGE_PUBLIC}),
        clock=fixed(CAVAGE_NOW),
        enforce_coverage=False,
    )
    assert verified == VerifiedSignature("Test", "rsa-sha256", tuple(case["covered"]), CAVAGE, CAVAGE_NOW)


async def test_the_draft_all_headers_vector_is_a_valid_federation_post() -> None:
    headers, body = cavage_request(CAVAGE_CASES["C.3 all headers"])
    verified = await verify_request(
        method="POST",
        target="/foo?param=value&pet=dog",
        headers=headers,
        body=body,
        key_lookup=keys({"Test": CAVAGE_PUBLIC}),
        clock=fixed(CAVAGE_NOW),
    )
    assert verified.key_id == "Test"


@pytest.mark.parametrize("name", ["C.1 default", "C.2 basic"])
async def test_the_draft_vectors_that_leave_out_the_digest_are_not_enough_for_a_post(name: str) -> None:
    headers, body = cavage_request(CAVAGE_CASES[name])
    with pytest.raises(RequiredComponentNotCovered, match="digest"):
        await verify_request(
            method="POST",
            target="/foo?param=value&pet=dog",
            headers=headers,
            body=body,
            key_lookup=keys({"Test": CAVAGE_PUBLIC}),
            clock=fixed(CAVAGE_NOW),
        )


async def test_a_draft_vector_with_its_body_changed_is_refused() -> None:
    headers, _ = cavage_request(CAVAGE_CASES["C.3 all headers"])
    with pytest.raises(DigestMismatch):
        await verify_request(
            method="POST",
            target="/foo?param=value&pet=dog",
            headers=headers,
            body=b'{"hello": "mars!"}',
            key_lookup=keys({"Test": CAVAGE_PUBLIC}),
            clock=fixed(CAVAGE_NOW),
        )


# --- RFC 9421 -------------------------------------------------------------------------

RFC_KEYS = keys({key_id: (VECTORS / path).read_text() for key_id, path in RFC9421_VECTORS["keys"].items()})
RFC_CASES = RFC9421_VECTORS["cases"]


def rfc_request(case: dict[str, Any], spec: dict[str, Any] | None = None) -> tuple[dict[str, str], bytes]:
    spec = spec or RFC9421_VECTORS["test_request"]
    headers = dict(spec["headers"])
    headers["Signature-Input"] = case["signature_input"]
    headers["Signature"] = case["signature"]
    return headers, spec["body"].encode()


async def verify_rfc(headers: dict[str, str], body: bytes, at: int, **options: Any) -> VerifiedSignature:
    spec = RFC9421_VECTORS["test_request"]
    return await verify_request(
        method=spec["method"],
        target=spec["target"],
        headers=headers,
        body=body,
        key_lookup=RFC_KEYS,
        clock=fixed(datetime.fromtimestamp(at, UTC)),
        **options,
    )


@pytest.mark.parametrize("name", sorted(RFC_CASES))
async def test_the_rfc9421_rsa_pss_vectors_verify(name: str) -> None:
    # RSA-PSS signatures are randomised: the published ones are verified, not reproduced.
    case = RFC_CASES[name]
    headers, body = rfc_request(case)
    verified = await verify_rfc(headers, body, case["created"], enforce_coverage=False)
    assert (verified.key_id, verified.algorithm, verified.scheme) == (
        "test-key-rsa-pss",
        "rsa-pss-sha512",
        RFC9421,
    )
    assert list(verified.covered_components) == case["covered"]
    assert verified.created == datetime.fromtimestamp(case["created"], UTC)


@pytest.mark.parametrize("name", sorted(RFC_CASES))
async def test_an_rfc9421_vector_with_a_flipped_signature_bit_is_refused(name: str) -> None:
    case = RFC_CASES[name]
    headers, body = rfc_request(case)
    label, _, rest = case["signature"].partition("=:")
    raw = bytearray(base64.b64decode(rest.rstrip(":")))
    raw[10] ^= 1
    headers["Signature"] = f"{label}=:{base64.b64encode(bytes(raw)).decode()}:"
    with pytest.raises(BadSignature):
        await verify_rfc(headers, body, case["created"], enforce_coverage=False)


async def test_an_rfc9421_vector_with_its_body_changed_is_refused() -> None:
    case = RFC_CASES["B.2.2 selective covered components (rsa-pss-sha512)"]
    headers, _ = rfc_request(case)
    with pytest.raises(DigestMismatch):
        await verify_rfc(headers, b'{"hello": "mars!"}', case["created"], enforce_coverage=False)


async def test_the_rfc9421_proxy_signature_verifies_with_test_key_rsa() -> None:
    # Section 4.3: sig1's key (ECDSA) is unknown here; the proxy's rsa-v1_5-sha256 one verifies.
    spec = RFC9421_VECTORS["proxied_request"]
    verified = await verify_request(
        method=spec["method"],
        target=spec["target"],
        headers=dict(spec["headers"]),
        body=spec["body"].encode(),
        key_lookup=RFC_KEYS,
        clock=fixed(datetime.fromtimestamp(spec["created"], UTC)),
    )
    assert (verified.key_id, verified.algorithm) == ("test-key-rsa", "rsa-v1_5-sha256")
    assert "forwarded" in verified.covered_components


def test_the_rfc9421_test_key_rsa_reproduces_the_proxy_signature() -> None:
    # rsa-v1_5-sha256 is deterministic: the stored private key must give the published bytes.
    spec = RFC9421_VECTORS["proxied_request"]
    headers = httpx.Headers([h for h in spec["headers"] if h[0] not in ("Signature-Input", "Signature")])
    request = httpx.Request(
        "POST", "https://origin.host.internal.example/foo?param=Value&Pet=dog", headers=headers
    )
    private = serialization.load_pem_private_key((VECTORS / "rfc9421-test-key-rsa.pem").read_bytes(), None)
    signer = HTTPMessageSigner(
        signature_algorithm=RSA_V1_5_SHA256,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={"test-key-rsa": private}),
    )
    signer.sign(
        request,
        key_id="test-key-rsa",
        label="proxy_sig",
        created=datetime.fromtimestamp(1618884480, UTC),
        expires=datetime.fromtimestamp(1618884540, UTC),
        covered_component_ids=(
            "@method",
            "@authority",
            "@path",
            "content-digest",
            "content-type",
            "content-length",
            "forwarded",
        ),
        use_existing_digest=True,
    )
    published = dict(spec["headers"])
    assert request.headers["Signature"] == published["Signature"].split(", ")[1]


async def test_the_rsa_pss_key_signs_what_verifies() -> None:
    private = serialization.load_pem_private_key(
        (VECTORS / "rfc9421-test-key-rsa-pss.pem").read_bytes(), None
    )
    assert isinstance(private, rsa.RSAPrivateKey)
    headers = dict(RFC9421_VECTORS["test_request"]["headers"])
    params = '("@authority");created=1618884473;keyid="test-key-rsa-pss"'
    base = f'"@authority": example.com\n"@signature-params": {params}'
    raw = private.sign(base.encode(), padding.PSS(padding.MGF1(hashes.SHA512()), 64), hashes.SHA512())
    headers["Signature-Input"] = f"sig={params}"
    headers["Signature"] = f"sig=:{base64.b64encode(raw).decode()}:"
    verified = await verify_rfc(headers, b'{"hello": "world"}', 1618884473, enforce_coverage=False)
    assert verified.algorithm == "rsa-pss-sha512"


# --- round trips through httpx --------------------------------------------------------


async def receive_with_verifier(
    auth: httpx.Auth, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Request, VerifiedSignature]:
    """Send through a MockTransport whose far end verifies what actually arrived."""
    seen: list[tuple[httpx.Request, VerifiedSignature]] = []

    async def far_end(request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        verified = await verify_request(
            method=request.method,
            target=request.url.raw_path.decode("ascii"),
            headers=request.headers,
            body=body,
            key_lookup=ALICE_KEYS,
            clock=fixed(NOW),
            scheme=request.url.scheme,
        )
        seen.append((request, verified))
        return httpx.Response(202)

    async with httpx.AsyncClient(transport=httpx.MockTransport(far_end), auth=auth) as client:
        response = await client.request(method, url, **kwargs)
    assert response.status_code == 202
    return seen[0]


@pytest.mark.parametrize(
    "url, host",
    [
        (INBOX, "remote.example:8443"),
        ("https://remote.example/inbox?page=2", "remote.example"),
        ("http://127.0.0.1:8081/users/bob/inbox", "127.0.0.1:8081"),
    ],
)
async def test_a_signed_post_verifies_at_the_far_end(url: str, host: str) -> None:
    signer = CavageSigner(ALICE_KEY_ID, ALICE_PRIVATE, clock=fixed(NOW))
    request, verified = await receive_with_verifier(
        signer, "POST", url, content=ACTIVITY, headers={"Content-Type": "application/activity+json"}
    )
    assert request.headers["host"] == host
    assert request.headers["date"] == http_date(NOW) == "Thu, 01 May 2025 12:00:00 GMT"
    assert (
        request.headers["digest"] == "SHA-256=" + base64.b64encode(hashlib.sha256(ACTIVITY).digest()).decode()
    )
    params = parse_cavage_signature(request.headers["signature"])
    assert list(params) == ["keyId", "algorithm", "headers", "signature"]
    assert (params["keyId"], params["algorithm"], params["headers"]) == (
        ALICE_KEY_ID,
        "rsa-sha256",
        "(request-target) host date digest",
    )
    assert verified == VerifiedSignature(
        ALICE_KEY_ID, "rsa-sha256", ("(request-target)", "host", "date", "digest"), CAVAGE, NOW
    )


async def test_a_signed_get_covers_accept_and_verifies() -> None:
    signer = CavageSigner(ALICE_KEY_ID, ALICE_PRIVATE, clock=fixed(NOW))
    request, verified = await receive_with_verifier(
        signer,
        "GET",
        "https://remote.example:8443/users/bob?x=1",
        headers={"Accept": "application/activity+json"},
    )
    assert "digest" not in request.headers
    assert (
        parse_cavage_signature(request.headers["signature"])["headers"] == "(request-target) host date accept"
    )
    assert verified.covered_components == ("(request-target)", "host", "date", "accept")


async def test_a_get_without_accept_signs_the_rest() -> None:
    request = httpx.Request("GET", "https://remote.example:8443/users/bob")
    CavageSigner(ALICE_KEY_ID, ALICE_PRIVATE, clock=fixed(NOW)).sign(request)
    assert parse_cavage_signature(request.headers["signature"])["headers"] == "(request-target) host date"
    assert (await verify(request)).key_id == ALICE_KEY_ID


@pytest.mark.parametrize(
    "method, kwargs",
    [("POST", {"content": ACTIVITY}), ("GET", {"headers": {"Accept": "application/activity+json"}})],
)
async def test_rfc9421_signing_round_trips(method: str, kwargs: dict[str, Any]) -> None:
    signer = RFC9421Signer(ALICE_KEY_ID, ALICE_PRIVATE, clock=fixed(NOW))
    request, verified = await receive_with_verifier(signer, method, INBOX + "?a=b", **kwargs)
    assert request.headers["signature-input"].startswith('sig1=("@method" "@target-uri"')
    expected = (
        ("@method", "@target-uri", "content-digest") if method == "POST" else ("@method", "@target-uri")
    )
    assert (verified.scheme, verified.algorithm, verified.covered_components) == (
        RFC9421,
        "rsa-v1_5-sha256",
        expected,
    )
    assert verified.created == NOW


async def test_signing_again_replaces_the_signature() -> None:
    request = signed_post()
    CavageSigner(ALICE_KEY_ID, ALICE_PRIVATE, clock=fixed(NOW + timedelta(minutes=1))).sign(request)
    RFC9421Signer(ALICE_KEY_ID, ALICE_PRIVATE, clock=fixed(NOW)).sign(request)
    RFC9421Signer(ALICE_KEY_ID, ALICE_PRIVATE, clock=fixed(NOW)).sign(request)
    assert request.headers.get_list("signature-input") == [request.headers["signature-input"]]
    assert (await verify(request)).scheme == RFC9421


def test_quoted_parameters_may_escape_quotes() -> None:
    params = parse_cavage_signature(r'keyId="a\"b", algorithm=rsa-sha256 ,signature="AA=="')
    assert params == {"keyId": 'a"b', "algorithm": "rsa-sha256", "signature": "AA=="}


def test_the_signer_wants_an_rsa_key() -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="RSA"):
        CavageSigner(ALICE_KEY_ID, pem)


# --- what Mastodon sends --------------------------------------------------------------


def mastodon_post(
    path: str = "/users/alice/inbox", signed_path: str | None = None
) -> tuple[dict[str, str], bytes]:
    """A delivery as Mastodon's Request class builds it (app/lib/request.rb)."""
    body = json.dumps(
        {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": "https://mastodon.example/users/carol#likes/1",
            "type": "Like",
            "actor": "https://mastodon.example/users/carol",
            "object": "https://easel.test/users/alice/statuses/1",
        }
    ).encode()
    headers = {
        "Host": "easel.test",
        "User-Agent": "http.rb/5.2.0 (Mastodon/4.3.2; +https://mastodon.example/)",
        "Date": http_date(NOW - timedelta(seconds=3)),
        "Accept-Encoding": "gzip",
        "Digest": "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode(),
        "Content-Type": "application/activity+json",
    }
    signed = ["(request-target)", "host", "date", "digest", "content-type"]
    target = f"post {signed_path or path}"
    string = "\n".join(
        f"{name}: {target if name == '(request-target)' else headers[name.title()]}" for name in signed
    )
    key = serialization.load_pem_private_key(CAROL_PRIVATE.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = base64.b64encode(key.sign(string.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    headers["Signature"] = (
        f'keyId="{CAROL_KEY_ID}",algorithm="rsa-sha256",headers="{" ".join(signed)}",signature="{signature}"'
    )
    return headers, body


async def test_a_mastodon_delivery_verifies() -> None:
    headers, body = mastodon_post()
    verified = await verify_request(
        method="POST",
        target="/users/alice/inbox",
        headers=headers,
        body=body,
        key_lookup=keys({CAROL_KEY_ID: CAROL_PUBLIC}),
        clock=fixed(NOW),
    )
    assert verified.key_id == CAROL_KEY_ID
    assert verified.covered_components == ("(request-target)", "host", "date", "digest", "content-type")


async def test_older_mastodon_signing_the_path_without_its_query_verifies() -> None:
    headers, body = mastodon_post(path="/inbox?x=1", signed_path="/inbox")
    verified = await verify_request(
        method="POST",
        target="/inbox?x=1",
        headers=headers,
        body=body,
        key_lookup=keys({CAROL_KEY_ID: CAROL_PUBLIC}),
        clock=fixed(NOW),
    )
    assert verified.key_id == CAROL_KEY_ID


async def test_a_mastodon_4_5_rfc9421_delivery_verifies() -> None:
    _, body = mastodon_post()
    request = httpx.Request(
        "POST",
        "https://easel.test/users/alice/inbox",
        content=body,
        headers={"Content-Type": "application/activity+json"},
    )
    private = serialization.load_pem_private_key(CAROL_PRIVATE.encode(), password=None)
    HTTPMessageSigner(
        signature_algorithm=RSA_V1_5_SHA256,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={CAROL_KEY_ID: private}),
    ).sign(
        request,
        key_id=CAROL_KEY_ID,
        label="sig1",
        created=NOW - timedelta(seconds=2),
        include_alg=False,
        covered_component_ids=("@method", "@target-uri"),
        body=body,
    )
    assert request.headers["signature-input"].startswith('sig1=("@method" "@target-uri" "content-digest")')
    assert request.headers["content-digest"].startswith("sha-256=:")
    verified = await verify(request, keys({CAROL_KEY_ID: CAROL_PUBLIC}))
    assert (verified.key_id, verified.algorithm, verified.scheme) == (
        CAROL_KEY_ID,
        "rsa-v1_5-sha256",
        RFC9421,
    )


# --- what else is accepted ------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RSA-SHA256", "hs2019", "HS2019", None])
async def test_the_algorithm_is_case_insensitive_and_optional(algorithm: str | None) -> None:
    verified = await verify(with_signature(signed_post(), algorithm=algorithm))
    assert verified.algorithm == (algorithm or "hs2019").lower()


@pytest.mark.parametrize(
    "digest",
    ["sha-256={good}", "SHA-512=AAAA,SHA-256={good}", "SHA-256=AAAA, SHA-256={good}", "Sha-256={good}"],
)
async def test_any_matching_sha256_digest_is_enough(digest: str) -> None:
    request = signed_post()
    good = request.headers["digest"].partition("=")[2]
    request.headers["Digest"] = digest.format(good=good)
    request = resign(request, ALICE_PRIVATE, ALICE_KEY_ID, ["(request-target)", "host", "date", "digest"])
    assert (await verify(request)).key_id == ALICE_KEY_ID


async def test_hs2019_with_created_and_expires_verifies() -> None:
    request = signed_post()
    del request.headers["date"]
    created = int(NOW.timestamp()) - 10
    covered = ["(request-target)", "host", "(created)", "(expires)", "digest"]
    string = "\n".join(
        [
            f"(request-target): post {request.url.raw_path.decode()}",
            f"host: {request.headers['host']}",
            f"(created): {created}",
            f"(expires): {created + 300}",
            f"digest: {request.headers['digest']}",
        ]
    )
    key = serialization.load_pem_private_key(ALICE_PRIVATE.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    raw = base64.b64encode(key.sign(string.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    request.headers["Signature"] = (
        f'keyId="{ALICE_KEY_ID}",algorithm="hs2019",created={created},expires={created + 300},'
        f'headers="{" ".join(covered)}",signature="{raw}"'
    )
    verified = await verify(request)
    assert verified.created == datetime.fromtimestamp(created, UTC)
    with pytest.raises(DateOutsideWindow):
        await verify(request, now=NOW + timedelta(hours=1, minutes=6))


@pytest.mark.parametrize("age", [timedelta(minutes=-59), timedelta(minutes=64)])
async def test_mastodons_window_forgives_an_hour_of_skew(age: timedelta) -> None:
    assert (await verify(signed_post(at=NOW - age))).created == NOW - age


async def test_a_starlette_request_verifies() -> None:
    from starlette.datastructures import Headers

    request = signed_post()
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.multi_items()]
    verified = await verify_request(
        method="POST",
        target="/users/bob/inbox",
        headers=Headers(raw=raw),
        body=ACTIVITY,
        key_lookup=ALICE_KEYS,
        clock=fixed(NOW),
    )
    assert verified.key_id == ALICE_KEY_ID


# --- every rejection: draft-cavage ----------------------------------------------------


async def refused(
    request: httpx.Request, error: type[SignatureError], match: str | None = None, **kwargs: Any
) -> None:
    with pytest.raises(error, match=match) as caught:
        await verify(request, **kwargs)
    assert isinstance(caught.value, SignatureError)


async def test_unsigned_is_refused() -> None:
    request = httpx.Request("POST", INBOX, content=ACTIVITY)
    await refused(request, SignatureMissing)
    assert SignatureMissing.reason == "missing"


async def test_a_forged_signature_is_refused() -> None:
    request = signed_post()
    params = parse_cavage_signature(request.headers["signature"])
    raw = bytearray(base64.b64decode(params["signature"]))
    raw[0] ^= 0xFF
    await refused(with_signature(request, signature=base64.b64encode(bytes(raw)).decode()), BadSignature)


async def test_a_signature_by_another_key_is_refused() -> None:
    forged = resign(
        signed_post(), MALLORY_PRIVATE, ALICE_KEY_ID, ["(request-target)", "host", "date", "digest"]
    )
    await refused(forged, BadSignature)


async def test_a_signature_checked_against_the_wrong_key_is_refused() -> None:
    await refused(signed_post(), BadSignature, lookup=keys({ALICE_KEY_ID: MALLORY_PUBLIC}))


async def test_a_changed_signed_header_is_refused() -> None:
    request = signed_post()
    request.headers["Host"] = "other.example"
    await refused(request, BadSignature)


async def test_a_replay_to_another_inbox_is_refused() -> None:
    request = signed_post()
    moved = httpx.Request(
        "POST", "https://remote.example:8443/users/carol/inbox", content=ACTIVITY, headers=request.headers
    )
    await refused(moved, BadSignature)


async def test_an_expired_date_is_refused() -> None:
    await refused(signed_post(at=NOW - timedelta(minutes=66)), DateOutsideWindow, "expired")


async def test_a_future_date_is_refused() -> None:
    await refused(signed_post(at=NOW + timedelta(minutes=61)), DateOutsideWindow, "future")


async def test_an_unreadable_date_is_refused() -> None:
    request = signed_post()
    request.headers["Date"] = "yesterday"
    await refused(request, MalformedSignature, "Date")


async def test_a_wrong_digest_is_refused() -> None:
    await refused(signed_post(), DigestMismatch, "SHA-256", body=ACTIVITY + b" ")


async def test_a_digest_without_sha256_is_refused() -> None:
    request = signed_post()
    request.headers["Digest"] = "SHA-512=" + base64.b64encode(hashlib.sha512(ACTIVITY).digest()).decode()
    request = resign(request, ALICE_PRIVATE, ALICE_KEY_ID, ["(request-target)", "host", "date", "digest"])
    await refused(request, DigestMismatch, "offered: sha-512")


@pytest.mark.parametrize("left_out", ["digest", "host", "(request-target)", "date"])
async def test_a_post_signature_must_cover_target_host_date_and_digest(left_out: str) -> None:
    covered = [name for name in ["(request-target)", "host", "date", "digest"] if name != left_out]
    request = resign(signed_post(), ALICE_PRIVATE, ALICE_KEY_ID, covered)
    await refused(request, RequiredComponentNotCovered, left_out.strip("()"))


async def test_a_covered_digest_that_is_missing_is_refused() -> None:
    request = signed_post()
    del request.headers["Digest"]
    await refused(request, DigestMismatch, "missing")


@pytest.mark.parametrize("algorithm", ["rsa-sha512", "hmac-sha256", "ed25519", "ecdsa-sha256"])
async def test_an_unsupported_algorithm_is_refused(algorithm: str) -> None:
    await refused(with_signature(signed_post(), algorithm=algorithm), UnsupportedAlgorithm, algorithm)


async def test_hs2019_with_a_key_that_is_not_rsa_is_refused() -> None:
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    await refused(
        with_signature(signed_post(), algorithm="hs2019"),
        UnsupportedAlgorithm,
        lookup=keys({ALICE_KEY_ID: pem}),
    )


async def test_created_cannot_be_signed_with_rsa_sha256() -> None:
    request = with_signature(
        signed_post(),
        headers="(request-target) host date digest (created)",
        created=str(int(NOW.timestamp())),
    )
    await refused(request, MalformedSignature, "created")


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        'keyId="x"',
        'signature="AAAA"',
        f'keyId="{ALICE_KEY_ID}",signature="not base64!"',
        f'keyId="{ALICE_KEY_ID}",keyId="again",signature="AAAA"',
        f'keyId="{ALICE_KEY_ID}",headers="",signature="AAAA"',
        f'keyId="{ALICE_KEY_ID}",headers="(request-target) host date digest (nonsense)",signature="AAAA"',
        f'keyId="{ALICE_KEY_ID}",headers="(request-target) host date digest x-absent",signature="AAAA"',
        f'keyId="{ALICE_KEY_ID}" signature="AAAA"',
    ],
)
async def test_a_malformed_signature_header_is_refused(header: str) -> None:
    request = signed_post()
    request.headers["Signature"] = header
    await refused(request, MalformedSignature)


async def test_an_unknown_key_is_refused() -> None:
    await refused(signed_post(), KeyNotFound, lookup=keys({}))


async def test_an_unreadable_key_is_refused() -> None:
    await refused(
        signed_post(), KeyNotFound, "PEM", lookup=keys({ALICE_KEY_ID: "-----BEGIN PUBLIC KEY-----\nxx"})
    )


async def test_the_buggy_signature_prefix_is_tolerated() -> None:
    request = signed_post()
    request.headers["Signature"] = "Signature " + request.headers["signature"]
    assert (await verify(request)).key_id == ALICE_KEY_ID


# --- every rejection: RFC 9421 --------------------------------------------------------


def rfc9421_post(
    *,
    at: datetime = NOW,
    covered: tuple[str, ...] = ("@method", "@target-uri"),
    body: bytes | None = ACTIVITY,
    **options: Any,
) -> httpx.Request:
    request = httpx.Request("POST", INBOX, content=ACTIVITY)
    private = serialization.load_pem_private_key(ALICE_PRIVATE.encode(), password=None)
    HTTPMessageSigner(
        signature_algorithm=RSA_V1_5_SHA256,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={ALICE_KEY_ID: private}),
    ).sign(
        request,
        key_id=ALICE_KEY_ID,
        label="sig1",
        created=at,
        covered_component_ids=covered,
        body=body,
        **options,
    )
    return request


async def test_an_rfc9421_post_verifies() -> None:
    verified = await verify(rfc9421_post())
    assert verified.covered_components == ("@method", "@target-uri", "content-digest")


async def test_rfc9421_signature_input_without_a_signature_is_refused() -> None:
    request = rfc9421_post()
    del request.headers["Signature"]
    await refused(request, SignatureMissing)


@pytest.mark.parametrize(
    "field, value",
    [
        ("Signature-Input", "sig1=(((("),
        ("Signature", "sig1=:not base64:"),
        ("Signature", "other=:AAAA:"),
        ("Signature-Input", 'sig1=("@method" "@target-uri" "content-digest");created=1'),
        ("Signature", 'sig1="a string"'),
        ("Signature-Input", 'sig1="@method";created=1;keyid="k"'),
    ],
)
async def test_a_malformed_rfc9421_signature_is_refused(field: str, value: str) -> None:
    request = rfc9421_post()
    request.headers[field] = value
    await refused(request, MalformedSignature)


async def test_an_rfc9421_created_in_the_future_is_refused() -> None:
    await refused(rfc9421_post(at=NOW + timedelta(minutes=61)), DateOutsideWindow, "future")


async def test_an_rfc9421_created_too_long_ago_is_refused() -> None:
    await refused(rfc9421_post(at=NOW - timedelta(minutes=66)), DateOutsideWindow, "expired")


async def test_an_rfc9421_signature_past_its_expires_is_refused() -> None:
    request = rfc9421_post(at=NOW - timedelta(minutes=30), expires=NOW - timedelta(minutes=29))
    # Created 30 minutes ago would pass, but it said it expires after one minute (plus an hour's skew).
    await refused(request, DateOutsideWindow, "expired", now=NOW + timedelta(minutes=32))


async def test_an_rfc9421_signature_without_created_or_date_is_refused() -> None:
    request = rfc9421_post()
    request.headers["Signature-Input"] = request.headers["signature-input"].replace(
        f";created={int(NOW.timestamp())}", ""
    )
    await refused(request, RequiredComponentNotCovered, "created")


async def test_an_rfc9421_wrong_content_digest_is_refused() -> None:
    await refused(rfc9421_post(), DigestMismatch, body=ACTIVITY + b" ")


async def test_an_rfc9421_content_digest_of_another_algorithm_only_is_refused() -> None:
    request = rfc9421_post()
    request.headers["Content-Digest"] = "md5=:AAAA:"
    await refused(request, DigestMismatch, "md5")


async def test_an_rfc9421_post_without_content_digest_covered_is_refused() -> None:
    await refused(rfc9421_post(body=None), RequiredComponentNotCovered, "content-digest")


async def test_an_rfc9421_signature_without_the_method_is_refused() -> None:
    await refused(rfc9421_post(covered=("@target-uri",)), RequiredComponentNotCovered, "@method")


async def test_an_rfc9421_signature_without_the_target_is_refused() -> None:
    await refused(rfc9421_post(covered=("@method",)), RequiredComponentNotCovered, "@target-uri")


async def test_an_rfc9421_unsupported_alg_is_refused() -> None:
    request = rfc9421_post()
    request.headers["Signature-Input"] = request.headers["signature-input"].replace(
        'alg="rsa-v1_5-sha256"', 'alg="hmac-sha256"'
    )
    await refused(request, UnsupportedAlgorithm, "hmac-sha256")


async def test_an_rfc9421_alg_that_does_not_fit_the_key_is_refused() -> None:
    request = rfc9421_post()
    request.headers["Signature-Input"] = request.headers["signature-input"].replace(
        'alg="rsa-v1_5-sha256"', 'alg="ed25519"'
    )
    await refused(request, UnsupportedAlgorithm, "ed25519")


async def test_an_rfc9421_unknown_key_is_refused() -> None:
    await refused(rfc9421_post(), KeyNotFound, lookup=keys({}))


async def test_an_rfc9421_signature_by_another_key_is_refused() -> None:
    await refused(rfc9421_post(), BadSignature, lookup=keys({ALICE_KEY_ID: MALLORY_PUBLIC}))


async def test_an_rfc9421_request_sent_elsewhere_is_refused() -> None:
    request = rfc9421_post()
    request.headers["Host"] = "remote.example:9999"
    await refused(request, BadSignature)


async def test_an_rfc9421_covered_header_that_is_missing_is_refused() -> None:
    request = rfc9421_post()
    request.headers["Signature-Input"] = request.headers["signature-input"].replace(
        '"content-digest"', '"content-digest" "x-absent"'
    )
    await refused(request, MalformedSignature, "x-absent")


def test_parsed_parameters_are_the_callers_own() -> None:
    header = 'keyId="k",algorithm="rsa-sha256",headers="(request-target) host",signature="AA=="'
    first = parse_cavage_signature(header)
    first["keyId"] = "changed"
    assert parse_cavage_signature(header)["keyId"] == "k"
    long_header = header.replace('"k"', '"' + "k" * 5000 + '"')  # too long to be remembered
    assert parse_cavage_signature(long_header)["keyId"] == "k" * 5000


def test_a_malformed_header_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(MalformedSignature):
            parse_cavage_signature('keyId="unterminated,signature="AA=="')
