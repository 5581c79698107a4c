"""One group-committed batch of the inbox intake holding every case it must tell apart.

The intake reads what a batch needs (domain blocks, actors suspended here, forwarded
activities already stored) in one statement; these deliveries all land in one batch, so
each answer must still be the one it would get alone.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from federation.inbox.intake import (
    REDELIVERED_PREFIX,
    REPLAY,
    REPLAY_WINDOW,
    STORED,
    SUSPENDED,
    InboxIntake,
    forwarded_key,
)
from server.db import Database
from server.ids import new_id, utcnow
from server.models import Account, DomainBlock, InboxItem, Job


def _row(activity_id: str, actor: str, type_: str = "Create", *,
         signer: str | None = None) -> dict[str, Any]:
    forwarded = signer is not None and signer != actor
    return {
        "activity_uri": forwarded_key(activity_id, str(signer)) if forwarded else activity_id,
        "activity_type": type_, "actor_uri": actor, "signer_uri": signer or actor,
        "forwarded": forwarded, "recipient_id": None,
        "body": {"id": activity_id, "type": type_, "actor": actor, "object": activity_id + "/o"},
        "outcome": "pending", "note": "", "received_at": utcnow(), "processed_at": None,
    }


async def _seed(db: Database) -> None:
    now = utcnow()
    async with db.session() as session:
        session.add_all([
            DomainBlock(domain="blocked.example", severity="suspend"),
            DomainBlock(domain="parent.example", severity="suspend"),
            DomainBlock(domain="kept.parent.example", severity="noop"),  # most specific wins
            Account(id=new_id(), username="mallory", username_key="mallory",
                    domain="open.example", uri="https://open.example/users/mallory",
                    url="https://open.example/users/mallory",
                    inbox_url="https://open.example/users/mallory/inbox",
                    suspended_at=now, suspension_origin="local", created_at=now, updated_at=now),
        ])
        await session.commit()


async def test_every_case_in_one_batch_gets_its_own_answer(db: Database) -> None:
    await _seed(db)
    intake = InboxIntake(db)
    dave = "https://open.example/users/dave"
    erin = "https://kept.parent.example/users/erin"
    mallory = "https://open.example/users/mallory"
    forwarder = "https://relay.example/users/fwd"
    # An activity stored earlier, signed by its own actor: a forwarded copy is a replay.
    assert await intake.store(_row(dave + "/earlier", dave), domains=(dave,)) == STORED

    cases: list[tuple[dict[str, Any], tuple[str, ...], str | None, str]] = [
        (_row(dave + "/1", dave), (dave,), None, STORED),
        (_row(dave + "/1", dave), (dave,), None, REPLAY),  # twice in the batch
        (_row("https://blocked.example/u/x/1", "https://blocked.example/u/x"),
         ("https://blocked.example/u/x",), None, SUSPENDED),
        (_row("https://sub.parent.example/u/y/1", "https://sub.parent.example/u/y"),
         ("https://sub.parent.example/u/y",), None, SUSPENDED),
        (_row(erin + "/1", erin), (erin,), None, STORED),
        # Signed by a suspended domain, for an actor that is not: still suspended.
        (_row(dave + "/2", dave, signer="https://blocked.example/u/x"),
         (dave, "https://blocked.example/u/x"), dave + "/2", SUSPENDED),
        (_row(mallory + "/1", mallory), (mallory,), None, SUSPENDED),
        (_row(mallory + "/2", mallory, "Delete"), (mallory,), None, STORED),
        (_row(dave + "/earlier", dave, signer=forwarder), (dave, forwarder), dave + "/earlier",
         REPLAY),
        # Forwarded, and its own actor's copy is in the same batch: a replay either way.
        (_row(dave + "/1", dave, signer=forwarder), (dave, forwarder), dave + "/1", REPLAY),
        (_row(dave + "/3", dave, signer=forwarder), (dave, forwarder), dave + "/3", STORED),
    ]
    results = await asyncio.gather(*(
        intake.store(row, domains=domains, direct_id=direct_id)
        for row, domains, direct_id, _ in cases))
    assert results == [expected for *_, expected in cases]

    async with db.session() as session:
        items = set(await session.scalars(select(InboxItem.activity_uri)))
        item_ids = {str(item_id) for item_id in await session.scalars(select(InboxItem.id))}
        jobs = list(await session.scalars(select(Job).where(Job.kind == "process_inbox")))
    assert items == {dave + "/earlier", dave + "/1", erin + "/1", mallory + "/2",
                     forwarded_key(dave + "/3", forwarder)}
    # One job per stored item, with the columns' defaults filled in.
    assert sorted(job.ref for job in jobs) == sorted(item_ids)
    assert {(job.queue, job.state, job.attempts, job.claims) for job in jobs} == {
        ("federation", "queued", 0, 0)}
    assert all(job.created_at is not None and job.next_try_at is not None for job in jobs)


async def test_a_stored_id_is_a_replay_only_within_the_window_and_never_for_a_follow(
        db: Database) -> None:
    intake = InboxIntake(db)
    dave = "https://open.example/users/dave"
    long_ago = utcnow() - REPLAY_WINDOW - timedelta(minutes=1)
    seeded = {  # id → (type, outcome, received)
        dave + "/create-recent": ("Create", "processed", utcnow()),
        dave + "/create-old": ("Create", "processed", long_ago),
        dave + "/like-old-pending": ("Like", "pending", long_ago),
        dave + "/follow-recent": ("Follow", "processed", utcnow()),
        dave + "/follow-pending": ("Follow", "pending", utcnow()),
    }
    for activity_id, (type_, _, _) in seeded.items():
        assert await intake.store(_row(activity_id, dave, type_), domains=(dave,)) == STORED
    async with db.session() as session:
        for activity_id, (_, outcome, received) in seeded.items():
            await session.execute(update(InboxItem).where(InboxItem.activity_uri == activity_id)
                                  .values(outcome=outcome, received_at=received))
        await session.execute(update(Job).values(state="done"))
        await session.commit()
        before = {item.activity_uri: item.id for item in await session.scalars(select(InboxItem))}

    cases = [
        (dave + "/create-recent", "Create", REPLAY),    # could be a replayed request
        (dave + "/create-old", "Create", STORED),       # no longer: re-taken
        (dave + "/like-old-pending", "Like", REPLAY),   # its job will process it
        (dave + "/follow-recent", "Follow", STORED),    # re-taken
        (dave + "/follow-pending", "Follow", STORED),   # a new item, after the pending one
        (dave + "/follow-pending", "Follow", STORED),   # and again
    ]
    results = await asyncio.gather(*(
        intake.store(_row(activity_id, dave, type_), domains=(dave,))
        for activity_id, type_, _ in cases))
    assert results == [expected for *_, expected in cases]

    async with db.session() as session:
        items = {item.activity_uri: item for item in await session.scalars(select(InboxItem))}
        jobs = {job.ref: job.state for job in await session.scalars(
            select(Job).where(Job.kind == "process_inbox"))}
    redelivered = sorted(uri for uri in items if uri.startswith(REDELIVERED_PREFIX))
    assert len(redelivered) == 2 and len(items) == len(before) + 2
    assert {items[uri].body["id"] for uri in redelivered} == {dave + "/follow-pending"}
    for activity_id in (dave + "/create-old", dave + "/follow-recent"):  # the same row, anew
        item = items[activity_id]
        assert (item.id, item.outcome, item.processed_at) == (before[activity_id], "pending", None)
        assert item.received_at > long_ago + timedelta(minutes=2)
        assert jobs[str(item.id)] == "queued"
    for activity_id in (dave + "/create-recent", dave + "/like-old-pending"):
        assert jobs[str(items[activity_id].id)] == "done"
    assert all(jobs[str(items[uri].id)] == "queued" for uri in redelivered)
