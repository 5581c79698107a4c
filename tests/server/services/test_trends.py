"""Trends leave out what their reader may not see and what public lists leave out.

Given popular public statuses by local artists and by accounts of other servers, I expect
the trending statuses to leave out, for a signed-in reader, the authors it blocks, mutes or
is blocked by (as its public timeline does), and for everyone the accounts of silenced and
suspended domains — a more specific milder block sparing a subdomain — in statuses and tags
alike.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from server.db import Database
from server.models import Account, Block, Mute, Status, User
from server.services import domain_blocks, trends
from server.settings import Settings
from tests.server.api.test_timelines import Factory


@pytest.fixture
def make(db: Database, settings: Settings) -> Factory:
    return Factory(db, settings)


async def popular(db: Database, make: Factory, author: Account, tag: str) -> int:
    status = await make.status(author, f"#{tag}", tags=[tag])
    async with db.session() as session:
        await session.execute(update(Status).where(Status.id == status.id)
                              .values(favourites_count=1))
        await session.commit()
    return status.id


async def trending(db: Database, make: Factory,
                   viewer: Account | None = None) -> tuple[list[int], list[str]]:
    """The trending statuses (for ``viewer``) and tags, as of the factory's clock."""
    now = make.clock + timedelta(minutes=1)
    async with db.session() as session:
        found = await trends.trending_statuses(session, viewer=viewer, now=now)
        tags = await trends.trending_tags(session, now=now)
    return [s.id for s in found], sorted(t.tag.name for t in tags)


async def test_a_reader_does_not_see_trending_authors_it_blocks_mutes_or_is_blocked_by(
    db: Database, make: Factory, alice: User, bob: User
) -> None:
    carol = await make.user("carol")
    dave = await make.user("dave")
    alices = await popular(db, make, alice.account, "art")
    bobs = await popular(db, make, bob.account, "ink")
    daves = await popular(db, make, dave.account, "oil")
    everything = [daves, bobs, alices]
    assert (await trending(db, make, carol.account))[0] == everything

    await make.add(Block(account_id=alice.account.id, target_account_id=carol.account.id),
                   Block(account_id=carol.account.id, target_account_id=bob.account.id),
                   Mute(account_id=carol.account.id, target_account_id=dave.account.id))
    assert (await trending(db, make, carol.account))[0] == []
    assert (await trending(db, make, bob.account))[0] == everything
    assert (await trending(db, make))[0] == everything  # anonymous: nobody's blocks


async def test_accounts_of_silenced_and_suspended_domains_do_not_trend(
    db: Database, make: Factory, alice: User
) -> None:
    loud = await make.remote_account("loud", "loud.example")
    gone = await make.remote_account("gone", "art.gone.example:8443")
    spared = await make.remote_account("spared", "ok.gone.example")
    local = await popular(db, make, alice.account, "local")
    louds = await popular(db, make, loud, "loud")
    await popular(db, make, gone, "gone")
    spareds = await popular(db, make, spared, "spared")
    assert len((await trending(db, make))[0]) == 4

    async with db.session() as session:
        await domain_blocks.block_domain(session, "loud.example", own_domain="easel.test",
                                         severity="silence")
        await domain_blocks.block_domain(session, "gone.example", own_domain="easel.test",
                                         severity="suspend")
        await domain_blocks.block_domain(session, "ok.gone.example", own_domain="easel.test",
                                         severity="noop")
    assert await trending(db, make) == ([spareds, local], ["local", "spared"])
    # A follower of a silenced account still sees it in timelines, not in trends.
    await make.follow(alice.account, loud)
    assert (await trending(db, make, alice.account))[0] == [spareds, local]
    assert louds not in (await trending(db, make, alice.account))[0]
