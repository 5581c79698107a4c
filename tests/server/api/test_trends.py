"""Trends (tags, statuses, links) and follow suggestions, computed from what is public."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from server.db import Database
from server.ids import utcnow
from server.models import Account, Status, User
from tests.conftest import authorized, make_token


async def post(api: httpx.AsyncClient, text: str, **extra: str) -> str:
    response = await api.post("/api/v1/statuses", data={"status": text, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def test_tags_trend_by_how_many_people_use_them_with_a_daily_history(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        client: httpx.AsyncClient, db: Database) -> None:
    for api in (alice_api, bob_api, carol_api):
        await post(api, "#Gouache today")
    for _ in range(3):
        await post(alice_api, "#Ink again")  # more uses, fewer people
    await post(bob_api, "#Ink too")
    await post(carol_api, "#Secret", visibility="unlisted")  # not public: not a trend
    old = await post(alice_api, "#Charcoal long ago")
    async with db.session() as session:
        await session.execute(update(Status).where(Status.id == int(old))
                              .values(created_at=utcnow() - timedelta(days=9)))
        await session.commit()
    answer = await client.get("/api/v1/trends/tags")
    assert answer.status_code == 200
    trending = answer.json()
    assert [t["name"] for t in trending] == ["Gouache", "Ink"]
    gouache = trending[0]
    assert gouache["url"].endswith("/tags/gouache") and len(gouache["history"]) == 7
    today = gouache["history"][0]
    assert (today["uses"], today["accounts"]) == ("3", "3") and today["day"].isdigit()
    assert all(day["uses"] == "0" for day in gouache["history"][1:])
    ink_today = trending[1]["history"][0]
    assert (ink_today["uses"], ink_today["accounts"]) == ("4", "2")
    assert [t["name"] for t in (await client.get("/api/v1/trends", params={"limit": 1})).json()] \
        == ["Gouache"]
    assert [t["name"] for t in (await client.get("/api/v1/trends/tags?offset=1")).json()] == ["Ink"]
    assert (await client.get("/api/v1/trends/tags?limit=abc")).status_code == 422


async def test_statuses_trend_by_boosts_and_favourites(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    quiet = await post(alice_api, "nobody noticed")
    liked = await post(alice_api, "a favourite")
    loved = await post(bob_api, "boosted and liked")
    await bob_api.post(f"/api/v1/statuses/{liked}/favourite")
    await alice_api.post(f"/api/v1/statuses/{loved}/favourite")
    await alice_api.post(f"/api/v1/statuses/{loved}/reblog")
    ids = [s["id"] for s in (await client.get("/api/v1/trends/statuses")).json()]
    assert ids == [loved, liked] and quiet not in ids
    assert (await client.get("/api/v1/trends/links")).json() == []


async def test_suggestions_are_the_most_followed_accounts_not_yet_followed(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        client: httpx.AsyncClient, alice: User, bob: User, carol: User) -> None:
    await alice_api.post(f"/api/v1/accounts/{carol.account_id}/follow")
    await bob_api.post(f"/api/v1/accounts/{carol.account_id}/follow")
    suggested = (await alice_api.get("/api/v2/suggestions")).json()
    assert [s["account"]["id"] for s in suggested] == [str(bob.account_id)]  # carol: followed
    assert suggested[0]["source"] == "global" and suggested[0]["sources"] == ["most_followed"]
    first = (await carol_api.get("/api/v1/suggestions")).json()
    assert [a["id"] for a in first] == [str(alice.account_id), str(bob.account_id)]  # equal: by id
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/block")
    assert (await alice_api.get("/api/v2/suggestions")).json() == []
    assert (await client.get("/api/v2/suggestions")).status_code == 401


async def test_trends_need_no_scope_as_in_mastodon(
        client: httpx.AsyncClient, db: Database, alice: User) -> None:
    # An app holding only granular scopes (here read:accounts) still reads the trends.
    async with authorized(client, await make_token(db, alice, "read:accounts")) as narrow:
        for path in ("/api/v1/trends/tags", "/api/v1/trends/links"):
            response = await narrow.get(path)
            assert response.status_code == 200 and response.json() == [], path
    async with authorized(client, "not-a-token") as stranger:
        assert (await stranger.get("/api/v1/trends/tags")).status_code == 401


async def test_a_suspended_or_silenced_author_stops_trending(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        client: httpx.AsyncClient, db: Database, alice: User, bob: User) -> None:
    # Mastodon: no suspended or silenced account in trends, tags and statuses alike.
    alices = await post(alice_api, "#Art of the day")
    bobs = await post(bob_api, "#Ink of the day")
    for status in (alices, bobs):
        await carol_api.post(f"/api/v1/statuses/{status}/favourite")

    async def trending() -> tuple[list[str], list[str]]:
        tags = sorted(t["name"] for t in (await client.get("/api/v1/trends/tags")).json())
        return tags, [s["id"] for s in (await client.get("/api/v1/trends/statuses")).json()]

    assert await trending() == (["Art", "Ink"], [bobs, alices])
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == alice.account_id)
                              .values(suspended_at=utcnow()))
        await session.execute(update(Account).where(Account.id == bob.account_id)
                              .values(silenced_at=utcnow()))
        await session.commit()
    assert await trending() == ([], [])


async def test_a_reader_is_not_shown_trending_statuses_of_accounts_it_blocks_or_is_blocked_by(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        client: httpx.AsyncClient, bob: User, carol: User) -> None:
    alices = await post(alice_api, "a study in ochre")
    await bob_api.post(f"/api/v1/statuses/{alices}/favourite")
    blocked = await alice_api.post(f"/api/v1/accounts/{carol.account_id}/block")
    assert blocked.status_code == 200

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()]

    assert ids(await carol_api.get("/api/v1/trends/statuses")) == []  # alice blocks carol
    assert ids(await bob_api.get("/api/v1/trends/statuses")) == [alices]
    assert ids(await client.get("/api/v1/trends/statuses")) == [alices]
    muted = await bob_api.post("/api/v1/accounts/{}/mute".format(
        (await alice_api.get("/api/v1/accounts/verify_credentials")).json()["id"]))
    assert muted.status_code == 200
    assert ids(await bob_api.get("/api/v1/trends/statuses")) == []
