"""Attack suite: HTTP signatures on the inbox — forged, replayed, expired, borrowed keys.

Each test plays an attacker against the real inbox endpoint (``POST /inbox``, with remote
carol and dave served by the fake fediverse) and asserts two things: the documented 4xx
(never a 5xx), and that nothing was stored (no inbox item, no job). Signature parsing and
the time window are proven piece by piece in tests/federation/test_signatures.py and the
basic refusals in tests/federation/inbox/test_endpoints.py (unsigned, one forged key, one
expired Date, one digest mismatch, dave signing carol's Follow); this module adds the
attacks those leave out: a captured delivery replayed — as is, with another body, to
another inbox, to another *server*, after its window — tampered signatures and
parameters, a smuggled second Date, and keys whose owner is not the actor.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette

from federation.signatures import CavageSigner, RFC9421Signer, digest_header
from server.db import Database
from server.models import User
from tests.conftest import _KEY_POOL
from tests.federation.inbox.conftest import (
    AS2,
    BASE,
    FakeActor,
    Fediverse,
    deliver,
    http,
    process,
    stored,
)

ALICE = BASE + "/users/alice"


def signed_request(sender: FakeActor, activity: dict[str, Any], *, url: str = BASE + "/inbox",
                   signer: CavageSigner | RFC9421Signer | None = None) -> httpx.Request:
    """The request ``sender`` would deliver (what an attacker on the path captures)."""
    request = httpx.Request("POST", url, content=json.dumps(activity).encode(),
                            headers={"Content-Type": AS2})
    (signer or sender.signer()).sign(request)
    return request


async def send(app: Starlette, path: str, headers: httpx.Headers | dict[str, str],
               body: bytes) -> httpx.Response:
    """POST exactly these header lines (repeats kept, Host as given) and this body."""
    lines = [(k, v) for k, v in httpx.Headers(headers).multi_items()
             if k.lower() != "content-length"]
    async with http(app) as client:
        return await client.send(httpx.Request("POST", BASE + path, headers=lines, content=body))


async def assert_refused(response: httpx.Response, status: int, db: Database) -> None:
    assert response.status_code == status, response.text
    assert isinstance(response.json().get("error"), str)
    assert await stored(db) == (0, 0)


def follow(sender: FakeActor) -> dict[str, Any]:
    return sender.activity("Follow", ALICE)


# ----------------------------------------------------------------------------- replays

async def test_a_captured_delivery_replayed_as_is_stores_nothing_more(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor) -> None:
    captured = signed_request(remote_carol, follow(remote_carol))
    assert (await send(inbox_app, "/inbox", captured.headers, captured.content)).status_code == 202
    assert await stored(app_db) == (1, 1)
    for _ in range(3):
        response = await send(inbox_app, "/inbox", captured.headers, captured.content)
        assert response.status_code == 202  # as Mastodon: the sender learns nothing
    assert await stored(app_db) == (1, 1)
    await process(inbox_app)
    assert await stored(app_db) == (1, 1)


async def test_a_captured_signature_with_another_body_is_refused(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor) -> None:
    captured = signed_request(remote_carol, follow(remote_carol))
    other = json.dumps(remote_carol.activity("Block", ALICE)).encode()
    response = await send(inbox_app, "/inbox", captured.headers, other)
    await assert_refused(response, 401, app_db)
    assert "igest" in response.json()["error"]


async def test_a_captured_signature_with_another_body_and_its_digest_is_refused(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor) -> None:
    captured = signed_request(remote_carol, follow(remote_carol))
    other = json.dumps(remote_carol.activity("Block", ALICE)).encode()
    headers = httpx.Headers(captured.headers)
    headers["digest"] = digest_header(other)  # the attacker can hash; not sign
    await assert_refused(await send(inbox_app, "/inbox", headers, other), 401, app_db)


async def test_a_delivery_replayed_to_a_personal_inbox_is_refused(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor) -> None:
    captured = signed_request(remote_carol, follow(remote_carol))
    response = await send(inbox_app, "/users/alice/inbox", captured.headers, captured.content)
    await assert_refused(response, 401, app_db)


async def test_a_delivery_to_another_server_replayed_here_is_refused(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor) -> None:
    # Captured on its way to other.example's shared inbox (same path as ours): the
    # signature covers Host: other.example, which is not this server.
    captured = signed_request(remote_carol, follow(remote_carol),
                              url="https://other.example/inbox")
    assert captured.headers["host"] == "other.example"
    response = await send(inbox_app, "/inbox", captured.headers, captured.content)
    await assert_refused(response, 401, app_db)
    assert "host" in response.json()["error"].lower()


async def test_an_rfc9421_delivery_to_another_server_replayed_here_is_refused(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor) -> None:
    signer = RFC9421Signer(remote_carol.key_id, remote_carol.private_pem)
    captured = signed_request(remote_carol, follow(remote_carol),
                              url="https://other.example/inbox", signer=signer)
    assert "signature-input" in captured.headers
    response = await send(inbox_app, "/inbox", captured.headers, captured.content)
    await assert_refused(response, 401, app_db)
    assert "host" in response.json()["error"].lower()


async def test_our_host_in_another_case_or_with_the_default_port_is_still_ours(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor) -> None:
    # The host check refuses other servers, not other spellings of this one.
    for host in ("EASEL.test", "easel.test:443"):
        captured = httpx.Request("POST", BASE + "/inbox",
                                 content=json.dumps(follow(remote_carol)).encode(),
                                 headers={"Content-Type": AS2, "Host": host})
        remote_carol.signer().sign(captured)
        assert captured.headers["host"] == host
        response = await send(inbox_app, "/inbox", captured.headers, captured.content)
        assert response.status_code == 202, response.text
    assert await stored(app_db) == (2, 2)


async def test_a_delivery_replayed_after_its_window_is_refused(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor) -> None:
    # Signed 1 h 6 min ago: past Mastodon's 5 minutes plus an hour of forgiven skew.
    then = datetime.now(UTC) - timedelta(hours=1, minutes=6)
    response = await deliver(inbox_app, remote_carol, follow(remote_carol),
                             signer=remote_carol.signer(clock=lambda: then))
    await assert_refused(response, 401, app_db)


async def test_a_signature_dated_over_an_hour_ahead_is_refused(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor) -> None:
    later = datetime.now(UTC) + timedelta(hours=1, minutes=5)
    response = await deliver(inbox_app, remote_carol, follow(remote_carol),
                             signer=remote_carol.signer(clock=lambda: later))
    await assert_refused(response, 401, app_db)


async def test_a_fresh_unsigned_date_cannot_revive_an_old_created(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor) -> None:
    # hs2019 covering (created) from two hours ago; a current Date header sent alongside
    # but not signed must not count.
    old = int((datetime.now(UTC) - timedelta(hours=2)).timestamp())
    body = json.dumps(follow(remote_carol)).encode()
    now = datetime.now(UTC)
    headers = {"host": "easel.test", "digest": digest_header(body), "content-type": AS2,
               "date": now.strftime("%a, %d %b %Y %H:%M:%S GMT")}
    covered = ["(request-target)", "host", "(created)", "digest"]
    lines = []
    for name in covered:
        if name == "(request-target)":
            lines.append("(request-target): post /inbox")
        elif name == "(created)":
            lines.append(f"(created): {old}")
        else:
            lines.append(f"{name}: {headers[name]}")
    signature = _rsa_sign(remote_carol.private_pem, "\n".join(lines))
    headers["signature"] = (f'keyId="{remote_carol.key_id}",algorithm="hs2019",created={old},'
                            f'headers="{" ".join(covered)}",signature="{signature}"')
    await assert_refused(await send(inbox_app, "/inbox", headers, body), 401, app_db)


async def test_a_second_date_header_smuggled_in_is_refused(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor) -> None:
    then = datetime.now(UTC) - timedelta(days=1)
    captured = signed_request(remote_carol, follow(remote_carol),
                              signer=remote_carol.signer(clock=lambda: then))
    fresh = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    headers = [(k, v) for k, v in captured.headers.multi_items() if k.lower() != "content-length"]
    headers.append(("Date", fresh))
    await assert_refused(await send(inbox_app, "/inbox", httpx.Headers(headers),
                                    captured.content), 401, app_db)


# -------------------------------------------------------------------- tampered headers

def _rsa_sign(private_pem: str, text: str) -> str:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def _replace_param(signature: str, name: str, value: str) -> str:
    parts = [p for p in signature.split(",") if not p.startswith(f"{name}=")]
    return ",".join([*parts, f'{name}="{value}"'])


async def test_a_signature_with_one_bit_flipped_is_refused(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    captured = signed_request(remote_carol, follow(remote_carol))
    header = captured.headers["signature"]
    raw = bytearray(base64.b64decode(header.split('signature="')[1].rstrip('"')))
    raw[10] ^= 0x01
    headers = httpx.Headers(captured.headers)
    headers["signature"] = _replace_param(header, "signature", base64.b64encode(raw).decode())
    await assert_refused(await send(inbox_app, "/inbox", headers, captured.content), 401, app_db)


async def test_a_signature_narrowed_to_fewer_headers_is_refused(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor) -> None:
    # A genuine signature over just the Date (as a GET of some key might carry) is not
    # enough for a POST: target, host and digest must be covered.
    body = json.dumps(follow(remote_carol)).encode()
    date = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    signature = _rsa_sign(remote_carol.private_pem, f"date: {date}")
    headers = {"date": date, "content-type": AS2, "digest": digest_header(body),
               "signature": f'keyId="{remote_carol.key_id}",algorithm="rsa-sha256",'
                            f'headers="date",signature="{signature}"'}
    response = await send(inbox_app, "/inbox", headers, body)
    await assert_refused(response, 401, app_db)
    assert "must cover" in response.json()["error"]


async def test_unsupported_algorithms_are_refused(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor) -> None:
    captured = signed_request(remote_carol, follow(remote_carol))
    for algorithm in ("hmac-sha256", "none", "rsa-sha1", "ecdsa-sha256"):
        headers = httpx.Headers(captured.headers)
        headers["signature"] = _replace_param(captured.headers["signature"], "algorithm", algorithm)
        await assert_refused(await send(inbox_app, "/inbox", headers, captured.content),
                             401, app_db)


async def test_a_key_id_swapped_for_another_actors_is_refused(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        remote_dave: FakeActor) -> None:
    # carol's signature, presented as dave's key on dave's own Follow.
    captured = signed_request(remote_carol, follow(remote_dave))
    headers = httpx.Headers(captured.headers)
    headers["signature"] = _replace_param(captured.headers["signature"], "keyId",
                                          remote_dave.key_id)
    await assert_refused(await send(inbox_app, "/inbox", headers, captured.content), 401, app_db)


# ------------------------------------------------------------- key owner is not the actor

async def test_a_key_whose_document_names_another_owner_is_refused(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        remote_dave: FakeActor, fediverse: Fediverse) -> None:
    # dave's document lists a key that says it belongs to carol (and is dave's real key):
    # a key is believed only when its owner's document lists it.
    impostor = fediverse.actor("https://other.example/users/mallory", "mallory")
    original = impostor.document

    def document() -> dict[str, Any]:
        doc = original()
        doc["publicKey"]["owner"] = remote_carol.uri
        return doc

    impostor.document = document  # type: ignore[method-assign]
    await assert_refused(await deliver(inbox_app, impostor, follow(remote_carol)), 401, app_db)
    await assert_refused(await deliver(inbox_app, impostor, follow(impostor)), 401, app_db)


async def test_a_key_id_on_one_host_owned_by_an_actor_on_another_is_refused(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        remote_dave: FakeActor, fediverse: Fediverse) -> None:
    # A key id on remote.example whose key document claims dave (other.example) owns it.
    key_id = "https://remote.example/keys/borrowed"
    fediverse.objects[key_id] = {"@context": "https://w3id.org/security/v1", "id": key_id,
                                 "owner": remote_dave.uri,
                                 "publicKeyPem": remote_dave.public_pem}
    signer = CavageSigner(key_id, remote_dave.private_pem)
    await assert_refused(await deliver(inbox_app, remote_dave, follow(remote_dave),
                                       signer=signer), 401, app_db)


async def test_a_local_users_key_id_is_never_accepted_for_a_remote_actor(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor) -> None:
    forger_pem, _ = _KEY_POOL.take()
    signer = CavageSigner(ALICE + "#main-key", forger_pem)
    await assert_refused(await deliver(inbox_app, remote_carol, follow(remote_carol),
                                       signer=signer), 401, app_db)


async def test_a_key_id_that_is_no_url_is_refused_without_a_request(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    for key_id in ("carol", "file:///etc/passwd#k", "javascript:alert(1)", "//remote.example/k"):
        signer = CavageSigner(key_id, remote_carol.private_pem)
        await assert_refused(await deliver(inbox_app, remote_carol, follow(remote_carol),
                                           signer=signer), 401, app_db)
    assert fediverse.requests == []
