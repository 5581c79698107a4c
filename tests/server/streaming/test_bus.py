"""The stream bus, in process: what a commit hands to the open streams.

Given a database whose sessions publish to a bus (Redis when the suite has a broker), I
expect a committed session's events to reach a subscriber once, in order, with the
notification's id read after the flush; a rolled-back session's events never to; a
process without streams of its own (the embedded protect child) to reach a web process on
the same data directory through its socket; and the Redis channel to be per database
and domain.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from server.db import Database
from server.models import Status
from server.services import events
from server.settings import Settings
from server.streaming.bus import StreamBus, pass_jobs, redis_channel, send_to_siblings

WAIT_SECONDS = 10.0


@dataclass
class FakeNotification:
    account_id: int
    id: int | None = None  # set by the flush, in the real row


async def test_committed_events_arrive_in_order_and_rolled_back_ones_never(
    db: Database, settings: Settings,
) -> None:
    bus = StreamBus(settings)
    db.dispatch_events = bus.publish
    await bus.start(listen=True)
    subscription = bus.subscribe()
    try:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
            events.status_published(session, 1)
            await session.rollback()
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
            events.status_published(session, 2)
            notification = FakeNotification(account_id=5)
            events.notification_created(session, notification)
            notification.id = 77
            await events.status_deleted(session, Status(
                id=2, account_id=9, visibility="unlisted", published=True, local=False))
            await session.commit()
        first = await subscription.next(WAIT_SECONDS)
        assert first == {"kind": "status.published", "status_id": 2}
        assert await subscription.next(WAIT_SECONDS) == {
            "kind": "notification", "account_id": 5, "notification_id": 77}
        assert await subscription.next(WAIT_SECONDS) == {
            "kind": "status.deleted", "status_id": 2, "account_id": 9,
            "visibility": "unlisted", "published": True, "local": False, "reblog": False,
            "mentioned_ids": []}
        assert subscription.queue.empty()
    finally:
        await bus.close()
    assert subscription.closed  # closing the bus ends the open streams


async def test_savepoints_neither_send_nor_drop_the_transactions_events(
    db: Database, settings: Settings,
) -> None:
    """A released SAVEPOINT commits nothing (its events wait for the real commit); a
    rolled-back one leaves the events of the rest of the transaction in place."""
    bus = StreamBus(settings)
    db.dispatch_events = bus.publish
    await bus.start(listen=True)
    subscription = bus.subscribe()
    try:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
            events.status_published(session, 1)
            async with session.begin_nested():
                await session.execute(text("SELECT 1"))
            try:
                async with session.begin_nested():
                    raise LookupError("a concurrent insert, say")
            except LookupError:
                pass
            assert subscription.queue.empty()
            events.status_published(session, 2)
            await session.commit()
        assert await subscription.next(WAIT_SECONDS) == {"kind": "status.published",
                                                         "status_id": 1}
        assert await subscription.next(WAIT_SECONDS) == {"kind": "status.published",
                                                         "status_id": 2}
    finally:
        await bus.close()


async def test_a_process_without_streams_reaches_a_web_process_by_its_socket(
    settings: Settings,
) -> None:
    embedded = settings.with_changes(broker_url="")
    web, child = StreamBus(embedded), StreamBus(embedded)
    await web.start(listen=True)
    await child.start(listen=False)
    subscription = web.subscribe()
    try:
        child.publish([events.StreamEvent("filters_changed", {"account_id": 3})])
        assert await subscription.next(WAIT_SECONDS) == {"kind": "filters_changed",
                                                         "account_id": 3}
    finally:
        await child.close()
        await web.close()
    assert not list((embedded.data_dir / "streams").glob("*.sock"))


async def test_a_jobs_note_reaches_the_job_listeners_and_no_stream(settings: Settings) -> None:
    embedded = settings.with_changes(broker_url="")
    web = StreamBus(embedded)
    heard: list[list[tuple[int, str]]] = []
    web.job_listeners.append(heard.append)
    await web.start(listen=True)
    subscription = web.subscribe()
    try:
        pass_jobs(embedded, [(7, "federation"), (8, "default")])
        send_to_siblings(embedded, [{"easel_jobs": [["x", "default"]]}])  # malformed: dropped
        StreamBus(embedded)._send_to_siblings([{"kind": "filters_changed", "account_id": 1}])
        assert await subscription.next(WAIT_SECONDS) == {"kind": "filters_changed",
                                                         "account_id": 1}
        assert heard == [[(7, "federation"), (8, "default")]]
    finally:
        await web.close()


def test_the_redis_channel_is_per_database_and_domain(settings: Settings) -> None:
    assert redis_channel(settings.with_changes(broker_url="")) is None
    assert redis_channel(settings.with_changes(broker_url="amqp://guest@localhost")) is None
    six = settings.with_changes(broker_url="redis://127.0.0.1:6379/6", domain="art.example")
    assert redis_channel(six) == "easel:6:streaming:art.example"
    default = settings.with_changes(broker_url="redis://127.0.0.1:6379", domain="art.example")
    assert redis_channel(default) == "easel:0:streaming:art.example"
