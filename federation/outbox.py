"""The ``federate`` job: a recorded local activity → its document, its inboxes, its deliveries.

Why it exists: services only record *that* something happened
(:func:`server.services.outbox.record_activity`: an :class:`~server.models.Activity` with
an intent payload). After their commit, this job turns the intent into what other servers
receive:

1. **Build** — a builder chosen by ``(activity.type, payload["object_type"])`` (registered
   with :func:`builds`) reads the database and returns an :class:`Outgoing`: the document
   (made by the converters in :mod:`federation.serialize`) and its audience. The document
   is stored on the activity the first time, so every retry of every delivery sends the
   same content. A builder returns None when there is nothing to send (the status was
   deleted meanwhile, the audience is local only, …).
2. **Resolve** — audience → inbox URLs: the shared inbox where an account has one, else its
   inbox; deduplicated; local accounts and suspended domains dropped.
3. **Deliver** — one :class:`~server.models.Delivery` row and one ``deliver`` job per inbox,
   inserted in bulk, the jobs already claimed by this job (running, locked until a lease),
   committed; then the first attempt of all of them is made here, concurrently
   (:func:`federation.delivery.deliver_claimed`). Failures go back to the queue with their
   backoff and are retried one by one by the ``deliver`` job. A worker that dies here
   leaves claims that expire and are taken over, so nothing is lost; a redone ``federate``
   job claims only deliveries that are still due, so nothing delivered is sent again.

Audiences, as Mastodon addresses them:

====================  ==============================================================
Create/Update(Note)   public, unlisted, private: the author's remote followers and the
                      mentioned accounts (public/unlisted: and the replied-to author, and
                      every account that boosted, favourited or replied to the status —
                      Mastodon's StatusReachFinder: their servers hold a copy);
                      direct: the mentioned accounts only
Delete(Note)          as the Update, from the audience captured at deletion (the boosts
                      and favourites go with the status: ``reached_ids`` in the payload;
                      remote replies are still found by their ``in_reply_to_uri``)
Announce              the booster's followers and the original's author (public and
                      unlisted originals only); Undo(Announce) the same
Like, Undo(Like)      the liked status's author
Follow, Undo(Follow)  the followed account
Accept/Reject(Follow) the follower
Update(Person)        the account's followers
====================  ==============================================================

What it must never do: run in a web request, deliver to a local account or a suspended
domain, send a document other than the one stored on the activity, or record anything
for a remote actor.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from typing import cast as type_cast

from sqlalchemy import ColumnElement, Table, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from federation import collections
from federation.context import FederationContext, federation_context
from federation.delivery import (
    DELIVER_JOB,
    Claim,
    activity_body,
    deliver_claimed,
)
from federation.domains import all_blocks, domain_of
from federation.serialize import (
    Document,
    accept_activity,
    announce_activity,
    context,
    create_activity,
    delete_activity,
    featured_tag_document,
    follow_activity,
    like_activity,
    note_audience,
    reject_activity,
    undo_activity,
    update_activity,
    update_actor_activity,
)
from server.ids import new_id, utcnow
from server.models import (
    Account,
    Activity,
    Delivery,
    Follow,
    Job,
    JobState,
    Mention,
    Status,
    Tag,
)
from server.queue.kinds import job_kind
from server.queue.runner import JobContext
from server.services.statuses import reached_by
from server.urls import Urls

log = logging.getLogger(__name__)

FEDERATE_JOB = "federate"
# How long the federate job spends on first attempts before handing the rest to the queue,
# and how long its claims on their jobs hold (after which another worker takes them over).
INLINE_BUDGET = 180.0
CLAIM_LEASE = timedelta(minutes=5)
# Rows per INSERT/UPDATE statement when creating deliveries in bulk.
CHUNK = 1000
SHARED_VISIBILITIES = ("public", "unlisted")


@dataclass
class Outgoing:
    """What a builder makes of an activity: the document and who should receive it."""

    document: dict[str, Any]                 # the activity as sent (with @context)
    recipients: Sequence[Account] = ()       # accounts addressed; local ones are skipped
    followers_of: Account | None = None      # also every remote follower of this local account
    inboxes: Sequence[str] = ()              # explicit inbox urls (Flag to a server's shared
                                             # inbox, the servers a status reached)


Builder = Callable[[FederationContext, AsyncSession, Activity], Awaitable[Outgoing | None]]

BUILDERS: dict[tuple[str, str], Builder] = {}


def builds(type_: str, object_type: str) -> Callable[[Builder], Builder]:
    """Register the builder of activities ``type_`` whose payload's ``object_type`` is
    ``object_type`` (one per pair)."""
    def register(builder: Builder) -> Builder:
        existing = BUILDERS.get((type_, object_type))
        if existing is not None and existing is not builder:
            raise ValueError(f"a builder for ({type_}, {object_type}) is already registered")
        BUILDERS[(type_, object_type)] = builder
        return builder

    return register


# ------------------------------------------------------------------------- the job

@job_kind(FEDERATE_JOB, queue="federation", max_attempts=8, retry_base=timedelta(seconds=30),
          retry_cap=timedelta(hours=1), time_limit=timedelta(minutes=10))
async def federate(context: JobContext) -> None:
    session = context.session
    activity = await session.get(Activity, int(context.job.ref))
    if activity is None:
        return
    object_type = str((activity.payload or {}).get("object_type", ""))
    builder = BUILDERS.get((activity.type, object_type))
    if builder is None:
        log.warning("federate: no builder for (%s, %s); activity %s not sent",
                    activity.type, object_type, activity.id)
        return
    actor = await session.get(Account, activity.account_id)
    if actor is None or not actor.is_local:
        return
    fed = federation_context(context.settings, context.db)
    outgoing = await builder(fed, session, activity)
    if outgoing is None:
        return
    if activity.document is None:
        activity.document = outgoing.document
    document = activity.document
    inboxes = await audience_inboxes(session, fed, outgoing)
    lease = utcnow() + CLAIM_LEASE
    claims = await create_deliveries(session, activity.id, inboxes, lease)
    await session.commit()  # the deliveries exist before anything is sent
    await deliver_claimed(fed, claims, activity_body(document), actor, lease=lease,
                          budget=INLINE_BUDGET)


# ------------------------------------------------------------------------- audience

def _chunks(items: Sequence[Any], size: int = CHUNK) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def audience_inboxes(session: AsyncSession, fed: FederationContext,
                           outgoing: Outgoing) -> list[str]:
    """The inbox URLs of ``outgoing``'s audience: shared inboxes preferred, each once, in
    order; none on this server or on a suspended domain, and none for a suspended account
    (mentioned, replied to or following: suspended accounts are sent nothing, as Mastodon)."""
    candidates: list[str] = []
    for account in outgoing.recipients:
        if not account.is_local and account.suspended_at is None:
            candidates.append(account.shared_inbox_url or account.inbox_url)
    if outgoing.followers_of is not None:
        rows = await session.execute(
            select(Account.shared_inbox_url, Account.inbox_url)
            .join(Follow, Follow.account_id == Account.id)
            .where(Follow.target_account_id == outgoing.followers_of.id, Account.domain != "",
                   Account.suspended_at.is_(None))
            .order_by(Follow.id))
        candidates.extend(shared or inbox for shared, inbox in rows.all())
    candidates.extend(outgoing.inboxes)
    own = domain_of(fed.urls.base)
    blocks = await all_blocks(session)
    verdicts: dict[str, bool] = {}
    inboxes = []
    for url in dict.fromkeys(candidates):
        if not url or not url.startswith(("https://", "http://")):
            continue
        domain = domain_of(url)
        allowed = verdicts.get(domain)
        if allowed is None:
            allowed = verdicts[domain] = bool(domain) and domain != own and not blocks.suspends(
                domain)
        if allowed:
            inboxes.append(url)
    return inboxes


# ----------------------------------------------------------------------- deliveries

def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _unique_ids(count: int) -> list[int]:
    """``count`` distinct new ids (a burst makes many per millisecond)."""
    ids: dict[int, None] = {}
    while len(ids) < count:
        ids[new_id()] = None
    return list(ids)


async def create_deliveries(session: AsyncSession, activity_id: int, inboxes: Sequence[str],
                            lease: datetime) -> list[Claim]:
    """Insert a delivery and its ``deliver`` job for each inbox (existing ones are kept),
    and claim, until ``lease``, every one of the activity's delivery jobs that is due —
    the new ones are inserted claimed. Not committed."""
    now = utcnow()
    insert = _insert(session)
    deliveries = type_cast(Table, Delivery.__table__)
    jobs = type_cast(Table, Job.__table__)
    rows = [{"id": row_id, "activity_id": activity_id, "inbox_url": url,
             "domain": domain_of(url), "created_at": now}
            for row_id, url in zip(_unique_ids(len(inboxes)), inboxes, strict=True)]
    for chunk in _chunks(rows):
        await session.execute(insert(deliveries).on_conflict_do_nothing(
            index_elements=["activity_id", "inbox_url"]), list(chunk))
    found = {row.id: row for row in (await session.execute(
        select(Delivery.id, Delivery.inbox_url, Delivery.domain)
        .where(Delivery.activity_id == activity_id))).all()}
    job_rows = [{"id": job_id, "kind": DELIVER_JOB, "queue": "federation",
                 "ref": str(delivery_id), "state": JobState.RUNNING.value, "attempts": 1,
                 "claims": 1, "progress": 0.0, "next_try_at": now, "locked_until": lease,
                 "created_at": now, "updated_at": now}
                for job_id, delivery_id in zip(_unique_ids(len(found)), found, strict=True)]
    for chunk in _chunks(job_rows):
        await session.execute(insert(jobs).on_conflict_do_nothing(
            index_elements=["kind", "ref"]), list(chunk))
    # The activity's job refs, as literal lists through the (kind, ref) index: an IN
    # (subquery) here let PostgreSQL, its statistics still those of the empty tables just
    # filled, plan a nested loop that took 20 s for 10,000 deliveries.
    ref_chunks = _chunks([str(delivery_id) for delivery_id in found])
    for refs in ref_chunks:
        # Jobs of this activity left from an earlier run: claim those that are due again.
        await session.execute(
            update(jobs).where(
                jobs.c.kind == DELIVER_JOB, jobs.c.ref.in_(refs),
                or_(and_(jobs.c.state == JobState.QUEUED.value, jobs.c.next_try_at <= now),
                    and_(jobs.c.state == JobState.RUNNING.value, jobs.c.locked_until < now)))
            .values(state=JobState.RUNNING.value, attempts=jobs.c.attempts + 1,
                    claims=jobs.c.claims + 1, locked_until=lease, updated_at=now))
    claimed: list[Any] = []
    for refs in ref_chunks:
        claimed.extend((await session.execute(
            select(Job.id, Job.ref, Job.attempts).where(
                Job.kind == DELIVER_JOB, Job.ref.in_(refs), Job.state == JobState.RUNNING.value,
                Job.locked_until == lease))).all())
    claims = []
    for job_id, ref, attempts in claimed:
        delivery = found.get(int(ref))
        if delivery is not None:
            claims.append(Claim(job_id=job_id, delivery_id=delivery.id,
                                inbox_url=delivery.inbox_url, domain=delivery.domain,
                                attempts=attempts))
    return claims


# ------------------------------------------------------------------------- builders

def _payload_int(activity: Activity, name: str) -> int | None:
    value = (activity.payload or {}).get(name)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _payload_str(activity: Activity, name: str) -> str:
    value = (activity.payload or {}).get(name)
    return value if isinstance(value, str) else ""


async def _actor(session: AsyncSession, activity: Activity) -> Account:
    actor = await session.get(Account, activity.account_id)
    assert actor is not None  # the job checked it
    return actor


async def _account(session: AsyncSession, account_id: int | None) -> Account | None:
    return await session.get(Account, account_id) if account_id is not None else None


def _with_id(document: Document, activity: Activity) -> Document:
    """The document under the activity's own id (the one recorded, and unique)."""
    document["id"] = activity.uri
    return document


async def _note_audience_accounts(session: AsyncSession, visibility: str,
                                  mentioned_ids: Sequence[int],
                                  parent_author_id: int | None) -> list[Account]:
    ids = list(mentioned_ids)
    if parent_author_id is not None and visibility in SHARED_VISIBILITIES:
        ids.append(parent_author_id)
    if not ids:
        return []
    return list(await session.scalars(select(Account).where(Account.id.in_(set(ids)))))


async def _inboxes_where(session: AsyncSession, *where: ColumnElement[bool]) -> list[str]:
    """The inboxes (shared preferred) of the remote, unsuspended accounts matching
    ``where``, each once."""
    inbox = func.coalesce(func.nullif(Account.shared_inbox_url, ""), Account.inbox_url)
    return list(await session.scalars(
        select(inbox).where(Account.domain != "", Account.suspended_at.is_(None), *where)
        .distinct().order_by(inbox)))


async def _reached_inboxes(session: AsyncSession, status: Status) -> list[str]:
    """Mastodon's StatusReachFinder for a public or unlisted status: the inboxes of the
    remote accounts that boosted, favourited or replied to it — their servers hold a copy
    (a boost, a reply in its thread) even when they follow nobody here. Nothing for other
    visibilities: those interactions may come from accounts never addressed."""
    if status.visibility not in SHARED_VISIBILITIES:
        return []
    return await _inboxes_where(session, Account.id.in_(reached_by(status)))


def reached_account_ids(payload: dict[str, Any] | None) -> list[int]:
    """The ``reached_ids`` a Delete's payload captured: the accounts that had boosted,
    favourited or replied to the status (``server.services.statuses._record_deletion``);
    anything but a row id (a 64-bit integer) is skipped, each once."""
    raw = (payload or {}).get("reached_ids")
    if not isinstance(raw, list):
        return []
    return list(dict.fromkeys(i for i in raw if isinstance(i, int) and not isinstance(i, bool)
                              and 0 < i < 2 ** 63))


async def _deleted_reach_inboxes(session: AsyncSession, activity: Activity) -> list[str]:
    """The reach of a deleted public or unlisted status: the accounts captured at its
    deletion, and the authors of remote replies to it (still stored, their
    ``in_reply_to_uri`` naming it)."""
    ids = reached_account_ids(activity.payload)
    inboxes: list[str] = []
    for chunk in _chunks(ids):
        inboxes.extend(await _inboxes_where(session, Account.id.in_(chunk)))
    if activity.object_uri:
        inboxes.extend(await _inboxes_where(session, Account.id.in_(
            select(Status.account_id).where(Status.in_reply_to_uri == activity.object_uri))))
    return list(dict.fromkeys(inboxes))


async def _note_outgoing(fed: FederationContext, session: AsyncSession, activity: Activity,
                         wrap: Callable[[Document], Document]) -> Outgoing | None:
    status_id = _payload_int(activity, "status_id")
    status = await session.get(Status, status_id) if status_id is not None else None
    if (status is None or not status.published or status.reblog_of_id is not None
            or status.account_id != activity.account_id):
        return None
    author = await _actor(session, activity)
    note = await collections.status_note(session, author, status, fed.urls, fed.storage)
    mentioned = list(await session.scalars(
        select(Mention.account_id).where(Mention.status_id == status.id)))
    recipients = await _note_audience_accounts(session, status.visibility, mentioned,
                                               status.in_reply_to_account_id)
    return Outgoing(document=_with_id(wrap(note), activity), recipients=recipients,
                    followers_of=None if status.visibility == "direct" else author,
                    inboxes=await _reached_inboxes(session, status))


@builds("Create", "Note")
async def create_note(fed: FederationContext, session: AsyncSession,
                      activity: Activity) -> Outgoing | None:
    return await _note_outgoing(fed, session, activity, create_activity)


@builds("Update", "Note")
async def update_note(fed: FederationContext, session: AsyncSession,
                      activity: Activity) -> Outgoing | None:
    return await _note_outgoing(fed, session, activity,
                                lambda note: update_activity(note, at=activity.created_at))


@builds("Delete", "Note")
async def delete_note(fed: FederationContext, session: AsyncSession,
                      activity: Activity) -> Outgoing | None:
    """From the audience captured when the status was deleted (its rows are gone): its
    followers, mentioned accounts and replied-to author, and — public or unlisted — the
    accounts it reached (:func:`_deleted_reach_inboxes`), whose servers hold its copy."""
    actor = await _actor(session, activity)
    visibility = _payload_str(activity, "visibility") or "public"
    mentioned_ids = [int(i) for i in (activity.payload or {}).get("mentioned_ids", [])]
    mentioned = await _note_audience_accounts(session, visibility, mentioned_ids,
                                              _payload_int(activity, "parent_author_id"))
    followers = actor.followers_url or fed.urls.followers(actor.username)
    to, cc = note_audience(visibility, followers,
                           [a.uri for a in mentioned if a.id in set(mentioned_ids)])
    document = delete_activity(actor.uri, activity.object_uri, to=to, cc=cc)
    reached = (await _deleted_reach_inboxes(session, activity)
               if visibility in SHARED_VISIBILITIES else [])
    return Outgoing(document=_with_id(document, activity), recipients=mentioned,
                    followers_of=None if visibility == "direct" else actor, inboxes=reached)


def _announce(boost_uri: str, visibility: str, published: datetime, booster: Account,
              original_uri: str, original_author_uri: str, fed: FederationContext) -> Document:
    # A transient row, only to be read by the converter.
    boost = Status(uri=boost_uri, visibility=visibility, published_at=published)
    return announce_activity(boost, booster, original_uri, original_author_uri, fed.urls)


@builds("Announce", "Note")
async def announce(fed: FederationContext, session: AsyncSession,
                   activity: Activity) -> Outgoing | None:
    boost_id = _payload_int(activity, "status_id")
    boost = await session.get(Status, boost_id) if boost_id is not None else None
    if boost is None or boost.reblog_of_id is None or not boost.published:
        return None
    original = await session.get(Status, boost.reblog_of_id)
    if original is None or original.visibility not in SHARED_VISIBILITIES:
        return None
    original_author = await session.get(Account, original.account_id)
    if original_author is None:
        return None
    booster = await _actor(session, activity)
    document = announce_activity(boost, booster, original.uri, original_author.uri, fed.urls)
    return Outgoing(document=_with_id(document, activity), recipients=[original_author],
                    followers_of=booster)


@builds("Undo", "Announce")
async def undo_announce(fed: FederationContext, session: AsyncSession,
                        activity: Activity) -> Outgoing | None:
    if _payload_str(activity, "original_visibility") not in SHARED_VISIBILITIES:
        return None  # its Announce was never sent
    original_author = await _account(session, _payload_int(activity, "original_author_id"))
    booster = await _actor(session, activity)
    published = datetime.fromisoformat(_payload_str(activity, "published_at")
                                       or activity.created_at.isoformat())
    inner = _announce(_payload_str(activity, "boost_uri"),
                      _payload_str(activity, "visibility") or "public", published, booster,
                      activity.object_uri,
                      original_author.uri if original_author else "", fed)
    return Outgoing(document=undo_activity(inner, id=activity.uri),
                    recipients=[original_author] if original_author else [],
                    followers_of=booster)


@builds("Like", "Note")
async def like(fed: FederationContext, session: AsyncSession,
               activity: Activity) -> Outgoing | None:
    status_id = _payload_int(activity, "status_id")
    status = await session.get(Status, status_id) if status_id is not None else None
    author = await _account(session, status.account_id) if status is not None else None
    if status is None or author is None or author.is_local:
        return None
    actor = await _actor(session, activity)
    return Outgoing(document=like_activity(activity.uri, actor.uri, status.uri),
                    recipients=[author])


@builds("Undo", "Like")
async def undo_like(fed: FederationContext, session: AsyncSession,
                    activity: Activity) -> Outgoing | None:
    author = await _account(session, _payload_int(activity, "author_id"))
    like_uri = _payload_str(activity, "like_uri")
    if author is None or author.is_local or not like_uri:
        return None
    actor = await _actor(session, activity)
    inner = like_activity(like_uri, actor.uri, activity.object_uri)
    return Outgoing(document=undo_activity(inner, id=activity.uri), recipients=[author])


@builds("Follow", "Person")
async def follow(fed: FederationContext, session: AsyncSession,
                 activity: Activity) -> Outgoing | None:
    target = await _account(session, _payload_int(activity, "target_id"))
    if target is None or target.is_local:
        return None
    actor = await _actor(session, activity)
    return Outgoing(document=follow_activity(activity.uri, actor.uri, target.uri),
                    recipients=[target])


def block_activity(id: str, actor_uri: str, object_uri: str) -> Document:
    return {"@context": context(), "id": id, "type": "Block", "actor": actor_uri,
            "object": object_uri}


@builds("Block", "Person")
async def block(fed: FederationContext, session: AsyncSession,
                activity: Activity) -> Outgoing | None:
    """A local account blocks a remote one: the Block goes to the blocked account only
    (Mastodon's servers then hide the blocker from it)."""
    target = await _account(session, _payload_int(activity, "target_id"))
    if target is None or target.is_local:
        return None
    actor = await _actor(session, activity)
    return Outgoing(document=block_activity(activity.uri, actor.uri, target.uri),
                    recipients=[target])


@builds("Undo", "Block")
async def undo_block(fed: FederationContext, session: AsyncSession,
                     activity: Activity) -> Outgoing | None:
    target = await _account(session, _payload_int(activity, "target_id"))
    block_uri = _payload_str(activity, "block_uri")
    if target is None or target.is_local or not block_uri:
        return None
    actor = await _actor(session, activity)
    inner = block_activity(block_uri, actor.uri, target.uri)
    return Outgoing(document=undo_activity(inner, id=activity.uri), recipients=[target])


@builds("Undo", "Follow")
async def undo_follow(fed: FederationContext, session: AsyncSession,
                      activity: Activity) -> Outgoing | None:
    target = await _account(session, _payload_int(activity, "target_id"))
    follow_uri = _payload_str(activity, "follow_uri")
    if target is None or target.is_local or not follow_uri:
        return None
    actor = await _actor(session, activity)
    inner = follow_activity(follow_uri, actor.uri, target.uri)
    return Outgoing(document=undo_activity(inner, id=activity.uri), recipients=[target])


async def _answer(session: AsyncSession, activity: Activity,
                  make: Callable[[str, str, Document | str], Document]) -> Outgoing | None:
    requester = await _account(session, _payload_int(activity, "requester_id"))
    follow_uri = _payload_str(activity, "follow_uri")
    if requester is None or requester.is_local or not follow_uri:
        return None
    actor = await _actor(session, activity)
    follow_reference: Document = {"id": follow_uri, "type": "Follow", "actor": requester.uri,
                                  "object": actor.uri}
    return Outgoing(document=make(activity.uri, actor.uri, follow_reference),
                    recipients=[requester])


@builds("Accept", "Follow")
async def accept_follow(fed: FederationContext, session: AsyncSession,
                        activity: Activity) -> Outgoing | None:
    return await _answer(session, activity, accept_activity)


@builds("Reject", "Follow")
async def reject_follow(fed: FederationContext, session: AsyncSession,
                        activity: Activity) -> Outgoing | None:
    return await _answer(session, activity, reject_activity)


@builds("Update", "Person")
async def update_person(fed: FederationContext, session: AsyncSession,
                        activity: Activity) -> Outgoing | None:
    actor = await _actor(session, activity)
    moved = await _account(session, actor.moved_to_account_id)
    document = update_actor_activity(actor, fed.urls, at=activity.created_at,
                                     storage=fed.storage, moved_to=moved.uri if moved else None)
    return Outgoing(document=_with_id(document, activity), followers_of=actor)


def featured_activity(id: str, type_: str, actor: Account, object_: str | Document,
                      urls: Urls) -> Document:
    """``Add``/``Remove`` of a pinned status (its id) or a featured ``Hashtag`` to the
    actor's ``featured`` collection: the target Mastodon sends and expects for both."""
    return {"@context": context(), "id": id, "type": type_, "actor": actor.uri,
            "object": object_, "target": urls.featured(actor.username)}


@builds("Add", "Note")
@builds("Remove", "Note")
async def pin_change(fed: FederationContext, session: AsyncSession,
                     activity: Activity) -> Outgoing | None:
    """A pin or unpin of one of the actor's statuses (``server.services.portfolio``), to
    its followers, who show the profile's pinned posts."""
    actor = await _actor(session, activity)
    return Outgoing(document=featured_activity(activity.uri, activity.type, actor,
                                               activity.object_uri, fed.urls),
                    followers_of=actor)


@builds("Add", "Hashtag")
@builds("Remove", "Hashtag")
async def featured_tag_change(fed: FederationContext, session: AsyncSession,
                              activity: Activity) -> Outgoing | None:
    """A hashtag featured or no longer featured (``server.services.featured_tags``)."""
    actor = await _actor(session, activity)
    name = _payload_str(activity, "tag")
    if not name:
        return None
    tag = Tag(name=name, display_name=_payload_str(activity, "display_name") or name)
    hashtag = featured_tag_document(tag, actor, fed.urls)
    return Outgoing(document=featured_activity(activity.uri, activity.type, actor, hashtag,
                                               fed.urls),
                    followers_of=actor)


@builds("Delete", "Person")
async def delete_person(fed: FederationContext, session: AsyncSession,
                        activity: Activity) -> Outgoing | None:
    """A local account's deletion (``server.services.moderation``), to every inbox Easel
    knows, as Mastodon sends it: servers that never followed the account may still hold
    its posts, boosts of them or its replies."""
    actor = await _actor(session, activity)
    rows = await session.execute(select(Account.shared_inbox_url, Account.inbox_url)
                                 .where(Account.domain != "").distinct())
    inboxes = list(dict.fromkeys(shared or inbox for shared, inbox in rows.all()))
    document = delete_activity(actor.uri, actor.uri, is_actor=True)
    return Outgoing(document=_with_id(document, activity), followers_of=actor, inboxes=inboxes)
