"""Remote actors: fetched, checked, cached as ``Account`` rows, and their keys looked up.

Every other federation block needs "the actor at this URL" or "the key with this id": the
inbox to verify a signature and to know who is speaking, delivery to find an inbox,
search to resolve ``user@host``. :class:`ActorFetcher` is that one place. It

* answers from the ``accounts`` table while a row is fresh (``updated_at``, the time of the
  last fetch, younger than ``max_age``, one day by default);
* otherwise GETs the actor with a draft-cavage signature by the instance actor (so servers
  in authorized-fetch mode answer), through the safe client, accepting only AS2 content
  types (``application/activity+json`` and ``application/ld+json`` with the AS2 profile;
  plain ``application/json`` is refused);
* applies DESIGN.md's origin rule: the document's ``id`` must equal the URL asked for; if
  it differs but is on the same origin (scheme, host, port), the ``id`` is fetched once
  and accepted only when that document names itself; anything else is refused. A
  redirect may stay on the origin asked; a document served, after redirects, from
  another origin is refused whatever its ``id`` says (``reason="redirected"``: that server
  cannot vouch for another's actor or key — Mastodon's CVE-2024-23832);
* never goes to the network for a suspended domain (``federation.domains``; checked in a
  short session just before each GET, never on a cache hit): ``reason="suspended"``, for
  actors, key owners, the actor a WebFinger answer names, and WebFinger itself (a cached
  actor of a suspended domain is still answered, but never its key: see **Keys**);
* parses with :func:`federation.parse.parse_actor` (remote HTML comes back sanitised),
  refuses actors on Easel's own domain, keeps a public key only when its id is on the
  actor's origin (so no actor can claim another server's key id), and upserts the row by
  ``uri``, ``domain`` being the id's host[:port] and ``username`` its preferredUsername.

**Handle conflicts.** ``(username_key, domain)`` is unique. When a new actor id claims a
handle an existing row (another uri) holds, the old uri is fetched: if it answers 404 or
410 the old row is taken over (its ``uri`` and everything else replaced by the new
actor's; its follows and statuses stay with it, as when an account is recreated) —
provided no row exists yet for the new uri; in every other case (the old uri still serves
anything, or both rows exist) the fetch is refused with :class:`ActorRefused`
(``reason="handle_taken"``). Fetching does not itself confirm the handle through
WebFinger; :meth:`ActorFetcher.resolve_handle` does.

**Keys.** :meth:`ActorFetcher.key_for` is a ``key_lookup`` for
:func:`federation.signatures.verify_request`: a cached row whose ``public_key_id`` is the
key id, else the owner fetched (``…#frag`` → the document without the fragment; a key id
without fragment is fetched under the origin rule, which turns GoToSocial's
``/main-key`` stub into its actor, or, for a bare ``Key`` document, its ``owner`` on the
same origin is fetched). The key is returned only when the actor lists exactly that key
id as its own (``publicKey.owner`` is the actor), or when the key id is the actor's own id
(PeerTube signs with its bare actor URL: :func:`names_key`). :meth:`ActorFetcher.refresh_key` does
the same but fetches even when cached, for one retry after ``BadSignature`` (key
rotation). Both return ``None`` when there is no usable key (unknown actor, 404, refused
document, key not listed, or a key id on a suspended domain — in allowlist mode, one no
allow covers — even when the key is cached: no signature from there ever verifies) and
let :class:`ActorGone` and :class:`ActorUnavailable` escape, so the inbox can drop a
Delete from a gone signer and retry when a server is down. :meth:`ActorFetcher.key_owner`
is the stored account a key that verified belongs to (authorized fetch asks it who is
reading).

**Handles.** :meth:`ActorFetcher.resolve_handle` runs WebFinger, fetches the actor it
names and accepts it when the actor's own handle (preferredUsername @ the id's host) is
the WebFinger subject; otherwise (a LOCAL_DOMAIN/WEB_DOMAIN split, or a preferredUsername
different from the handle) only when WebFinger for the actor's own handle on the actor's
host names the same actor id. The row keeps the actor's host as its ``domain`` (the
split's WEB_DOMAIN), not the handle's.

Errors (each carries ``uri``)::

    ActorError
    ├── ActorGone         the actor's server answered 410 Gone
    ├── ActorNotFound     404, or WebFinger does not know the handle
    ├── ActorUnavailable  any other fetch failure (network, 5xx, timeout, size): retry later
    └── ActorRefused      the document may not be used (.reason): not an actor, origin rule,
                          redirected elsewhere, own or suspended domain, forbidden address,
                          handle taken, handle not confirmed

This module never trusts a document it did not fetch itself from the actor's origin, never
stores unsanitised HTML, never reaches the network except through the client it is given,
never writes local accounts (``domain == ""``), and never refetches more than once per call.
It does not download avatars or headers (it stores their remote URLs; media is another
block's) and does not process ``Move``/``alsoKnownAs``. An avatar or header is not stored
at all (None: the default images show) while a domain block rejects media of the actor's
domain or of the image's host; the first refresh after the block is lifted stores it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from federation.content_types import ACTIVITY_JSON, LD_JSON_AS2
from federation.domains import domain_of, domain_policy, is_suspended
from federation.http import (
    FetchError,
    ForbiddenAddress,
    ForbiddenURL,
    RemoteStatusError,
    fetch_json,
)
from federation.media_cache import queue_profile_images_caching
from federation.parse import ACTOR_TYPES, ParseError, RemoteActor, parse_actor, same_origin
from federation.signatures import CavageSigner, utc_now
from federation.webfinger import (
    Handle,
    HandleNotFound,
    InvalidHandle,
    WebFingerError,
    WebFingerResult,
    parse_handle,
    webfinger,
)
from server.db import Database
from server.models import Account
from server.settings import Settings

Clock = Callable[[], datetime]
SignerFactory = Callable[[], Awaitable[httpx.Auth]]

# Actor documents: AS2 only (not plain application/json).
ACTOR_ACCEPT: tuple[str, ...] = (ACTIVITY_JSON, LD_JSON_AS2)
DEFAULT_MAX_AGE = timedelta(days=1)
DISPLAY_NAME_LIMIT = 255  # Account.display_name
BOT_TYPES = frozenset({"Service", "Application"})


async def _drop_rejected_images(session: AsyncSession, account: Account) -> None:
    """Forget the avatar and header of an account whose domain's media are rejected (or
    an image on such a domain): not shown, not cached (as Mastodon's skip_download). Its
    avatar_key/header_key go with them (``queue_profile_images_caching`` then unnames their
    copies; ``easel admin media prune`` deletes the files)."""
    rejected = (await domain_policy(session, account.domain)).reject_media

    async def rejected_at(url: str | None) -> bool:
        if rejected:
            return True
        if not url or domain_of(url) == account.domain:
            return False
        return (await domain_policy(session, url)).reject_media

    if await rejected_at(account.avatar_remote_url):
        account.avatar_remote_url = account.avatar_key = None
    if await rejected_at(account.header_remote_url):
        account.header_remote_url = account.header_key = None


# ------------------------------------------------------------------------------ errors

class ActorError(Exception):
    """The actor at ``uri`` could not be had."""

    def __init__(self, message: str, *, uri: str) -> None:
        super().__init__(message)
        self.uri = uri


class ActorGone(ActorError):
    """The actor's server answered 410 Gone: the account was deleted."""


class ActorNotFound(ActorError):
    """404 (or WebFinger does not know the handle)."""


class ActorUnavailable(ActorError):
    """A failure that may pass: network, timeout, 5xx, size, content type. Retry later."""


class ActorRefused(ActorError):
    """The document may not be used; ``reason`` is a stable short code for logs."""

    def __init__(self, message: str, *, uri: str, reason: str) -> None:
        super().__init__(message, uri=uri)
        self.reason = reason


# ----------------------------------------------------------------------------- helpers

def _netloc(url: str) -> str:
    """host[:port] of an http(s) URL, lower case (the default port left out)."""
    parsed = httpx.URL(url)
    host = parsed.host.lower().rstrip(".")
    return f"{host}:{parsed.port}" if parsed.port is not None else host


def _checked_url(uri: str) -> str:
    try:
        parsed = httpx.URL(uri)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ActorRefused(f"not a URL: {uri!r}", uri=str(uri), reason="bad_url") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ActorRefused(f"not an http(s) URL: {uri!r}", uri=uri, reason="bad_url")
    return uri


def _without_fragment(url: str) -> str:
    return url.split("#", 1)[0]


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def names_key(key_id: str) -> ColumnElement[bool]:
    """The remote accounts a signature's ``keyId`` names: the one listing it as its
    ``publicKey.id``, or the one whose actor id it is — PeerTube signs with its bare actor
    URL as ``keyId`` while its document lists ``…#main-key`` (Mastodon takes the actor's
    key for a keyId without fragment too). Either way the key is the actor's own, served
    from its origin."""
    return or_(Account.public_key_id == key_id, Account.uri == key_id)


class ActorFetcher:
    """Fetches and caches remote actors; see the module docstring for every rule.

    ``signer_factory`` returns the ``httpx.Auth`` that signs each GET; by default a
    :class:`CavageSigner` with the instance actor's key
    (``server.services.accounts.instance_actor``), built once on first use.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        client: httpx.AsyncClient,
        *,
        signer_factory: SignerFactory | None = None,
        clock: Clock = utc_now,
        max_age: timedelta = DEFAULT_MAX_AGE,
    ) -> None:
        self.db = db
        self.settings = settings
        self.client = client
        self.clock = clock
        self.max_age = max_age
        self._signer_factory = signer_factory or self._instance_actor_signer
        self._signer: httpx.Auth | None = None
        self._own_domain = settings.domain.lower()

    # ------------------------------------------------------------------ public API

    async def fetch_actor(self, uri: str, *, refresh: bool = False) -> Account:
        """The remote actor at ``uri``: the cached row when fresh, else fetched and stored."""
        uri = _checked_url(uri)
        self._refuse_own_domain(uri)
        if not refresh:
            async with self.db.session() as session:
                cached = await self._cached(session, uri)
                if cached is not None and self._is_fresh(cached):
                    return cached
        actor = await self._fetch_remote_actor(uri)
        return await self._store(actor)

    async def key_for(self, key_id: str) -> str | None:
        """``key_lookup`` for ``verify_request``: the PEM of ``key_id``, fetching its actor
        when the key is unknown. None when there is no usable key."""
        return await self._key(key_id, refresh=False)

    async def refresh_key(self, key_id: str) -> str | None:
        """Like :meth:`key_for`, but refetches the owner once even if cached (rotation)."""
        return await self._key(key_id, refresh=True)

    async def key_owner(self, key_id: str) -> Account | None:
        """The stored account whose key ``key_id`` is (a local one for a key on this
        server's domain), as :meth:`key_for` found it; None when none is stored."""
        try:
            local = _netloc(_checked_url(key_id)) == self._own_domain
        except ActorRefused:
            return None
        async with self.db.session() as session:
            return await session.scalar(select(Account).where(
                Account.public_key_id == key_id if local else names_key(key_id),
                Account.domain == "" if local else Account.domain != "")
                .order_by(Account.id).limit(1))

    async def resolve_handle(self, handle: str | Handle, *, refresh: bool = False) -> Account:
        """``user@host[:port]`` → the remote Account, confirmed through WebFinger."""
        try:
            requested = handle if isinstance(handle, Handle) else parse_handle(handle)
        except InvalidHandle as exc:
            raise ActorRefused(str(exc), uri=str(handle), reason="bad_handle") from exc
        if requested.host == self._own_domain:
            raise ActorRefused(f"{requested} is a local handle", uri=str(requested),
                               reason="own_domain")
        if not refresh:
            async with self.db.session() as session:
                cached = await session.scalar(select(Account).where(
                    Account.username_key == requested.username.lower(),
                    Account.domain == requested.host))
                if cached is not None and self._is_fresh(cached):
                    return cached
        result = await self._webfinger(requested)
        account = await self.fetch_actor(result.actor_url, refresh=refresh)
        subject = result.subject
        if subject.host == account.domain and subject.username.lower() == account.username_key:
            return account
        # The handle names a host other than the actor's (LOCAL_DOMAIN/WEB_DOMAIN split) or
        # another username: accept only if the actor's own host maps its handle back to it.
        own = Handle(username=account.username, host=account.domain)
        confirmation = await self._webfinger(own)
        if confirmation.actor_url != account.uri:
            raise ActorRefused(
                f"{requested} names {account.uri}, but {own} resolves to {confirmation.actor_url}",
                uri=account.uri, reason="handle_not_confirmed")
        return account

    # ------------------------------------------------------------------ fetching

    async def _instance_actor_signer(self) -> httpx.Auth:
        from server.services.accounts import instance_actor

        async with self.db.session() as session:
            actor = await instance_actor(session, self.settings)
        if not actor.private_key_pem:
            raise RuntimeError("the instance actor has no private key")
        return CavageSigner(actor.public_key_id, actor.private_key_pem, clock=self.clock)

    async def signer(self) -> httpx.Auth:
        """The instance actor's signer for GETs (built once); object fetches sign with it too."""
        if self._signer is None:
            self._signer = await self._signer_factory()
        return self._signer

    async def _refuse_suspended(self, url: str, *, shown: str | None = None) -> None:
        """ActorRefused when ``url``'s domain (or a ``host[:port]``) is suspended."""
        async with self.db.session() as session:
            suspended = await is_suspended(session, url)
        if suspended:
            shown = shown or url
            raise ActorRefused(f"{shown} is on a suspended domain", uri=shown,
                               reason="suspended")

    async def _get(self, url: str) -> dict[str, Any]:
        """One signed GET of an AS2 document; fetch errors mapped to ActorError. Never
        for a suspended domain; the document only when the server that finally answered
        is on ``url``'s origin."""
        await self._refuse_suspended(url)
        try:
            final_url, document = await fetch_json(self.client, url, accept=ACTOR_ACCEPT,
                                                   auth=await self.signer())
        except RemoteStatusError as exc:
            if exc.status_code == 410:
                raise ActorGone(f"{url} is gone (410)", uri=url) from exc
            if exc.status_code == 404:
                raise ActorNotFound(f"{url} not found (404)", uri=url) from exc
            raise ActorUnavailable(str(exc), uri=url) from exc
        except (ForbiddenURL, ForbiddenAddress) as exc:
            raise ActorRefused(str(exc), uri=url, reason="forbidden_url") from exc
        except FetchError as exc:
            raise ActorUnavailable(str(exc), uri=url) from exc
        if not same_origin(final_url, url):
            raise ActorRefused(f"{url} redirected to {final_url}, on another origin", uri=url,
                               reason="redirected")
        return document

    async def _get_consistent(self, url: str) -> dict[str, Any]:
        """The document at ``url`` under the origin rule (at most one refetch by id)."""
        document = await self._get(url)
        doc_id = document.get("id")
        if doc_id == url:
            return document
        if not isinstance(doc_id, str) or not same_origin(doc_id, url):
            raise ActorRefused(f"{url} sent a document with id {doc_id!r} from another origin",
                               uri=url, reason="origin_mismatch")
        self._refuse_own_domain(doc_id)
        document = await self._get(doc_id)
        if document.get("id") != doc_id:
            raise ActorRefused(f"{doc_id} does not name itself (id {document.get('id')!r})",
                               uri=url, reason="origin_mismatch")
        return document

    def _parse(self, document: dict[str, Any], url: str) -> RemoteActor:
        try:
            actor = parse_actor(document)
        except ParseError as exc:
            raise ActorRefused(f"{url} is not a usable actor: {exc.reason}", uri=url,
                               reason="invalid_actor") from exc
        self._refuse_own_domain(actor.id)
        return actor

    async def _fetch_remote_actor(self, uri: str) -> RemoteActor:
        return self._parse(await self._get_consistent(uri), uri)

    def _refuse_own_domain(self, url: str) -> None:
        if _netloc(url) == self._own_domain:
            raise ActorRefused(f"{url} is on this server's own domain", uri=url,
                               reason="own_domain")

    # ------------------------------------------------------------------ storing

    def _is_fresh(self, account: Account) -> bool:
        return self.clock() - _aware(account.updated_at) < self.max_age

    @staticmethod
    async def _cached(session: AsyncSession, uri: str) -> Account | None:
        return await session.scalar(select(Account).where(Account.uri == uri, Account.domain != ""))

    async def _store(self, actor: RemoteActor) -> Account:
        try:
            return await self._upsert(actor)
        except IntegrityError:
            # Another worker stored the same actor (or handle) between our read and write:
            # once more, now that its row is there to be updated or to conflict with.
            return await self._upsert(actor)

    async def _upsert(self, actor: RemoteActor) -> Account:
        domain = _netloc(actor.id)
        username_key = actor.username.lower()
        async with self.db.session() as session:
            account = await session.scalar(select(Account).where(Account.uri == actor.id))
            if account is not None and account.domain == "":
                raise ActorRefused(f"{actor.id} is a local account", uri=actor.id,
                                   reason="own_domain")
            holder = await session.scalar(select(Account).where(
                Account.username_key == username_key, Account.domain == domain,
                Account.uri != actor.id))
            if holder is not None:
                if account is not None or not await self._no_longer_served(holder.uri):
                    raise ActorRefused(
                        f"{actor.username}@{domain} is already {holder.uri}, which still "
                        f"exists; refusing {actor.id}", uri=actor.id, reason="handle_taken")
                account = holder  # the old actor is gone: its row becomes the new one's
            if account is None:
                account = Account(uri=actor.id)
                session.add(account)
            self._apply(account, actor, domain)
            await _drop_rejected_images(session, account)
            await session.flush()
            await queue_profile_images_caching(session, self.settings, account)
            await session.commit()
            return account

    async def _no_longer_served(self, uri: str) -> bool:
        try:
            await self._get(uri)
        except (ActorGone, ActorNotFound):
            return True
        except ActorRefused:
            return False
        return False

    def _apply(self, account: Account, actor: RemoteActor, domain: str) -> None:
        key = actor.public_key if actor.public_key and same_origin(actor.public_key.id, actor.id) \
            else None
        account.uri = actor.id
        account.username = actor.username
        account.username_key = actor.username.lower()
        account.domain = domain
        account.actor_type = actor.type if actor.type in ACTOR_TYPES else "Person"
        account.display_name = actor.name[:DISPLAY_NAME_LIMIT]
        account.note = actor.summary
        account.url = actor.url or actor.id
        account.inbox_url = actor.inbox
        account.outbox_url = actor.outbox or ""
        account.shared_inbox_url = actor.shared_inbox or ""
        account.followers_url = actor.followers or ""
        account.following_url = actor.following or ""
        account.featured_url = actor.featured or ""
        account.public_key_id = key.id if key else ""
        account.public_key_pem = key.pem if key else ""
        account.locked = actor.manually_approves_followers
        account.discoverable = actor.discoverable
        account.indexable = actor.indexable
        account.bot = actor.type in BOT_TYPES
        if account.avatar_remote_url != actor.avatar_url:
            account.avatar_key = None  # the stored copy is of the old image
        if account.header_remote_url != actor.header_url:
            account.header_key = None
        account.avatar_remote_url = actor.avatar_url
        account.header_remote_url = actor.header_url
        account.fields = [{"name": f.name, "value": f.value, "verified_at": None}
                          for f in actor.fields]
        account.also_known_as = list(actor.also_known_as)  # an inbound Move checks it
        # Its AI opt-out as stated (FEP-5e53, Easel's dataMining); None when silent.
        account.robots = actor.robots
        account.data_mining = actor.data_mining
        # Suspended by its own server (Mastodon's ``suspended``); lifted only when that
        # server lifts it, never a suspension our moderators made.
        if actor.suspended and account.suspended_at is None:
            account.suspended_at, account.suspension_origin = self.clock(), "remote"
        elif not actor.suspended and account.suspension_origin == "remote":
            account.suspended_at = account.suspension_origin = None
        account.updated_at = self.clock()  # the time of this fetch

    # ------------------------------------------------------------------ keys

    async def _key(self, key_id: str, *, refresh: bool) -> str | None:
        try:
            key_id = _checked_url(key_id)
        except ActorRefused:
            return None
        async with self.db.session() as session:
            if _netloc(key_id) == self._own_domain:  # one of ours: never fetched
                local = await session.scalar(select(Account).where(
                    Account.public_key_id == key_id, Account.domain == ""))
                return (local.public_key_pem or None) if local is not None else None
            if await is_suspended(session, key_id):  # cached or not, never used
                return None
            if not refresh:
                cached = await session.scalar(select(Account).where(
                    names_key(key_id), Account.domain != "")
                    .order_by(Account.id).limit(1))
                if cached is not None and cached.public_key_pem:
                    return cached.public_key_pem
        try:
            account = await self._owner_of(key_id)
        except (ActorNotFound, ActorRefused):
            return None
        if key_id not in (account.public_key_id, account.uri) or not account.public_key_pem:
            return None
        return account.public_key_pem

    async def _owner_of(self, key_id: str) -> Account:
        """Fetch (always) and store the actor that should list ``key_id``."""
        base = _without_fragment(key_id)
        if base != key_id:
            return await self.fetch_actor(base, refresh=True)
        self._refuse_own_domain(key_id)
        document = await self._get_consistent(key_id)
        if document.get("type") not in ACTOR_TYPES and "owner" in document \
                and "publicKeyPem" in document:
            owner = document.get("owner")
            if not isinstance(owner, str) or not same_origin(owner, key_id):
                raise ActorRefused(f"key {key_id} names owner {owner!r} on another origin",
                                   uri=key_id, reason="origin_mismatch")
            return await self.fetch_actor(owner, refresh=True)
        return await self._store(self._parse(document, key_id))

    # ------------------------------------------------------------------ WebFinger

    async def _webfinger(self, handle: Handle) -> WebFingerResult:
        shown = str(handle)
        await self._refuse_suspended(handle.host, shown=shown)
        try:
            return await webfinger(self.client, handle, settings=self.settings)
        except HandleNotFound as exc:
            raise ActorNotFound(str(exc), uri=shown) from exc
        except WebFingerError as exc:
            raise ActorRefused(str(exc), uri=shown, reason="webfinger") from exc
        except (ForbiddenURL, ForbiddenAddress) as exc:
            raise ActorRefused(str(exc), uri=shown, reason="forbidden_url") from exc
        except FetchError as exc:
            raise ActorUnavailable(str(exc), uri=shown) from exc
