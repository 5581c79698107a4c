"""Remote mentions at post time: ``@user@host`` looked up before the status is created.

Given remote servers that know some handles, when a local user posts mentioning them, I
expect the known ones linked and mentioned, the unknown ones left as text, at most
MAX_LOOKUPS lookups per post, a slow server cut off at the deadline — and the post made
in every case.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from federation import mentions
from federation.context import FederationContext
from federation.mentions import MAX_LOOKUPS, resolve_unknown_mentions
from server.models import DomainBlock
from server.settings import Settings
from tests.federation.fediverse import Fediverse


@pytest.fixture
def fediverse() -> Fediverse:
    remote = Fediverse()
    remote.corpus_authors()
    return remote


@pytest.fixture
async def remote(app: Any, settings: Settings, fediverse: Fediverse
                 ) -> FederationContext:
    # Installed for the app's database: the app closes it when it stops (after its
    # workers, which may still be delivering).
    return fediverse.context(settings, app.state.easel.db)


def webfinger_lookups(fediverse: Fediverse) -> int:
    return sum(1 for r in fediverse.requests if r.url.path == "/.well-known/webfinger")


async def test_a_post_links_a_remote_handle_it_looked_up_and_leaves_unknown_ones_as_text(
        remote: FederationContext, fediverse: Fediverse, alice_api: httpx.AsyncClient,
        bob: Any) -> None:
    text = "new work for @carol@mastodon.example, @nobody@mastodon.example and @bob"
    response = await alice_api.post("/api/v1/statuses", data={"status": text})
    assert response.status_code == 200, response.text
    status = response.json()

    assert sorted(m["acct"] for m in status["mentions"]) == ["bob", "carol@mastodon.example"]
    assert 'href="https://mastodon.example/@carol"' in status["content"]
    assert "@nobody@mastodon.example" in status["content"]
    assert webfinger_lookups(fediverse) == 2

    # Carol is known now: the next post does not look her up again.
    again = await alice_api.post("/api/v1/statuses",
                                 data={"status": "more for @carol@mastodon.example"})
    assert [m["acct"] for m in again.json()["mentions"]] == ["carol@mastodon.example"]
    assert webfinger_lookups(fediverse) == 2


async def test_own_handles_are_never_looked_up(
        remote: FederationContext, fediverse: Fediverse, alice_api: httpx.AsyncClient,
        bob: Any) -> None:
    response = await alice_api.post("/api/v1/statuses",
                                    data={"status": "hi @bob@easel.test and @ghost@easel.test"})
    assert [m["acct"] for m in response.json()["mentions"]] == ["bob"]
    assert fediverse.requests == []


async def test_lookups_are_bounded_in_number(
        remote: FederationContext, fediverse: Fediverse) -> None:
    text = " ".join(f"@user{i}@many.example" for i in range(MAX_LOOKUPS + 5))
    assert await resolve_unknown_mentions(remote, text) == []
    assert webfinger_lookups(fediverse) == MAX_LOOKUPS


async def test_a_slow_server_is_cut_off_and_the_post_is_made(
        remote: FederationContext, fediverse: Fediverse, alice_api: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fediverse.silent_hosts.add("slow.example")
    # Long enough for carol's lookup on a loaded machine (0.2 s was not, under a
    # concurrent test run); the silent host only ever answers the deadline.
    monkeypatch.setattr(mentions, "LOOKUP_TIMEOUT", 2.0)

    response = await alice_api.post("/api/v1/statuses", data={
        "status": "@carol@mastodon.example and @sloth@slow.example"})
    assert response.status_code == 200
    assert [m["acct"] for m in response.json()["mentions"]] == ["carol@mastodon.example"]
    assert "@sloth@slow.example" in response.json()["content"]


async def test_suspended_hosts_are_not_asked_unless_a_more_specific_block_exempts_them(
        remote: FederationContext, fediverse: Fediverse, app: Any) -> None:
    async with app.state.easel.db.session() as session:
        session.add(DomainBlock(domain="example", severity="suspend"))
        session.add(DomainBlock(domain="gts.example", severity="noop"))
        await session.commit()
    found = await resolve_unknown_mentions(
        remote, "for @carol@mastodon.example and @erin@gts.example")
    assert [account.acct() for account in found] == ["erin@gts.example"]
    assert {r.url.host for r in fediverse.requests} == {"gts.example"}
