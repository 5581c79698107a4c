"""Inbound activities, from a signed delivery to what alice sees in the client API.

Given alice on Easel and remote carol (and dave) on a fake fediverse, when they deliver
Follow, Accept, Reject, Undo, Like, Announce, Delete, Block, Update and Move, and the
federation queue runs, I expect each to show up through the client API (followers,
notifications, relationships, counts, profiles) exactly once, and activities that may
not be applied to be recorded as ignored or rejected, changing nothing.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from starlette.applications import Starlette

from federation.signatures import utc_now
from server.db import Database
from server.models import Account, DomainBlock, InboxOutcome, Job, Status, User
from tests.federation.inbox.conftest import (
    ALICE,
    BASE,
    PUBLIC,
    Api,
    FakeActor,
    Fediverse,
    alice_asks_to_follow,
    deliver,
    http,
    item_for,
    process,
    receive,
    remote_account,
)

# ---------------------------------------------------------------------------- follows

async def test_a_follow_of_an_open_account_is_accepted_and_notified(
        inbox_app: Starlette, alice_app: Api, alice: User, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    follow = remote_carol.activity("Follow", ALICE)
    assert await receive(inbox_app, remote_carol, follow) == InboxOutcome.PROCESSED
    assert (await alice_app.account(alice.account.id))["followers_count"] == 1
    assert await alice_app.notifications() == [("follow", "carol@remote.example")]
    accepts = [a for a in fediverse.posted() if a["type"] == "Accept"]
    assert [a["object"]["id"] if isinstance(a["object"], dict) else a["object"]
            for a in accepts] == [follow["id"]]
    # The same Follow delivered again (signed anew: Follows with a known id are not
    # dropped as replays, only the very request replayed) changes nothing but a second
    # Accept.
    later = remote_carol.signer(clock=lambda: utc_now() + timedelta(seconds=1))
    assert (await deliver(inbox_app, remote_carol, follow, signer=later)).status_code == 202
    await process(inbox_app)
    assert (await alice_app.account(alice.account.id))["followers_count"] == 1
    assert len(await alice_app.notifications()) == 1
    assert len([a for a in fediverse.posted() if a["type"] == "Accept"]) == 2


async def test_a_follow_of_a_locked_account_is_a_request(
        inbox_app: Starlette, app_db: Database, alice_app: Api, alice: User,
        remote_carol: FakeActor) -> None:
    async with app_db.session() as session:
        account = await session.get(Account, alice.account.id)
        assert account is not None
        account.locked = True
        await session.commit()
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Follow", ALICE)) == InboxOutcome.PROCESSED
    assert (await alice_app.account(alice.account.id))["followers_count"] == 0
    assert await alice_app.notifications() == [("follow_request", "carol@remote.example")]
    requests = await alice_app.get("/api/v1/follow_requests")
    assert [r["acct"] for r in requests] == ["carol@remote.example"]


async def test_undo_follow_removes_the_follower(
        inbox_app: Starlette, alice_app: Api, alice: User, remote_carol: FakeActor) -> None:
    follow = remote_carol.activity("Follow", ALICE)
    await receive(inbox_app, remote_carol, follow)
    undo = remote_carol.activity("Undo", follow)
    assert await receive(inbox_app, remote_carol, undo) == InboxOutcome.PROCESSED
    assert (await alice_app.account(alice.account.id))["followers_count"] == 0
    # Undoing it again (a new Undo of the same Follow) finds nothing: ignored.
    again = remote_carol.activity("Undo", follow["id"])
    assert await receive(inbox_app, remote_carol, again) == InboxOutcome.IGNORED


async def test_nobody_can_undo_someone_elses_follow(
        inbox_app: Starlette, alice_app: Api, alice: User, remote_carol: FakeActor,
        remote_dave: FakeActor) -> None:
    follow = remote_carol.activity("Follow", ALICE)
    await receive(inbox_app, remote_carol, follow)
    assert await receive(inbox_app, remote_dave,
                         remote_dave.activity("Undo", follow)) == InboxOutcome.REJECTED
    assert await receive(inbox_app, remote_dave,
                         remote_dave.activity("Undo", follow["id"])) == InboxOutcome.IGNORED
    assert (await alice_app.account(alice.account.id))["followers_count"] == 1


async def test_an_accept_by_id_turns_our_request_into_a_follow(
        inbox_app: Starlette, alice_app: Api, alice: User, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    carol_id, sent = await alice_asks_to_follow(inbox_app, alice_app, remote_carol, fediverse)
    accept = remote_carol.activity("Accept", sent["id"])
    assert await receive(inbox_app, remote_carol, accept) == InboxOutcome.PROCESSED
    relationship = await alice_app.relationship(carol_id)
    assert (relationship["following"], relationship["requested"]) == (True, False)
    assert (await alice_app.account(alice.account.id))["following_count"] == 1


async def test_an_accept_embedding_a_follow_id_we_do_not_know_matches_by_actors(
        inbox_app: Starlette, alice_app: Api, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    carol_id, _ = await alice_asks_to_follow(inbox_app, alice_app, remote_carol, fediverse)
    embedded = {"id": "https://remote.example/unknown-follow", "type": "Follow",
                "actor": ALICE, "object": remote_carol.uri}
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Accept", embedded)) == InboxOutcome.PROCESSED
    assert (await alice_app.relationship(carol_id))["following"] is True


async def test_only_the_followed_account_can_accept(
        inbox_app: Starlette, alice_app: Api, remote_carol: FakeActor, remote_dave: FakeActor,
        fediverse: Fediverse) -> None:
    carol_id, sent = await alice_asks_to_follow(inbox_app, alice_app, remote_carol, fediverse)
    for obj in (sent["id"], sent):
        assert await receive(inbox_app, remote_dave,
                             remote_dave.activity("Accept", obj)) == InboxOutcome.IGNORED
    relationship = await alice_app.relationship(carol_id)
    assert (relationship["following"], relationship["requested"]) == (False, True)


async def test_a_reject_ends_the_request(
        inbox_app: Starlette, alice_app: Api, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    carol_id, sent = await alice_asks_to_follow(inbox_app, alice_app, remote_carol, fediverse)
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Reject", sent)) == InboxOutcome.PROCESSED
    relationship = await alice_app.relationship(carol_id)
    assert (relationship["following"], relationship["requested"]) == (False, False)


async def test_an_accept_or_reject_of_a_follow_without_an_id_matches_by_actors(
        inbox_app: Starlette, alice_app: Api, remote_carol: FakeActor,
        remote_dave: FakeActor, fediverse: Fediverse) -> None:
    carol_id, _ = await alice_asks_to_follow(inbox_app, alice_app, remote_carol, fediverse)
    dave_id, _ = await alice_asks_to_follow(inbox_app, alice_app, remote_dave, fediverse)
    # Some servers embed our Follow by value, without its id.
    follow_of_carol = {"type": "Follow", "actor": ALICE, "object": remote_carol.uri}
    follow_of_dave = {"type": "Follow", "actor": ALICE, "object": remote_dave.uri}
    # dave cannot answer alice's request to carol, nor can carol answer the one to dave.
    assert await receive(inbox_app, remote_dave, remote_dave.activity(
        "Accept", follow_of_carol)) == InboxOutcome.IGNORED
    assert await receive(inbox_app, remote_carol, remote_carol.activity(
        "Reject", follow_of_dave)) == InboxOutcome.IGNORED

    assert await receive(inbox_app, remote_carol, remote_carol.activity(
        "Accept", follow_of_carol)) == InboxOutcome.PROCESSED
    assert await receive(inbox_app, remote_dave, remote_dave.activity(
        "Reject", follow_of_dave)) == InboxOutcome.PROCESSED

    carol = await alice_app.relationship(carol_id)
    dave = await alice_app.relationship(dave_id)
    assert (carol["following"], carol["requested"]) == (True, False)
    assert (dave["following"], dave["requested"]) == (False, False)


async def test_an_undo_of_a_follow_without_an_id_matches_by_actor_and_object(
        inbox_app: Starlette, alice_app: Api, alice: User, remote_carol: FakeActor,
        remote_dave: FakeActor) -> None:
    await receive(inbox_app, remote_carol, remote_carol.activity("Follow", ALICE))
    await receive(inbox_app, remote_dave, remote_dave.activity("Follow", ALICE))
    assert (await alice_app.account(alice.account.id))["followers_count"] == 2
    # dave sends an id-less Follow naming carol as its actor: not his to undo…
    carols = {"type": "Follow", "actor": remote_carol.uri, "object": ALICE}
    assert await receive(inbox_app, remote_dave,
                         remote_dave.activity("Undo", carols)) == InboxOutcome.REJECTED
    # … nor is one naming no actor at all.
    anonymous = {"type": "Follow", "object": ALICE}
    assert await receive(inbox_app, remote_dave,
                         remote_dave.activity("Undo", anonymous)) == InboxOutcome.REJECTED
    assert (await alice_app.account(alice.account.id))["followers_count"] == 2

    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Undo", carols)) == InboxOutcome.PROCESSED
    assert (await alice_app.account(alice.account.id))["followers_count"] == 1
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Undo", carols)) == InboxOutcome.IGNORED


async def test_an_undo_of_a_like_or_boost_without_an_id_matches_by_actor_and_object(
        inbox_app: Starlette, alice_app: Api, artwork: Status, remote_carol: FakeActor,
        remote_dave: FakeActor) -> None:
    for actor in (remote_carol, remote_dave):
        await receive(inbox_app, actor, actor.activity("Like", artwork.uri))
        await receive(inbox_app, actor, actor.activity("Announce", artwork.uri, to=[PUBLIC]))
    status = await alice_app.status(artwork.id)
    assert (status["favourites_count"], status["reblogs_count"]) == (2, 2)

    like = {"type": "Like", "actor": remote_carol.uri, "object": artwork.uri}
    announce = {"type": "Announce", "actor": remote_carol.uri, "object": artwork.uri}
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Undo", like)) == InboxOutcome.PROCESSED
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Undo", announce)) == InboxOutcome.PROCESSED

    status = await alice_app.status(artwork.id)
    assert (status["favourites_count"], status["reblogs_count"]) == (1, 1)  # dave's stay
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Undo", like)) == InboxOutcome.IGNORED


async def test_a_block_severs_follows_both_ways(
        inbox_app: Starlette, alice_app: Api, alice: User, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    carol_id, sent = await alice_asks_to_follow(inbox_app, alice_app, remote_carol, fediverse)
    await receive(inbox_app, remote_carol, remote_carol.activity("Accept", sent["id"]))
    await receive(inbox_app, remote_carol, remote_carol.activity("Follow", ALICE))
    me = await alice_app.account(alice.account.id)
    assert (me["followers_count"], me["following_count"]) == (1, 1)
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Block", ALICE)) == InboxOutcome.PROCESSED
    me = await alice_app.account(alice.account.id)
    assert (me["followers_count"], me["following_count"]) == (0, 0)
    relationship = await alice_app.relationship(carol_id)
    assert (relationship["following"], relationship["followed_by"]) == (False, False)


# --------------------------------------------------------------------- likes and boosts

async def test_a_like_and_its_undo(inbox_app: Starlette, alice_app: Api, artwork: Status,
                                   remote_carol: FakeActor) -> None:
    like = remote_carol.activity("Like", artwork.uri)
    assert await receive(inbox_app, remote_carol, like) == InboxOutcome.PROCESSED
    assert (await alice_app.status(artwork.id))["favourites_count"] == 1
    assert await alice_app.notifications() == [("favourite", "carol@remote.example")]
    undo = remote_carol.activity("Undo", like["id"])  # by id, as minimal servers send it
    assert await receive(inbox_app, remote_carol, undo) == InboxOutcome.PROCESSED
    assert (await alice_app.status(artwork.id))["favourites_count"] == 0


async def test_a_like_of_an_unknown_status_is_ignored(
        inbox_app: Starlette, alice_app: Api, remote_carol: FakeActor) -> None:
    like = remote_carol.activity("Like", BASE + "/users/alice/statuses/404")
    assert await receive(inbox_app, remote_carol, like) == InboxOutcome.IGNORED


async def test_a_boost_and_its_undo(inbox_app: Starlette, app_db: Database, alice_app: Api,
                                    artwork: Status, remote_carol: FakeActor) -> None:
    announce = remote_carol.activity("Announce", artwork.uri, to=[PUBLIC],
                                     cc=[remote_carol.uri + "/followers", ALICE])
    assert await receive(inbox_app, remote_carol, announce) == InboxOutcome.PROCESSED
    assert (await alice_app.status(artwork.id))["reblogs_count"] == 1
    assert await alice_app.notifications() == [("reblog", "carol@remote.example")]
    async with app_db.session() as session:
        boost = await session.scalar(select(Status).where(Status.uri == announce["id"]))
    assert boost is not None and boost.reblog_of_id == artwork.id
    undo = remote_carol.activity("Undo", announce)
    assert await receive(inbox_app, remote_carol, undo) == InboxOutcome.PROCESSED
    assert (await alice_app.status(artwork.id))["reblogs_count"] == 0


async def test_a_boost_not_addressed_to_the_public_is_ignored(
        inbox_app: Starlette, alice_app: Api, artwork: Status, remote_carol: FakeActor) -> None:
    announce = remote_carol.activity("Announce", artwork.uri,
                                     to=[remote_carol.uri + "/followers"])
    assert await receive(inbox_app, remote_carol, announce) == InboxOutcome.IGNORED
    assert (await alice_app.status(artwork.id))["reblogs_count"] == 0


# ------------------------------------------------------------------- actors themselves

async def test_an_actor_update_is_refetched_from_its_origin(
        inbox_app: Starlette, alice_app: Api, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    carol = await remote_account(inbox_app, remote_carol)
    remote_carol.name = "Carol the Painter"
    embedded = remote_carol.document() | {"name": "Forged in the body"}
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Update", embedded)) == InboxOutcome.PROCESSED
    assert (await alice_app.account(carol.id))["display_name"] == "Carol the Painter"


async def test_an_actor_cannot_update_another(
        inbox_app: Starlette, alice_app: Api, remote_carol: FakeActor,
        remote_dave: FakeActor) -> None:
    dave = await remote_account(inbox_app, remote_dave)
    embedded = remote_dave.document() | {"name": "Hijacked"}
    # carol signs (and is the actor of) an Update whose object is dave: rejected.
    assert await receive(inbox_app, remote_carol,
                         remote_carol.activity("Update", embedded)) == InboxOutcome.REJECTED
    assert (await alice_app.account(dave.id))["display_name"] == "Dave"


async def test_a_deleted_actor_takes_its_follows_and_likes_with_it(
        inbox_app: Starlette, alice_app: Api, alice: User, artwork: Status,
        remote_carol: FakeActor, fediverse: Fediverse) -> None:
    carol = await remote_account(inbox_app, remote_carol)
    await receive(inbox_app, remote_carol, remote_carol.activity("Follow", ALICE))
    await receive(inbox_app, remote_carol, remote_carol.activity("Like", artwork.uri))
    await receive(inbox_app, remote_carol, remote_carol.activity(
        "Announce", artwork.uri, to=[PUBLIC]))
    fediverse.status[remote_carol.uri] = 410
    delete = remote_carol.activity("Delete", remote_carol.uri, to=[PUBLIC])
    assert await receive(inbox_app, remote_carol, delete) == InboxOutcome.PROCESSED
    assert (await alice_app.account(alice.account.id))["followers_count"] == 0
    status = await alice_app.status(artwork.id)
    assert (status["favourites_count"], status["reblogs_count"]) == (0, 0)
    async with http(inbox_app, token=alice_app.token) as client:
        assert (await client.get(f"/api/v1/accounts/{carol.id}")).status_code == 404


async def test_a_forwarded_delete_of_a_living_actor_is_rejected(
        inbox_app: Starlette, alice_app: Api, remote_carol: FakeActor,
        remote_dave: FakeActor) -> None:
    carol = await remote_account(inbox_app, remote_carol)
    delete = remote_carol.activity("Delete", remote_carol.uri)
    response = await deliver(inbox_app, remote_dave, delete)  # dave forwards it
    assert response.status_code == 202
    await process(inbox_app)
    item = await item_for(inbox_app.state.easel.db, delete["id"], forwarded_by=remote_dave)
    assert item is not None and item.outcome == InboxOutcome.REJECTED
    assert (await alice_app.account(carol.id))["acct"] == "carol@remote.example"


async def test_a_move_takes_local_followers_to_the_new_account(
        inbox_app: Starlette, app_db: Database, alice_app: Api, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    carol_id, sent = await alice_asks_to_follow(inbox_app, alice_app, remote_carol, fediverse)
    await receive(inbox_app, remote_carol, remote_carol.activity("Accept", sent["id"]))
    new = fediverse.actor("https://new.example/users/carol", "carol",
                          also_known_as=[remote_carol.uri])
    move = remote_carol.activity("Move", remote_carol.uri, target=new.uri)
    assert await receive(inbox_app, remote_carol, move) == InboxOutcome.PROCESSED
    new_account = await remote_account(inbox_app, new)
    assert (await alice_app.relationship(carol_id))["following"] is False
    assert (await alice_app.relationship(new_account.id))["requested"] is True
    async with app_db.session() as session:
        old = await session.get(Account, carol_id)
    assert old is not None and old.moved_to_account_id == new_account.id
    profile = await alice_app.account(carol_id)
    assert profile["moved"]["id"] == str(new_account.id)
    assert profile["moved"]["acct"] == "carol@new.example"
    assert any(a["type"] == "Follow" and a["object"] == new.uri for a in fediverse.posted())
    assert any(a["type"] == "Undo" for a in fediverse.posted())


async def test_a_move_to_an_account_that_does_not_claim_the_old_one_is_rejected(
        inbox_app: Starlette, alice_app: Api, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    carol_id, sent = await alice_asks_to_follow(inbox_app, alice_app, remote_carol, fediverse)
    await receive(inbox_app, remote_carol, remote_carol.activity("Accept", sent["id"]))
    stranger = fediverse.actor("https://new.example/users/mallory", "mallory")
    move = remote_carol.activity("Move", remote_carol.uri, target=stranger.uri)
    assert await receive(inbox_app, remote_carol, move) == InboxOutcome.REJECTED
    assert (await alice_app.relationship(carol_id))["following"] is True


# ------------------------------------------------------------------------- the job itself

async def test_an_unknown_activity_is_recorded_and_ignored(
        inbox_app: Starlette, remote_carol: FakeActor) -> None:
    listen = remote_carol.activity("Listen", "https://remote.example/tracks/1")
    assert await receive(inbox_app, remote_carol, listen) == InboxOutcome.IGNORED
    item = await item_for(inbox_app.state.easel.db, listen["id"])
    assert item is not None and item.note == "unknown activity: Listen"
    assert item.processed_at is not None


async def test_an_unreachable_actor_is_retried_later(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        remote_dave: FakeActor, fediverse: Fediverse) -> None:
    note = {"id": remote_carol.uri + "/statuses/9", "type": "Note",
            "attributedTo": remote_carol.uri, "content": "hello"}
    create = remote_carol.activity("Create", note)
    fediverse.status[remote_carol.uri] = 503
    # dave forwards it, so carol's own server is first asked when processing.
    assert (await deliver(inbox_app, remote_dave, create)).status_code == 202
    await process(inbox_app)
    item = await item_for(app_db, create["id"], forwarded_by=remote_dave)
    assert item is not None and item.outcome == InboxOutcome.PENDING
    async with app_db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == "process_inbox"))
    assert job is not None and job.state == "queued" and job.attempts == 1
    assert "remote.example" in (job.last_error or "")


async def test_a_domain_suspended_after_the_delivery_is_rejected(
        inbox_app: Starlette, app_db: Database, alice_app: Api, alice: User,
        remote_carol: FakeActor) -> None:
    follow = remote_carol.activity("Follow", ALICE)
    assert (await deliver(inbox_app, remote_carol, follow)).status_code == 202
    async with app_db.session() as session:
        session.add(DomainBlock(domain="remote.example", severity="suspend"))
        await session.commit()
    await process(inbox_app)
    item = await item_for(app_db, follow["id"])
    assert item is not None and item.outcome == InboxOutcome.REJECTED
    assert (await alice_app.account(alice.account.id))["followers_count"] == 0
