"""Storing accepted deliveries: many requests, one short write transaction (group commit).

Why it exists: a busy inbox receives hundreds of deliveries a second, and writing each in
its own transaction makes the database — every statement a thread hop with aiosqlite, a
round trip with PostgreSQL, and on SQLite one writer at a time — the inbox's pace. So
each verified delivery hands its row to the process's :class:`InboxIntake` and waits;
one writer at a time takes every row waiting (up to :data:`MAX_BATCH`) and, in a single
transaction:

1. reads, in one statement, the domain blocks covering the batch's actors and signers,
   which of its actors our moderators suspended, and which of its forwarded activities
   are stored already; drops rows from suspended domains (``"suspended"``: answered 202,
   stored nothing), and likewise rows of actors our moderators suspended (but for a
   ``Delete``, ``Undo`` or ``Reject``: :data:`ALLOWED_WHILE_SUSPENDED`);
2. inserts the rest with ``INSERT … ON CONFLICT (activity_uri) DO NOTHING RETURNING`` —
   an activity id already stored, or twice in the batch, is a replay (``"replay"``);
   a forwarded copy whose activity is already stored as signed by its own actor is a
   replay too;
3. inserts one ``process_inbox`` job per new item and commits; the queue is told after
   the commit, as :func:`server.queue.jobs.enqueue` would.

While one batch is written the next one gathers, so there is no timer and no added
latency when the inbox is quiet (a batch of one). A failed write fails every request in
its batch (they answer 503, and their senders retry); nothing is half stored.

**Dedupe keys.** An item signed by the activity's own actor is stored under the activity's
id. A *forwarded* one (signed by someone else) is stored under :func:`forwarded_key` —
the id and the signer, hashed — never under the id itself: anyone may forward anything,
and a forwarder that got there first (Mastodon's Delete ids are predictable:
``{status}#delete``) would otherwise turn the real, signed-by-its-actor delivery into a
"replay" that is dropped. Processing reads the activity's id from the stored body,
never from ``activity_uri``; handlers are idempotent, so the same activity processed
once forwarded and once direct changes nothing more.

What it must never do: keep a row it could not commit, answer before the commit, let a
forwarded copy take the key of the activity's own id, or outlive its event loop (the
writer task ends whenever nothing waits).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, literal_column, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import CompoundSelect

from federation.domains import _candidates, domain_of
from server.db import Database
from server.ids import new_id, utcnow
from server.models import Account, DomainAllow, DomainBlock, DomainBlockSeverity, InboxItem, Job
from server.queue.jobs import PENDING_JOBS_KEY
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


def item_key(activity_id: str, *, forwarded_by: str | None = None) -> str:
    """The ``activity_uri`` an inbox item is stored (and deduplicated) under: the activity's
    id when its own actor signed it, else :func:`forwarded_key`."""
    return forwarded_key(activity_id, forwarded_by) if forwarded_by else activity_id


def forwarded_key(activity_id: str, signer_uri: str) -> str:
    """The dedupe key of ``activity_id`` forwarded by ``signer_uri``: never an activity id
    (74 characters, so always within the column's 2048)."""
    digest = hashlib.sha256(f"{activity_id} {signer_uri}".encode()).hexdigest()
    return FORWARDED_PREFIX + digest


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
        """Store the InboxItem ``row`` (and its job) unless its activity is known or one of
        ``domains`` (urls or host[:port]) is suspended: STORED, REPLAY or SUSPENDED.

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
            suspended, barred, seen = await _batch_facts(session, batch)
            results: list[str] = []
            rows: list[dict[str, Any]] = []
            for waiting in batch:
                uri = waiting.row["activity_uri"]
                if (suspended and any(domain_of(d) in suspended for d in waiting.domains)) or (
                        waiting.row.get("actor_uri") in barred
                        and _type_of(waiting.row) not in ALLOWED_WHILE_SUSPENDED):
                    results.append(SUSPENDED)
                elif uri in seen or (waiting.direct_id is not None and waiting.direct_id in seen):
                    results.append(REPLAY)
                else:
                    seen.add(uri)
                    rows.append(waiting.row)
                    results.append(STORED)
            ids = unique_ids(2 * len(rows))
            for row, item_id in zip(rows, ids, strict=False):
                row["id"] = item_id
            new_uris = await _insert_items(session, rows) if rows else {}
            kind = kind_named(PROCESS_INBOX)
            now = utcnow()
            jobs = [{"id": job_id, "kind": kind.name, "queue": kind.queue,
                     "ref": str(item_id), "next_try_at": now}
                    for item_id, job_id in zip(new_uris.values(), ids[len(rows):], strict=False)]
            if jobs:
                await session.execute(_INSERT_JOBS, jobs)
                session.info.setdefault(PENDING_JOBS_KEY, []).extend(
                    (job["id"], kind.queue) for job in jobs)
            await session.commit()
        return [REPLAY if result == STORED and waiting.row["activity_uri"] not in new_uris
                else result for waiting, result in zip(batch, results, strict=True)]


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
# which of its actors our moderators suspended, and which of its forwarded activities'
# own ids are stored already. Each row is (what, name, severity).
_BLOCK, _ALLOW, _BARRED, _STORED = "block", "allow", "barred", "stored"
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
    # The forwarded rows' activity ids stored already, signed by their own actor.
    select(literal_column(f"'{_STORED}'"), InboxItem.activity_uri, literal_column("''"))
    .where(InboxItem.activity_uri.in_(bindparam("direct_ids", expanding=True))),
)


async def _batch_facts(session: AsyncSession,
                       batch: list[_Waiting]) -> tuple[set[str], set[str], set[str]]:
    """(the batch's suspended domains, its actors suspended here, the activity ids of its
    forwarded rows stored already). A domain is suspended when the most specific block
    covering it suspends, or, in allowlist mode, when no allow covers it, as in
    :func:`federation.domains.domain_policy`."""
    domains = {domain_of(d) for d in {d for waiting in batch for d in waiting.domains}} - {""}
    names = {domain: _candidates(domain) for domain in domains}
    actors = {str(w.row["actor_uri"]) for w in batch if w.row.get("actor_uri")}
    direct_ids = {w.direct_id for w in batch if w.direct_id is not None}
    blocks: dict[str, str] = {}
    barred: set[str] = set()
    stored: set[str] = set()
    rows = await session.execute(_BATCH_FACTS, {
        "domains": sorted({name for candidates in names.values() for name in candidates}),
        "actors": sorted(actors), "direct_ids": sorted(direct_ids)})
    allowed: set[str] = set()
    for what, name, severity in rows:
        if what == _BLOCK:
            blocks[name] = severity
        elif what == _ALLOW:
            allowed.add(name)
        elif what == _BARRED:
            barred.add(name)
        else:
            stored.add(name)
    suspended = set()
    allowlist = allowlist_mode(session)
    for domain, candidates in names.items():
        if allowlist and not allowed.intersection(candidates):
            suspended.add(domain)  # allowlist mode: a domain no allow covers is suspended
            continue
        decisive = next((blocks[name] for name in candidates if name in blocks), None)
        if decisive == DomainBlockSeverity.SUSPEND:
            suspended.add(domain)
    return suspended, barred, stored


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
    """Insert the rows whose activity id is new; {activity uri: item id} of those."""
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
