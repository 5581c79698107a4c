"""What the status services record for federation, and how they take inbound actions.

Given alice (local) and zoe (remote), I expect alice's published posts, deletions,
favourites and boosts to record the matching activity (with what a deletion destroys
captured in its payload), and zoe's favourites and boosts — the inbound Like and
Announce — to keep the remote activity's id and record nothing.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.db import Database
from server.models import Account, Activity, Favourite, Status, Tombstone, User
from server.services import statuses
from server.services.errors import ValidationFailed
from server.settings import Settings


@pytest.fixture
async def zoe(db: Database) -> Account:
    async with db.session() as session:
        account = Account(username="zoe", username_key="zoe", domain="far.example",
                          uri="https://far.example/users/zoe")
        session.add(account)
        await session.commit()
        return account


async def get(db: Database, account_id: int) -> Account:
    async with db.session() as session:
        found = await session.get(Account, account_id)
        assert found is not None
        return found


async def recorded(db: Database) -> list[Activity]:
    async with db.session() as session:
        return list(await session.scalars(select(Activity).order_by(Activity.created_at,
                                                                     Activity.id)))


async def test_a_published_post_records_its_create_and_its_deletion_the_audience(
    db: Database, settings: Settings, alice: User, zoe: Account
) -> None:
    author = await get(db, alice.account_id)
    async with db.session() as session:
        status = await statuses.create_status(session, settings, author, None,
                                              text="hi @zoe@far.example", visibility="private")
    [create] = await recorded(db)
    assert (create.type, create.uri, create.object_uri) == (
        "Create", status.uri + "/activity", status.uri)
    assert create.payload == {"object_type": "Note", "status_id": status.id}

    async with db.session() as session:
        await statuses.delete_status(session, status)
    delete = (await recorded(db))[-1]
    assert (delete.type, delete.uri, delete.object_uri) == ("Delete", status.uri + "#delete",
                                                            status.uri)
    assert delete.payload == {"object_type": "Note", "visibility": "private",
                              "mentioned_ids": [zoe.id], "parent_author_id": None,
                              "reached_ids": []}
    async with db.session() as session:
        assert await session.scalar(select(Tombstone.uri)) == status.uri


async def test_favourites_record_likes_and_keep_their_ids(
    db: Database, settings: Settings, alice: User, bob: User, zoe: Account
) -> None:
    author = await get(db, alice.account_id)
    async with db.session() as session:
        status = await statuses.create_status(session, settings, author, None, text="art")
    fan = await get(db, bob.account_id)
    async with db.session() as session:
        await statuses.favourite(session, fan, status.id)
        await statuses.favourite(session, fan, status.id)  # once
        await statuses.favourite(session, zoe, status.id, uri="https://far.example/likes/1")
    async with db.session() as session:
        uris = dict((await session.execute(select(Favourite.account_id, Favourite.uri))).all())
    assert uris[zoe.id] == "https://far.example/likes/1"
    assert uris[fan.id] is not None and uris[fan.id].startswith(fan.uri + "#likes/")
    likes = [a for a in await recorded(db) if a.type == "Like"]
    assert [(a.account_id, a.uri) for a in likes] == [(fan.id, uris[fan.id])]

    async with db.session() as session:
        await statuses.unfavourite(session, fan, status.id)
        await statuses.unfavourite(session, fan, status.id)  # once
        await statuses.unfavourite(session, zoe, status.id)  # an inbound Undo(Like)
    undos = [a for a in await recorded(db) if a.type == "Undo"]
    assert [(a.account_id, a.payload["like_uri"], a.payload["object_type"]) for a in undos] == [
        (fan.id, uris[fan.id], "Like")]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Favourite)) == 0


async def test_boosts_record_announces_and_inbound_boosts_keep_the_announce_id(
    db: Database, settings: Settings, alice: User, bob: User, zoe: Account
) -> None:
    author = await get(db, alice.account_id)
    async with db.session() as session:
        status = await statuses.create_status(session, settings, author, None, text="art")
    booster = await get(db, bob.account_id)
    async with db.session() as session:
        boost = await statuses.reblog(session, settings, booster, status.id)
        theirs = await statuses.reblog(session, settings, zoe, status.id,
                                       uri="https://far.example/announces/1")
    assert theirs.uri == "https://far.example/announces/1" and not theirs.local
    announces = [a for a in await recorded(db) if a.type == "Announce"]
    assert [(a.uri, a.object_uri) for a in announces] == [(boost.uri, status.uri)]
    async with db.session() as session:
        assert (await session.get(Status, status.id)).reblogs_count == 2  # type: ignore[union-attr]
        with pytest.raises(ValidationFailed):
            await statuses.reblog(session, settings, zoe, status.id)  # no Announce id

    async with db.session() as session:
        await statuses.unreblog(session, booster, status.id)
        await statuses.unreblog(session, zoe, status.id)
    undos = [a for a in await recorded(db) if a.type == "Undo"]
    assert len(undos) == 1 and undos[0].payload["boost_uri"] == boost.uri
    assert undos[0].payload["original_visibility"] == "public"
    async with db.session() as session:  # boosts leave no tombstone
        assert await session.scalar(select(func.count()).select_from(Tombstone)) == 0
