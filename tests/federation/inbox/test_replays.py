"""Replays and redeliveries: when an activity id seen before is dropped, and when it is not.

Given remote actors on servers that reuse activity ids for the same pair — Pixelfed
(``{actor}#follow/{target}``, its Undo ``…/undo``, its Accept
``{target}#accepts/follows/{follower}``) and Misskey (``{host}/follows/{follower}/{followee}``)
— when they follow, unfollow and follow again, or accept a second request of ours, I expect
every step applied, as Mastodon (which does not dedupe by id) would. And given a ``Create``
delivered twice, I expect it applied once while its signature could still be replayed
(the intake's replay window), and stored and processed again only after it. Each delivery
is signed anew (a later signing time), as real ones are.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from starlette.applications import Starlette

from federation.inbox.intake import REPLAY_WINDOW
from federation.signatures import CavageSigner, utc_now
from server.db import Database
from server.ids import utcnow
from server.models import InboxItem, InboxOutcome, Job, Status, User
from tests.federation.inbox.conftest import (
    ALICE,
    Api,
    FakeActor,
    Fediverse,
    alice_asks_to_follow,
    deliver,
    item_for,
    process,
    stored,
)
from tests.federation.inbox.test_create import mastodon_note

_SECONDS = itertools.count(1)


def anew(actor: FakeActor) -> CavageSigner:
    """A new delivery, signed a second after the last one: a new signature, as every real
    delivery has (the same request sent again — one signature — is a captured replay, and
    dropped: ``tests/attacks/test_signature_attacks.py``)."""
    later = timedelta(seconds=next(_SECONDS))
    return actor.signer(clock=lambda: utc_now() + later)


async def send(app: Starlette, actor: FakeActor, activity: dict[str, Any]) -> int:
    """Deliver ``activity`` from ``actor``, signed anew; the answer's status code."""
    return (await deliver(app, actor, activity, signer=anew(actor))).status_code


def pixelfed_ids(actor: FakeActor) -> tuple[str, str]:
    """(Follow id, Undo id) as Pixelfed names them: the same for every follow of the pair."""
    return f"{actor.uri}#follow/{ALICE.rsplit('/', 1)[1]}", f"{actor.uri}#follow/alice/undo"


def misskey_ids(actor: FakeActor) -> tuple[str, str]:
    follow_id = f"https://{actor.host}/follows/9a1b2c3d/9a1b2c3e"
    return follow_id, follow_id + "/undo"


def follow_and_undo(actor: FakeActor, ids: tuple[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    follow_id, undo_id = ids
    follow = {"@context": "https://www.w3.org/ns/activitystreams", "id": follow_id,
              "type": "Follow", "actor": actor.uri, "object": ALICE}
    undo = {"@context": "https://www.w3.org/ns/activitystreams", "id": undo_id,
            "type": "Undo", "actor": actor.uri, "object": follow}
    return follow, undo


async def followers(api: Api, user: User) -> int:
    return int((await api.account(user.account.id))["followers_count"])


@pytest.fixture
async def pixelfed_frank(fediverse: Fediverse) -> FakeActor:
    return fediverse.actor("https://pixelfed.example/users/frank", "frank")


@pytest.mark.parametrize("ids", [pixelfed_ids, misskey_ids], ids=["pixelfed", "misskey"])
async def test_follow_undo_follow_with_reused_ids_follows_again(
        inbox_app: Starlette, app_db: Database, alice_app: Api, alice: User,
        pixelfed_frank: FakeActor, fediverse: Fediverse, ids: Any) -> None:
    follow, undo = follow_and_undo(pixelfed_frank, ids(pixelfed_frank))
    for activity, expected in [(follow, 1), (undo, 0), (follow, 1), (undo, 0), (follow, 1)]:
        assert await send(inbox_app, pixelfed_frank, activity) == 202
        await process(inbox_app)
        item = await item_for(app_db, activity["id"])
        assert item is not None and item.outcome == InboxOutcome.PROCESSED, item and item.note
        assert await followers(alice_app, alice) == expected
    # Each delivery was applied and answered: three Accepts of the same Follow.
    accepts = [a for a in fediverse.posted() if a["type"] == "Accept"]
    assert len(accepts) == 3
    # The stored items were re-taken, not added: one row per id.
    assert await stored(app_db) == (2, 2)


async def test_follow_undo_follow_before_the_queue_runs_ends_following(
        inbox_app: Starlette, app_db: Database, alice_app: Api, alice: User,
        pixelfed_frank: FakeActor) -> None:
    follow, undo = follow_and_undo(pixelfed_frank, pixelfed_ids(pixelfed_frank))
    for activity in (follow, undo, follow):
        assert await send(inbox_app, pixelfed_frank, activity) == 202
    # The second Follow came while the first was pending: an item of its own, after the Undo.
    assert await stored(app_db) == (3, 3)
    await process(inbox_app)
    assert await followers(alice_app, alice) == 1
    async with app_db.session() as session:
        outcomes = list(await session.scalars(select(InboxItem.outcome)))
    assert outcomes == [InboxOutcome.PROCESSED] * 3


async def test_an_accept_with_a_reused_id_accepts_our_new_request(
        inbox_app: Starlette, alice_app: Api, alice: User, pixelfed_frank: FakeActor,
        fediverse: Fediverse) -> None:
    accept_id = f"{pixelfed_frank.uri}#accepts/follows/{alice.account.id}"

    def accept(follow: dict[str, Any]) -> dict[str, Any]:
        return {"@context": "https://www.w3.org/ns/activitystreams", "id": accept_id,
                "type": "Accept", "actor": pixelfed_frank.uri,
                "object": {"id": follow["id"], "type": "Follow", "actor": ALICE,
                           "object": pixelfed_frank.uri}}

    frank_id, first = await alice_asks_to_follow(inbox_app, alice_app, pixelfed_frank, fediverse)
    assert await send(inbox_app, pixelfed_frank, accept(first)) == 202
    await process(inbox_app)
    assert (await alice_app.relationship(frank_id))["following"] is True

    await alice_app.post(f"/api/v1/accounts/{frank_id}/unfollow")
    await process(inbox_app)
    fediverse.requests.clear()
    _, second = await alice_asks_to_follow(inbox_app, alice_app, pixelfed_frank, fediverse)
    assert second["id"] != first["id"]
    assert await send(inbox_app, pixelfed_frank, accept(second)) == 202
    await process(inbox_app)
    relationship = await alice_app.relationship(frank_id)
    assert (relationship["following"], relationship["requested"]) == (True, False)


async def test_a_create_is_applied_once_within_the_replay_window_and_again_after(
        inbox_app: Starlette, app_db: Database, alice_app: Api, alice: User,
        remote_carol: FakeActor) -> None:
    note = mastodon_note(remote_carol)
    create = remote_carol.activity("Create", note, to=note["to"], cc=note["cc"])
    assert await send(inbox_app, remote_carol, create) == 202
    assert await send(inbox_app, remote_carol, create) == 202  # still pending
    await process(inbox_app)
    assert await send(inbox_app, remote_carol, create) == 202  # done, recent
    assert await process(inbox_app) == 0  # nothing was queued again
    assert await stored(app_db) == (1, 1)
    item = await item_for(app_db, create["id"])
    assert item is not None and item.outcome == InboxOutcome.PROCESSED

    # Past the window no captured request could still be replayed: a delivery is new.
    async with app_db.session() as session:
        await session.execute(update(InboxItem).where(InboxItem.id == item.id).values(
            received_at=utcnow() - REPLAY_WINDOW - timedelta(minutes=1)))
        await session.commit()
    assert await send(inbox_app, remote_carol, create) == 202
    retaken = await item_for(app_db, create["id"])
    assert retaken is not None
    assert (retaken.id, retaken.outcome) == (item.id, InboxOutcome.PENDING)
    assert await process(inbox_app) == 1
    retaken = await item_for(app_db, create["id"])
    assert retaken is not None and retaken.outcome == InboxOutcome.PROCESSED
    assert retaken.note == "already known"
    async with app_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Status).where(
            Status.uri == note["id"])) == 1
        job = await session.scalar(select(Job).where(Job.ref == str(item.id)))
    assert job is not None and job.state == "done"
    assert await stored(app_db) == (1, 1)
    assert await alice_app.notifications() == [("mention", "carol@remote.example")]
