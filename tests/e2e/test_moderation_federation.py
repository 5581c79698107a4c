"""Moderation across two instances, through the admin API only.

Given alice on art.example and bob on paint.example, and a moderator on paint.example:
when alice reports bob with ``forward``, I expect the Flag to arrive on paint.example as a
report the moderator sees in ``/api/v1/admin/reports`` (reporter: art.example's instance
actor, target: bob, the reported status attached) and can resolve. When the moderator
suspends art.example through ``/api/v1/admin/domain_blocks``, alice's follow is cut,
art.example's activities are refused (a like changes nothing, a new follow never
arrives), nothing goes out to art.example; and with ``reject_reports`` (a noop block),
art.example's reports stop arriving while its likes still do.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from server.models import Report, User
from tests.conftest import make_token
from tests.e2e.conftest import Instance, Network, Person, settle
from tests.e2e.test_two_instances import follow, me, ok, post, resolve_account, resolve_status

ADMIN_SCOPES = "read write admin:read admin:write"
JSON = dict[str, Any]


@pytest.fixture
async def alice(art: Instance) -> Person:
    return await art.person("alice")


@pytest.fixture
async def bob(paint: Instance) -> Person:
    return await paint.person("bob")


@pytest.fixture
async def moderator(paint: Instance) -> Any:
    """paint.example's admin client."""
    person = await paint.person("moira")
    async with paint.db.session() as session:
        user = await session.get(User, person.user.id)
        assert user is not None
        user.admin = True
        await session.commit()
    return paint.client(await make_token(paint.db, person.user, ADMIN_SCOPES))


async def test_a_forwarded_report_arrives_in_the_admin_api_and_is_resolved(
        art: Instance, paint: Instance, alice: Person, bob: Person, moderator: Any) -> None:
    await follow(alice, bob, art, paint)
    offending = await post(bob, status="offending")
    await settle(art, paint)
    bob_there = await resolve_account(alice, bob.handle)
    copy = await resolve_status(alice, offending["uri"])
    await ok(await alice.api.post("/api/v1/reports", json={
        "account_id": bob_there["id"], "status_ids": [copy["id"]], "comment": "Not okay",
        "forward": True}))
    await settle(art, paint)

    [report] = await ok(await moderator.get("/api/v1/admin/reports"))
    assert report["account"]["username"] == "art.example"  # the instance actor, not alice
    assert report["account"]["domain"] == "art.example"
    assert report["target_account"]["id"] == bob.account_id
    assert report["comment"] == "Not okay"
    assert [s["id"] for s in report["statuses"]] == [offending["id"]]
    resolved = await ok(await moderator.post(f"/api/v1/admin/reports/{report['id']}/resolve"))
    assert resolved["action_taken"] is True
    assert await ok(await moderator.get("/api/v1/admin/reports")) == []


async def test_suspending_a_domain_through_the_admin_api_refuses_its_activities(
        art: Instance, paint: Instance, network: Network, alice: Person, bob: Person,
        moderator: Any) -> None:
    await follow(alice, bob, art, paint)
    original = await post(bob, status="before the block")
    await settle(art, paint)
    copy = await resolve_status(alice, original["uri"])

    block = await ok(await moderator.post("/api/v1/admin/domain_blocks", json={
        "domain": "art.example", "severity": "suspend", "private_comment": "abuse"}))
    assert block["severity"] == "suspend"
    assert (await me(bob))["followers_count"] == 0

    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/favourite"))
    await ok(await alice.api.post(f"/api/v1/accounts/{copy['account']['id']}/follow"))
    await settle(art, paint)
    seen = await ok(await bob.api.get(f"/api/v1/statuses/{original['id']}"))
    assert seen["favourites_count"] == 0
    assert (await me(bob))["followers_count"] == 0
    before = len(network.posted_to("art.example"))
    await post(bob, status="after the block")
    await settle(art, paint)
    assert len(network.posted_to("art.example")) == before

    # Lifted: art.example is heard again.
    await ok(await moderator.delete(f"/api/v1/admin/domain_blocks/{block['id']}"))
    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/unfavourite"))
    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/favourite"))
    await settle(art, paint)
    seen = await ok(await bob.api.get(f"/api/v1/statuses/{original['id']}"))
    assert seen["favourites_count"] == 1


async def test_reject_reports_stops_remote_reports_only(
        art: Instance, paint: Instance, alice: Person, bob: Person, moderator: Any) -> None:
    await follow(alice, bob, art, paint)
    original = await post(bob, status="hello")
    await settle(art, paint)
    copy = await resolve_status(alice, original["uri"])
    await ok(await moderator.post("/api/v1/admin/domain_blocks", json={
        "domain": "art.example", "severity": "noop", "reject_reports": True}))

    await ok(await alice.api.post("/api/v1/reports", json={
        "account_id": copy["account"]["id"], "comment": "meh", "forward": True}))
    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/favourite"))
    await settle(art, paint)
    async with paint.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Report)) == 0
    assert await ok(await moderator.get("/api/v1/admin/reports")) == []
    seen = await ok(await bob.api.get(f"/api/v1/statuses/{original['id']}"))
    assert seen["favourites_count"] == 1
