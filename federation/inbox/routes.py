"""The inbox endpoints: ``POST /inbox`` (shared), ``POST /users/{name}/inbox`` and
``POST /actor/inbox`` (the instance actor's, which its document names: the shared inbox
by another path, as in Mastodon).

Why it exists: other servers deliver here, and a delivery must be answered fast and
never lose an activity. So an endpoint only checks and stores, in this order (DESIGN.md,
"Inbound"), and the ``process_inbox`` job does the rest:

1. **Size.** More than :data:`INBOX_BODY_LIMIT` (1 MiB, by ``Content-Length`` or while the
   body streams in) → 413. The client API's body-limit middleware does not cover these
   paths; this limit is theirs.
2. **Shape.** Not JSON, not a JSON object, or not an activity (``parse_activity``: id,
   type, actor, object) → 400; an actor on this server's own domain → 401.
3. **Signature** (``federation.signatures.verify_request``): missing or invalid → 401.
   The key comes from a per-process cache (:class:`SignerKeys`: key id → owner id, uri and
   PEM), else from the :class:`~federation.actors.ActorFetcher` (stored actors, fetched
   ones); on ``BadSignature`` it is refetched once (key rotation). Keys of local accounts
   are never accepted. A ``Delete`` whose signer is gone (410) or unknown is answered 202
   and dropped without storing or retrying anything (the account announces its own
   deletion, and the server no longer serves its key). When the signer's server cannot
   be reached to get its key, the answer is **503** with ``Retry-After`` (a temporary
   failure every sender retries; Mastodon answers 401 here, which some senders treat as
   final).
4. **Origin.** The key's owner must be the activity's actor, and the activity's id must
   be on the actor's origin (or any server could claim another's activity ids, and the
   real activity would later be dropped as a replay). The exception is a **forwarded**
   ``Create``/``Update``/``Delete`` (signer ≠ actor, as Mastodon forwards replies and
   deletes to followers): it is accepted and marked ``forwarded``; its handler refetches
   the object from its own origin and never trusts the body. Any other type signed by
   someone else → 401.
5. **Domain blocks.** The actor's or the signer's domain suspended → 202, dropped,
   nothing stored (as Mastodon: the sender learns nothing and stops retrying). When the
   key is not in memory (it may have to be fetched) this is checked *before* the
   signature, so no key is ever fetched from a suspended server; otherwise the intake
   checks it for the whole batch.
6. **Store** (:mod:`federation.inbox.intake`): the :class:`~server.models.InboxItem`
   and its ``process_inbox`` job, group-committed with the other deliveries arriving
   meanwhile → 202, empty body. A replay inserts nothing and is answered 202 again: an
   id stored before is one only within the signature window (or while its item is
   pending), and never for a Follow, Undo, Accept, Reject or Block, whose ids Pixelfed
   and Misskey reuse for the same pair (the intake's "replay rule"). A forwarded item is
   keyed by its id *and* its signer (:func:`~federation.inbox.intake.forwarded_key`), so
   a forwarder never makes the actor's own delivery of the same activity a "replay". A
   failed write → 503 with ``Retry-After``.

Personal inboxes of unknown (or unlisted) local users answer 404.

What it must never do: parse or act on the object (notes, follows…) here, trust anything
in the body before the signature is checked, store an item for a request it refuses, or
answer 500 to a malformed request.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from federation.actors import ActorError, ActorGone, ActorUnavailable, names_key
from federation.context import FederationContext, federation_context
from federation.domains import domain_of, is_suspended
from federation.inbox.intake import inbox_intake, item_key
from federation.parse import ParseError, RemoteActivity, parse_activity, same_origin
from federation.routes import request_target
from federation.signatures import (
    BadSignature,
    KeyNotFound,
    SignatureError,
    VerifiedSignature,
    parse_cavage_signature,
    verify_request,
)
from server.db import Database
from server.ids import utcnow
from server.json_depth import depth_error, too_deep
from server.models import Account, InboxOutcome
from server.services.accounts import find_local_account
from server.state import easel
from server.urls import INSTANCE_ACTOR_PATH

INBOX_BODY_LIMIT = 1024 * 1024
# Types another server may forward on an actor's behalf; the handler refetches the object.
FORWARDABLE = frozenset({"Create", "Update", "Delete"})
RETRY_AFTER_SECONDS = 60
SIGNER_KEYS_EXTRA = "inbox.signer_keys"
SIGNER_KEYS_SIZE = 8192

log = logging.getLogger(__name__)


class InboxRefusal(Exception):
    """Ends the request with ``status`` and ``{"error": message}`` (or an empty 202)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> Response:
        if self.status == 202:
            return Response(status_code=202)
        return JSONResponse({"error": self.message}, status_code=self.status, headers=self.headers)


# --------------------------------------------------------------------------- signer keys

@dataclass(frozen=True)
class SignerKey:
    """A remote account's public key, as the inbox needs it for every request."""

    key_id: str
    account_id: int
    account_uri: str
    pem: str


class SignerKeys:
    """Key id → :class:`SignerKey`, least recently used dropped first.

    Looking a key up costs one query (or a fetch); verifying costs ~17 µs, so without this
    cache the database would set the inbox's pace. Entries are replaced when a key is
    refetched and dropped by :meth:`forget` (an actor updated or deleted).
    """

    def __init__(self, db: Database, size: int = SIGNER_KEYS_SIZE) -> None:
        self.db = db
        self.size = size
        self._keys: OrderedDict[str, SignerKey] = OrderedDict()

    def get(self, key_id: str) -> SignerKey | None:
        key = self._keys.get(key_id)
        if key is not None:
            self._keys.move_to_end(key_id)
        return key

    def put(self, key: SignerKey) -> None:
        self._keys[key.key_id] = key
        self._keys.move_to_end(key.key_id)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)

    def forget(self, account_uri: str) -> None:
        """Drop every key of the account ``account_uri``."""
        for key_id in [k for k, v in self._keys.items() if v.account_uri == account_uri]:
            del self._keys[key_id]

    async def load(self, key_id: str, pem: str) -> SignerKey | None:
        """The remote account listing ``key_id`` with this PEM, cached; None if none."""
        async with self.db.session() as session:
            row = (await session.execute(
                select(Account.id, Account.uri).where(
                    names_key(key_id), Account.public_key_pem == pem,
                    Account.domain != "").order_by(Account.id).limit(1))).first()
        if row is None:
            self._keys.pop(key_id, None)
            return None
        key = SignerKey(key_id=key_id, account_id=row.id, account_uri=row.uri, pem=pem)
        self.put(key)
        return key


def signer_keys(fed: FederationContext) -> SignerKeys:
    """The process's signer-key cache for ``fed``'s database."""
    keys = fed.extras.get(SIGNER_KEYS_EXTRA)
    if not isinstance(keys, SignerKeys):
        keys = SignerKeys(fed.db)
        fed.extras[SIGNER_KEYS_EXTRA] = keys
    return keys


# ---------------------------------------------------------------------------- reading

async def read_limited_body(request: Request, limit: int = INBOX_BODY_LIMIT) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (declared or streamed)."""
    too_large = InboxRefusal(413, f"Request body is too large (the limit is {limit} bytes)")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise InboxRefusal(400, "The request body was not received") from None
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(body: bytes) -> tuple[dict[str, Any], RemoteActivity]:
    """The JSON object and its activity; 400 for anything else."""
    if too_deep(body):
        raise InboxRefusal(400, depth_error())
    try:
        document = json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError):  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise InboxRefusal(400, "The request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise InboxRefusal(400, "The request body is not a JSON object")
    try:
        activity = parse_activity(document)
    except ParseError as exc:
        raise InboxRefusal(400, f"Not a usable activity: {exc.reason}") from None
    return document, activity


# ------------------------------------------------------------------------- signatures

async def verify_signer(request: Request, fed: FederationContext, body: bytes) -> SignerKey:
    """The remote key that signed this request; raises SignatureError or ActorError.

    The cached key first; on ``BadSignature`` the key is fetched again once (rotation).
    """
    keys = signer_keys(fed)
    fetcher = fed.fetcher
    found: list[SignerKey] = []

    def lookup(refresh: bool) -> Callable[[str], Awaitable[str | None]]:
        async def key_lookup(key_id: str) -> str | None:
            if not refresh:
                cached = keys.get(key_id)
                if cached is not None:
                    found.append(cached)
                    return cached.pem
            pem = await (fetcher.refresh_key if refresh else fetcher.key_for)(key_id)
            key = await keys.load(key_id, pem) if pem else None
            if key is None:  # no key, or a local account's: never accepted here
                return None
            found.append(key)
            return key.pem
        return key_lookup

    async def verify(refresh: bool) -> VerifiedSignature:
        return await verify_request(
            method=request.method, target=request_target(request), headers=request.headers,
            body=body, key_lookup=lookup(refresh), clock=fetcher.clock,
            scheme=fed.settings.scheme, expected_host=fed.settings.domain)

    try:
        verified = await verify(refresh=False)
    except BadSignature:
        found.clear()
        verified = await verify(refresh=True)
    if not found or found[-1].key_id != verified.key_id:
        raise KeyNotFound(f"no public key for {verified.key_id}")
    return found[-1]


def _signature_key_id(request: Request) -> str | None:
    """The keyId a cavage signature names (for the domain check before verifying);
    RFC 9421's ``keyid`` parameter likewise. None when absent or unreadable."""
    if "signature-input" in request.headers:
        value = request.headers["signature-input"]
        marker = 'keyid="'
        start = value.find(marker)
        if start < 0:
            return None
        end = value.find('"', start + len(marker))
        return value[start + len(marker):end] if end > 0 else None
    header = request.headers.get("signature")
    if header is None:
        return None
    try:
        return parse_cavage_signature(header).get("keyId") or None
    except SignatureError:
        return None


async def _suspended(session: AsyncSession, *urls: str) -> bool:
    domains = {domain_of(url) for url in urls if url}
    for domain in domains:
        if domain and await is_suspended(session, domain):
            return True
    return False


# -------------------------------------------------------------------------- endpoints

async def receive(request: Request, recipient: Account | None) -> Response:
    """Check, store and acknowledge one delivery (see the module docstring)."""
    state = easel(request)
    fed = federation_context(state.settings, state.db)
    try:
        body = await read_limited_body(request)
        document, activity = parse_body(body)
        if domain_of(activity.actor) == state.settings.domain.lower():
            raise InboxRefusal(401, "Activities of local actors are not accepted here")
        if "signature" not in request.headers and "signature-input" not in request.headers:
            raise InboxRefusal(401, "Request not signed")
        key_id = _signature_key_id(request) or ""
        if signer_keys(fed).get(key_id) is None:
            # The key may have to be fetched: never from a suspended server. (With the key
            # in memory, the intake's one query per batch is enough.)
            async with state.db.session() as session:
                if await _suspended(session, activity.actor, key_id):
                    raise InboxRefusal(202, "suspended domain")
        signer = await _verify(request, fed, body, activity)
        forwarded = signer.account_uri != activity.actor
        if forwarded and activity.type not in FORWARDABLE:
            raise InboxRefusal(401, f"The key's owner {signer.account_uri} is not the "
                                    f"activity's actor {activity.actor}")
        if not same_origin(activity.id, activity.actor):
            raise InboxRefusal(400, "The activity's id is not on its actor's server")
        row = {
            "activity_uri": item_key(activity.id,
                                     forwarded_by=signer.account_uri if forwarded else None),
            "activity_type": activity.type[:64],
            "actor_uri": activity.actor, "signer_uri": signer.account_uri,
            "forwarded": forwarded, "recipient_id": recipient.id if recipient else None,
            "body": document, "outcome": InboxOutcome.PENDING.value, "note": "",
            "received_at": utcnow(), "processed_at": None,
            "signature_digest": signature_digest(request),
        }
        try:
            await inbox_intake(fed.extras, state.db).store(
                row, domains=(activity.actor, signer.account_uri),
                direct_id=activity.id if forwarded else None)
        except Exception:
            log.exception("inbox: storing %s failed", activity.id)
            raise InboxRefusal(503, "The activity could not be stored; try again later",
                               {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    except InboxRefusal as refusal:
        return refusal.response()
    return Response(status_code=202)


def signature_digest(request: Request) -> str:
    """SHA-256 of the request's signature headers (draft-cavage ``Signature``, or RFC
    9421's ``Signature-Input`` and ``Signature``): the same for a captured request replayed,
    never for a new delivery (a new signing time, so a new signature)."""
    parts = [request.headers.get(name, "") for name in
             ("signature", "signature-input")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


async def _verify(request: Request, fed: FederationContext, body: bytes,
                  activity: RemoteActivity) -> SignerKey:
    """``verify_signer`` with its failures mapped to answers."""
    try:
        return await verify_signer(request, fed, body)
    except KeyNotFound as exc:
        if activity.type == "Delete":  # the signer is unknown or gone: nothing to delete
            raise InboxRefusal(202, "Delete from an unknown signer") from None
        raise InboxRefusal(401, str(exc)) from None
    except SignatureError as exc:
        raise InboxRefusal(401, str(exc) or exc.reason) from None
    except ActorGone:
        if activity.type == "Delete":
            raise InboxRefusal(202, "Delete from a gone signer") from None
        raise InboxRefusal(401, "The signer's account is gone") from None
    except ActorUnavailable as exc:
        raise InboxRefusal(503, f"Could not retrieve the signer's key: {exc}",
                           {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    except ActorError as exc:
        raise InboxRefusal(401, f"Could not retrieve the signer's key: {exc}") from None


async def shared_inbox(request: Request) -> Response:
    return await receive(request, None)


async def personal_inbox(request: Request) -> Response:
    async with easel(request).db.session() as session:
        recipient = await find_local_account(session, request.path_params["username"])
    if recipient is None:
        return JSONResponse({"error": "Record not found"}, status_code=404)
    return await receive(request, recipient)


routes: list[BaseRoute] = [
    Route("/inbox", shared_inbox, methods=["POST"]),
    Route("/users/{username}/inbox", personal_inbox, methods=["POST"]),
    # The instance actor's inbox (``server.urls.INSTANCE_ACTOR_PATH`` + "/inbox"): what is
    # addressed to the server as a whole, received as at the shared inbox.
    Route(INSTANCE_ACTOR_PATH + "/inbox", shared_inbox, methods=["POST"]),
]
