"""Delivery: failures retried with backoff, refusals given up, domain health recorded.

Given alice's followers on fake remote servers (see ``test_outbox``), when an inbox answers
5xx or cannot be reached, I expect its delivery job back in the queue with a later next
try, the failure counted against its domain, and — when it is run again and succeeds — the
same document delivered and the domain's failures reset; when an inbox answers 410 (or
another 4xx), the delivery given up at once, never retried; and a delivered job, even when
redone, never sends twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from federation.context import FederationContext, install_federation_context
from federation.delivery import MAX_ATTEMPTS, RETRY_BASE, RETRY_CAP
from server.app import AppOptions, create_app
from server.db import Database
from server.ids import utcnow
from server.models import Account, Activity, Delivery, DomainBlock, Instance, Job, JobState, User
from server.queue.jobs import enqueue
from server.queue.kinds import kind_named
from server.settings import Settings
from tests.federation.test_outbox import (
    FakeFediverse,
    app,
    audience,
    count,
    post,
    remote,
    run_federation,
)

__all__ = ["app", "audience", "remote"]  # fixtures shared with test_outbox

TOM_INBOX = "https://solo.example/users/tom/inbox"
SHARED_INBOX = "https://shared.example/inbox"


async def delivery_to(db: Database, inbox: str) -> tuple[Delivery, Job]:
    async with db.session() as session:
        delivery = await session.scalar(select(Delivery).where(Delivery.inbox_url == inbox))
        assert delivery is not None
        job = await session.scalar(select(Job).where(Job.kind == "deliver",
                                                     Job.ref == str(delivery.id)))
        assert job is not None
        return delivery, job


async def instance(db: Database, domain: str) -> Instance | None:
    async with db.session() as session:
        return await session.get(Instance, domain)


async def make_due(db: Database, job: Job) -> None:
    async with db.session() as session:
        await session.execute(update(Job).where(Job.id == job.id)
                              .values(next_try_at=utcnow() - timedelta(seconds=1)))
        await session.commit()


def test_the_retry_schedule_spans_about_two_days() -> None:
    kind = kind_named("deliver")
    assert (kind.max_attempts, kind.retry_base, kind.retry_cap) == (MAX_ATTEMPTS, RETRY_BASE,
                                                                    RETRY_CAP)
    total = sum((kind.retry_delay(attempt) for attempt in range(1, kind.max_attempts)),
                timedelta())
    assert timedelta(hours=46) <= total <= timedelta(hours=50)


async def test_a_server_error_is_retried_later_and_the_retry_sends_the_same_document(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    remote.answers[TOM_INBOX] = 503
    before = utcnow()
    await post(db, settings, alice, "Hello")
    await run_federation(app)

    delivery, job = await delivery_to(db, TOM_INBOX)
    assert job.state == JobState.QUEUED and job.attempts == 1
    assert job.next_try_at >= before + RETRY_BASE
    assert "HTTP 503" in (job.last_error or "")
    assert delivery.status_code == 503 and delivery.delivered_at is None
    health = await instance(db, "solo.example")
    assert health is not None and health.failures == 1 and "503" in health.last_error
    assert health.first_failure_at is not None
    shared, _ = await delivery_to(db, SHARED_INBOX)
    assert shared.delivered_at is not None  # one inbox failing holds up no other
    assert await run_federation(app) == 0  # not due yet

    # Still failing: a second failure, a longer wait.
    await make_due(db, job)
    assert await run_federation(app) == 1
    _, job = await delivery_to(db, TOM_INBOX)
    assert job.state == JobState.QUEUED and job.attempts == 2
    assert job.next_try_at >= utcnow() + RETRY_BASE * 2 - timedelta(seconds=5)
    health = await instance(db, "solo.example")
    assert health is not None and health.failures == 2

    # Back up: delivered, the domain healthy again.
    remote.answers[TOM_INBOX] = 202
    await make_due(db, job)
    assert await run_federation(app) == 1
    delivery, job = await delivery_to(db, TOM_INBOX)
    assert job.state == JobState.DONE and delivery.delivered_at is not None
    assert delivery.status_code == 202
    health = await instance(db, "solo.example")
    assert health is not None and health.failures == 0 and health.last_success_at is not None
    assert health.first_failure_at is None
    bodies = {item.body for item in remote.received if item.url == TOM_INBOX}
    assert len(bodies) == 1 and len([r for r in remote.received if r.url == TOM_INBOX]) == 3


async def test_an_unreachable_server_is_retried(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    remote.broken.add(TOM_INBOX)
    await post(db, settings, alice, "Hello")
    await run_federation(app)
    _, job = await delivery_to(db, TOM_INBOX)
    assert job.state == JobState.QUEUED and "ConnectError" in (job.last_error or "")
    health = await instance(db, "solo.example")
    assert health is not None and health.failures == 1


@pytest.mark.parametrize("answer", [410, 404, 401])
async def test_a_refusal_is_given_up_at_once(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse, answer: int
) -> None:
    remote.answers[TOM_INBOX] = answer
    await post(db, settings, alice, "Hello")
    await run_federation(app)
    delivery, job = await delivery_to(db, TOM_INBOX)
    assert job.state == JobState.DONE and job.attempts == 1
    assert delivery.status_code == answer and delivery.delivered_at is None
    health = await instance(db, "solo.example")
    assert health is not None and health.failures == 0  # the server answered
    await make_due(db, job)
    assert await run_federation(app) == 0
    assert len([r for r in remote.received if r.url == TOM_INBOX]) == 1


@pytest.mark.parametrize("answer", [429, 408, 500])
async def test_busy_and_timeout_answers_are_retried(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse, answer: int
) -> None:
    remote.answers[TOM_INBOX] = answer
    await post(db, settings, alice, "Hello")
    await run_federation(app)
    _, job = await delivery_to(db, TOM_INBOX)
    assert job.state == JobState.QUEUED


async def test_a_redone_delivery_that_was_delivered_sends_nothing(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    await post(db, settings, alice, "Hello")
    await run_federation(app)
    assert len(remote.received) == 2
    _, job = await delivery_to(db, TOM_INBOX)
    async with db.session() as session:
        await enqueue(session, kind_named("deliver"), job.ref, again=True)
        await session.commit()
    assert await run_federation(app) == 1
    assert len(remote.received) == 2


async def test_a_claim_whose_worker_died_is_taken_over(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    remote.answers[TOM_INBOX] = 503
    await post(db, settings, alice, "Hello")
    await run_federation(app)
    remote.answers[TOM_INBOX] = 202
    _, job = await delivery_to(db, TOM_INBOX)
    async with db.session() as session:  # as a worker leaves it when it dies mid-attempt
        await session.execute(update(Job).where(Job.id == job.id).values(
            state=JobState.RUNNING, locked_until=utcnow() - timedelta(seconds=1)))
        await session.commit()
    assert await run_federation(app) == 1
    delivery, job = await delivery_to(db, TOM_INBOX)
    assert job.state == JobState.DONE and delivery.delivered_at is not None


async def test_jobs_about_nothing_finish_without_sending(
    app: Starlette, db: Database, alice: User, remote: FakeFediverse
) -> None:
    async with db.session() as session:
        await enqueue(session, kind_named("deliver"), "12345")
        await enqueue(session, kind_named("federate"), "67890")
        session.add(Activity(uri="https://easel.test/users/alice#odd/1", account_id=alice.account_id,
                             type="Dance", payload={"object_type": "Note"}))
        await session.flush()
        odd = await session.scalar(select(Activity))
        assert odd is not None
        await enqueue(session, kind_named("federate"), str(odd.id))
        await session.commit()
    assert await run_federation(app) == 3
    async with db.session() as session:
        states = set(await session.scalars(select(Job.state)))
    assert states == {JobState.DONE}
    assert remote.received == [] and await count(db, Delivery) == 0


@pytest.fixture
async def strict_app(settings: Settings, remote: FakeFediverse) -> AsyncIterator[Starlette]:
    """An app that refuses private addresses, whose remote hosts resolve to one."""
    strict = settings.with_changes(allow_private_addresses=False)
    application = create_app(strict, options=AppOptions(run_workers=False,
                                                        run_reconciler=False))
    async with application.router.lifespan_context(application):
        state = application.state.easel

        async def private(host: str, port: int) -> list[str]:
            return ["10.1.2.3"]

        install_federation_context(FederationContext.build(
            state.settings, state.db, transport=httpx.MockTransport(remote.handler),
            resolver=private))
        yield application


async def test_an_inbox_on_a_private_address_is_given_up(
    strict_app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    await post(db, settings, alice, "Hello")
    await run_federation(strict_app)
    delivery, job = await delivery_to(db, TOM_INBOX)
    assert job.state == JobState.DONE and delivery.delivered_at is None
    assert remote.received == []
    assert await instance(db, "solo.example") is None  # never reached: no health news


async def suspend(db: Database, domain: str) -> None:
    async with db.session() as session:
        session.add(DomainBlock(domain=domain, severity="suspend"))
        await session.commit()


async def test_a_retry_to_a_domain_suspended_meanwhile_is_given_up_unsent(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    remote.answers[TOM_INBOX] = 503
    await post(db, settings, alice, "Hello")
    await run_federation(app)
    _, job = await delivery_to(db, TOM_INBOX)
    assert job.state == JobState.QUEUED
    remote.answers[TOM_INBOX] = 202
    await suspend(db, "solo.example")
    await make_due(db, job)
    assert await run_federation(app) == 1
    delivery, job = await delivery_to(db, TOM_INBOX)
    assert job.state == JobState.DONE and delivery.delivered_at is None
    assert len([r for r in remote.received if r.url == TOM_INBOX]) == 1  # the first try only
    health = await instance(db, "solo.example")
    assert health is not None and health.failures == 1  # no news of it: unchanged


async def test_a_redone_federate_job_does_not_send_old_deliveries_to_a_suspended_domain(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    remote.answers[TOM_INBOX] = 503
    await post(db, settings, alice, "Hello")
    await run_federation(app)
    _, job = await delivery_to(db, TOM_INBOX)
    await make_due(db, job)
    await suspend(db, "example")  # covers solo.example (and shared.example, delivered)
    remote.answers[TOM_INBOX] = 202
    async with db.session() as session:
        activity = await session.scalar(select(Activity))
        assert activity is not None
        # The federate job runs again (a retry) and claims the due delivery in bulk.
        await enqueue(session, kind_named("federate"), str(activity.id), again=True)
        await session.commit()
    await run_federation(app)
    delivery, job = await delivery_to(db, TOM_INBOX)
    assert job.state == JobState.DONE and delivery.delivered_at is None
    assert len([r for r in remote.received if r.url == TOM_INBOX]) == 1
    assert await run_federation(app) == 0
