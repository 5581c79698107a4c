"""``GET /api/v2/search?resolve=true``: remote accounts and statuses found on demand.

Given fake remote servers (Mastodon-shaped: a profile at ``/@carol`` that answers AS2 with
the actor, a post at ``/@carol/123`` that answers with the Note), when a signed-in user
searches with ``resolve=true``, I expect the account or status stored and returned as
Mastodon would; when the remote is unreachable, refuses or lies about its origin, I expect
empty results and never an error; without ``resolve`` nothing is fetched.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from federation.context import FederationContext
from server.db import Database
from server.models import Account, DomainBlock, Status
from server.settings import Settings
from tests.federation.fediverse import CAROL, Fediverse, actor_doc, corpus_note

NOTE = "https://mastodon.example/users/carol/statuses/112233445566778899"
WEB_NOTE = "https://mastodon.example/@carol/112233445566778899"
PROFILE = "https://mastodon.example/@carol"


@pytest.fixture
def fediverse() -> Fediverse:
    remote = Fediverse()
    remote.corpus_authors()
    remote.serve(PROFILE, actor_doc(CAROL, "carol", web_url=PROFILE))
    note = corpus_note("mastodon_create_note.json")
    remote.serve(NOTE, note)
    remote.serve(WEB_NOTE, note)
    # A server on a port, known by a handle with that port.
    remote.person("https://ported.example:8443/users/dana", "dana")
    return remote


@pytest.fixture
async def remote(app: Any, settings: Settings, fediverse: Fediverse
                 ) -> FederationContext:
    """The app's federation context, over the fake network."""
    # Installed for the app's database: the app closes it when it stops (after its
    # workers, which may still be delivering).
    return fediverse.context(settings, app.state.easel.db)


async def search(api: httpx.AsyncClient, q: str, **params: Any) -> dict[str, Any]:
    response = await api.get("/api/v2/search", params={"q": q, "resolve": "true", **params})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize("q", ["carol@mastodon.example", "@carol@mastodon.example",
                               "@Carol@Mastodon.Example"])
async def test_a_handle_resolves_to_the_remote_account(
        remote: FederationContext, alice_api: httpx.AsyncClient, q: str) -> None:
    found = await search(alice_api, q)
    assert [a["acct"] for a in found["accounts"]] == ["carol@mastodon.example"]
    assert found["accounts"][0]["url"] == "https://mastodon.example/@carol"


async def test_a_handle_with_a_port_resolves(
        remote: FederationContext, alice_api: httpx.AsyncClient) -> None:
    found = await search(alice_api, "dana@ported.example:8443")
    assert [a["acct"] for a in found["accounts"]] == ["dana@ported.example:8443"]


async def test_a_profile_url_resolves_to_the_actor_it_serves(
        remote: FederationContext, fediverse: Fediverse, alice_api: httpx.AsyncClient,
        db: Database) -> None:
    found = await search(alice_api, PROFILE)
    assert [a["uri"] for a in found["accounts"]] == [CAROL]
    assert found["statuses"] == []
    # Known now: the next search by profile URL answers from the database.
    before = len(fediverse.requests)
    found = await search(alice_api, PROFILE)
    assert [a["uri"] for a in found["accounts"]] == [CAROL]
    assert len(fediverse.requests) == before


@pytest.mark.parametrize("url", [NOTE, WEB_NOTE])
async def test_a_status_url_resolves_to_the_stored_status(
        remote: FederationContext, alice_api: httpx.AsyncClient, db: Database, url: str) -> None:
    found = await search(alice_api, url)
    [status] = found["statuses"]
    assert status["uri"] == NOTE and status["url"] == WEB_NOTE
    assert status["account"]["acct"] == "carol@mastodon.example"
    assert len(status["media_attachments"]) == 2
    assert found["accounts"] == [] and found["hashtags"] == []
    # Stored and committed: the client can open it.
    opened = await alice_api.get(f"/api/v1/statuses/{status['id']}")
    assert opened.status_code == 200
    # type=accounts asks for something else: nothing.
    assert (await search(alice_api, url, type="accounts"))["statuses"] == []


async def test_failures_give_empty_results_and_store_nothing(
        remote: FederationContext, fediverse: Fediverse, alice_api: httpx.AsyncClient,
        db: Database) -> None:
    fediverse.status("https://down.example/@x/1", 503)
    fediverse.serve("https://evil.example/@carol/1", corpus_note("mastodon_create_note.json"))
    fediverse.serve("https://mastodon.example/tags/art", {"id": "https://mastodon.example/tags/art",
                                                           "type": "OrderedCollection"})
    empty: dict[str, list[Any]] = {"accounts": [], "statuses": [], "hashtags": []}
    for q in ("https://down.example/@x/1",          # 503
              "https://nowhere.example/@y/2",       # 404
              "https://evil.example/@carol/1",      # a note claiming another origin
              "https://mastodon.example/tags/art",  # neither an actor nor a note
              "nobody@mastodon.example",            # WebFinger does not know them
              "x@down.example"):
        assert await search(alice_api, q) == empty, q
    async with db.session() as session:
        assert list(await session.scalars(select(Status))) == []


async def test_suspended_domains_are_not_asked(
        remote: FederationContext, fediverse: Fediverse, alice_api: httpx.AsyncClient,
        db: Database) -> None:
    async with db.session() as session:
        session.add(DomainBlock(domain="mastodon.example", severity="suspend"))
        await session.commit()
    assert (await search(alice_api, NOTE))["statuses"] == []
    assert (await search(alice_api, "carol@mastodon.example"))["accounts"] == []
    assert fediverse.requests == []


async def test_without_resolve_nothing_is_fetched_and_anonymous_resolve_is_refused(
        remote: FederationContext, fediverse: Fediverse, alice_api: httpx.AsyncClient,
        client: httpx.AsyncClient, db: Database) -> None:
    response = await alice_api.get("/api/v2/search", params={"q": "carol@mastodon.example"})
    assert response.status_code == 200 and response.json()["accounts"] == []
    response = await alice_api.get("/api/v2/search", params={"q": NOTE, "resolve": "false"})
    assert response.status_code == 200 and response.json()["statuses"] == []
    response = await client.get("/api/v2/search", params={"q": NOTE, "resolve": "true"})
    assert response.status_code == 401
    assert fediverse.requests == []
    async with db.session() as session:
        assert await session.scalar(select(Account).where(Account.uri == CAROL)) is None


async def test_local_urls_still_answer_locally_with_resolve(
        remote: FederationContext, fediverse: Fediverse, alice_api: httpx.AsyncClient) -> None:
    posted = (await alice_api.post("/api/v1/statuses", data={"status": "local heron"})).json()
    found = await search(alice_api, posted["url"])
    assert [s["id"] for s in found["statuses"]] == [posted["id"]]
    assert fediverse.requests == []


async def test_v1_account_search_resolves_a_handle_only_when_asked(
        remote: FederationContext, alice_api: httpx.AsyncClient, db: Database) -> None:
    plain = await alice_api.get("/api/v1/accounts/search", params={"q": "carol@mastodon.example"})
    assert plain.status_code == 200 and plain.json() == []
    response = await alice_api.get("/api/v1/accounts/search",
                                   params={"q": "@carol@mastodon.example", "resolve": "true"})
    assert response.status_code == 200, response.text
    assert [a["acct"] for a in response.json()] == ["carol@mastodon.example"]
    async with db.session() as session:
        stored = await session.scalar(select(Account).where(Account.domain == "mastodon.example"))
    assert stored is not None and stored.username == "carol"


async def test_v1_account_search_with_an_unreachable_handle_is_empty(
        remote: FederationContext, alice_api: httpx.AsyncClient) -> None:
    response = await alice_api.get("/api/v1/accounts/search",
                                   params={"q": "nobody@unreachable.example", "resolve": "true"})
    assert response.status_code == 200 and response.json() == []
