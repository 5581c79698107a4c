"""Web Push delivery (federation.web_push): a notification reaches a real HTTP push
service on loopback, encrypted and VAPID-signed.

Given a subscription whose endpoint is a recording server on 127.0.0.1, when bob mentions
alice and the federation queue runs, I expect one POST that alice's browser could decrypt
(RFC 8291 ``aes128gcm`` for a standard subscription, the legacy ``aesgcm`` otherwise) into
Mastodon's payload, with a VAPID JWT for the endpoint's origin signed by the instance's
``server_key``; and no POST when the alert is off or the policy refuses; a 410 deletes the
subscription, a 500 is retried, a 400 dropped; revoking the token deletes it too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select
from starlette.applications import Starlette

from federation.context import FederationContext, install_federation_context
from server.app import AppOptions, create_app
from server.db import Database
from server.models import Job, JobState, PushSubscription, User
from server.settings import Settings
from tests.conftest import DOMAIN, make_token

URL = "/api/v1/push/subscription"


@dataclass
class PushService:
    """Records each request (method, path, headers, body); answers ``status``."""

    status: int = 201
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((method, path, headers, body))
            writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                         .encode())
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def push_service() -> AsyncIterator[PushService]:
    service = PushService()
    server = await asyncio.start_server(service.handle, "127.0.0.1", 0)
    service.port = server.sockets[0].getsockname()[1]
    try:
        yield service
    finally:
        server.close()


async def loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings, options=AppOptions(run_workers=False, run_reconciler=False))
    async with application.router.lifespan_context(application):
        context = FederationContext.build(settings, application.state.easel.db, resolver=loopback)
        install_federation_context(context)
        try:
            yield application
        finally:
            await context.close()


def api(app: Starlette, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"https://{DOMAIN}",
                             headers={"Authorization": f"Bearer {token}"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """The subscriber's side: its ECDH key pair and auth secret."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def public(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    def decrypt_aes128gcm(self, body: bytes) -> bytes:
        """RFC 8291, written out from the RFC, independently of the server's code."""
        salt, rs, idlen = body[:16], struct.unpack("!I", body[16:20])[0], body[20]
        as_public = body[21:21 + idlen]
        assert rs == 4096 and idlen == 65
        shared = self.key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), as_public))
        info = b"WebPush: info\x00" + self.public + as_public
        ikm = HKDF(hashes.SHA256(), 32, self.auth, info).derive(shared)
        cek = HKDF(hashes.SHA256(), 16, salt, b"Content-Encoding: aes128gcm\x00").derive(ikm)
        nonce = HKDF(hashes.SHA256(), 12, salt, b"Content-Encoding: nonce\x00").derive(ikm)
        plain = AESGCM(cek).decrypt(nonce, body[21 + idlen:], None)
        assert plain.endswith(b"\x02")
        return plain[:-1]

    def decrypt_aesgcm(self, body: bytes, salt: bytes, as_public: bytes) -> bytes:
        shared = self.key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), as_public))
        ikm = HKDF(hashes.SHA256(), 32, self.auth, b"Content-Encoding: auth\x00").derive(shared)
        context = (b"P-256\x00" + struct.pack("!H", 65) + self.public + struct.pack("!H", 65) + as_public)
        cek = HKDF(hashes.SHA256(), 16, salt, b"Content-Encoding: aesgcm\x00" + context).derive(ikm)
        nonce = HKDF(hashes.SHA256(), 12, salt, b"Content-Encoding: nonce\x00" + context).derive(ikm)
        plain = AESGCM(cek).decrypt(nonce, body, None)
        padding = struct.unpack("!H", plain[:2])[0]
        return plain[2 + padding:]


def verify_jwt(token: str, server_key: str, audience: str) -> dict[str, Any]:
    header, claims, signature = token.split(".")
    assert json.loads(unb64(header)) == {"typ": "JWT", "alg": "ES256"}
    raw = unb64(signature)
    assert len(raw) == 64
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(server_key))
    public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                  f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    decoded: dict[str, Any] = json.loads(unb64(claims))
    assert decoded["aud"] == audience
    assert time.time() < decoded["exp"] <= time.time() + 24 * 3600
    assert decoded["sub"] == f"https://{DOMAIN}"
    return decoded


async def subscribe(app: Starlette, token: str, service: PushService, browser: Browser, *,
                    standard: bool = True, alerts: dict[str, bool] | None = None,
                    policy: str = "all") -> dict[str, Any]:
    async with api(app, token) as client:
        response = await client.post(URL, json={
            "subscription": {"endpoint": f"http://push.example:{service.port}/push/abc",
                             "keys": {"p256dh": b64(browser.public), "auth": b64(browser.auth)},
                             "standard": standard},
            "data": {"alerts": alerts if alerts is not None else {"mention": True}, "policy": policy}})
    assert response.status_code == 200, response.text
    entity: dict[str, Any] = response.json()
    return entity


async def mention(app: Starlette, token: str, text: str = "@alice look at the herons") -> str:
    async with api(app, token) as client:
        response = await client.post("/api/v1/statuses", json={"status": text})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def run_jobs(app: Starlette) -> int:
    ran: int = await app.state.easel.runner.run_due(["federation"])
    return ran


async def subscriptions(app: Starlette) -> int:
    async with app.state.easel.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(PushSubscription)) or 0)


async def notification_id(app: Starlette, token: str) -> str:
    async with api(app, token) as client:
        found = (await client.get("/api/v1/notifications")).json()
    return str(found[0]["id"])


async def test_a_mention_is_pushed_encrypted_with_vapid_aes128gcm(
        app: Starlette, push_service: PushService, db: Database, alice: User, bob: User) -> None:
    alice_token, bob_token = await make_token(db, alice), await make_token(db, bob)
    browser = Browser()
    entity = await subscribe(app, alice_token, push_service, browser)
    await mention(app, bob_token)
    await run_jobs(app)

    assert len(push_service.requests) == 1
    method, path, headers, body = push_service.requests[0]
    assert (method, path) == ("POST", "/push/abc")
    assert headers["content-encoding"] == "aes128gcm"
    assert headers["content-type"] == "application/octet-stream"
    assert int(headers["ttl"]) > 0 and headers["urgency"] == "high"
    scheme, _, params = headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == entity["server_key"]
    verify_jwt(fields["t"], entity["server_key"], f"http://push.example:{push_service.port}")

    payload = json.loads(browser.decrypt_aes128gcm(body))
    assert payload == {
        "access_token": alice_token,
        "preferred_locale": "en",
        "notification_id": await notification_id(app, alice_token),
        "notification_type": "mention",
        "icon": payload["icon"],
        "title": "You were mentioned by bob",
        "body": "@alice look at the herons",
    }
    assert payload["icon"].startswith("https://")


async def test_the_legacy_aesgcm_encoding(app: Starlette, push_service: PushService, db: Database,
                                          alice: User, bob: User) -> None:
    alice_token, bob_token = await make_token(db, alice), await make_token(db, bob)
    browser = Browser()
    entity = await subscribe(app, alice_token, push_service, browser, standard=False)
    assert entity["standard"] is False
    await mention(app, bob_token)
    await run_jobs(app)

    [(_, _, headers, body)] = push_service.requests
    assert headers["content-encoding"] == "aesgcm"
    salt = unb64(headers["encryption"].removeprefix("salt="))
    crypto_key = dict(part.split("=", 1) for part in headers["crypto-key"].split(";"))
    assert crypto_key["p256ecdsa"] == entity["server_key"]
    scheme, _, token = headers["authorization"].partition(" ")
    assert scheme == "WebPush"
    verify_jwt(token, entity["server_key"], f"http://push.example:{push_service.port}")
    payload = json.loads(browser.decrypt_aesgcm(body, salt, unb64(crypto_key["dh"])))
    assert payload["notification_type"] == "mention" and payload["access_token"] == alice_token


async def test_alerts_off_or_policy_none_or_not_followed_sends_nothing(
        app: Starlette, push_service: PushService, db: Database, alice: User, bob: User) -> None:
    alice_token, bob_token = await make_token(db, alice), await make_token(db, bob)
    await subscribe(app, alice_token, push_service, Browser(), alerts={"mention": False, "follow": True})
    await mention(app, bob_token, "@alice one")
    await subscribe(app, alice_token, push_service, Browser(), policy="none")
    await mention(app, bob_token, "@alice two")
    await subscribe(app, alice_token, push_service, Browser(), policy="followed")
    await mention(app, bob_token, "@alice three")  # alice does not follow bob
    await run_jobs(app)
    assert push_service.requests == []

    async with api(app, alice_token) as client:  # now she does: policy "followed" lets it by
        response = await client.post(f"/api/v1/accounts/{bob.account_id}/follow")
        assert response.status_code == 200, response.text
    await mention(app, bob_token, "@alice four")
    await run_jobs(app)
    assert len(push_service.requests) == 1


async def test_a_410_deletes_the_subscription(app: Starlette, push_service: PushService,
                                              db: Database, alice: User, bob: User) -> None:
    alice_token, bob_token = await make_token(db, alice), await make_token(db, bob)
    await subscribe(app, alice_token, push_service, Browser())
    push_service.status = 410
    await mention(app, bob_token)
    await run_jobs(app)
    assert len(push_service.requests) == 1
    assert await subscriptions(app) == 0
    async with api(app, alice_token) as client:
        assert (await client.get(URL)).status_code == 404


async def test_a_500_is_retried_and_a_400_dropped(app: Starlette, push_service: PushService,
                                                  db: Database, alice: User, bob: User) -> None:
    alice_token, bob_token = await make_token(db, alice), await make_token(db, bob)
    await subscribe(app, alice_token, push_service, Browser())
    push_service.status = 503
    await mention(app, bob_token, "@alice one")
    await run_jobs(app)
    async with app.state.easel.db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == "web_push"))
        assert job is not None and job.state == JobState.QUEUED and job.attempts == 1
    push_service.status = 400
    await mention(app, bob_token, "@alice two")
    await run_jobs(app)
    async with app.state.easel.db.session() as session:
        states = {j.ref: j.state for j in await session.scalars(select(Job).where(Job.kind == "web_push"))}
    assert sorted(states.values(), key=str) == sorted([JobState.QUEUED, JobState.DONE], key=str)
    assert await subscriptions(app) == 1


async def test_revoking_the_token_deletes_its_subscription(
        app: Starlette, push_service: PushService, db: Database, alice: User, bob: User) -> None:
    from server.models import OAuthApplication, OAuthToken
    from server.services.tokens import token_digest

    alice_token, bob_token = await make_token(db, alice), await make_token(db, bob)
    await subscribe(app, alice_token, push_service, Browser())
    async with app.state.easel.db.session() as session:
        token = await session.scalar(
            select(OAuthToken).where(OAuthToken.token_digest == token_digest(alice_token)))
        assert token is not None
        application = await session.get(OAuthApplication, token.application_id)
        assert application is not None
        client_id, client_secret = application.client_id, application.client_secret
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=f"https://{DOMAIN}") as client:
        response = await client.post("/oauth/revoke", data={
            "client_id": client_id, "client_secret": client_secret, "token": alice_token})
    assert response.status_code == 200, response.text
    assert await subscriptions(app) == 0
    await mention(app, bob_token)
    await run_jobs(app)
    assert push_service.requests == []


async def test_a_token_revoked_elsewhere_loses_its_subscription_at_the_next_push(
        app: Starlette, push_service: PushService, db: Database, alice: User, bob: User) -> None:
    from server.models import OAuthToken
    from server.services.confirmations import revoke_access

    alice_token, bob_token = await make_token(db, alice), await make_token(db, bob)
    await subscribe(app, alice_token, push_service, Browser())
    async with app.state.easel.db.session() as session:
        user = await session.get(User, alice.id)
        assert user is not None
        await revoke_access(session, user)  # e.g. a password change
        await session.commit()
        assert await session.scalar(select(func.count()).select_from(OAuthToken).where(
            OAuthToken.user_id == alice.id, OAuthToken.revoked_at.is_(None))) == 0
    await mention(app, bob_token)
    await run_jobs(app)
    assert push_service.requests == []
    assert await subscriptions(app) == 0


async def test_a_private_address_is_refused_without_the_test_network_setting(
        app: Starlette, push_service: PushService, db: Database, settings: Settings,
        alice: User, bob: User) -> None:
    alice_token, bob_token = await make_token(db, alice), await make_token(db, bob)
    await subscribe(app, alice_token, push_service, Browser())
    strict = settings.with_changes(allow_private_addresses=False)
    context = FederationContext.build(strict, app.state.easel.db, resolver=loopback)
    install_federation_context(context)
    try:
        await mention(app, bob_token)
        await run_jobs(app)
    finally:
        await context.close()
    assert push_service.requests == []
    async with app.state.easel.db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == "web_push"))
        assert job is not None and job.state == JobState.DONE  # tried, refused, not retried
