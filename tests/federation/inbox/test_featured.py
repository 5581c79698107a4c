"""Inbound ``Add``/``Remove`` to an actor's ``featured`` collection: pins and featured tags.

Given carol (remote) with a status Easel holds, when she pins it and features a hashtag
(as Mastodon sends both: to her ``featured`` collection), I expect her profile in the
client API to show the pinned status and the featured tag, and her ``Remove``s to take
them off; an Add to another collection, of a status Easel never saw, of someone else's
status, or forwarded by someone else changes nothing and is recorded as such.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette

from server.db import Database
from server.models import Account, InboxOutcome, Status, User
from tests.federation.inbox.conftest import (
    Api,
    FakeActor,
    deliver,
    item_for,
    process,
    receive,
)
from tests.federation.inbox.test_create import mastodon_note


async def carols_status(app: Starlette, db: Database, carol: FakeActor) -> tuple[Account, Status]:
    note = mastodon_note(carol)
    created = carol.activity("Create", note, to=note["to"], cc=note["cc"])
    assert await receive(app, carol, created) == InboxOutcome.PROCESSED
    async with db.session() as session:
        status = await session.scalar(select(Status).where(Status.uri == note["id"]))
        account = await session.scalar(select(Account).where(Account.uri == carol.uri))
    assert status is not None and account is not None
    return account, status


def featured(carol: FakeActor) -> str:
    return carol.uri + "/collections/featured"


def hashtag(name: str) -> dict[str, Any]:
    return {"type": "Hashtag", "name": name, "href": f"https://remote.example/tags/{name[1:]}"}


async def test_pins_and_featured_tags_arrive_and_leave(
        inbox_app: Starlette, app_db: Database, alice_app: Api, alice: User,
        remote_carol: FakeActor) -> None:
    carol, status = await carols_status(inbox_app, app_db, remote_carol)
    target = featured(remote_carol)
    pin = remote_carol.activity("Add", status.uri, target=target)
    assert await receive(inbox_app, remote_carol, pin) == InboxOutcome.PROCESSED
    pinned = await alice_app.get(f"/api/v1/accounts/{carol.id}/statuses", pinned="true")
    assert [s["id"] for s in pinned] == [str(status.id)]
    tag = remote_carol.activity("Add", hashtag("#Gouache"), target=target)
    assert await receive(inbox_app, remote_carol, tag) == InboxOutcome.PROCESSED
    tags = await alice_app.get(f"/api/v1/accounts/{carol.id}/featured_tags")
    assert [t["name"] for t in tags] == ["Gouache"]
    # the same again (a new activity): already so, nothing changes
    again = remote_carol.activity("Add", status.uri, target=target)
    assert await receive(inbox_app, remote_carol, again) == InboxOutcome.PROCESSED
    assert "unchanged" in (await item_for(app_db, again["id"])).note  # type: ignore[union-attr]

    unpin = remote_carol.activity("Remove", status.uri, target=target)
    assert await receive(inbox_app, remote_carol, unpin) == InboxOutcome.PROCESSED
    assert await alice_app.get(f"/api/v1/accounts/{carol.id}/statuses", pinned="true") == []
    untag = remote_carol.activity("Remove", hashtag("#GOUACHE"), target={"id": target})
    assert await receive(inbox_app, remote_carol, untag) == InboxOutcome.PROCESSED
    assert await alice_app.get(f"/api/v1/accounts/{carol.id}/featured_tags") == []


async def test_adds_that_may_not_or_need_not_be_applied_change_nothing(
        inbox_app: Starlette, app_db: Database, alice_app: Api, artwork: Status,
        remote_carol: FakeActor, remote_dave: FakeActor) -> None:
    carol, status = await carols_status(inbox_app, app_db, remote_carol)
    target = featured(remote_carol)
    cases = [
        (remote_carol.activity("Add", status.uri, target=remote_carol.uri + "/collections/x"),
         InboxOutcome.IGNORED),                                   # not her featured collection
        (remote_carol.activity("Add", status.uri), InboxOutcome.IGNORED),  # no target at all
        (remote_carol.activity("Add", remote_carol.uri + "/statuses/404", target=target),
         InboxOutcome.IGNORED),                                   # a status Easel never saw
        (remote_carol.activity("Add", artwork.uri, target=target),
         InboxOutcome.REJECTED),                                  # alice's status
        (remote_carol.activity("Add", hashtag("#no spaces allowed"), target=target),
         InboxOutcome.REJECTED),                                  # not a hashtag name
        (remote_carol.activity("Add", {"type": "Hashtag"}, target=target),
         InboxOutcome.REJECTED),
    ]
    for activity, expected in cases:
        assert await receive(inbox_app, remote_carol, activity) == expected, activity
    # dave cannot pin carol's status on her profile (nor on his: it is not his)
    daves = remote_dave.activity("Add", status.uri, target=featured(remote_dave))
    assert await receive(inbox_app, remote_dave, daves) == InboxOutcome.REJECTED
    # a forwarded Add (carol's activity, delivered and signed by dave) is not taken in
    forwarded = remote_carol.activity("Add", status.uri, target=target)
    assert (await deliver(inbox_app, remote_dave, forwarded)).status_code == 401
    await process(inbox_app)
    assert await alice_app.get(f"/api/v1/accounts/{carol.id}/statuses", pinned="true") == []
    assert await alice_app.get(f"/api/v1/accounts/{carol.id}/featured_tags") == []
