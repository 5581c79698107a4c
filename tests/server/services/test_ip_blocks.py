"""``server.services.ip_blocks``: networks refused, or refused or held at sign-up.

I expect a block to be stored with its network normalised (host bits cleared, always a
prefix length), a bad network, severity, comment or expiry and a second block of the same
network to be refused storing nothing (an expired one is replaced instead); an update to
change only what it is given. The matcher must answer the strongest severity of the
blocks containing an address (nested networks, IPv4 and IPv6, an IPv4-mapped address as
its IPv4 self), ignore expired blocks (also one expiring while loaded), reload a stale
snapshot (another process's change within its TTL; its own process's at once), keep its
snapshot when the database does not answer, and parse nothing when nothing is blocked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import utcnow
from server.models import IpBlock
from server.services import ip_blocks
from server.services.errors import NotFound, ValidationFailed
from server.services.ip_blocks import IpBlockMatcher


class Clock:
    def __init__(self) -> None:
        self.now = utcnow().timestamp()

    def __call__(self) -> float:
        return self.now


async def block(db: Database, ip: str, severity: str, **kwargs: Any) -> IpBlock:
    async with db.session() as session:
        return await ip_blocks.create_ip_block(session, ip, severity, **kwargs)


async def block_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(IpBlock)) or 0)


async def test_a_block_is_stored_normalised(db: Database) -> None:
    created = await block(db, " 192.0.2.77/24 ", "NO_ACCESS", comment=" spam wave ",
                          expires_in="3600")
    assert (created.ip, created.severity, created.comment) == ("192.0.2.0/24", "no_access", "spam wave")
    assert (created.first_key, created.last_key) == ("00000000000000000000ffffc0000200",
                                                     "00000000000000000000ffffc00002ff")
    assert created.expires_at is not None
    assert timedelta(seconds=3590) < created.expires_at - utcnow() <= timedelta(seconds=3600)
    single = await block(db, "2001:db8::1", "sign_up_block")
    assert single.ip == "2001:db8::1/128" and single.expires_at is None
    mapped = await block(db, "::ffff:198.51.100.9", "sign_up_block", expires_in=60)
    assert mapped.ip == "198.51.100.9/32"


@pytest.mark.parametrize(("ip", "severity", "extra", "message"), [
    (None, "no_access", {}, "Ip can't be blank"),
    ("  ", "no_access", {}, "Ip can't be blank"),
    ("not an address", "no_access", {}, "is not an IP address or network"),
    ("192.0.2.0/33", "no_access", {}, "is not an IP address or network"),
    ("fe80::1%eth0", "no_access", {}, "names a zone"),
    ("192.0.2.1", None, {}, "Severity can't be blank"),
    ("192.0.2.1", "ban", {}, "Severity 'ban' is not one of"),
    ("192.0.2.1", "no_access", {"comment": "x" * 5001}, "Comment is too long"),
    ("192.0.2.1", "no_access", {"expires_in": 0}, "Expires in must be a positive"),
    ("192.0.2.1", "no_access", {"expires_in": -5}, "Expires in must be a positive"),
    ("192.0.2.1", "no_access", {"expires_in": "soon"}, "Expires in must be a positive"),
    ("192.0.2.1", "no_access", {"expires_in": "1.5"}, "Expires in must be a positive"),
    ("192.0.2.1", "no_access", {"expires_in": 1.5}, "Expires in must be a positive"),
    ("192.0.2.1", "no_access", {"expires_in": True}, "Expires in must be a positive"),
    ("192.0.2.1", "no_access", {"expires_in": 10**12}, "Expires in is too long"),
])
async def test_bad_input_is_refused_and_stores_nothing(
        db: Database, ip: str | None, severity: str | None, extra: dict[str, Any],
        message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as raised:
        await block(db, ip, severity, **extra)  # type: ignore[arg-type]
    assert raised.value.status_code == 422
    assert await block_count(db) == 0


async def test_the_same_network_twice_is_taken_unless_the_first_expired(db: Database) -> None:
    first = await block(db, "192.0.2.0/24", "sign_up_block")
    with pytest.raises(ValidationFailed, match="Ip has already been taken"):
        await block(db, "192.0.2.200/24", "no_access")
    async with db.session() as session:
        await session.execute(update(IpBlock).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    second = await block(db, "192.0.2.0/24", "no_access")
    async with db.session() as session:
        assert [b.id for b in await ip_blocks.list_ip_blocks(session)] == [second.id]
        assert await session.get(IpBlock, first.id) is None


async def test_an_update_changes_only_what_it_is_given(db: Database) -> None:
    created = await block(db, "10.1.0.0/16", "sign_up_block", comment="keep me", expires_in=60)
    other = await block(db, "10.2.0.0/16", "sign_up_block")
    async with db.session() as session:
        changed = await ip_blocks.update_ip_block(session, created.id, severity="no_access")
        assert (changed.ip, changed.severity, changed.comment) == ("10.1.0.0/16", "no_access", "keep me")
        assert changed.expires_at is not None
        changed = await ip_blocks.update_ip_block(session, created.id, ip="10.3.0.9/16",
                                                  expires_in=None)
        assert (changed.ip, changed.first_key[-8:], changed.expires_at) == (
            "10.3.0.0/16", "0a030000", None)
        with pytest.raises(ValidationFailed, match="already been taken"):
            await ip_blocks.update_ip_block(session, created.id, ip=other.ip)
        await session.rollback()
        with pytest.raises(ValidationFailed, match="Severity"):  # nothing half-changed
            await ip_blocks.update_ip_block(session, created.id, ip="10.9.0.0/16", severity="x")
        await session.rollback()
        assert (await ip_blocks.get_ip_block(session, created.id)).ip == "10.3.0.0/16"
        with pytest.raises(NotFound):
            await ip_blocks.update_ip_block(session, 12345, severity="no_access")
        found = await ip_blocks.find_ip_block(session, "10.3.7.7/16")
        assert found.id == created.id
        await ip_blocks.remove_ip_block(session, created.id)
        with pytest.raises(NotFound):
            await ip_blocks.remove_ip_block(session, created.id)
        with pytest.raises(NotFound):
            await ip_blocks.find_ip_block(session, "10.3.0.0/16")


def rows(*blocks: tuple[str, str, datetime | None]) -> list[tuple[str, str, str, datetime | None]]:
    """(first_key, last_key, severity, expires_at) rows as the database gives them."""
    from server.addresses import network_range, parse_network

    return [(*network_range(parse_network(ip)), severity, expires) for ip, severity, expires in blocks]


def test_the_strongest_containing_block_decides() -> None:
    matcher = IpBlockMatcher()
    matcher.load(rows(("10.0.0.0/8", "sign_up_requires_approval", None),
                      ("10.20.0.0/16", "no_access", None),
                      ("10.20.30.0/24", "sign_up_block", None),
                      ("192.0.2.5/32", "sign_up_block", None),
                      ("2001:db8::/32", "sign_up_block", None),
                      ("2001:db8:1::/48", "no_access", None)))
    assert matcher.lookup("10.1.2.3") == "sign_up_requires_approval"
    assert matcher.lookup("10.20.1.1") == "no_access"
    assert matcher.lookup("10.20.30.40") == "no_access"  # inside the /16 too: the strongest
    assert matcher.lookup("10.255.255.255") == "sign_up_requires_approval"
    assert matcher.lookup("11.0.0.0") is None
    assert matcher.lookup("9.255.255.255") is None
    assert matcher.lookup("192.0.2.5") == "sign_up_block"
    assert matcher.lookup("::ffff:192.0.2.5") == "sign_up_block"
    assert matcher.lookup("192.0.2.6") is None and matcher.lookup("192.0.2.4") is None
    assert matcher.lookup("2001:db8:ffff::1") == "sign_up_block"
    assert matcher.lookup("2001:DB8:1:2::3") == "no_access"
    assert matcher.lookup("2001:db9::1") is None
    assert matcher.lookup("::") is None
    assert matcher.lookup("testclient") is None and matcher.lookup("") is None


def test_adjacent_and_equal_networks_merge_without_gaps() -> None:
    matcher = IpBlockMatcher()
    matcher.load(rows(("192.0.2.0/25", "no_access", None), ("192.0.2.128/25", "no_access", None),
                      ("198.51.100.0/24", "sign_up_block", None),
                      ("198.51.100.0/24", "no_access", None)))
    # two runs (192.0.2.0/24 and 198.51.100.0/24), each a start and an end: no gap at .128
    assert matcher.count == 4
    assert matcher.lookup("192.0.2.127") == matcher.lookup("192.0.2.128") == "no_access"
    assert matcher.lookup("198.51.100.1") == "no_access"
    assert matcher.lookup("192.0.3.0") is None


def test_expired_blocks_are_ignored_and_an_expiry_makes_the_snapshot_stale() -> None:
    clock = Clock()
    matcher = IpBlockMatcher(ttl=10, clock=clock)
    now = datetime.fromtimestamp(clock.now, UTC)
    matcher.load(rows(("192.0.2.0/24", "no_access", now - timedelta(seconds=1)),
                      ("198.51.100.0/24", "no_access", now + timedelta(seconds=3))))
    assert matcher.lookup("192.0.2.1") is None
    assert matcher.lookup("198.51.100.1") == "no_access"
    clock.now += 2.5
    assert clock() < matcher._stale_at
    clock.now += 1
    assert clock() >= matcher._stale_at  # the block expired: a reload is due before the TTL


async def test_a_stale_matcher_reloads_and_the_changing_one_at_once(db: Database) -> None:
    clock = Clock()
    here, elsewhere = IpBlockMatcher(ttl=10, clock=clock), IpBlockMatcher(ttl=10, clock=clock)
    assert await here.severity_for(db, "203.0.113.9") is None
    assert await elsewhere.severity_for(db, "203.0.113.9") is None
    async with db.session() as session:
        created = await ip_blocks.create_ip_block(session, "203.0.113.0/24", "no_access",
                                                  matcher=here)
    assert await here.severity_for(db, "203.0.113.9") == "no_access"
    clock.now += 9
    assert await elsewhere.severity_for(db, "203.0.113.9") is None  # within its TTL
    clock.now += 1.5
    assert await elsewhere.severity_for(db, "203.0.113.9") == "no_access"

    async with db.session() as session:
        await ip_blocks.update_ip_block(session, created.id, severity="sign_up_block",
                                        matcher=here)
    assert await here.severity_for(db, "203.0.113.9") == "sign_up_block"
    async with db.session() as session:
        await ip_blocks.remove_ip_block(session, created.id, matcher=here)
    assert await here.severity_for(db, "203.0.113.9") is None
    clock.now += 11
    assert await elsewhere.severity_for(db, "203.0.113.9") is None


async def test_a_reload_under_way_cannot_undo_the_changing_processs_own(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A periodic reload that read the blocks before a change, and finishes after it, must
    not leave this process with the blocks as they were (the change's reload waits)."""
    import asyncio

    matcher = IpBlockMatcher(ttl=10)
    read, finish = asyncio.Event(), asyncio.Event()
    reload = matcher.reload

    async def slow_first_reload(session: Any) -> None:
        if read.is_set():
            await reload(session)
            return
        now = matcher.clock()
        rows = [tuple(row) for row in await session.execute(ip_blocks._active_blocks(utcnow()))]
        read.set()
        await finish.wait()  # the change commits meanwhile
        matcher.load(rows, now)

    monkeypatch.setattr(matcher, "reload", slow_first_reload)
    periodic = asyncio.create_task(matcher.refresh(db))
    await read.wait()

    async def change() -> None:
        async with db.session() as session:
            await ip_blocks.create_ip_block(session, "198.51.100.0/24", "no_access",
                                            matcher=matcher)

    changing = asyncio.create_task(change())
    await asyncio.sleep(0.05)
    finish.set()
    await asyncio.gather(periodic, changing)
    assert matcher.lookup("198.51.100.7") == "no_access"


async def test_a_change_whose_reload_fails_is_kept_and_reloaded_on_the_next_request(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    matcher = IpBlockMatcher(ttl=10)
    assert await matcher.severity_for(db, "198.51.100.7") is None

    async def broken(session: Any) -> None:
        raise OSError("the database went away")

    reload = matcher.reload
    monkeypatch.setattr(matcher, "reload", broken)
    created = await block(db, "198.51.100.0/24", "no_access", matcher=matcher)  # no error
    assert created.id
    monkeypatch.setattr(matcher, "reload", reload)
    assert await matcher.severity_for(db, "198.51.100.7") == "no_access"


async def test_a_block_expiring_in_the_database_stops_applying(db: Database) -> None:
    clock = Clock()
    matcher = IpBlockMatcher(ttl=10, clock=clock)
    await block(db, "203.0.113.0/24", "no_access", expires_in=5)
    assert await matcher.severity_for(db, "203.0.113.1") == "no_access"
    clock.now += 6
    assert await matcher.severity_for(db, "203.0.113.1") is None
    async with db.session() as session:
        assert len(await ip_blocks.list_ip_blocks(session)) == 1  # listed until removed


async def test_a_failed_reload_keeps_the_snapshot(db: Database,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    matcher = IpBlockMatcher(ttl=10, clock=clock)
    await block(db, "203.0.113.0/24", "no_access")
    assert await matcher.severity_for(db, "203.0.113.1") == "no_access"

    class Broken:
        def read_session(self) -> Any:
            raise OSError("the database is not answering")

    clock.now += 11
    assert await matcher.severity_for(Broken(), "203.0.113.1") == "no_access"  # type: ignore[arg-type]
    assert "could not reload the IP blocks" in caplog.text
    assert clock() < matcher._stale_at  # retried later, not on every request


def test_with_nothing_blocked_no_address_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    matcher = IpBlockMatcher()
    matcher.load([])

    def parsed(_text: str) -> str:
        raise AssertionError("an address was parsed")

    monkeypatch.setattr(ip_blocks, "address_key", parsed)
    assert matcher.lookup("192.0.2.1") is None


async def test_sign_up_severity_reads_the_database(db: Database) -> None:
    await block(db, "198.51.100.0/24", "sign_up_requires_approval")
    await block(db, "198.51.100.128/25", "sign_up_block")
    await block(db, "2001:db8::/64", "no_access", expires_in=60)
    async with db.session() as session:
        assert await ip_blocks.sign_up_severity(session, "198.51.100.1") == "sign_up_requires_approval"
        assert await ip_blocks.sign_up_severity(session, "198.51.100.200") == "sign_up_block"
        assert await ip_blocks.sign_up_severity(session, "2001:db8::5") == "no_access"
        assert await ip_blocks.sign_up_severity(session, "198.51.101.1") is None
        assert await ip_blocks.sign_up_severity(session, None) is None
        assert await ip_blocks.sign_up_severity(session, "unknown") is None
        await session.execute(update(IpBlock).where(IpBlock.ip == "2001:db8::/64").values(
            expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
        assert await ip_blocks.sign_up_severity(session, "2001:db8::5") is None
        assert await ip_blocks.remove_expired(session) == 1
    assert await block_count(db) == 2


async def test_two_admins_blocking_one_network_at_once_store_it_once(db: Database) -> None:
    """The network is unique in the database too: of two blocks of it made at the same
    time, one is stored and the other is refused as taken (never a 500, never two rows)."""
    import asyncio

    async def add() -> str:
        try:
            await block(db, "198.51.100.0/24", "no_access")
        except ValidationFailed as refused:
            return refused.message
        return "stored"

    outcomes = sorted(await asyncio.gather(add(), add()))
    assert outcomes == ["Validation failed: Ip has already been taken", "stored"]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(IpBlock)) == 1
