"""``server.services.user_ips``: where local logins are used from, and for how long it is kept.

I expect a use to add the (user, address) row or move its ``used_at`` to now (an
IPv4-mapped address stored as the IPv4 address it is), nothing to be recorded with a
retention of 0, without an address or with one that is not an address, two first uses at
once to leave one row, one ``expire_user_ips`` job per calendar day (the day the written
row expires, due just after it) that deletes every row past the retention and only those,
the rows to go with their user, and the lookups by address or network to find exactly
the users that used one in it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from server.app import AppOptions, create_app
from server.db import Database
from server.ids import utcnow
from server.models import Job, JobState, User, UserIp
from server.queue.kinds import QUEUES
from server.queue.runner import JobRunner
from server.services import moderation, user_ips
from server.services.accounts import create_user
from server.services.errors import ValidationFailed
from server.settings import Settings


async def record(db: Database, settings: Settings, user: User, ip: str | None) -> None:
    async with db.session() as session:
        await user_ips.record_ip(session, settings, user.id, ip)
        await session.commit()


async def rows(db: Database) -> list[tuple[int, str, str]]:
    async with db.session() as session:
        return [(r.user_id, r.ip, r.ip_key) for r in await session.scalars(
            select(UserIp).order_by(UserIp.user_id, UserIp.ip_key))]


async def expiry_jobs(db: Database) -> list[Job]:
    async with db.session() as session:
        return list(await session.scalars(
            select(Job).where(Job.kind == user_ips.EXPIRE_JOB).order_by(Job.ref)))


async def test_a_use_adds_the_address_then_moves_its_time(
        db: Database, settings: Settings, alice: User) -> None:
    await record(db, settings, alice, "203.0.113.7")
    async with db.session() as session:
        first = await session.scalar(select(UserIp))
        assert first is not None and first.ip == "203.0.113.7"
        assert first.ip_key == "00000000000000000000ffffcb007107"
        earlier = utcnow() - timedelta(days=3)
        await session.execute(update(UserIp).values(used_at=earlier))
        await session.commit()
    await record(db, settings, alice, " 203.0.113.7 ")
    async with db.session() as session:
        [again] = list(await session.scalars(select(UserIp)))
        assert again.id == first.id and again.used_at > earlier + timedelta(days=2)


@pytest.mark.parametrize(("given", "stored"), [
    ("::ffff:192.0.2.1", "192.0.2.1"),
    ("2001:DB8::0:1", "2001:db8::1"),
    ("127.0.0.1", "127.0.0.1"),
])
async def test_addresses_are_stored_normalised(db: Database, settings: Settings, alice: User,
                                               given: str, stored: str) -> None:
    await record(db, settings, alice, given)
    assert [ip for _, ip, _ in await rows(db)] == [stored]


@pytest.mark.parametrize("given", [None, "", "testclient", "unknown", "10.0.0.300", "fe80::1%eth0"])
async def test_no_address_no_row(db: Database, settings: Settings, alice: User,
                                 given: str | None) -> None:
    await record(db, settings, alice, given)
    assert await rows(db) == []
    assert await expiry_jobs(db) == []


async def test_a_retention_of_0_records_nothing(db: Database, settings: Settings, alice: User) -> None:
    await record(db, settings.with_changes(ip_retention_days=0), alice, "192.0.2.1")
    assert await rows(db) == []
    assert await expiry_jobs(db) == []


async def start(settings: Settings) -> None:
    """A web process starting and stopping (its lifespan)."""
    application = create_app(settings, options=AppOptions(run_workers=False))
    async with application.router.lifespan_context(application):
        pass


async def test_a_retention_turned_to_0_deletes_what_was_recorded_before_at_start(
        db: Database, settings: Settings, alice: User, bob: User) -> None:
    await record(db, settings, alice, "192.0.2.1")  # under a retention of a year
    off = settings.with_changes(ip_retention_days=0)
    await record(db, off, bob, "192.0.2.2")  # a use records nothing and reads nothing
    assert [ip for _, ip, _ in await rows(db)] == ["192.0.2.1"]
    assert await run_expiry_at(db, off, utcnow() + timedelta(seconds=1)) == 0  # none queued
    await start(off)  # the old rows' deletion is queued, due now
    assert await run_expiry_at(db, off, utcnow() + timedelta(seconds=1)) == 1
    assert await rows(db) == []
    await start(off)  # nothing stored: nothing more queued
    assert await run_expiry_at(db, off, utcnow() + timedelta(seconds=1)) == 0
    await start(settings)  # a retention above 0 queues nothing at start
    assert await expiry_jobs(db) != [] and await rows(db) == []


async def test_first_uses_at_once_leave_one_row_and_one_job(
        db: Database, settings: Settings, alice: User, bob: User) -> None:
    # different rows at once: each may find no job of the day, one inserts it
    await asyncio.gather(*(record(db, settings, user, f"198.51.100.{n}")
                           for n in range(10, 16) for user in (alice, bob)))
    assert len(await rows(db)) == 12
    assert len(await expiry_jobs(db)) == 1
    await asyncio.gather(*(record(db, settings, alice, "198.51.100.4") for _ in range(4)))
    assert len(await rows(db)) == 13


async def test_one_expiry_job_a_day_due_after_the_day_the_row_expires(
        db: Database, settings: Settings, alice: User, bob: User) -> None:
    await record(db, settings, alice, "192.0.2.1")
    await record(db, settings, alice, "192.0.2.2")
    await record(db, settings, bob, "2001:db8::7")
    [job] = await expiry_jobs(db)
    day = (utcnow() + timedelta(days=settings.ip_retention_days)).date()
    assert job.ref == day.isoformat() and job.state == JobState.QUEUED
    assert job.next_try_at == datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    short = settings.with_changes(ip_retention_days=30)
    await record(db, short, bob, "2001:db8::8")
    assert [j.ref for j in await expiry_jobs(db)] == sorted(
        [day.isoformat(), (utcnow() + timedelta(days=30)).date().isoformat()])


async def run_expiry_at(db: Database, settings: Settings, moment: datetime) -> int:
    runner = JobRunner(db, settings, clock=lambda: moment,
                       kinds={user_ips.EXPIRE_JOB: user_ips.expire_user_ips_job})
    ran: int = await runner.run_due(QUEUES)
    return ran


async def test_the_expiry_job_deletes_only_rows_past_the_retention(
        db: Database, settings: Settings, alice: User, bob: User) -> None:
    await record(db, settings, alice, "192.0.2.1")
    await record(db, settings, bob, "192.0.2.2")
    await record(db, settings, bob, "192.0.2.3")
    [job] = await expiry_jobs(db)
    async with db.session() as session:  # bob used .3 again two days later
        await session.execute(update(UserIp).where(UserIp.ip == "192.0.2.3")
                              .values(used_at=utcnow() + timedelta(days=2)))
        await session.commit()
    assert await run_expiry_at(db, settings, job.next_try_at - timedelta(minutes=1)) == 0
    assert len(await rows(db)) == 3
    assert await run_expiry_at(db, settings, job.next_try_at + timedelta(minutes=1)) == 1
    assert [ip for _, ip, _ in await rows(db)] == ["192.0.2.3"]
    [done] = await expiry_jobs(db)
    assert done.state == JobState.DONE


async def test_expire_keeps_what_is_within_the_retention(
        db: Database, settings: Settings, alice: User) -> None:
    await record(db, settings, alice, "192.0.2.1")
    await record(db, settings, alice, "192.0.2.2")
    async with db.session() as session:
        await session.execute(update(UserIp).where(UserIp.ip == "192.0.2.1")
                              .values(used_at=utcnow() - timedelta(days=366)))
        assert await user_ips.expire(session, settings, utcnow()) == 1
        await session.commit()
    assert [ip for _, ip, _ in await rows(db)] == ["192.0.2.2"]
    async with db.session() as session:  # a retention of 0 keeps nothing
        assert await user_ips.expire(session, settings.with_changes(ip_retention_days=0),
                                     utcnow()) == 1


async def test_the_rows_go_with_their_user(db: Database, settings: Settings, alice: User,
                                           bob: User) -> None:
    await record(db, settings, alice, "192.0.2.1")
    await record(db, settings, bob, "192.0.2.1")
    async with db.session() as session:
        pending = await create_user(session, settings, username="newcomer", email="new@example.com",
                                    password="a password long enough", approved=False)
    await record(db, settings, pending, "192.0.2.9")
    async with db.session() as session:  # a moderator's deletion, purged at once
        await moderation.take_action(session, settings, moderator=None,
                                     account_id=alice.account_id, action="suspend", text="")
        await moderation.delete_by_moderator(session, alice.account_id)
        assert await moderation.purge(session, alice.account_id, now=utcnow() + timedelta(seconds=1))
    async with db.session() as session:  # a rejected sign-up
        await moderation.reject(session, settings, pending.account_id)
    assert [(user, ip) for user, ip, _ in await rows(db)] == [(bob.id, "192.0.2.1")]


async def test_users_in_an_address_or_network(db: Database, settings: Settings, alice: User,
                                              bob: User, carol: User) -> None:
    await record(db, settings, alice, "192.0.2.1")
    await record(db, settings, bob, "192.0.2.254")
    await record(db, settings, bob, "2001:db8:1::5")
    await record(db, settings, carol, "192.0.3.1")

    async def found(text: str) -> set[int]:
        async with db.session() as session:
            return set(await session.scalars(user_ips.users_in(text)))

    assert await found("192.0.2.1") == {alice.id}
    assert await found("::ffff:192.0.2.1") == {alice.id}
    assert await found("192.0.2.0/24") == {alice.id, bob.id}
    assert await found("192.0.0.0/16") == {alice.id, bob.id, carol.id}
    assert await found("2001:db8::/32") == {bob.id}
    assert await found("2001:db8:2::/48") == set()
    for bad in ("192.0.2", "example.org", "192.0.2.0/33", ""):
        with pytest.raises(ValidationFailed):
            user_ips.users_in(bad)


async def test_recent_ips_newest_first_at_most_the_limit(
        db: Database, settings: Settings, alice: User, bob: User) -> None:
    for n in range(1, 5):
        await record(db, settings, alice, f"192.0.2.{n}")
    async with db.session() as session:
        for n in range(1, 5):  # .4 used last, then .1, .2, .3
            await session.execute(update(UserIp).where(UserIp.ip == f"192.0.2.{n}")
                                  .values(used_at=utcnow() - timedelta(hours=n % 4)))
        await session.commit()
        found = await user_ips.recent_ips(session, [alice.id, bob.id, None], limit=3)
        assert list(found) == [alice.id]
        assert [r.ip for r in found[alice.id]] == ["192.0.2.4", "192.0.2.1", "192.0.2.2"]
        assert await user_ips.recent_ips(session, []) == {}
        total = await session.scalar(select(func.count()).select_from(UserIp))
        assert total == 4
