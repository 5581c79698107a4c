"""Domain blocks, as every read path shows them (``server.services.visibility``).

Given a work by an artist of another server, I expect a suspension of her domain (or of a
parent of it; one without a port covers every port) to take her work out of every surface —
the status and work endpoints, her statuses, browsing by tags in the API and on the web,
the tag page — for everyone, while a more specific milder block, or a block of another
domain or port, leaves it where it was. A silence keeps her work out of browsing, as out
of the public timelines, except for her followers, while her status itself stays
readable.
"""

from __future__ import annotations

import httpx
import pytest

from server.db import Database
from server.models import Follow, User
from server.services import domain_blocks
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.web.works import NewWork, add_work, remote_account

INK = NewWork(title="Heron at dusk", text="A heron #inktober", tags={"medium": ["Ink"]})


async def block(db: Database, domain: str, severity: str) -> None:
    async with db.session() as session:
        await domain_blocks.block_domain(session, domain, own_domain="easel.test", severity=severity)


async def shown(api: httpx.AsyncClient, status_id: int, account_id: int) -> dict[str, bool]:
    """Where the work ``status_id`` of ``account_id`` shows for ``api``'s reader."""

    async def listed(path: str, **params: str) -> bool:
        response = await api.get(path, params=params)
        assert response.status_code == 200, response.text
        return str(status_id) in [entity["id"] for entity in response.json()]

    return {
        "status": (await api.get(f"/api/v1/statuses/{status_id}")).status_code == 200,
        "work": (await api.get(f"/api/v1/easel/works/{status_id}")).status_code == 200,
        "statuses": await listed(f"/api/v1/accounts/{account_id}/statuses"),
        "browse": await listed("/api/v1/easel/works", **{"medium[]": "Ink"}),
        "all works": await listed("/api/v1/easel/works"),
        "web browse": INK.title in (await api.get("/works", params={"medium": "Ink"})).text,
        "tag page": INK.title in (await api.get("/tags/ink")).text,
    }


def everywhere(value: bool) -> dict[str, bool]:
    return dict.fromkeys(("status", "work", "statuses", "browse", "all works", "web browse",
                          "tag page"), value)


@pytest.mark.parametrize("domain", ["bad.example", "art.bad.example:8443", "in.the.art.bad.example"])
async def test_a_suspended_domain_s_work_is_shown_nowhere(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, db: Database, settings: Settings,
    domain: str
) -> None:
    rita = await remote_account(db, domain=domain)
    work = await add_work(db, settings, rita, INK)
    for api in (client, alice_api):
        assert await shown(api, work.id, rita.id) == everywhere(True)

    await block(db, "bad.example", "suspend")
    for api in (client, alice_api):
        assert await shown(api, work.id, rita.id) == everywhere(False)

    # The most specific block decides: a silence of her own server (or the block changed
    # to one) spares her work, out of public lists only.
    await block(db, domain, "silence")
    assert await shown(alice_api, work.id, rita.id) == {
        **everywhere(True), "browse": False, "all works": False, "web browse": False,
        "tag page": False}
    async with db.session() as session:
        for blocked in {domain, "bad.example"}:
            await domain_blocks.unblock_domain(session, blocked)
    assert await shown(client, work.id, rita.id) == everywhere(True)


async def test_blocks_of_other_domains_or_ports_leave_a_work_alone(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    rita = await remote_account(db, domain="art.example")
    work = await add_work(db, settings, rita, INK)
    for other in ("t.example", "rt.example", "art.example:8443", "sub.art.example",
                  "art.example.net"):
        await block(db, other, "suspend")
    assert await shown(client, work.id, rita.id) == everywhere(True)


async def test_a_silenced_domain_s_work_is_left_out_of_browsing_except_for_followers(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, db: Database, settings: Settings,
    alice: User, bob: User
) -> None:
    rita = await remote_account(db, domain="quiet.example")
    work = await add_work(db, settings, rita, INK)
    await block(db, "quiet.example", "silence")
    out_of_lists = {**everywhere(True), "browse": False, "all works": False,
                    "web browse": False, "tag page": False}
    for api in (client, alice_api):
        assert await shown(api, work.id, rita.id) == out_of_lists
    async with db.session() as session:
        session.add(Follow(account_id=bob.account.id, target_account_id=rita.id))
        await session.commit()
    async with authorized(client, await make_token(db, bob)) as bob_api:
        # (The web pages are read signed out here: bearer tokens do not sign in to them.)
        assert await shown(bob_api, work.id, rita.id) == {
            **everywhere(True), "web browse": False, "tag page": False}
