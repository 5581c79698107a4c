"""Allowlist federation mode and ``reject_reports``, at the inbox and for delivery.

Given an instance with ``EASEL_FEDERATION_MODE=allowlist``, I expect a delivery from
remote.example to be dropped (202, nothing stored, no fetch) until remote.example is
allowed, then accepted and processed; a subdomain of an allowed domain is allowed, any
other domain stays refused, and delivery filters audiences the same way (this server's own
domain is never refused). A domain blocked with ``reject_reports`` gets its Flags ignored
while its other activities still arrive.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from federation.domains import all_blocks, domain_policy
from server.db import Database
from server.models import InboxItem, Report, User
from server.services import domain_blocks
from server.settings import Settings
from tests.federation.fediverse import Fediverse
from tests.federation.inbox.conftest import FakeActor, deliver, process, stored


def follow(sender: FakeActor, alice: User) -> dict[str, object]:
    return sender.activity("Follow", alice.account.uri)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_changes(federation_mode="allowlist")


async def test_a_domain_not_allowed_is_dropped_until_it_is_allowed(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    response = await deliver(inbox_app, remote_carol, follow(remote_carol, alice))
    assert response.status_code == 202
    assert await stored(app_db) == (0, 0)
    assert fediverse.requests == []

    async with app_db.session() as session:
        await domain_blocks.allow_domain(session, "Remote.Example")
    response = await deliver(inbox_app, remote_carol, follow(remote_carol, alice))
    assert response.status_code == 202
    assert await stored(app_db) == (1, 1)
    await process(inbox_app)
    async with app_db.session() as session:
        item = await session.scalar(select(InboxItem))
        assert item is not None and item.outcome == "processed", item.note


async def test_delivery_and_policies_follow_the_allowlist(
        inbox_app: Starlette, app_db: Database, settings: Settings) -> None:
    async with app_db.session() as session:
        await domain_blocks.allow_domain(session, "allowed.example")
        blocks = await all_blocks(session)
        assert not blocks.suspends("https://allowed.example/inbox")
        assert not blocks.suspends("https://a.allowed.example:8443/inbox")
        assert blocks.suspends("https://other.example/inbox")
        assert not blocks.suspends(f"{settings.base_url}/users/alice")
        assert not (await domain_policy(session, "https://sub.allowed.example/x")).suspended
        refused = await domain_policy(session, "https://other.example/users/x")
        assert refused.suspended and refused.reject_media and refused.reject_reports
        assert not (await domain_policy(session, settings.base_url)).suspended
        # A block still applies to an allowed domain.
        await domain_blocks.block_domain(session, "allowed.example", own_domain=settings.domain,
                                         severity="suspend")
        assert (await domain_policy(session, "https://allowed.example/x")).suspended


async def test_reject_reports_drops_flags_but_not_other_activities(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        settings: Settings) -> None:
    async with app_db.session() as session:
        await domain_blocks.allow_domain(session, "remote.example")
        await domain_blocks.block_domain(session, "remote.example", own_domain=settings.domain,
                                         severity="noop", reject_reports=True)
    flag = remote_carol.activity("Flag", [alice.account.uri], content="hmm")
    assert (await deliver(inbox_app, remote_carol, flag)).status_code == 202
    assert (await deliver(inbox_app, remote_carol, follow(remote_carol, alice))).status_code == 202
    await process(inbox_app)
    async with app_db.session() as session:
        outcomes = {item.body["type"]: (item.outcome, item.note)
                    for item in await session.scalars(select(InboxItem))}
        assert outcomes["Flag"] == ("ignored", "reports from this domain are rejected (domain block)")
        assert outcomes["Follow"][0] == "processed"
        assert await session.scalar(select(Report)) is None


async def test_an_allow_removed_drops_deliveries_whose_key_is_already_known(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor) -> None:
    """With the signer's key in memory the intake decides for the batch; it must see the
    allowlist too, not only the blocks."""
    async with app_db.session() as session:
        allow = await domain_blocks.allow_domain(session, "remote.example")
    assert (await deliver(inbox_app, remote_carol, follow(remote_carol, alice))).status_code == 202
    assert await stored(app_db) == (1, 1)  # the key is known now
    async with app_db.session() as session:
        await domain_blocks.remove_domain_allow(session, allow.id)
    # A new activity (its own id), from the same signer: dropped, nothing stored.
    assert (await deliver(inbox_app, remote_carol, follow(remote_carol, alice))).status_code == 202
    assert await stored(app_db) == (1, 1)
