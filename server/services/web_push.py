"""Web Push (Mastodon's ``/api/v1/push/subscription``): subscriptions, the instance's VAPID
key, message encryption (RFC 8291 ``aes128gcm``; the legacy ``aesgcm`` of
draft-ietf-webpush-encryption-04 that Mastodon sends when a subscription is not
``standard``) and VAPID (RFC 8292). The HTTP delivery is ``federation.web_push`` (services
never import federation); :func:`enqueue_pushes` asks for it in the transaction that
creates a notification, so nothing is pushed for a notification that is rolled back.

The VAPID key pair is derived from the instance's secret key (``server.secrets``): every
process that shares the secret (one data directory, or ``EASEL_SECRET_KEY``) signs with
the same key and nothing else needs storing. Changing the secret changes the key, and push
services then refuse the old subscriptions (apps subscribe again).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import (
    PUSH_ALERTS,
    PUSH_POLICIES,
    Account,
    Follow,
    Notification,
    OAuthToken,
    PushSubscription,
)
from server.queue.jobs import enqueue
from server.queue.kinds import kind_named
from server.secrets import secret_key
from server.services.errors import ServiceError
from server.settings import Settings

WEB_PUSH_JOB = "web_push"  # federation/web_push.py's kind
MAX_ENDPOINT_LENGTH = 2048
RECORD_SIZE = 4096
# aes128gcm: one record holds the payload, a delimiter byte and the 16-byte tag.
MAX_PAYLOAD_BYTES = RECORD_SIZE - 16 - 1 - 86  # room for the header too (push services cap at 4096)
JWT_LIFETIME_SECONDS = 12 * 3600  # RFC 8292: at most 24 h


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Base64url (or standard base64, as some browsers send), padded or not."""
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    if not cleaned or len(cleaned) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


# ------------------------------------------------------------------------- VAPID key

@lru_cache(maxsize=8)
def _vapid_key_from_secret(secret: bytes) -> ec.EllipticCurvePrivateKey:
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's n
    seed = _hkdf(b"easel vapid", secret, b"easel web push VAPID key P-256", 48)
    scalar = int.from_bytes(seed, "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def vapid_private_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    return _vapid_key_from_secret(secret_key(settings))


def vapid_public_key(settings: Settings) -> str:
    """The instance's VAPID public key: base64url of the uncompressed P-256 point."""
    point = vapid_private_key(settings).public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint)
    return b64url(point)


def vapid_jwt(settings: Settings, endpoint: str, *, contact: str | None = None,
              now: float | None = None) -> str:
    """An ES256 JWT for the push service of ``endpoint`` (RFC 8292 section 2)."""
    parts = urlsplit(endpoint)
    claims = {"aud": f"{parts.scheme}://{parts.netloc}",
              "exp": int((now if now is not None else time.time()) + JWT_LIFETIME_SECONDS),
              "sub": contact or settings.base_url}
    header = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    der = vapid_private_key(settings).sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{header}.{body}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


# -------------------------------------------------------------------- encryption

@dataclass(frozen=True)
class Encrypted:
    body: bytes
    headers: dict[str, str]


def _ecdh(ua_public: bytes) -> tuple[bytes, bytes]:
    """A fresh server key pair's public point and its shared secret with ``ua_public``."""
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    as_public = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return as_public, ephemeral.exchange(ec.ECDH(), peer)


def encrypt_aes128gcm(payload: bytes, ua_public: bytes, auth_secret: bytes) -> Encrypted:
    """RFC 8291 section 3.4: one record, the sender's public key as the key id."""
    as_public, shared = _ecdh(ua_public)
    ikm = _hkdf(auth_secret, shared, b"WebPush: info\x00" + ua_public + as_public, 32)
    salt = os.urandom(16)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    ciphertext = AESGCM(cek).encrypt(nonce, payload + b"\x02", None)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public
    return Encrypted(header + ciphertext, {"Content-Encoding": "aes128gcm"})


def encrypt_aesgcm(payload: bytes, ua_public: bytes, auth_secret: bytes) -> Encrypted:
    """The legacy ``aesgcm`` (draft-ietf-webpush-encryption-04): salt and key in headers."""
    as_public, shared = _ecdh(ua_public)
    ikm = _hkdf(auth_secret, shared, b"Content-Encoding: auth\x00", 32)
    context = (b"P-256\x00" + struct.pack("!H", len(ua_public)) + ua_public
               + struct.pack("!H", len(as_public)) + as_public)
    salt = os.urandom(16)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aesgcm\x00" + context, 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00" + context, 12)
    ciphertext = AESGCM(cek).encrypt(nonce, b"\x00\x00" + payload, None)
    return Encrypted(ciphertext, {"Content-Encoding": "aesgcm",
                                  "Encryption": f"salt={b64url(salt)}",
                                  "Crypto-Key": f"dh={b64url(as_public)}"})


def push_request(settings: Settings, subscription: PushSubscription, payload: bytes, *,
                 contact: str | None = None, ttl: int = 48 * 3600,
                 urgency: str = "normal") -> Encrypted:
    """The body and headers of the POST to ``subscription.endpoint``: encrypted ``payload``
    and VAPID (``vapid t=…, k=…`` for a standard subscription; Mastodon's legacy
    ``WebPush`` scheme with ``p256ecdsa`` in ``Crypto-Key`` for ``aesgcm``)."""
    ua_public, auth = b64url_decode(subscription.key_p256dh), b64url_decode(subscription.key_auth)
    token = vapid_jwt(settings, subscription.endpoint, contact=contact)
    server_key = vapid_public_key(settings)
    if subscription.standard:
        encrypted = encrypt_aes128gcm(payload, ua_public, auth)
        headers = {**encrypted.headers, "Authorization": f"vapid t={token}, k={server_key}"}
    else:
        encrypted = encrypt_aesgcm(payload, ua_public, auth)
        headers = {**encrypted.headers, "Authorization": f"WebPush {token}",
                   "Crypto-Key": f"{encrypted.headers['Crypto-Key']};p256ecdsa={server_key}"}
    headers.update({"Content-Type": "application/octet-stream", "TTL": str(ttl),
                    "Urgency": urgency})
    return Encrypted(encrypted.body, headers)


# ------------------------------------------------------------ the sealed access token

def _token_key(settings: Settings) -> bytes:
    return _hkdf(b"easel push token", secret_key(settings), b"web push access token", 32)


def seal_token(settings: Settings, token: str) -> str:
    nonce = os.urandom(12)
    return b64url(nonce + AESGCM(_token_key(settings)).encrypt(nonce, token.encode(), None))


def open_token(settings: Settings, sealed: str) -> str:
    """The access token :func:`seal_token` sealed; "" when it cannot be opened."""
    try:
        raw = b64url_decode(sealed)
        return AESGCM(_token_key(settings)).decrypt(raw[:12], raw[12:], None).decode()
    except (ValueError, InvalidTag, UnicodeDecodeError):
        return ""


# ---------------------------------------------------------------- subscriptions

def check_endpoint(settings: Settings, endpoint: str) -> str:
    """An https URL (http too where private addresses are allowed: test networks)."""
    endpoint = endpoint.strip()
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise ServiceError("Validation failed: Endpoint is too long", 422)
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ServiceError("Validation failed: Endpoint is not a valid URL", 422) from None
    allowed = ("https", "http") if settings.allow_private_addresses else ("https",)
    if parts.scheme not in allowed or not parts.hostname or parts.username or parts.password:
        raise ServiceError("Validation failed: Endpoint must be an https URL", 422)
    return endpoint


def check_keys(p256dh: str, auth: str) -> tuple[str, str]:
    """Both keys, normalised to unpadded base64url: p256dh a P-256 point, auth 16 bytes."""
    try:
        point = b64url_decode(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(point) != 65:
            raise ValueError("not uncompressed")
    except ValueError:
        raise ServiceError("Validation failed: Keys p256dh is not an uncompressed P-256 public key",
                           422) from None
    try:
        secret = b64url_decode(auth)
    except ValueError:
        secret = b""
    if len(secret) != 16:
        raise ServiceError("Validation failed: Keys auth must be 16 bytes of base64url", 422)
    return b64url(point), b64url(secret)


def check_policy(policy: str) -> str:
    if policy not in PUSH_POLICIES:
        raise ServiceError(f"Validation failed: Policy must be one of {', '.join(PUSH_POLICIES)}", 422)
    return policy


async def subscription_of(session: AsyncSession, token_id: int) -> PushSubscription | None:
    found: PushSubscription | None = await session.scalar(
        select(PushSubscription).where(PushSubscription.token_id == token_id))
    return found


async def subscribe(session: AsyncSession, settings: Settings, token: OAuthToken, account: Account,
                    plaintext_token: str, *, endpoint: str, p256dh: str, auth: str,
                    standard: bool, alerts: set[str], policy: str) -> PushSubscription:
    """Create, or replace, the token's subscription (Mastodon destroys the old one). Committed."""
    endpoint = check_endpoint(settings, endpoint)
    p256dh, auth = check_keys(p256dh, auth)
    policy = check_policy(policy)
    await session.execute(delete(PushSubscription).where(PushSubscription.token_id == token.id))
    subscription = PushSubscription(
        token_id=token.id, account_id=account.id, endpoint=endpoint, key_p256dh=p256dh,
        key_auth=auth, standard=standard, alerts=" ".join(a for a in PUSH_ALERTS if a in alerts),
        policy=policy, access_token=seal_token(settings, plaintext_token))
    session.add(subscription)
    await session.commit()
    return subscription


async def change(session: AsyncSession, subscription: PushSubscription, *,
                 alerts: dict[str, bool], policy: str | None) -> PushSubscription:
    """Update the alerts named in ``alerts`` and the policy if given. Committed."""
    names = subscription.alert_names()
    for name, enabled in alerts.items():
        if enabled:
            names.add(name)
        else:
            names.discard(name)
    subscription.alerts = " ".join(a for a in PUSH_ALERTS if a in names)
    if policy is not None:
        subscription.policy = check_policy(policy)
    subscription.updated_at = utcnow()
    await session.commit()
    return subscription


async def forget_token(session: AsyncSession, token_id: int) -> None:
    """A revoked token's subscription goes with it (in the caller's transaction)."""
    await session.execute(delete(PushSubscription).where(PushSubscription.token_id == token_id))


# -------------------------------------------------------------------- delivery

async def enqueue_pushes(session: AsyncSession, notification: Notification) -> None:
    """One ``web_push`` job per subscription of the recipient whose alerts take this
    notification's type (its policy is checked when the job runs). Flushes
    ``notification`` for its id. The caller commits."""
    if notification.type not in PUSH_ALERTS:
        return
    subscriptions = list(await session.scalars(
        select(PushSubscription).where(PushSubscription.account_id == notification.account_id)))
    wanted = [s for s in subscriptions if notification.type in s.alert_names() and s.policy != "none"]
    if not wanted:
        return
    if notification.id is None:
        session.add(notification)
        await session.flush()
    kind = kind_named(WEB_PUSH_JOB)
    for subscription in wanted:
        await enqueue(session, kind, f"{notification.id}:{subscription.id}")


async def policy_allows(session: AsyncSession, subscription: PushSubscription,
                        notification: Notification) -> bool:
    """``followed``: only from accounts the recipient follows; ``follower``: only from its
    followers; ``none``: nothing. Moderation alerts follow only the alert switches."""
    if subscription.policy == "none":
        return False
    if subscription.policy == "all" or notification.type.startswith("admin."):
        return True
    me, them = notification.account_id, notification.from_account_id
    if subscription.policy == "followed":
        query = exists().where(Follow.account_id == me, Follow.target_account_id == them)
    else:
        query = exists().where(Follow.account_id == them, Follow.target_account_id == me)
    return bool(await session.scalar(select(query)))
