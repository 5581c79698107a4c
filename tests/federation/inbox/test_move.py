"""Inbound ``Move`` to a suspended domain.

Given alice following remote carol, when carol announces a Move to an account on a
domain this server suspended — even one that lists carol in ``alsoKnownAs`` — I expect
the Move rejected before anything is fetched from there, alice still following carol,
no Follow sent anywhere, and carol not marked as moved.
"""

from __future__ import annotations

from starlette.applications import Starlette

from server.db import Database
from server.models import Account, DomainBlock, InboxOutcome
from tests.federation.inbox.conftest import (
    Api,
    FakeActor,
    Fediverse,
    alice_asks_to_follow,
    item_for,
    receive,
)


async def test_a_move_to_a_suspended_domain_is_rejected_and_nobody_moves(
        inbox_app: Starlette, app_db: Database, alice_app: Api, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    carol_id, sent = await alice_asks_to_follow(inbox_app, alice_app, remote_carol, fediverse)
    await receive(inbox_app, remote_carol, remote_carol.activity("Accept", sent["id"]))
    assert (await alice_app.relationship(carol_id))["following"] is True
    new = fediverse.actor("https://new.example/users/carol", "carol",
                          also_known_as=[remote_carol.uri])
    async with app_db.session() as session:
        session.add(DomainBlock(domain="new.example", severity="suspend"))
        await session.commit()
    posted_before = len(fediverse.posted())

    move = remote_carol.activity("Move", remote_carol.uri, target=new.uri)
    assert await receive(inbox_app, remote_carol, move) == InboxOutcome.REJECTED

    item = await item_for(app_db, move["id"])
    assert item is not None and "suspended" in (item.note or "")
    assert fediverse.fetched(new.uri) == 0
    assert (await alice_app.relationship(carol_id))["following"] is True
    assert fediverse.posted()[posted_before:] == []
    async with app_db.session() as session:
        carol = await session.get(Account, carol_id)
    assert carol is not None and carol.moved_to_account_id is None
