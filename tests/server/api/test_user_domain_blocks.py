"""A user's domain blocks through the client API (``/api/v1/domain_blocks``), as Mastodon:
that domain's accounts leave the user's timelines, notifications and suggestions, the
follows between them end (ours undone, theirs rejected over federation), neither side may
follow the other, and the Relationship says ``domain_blocking``. Private: nothing else is
sent."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from server.db import Database
from server.ids import new_id, utcnow
from server.models import Account, AccountDomainBlock, Activity, Follow, Notification, Status, User
from tests.conftest import authorized, make_token
from tests.server.api.test_client_mastodon_py import Register, check_mode, register, server  # noqa: F401
from tests.server.web.works import remote_account


async def remote_post(db: Database, author: Account, text: str) -> str:
    async with db.session() as session:
        status_id = new_id()
        session.add(Status(id=status_id, account_id=author.id, local=False,
                           uri=f"{author.uri}/statuses/{status_id}", content=f"<p>{text}</p>",
                           visibility="public", published=True, published_at=utcnow()))
        await session.commit()
    return str(status_id)


async def public_ids(api: httpx.AsyncClient) -> list[str]:
    return [s["id"] for s in (await api.get("/api/v1/timelines/public")).json()]


async def blocked_domains(db: Database) -> list[str]:
    async with db.session() as session:
        return list(await session.scalars(select(AccountDomainBlock.domain)))


async def test_blocking_a_domain_hides_its_accounts_and_ends_follows_both_ways(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User, db: Database) -> None:
    dave = await remote_account(db, "dave", "remote.example")
    erin = await remote_account(db, "erin", "other.example")
    daves = await remote_post(db, dave, "from remote")
    erins = await remote_post(db, erin, "from elsewhere")
    async with db.session() as session:
        session.add(Follow(account_id=alice.account_id, target_account_id=dave.id,
                           uri=f"{alice.account.uri}#follows/1"))
        session.add(Follow(account_id=dave.id, target_account_id=alice.account_id,
                           uri=f"{dave.uri}#follows/2"))
        session.add(Notification(account_id=alice.account_id, from_account_id=dave.id,
                                 type="follow"))
        await session.commit()
    assert set(await public_ids(alice_api)) == {daves, erins}

    blocked = await alice_api.post("/api/v1/domain_blocks", data={"domain": "https://Remote.Example/@dave"})
    assert (blocked.status_code, blocked.json()) == (200, {})
    assert await blocked_domains(db) == ["remote.example"]
    assert await public_ids(alice_api) == [erins]
    assert set(await public_ids(bob_api)) == {daves, erins}  # only for her
    assert (await alice_api.get("/api/v1/notifications")).json() == []
    relationship = (await alice_api.get("/api/v1/accounts/relationships",
                                        params={"id[]": [str(dave.id), str(erin.id)]})).json()
    assert [(r["domain_blocking"], r["following"], r["followed_by"]) for r in relationship] \
        == [(True, False, False), (False, False, False)]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Follow)) == 0
        sent = sorted((a.type, a.object_uri) for a in await session.scalars(select(Activity)))
    assert sent == [("Reject", f"{dave.uri}#follows/2"),
                    ("Undo", f"{alice.account.uri}#follows/1")]
    refused = await alice_api.post(f"/api/v1/accounts/{dave.id}/follow")
    assert (refused.status_code, refused.json()) == (403, {"error": "This action is not allowed"})

    # Blocking again changes nothing; lifting it shows the domain again.
    again = await alice_api.post("/api/v1/domain_blocks", json={"domain": "remote.example"})
    assert again.status_code == 200
    assert await blocked_domains(db) == ["remote.example"]
    lifted = await alice_api.request("DELETE", "/api/v1/domain_blocks", params={"domain": "remote.example"})
    assert (lifted.status_code, lifted.json()) == (200, {})
    assert set(await public_ids(alice_api)) == {daves, erins}
    assert (await alice_api.post(f"/api/v1/accounts/{dave.id}/follow")).status_code == 200


async def test_the_list_is_the_domains_newest_first_paged_with_a_link(
        alice_api: httpx.AsyncClient) -> None:
    for domain in ("one.example", "two.example", "three.example"):
        assert (await alice_api.post("/api/v1/domain_blocks", data={"domain": domain})).status_code == 200
    listed = await alice_api.get("/api/v1/domain_blocks")
    assert listed.json() == ["three.example", "two.example", "one.example"]
    first = await alice_api.get("/api/v1/domain_blocks", params={"limit": "2"})
    assert first.json() == ["three.example", "two.example"]
    next_url = first.headers["link"].split(">")[0].lstrip("<")
    assert (await alice_api.get(next_url)).json() == ["one.example"]


async def test_bad_domain_block_requests_are_refused_clearly(
        alice_api: httpx.AsyncClient, client: httpx.AsyncClient, alice: User, db: Database) -> None:
    for body in ({}, {"domain": ""}, {"domain": "   "}):
        refused = await alice_api.post("/api/v1/domain_blocks", data=body)
        assert (refused.status_code, refused.json()) == \
            (422, {"error": "Validation failed: Domain can't be blank"})
        refused = await alice_api.request("DELETE", "/api/v1/domain_blocks", params=body)
        assert refused.status_code == 422
    for bad in ("not a domain", "exa mple.com", "http://", "x" * 300):
        refused = await alice_api.post("/api/v1/domain_blocks", data={"domain": bad})
        assert refused.status_code == 422 and refused.json()["error"].startswith("Validation failed"), bad
    assert await blocked_domains(db) == []
    assert (await client.get("/api/v1/domain_blocks")).status_code == 401
    assert (await client.post("/api/v1/domain_blocks", data={"domain": "a.example"})).status_code == 401
    async with authorized(client, await make_token(db, alice, "read")) as reader:
        refused = await reader.post("/api/v1/domain_blocks", data={"domain": "a.example"})
        assert refused.status_code == 403
    assert await blocked_domains(db) == []


def test_domain_blocks_through_mastodon_py(register: Register) -> None:  # noqa: F811
    alice = register("alice")
    alice.domain_block("spam.example")
    assert alice.domain_blocks() == ["spam.example"]
    alice.domain_unblock("spam.example")
    assert alice.domain_blocks() == []
