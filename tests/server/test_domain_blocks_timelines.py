"""Silence, as the public and hashtag timelines show it.

Given public statuses by a local artist and by accounts of three servers — one silenced,
one a subdomain of it with a milder block of its own, one not blocked — I expect the
anonymous public and hashtag timelines to leave out the silenced server's, a viewer who
follows a silenced account to see that account's, and the home timeline untouched.
"""

from __future__ import annotations

import httpx
import pytest

from server.db import Database
from server.models import User
from server.services import domain_blocks
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.api.test_timelines import Factory, ids


@pytest.fixture
def make(db: Database, settings: Settings) -> Factory:
    return Factory(db, settings)


async def block(db: Database, domain: str, severity: str) -> None:
    async with db.session() as session:
        await domain_blocks.block_domain(session, domain, own_domain="easel.test", severity=severity)


async def test_a_silenced_domain_is_left_out_of_public_timelines_unless_followed(
    client: httpx.AsyncClient, db: Database, make: Factory, alice: User, bob: User
) -> None:
    loud = await make.remote_account("loud", "loud.example")
    loud_port = await make.remote_account("other", "loud.example:8443")
    spared = await make.remote_account("spared", "ok.loud.example")
    calm = await make.remote_account("calm", "calm.example")
    local_post = await make.status(alice.account, "local #ink", tags=["ink"])
    loud_post = await make.status(loud, "loud #ink", tags=["ink"])
    loud_port_post = await make.status(loud_port, "loud on a port #ink", tags=["ink"])
    spared_post = await make.status(spared, "spared #ink", tags=["ink"])
    calm_post = await make.status(calm, "calm #ink", tags=["ink"])
    everything = [str(s.id) for s in (calm_post, spared_post, loud_port_post, loud_post, local_post)]
    assert ids(await client.get("/api/v1/timelines/public")) == everything

    await block(db, "loud.example", "silence")
    await block(db, "ok.loud.example", "noop")
    visible = [str(s.id) for s in (calm_post, spared_post, local_post)]
    assert ids(await client.get("/api/v1/timelines/public")) == visible
    assert ids(await client.get("/api/v1/timelines/tag/ink")) == visible
    assert ids(await client.get("/api/v1/timelines/public", params={"remote": "true"})) == visible[:2]
    assert ids(await client.get("/api/v1/timelines/public", params={"local": "true"})) == [str(local_post.id)]

    # bob follows loud: he sees loud's posts, not those of the other silenced account.
    await make.follow(bob.account, loud)
    async with authorized(client, await make_token(db, bob)) as bob_api:
        with_loud = [str(s.id) for s in (calm_post, spared_post, loud_post, local_post)]
        assert ids(await bob_api.get("/api/v1/timelines/public")) == with_loud
        assert ids(await bob_api.get("/api/v1/timelines/tag/ink")) == with_loud
        home = ids(await bob_api.get("/api/v1/timelines/home"))
        assert home == [str(loud_post.id)]
    async with authorized(client, await make_token(db, alice)) as alice_api:
        assert ids(await alice_api.get("/api/v1/timelines/public")) == visible

    # Lifted: everything is back for everyone.
    async with db.session() as session:
        await domain_blocks.unblock_domain(session, "loud.example")
    assert ids(await client.get("/api/v1/timelines/public")) == everything


async def test_a_suspended_domain_is_left_out_too_and_a_noop_block_changes_nothing(
    client: httpx.AsyncClient, db: Database, make: Factory
) -> None:
    gone = await make.remote_account("gone", "gone.example")
    media_only = await make.remote_account("pics", "pics.example")
    gone_post = await make.status(gone, "from a suspended server")
    pics_post = await make.status(media_only, "from a server whose media are rejected")
    await block(db, "gone.example", "suspend")
    async with db.session() as session:
        await domain_blocks.block_domain(session, "pics.example", own_domain="easel.test",
                                         severity="noop", reject_media=True)
    assert ids(await client.get("/api/v1/timelines/public")) == [str(pics_post.id)]
    assert str(gone_post.id) not in ids(await client.get("/api/v1/timelines/public",
                                                         params={"remote": "1"}))
