"""Followed hashtags: follow/unfollow, the tag entity, followed_tags, and the home timeline
they feed."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from server.db import Database
from server.models import Tag, User


async def test_following_a_hashtag_feeds_the_home_timeline(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
        bob: User) -> None:
    tagged = (await bob_api.post("/api/v1/statuses", data={"status": "new #Gouache study"})).json()["id"]
    unlisted = {"status": "#gouache", "visibility": "unlisted"}
    quiet = (await bob_api.post("/api/v1/statuses", data=unlisted)).json()["id"]
    home = [s["id"] for s in (await alice_api.get("/api/v1/timelines/home")).json()]
    assert tagged not in home

    followed = await alice_api.post("/api/v1/tags/%23gouache/follow")
    assert followed.status_code == 200
    assert followed.json()["name"] == "Gouache" and followed.json()["following"] is True
    home = [s["id"] for s in (await alice_api.get("/api/v1/timelines/home")).json()]
    assert tagged in home and quiet not in home  # public posts only
    assert (await alice_api.get("/api/v1/tags/GOUACHE")).json()["following"] is True
    assert "following" not in (await client.get("/api/v1/tags/gouache")).json()
    listed = await alice_api.get("/api/v1/followed_tags")
    assert [t["name"] for t in listed.json()] == ["Gouache"] and "link" in listed.headers

    # A tag nobody used yet can be followed; it is created.
    assert (await alice_api.post("/api/v1/tags/Linocut/follow")).json()["name"] == "Linocut"
    unfollowed = await alice_api.post("/api/v1/tags/gouache/unfollow")
    assert unfollowed.json()["following"] is False
    assert [t["name"] for t in (await alice_api.get("/api/v1/followed_tags")).json()] == ["Linocut"]
    home = [s["id"] for s in (await alice_api.get("/api/v1/timelines/home")).json()]
    assert tagged not in home


async def test_bad_tags_are_not_found(alice_api: httpx.AsyncClient) -> None:
    for name in ("12345", "no-dash", "x" * 300, "%20"):
        response = await alice_api.post(f"/api/v1/tags/{name}/follow")
        assert response.status_code == 404 and response.json() == {"error": "Record not found"}, name
    for name in ("12345", "no-dash", "%20"):
        assert (await alice_api.get(f"/api/v1/tags/{name}")).status_code == 404, name
        assert (await alice_api.post(f"/api/v1/tags/{name}/unfollow")).status_code == 404, name
    assert (await alice_api.get("/api/v1/followed_tags")).json() == []


async def test_a_tag_nobody_used_is_shown_unfollowed_and_not_stored(
        alice_api: httpx.AsyncClient, client: httpx.AsyncClient, db: Database) -> None:
    # As Mastodon (Tag.new): a client's hashtag screen can offer to follow it.
    shown = await alice_api.get("/api/v1/tags/%23NeverUsed")
    assert shown.status_code == 200
    assert shown.json() == {"name": "NeverUsed", "url": "https://easel.test/tags/neverused",
                            "history": [], "following": False}
    assert (await client.get("/api/v1/tags/NeverUsed")).json()["name"] == "NeverUsed"
    unfollowed = await alice_api.post("/api/v1/tags/neverused/unfollow")
    assert unfollowed.status_code == 200 and unfollowed.json()["following"] is False
    async with db.session() as session:
        assert await session.scalar(select(Tag).where(Tag.name == "neverused")) is None
