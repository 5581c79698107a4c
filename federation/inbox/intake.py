"""Storing accepted deliveries: many requests, one short write transaction (group commit).

Why it exists: a busy inbox receives hundreds of deliveries a second, and writing each in
its own transaction makes the database — every statement a thread hop with aiosqlite, a
round trip with PostgreSQL, and on SQLite one writer at a time — the inbox's pace. So
each verified delivery hands its row to the process's :class:`InboxIntake` and waits;
one writer at a time takes every row waiting (up to :data:`MAX_BATCH`) and, in a single
transaction:

1. reads, in one statement, the domain blocks covering the batch's actors and signers,
   which of its actors our moderators suspended, and which of its keys (and forwarded
   activities' own ids) are stored already, and how (below); drops rows from suspended
   domains (``"suspended"``: answered 202, stored nothing), and likewise rows of actors
   our moderators suspended (but for a ``Delete``, ``Undo`` or ``Reject``:
   :data:`ALLOWED_WHILE_SUSPENDED`);
2. decides, per row, by the replay rule below: a new key is inserted (``INSERT … ON
   CONFLICT (activity_uri) DO NOTHING RETURNING``: a key another process stored meanwhile
   is a replay); a stored item may be *re-taken* (the row becomes this delivery again:
   body, times, ``pending``; its job is queued again); a redelivery while the stored item
   is still pending is inserted as a new item under :func:`redelivered_key`; anything
   else is a replay (``"replay"``), as is a forwarded copy whose activity is already
   stored as signed by its own actor;
3. inserts one ``process_inbox`` job per new item (and requeues those of re-taken ones)
   and commits; the queue is told after the commit, as
   :func:`server.queue.jobs.enqueue` would.

**The replay rule.** An activity id is not unique for ever: Pixelfed and Misskey give the
same id to every Follow of the same pair (``{actor}#follow/{target}``,
``{host}/follows/{follower}/{followee}``), to its Undo (``…/undo``) and to the Accept
(``{target}#accepts/follows/{follower}``), so follow, unfollow, follow again reuses them
all. What the dedupe protects against is the same delivery processed twice: a sender's
retry (our 202 lost) or a captured request replayed. A signed request can only be
replayed while its signature is good — at most :data:`REPLAY_WINDOW` after we first
stored it (``federation.signatures``: twelve hours at most after its date, an hour of
clock skew either side; plus an hour's margin) — so:

* ``Follow``, ``Undo``, ``Accept``, ``Reject`` and ``Block`` (:data:`REDELIVERABLE`) are
  replays only when they are the very request stored under that key — the same signature
  (``signature_digest``: a captured request replayed as it was) — and otherwise never:
  their handlers are idempotent (a repeated Follow is accepted again, an
  Undo of nothing is ignored), as Mastodon, which does not dedupe by id at all, relies on.
  A stored item that is done is re-taken; one still pending gets a new item, so the order
  Follow → Undo → Follow is kept even before the queue runs;
* any other kind (``Create``, ``Announce``, ``Like``…, whose handlers may not be
  idempotent) is a replay while its stored item is pending or was received within
  :data:`REPLAY_WINDOW`; a later delivery re-takes the item.

A re-taken item keeps its row (and its job, run again): the table grows only by what new
deliveries add. The job of an item is only ever requeued once its item is done (the
outcome is committed with the job's completion), so a re-take never races its own job;
crash recovery of a queued job finds its item pending and processes it once.

While one batch is written the next one gathers, so there is no timer and no added
latency when the inbox is quiet (a batch of one). A failed write fails every request in
its batch (they answer 503, and their senders retry); nothing is half stored.

**Dedupe keys.** An item signed by the activity's own actor is stored under the activity's
id. A *forwarded* one (signed by someone else) is stored under :func:`forwarded_key` —
the id and the signer, hashed — never under the id itself: anyone may forward anything,
and a forwarder that got there first (Mastodon's Delete ids are predictable:
``{status}#delete``) would otherwise turn the real, signed-by-its-actor delivery into a
"replay" that is dropped. A redelivery stored beside a pending item of the same id is keyed
by :func:`redelivered_key` (the id and the new item's id, hashed). Processing reads the
activity's id from the stored body, never from ``activity_uri``; handlers are idempotent,
so the same activity processed once forwarded and once direct changes nothing more.

What it must never do: keep a row it could not commit, answer before the commit, let a
forwarded copy take the key of the activity's own id, drop a redelivery of a Follow, Undo,
Accept, Reject or Block, process a Create, Announce or Like twice within the replay window,
or outlive its event loop (the writer task ends whenever nothing waits).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Table,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import CompoundSelect

from federation.domains import _candidates, domain_of
from federation.signatures import CLOCK_SKEW_MARGIN, EXPIRATION_WINDOW_LIMIT
from server.db import Database
from server.ids import new_id, utcnow
from server.models import (
    Account,
    DomainAllow,
    DomainBlock,
    DomainBlockSeverity,
    InboxItem,
    InboxOutcome,
    Job,
)
from server.queue.jobs import PENDING_JOBS_KEY, enqueue
from server.queue.kinds import kind_named
from server.services.domain_blocks import allowlist_mode

MAX_BATCH = 256
PROCESS_INBOX = "process_inbox"
STORED, REPLAY, SUSPENDED = "stored", "replay", "suspended"
# What a remote account our moderators suspended may still send (Mastodon's
# ``activity_allowed_while_suspended?``, less Update: a local suspension is ours to lift):
# removing its things, withdrawing its actions. Everything else is dropped as a suspended
# domain's is (and rejected if it was stored before the suspension).
ALLOWED_WHILE_SUSPENDED = ("Delete", "Undo", "Reject")
FORWARDED_PREFIX = "forwarded:"
REDELIVERED_PREFIX = "redelivered:"
# How long a signed delivery can be replayed (see "The replay rule"): a signature is good
# until twelve hours after its date at most, an hour of skew forgiven either side; plus
# an hour for the clocks of the processes that store and compare ``received_at``.
REPLAY_MARGIN = timedelta(hours=1)
REPLAY_WINDOW = EXPIRATION_WINDOW_LIMIT + 2 * CLOCK_SKEW_MARGIN + REPLAY_MARGIN
# Kinds whose ids are reused for the same pair (Pixelfed, Misskey) and whose handlers are
# idempotent: never replays.
REDELIVERABLE = frozenset({"Follow", "Undo", "Accept", "Reject", "Block"})
# A stored key's state, as the batch reads it; and what the batch does with a row.
_PENDING, _RECENT, _DONE = "pending", "recent", "done"
_INSERT, _RETAKE, _REDELIVER = "insert", "retake", "redeliver"


def item_key(activity_id: str, *, forwarded_by: str | None = None) -> str:
    """The ``activity_uri`` an inbox item is stored (and deduplicated) under: the activity's
    id when its own actor signed it, else :func:`forwarded_key`."""
    return forwarded_key(activity_id, forwarded_by) if forwarded_by else activity_id


def forwarded_key(activity_id: str, signer_uri: str) -> str:
    """The dedupe key of ``activity_id`` forwarded by ``signer_uri``: never an activity id
    (74 characters, so always within the column's 2048)."""
    digest = hashlib.sha256(f"{activity_id} {signer_uri}".encode()).hexdigest()
    return FORWARDED_PREFIX + digest


def redelivered_key(activity_uri: str, item_id: int) -> str:
    """The ``activity_uri`` of a redelivery stored while the item under ``activity_uri`` is
    still pending: never an activity id, and unique (the new item's id is in it)."""
    digest = hashlib.sha256(f"{activity_uri} {item_id}".encode()).hexdigest()
    return REDELIVERED_PREFIX + digest


def _action(state: str | None, redeliverable: bool) -> str | None:
    """What to do with a row whose key is stored in ``state`` (None: not stored); None
    for a replay. See "The replay rule"."""
    if state is None:
        return _INSERT
    if state == _DONE or (redeliverable and state == _RECENT):
        return _RETAKE
    return _REDELIVER if redeliverable else None


@dataclass
class _Waiting:
    row: dict[str, Any]
    domains: tuple[str, ...]
    done: asyncio.Future[str]
    direct_id: str | None = None   # a forwarded row: the activity's own id


class InboxIntake:
    """The process's group-committing writer of inbox items for one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def store(self, row: dict[str, Any], *, domains: tuple[str, ...],
                    direct_id: str | None = None) -> str:
        """Store the InboxItem ``row`` (and its job) unless it is a replay (the module's
        "replay rule") or one of ``domains`` (urls or host[:port]) is suspended: STORED,
        REPLAY or SUSPENDED. STORED includes a stored item re-taken by this delivery.

        ``direct_id``, for a forwarded row (stored under :func:`forwarded_key`), is the
        activity's own id: when a copy signed by its actor is stored already (or earlier
        in the batch), the forwarded one is a replay."""
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(row, tuple(d for d in domains if d), done, direct_id))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return await done

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                try:
                    results = await self._write(batch)
                except IntegrityError:  # an id drawn twice in one millisecond: new ids
                    results = await self._write(batch)
            except Exception as exc:  # every waiter learns it; the senders retry
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(exc)
                continue
            for waiting, result in zip(batch, results, strict=True):
                if not waiting.done.done():
                    waiting.done.set_result(result)

    async def _write(self, batch: list[_Waiting]) -> list[str]:
        async with self.db.session() as session:
            cutoff = utcnow() - REPLAY_WINDOW
            suspended, barred, known, signed = await _batch_facts(session, batch, cutoff)
            results: list[str] = []
            actions: dict[int, str] = {}
            taken: set[str] = set()  # keys stored or re-taken earlier in this batch
            replayed: set[tuple[str, str]] = set()  # (key, signature) of those
            for index, waiting in enumerate(batch):
                uri = waiting.row["activity_uri"]
                if (suspended and any(domain_of(d) in suspended for d in waiting.domains)) or (
                        waiting.row.get("actor_uri") in barred
                        and _type_of(waiting.row) not in ALLOWED_WHILE_SUSPENDED):
                    results.append(SUSPENDED)
                    continue
                direct = waiting.direct_id
                digest = waiting.row.get("signature_digest")
                if direct is not None and (direct in known or direct in taken):
                    action = None  # forwarded, and its actor's own copy is stored
                elif digest and (signed.get(uri) == digest or (uri, digest) in replayed):
                    action = None  # the very request stored before, replayed as it was
                else:
                    action = _action(_PENDING if uri in taken else known.get(uri),
                                     _type_of(waiting.row) in REDELIVERABLE)
                results.append(REPLAY if action is None else STORED)
                if action is not None:
                    actions[index] = action
                    taken.add(uri)
                    if digest:
                        replayed.add((uri, digest))
            kind = kind_named(PROCESS_INBOX)
            inserts: list[tuple[int, bool]] = []  # (batch index, under a redelivered key)
            for index, action in actions.items():
                row = batch[index].row
                if action == _RETAKE:
                    redeliverable = _type_of(row) in REDELIVERABLE
                    item_id = await _retake(session, row,
                                            received_before=None if redeliverable else cutoff)
                    if item_id is not None:
                        await enqueue(session, kind, str(item_id), again=True)
                        continue
                    if not redeliverable:  # pending again meanwhile: a replay after all
                        results[index] = REPLAY
                        continue
                    action = _REDELIVER
                inserts.append((index, action == _REDELIVER))
            ids = unique_ids(2 * len(inserts))
            rows = [dict(batch[index].row, id=item_id, activity_uri=redelivered_key(
                        batch[index].row["activity_uri"], item_id) if redelivered
                        else batch[index].row["activity_uri"])
                    for (index, redelivered), item_id in zip(inserts, ids, strict=False)]
            new_uris = await _insert_items(session, rows) if rows else {}
            now = utcnow()
            jobs = [{"id": job_id, "kind": kind.name, "queue": kind.queue,
                     "ref": str(item_id), "next_try_at": now}
                    for item_id, job_id in zip(new_uris.values(), ids[len(rows):], strict=False)]
            if jobs:
                await session.execute(_INSERT_JOBS, jobs)
                session.info.setdefault(PENDING_JOBS_KEY, []).extend(
                    (job["id"], kind.queue) for job in jobs)
            await session.commit()
        for (index, _), row in zip(inserts, rows, strict=True):
            if row["activity_uri"] not in new_uris:  # stored by another process meanwhile
                results[index] = REPLAY
        return results


async def _retake(session: AsyncSession, row: dict[str, Any], *,
                  received_before: datetime | None) -> int | None:
    """Make the stored item under ``row``'s key this delivery again (its body, sender,
    recipient and times; pending) unless it is pending, or (given ``received_before``)
    was received since then; its id, or None when it was not re-taken."""
    values = {name: value for name, value in row.items() if name not in ("id", "activity_uri")}
    statement = (update(_ITEMS)
                 .where(_ITEMS.c.activity_uri == row["activity_uri"],
                        _ITEMS.c.outcome != InboxOutcome.PENDING.value)
                 .values(values).returning(_ITEMS.c.id))
    if received_before is not None:
        statement = statement.where(_ITEMS.c.received_at < received_before)
    item_id = await session.scalar(statement)
    return None if item_id is None else int(item_id)


def unique_ids(count: int) -> list[int]:
    """``count`` distinct new ids (Snowflake ids drawn in one millisecond share all but
    16 random bits, so a batch of hundreds would otherwise collide)."""
    ids: dict[int, None] = {}
    while len(ids) < count:
        ids[new_id()] = None
    return list(ids)


def _type_of(row: dict[str, Any]) -> object:
    body = row.get("body")
    return body.get("type") if isinstance(body, dict) else None


# What a batch must know before it writes, read in one statement (one round trip, which
# on SQLite is several thread hops): the domain blocks covering its actors and signers,
# which of its actors our moderators suspended, and which of its keys and forwarded
# activities' own ids are stored already, in which state. Each row is (what, name, value).
_BLOCK, _ALLOW, _BARRED, _KNOWN, _SIGNED = "block", "allow", "barred", "known", "signed"
_BATCH_FACTS: CompoundSelect[Any] = union_all(
    select(literal_column(f"'{_BLOCK}'"), DomainBlock.domain, DomainBlock.severity)
    .where(DomainBlock.domain.in_(bindparam("domains", expanding=True))),
    # The allows covering them (what allowlist mode lets in).
    select(literal_column(f"'{_ALLOW}'"), DomainAllow.domain, literal_column("''"))
    .where(DomainAllow.domain.in_(bindparam("domains", expanding=True))),
    # Remote accounts our moderators suspended (on the accounts' unique uri).
    select(literal_column(f"'{_BARRED}'"), Account.uri, literal_column("''"))
    .where(Account.uri.in_(bindparam("actors", expanding=True)), Account.domain != "",
           Account.suspended_at.is_not(None), Account.suspension_origin == "local"),
    # The rows' keys (and forwarded rows' activity ids) stored already: pending, received
    # within the replay window, or done before it (on the unique activity_uri).
    select(literal_column(f"'{_KNOWN}'"), InboxItem.activity_uri, case(
        (InboxItem.outcome == InboxOutcome.PENDING.value, literal_column(f"'{_PENDING}'")),
        (InboxItem.received_at >= bindparam("cutoff"), literal_column(f"'{_RECENT}'")),
        else_=literal_column(f"'{_DONE}'")))
    .where(InboxItem.activity_uri.in_(bindparam("uris", expanding=True))),
    # Their deliveries' signatures (what tells a captured request replayed from a new
    # delivery of a reused id).
    select(literal_column(f"'{_SIGNED}'"), InboxItem.activity_uri,
           func.coalesce(InboxItem.signature_digest, ""))
    .where(InboxItem.activity_uri.in_(bindparam("uris", expanding=True))),
)


async def _batch_facts(session: AsyncSession, batch: list[_Waiting], cutoff: datetime,
                       ) -> tuple[set[str], set[str], dict[str, str], dict[str, str]]:
    """(the batch's suspended domains, its actors suspended here, {key or forwarded row's
    activity id stored already: its state}, {such a key: its delivery's signature digest,
    "" when unknown}). A domain is suspended when the most specific
    block covering it suspends, or, in allowlist mode, when no allow covers it, as in
    :func:`federation.domains.domain_policy`. An item not pending is ``_RECENT`` when
    received at ``cutoff`` or later, else ``_DONE``."""
    domains = {domain_of(d) for d in {d for waiting in batch for d in waiting.domains}} - {""}
    names = {domain: _candidates(domain) for domain in domains}
    actors = {str(w.row["actor_uri"]) for w in batch if w.row.get("actor_uri")}
    uris = {str(w.row["activity_uri"]) for w in batch} | {
        w.direct_id for w in batch if w.direct_id is not None}
    blocks: dict[str, str] = {}
    barred: set[str] = set()
    known: dict[str, str] = {}
    signed: dict[str, str] = {}
    rows = await session.execute(_BATCH_FACTS, {
        "domains": sorted({name for candidates in names.values() for name in candidates}),
        "actors": sorted(actors), "uris": sorted(uris), "cutoff": cutoff})
    allowed: set[str] = set()
    for what, name, value in rows:
        if what == _BLOCK:
            blocks[name] = value
        elif what == _ALLOW:
            allowed.add(name)
        elif what == _BARRED:
            barred.add(name)
        elif what == _SIGNED:
            signed[name] = value
        else:
            known[name] = value
    suspended = set()
    allowlist = allowlist_mode(session)
    for domain, candidates in names.items():
        if allowlist and not allowed.intersection(candidates):
            suspended.add(domain)  # allowlist mode: a domain no allow covers is suspended
            continue
        decisive = next((blocks[name] for name in candidates if name in blocks), None)
        if decisive == DomainBlockSeverity.SUSPEND:
            suspended.add(domain)
    return suspended, barred, known, signed


# Core statements on the tables, built once: the ORM's bulk-insert path would inspect every
# row's dict for the mapper (and fetch primary keys back) on each batch, for nothing here.
_JOBS = cast(Table, Job.__table__)
_ITEMS = cast(Table, InboxItem.__table__)
_INSERT_JOBS = insert(_JOBS)
_INSERT_ITEMS = {
    dialect.__name__.rpartition(".")[2]: dialect.insert(_ITEMS)
    .on_conflict_do_nothing(index_elements=["activity_uri"])
    .returning(_ITEMS.c.activity_uri, _ITEMS.c.id)
    for dialect in (postgresql, sqlite)
}


async def _insert_items(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert the rows whose key is new; {key: item id} of those."""
    statement = _INSERT_ITEMS[session.get_bind().dialect.name]
    # executemany with RETURNING (SQLAlchemy's "insertmanyvalues"): one cached statement
    # whatever the batch size, sent as few multi-row INSERTs.
    result = await session.execute(statement, rows)
    return {uri: int(item_id) for uri, item_id in result}


def inbox_intake(extras: dict[str, object], db: Database) -> InboxIntake:
    """The intake kept in a federation context's ``extras``."""
    intake = extras.get("inbox.intake")
    if not isinstance(intake, InboxIntake):
        intake = InboxIntake(db)
        extras["inbox.intake"] = intake
    return intake
