"""``GET /api/v2/search``: accounts, hashtags and statuses, by query or by URL, with
Mastodon's input rules (``q`` required, no anonymous offset or resolve)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from server.db import Database
from server.models import User
from server.settings import Settings
from tests.server.api.test_timelines import Factory, scoped_client


@pytest.fixture
def make(db: Database, settings: Settings) -> Factory:
    return Factory(db, settings)


async def search(api: httpx.AsyncClient, q: str, **params: Any) -> dict[str, Any]:
    response = await api.get("/api/v2/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"accounts", "statuses", "hashtags"}
    return body


def names(body: dict[str, Any]) -> list[str]:
    return [account["acct"] for account in body["accounts"]]


def status_ids(body: dict[str, Any]) -> list[str]:
    return [status["id"] for status in body["statuses"]]


# --------------------------------------------------------------------------- accounts


async def test_accounts_are_found_by_username_display_name_and_handle(
    make: Factory, client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    await make.user("alicia", display_name="Alicia Moreau")
    await make.user("painter", display_name="Sea Painter")

    assert names(await search(client, "ali"))[0:2] == ["alice", "alicia"]
    assert names(await search(client, "alice")) == ["alice"]
    assert names(await search(client, "@alice@easel.test")) == ["alice"]
    assert names(await search(client, "@alice@elsewhere.example")) == []
    assert names(await search(client, "painter")) == ["painter"]
    assert names(await search(client, "sea")) == ["painter"]
    assert names(await search(client, "nobody")) == []


async def test_following_keeps_the_accounts_the_viewer_follows(
    make: Factory, alice_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    bobby = (await make.user("bobby")).account
    await make.follow(alice.account, bobby)
    assert names(await search(alice_api, "bob")) == ["bob", "bobby"]
    assert names(await search(alice_api, "bob", following="true")) == ["bobby"]


# --------------------------------------------------------------------------- hashtags


async def test_hashtags_are_found_by_prefix_shortest_first(
    make: Factory, client: httpx.AsyncClient, alice: User
) -> None:
    await make.status(alice.account, "studies", tags=("Watercolour", "water", "waterfall", "ink"))
    await make.status(alice.account, "draft", tags=("waterproof",), published=False)
    await make.status(alice.account, "secret", tags=("watergate",), visibility="direct")
    body = await search(client, "#Water")
    assert [tag["name"] for tag in body["hashtags"]] == ["water", "waterfall", "Watercolour"]
    assert body["hashtags"][0]["url"] == "https://easel.test/tags/water"
    assert [t["name"] for t in (await search(client, "１００%"))["hashtags"]] == []  # % is literal
    assert [t["name"] for t in (await search(client, "wat", type="hashtags", limit="1"))["hashtags"]] \
        == ["water"]


# --------------------------------------------------------------------------- statuses


async def test_a_local_status_is_found_by_its_url_or_uri_if_visible(
    make: Factory, client: httpx.AsyncClient, alice_api: httpx.AsyncClient,
    bob_api: httpx.AsyncClient, alice: User, bob: User,
) -> None:
    public = await make.status(alice.account, "a public work")
    private = await make.status(alice.account, "followers only", visibility="private")

    for q in (public.url, public.uri):
        body = await search(client, q)
        assert status_ids(body) == [str(public.id)]
        assert body["accounts"] == [] and body["hashtags"] == []
    assert status_ids(await search(alice_api, private.url)) == [str(private.id)]
    assert status_ids(await search(bob_api, private.url)) == []
    assert status_ids(await search(client, private.uri)) == []
    # A URL of a status that is not in the url column still names it by its path.
    assert status_ids(await search(client, f"https://easel.test/@alice/{public.id}/")) == [
        str(public.id)]
    assert status_ids(await search(client, f"https://easel.test/@bob/{public.id}")) == []
    # type=accounts asks for no statuses; the profile URL finds the account.
    assert (await search(client, public.url, type="accounts"))["statuses"] == []
    assert names(await search(client, "https://easel.test/@alice")) == ["alice"]
    assert names(await search(client, "https://easel.test/users/alice")) == ["alice"]


async def test_full_text_search_covers_what_mastodon_lets_the_viewer_search(
    make: Factory, alice_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    a, b = alice.account, bob.account
    opted_in = (await make.user("indie", indexable=True)).account
    own = await make.status(a, "My Sunset study")
    favourited = await make.status(b, "bob's sunset")
    bookmarked = await make.status(b, "another sunset by bob")
    mentioned = await make.status(b, "@alice look at this sunset", mentions=[a])
    replied_to = await make.status(b, "sunset over the sea")
    await make.status(a, "@bob lovely", reply_to=replied_to)
    boosted = await make.status(b, "sunset, boosted")
    await make.status(a, reblog_of=boosted)
    indexable = await make.status(opted_in, "SUNSET from an indexable account")
    await make.status(opted_in, "sunset unlisted", visibility="unlisted")
    await make.status(b, "a sunset nobody interacted with")
    await make.favourite(a, favourited)
    await make.bookmark(a, bookmarked)

    body = await search(alice_api, "sunset")
    assert status_ids(body) == [str(s.id) for s in (
        indexable, boosted, replied_to, mentioned, bookmarked, favourited, own)]
    assert body["statuses"][0]["content"] == "<p>SUNSET from an indexable account</p>"
    # Every word must appear; case does not matter.
    assert status_ids(await search(alice_api, "SEA sunset")) == [str(replied_to.id)]
    assert status_ids(await search(alice_api, "sunset", account_id=str(b.id))) == [
        str(s.id) for s in (boosted, replied_to, mentioned, bookmarked, favourited)]
    assert status_ids(await search(alice_api, "sunset", account_id="bob")) == []
    # LIKE wildcards are literal.
    assert status_ids(await search(alice_api, "%")) == []
    assert status_ids(await search(alice_api, "_")) == []


async def test_full_text_search_needs_a_viewer_and_respects_visibility(
    make: Factory, client: httpx.AsyncClient, alice_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    writer = (await make.user("writer", indexable=True)).account
    await make.status(writer, "a public study")
    await make.status(writer, "a private study", visibility="private")
    await make.status(alice.account, "my draft study", published=False)
    assert (await search(client, "study"))["statuses"] == []
    found = await search(alice_api, "study")
    assert [s["content"] for s in found["statuses"]] == ["<p>my draft study</p>",
                                                          "<p>a public study</p>"]


async def test_type_fills_only_its_list_and_offset_pages_it(
    make: Factory, alice_api: httpx.AsyncClient, alice: User
) -> None:
    await make.user("inky")
    posts = [await make.status(alice.account, f"ink drawing {n}", tags=("inktober",) if n == 0 else ())
             for n in range(3)]

    everything = await search(alice_api, "ink")
    assert names(everything) == ["inky"]
    assert [t["name"] for t in everything["hashtags"]] == ["inktober"]
    assert len(everything["statuses"]) == 3

    statuses_only = await search(alice_api, "ink", type="statuses", limit="2")
    assert statuses_only["accounts"] == [] and statuses_only["hashtags"] == []
    assert status_ids(statuses_only) == [str(posts[2].id), str(posts[1].id)]
    second = await search(alice_api, "ink", type="statuses", limit="2", offset="2")
    assert status_ids(second) == [str(posts[0].id)]
    accounts_only = await search(alice_api, "ink", type="accounts")
    assert names(accounts_only) == ["inky"] and accounts_only["statuses"] == []
    hashtags_only = await search(alice_api, "ink", type="hashtags")
    assert hashtags_only["accounts"] == [] and hashtags_only["statuses"] == []
    # Without a type the offset is ignored, as Mastodon does.
    assert len((await search(alice_api, "ink", offset="2"))["statuses"]) == 3
    unknown = await search(alice_api, "ink", type="emoji")
    assert unknown == {"accounts": [], "statuses": [], "hashtags": []}


async def test_a_handle_query_skips_hashtags_and_statuses(
    make: Factory, alice_api: httpx.AsyncClient, alice: User
) -> None:
    await make.status(alice.account, "write to @alice@easel.test")
    body = await search(alice_api, "@alice@easel.test")
    assert names(body) == ["alice"] and body["statuses"] == [] and body["hashtags"] == []
    assert (await search(alice_api, "#alice"))["accounts"] == []


# ------------------------------------------------------------------------ bad input


async def test_search_input_rules(
    client: httpx.AsyncClient, db: Database, alice_api: httpx.AsyncClient, alice: User
) -> None:
    missing = await client.get("/api/v2/search")
    assert missing.status_code == 400
    assert missing.json() == {"error": "param is missing or the value is empty: q"}
    assert (await client.get("/api/v2/search", params={"q": "  "})).status_code == 400

    paged = await client.get("/api/v2/search", params={"q": "a", "offset": "5"})
    assert paged.status_code == 401
    assert paged.json() == {
        "error": "Search queries pagination is not supported without authentication"}
    resolving = await client.get("/api/v2/search", params={"q": "a", "resolve": "true"})
    assert resolving.status_code == 401
    # With a token, resolve is accepted (and, until federation, resolves nothing remote).
    assert names(await search(alice_api, "alice", resolve="true")) == ["alice"]
    assert (await search(alice_api, "@zoe@remote.example", resolve="true"))["accounts"] == []

    bad_limit = await alice_api.get("/api/v2/search", params={"q": "a", "limit": "many"})
    assert bad_limit.status_code == 422
    assert bad_limit.json() == {"error": "Validation failed: limit must be a number"}
    assert (await alice_api.get("/api/v2/search",
                                params={"q": "a", "offset": "x", "type": "accounts"})).status_code == 422
    assert (await alice_api.get("/api/v2/search", params={"q": "a", "resolve": "perhaps"})).status_code \
        == 422
    clamped = await search(alice_api, "alice", limit="-3", offset="-1", type="accounts")
    assert names(clamped) == ["alice"]

    async with await scoped_client(client, db, alice, "write") as narrow:
        assert (await narrow.get("/api/v2/search", params={"q": "a"})).status_code == 403
    async with await scoped_client(client, db, alice, "read:search") as granular:
        assert (await granular.get("/api/v2/search", params={"q": "a"})).status_code == 200
