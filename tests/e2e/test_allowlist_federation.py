"""Allowlist federation mode across two instances (``EASEL_FEDERATION_MODE=allowlist`` on
both), through the client and admin APIs.

Given alice on art.example and bob on paint.example, with no domain allowed: I expect
alice's search for bob to find nothing and nothing to travel between the two. When
paint.example's moderator allows art.example (``/api/v1/admin/domain_allows``) but
art.example does not allow paint.example, art.example still refuses paint.example.
Once both allow each other, alice finds and follows bob and his post reaches her home;
when paint.example removes its allow, alice's like no longer arrives.
"""

from __future__ import annotations

from typing import Any

import pytest

from server.models import User
from server.settings import Settings
from tests.conftest import make_token
from tests.e2e.conftest import Instance, Network, Person, settle
from tests.e2e.test_two_instances import home, me, ok, post, resolve_account, resolve_status

ADMIN_SCOPES = "read write admin:read admin:write"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_changes(federation_mode="allowlist")


@pytest.fixture
async def alice(art: Instance) -> Person:
    return await art.person("alice")


@pytest.fixture
async def bob(paint: Instance) -> Person:
    return await paint.person("bob")


async def admin_client(instance: Instance) -> Any:
    person = await instance.person("moira")
    async with instance.db.session() as session:
        user = await session.get(User, person.user.id)
        assert user is not None
        user.admin = True
        await session.commit()
    return instance.client(await make_token(instance.db, person.user, ADMIN_SCOPES))


async def test_only_allowed_domains_federate(
        art: Instance, paint: Instance, network: Network, alice: Person, bob: Person) -> None:
    found = await ok(await alice.api.get("/api/v2/search", params={
        "q": f"@{bob.handle}", "resolve": "true", "type": "accounts"}))
    assert found["accounts"] == []
    assert network.posted_to("paint.example") == []

    paint_admin, art_admin = await admin_client(paint), await admin_client(art)
    allow = await ok(await paint_admin.post("/api/v1/admin/domain_allows",
                                            json={"domain": "art.example"}))
    found = await ok(await alice.api.get("/api/v2/search", params={
        "q": f"@{bob.handle}", "resolve": "true", "type": "accounts"}))
    assert found["accounts"] == []  # art.example itself does not allow paint.example yet

    await ok(await art_admin.post("/api/v1/admin/domain_allows", json={"domain": "paint.example"}))
    bob_there = await resolve_account(alice, bob.handle)
    await ok(await alice.api.post(f"/api/v1/accounts/{bob_there['id']}/follow"))
    await settle(art, paint)
    assert (await me(bob))["followers_count"] == 1
    hello = await post(bob, status="hello, allowed friends")
    await settle(art, paint)
    assert [s["uri"] for s in await home(alice)] == [hello["uri"]]

    await ok(await paint_admin.delete(f"/api/v1/admin/domain_allows/{allow['id']}"))
    copy = await resolve_status(alice, hello["uri"])
    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/favourite"))
    await settle(art, paint)
    seen = await ok(await bob.api.get(f"/api/v1/statuses/{hello['id']}"))
    assert seen["favourites_count"] == 0
