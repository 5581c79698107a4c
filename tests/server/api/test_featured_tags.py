"""Featured hashtags through the client API (``/api/v1/featured_tags``, its suggestions,
``/api/v1/accounts/:id/featured_tags``) and on the actor (``featuredTags``), as Mastodon:
counts of public and unlisted posts with the tag, at most ten, featuring twice answers the
same one, bad names refused with Mastodon's texts and nothing written."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from server import limits
from server.db import Database
from server.models import FeaturedTag, User
from tests.conftest import authorized, make_token
from tests.server.api.test_client_mastodon_py import Register, check_mode, register, server  # noqa: F401

AS2 = {"Accept": "application/activity+json"}


async def post(api: httpx.AsyncClient, text: str, **extra: str) -> str:
    response = await api.post("/api/v1/statuses", data={"status": text, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def featured_count(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(FeaturedTag)) or 0


async def test_featuring_a_tag_counts_the_public_posts_with_it(
        alice_api: httpx.AsyncClient, client: httpx.AsyncClient, alice: User) -> None:
    await post(alice_api, "ink on paper #InkDrawing")
    await post(alice_api, "more #inkdrawing", visibility="unlisted")
    await post(alice_api, "followers only #InkDrawing", visibility="private")
    await post(alice_api, "secret #InkDrawing", visibility="direct")

    created = await alice_api.post("/api/v1/featured_tags", data={"name": "#InkDrawing"})
    assert created.status_code == 200, created.text
    tag = created.json()
    assert tag["name"] == "InkDrawing"
    assert tag["statuses_count"] == "2"  # a string, as Mastodon sends it
    assert tag["url"] == "https://easel.test/@alice/tagged/inkdrawing"
    assert len(tag["last_status_at"]) == 10  # a day, as Mastodon: YYYY-MM-DD
    again = await alice_api.post("/api/v1/featured_tags", json={"name": "inkdrawing"})
    assert again.json()["id"] == tag["id"]

    assert (await alice_api.get("/api/v1/featured_tags")).json() == [tag]
    public = await client.get(f"/api/v1/accounts/{alice.account_id}/featured_tags")
    assert public.status_code == 200 and public.json() == [tag]
    page = await client.get("/@alice/tagged/inkdrawing")
    assert page.status_code == 302 and page.headers["location"] == "https://easel.test/tags/inkdrawing"

    fresh = await alice_api.post("/api/v1/featured_tags", data={"name": "Sketchbook"})
    assert (fresh.json()["statuses_count"], fresh.json()["last_status_at"]) == ("0", None)
    removed = await alice_api.delete(f"/api/v1/featured_tags/{tag['id']}")
    assert (removed.status_code, removed.json()) == (200, {})
    assert [t["name"] for t in (await alice_api.get("/api/v1/featured_tags")).json()] \
        == ["Sketchbook"]


async def test_suggestions_are_the_most_used_tags_not_featured_yet(
        alice_api: httpx.AsyncClient) -> None:
    await post(alice_api, "#Linocut #Ink")
    await post(alice_api, "#Linocut again")
    await post(alice_api, "#Hidden", visibility="direct")
    suggested = await alice_api.get("/api/v1/featured_tags/suggestions")
    assert [t["name"] for t in suggested.json()] == ["Linocut", "Ink"]
    await alice_api.post("/api/v1/featured_tags", data={"name": "Linocut"})
    suggested = await alice_api.get("/api/v1/featured_tags/suggestions")
    assert [t["name"] for t in suggested.json()] == ["Ink"]
    assert suggested.json()[0]["url"] == "https://easel.test/tags/ink"


async def test_the_actor_names_its_featured_tags_collection(
        alice_api: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    await alice_api.post("/api/v1/featured_tags", data={"name": "Watercolour"})
    actor = (await client.get("/users/alice", headers=AS2)).json()
    assert actor["featuredTags"] == "https://easel.test/users/alice/collections/tags"
    assert actor["@context"][-1]["featuredTags"] == {"@id": "toot:featuredTags", "@type": "@id"}
    response = await client.get("/users/alice/collections/tags", headers=AS2)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/activity+json")
    collection = response.json()
    assert (collection["id"], collection["type"], collection["totalItems"]) == \
        ("https://easel.test/users/alice/collections/tags", "Collection", 1)
    assert collection["items"] == [{"type": "Hashtag", "name": "#Watercolour",
                                    "href": "https://easel.test/@alice/tagged/watercolour"}]
    assert (await client.get("/users/nobody/collections/tags", headers=AS2)).status_code == 404


async def test_bad_featured_tag_requests_are_refused_clearly(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
        alice: User, db: Database) -> None:
    for body, error in (({}, "Validation failed: Name can't be blank"),
                        ({"name": "  "}, "Validation failed: Name can't be blank"),
                        ({"name": "#"}, "Validation failed: Name can't be blank"),
                        ({"name": "not a tag"}, "Validation failed: Name is invalid"),
                        ({"name": "1234"}, "Validation failed: Name is invalid"),
                        ({"name": "x" * 300}, "Validation failed: Name is invalid")):
        refused = await alice_api.post("/api/v1/featured_tags", data=body)
        assert (refused.status_code, refused.json()) == (422, {"error": error}), body
    assert await featured_count(db) == 0

    for n in range(limits.MAX_FEATURED_TAGS):
        assert (await alice_api.post("/api/v1/featured_tags", data={"name": f"tag{n}"})).status_code == 200
    over = await alice_api.post("/api/v1/featured_tags", data={"name": "onemore"})
    assert (over.status_code, over.json()) == (422, {
        "error": "Validation failed: You have already featured the maximum number of hashtags"})
    assert await featured_count(db) == limits.MAX_FEATURED_TAGS

    mine = (await alice_api.get("/api/v1/featured_tags")).json()[0]["id"]
    for path in (f"/api/v1/featured_tags/{mine}", "/api/v1/featured_tags/999", "/api/v1/featured_tags/x"):
        refused = await bob_api.delete(path)
        assert (refused.status_code, refused.json()) == (404, {"error": "Record not found"})
    assert await featured_count(db) == limits.MAX_FEATURED_TAGS
    assert (await client.get("/api/v1/accounts/999/featured_tags")).status_code == 404
    assert (await client.get("/api/v1/featured_tags")).status_code == 401
    async with authorized(client, await make_token(db, alice, "read")) as reader:
        assert (await reader.post("/api/v1/featured_tags", data={"name": "x"})).status_code == 403


def test_featured_tags_through_mastodon_py(register: Register) -> None:  # noqa: F811
    alice = register("alice")
    alice.status_post("print day #Linocut")
    assert [t.name for t in alice.featured_tag_suggestions()] == ["Linocut"]
    featured = alice.featured_tag_create("Linocut")
    assert featured.name == "Linocut" and featured.statuses_count == "1"
    assert [t.id for t in alice.featured_tags()] == [featured.id]
    assert [t.name for t in alice.account_featured_tags(alice.me())] == ["Linocut"]
    alice.featured_tag_delete(featured)
    assert alice.featured_tags() == []
