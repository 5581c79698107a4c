"""The profile directory (``GET /api/v1/directory``): discoverable accounts, most recently
active or newest first, without the suspended, silenced and hidden ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from server.db import Database
from server.ids import utcnow
from server.models import Account, DomainBlock, User
from server.services.accounts import create_user, instance_actor
from server.settings import Settings
from tests.conftest import authorized, make_token


async def user(db: Database, settings: Settings, name: str, **extra: Any) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username=name, email=f"{name}@example.com",
                                 password=f"the password of {name}", **extra)


async def remote(db: Database, name: str, domain: str = "remote.example") -> Account:
    async with db.session() as session:
        account = Account(username=name, username_key=name, domain=domain,
                          uri=f"https://{domain}/users/{name}", url=f"https://{domain}/@{name}",
                          inbox_url=f"https://{domain}/users/{name}/inbox")
        session.add(account)
        await session.commit()
        return account


async def change(db: Database, account_id: int, **values: Any) -> None:
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == account_id).values(**values))
        await session.commit()


async def listed(api: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await api.get("/api/v1/directory", params=params)
    assert response.status_code == 200, response.text
    return [a["acct"] for a in response.json()]


@pytest.fixture
async def people(db: Database, settings: Settings, alice: User, bob: User) -> dict[str, int]:
    """alice, bob, carol (local) and rita (remote): carol posted last, then rita, then
    alice; bob never posted. Signed up in the order rita, alice, bob, carol."""
    carol = await user(db, settings, "carol")
    rita = await remote(db, "rita")
    now = utcnow()
    ids = {"alice": alice.account_id, "bob": bob.account_id, "carol": carol.account_id,
           "rita": rita.id}
    for name, created, posted in (("rita", 4, 2), ("alice", 3, 3), ("bob", 2, None),
                                  ("carol", 1, 1)):
        await change(db, ids[name], created_at=now - timedelta(days=created),
                     last_status_at=None if posted is None else now - timedelta(hours=posted))
    return ids


async def test_active_order_is_by_latest_status_with_silent_accounts_last(
        client: httpx.AsyncClient, people: dict[str, int]) -> None:
    assert await listed(client) == ["carol", "rita@remote.example", "alice", "bob"]
    assert await listed(client, order="active") == ["carol", "rita@remote.example", "alice", "bob"]
    first = (await client.get("/api/v1/directory")).json()[0]
    assert first["id"] == str(people["carol"]) and first["username"] == "carol"
    assert "discoverable" in first and "followers_count" in first


async def test_new_order_is_by_sign_up_newest_first(
        client: httpx.AsyncClient, people: dict[str, int]) -> None:
    assert await listed(client, order="new") == ["carol", "bob", "alice", "rita@remote.example"]


async def test_local_keeps_this_servers_accounts(
        client: httpx.AsyncClient, people: dict[str, int]) -> None:
    assert await listed(client, local="true") == ["carol", "alice", "bob"]
    assert await listed(client, local="true", order="new") == ["carol", "bob", "alice"]
    assert await listed(client, local="false") == ["carol", "rita@remote.example", "alice", "bob"]


async def test_offset_and_limit_page_through(
        client: httpx.AsyncClient, people: dict[str, int]) -> None:
    assert await listed(client, limit=2) == ["carol", "rita@remote.example"]
    assert await listed(client, limit=2, offset=2) == ["alice", "bob"]
    assert await listed(client, offset=3) == ["bob"]
    assert await listed(client, offset=10) == []
    assert await listed(client, limit=500) == await listed(client)  # at most 80, as Mastodon
    assert await listed(client, order="new", limit=1, offset=1) == ["bob"]


async def test_only_discoverable_listed_accounts_that_are_neither_suspended_nor_silenced(
        client: httpx.AsyncClient, db: Database, settings: Settings,
        people: dict[str, int]) -> None:
    await change(db, people["alice"], discoverable=False)
    await change(db, people["bob"], silenced_at=utcnow())
    await change(db, people["carol"], suspended_at=utcnow())
    assert await listed(client) == ["rita@remote.example"]

    await user(db, settings, "waiting", approved=False)  # not approved yet: not listed
    await user(db, settings, "unconfirmed", confirmed=False)
    moved = await remote(db, "moved")
    await change(db, moved.id, moved_to_account_id=people["rita"])
    async with db.session() as session:
        actor = await instance_actor(session, settings)
    await change(db, actor.id, discoverable=True)  # even so: no one's profile
    assert await listed(client) == ["rita@remote.example"]


async def test_accounts_of_silenced_or_suspended_domains_are_left_out(
        client: httpx.AsyncClient, db: Database, people: dict[str, int]) -> None:
    await remote(db, "sam", "quiet.example")
    await remote(db, "sue", "gone.example")
    await remote(db, "pat", "ok.example")
    async with db.session() as session:
        session.add_all([DomainBlock(domain="quiet.example", severity="silence"),
                         DomainBlock(domain="gone.example", severity="suspend"),
                         DomainBlock(domain="ok.example", severity="noop")])
        await session.commit()
    remote_ones = [acct for acct in await listed(client) if "@" in acct]
    assert sorted(remote_ones) == ["pat@ok.example", "rita@remote.example"]


async def test_a_viewer_does_not_see_whom_it_blocks_mutes_or_is_blocked_by(
        client: httpx.AsyncClient, db: Database, settings: Settings, alice: User,
        people: dict[str, int]) -> None:
    dave = await user(db, settings, "dave")
    await change(db, dave.account_id, created_at=utcnow() - timedelta(days=9))
    async with authorized(client, await make_token(db, alice)) as as_alice:
        assert await listed(as_alice, order="new") == [
            "carol", "bob", "alice", "rita@remote.example", "dave"]
        assert (await as_alice.post(f"/api/v1/accounts/{people['bob']}/block")).status_code == 200
        assert (await as_alice.post(f"/api/v1/accounts/{people['carol']}/mute")).status_code == 200
        assert (await as_alice.post("/api/v1/domain_blocks",
                                    data={"domain": "remote.example"})).status_code == 200
        async with authorized(client, await make_token(db, dave)) as as_dave:
            assert (await as_dave.post(f"/api/v1/accounts/{people['alice']}/block")
                    ).status_code == 200
            assert await listed(as_dave, order="new") == [
                "carol", "bob", "rita@remote.example", "dave"]
        assert await listed(as_alice, order="new") == ["alice"]
    # Without a token, everyone discoverable is there.
    assert await listed(client, order="new") == [
        "carol", "bob", "alice", "rita@remote.example", "dave"]


async def test_a_token_without_read_scope_is_refused(
        client: httpx.AsyncClient, db: Database, alice: User) -> None:
    async with authorized(client, await make_token(db, alice, "write")) as writer:
        response = await writer.get("/api/v1/directory")
    assert response.status_code == 403 and "error" in response.json()
    async with authorized(client, "not a token") as stranger:
        assert (await stranger.get("/api/v1/directory")).status_code == 401


@pytest.mark.parametrize("query", ["order=foo", "limit=abc", "offset=-1", "offset=x",
                                   "local=maybe",
                                   "limit=99999999999999999999"])
async def test_bad_parameters_are_422s(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/api/v1/directory?{query}")
    assert response.status_code == 422, (query, response.text)
    assert isinstance(response.json()["error"], str)
