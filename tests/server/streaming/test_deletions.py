"""A deleted status's stream event, in process: what it carries to route its ``delete``.

Given a database whose sessions publish to a bus (Redis when the suite has a broker) and
statuses deleted through the statuses service, I expect each ``status.deleted`` message to
carry the status's visibility, whether it was published, local or a boost, and the local
accounts a private or direct one mentioned — read before its rows were gone
(``events.status_deleted``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from server.db import Database
from server.models import Status, User
from server.services import statuses
from server.settings import Settings
from server.streaming.bus import StreamBus, Subscription

WAIT_SECONDS = 10.0


async def _post(db: Database, settings: Settings, user: User, **options: Any) -> Status:
    async with db.session() as session:
        return await statuses.create_status(session, settings, user.account, None, **options)


async def _delete(db: Database, status_id: int) -> None:
    async with db.session() as session:
        found = await session.get(Status, status_id)
        assert found is not None
        await statuses.delete_status(session, found)


async def _next_deletion(subscription: Subscription) -> dict[str, Any]:
    while True:
        message = await subscription.next(WAIT_SECONDS)
        assert message is not None, "no deletion in time"
        if message["kind"] == "status.deleted":
            return message


async def test_a_deleted_status_event_carries_its_routing_facts(
    db: Database, settings: Settings, alice: User, bob: User, carol: User,
) -> None:
    bus = StreamBus(settings)
    db.dispatch_events = bus.publish
    await bus.start(listen=True)
    subscription = bus.subscribe()
    try:
        direct = await _post(db, settings, bob, text="@alice @carol between us",
                             visibility="direct")
        private = await _post(db, settings, bob, text="For followers, and @carol",
                              visibility="private")
        public = await _post(db, settings, bob, text="For everyone")
        async with db.session() as session:
            boost = await statuses.reblog(session, settings, alice.account, public.id)
        for status in (direct, private):
            await _delete(db, status.id)
        async with db.session() as session:  # the undo deletes the boost
            await statuses.unreblog(session, alice.account, public.id)
        await _delete(db, public.id)

        got = await _next_deletion(subscription)
        assert {**got, "mentioned_ids": sorted(got["mentioned_ids"])} == {
            "kind": "status.deleted", "status_id": direct.id, "account_id": bob.account.id,
            "visibility": "direct", "published": True, "local": True, "reblog": False,
            "mentioned_ids": sorted([alice.account.id, carol.account.id])}
        got = await _next_deletion(subscription)
        assert (got["visibility"], got["mentioned_ids"]) == ("private", [carol.account.id])
        got = await _next_deletion(subscription)
        assert (got["status_id"], got["account_id"], got["visibility"], got["reblog"]) == (
            boost.id, alice.account.id, "public", True)
        got = await _next_deletion(subscription)
        assert (got["status_id"], got["visibility"], got["reblog"], got["mentioned_ids"]) == (
            public.id, "public", False, [])
    finally:
        await bus.close()
    async with db.session() as session:  # the rows really are gone
        assert await session.scalar(select(Status.id).where(
            Status.id.in_([direct.id, private.id, public.id]))) is None
