"""Remote statuses: a Note from another server → a ``Status`` row, kept right afterwards.

Why it exists: an inbound ``Create``/``Update``/``Delete``, a reply whose parent is
unknown, a boost of an unknown post and search with ``resolve=true`` all end in "this
Note, as a status Easel shows". This module is that one conversion and its rules:

* :func:`store_note` — a Note dict whose origin the caller has already trusted (embedded in
  an activity its author signed, or fetched from its origin) → a created or updated
  ``Status``: ``local=False``, its ``uri``/``url``, sanitised content (``federation.parse``
  sanitises; for an Article/Page/Video … — Mastodon's converted types — the title is put
  in front and a link to the object at the end, and its ``summary`` is an excerpt, not a
  content warning; a ``Link`` attachment that is not an image is shown as a link),
  content warning, sensitivity, language, visibility from ``to``/``cc`` and the author's followers
  collection, ``created_at`` = ``published`` (never in the future, never before 1970)
  and a Snowflake id from it, so timelines keep the order the fediverse wrote them in.
  ``attributedTo`` must be the author and the note's id on the author's origin. Replies
  are linked to a known parent; an unknown parent is fetched (at most
  :data:`MAX_REPLY_DEPTH` levels up), else only its uri is kept, in ``in_reply_to_uri``
  (still a reply for the timelines; linked, and counted, when the parent is stored later). Hashtags become
  ``Tag``/``StatusTag`` rows like local ones;
  mentions become ``Mention`` rows for accounts Easel already knows (never fetched here),
  local accounts addressed in ``to``/``cc`` are mentioned silently (direct messages), and
  local accounts get their ``mention`` notification once. Counters (the author's
  ``statuses_count``/``last_status_at``, the parent's ``replies_count``) move once, on
  creation. A replayed Note changes nothing; a Note whose uri has a ``Tombstone`` is never
  recreated. The note's AI opt-out (FEP-5e53 ``xRobotsTag``, Easel's ``dataMining``) is
  kept on the status as stated.
* Works: a note with images is a work (:mod:`server.services.portfolio`). An Easel
  server's ``portfolio`` data is stored with ``set_work_metadata``, bounded, and a part
  the service refuses is dropped, never the note; any other server's work gets its
  portfolio tags from its hashtags (``recognise_hashtags``), so browsing by tag here finds
  works from elsewhere. A note that loses its images stops being a work.
* Updates (the same function, for a uri already stored): only by the same author;
  content, warning, sensitivity, language, attachments (kept ones updated in place, by
  URL, so older versions still show them), poll options, hashtags and mentions are
  replaced and ``edited_at`` set — only when something changed, and never by a stale
  ``updated``; the row is locked first.
* :func:`resolve_status` — a known status by uri or url, else fetched from its origin
  (:mod:`federation.objects`, origin rule), its author fetched (:class:`ActorFetcher`), and
  stored.
* :func:`delete_remote_status` — only by its author; counters go down, its boosts and
  notifications go, media rows go, and a ``Tombstone`` stays.

**Remote media are referenced, not downloaded.** Each attachment becomes a
``MediaAttachment`` row (state ``ready``, ``remote_url`` = the attachment's URL, type from
its media type, ``description`` = alt text, blurhash, width/height in ``meta``, focal point)
in the Note's order, with no stored file: clients load the image from its origin, as
they would from the author's server. Easel therefore never stores, transcodes or serves
other servers' images (nothing of theirs passes through the protect pipeline, and no
remote file can fill the disk); the cost is that a viewer's client contacts the origin.
For a domain blocked with ``reject_media`` no media row is made at all: the attachments
are appended to the content as plain links (their alt text as the link text), so readers
can still follow them to the origin, and no client loads them inline. Statuses stored
before such a block keep their rows, made type ``unknown`` by the block's
``clear_domain_media`` job (:mod:`federation.media_cache`); stored again once the block is
lifted (an Update, a redelivery), they get their type back, which is not an edit.

Errors::

    NoteError (.uri)
    ├── NoteUnavailable  a fetch failed in a way that may pass (network, 5xx): retry later
    └── NoteRefused      never usable (.reason): invalid, not a note, wrong author or
                         origin, own or suspended domain, deleted (tombstone), not found

Storing requires no fetch except the reply parent's, and all fetching (the parent, its
author) happens before this module writes anything in the caller's session, so a SQLite
writer lock is never held across network I/O of its own. This module never trusts a
document's claims about another origin, never stores unsanitised HTML, never downloads
media, never writes local statuses, never commits (the caller does), and rolls the
caller's session back only when a concurrent store of the same uri made it unusable.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from federation.actors import ActorError, ActorUnavailable
from federation.context import FederationContext
from federation.domains import domain_policy
from federation.media_cache import queue_status_media_caching
from federation.objects import (
    ObjectError,
    ObjectRefused,
    ObjectUnavailable,
    fetch_object,
    is_own,
)
from federation.parse import (
    NOTE_TYPES,
    ParseError,
    RemoteAttachment,
    RemoteNote,
    RemoteWork,
    first_id,
    parse_note,
    same_origin,
)
from federation.polls import keep_remote_poll
from federation.sanitize import sanitize_html
from server.db import insert_ignoring_conflict
from server.ids import new_id, utcnow
from server.models import (
    Account,
    Follow,
    MediaAttachment,
    MediaState,
    Mention,
    Notification,
    Status,
    StatusTag,
    Tombstone,
    Work,
    WorkTag,
)
from server.models.media import ProtectionState
from server.services import events
from server.services.conversations import record_direct_status
from server.services.edits import Version, current_version, record_edit
from server.services.errors import ServiceError
from server.services.languages import remote_language
from server.services.link_cards import queue_link_card
from server.services.notifications import notify
from server.services.outbox import record_activity
from server.services.portfolio import (
    WorkMeta,
    hashtag_for,
    recognise_hashtags,
    set_work_metadata,
    work_metadata,
)
from server.services.tags import tags_for

# How many levels of unknown reply parents one stored note may fetch.
MAX_REPLY_DEPTH = 3


# ------------------------------------------------------------------------------ errors

class NoteError(Exception):
    """The note at ``uri`` could not be had or stored."""

    def __init__(self, message: str, *, uri: str) -> None:
        super().__init__(message)
        self.uri = uri


class NoteUnavailable(NoteError):
    """A failure that may pass (its origin or its author's server is unreachable)."""


class NoteRefused(NoteError):
    """The note may never be stored as asked; ``reason`` is a short stable code."""

    def __init__(self, message: str, *, uri: str, reason: str) -> None:
        super().__init__(message, uri=uri)
        self.reason = reason


# ----------------------------------------------------------------------------- lookups

async def find_status_by_uri(session: AsyncSession, uri: str) -> Status | None:
    """The status whose ``uri`` is ``uri`` (ours or a known remote one), else one whose
    ``url`` is ``uri`` — a local status, or a remote one whose url is on its uri's origin
    (a note cannot claim another server's web address)."""
    if not uri:
        return None
    candidates = list(await session.scalars(
        select(Status).where(or_(Status.uri == uri, Status.url == uri)).limit(8)))
    for status in candidates:
        if status.uri == uri:
            return status
    for status in candidates:
        if status.local or same_origin(status.url, status.uri):
            return status
    return None


async def _stored(session: AsyncSession, uri: str) -> Status | None:
    return await session.scalar(select(Status).where(Status.uri == uri))


async def is_tombstoned(session: AsyncSession, uri: str) -> bool:
    return await session.scalar(select(Tombstone.id).where(Tombstone.uri == uri)) is not None


async def is_relevant_locally(session: AsyncSession, note: RemoteNote, author: Account) -> bool:
    """Mastodon's ``related_to_local_activity?`` for an inbound Create: some local account
    follows the author, the note replies to a local status or to one by an account a
    local account follows, or it addresses (mentions, to, cc) a local account."""
    local_follower = await session.scalar(
        select(Follow.id).join(Account, Account.id == Follow.account_id).where(
            Follow.target_account_id == author.id, Account.domain == "").limit(1))
    if local_follower is not None:
        return True
    if note.in_reply_to:
        parent = await find_status_by_uri(session, note.in_reply_to)
        if parent is not None:
            if parent.local:
                return True
            followed = await session.scalar(
                select(Follow.id).join(Account, Account.id == Follow.account_id).where(
                    Follow.target_account_id == parent.account_id, Account.domain == "")
                .limit(1))
            if followed is not None:
                return True
    addressed = {m.href for m in note.mentions} | set(note.to) | set(note.cc)
    if addressed:
        local = await session.scalar(select(Account.id).where(
            Account.domain == "", or_(Account.uri.in_(addressed), Account.url.in_(addressed)))
            .limit(1))
        if local is not None:
            return True
    return False


# ------------------------------------------------------------------------------ public

async def resolve_status(fed: FederationContext, session: AsyncSession, uri: str) -> Status:
    """The known status at ``uri`` (by uri or url), else fetched from its origin, its
    author fetched, and stored (not committed). Raises NoteUnavailable or NoteRefused."""
    return await _resolve(fed, session, uri, depth=0)


async def store_note(fed: FederationContext, session: AsyncSession, document: dict[str, Any],
                     *, author: Account) -> Status:
    """Create, or update, the remote status for ``document`` by ``author`` (not
    committed). The caller vouches for the document's origin; the attribution and origin
    of the note itself are checked here. Raises NoteRefused (or NoteUnavailable)."""
    return await _store(fed, session, document, author=author, depth=0)


async def store_fetched_note(fed: FederationContext, session: AsyncSession,
                             document: dict[str, Any]) -> Status:
    """A Note document fetched from its origin (``federation.objects.fetch_object``):
    its author is fetched, then it is stored (or the known status returned)."""
    return await _store_fetched(fed, session, document, depth=0)


async def delete_remote_status(fed: FederationContext, session: AsyncSession, uri: str, *,
                               actor: Account) -> bool:
    """Delete the remote status ``uri`` when ``actor`` wrote it (not committed); True if
    one was deleted. A uri on the actor's origin gets a Tombstone even when the status is
    unknown, so a late Create does not bring it back."""
    if not uri or actor.is_local or is_own(fed, uri) or not same_origin(uri, actor.uri):
        return False
    status = await _stored(session, uri)
    if status is not None and (status.local or status.account_id != actor.id):
        return False
    await _tombstone(session, uri, actor.id)
    if status is None:
        return False
    await _remove(session, status)
    return True


# ----------------------------------------------------------------------- resolving

def _checked_uri(uri: Any) -> str:
    if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
        raise NoteRefused(f"not an http(s) URL: {uri!r}", uri=str(uri), reason="bad_url")
    return uri


async def _resolve(fed: FederationContext, session: AsyncSession, uri: str, *,
                   depth: int) -> Status:
    uri = _checked_uri(uri)
    found = await find_status_by_uri(session, uri)
    if found is not None:
        return found
    if is_own(fed, uri):
        raise NoteRefused(f"{uri} is not a status of this server", uri=uri, reason="not_found")
    if await is_tombstoned(session, uri):
        raise NoteRefused(f"{uri} was deleted", uri=uri, reason="deleted")
    try:
        document = await fetch_object(fed, uri, session=session)
    except ObjectUnavailable as exc:
        raise NoteUnavailable(str(exc), uri=uri) from exc
    except ObjectRefused as exc:
        raise NoteRefused(str(exc), uri=uri, reason=exc.reason) from exc
    except ObjectError as exc:  # gone, not found
        raise NoteRefused(str(exc), uri=uri, reason="not_found") from exc
    return await _store_fetched(fed, session, document, depth=depth)


async def _store_fetched(fed: FederationContext, session: AsyncSession,
                         document: dict[str, Any], *, depth: int) -> Status:
    note_id = _checked_uri(document.get("id"))
    found = await _stored(session, note_id)
    if found is not None:
        return found
    if _type_of(document) not in NOTE_TYPES:
        raise NoteRefused(f"{note_id} is not a note ({_type_of(document)!r})", uri=note_id,
                          reason="not_a_note")
    attributed_to = first_id(document.get("attributedTo"))
    if attributed_to is None or not same_origin(attributed_to, note_id):
        raise NoteRefused(f"{note_id} is attributed to {attributed_to!r}, not on its origin",
                          uri=note_id, reason="attribution")
    try:
        author = await fed.fetcher.fetch_actor(attributed_to)
    except ActorUnavailable as exc:
        raise NoteUnavailable(str(exc), uri=note_id) from exc
    except ActorError as exc:
        raise NoteRefused(f"the author of {note_id} cannot be had: {exc}", uri=note_id,
                          reason="author") from exc
    return await _store(fed, session, document, author=author, depth=depth)


def _type_of(document: dict[str, Any]) -> str | None:
    value = document.get("type")
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, str)), None)
    return value if isinstance(value, str) else None


# ------------------------------------------------------------------------- storing

def _parsed(document: dict[str, Any], author: Account) -> RemoteNote:
    shown = str(document.get("id")) if isinstance(document, dict) else "?"
    if author.is_local:
        raise NoteRefused(f"{shown}: a local account's notes are not stored from outside",
                          uri=shown, reason="local_author")
    try:
        note = parse_note(document, followers_url=author.followers_url or None)
    except ParseError as exc:
        raise NoteRefused(f"{shown} is not a usable note: {exc.reason}", uri=shown,
                          reason="invalid") from exc
    if note.attributed_to != author.uri:
        raise NoteRefused(f"{note.id} is attributed to {note.attributed_to}, not {author.uri}",
                          uri=note.id, reason="attribution")
    if not same_origin(note.id, author.uri):
        raise NoteRefused(f"{note.id} is not on its author's origin", uri=note.id,
                          reason="origin_mismatch")
    return note


async def _store(fed: FederationContext, session: AsyncSession, document: dict[str, Any], *,
                 author: Account, depth: int) -> Status:
    note = _parsed(document, author)
    if is_own(fed, note.id):
        raise NoteRefused(f"{note.id} is on this server's own domain", uri=note.id,
                          reason="own_domain")
    policy = await domain_policy(session, note.id)
    if policy.suspended:
        raise NoteRefused(f"{policy.domain} is suspended", uri=note.id, reason="suspended")
    existing = await _stored(session, note.id)
    if existing is None:
        if await is_tombstoned(session, note.id):
            raise NoteRefused(f"{note.id} was deleted", uri=note.id, reason="deleted")
        # Every fetch (the parent, its author) before the first write.
        parent = await _parent(fed, session, note, depth)
        existing = await _stored(session, note.id)  # the parent chain may have stored it
        if existing is None:
            created = await _create(session, note, author, parent,
                                    reject_media=policy.reject_media, quote=_quote_url(document))
            await keep_remote_poll(session, created, document)  # a Question's poll
            await queue_status_media_caching(session, fed.settings, created.id)
            await queue_link_card(session, created)
            return created
    if existing.local or existing.account_id != author.id:
        raise NoteRefused(f"{note.id} belongs to another account", uri=note.id,
                          reason="not_owner")
    # Locked and read before anything changes it (the poll too): two edits delivered at
    # once must not both take the same version as their "before".
    await _lock(session, existing)
    before = await current_version(session, existing)  # kept as history if this is an edit
    # A poll's counts change without an edit of the post: refreshed whatever ``updated`` says.
    await keep_remote_poll(session, existing, document)
    await _update(session, existing, note, author, before=before,
                  reject_media=policy.reject_media, quote=_quote_url(document))
    await queue_status_media_caching(session, fed.settings, existing.id)
    return existing


async def _parent(fed: FederationContext, session: AsyncSession, note: RemoteNote,
                  depth: int) -> Status | None:
    if not note.in_reply_to or note.in_reply_to == note.id:
        return None
    parent = await find_status_by_uri(session, note.in_reply_to)
    if parent is not None or depth >= MAX_REPLY_DEPTH:
        return parent
    try:
        return await _resolve(fed, session, note.in_reply_to, depth=depth + 1)
    except NoteError:
        # Kept as in_reply_to_uri only: the reply stays out of public timelines (it is
        # still a reply), and is linked when its parent is stored later.
        return None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _created_at(note: RemoteNote) -> datetime:
    """``published``, within [1970, now]: never in the future, and never before the
    Unix epoch (the Snowflake id made from it would be negative)."""
    now = utcnow()
    return max(min(note.published, now), EPOCH) if note.published is not None else now


def _language(note: RemoteNote) -> str | None:
    return remote_language(note.language)


def _quote_url(document: dict[str, Any]) -> str | None:
    """The quoted post of a quote post (Misskey's ``_misskey_quote``, ``quoteUrl``,
    ``quoteUri`` — FEP-e232 style ``quote`` too), if any."""
    for key in ("quote", "quoteUrl", "quoteUri", "_misskey_quote"):
        found = first_id(document.get(key))
        if found is not None:
            return found
    return None


def _content(note: RemoteNote, *, reject_media: bool, quote: str | None = None) -> str:
    """The stored HTML: a title in front (Article, Page, Video …); the content — for a
    converted type without any, its summary (an excerpt); the note's ``Link`` attachments
    that are not images (a Lemmy link post's link); for a converted type, a link to the
    object itself (its ``url``, else its id), as Mastodon shows them, so the whole is
    always one click away; a link to a quoted post ("RE: …", as Mastodon shows quotes it
    cannot embed); the attachments as links at the end when the domain's media are
    rejected. A link the content already carries is not repeated."""
    parts: list[str] = []
    if note.name and note.type != "Note":
        parts.append(f"<p><strong>{html.escape(note.name, quote=False)}</strong></p>")
    parts.append(note.content)
    if note.is_converted and not note.content and note.summary:
        parts.append(f"<p>{html.escape(note.summary, quote=False)}</p>")
    links = [url for url in note.links if not _carries(note.content, url)]
    if links:
        parts.append("<p>" + "<br>".join(_link(url, url) for url in links) + "</p>")
    page = note.url or note.id
    if note.is_converted and page not in links and not _carries(note.content, page):
        parts.append(f"<p>{_link(page, page)}</p>")
    if quote is not None and not _carries(note.content, quote):
        parts.append(f"<p>RE: {_link(quote, quote)}</p>")
    if reject_media and note.attachments:
        parts.append("<p>" + "<br>".join(_link(a.url, a.description or a.url)
                                         for a in note.attachments) + "</p>")
    return sanitize_html("".join(parts))


def _carries(content: str, url: str) -> bool:
    """Whether sanitised ``content`` already shows ``url`` (as a link or as text)."""
    return html.escape(url, quote=True) in content


def _spoiler_text(note: RemoteNote) -> str:
    """The content warning: a Note's or Question's ``summary``; a converted type's is an
    excerpt (WordPress, Plume, Ghost, Friendica articles), never a warning (Mastodon's
    ``spoiler_text: converted_object_type? ? ''``)."""
    return "" if note.is_converted else note.summary


def _link(url: str, text: str) -> str:
    return (f'<a href="{html.escape(url, quote=True)}" rel="nofollow noopener noreferrer" '
            f'target="_blank">{html.escape(text, quote=False)}</a>')


async def _adopt_waiting_replies(session: AsyncSession, status: Status) -> None:
    """Link the replies stored before ``status`` (their parent could not be fetched then)
    to it, and count them once. A reply to itself, or to its own reply (a cycle a remote
    could build), is never linked."""
    waiting = (
        update(Status)
        .where(Status.in_reply_to_uri == status.uri, Status.in_reply_to_id.is_(None),
               Status.id != status.id)
        .values(in_reply_to_id=status.id, in_reply_to_account_id=status.account_id)
        .returning(Status.id)
        .execution_options(synchronize_session=False)
    )
    if status.in_reply_to_id is not None:
        waiting = waiting.where(Status.id != status.in_reply_to_id)
    adopted = len((await session.execute(waiting)).all())
    if adopted:
        await session.execute(update(Status).where(Status.id == status.id).values(
            replies_count=Status.replies_count + adopted))


async def _create(session: AsyncSession, note: RemoteNote, author: Account,
                  parent: Status | None, *, reject_media: bool, quote: str | None) -> Status:
    created_at = _created_at(note)
    status = Status(
        id=new_id(created_at), account_id=author.id, uri=note.id, url=note.url or note.id,
        text=note.text, content=_content(note, reject_media=reject_media, quote=quote),
        spoiler_text=_spoiler_text(note), visibility=note.visibility,
        sensitive=note.sensitive or bool(_spoiler_text(note)), language=_language(note),
        in_reply_to_id=parent.id if parent is not None else None,
        in_reply_to_account_id=parent.account_id if parent is not None else None,
        in_reply_to_uri=note.in_reply_to, local=False, published=True,
        published_at=utcnow(), created_at=created_at, robots=note.robots,
        data_mining=note.data_mining,
    )
    session.add(status)
    try:
        await session.flush()
    except IntegrityError as exc:  # stored meanwhile by another worker: retry finds it
        await session.rollback()
        raise NoteUnavailable(f"{note.id} was stored concurrently", uri=note.id) from exc
    mentioned = await _mentioned(session, note)
    for account in mentioned:
        session.add(Mention(status_id=status.id, account_id=account.id))
    for tag in await tags_for(session, [h.name for h in note.hashtags]):
        session.add(StatusTag(status_id=status.id, tag_id=tag.id))
    if not reject_media:
        _add_media(session, status, author, note.attachments)
    await session.execute(update(Account).where(Account.id == author.id).values(
        statuses_count=Account.statuses_count + 1, last_status_at=created_at,
        updated_at=Account.updated_at))  # updated_at is the last actor fetch: kept
    if parent is not None:
        await session.execute(update(Status).where(Status.id == parent.id).values(
            replies_count=Status.replies_count + 1))
    await _adopt_waiting_replies(session, status)
    await session.flush()
    events.status_published(session, status.id)
    await _keep_work(session, status, note, reject_media=reject_media)
    for account in mentioned:
        await notify(session, account, "mention", author, status.id)
    await record_direct_status(session, status)
    replies_to_other = parent is not None and parent.account_id != author.id
    if status.visibility != "direct" and not replies_to_other:
        for follower in await session.scalars(select(Account).join(
                Follow, Follow.account_id == Account.id).where(
                Follow.target_account_id == author.id, Follow.notify.is_(True),
                Account.domain == "")):
            await notify(session, follower, "status", author, status.id)
    return status


async def _mentioned(session: AsyncSession, note: RemoteNote) -> list[Account]:
    """Known accounts the note mentions (tags), and local accounts it addresses."""
    hrefs = {m.href for m in note.mentions}
    addressed = set(note.to) | set(note.cc)
    if not hrefs and not addressed:
        return []
    accounts = await session.scalars(select(Account).where(
        Account.actor_type != "Application",
        or_(Account.uri.in_(hrefs),
            and_(Account.domain == "",
                 or_(Account.url.in_(hrefs | addressed), Account.uri.in_(addressed)))))
        .order_by(Account.id))
    return list(accounts)


def _media_rows(status: Status, author: Account,
                attachments: Sequence[RemoteAttachment]) -> list[MediaAttachment]:
    ids = sorted(new_id() for _ in attachments)  # the entity lists media by id: keep order
    rows = []
    for media_id, attachment in zip(ids, attachments, strict=True):
        meta: dict[str, Any] = {}
        if attachment.width and attachment.height:
            size = {"width": attachment.width, "height": attachment.height,
                    "size": f"{attachment.width}x{attachment.height}",
                    "aspect": attachment.width / attachment.height}
            meta = {"original": size, "small": dict(size)}
        focus_x, focus_y = attachment.focal_point or (0.0, 0.0)
        rows.append(MediaAttachment(
            id=media_id, account_id=author.id, status_id=status.id, type=attachment.kind,
            purpose="attachment", state=MediaState.READY.value,
            protection=ProtectionState.UNPROTECTED.value, remote_url=attachment.url,
            original_content_type=(attachment.media_type or "")[:64], meta=meta,
            blurhash=attachment.blurhash, description=attachment.description,
            focus_x=focus_x, focus_y=focus_y))
    return rows


def _add_media(session: AsyncSession, status: Status, author: Account,
               attachments: Sequence[RemoteAttachment]) -> None:
    for row in _media_rows(status, author, attachments):
        session.add(row)


# ------------------------------------------------------------------------- updating

async def _lock(session: AsyncSession, status: Status) -> None:
    """Lock a stored status's row for the rest of the transaction, as ``edit_status``
    does (an UPDATE that changes nothing: PostgreSQL and SQLite both hold it), and read
    it again as the lock found it."""
    locked: Any = await session.execute(
        update(Status).where(Status.id == status.id)
        .values(replies_count=Status.replies_count)
        .execution_options(synchronize_session=False))
    if locked.rowcount != 1:
        raise NoteRefused(f"{status.uri} was deleted", uri=status.uri, reason="deleted")
    await session.refresh(status)


# What an edit may change of an attachment kept (the same ``remote_url``).
_MEDIA_FIELDS = ("type", "description", "blurhash", "meta", "focus_x", "focus_y",
                 "original_content_type")


async def _replace_media(session: AsyncSession, status: Status, author: Account,
                         attachments: Sequence[RemoteAttachment]) -> bool:
    """The status's media as an edit states them; True if they changed. An attachment
    still there (by ``remote_url``) keeps its row, updated in place, so the older
    versions, which name their media by id, still show it; the others' rows go, and the
    new ones are added. The entity lists media by id, and new ids come after every old
    one: so once the note's order needs a new row (an attachment added, or one moved
    before a kept one), every attachment after it gets a new row too."""
    unmatched = list(await session.scalars(select(MediaAttachment).where(
        MediaAttachment.status_id == status.id).order_by(MediaAttachment.id)))
    changed = appending = False
    last_kept = 0
    for row in _media_rows(status, author, attachments):
        kept = None if appending else next(
            (m for m in unmatched if m.remote_url == row.remote_url and m.id > last_kept), None)
        if kept is None:
            appending = True
            session.add(row)
            changed = True
            continue
        unmatched.remove(kept)
        last_kept = kept.id
        # An attachment a domain block made "unknown" (federation.media_cache,
        # clear_domain_media) gets its type and blurhash back once the block is lifted:
        # the post is not edited by that.
        cleared = kept.type == "unknown" and row.type != "unknown"
        for name in _MEDIA_FIELDS:
            if getattr(kept, name) != getattr(row, name):
                setattr(kept, name, getattr(row, name))
                changed = changed or not (cleared and name in ("type", "blurhash"))
    if unmatched:
        await session.execute(delete(MediaAttachment).where(
            MediaAttachment.id.in_([m.id for m in unmatched]))
            .execution_options(synchronize_session=False))
        for gone in unmatched:
            session.expunge(gone)
        changed = True
    return changed


async def _update(session: AsyncSession, status: Status, note: RemoteNote, author: Account, *,
                  before: Version, reject_media: bool, quote: str | None) -> None:
    """Apply an edit when it changes something and is not older than the last one
    (``before``: the status as it was, read under the row lock before its poll was
    refreshed). An ``updated`` equal to the last edit's is applied, as Mastodon does: a
    work's portfolio data can change without a new version, and a replay changes nothing."""
    if note.updated is not None and status.edited_at is not None \
            and _aware(note.updated) < _aware(status.edited_at):
        return
    changed = False
    content = _content(note, reject_media=reject_media, quote=quote)
    spoiler_text = _spoiler_text(note)
    sensitive = note.sensitive or bool(spoiler_text)
    language = _language(note) or status.language
    for name, value in (("content", content), ("text", note.text),
                        ("spoiler_text", spoiler_text), ("sensitive", sensitive),
                        ("language", language)):
        if getattr(status, name) != value:
            setattr(status, name, value)
            changed = True
    # Not an edit of the post (no edited_at), but kept as now stated.
    status.robots, status.data_mining = note.robots, note.data_mining

    wanted_media = [] if reject_media else list(note.attachments)
    if await _replace_media(session, status, author, wanted_media):
        changed = True
    # The poll (refreshed by keep_remote_poll): new options, or a change between one and
    # several choices, is an edit; new counts are not.
    polled = await current_version(session, status)
    if (polled.poll_options, polled.poll_multiple) != (before.poll_options, before.poll_multiple):
        changed = True

    # The work first: its terms are hashtags of the status too (as on the sender's side).
    await session.flush()
    await _keep_work(session, status, note, reject_media=reject_media)
    wanted_names = [h.name for h in note.hashtags]
    if note.work is not None:  # its terms were made hashtags by set_work_metadata
        wanted_names += await _term_hashtags(session, status)
    wanted_tags = {t.id for t in await tags_for(session, wanted_names)}
    current_tags = set(await session.scalars(select(StatusTag.tag_id).where(
        StatusTag.status_id == status.id)))
    if wanted_tags != current_tags:
        await session.execute(delete(StatusTag).where(
            StatusTag.status_id == status.id, StatusTag.tag_id.in_(current_tags - wanted_tags)))
        for tag_id in wanted_tags - current_tags:
            session.add(StatusTag(status_id=status.id, tag_id=tag_id))
        changed = True

    wanted_accounts = {a.id: a for a in await _mentioned(session, note)}
    current_mentions = set(await session.scalars(select(Mention.account_id).where(
        Mention.status_id == status.id)))
    added = [a for i, a in wanted_accounts.items() if i not in current_mentions]
    removed = current_mentions - wanted_accounts.keys()
    if removed:
        await session.execute(delete(Mention).where(
            Mention.status_id == status.id, Mention.account_id.in_(removed)))
        changed = True
    for account in added:
        session.add(Mention(status_id=status.id, account_id=account.id))
        changed = True

    if not changed:
        return
    status.edited_at = min(_aware(note.updated), utcnow()) if note.updated else utcnow()
    await session.flush()
    for account in added:
        await notify(session, account, "mention", author, status.id)
    # The versions, "update" notifications to local boosters (as Mastodon), the stream event.
    await record_edit(session, status, before)


# ---------------------------------------------------------------------------- works

def _is_work(note: RemoteNote, *, reject_media: bool) -> bool:
    """A note is a work when it shows images here (a domain whose media are rejected
    shows none)."""
    return not reject_media and any(a.kind == "image" for a in note.attachments)


async def _keep_work(session: AsyncSession, status: Status, note: RemoteNote, *,
                     reject_media: bool) -> None:
    """The status's portfolio data as the note now says: an Easel server's ``portfolio``,
    else the suggested terms its hashtags name (what an edit took away goes too); no work
    when it shows no images."""
    if not _is_work(note, reject_media=reject_media):
        await session.execute(delete(WorkTag).where(WorkTag.status_id == status.id))
        await session.execute(delete(Work).where(Work.status_id == status.id)
                              .execution_options(synchronize_session=False))
        return
    if note.work is not None:
        await _set_work(session, status, note.work)
        return
    if await session.get(Work, status.id) is not None:
        await set_work_metadata(session, status, WorkMeta())
    await recognise_hashtags(session, status, [tag.name for tag in note.hashtags])


async def _term_hashtags(session: AsyncSession, status: Status) -> list[str]:
    """The hashtags the work's terms add to the status (``set_work_metadata`` makes them
    StatusTags), so an update compares the tags it should have, not only the note's."""
    view = (await work_metadata(session, [status.id])).get(status.id)
    if view is None:
        return []
    tags = (hashtag_for(term.name) for terms in view.tags.values() for term in terms)
    return [tag for tag in tags if any(c.isalpha() for c in tag)]


_TEXTS = ("title", "description", "year", "dimensions")


def _work_meta(work: RemoteWork) -> WorkMeta:
    year = work.year if work.year is not None and work.year <= utcnow().year + 1 else None
    return WorkMeta(title=work.title, description=work.description, year=year,
                    dimensions=work.dimensions, ai_generated=work.ai_generated,
                    tags=work.tags_by_kind())


async def _set_work(session: AsyncSession, status: Status, work: RemoteWork) -> None:
    """``set_work_metadata`` with what another server sent (already bounded as a local
    author's input is, by :func:`federation.parse.parse_work`). Should the service still
    refuse the whole, each part (a text, the year, one vocabulary's terms) is tried on
    its own and only those it accepts are kept: a bad part never costs the note. The
    service checks everything before it writes, so a refused call leaves nothing."""
    meta = _work_meta(work)
    try:
        await set_work_metadata(session, status, meta)
        return
    except ServiceError:
        pass
    accepted = WorkMeta(ai_generated=meta.ai_generated)
    trials = [replace(accepted, tags={}, **{name: getattr(meta, name)}) for name in _TEXTS
              if getattr(meta, name) not in ("", None)]
    trials += [replace(accepted, tags={kind: names}) for kind, names in meta.tags.items()]
    for trial in trials:
        try:
            await set_work_metadata(session, status, trial)
        except ServiceError:
            continue
        for name in _TEXTS:
            if getattr(trial, name) not in ("", None):
                setattr(accepted, name, getattr(trial, name))
        accepted.tags.update(trial.tags)
    try:
        await set_work_metadata(session, status, accepted)
    except ServiceError:  # a boost, or parts that pass alone but not together: bare
        return


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# ------------------------------------------------------------------------- deleting

async def _tombstone(session: AsyncSession, uri: str, account_id: int) -> None:
    await session.execute(insert_ignoring_conflict(
        session, Tombstone, {"id": new_id(), "uri": uri, "account_id": account_id,
                             "created_at": utcnow()}, ["uri"]))


async def _decrement(session: AsyncSession, model: Any, row_id: int,
                     column: InstrumentedAttribute[int], amount: int = 1) -> None:
    values: dict[Any, Any] = {column: case((column > amount, column - amount), else_=0)}
    if model is Account:
        values[Account.updated_at] = Account.updated_at
    await session.execute(update(model).where(model.id == row_id).values(values))


async def _undo_local_boosts(session: AsyncSession, status: Status) -> None:
    """Local boosts of a deleted remote status go with it: their boosters' followers on
    other servers are told (``Undo(Announce)``), as when the booster unboosts."""
    rows = (await session.execute(
        select(Status, Account).join(Account, Account.id == Status.account_id)
        .where(Status.reblog_of_id == status.id, Status.published.is_(True),
               Account.domain == ""))).all()
    for boost, booster in rows:
        published = boost.published_at or boost.created_at
        await record_activity(
            session, booster, "Undo", object_uri=status.uri, uri=f"{boost.uri}/undo",
            object_type="Announce", boost_uri=boost.uri, visibility=boost.visibility,
            original_visibility=status.visibility, original_author_id=status.account_id,
            published_at=published.isoformat())


async def _remove(session: AsyncSession, status: Status) -> None:
    """Delete a remote status with its boosts, media rows and notifications; every
    counter goes down once."""
    await _decrement(session, Account, status.account_id, Account.statuses_count)
    if status.in_reply_to_id is not None:
        await _decrement(session, Status, status.in_reply_to_id, Status.replies_count)
    if status.reblog_of_id is not None:
        await _decrement(session, Status, status.reblog_of_id, Status.reblogs_count)
    boosts = (await session.execute(select(Status.id, Status.account_id, Status.published)
                                    .where(Status.reblog_of_id == status.id))).all()
    for _boost_id, booster_id, published in boosts:
        if published:
            await _decrement(session, Account, booster_id, Account.statuses_count)
    await _undo_local_boosts(session, status)
    await events.status_deleted(session, status)  # before its mentions go with it
    gone = [status.id, *(row[0] for row in boosts)]
    await session.execute(delete(Notification).where(Notification.status_id.in_(gone)))
    await session.execute(delete(MediaAttachment).where(MediaAttachment.status_id == status.id)
                          .execution_options(synchronize_session=False))
    await session.execute(delete(Status).where(Status.reblog_of_id == status.id)
                          .execution_options(synchronize_session=False))
    await session.execute(delete(Status).where(Status.id == status.id)
                          .execution_options(synchronize_session=False))
    if status in session:
        session.expunge(status)
