"""ActivityPub documents served to other servers: actors, their collections, their statuses.

Each endpoint is thin: find the local account (``find_local_account`` hides unapproved
and disabled ones: 404), check the fetch's signature when ``EASEL_AUTHORIZED_FETCH`` is
on, ask :mod:`federation.collections` for the document, and answer it as
``application/activity+json`` with ``Vary: Accept``.

**Authorized fetch.** With ``settings.authorized_fetch``, every GET of an actor, a
collection or a status object must carry a valid HTTP signature (draft-cavage or RFC 9421,
:func:`federation.signatures.verify_request`), the key looked up through the app's
:class:`federation.actors.ActorFetcher`; on ``BadSignature`` the key is refetched once
(rotation). Unsigned: 401 ``{"error": "Request not signed"}``; a bad signature: 401 with
the reason. As in Mastodon, the instance actor (``/actor``) stays public, so that servers
in the same mode can fetch the key that signs our own fetches; WebFinger and NodeInfo are
public too (they are not served here). A browser asking for a page is redirected without
a signature check: only AS2 documents are protected.

Who signed matters too (Mastodon's ``SignatureVerification``, ``StatusPolicy``,
``AccountStatusesFilter``):

* a key on a suspended domain (in allowlist mode, a domain no allow covers) is refused
  with 403 before it is looked up, cached or not, so nothing is fetched from there; so is
  a remote signer our moderators suspended (``suspension_origin == "local"``);
* when the local account blocks the signer, or the signer's domain (a user's domain
  block), its statuses and their activities answer 404 and its collections are empty
  (:mod:`federation.collections`, "Withheld"). Its actor document is still served, as
  Mastodon serves it: the blocked server needs its key to verify the ``Block`` we send.
  A block of one account does not cover other keys of its server (its instance actor);
  a domain block does.

The ``ActorFetcher`` is the process's :class:`federation.context.FederationContext` one
(tests put their own there with :func:`install_actor_fetcher`); its client keeps no idle
connections (key fetches are rare; keys are cached in ``accounts``).

This module never serves a private, direct or unpublished status (even to a signed
fetcher: showing those to an authorised follower or mentioned actor is future work), and
never fetches anything except a signer's key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from federation import collections
from federation.actors import ActorError, ActorFetcher
from federation.content_types import ACTIVITY_JSON, accepts_activity_json
from federation.context import federation_context
from federation.domains import domain_of, is_suspended
from federation.serialize import account_to_actor, tombstone
from federation.signatures import (
    BadSignature,
    KeyLookup,
    SignatureError,
    VerifiedSignature,
    verify_request,
)
from server.errors import ApiError
from server.models import Account, Status, Tombstone
from server.services.accounts import find_local_account, instance_actor
from server.state import easel

VARY = {"Vary": "Accept"}
# The app's fetcher: no idle connections to close at shutdown (see the module docstring).
Endpoint = Callable[[Request], Awaitable[Response]]


class ActivityJSONResponse(JSONResponse):
    media_type = ACTIVITY_JSON


def _activity(document: dict[str, Any]) -> Response:
    return ActivityJSONResponse(document, headers=VARY)


# ------------------------------------------------------------------- authorized fetch

def install_actor_fetcher(app: Any, fetcher: ActorFetcher) -> None:
    """Make ``fetcher`` the one the app uses to look signers' keys up."""
    state = app.state.easel
    federation_context(state.settings, state.db).fetcher = fetcher


def app_actor_fetcher(request: Request) -> ActorFetcher:
    """The process's ActorFetcher (its federation context's)."""
    state = easel(request)
    return federation_context(state.settings, state.db).fetcher


def request_target(request: Request) -> str:
    """The path and query as received (``raw_path`` may carry the query: some servers
    and httpx's ASGI transport put it there)."""
    raw = request.scope.get("raw_path")
    path = raw.split(b"?", 1)[0].decode("latin-1") if raw else request.url.path
    query = request.scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


class SignerRefused(SignatureError):
    """The key is on a domain this server does not federate with (suspended, or not
    allowed in allowlist mode): answered 403."""

    reason = "domain_refused"


async def verify_fetch_signature(request: Request, fetcher: ActorFetcher) -> VerifiedSignature:
    """Verify the request's signature with keys from ``fetcher``, refetching the key once
    when the signature does not verify with the cached one. Raises SignerRefused (before
    any key lookup) when the key's domain is suspended or not allowed, another
    SignatureError, or ActorError (the signer's server is gone or unreachable)."""
    state = easel(request)
    body = await request.body()

    def refusing_suspended(lookup: KeyLookup) -> KeyLookup:
        async def key_lookup(key_id: str) -> str | None:
            async with state.db.session() as session:
                if await is_suspended(session, key_id):
                    raise SignerRefused(f"{domain_of(key_id)} is not federated with")
            return await lookup(key_id)
        return key_lookup

    async def verify(key_lookup: KeyLookup) -> VerifiedSignature:
        return await verify_request(method=request.method, target=request_target(request),
                                    headers=request.headers, body=body,
                                    key_lookup=refusing_suspended(key_lookup),
                                    clock=fetcher.clock, scheme=state.settings.scheme,
                                    expected_host=state.settings.domain)

    try:
        return await verify(fetcher.key_for)
    except BadSignature:
        return await verify(fetcher.refresh_key)


def _refusal(error: str, status_code: int) -> Response:
    return JSONResponse({"error": error}, status_code=status_code, headers=VARY)


async def _refused_fetch(request: Request) -> Response | None:
    """None when the fetch may be answered (the signer, an Account, is then in
    ``request.state.signer``); else the 401 or 403 to send. With authorized fetch off,
    everything is public."""
    if not easel(request).settings.authorized_fetch:
        return None
    if "signature" not in request.headers and "signature-input" not in request.headers:
        return _refusal("Request not signed", 401)
    fetcher = app_actor_fetcher(request)
    try:
        verified = await verify_fetch_signature(request, fetcher)
    except SignerRefused as exc:
        return _refusal(str(exc), 403)
    except SignatureError as exc:
        return _refusal(str(exc) or exc.reason, 401)
    except ActorError as exc:
        return _refusal(f"Could not retrieve the signer's key: {exc}", 401)
    signer = await fetcher.key_owner(verified.key_id)
    if signer is None:  # the key's account went away meanwhile
        return _refusal(f"No account holds the key {verified.key_id}", 401)
    if signer.domain and signer.suspended_at is not None \
            and signer.suspension_origin == "local":
        return _refusal(f"{signer.uri} is suspended on this server", 403)
    request.state.signature = verified
    request.state.signer = signer
    return None


async def _withheld(request: Request, account: Account) -> bool:
    """Whether ``account`` blocks the signer of this fetch, or the signer's domain (never
    without authorized fetch: there is no signer then)."""
    signer: Account | None = getattr(request.state, "signer", None)
    if signer is None:
        return False
    async with easel(request).db.session() as session:
        return await collections.blocks_reader(session, account, signer)


def signed_fetch(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` behind the authorized-fetch check (for endpoints that only serve AS2)."""
    async def checked(request: Request) -> Response:
        refused = await _refused_fetch(request)
        return refused if refused is not None else await endpoint(request)

    checked.__name__ = endpoint.__name__
    checked.__doc__ = endpoint.__doc__
    return checked


# ------------------------------------------------------------------------- endpoints

async def _account_or_404(request: Request) -> Account:
    async with easel(request).db.session() as session:
        account = await find_local_account(session, request.path_params["username"])
    if account is None:
        raise ApiError(404, "Record not found")
    return account


def _cursor(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None


def _wants_page(request: Request) -> bool:
    return "page" in request.query_params or "max_id" in request.query_params


async def actor_document(request: Request) -> Response:
    state = easel(request)
    async with state.db.session() as session:  # purged (server.services.moderation): gone
        gone = await session.scalar(select(Account.uri).where(
            Account.username_key == request.path_params["username"].lower(),
            Account.domain == "", Account.deleted_at.is_not(None)))
    if gone is not None:
        return ActivityJSONResponse(tombstone(gone), status_code=410, headers=VARY)
    account = await _account_or_404(request)
    if not accepts_activity_json(request):
        return RedirectResponse(account.url, status_code=302, headers=VARY)
    refused = await _refused_fetch(request)
    if refused is not None:
        return refused
    moved_to = None
    if account.moved_to_account_id is not None:
        async with state.db.session() as session:
            moved_to = await session.scalar(select(Account.uri).where(
                Account.id == account.moved_to_account_id))
    return _activity(account_to_actor(account, state.urls, state.storage, moved_to=moved_to))


async def instance_actor_document(request: Request) -> Response:
    # Never behind authorized fetch: others need its key to verify our signed fetches.
    state = easel(request)
    async with state.db.session() as session:
        actor = await instance_actor(session, state.settings)
    return ActivityJSONResponse(account_to_actor(actor, state.urls, state.storage))


def _withheld_collection(request: Request, collection_id: str) -> Response:
    return _activity(collections.withheld_collection(
        collection_id, page=_wants_page(request), max_id=_cursor(request, "max_id")))


@signed_fetch
async def outbox(request: Request) -> Response:
    state = easel(request)
    account = await _account_or_404(request)
    if await _withheld(request, account):
        return _withheld_collection(request, collections.outbox_id(account, state.urls))
    async with state.db.session() as session:
        if _wants_page(request):
            document = await collections.outbox_page(
                session, account, state.urls, state.storage, max_id=_cursor(request, "max_id"))
        else:
            document = await collections.outbox_collection(session, account, state.urls)
    return _activity(document)


@signed_fetch
async def followers(request: Request) -> Response:
    state = easel(request)
    account = await _account_or_404(request)
    if await _withheld(request, account):
        return _withheld_collection(request, collections.followers_id(account, state.urls))
    if not _wants_page(request):
        return _activity(collections.followers_collection(account, state.urls))
    async with state.db.session() as session:
        document = await collections.followers_page(session, account, state.urls,
                                                    max_id=_cursor(request, "max_id"))
    return _activity(document)


@signed_fetch
async def following(request: Request) -> Response:
    state = easel(request)
    account = await _account_or_404(request)
    if await _withheld(request, account):
        return _withheld_collection(request, collections.following_id(account, state.urls))
    if not _wants_page(request):
        return _activity(collections.following_collection(account, state.urls))
    async with state.db.session() as session:
        document = await collections.following_page(session, account, state.urls,
                                                    max_id=_cursor(request, "max_id"))
    return _activity(document)


@signed_fetch
async def featured(request: Request) -> Response:
    state = easel(request)
    account = await _account_or_404(request)
    withheld = await _withheld(request, account)
    async with state.db.session() as session:
        document = await collections.featured_collection(session, account, state.urls,
                                                         state.storage, withheld=withheld)
    return _activity(document)


@signed_fetch
async def featured_tags(request: Request) -> Response:
    state = easel(request)
    account = await _account_or_404(request)
    withheld = await _withheld(request, account)
    async with state.db.session() as session:
        document = await collections.featured_tags_collection(session, account, state.urls,
                                                              withheld=withheld)
    return _activity(document)


def _status_id(request: Request) -> int:
    try:
        return int(request.path_params["id"])
    except ValueError:
        raise ApiError(404, "Record not found") from None


async def status_object(request: Request) -> Response:
    """A public or unlisted status as its Note (a browser is sent to its page; a boost
    to the original). Private and direct statuses answer 404 even to signed fetches, and
    so does every status to a signer its author blocks; a deleted one answers 410 with
    its Tombstone."""
    state = easel(request)
    account = await _account_or_404(request)
    async with state.db.session() as session:
        status = await collections.shared_status(session, account, _status_id(request))
        if status is None:
            uri = f"{state.urls.actor(account.username)}/statuses/{request.path_params['id']}"
            if await session.scalar(select(Tombstone.id).where(Tombstone.uri == uri)):
                return ActivityJSONResponse(tombstone(uri), status_code=410, headers=VARY)
            raise ApiError(404, "Record not found")
        wants_document = accepts_activity_json(request)
        if wants_document:
            refused = await _refused_fetch(request)
            if refused is not None:
                return refused
            if await _withheld(request, account):
                raise ApiError(404, "Record not found")
        if status.reblog_of_id is not None:
            original = await session.get(Status, status.reblog_of_id)
            if original is None:
                raise ApiError(404, "Record not found")
            target = original.uri if wants_document else (original.url or original.uri)
            return RedirectResponse(target, status_code=302, headers=VARY)
        if not wants_document:
            return RedirectResponse(status.url or status.uri, status_code=302, headers=VARY)
        note = await collections.status_note(session, account, status, state.urls, state.storage)
    return _activity(note)


@signed_fetch
async def status_activity(request: Request) -> Response:
    """The Create of a status, or the Announce of a boost (404 to a signer its author
    blocks)."""
    state = easel(request)
    account = await _account_or_404(request)
    if await _withheld(request, account):
        raise ApiError(404, "Record not found")
    async with state.db.session() as session:
        status = await collections.shared_status(session, account, _status_id(request))
        activity = None if status is None else await collections.status_activity(
            session, account, status, state.urls, state.storage)
    if activity is None:
        raise ApiError(404, "Record not found")
    return _activity(activity)


routes: list[BaseRoute] = [
    Route("/users/{username}", actor_document, methods=["GET", "HEAD"]),
    Route("/users/{username}/outbox", outbox, methods=["GET", "HEAD"]),
    Route("/users/{username}/followers", followers, methods=["GET", "HEAD"]),
    Route("/users/{username}/following", following, methods=["GET", "HEAD"]),
    Route("/users/{username}/collections/featured", featured, methods=["GET", "HEAD"]),
    Route("/users/{username}/collections/tags", featured_tags, methods=["GET", "HEAD"]),
    Route("/users/{username}/statuses/{id}", status_object, methods=["GET", "HEAD"]),
    Route("/users/{username}/statuses/{id}/activity", status_activity, methods=["GET", "HEAD"]),
    Route("/actor", instance_actor_document, methods=["GET", "HEAD"]),
]
