"""The portfolio API (``/api/v1/easel/…``) and Mastodon's pins, as a client uses them:
works with metadata, browsing by tags with Mastodon's paging, portfolios, projects, the
vocabulary and its administration — and refusals (4xx with ``{"error"}``, never 500)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from server.db import Database
from server.ids import utcnow
from server.models import Account, Activity, MediaAttachment, User
from server.services import portfolio
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import authorized, make_token


async def media(db: Database, owner: User, state: str = "ready") -> int:
    async with db.session() as session:
        item = MediaAttachment(account_id=owner.account.id, state=state,
                               file_key="media/aa/bb/file.webp" if state == "ready" else None,
                               small_key="media/aa/bb/small.webp" if state == "ready" else None)
        session.add(item)
        await session.commit()
        return item.id


async def post_work(api: httpx.AsyncClient, db: Database, owner: User, *,
                    status: str = "A work", visibility: str = "public",
                    **work: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "media_ids": [str(await media(db, owner))],
                            "visibility": visibility}
    if work:
        body["easel"] = work
    response = await api.post("/api/v1/statuses", json=body)
    assert response.status_code == 200, response.text
    entity: dict[str, Any] = response.json()
    return entity


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [entity["id"] for entity in response.json()]


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message: str = response.json()["error"]
    return message


@pytest.fixture
async def admin(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="curator", email="curator@example.com",
                                 password="the admin's password", admin=True)


# ------------------------------------------------------------------ works

async def test_a_work_posted_with_its_metadata_in_one_call(
    alice_api: httpx.AsyncClient, client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    entity = await post_work(alice_api, db, alice, title="Harbour at dawn", year=2025,
                             dimensions="40 × 50 cm", description="Plein air.",
                             medium=["egg tempera", "Egg-Tempera"],
                             tags={"category": ["Harbour scenes"]})
    assert entity["easel"] == {
        "title": "Harbour at dawn", "description": "Plein air.", "year": 2025,
        "dimensions": "40 × 50 cm", "ai_generated": False,
        "tags": {"field": [], "medium": [{"name": "egg tempera", "hashtag": "EggTempera"}],
                 "project_type": [],
                 "category": [{"name": "Harbour scenes", "hashtag": "HarbourScenes"}],
                 "software": []}}
    assert {t["name"] for t in entity["tags"]} == {"EggTempera", "HarbourScenes"}
    assert entity["pinned"] is False  # the author's own status
    public = await client.get(f"/api/v1/easel/works/{entity['id']}")
    assert public.status_code == 200
    assert public.json()["easel"]["title"] == "Harbour at dawn"
    assert "pinned" not in public.json()
    # The same status through the Mastodon API carries the same key.
    assert (await client.get(f"/api/v1/statuses/{entity['id']}")).json()["easel"] == \
        entity["easel"]


async def test_a_work_posted_as_a_form(alice_api: httpx.AsyncClient, db: Database,
                                       alice: User) -> None:
    response = await alice_api.post("/api/v1/statuses", data={
        "status": "Form work", "media_ids[]": str(await media(db, alice)),
        "easel[title]": "Formed", "easel[software][]": ["Krita", "Blender"]})
    assert response.status_code == 200, response.text
    easel = response.json()["easel"]
    assert easel["title"] == "Formed"
    assert [t["name"] for t in easel["tags"]["software"]] == ["Krita", "Blender"]


async def test_a_text_status_has_no_easel_key_and_is_not_a_work(
    alice_api: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    response = await alice_api.post("/api/v1/statuses", json={"status": "words"})
    assert "easel" not in response.json()
    error(await client.get(f"/api/v1/easel/works/{response.json()['id']}"), 404)
    error(await alice_api.put(f"/api/v1/easel/works/{response.json()['id']}",
                              json={"title": "x"}), 422)


@pytest.mark.parametrize(("body", "message"), [
    ({"easel": {"title": "t" * 201}}, "Title is too long"),
    ({"easel": {"year": "soon"}}, "year] must be a number"),
    ({"easel": {"year": 12}}, "Year must be between"),
    ({"easel": {"colour": ["red"], "tags": {"colour": ["red"]}}}, "Unknown portfolio tag kind"),
    ({"easel": {"medium": ["x" * 80]}}, "too long"),
    ({"easel": "not an object"}, "easel must be an object"),
])
async def test_bad_metadata_on_create_is_a_422(
    alice_api: httpx.AsyncClient, db: Database, alice: User, body: dict[str, Any], message: str
) -> None:
    body = {"status": "x", "media_ids": [str(await media(db, alice))], **body}
    assert message in error(await alice_api.post("/api/v1/statuses", json=body), 422)
    assert (await alice_api.get(f"/api/v1/accounts/{alice.account.id}/statuses")).json() == []


async def test_put_replaces_and_patch_merges_and_both_federate_an_update(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    work = await post_work(alice_api, db, alice, title="First", medium=["Ink"], year=2020)
    url = f"/api/v1/easel/works/{work['id']}"
    patched = await alice_api.patch(url, json={"title": "Second", "software": ["Krita"]})
    assert patched.status_code == 200, patched.text
    easel = patched.json()["easel"]
    assert easel["title"] == "Second" and easel["year"] == 2020
    assert [t["name"] for t in easel["tags"]["medium"]] == ["Ink"]
    assert [t["name"] for t in easel["tags"]["software"]] == ["Krita"]
    assert patched.json()["edited_at"] is None  # portfolio data is not a version of the post
    replaced = (await alice_api.put(url, json={"title": "Third"})).json()["easel"]
    assert replaced["title"] == "Third" and replaced["year"] is None
    assert replaced["tags"]["medium"] == [] and replaced["tags"]["software"] == []
    async with db.session() as session:
        updates = list(await session.scalars(select(Activity).where(
            Activity.type == "Update", Activity.object_uri == work["uri"])))
    assert len(updates) == 2


async def test_only_the_owner_edits_a_work_with_a_write_token(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
    db: Database, alice: User
) -> None:
    work = await post_work(alice_api, db, alice, visibility="private")
    url = f"/api/v1/easel/works/{work['id']}"
    error(await bob_api.put(url, json={"title": "mine now"}), 404)
    error(await bob_api.get(url), 404)  # private, bob does not follow
    error(await client.put(url, json={"title": "x"}), 401)
    async with authorized(client, await make_token(db, alice, "read")) as reader:
        error(await reader.put(url, json={"title": "x"}), 403)
    error(await alice_api.put(url, json={"title": "t" * 300}), 422)
    error(await alice_api.put("/api/v1/easel/works/not-an-id", json={}), 404)


# ------------------------------------------------------------------ browse

async def test_browse_by_tags_with_mastodon_paging(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
    db: Database, alice: User, bob: User
) -> None:
    a = await post_work(alice_api, db, alice, medium=["Ink"], category=["Portrait"])
    b = await post_work(bob_api, db, bob, medium=["Oil"], category=["Portrait"])
    c = await post_work(alice_api, db, alice, medium=["Ink"], category=["Landscape"],
                        software=["Krita"])
    await post_work(alice_api, db, alice, medium=["Ink"], visibility="unlisted")
    assert ids(await client.get("/api/v1/easel/works?medium=ink")) == [c["id"], a["id"]]
    assert ids(await client.get("/api/v1/easel/works?medium[]=ink&medium[]=oil")) == [
        c["id"], b["id"], a["id"]]
    assert ids(await client.get("/api/v1/easel/works",
                                params={"medium": ["ink", "oil"], "category": "portrait"})) == [
        b["id"], a["id"]]
    assert ids(await client.get("/api/v1/easel/works?medium=ink&category=landscape"
                                "&software=krita")) == [c["id"]]
    assert ids(await client.get("/api/v1/easel/works?medium=watercolour-ish")) == []
    assert ids(await client.get("/api/v1/easel/works?local=false")) == []
    assert ids(await client.get("/api/v1/easel/works?local=true&medium=oil")) == [b["id"]]
    first = await client.get("/api/v1/easel/works?medium=ink&medium=oil&limit=2")
    assert ids(first) == [c["id"], b["id"]]
    link = first.headers["link"]
    assert f"max_id={b['id']}" in link and "medium=ink" in link and 'rel="next"' in link
    following = await client.get(link.split(">")[0].lstrip("<"))
    assert ids(following) == [a["id"]]
    assert ids(await client.get(f"/api/v1/easel/works?min_id={a['id']}&limit=1")) == [b["id"]]
    error(await client.get("/api/v1/easel/works?local=perhaps"), 422)


# ------------------------------------------------------------------ pins and portfolios

async def test_pins_as_in_mastodon_and_the_portfolio_shows_them_first(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
    db: Database, alice: User, bob: User
) -> None:
    old = await post_work(alice_api, db, alice, title="Old favourite")
    new = await post_work(alice_api, db, alice, title="New")
    text = (await alice_api.post("/api/v1/statuses", json={"status": "words"})).json()
    pinned = await alice_api.post(f"/api/v1/statuses/{old['id']}/pin")
    assert pinned.status_code == 200 and pinned.json()["pinned"] is True
    bobs = await post_work(bob_api, db, bob)
    assert "Someone else's post" in error(
        await alice_api.post(f"/api/v1/statuses/{bobs['id']}/pin"), 422)
    error(await client.post(f"/api/v1/statuses/{old['id']}/pin"), 401)
    error(await alice_api.post("/api/v1/statuses/123/pin"), 404)

    assert ids(await client.get(
        f"/api/v1/accounts/{alice.account.id}/statuses?pinned=true")) == [old["id"]]
    portfolio_url = f"/api/v1/easel/accounts/{alice.account.id}/portfolio"
    first = await client.get(portfolio_url)
    assert ids(first) == [old["id"], new["id"]]  # pinned first; text statuses are no works
    assert text["id"] not in ids(first)
    assert first.json()[0]["easel"]["featured"] is True
    assert ids(await client.get(portfolio_url, params={"max_id": new["id"]})) == []
    error(await client.get("/api/v1/easel/accounts/424242/portfolio"), 404)

    unpinned = await alice_api.post(f"/api/v1/statuses/{old['id']}/unpin")
    assert unpinned.status_code == 200 and unpinned.json()["pinned"] is False
    assert ids(await client.get(portfolio_url)) == [new["id"], old["id"]]


# ------------------------------------------------------------------ projects

async def test_projects_from_creation_to_deletion(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
    db: Database, alice: User, bob: User
) -> None:
    one = await post_work(alice_api, db, alice)
    two = await post_work(alice_api, db, alice)
    bobs = await post_work(bob_api, db, bob)
    created = await alice_api.post("/api/v1/easel/projects", json={
        "title": "Harbours", "description": "A series", "work_ids": [two["id"], one["id"]]})
    assert created.status_code == 200, created.text
    project = created.json()
    assert project["title"] == "Harbours" and project["work_ids"] == [two["id"], one["id"]]
    assert project["cover_id"] == two["id"] and [w["id"] for w in project["works"]] == [
        two["id"], one["id"]]
    url = f"/api/v1/easel/projects/{project['id']}"

    assert (await client.get(url)).json()["works_count"] == 2
    patched = await alice_api.patch(url, json={"title": "Harbours II", "cover_id": one["id"]})
    assert patched.json()["cover_id"] == one["id"] and patched.json()["title"] == "Harbours II"
    reordered = await alice_api.put(f"{url}/works", json={"work_ids": [one["id"]]})
    assert reordered.json()["work_ids"] == [one["id"]]
    second = (await alice_api.post("/api/v1/easel/projects", json={"title": "Studies"})).json()
    order = await alice_api.put("/api/v1/easel/projects/order",
                                json={"project_ids": [second["id"], project["id"]]})
    assert [p["id"] for p in order.json()] == [second["id"], project["id"]]
    # Others see the projects with works they may see, with their covers.
    listed = (await client.get(f"/api/v1/easel/accounts/{alice.account.id}/projects")).json()
    assert [p["id"] for p in listed] == [project["id"]]
    assert listed[0]["cover"]["id"] == one["id"]

    error(await bob_api.patch(url, json={"title": "x"}), 404)
    error(await bob_api.delete(url), 404)
    assert "not found among your works" in error(
        await alice_api.put(f"{url}/works", json={"work_ids": [bobs["id"]]}), 422)
    assert "blank" in error(await alice_api.post("/api/v1/easel/projects", json={}), 422)
    error(await alice_api.patch(url, json={"cover_id": bobs["id"]}), 422)
    error(await alice_api.put("/api/v1/easel/projects/order", json={"project_ids": ["1"]}), 422)
    error(await client.post("/api/v1/easel/projects", json={"title": "x"}), 401)

    assert (await alice_api.delete(url)).status_code == 200
    error(await client.get(url), 404)


async def test_a_project_none_of_whose_works_the_reader_may_see_is_not_found(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
    db: Database, alice: User, bob: User
) -> None:
    # As the list of an artist's projects: its title and description are the artist's
    # too, and say nothing to a reader who may see none of its works.
    private = await post_work(alice_api, db, alice, visibility="private")
    public = await post_work(alice_api, db, alice)
    secret = (await alice_api.post("/api/v1/easel/projects", json={
        "title": "A commission", "description": "notes", "work_ids": [private["id"]]})).json()
    empty = (await alice_api.post("/api/v1/easel/projects", json={"title": "Later"})).json()
    shown = (await alice_api.post("/api/v1/easel/projects", json={
        "title": "Harbours", "work_ids": [private["id"], public["id"]]})).json()
    projects = f"/api/v1/easel/accounts/{alice.account.id}/projects"
    for api in (client, bob_api):
        for project in (secret, empty):
            error(await api.get(f"/api/v1/easel/projects/{project['id']}"), 404)
        assert ids(await api.get(projects)) == [shown["id"]]
        assert (await api.get(f"/api/v1/easel/projects/{shown['id']}")).json()["work_ids"] == [
            public["id"]]
    await bob_api.post(f"/api/v1/accounts/{alice.account.id}/follow")
    assert (await bob_api.get(f"/api/v1/easel/projects/{secret['id']}")).json()["work_ids"] == [
        private["id"]]
    for project in (secret, empty, shown):
        assert (await alice_api.get(f"/api/v1/easel/projects/{project['id']}")).status_code == 200

    # A suspended artist's projects are found by nobody else.
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == alice.account.id)
                              .values(suspended_at=utcnow()))
        await session.commit()
    for api in (client, bob_api):
        for project in (secret, shown):
            error(await api.get(f"/api/v1/easel/projects/{project['id']}"), 404)


# ------------------------------------------------------------------ vocabulary

async def test_the_vocabulary_and_its_administration(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, db: Database, admin: User
) -> None:
    async with authorized(client, await make_token(db, admin, "read write admin:write")) as root:
        added = await root.post("/api/v1/easel/admin/vocabulary", json={
            "kind": "software", "name": "Pencil2D", "aliases": ["pencil 2d", "p2d"]})
        assert added.status_code == 200, added.text
        # "pencil 2d" is the term's own key, not an alias.
        assert added.json() == {"kind": "software", "name": "Pencil2D", "hashtag": "Pencil2D",
                                "aliases": ["p2d"]}
        vocabulary = (await client.get("/api/v1/easel/vocabulary")).json()
        assert set(vocabulary) == set(portfolio.KINDS)
        assert {"name": "Pencil2D", "hashtag": "Pencil2D", "aliases": ["p2d"]} in \
            vocabulary["software"]
        assert list((await client.get("/api/v1/easel/vocabulary?kind=medium")).json()) == [
            "medium"]
        error(await client.get("/api/v1/easel/vocabulary?kind=colour"), 422)
        assert "Unknown portfolio tag kind" in error(await root.post(
            "/api/v1/easel/admin/vocabulary", json={"kind": "colour", "name": "Red"}), 422)
        error(await root.post("/api/v1/easel/admin/vocabulary", json={"kind": "medium"}), 422)
        removed = await root.request("DELETE", "/api/v1/easel/admin/vocabulary",
                                     json={"kind": "software", "name": "pencil2d"})
        assert removed.status_code == 200
        error(await root.request("DELETE", "/api/v1/easel/admin/vocabulary",
                                 json={"kind": "software", "name": "pencil2d"}), 404)
    async with authorized(client, await make_token(db, admin, "read write")) as unscoped:
        error(await unscoped.post("/api/v1/easel/admin/vocabulary",
                                  json={"kind": "medium", "name": "Tempera"}), 403)
    error(await alice_api.post("/api/v1/easel/admin/vocabulary",
                               json={"kind": "medium", "name": "Tempera"}), 403)
    async with authorized(client, await make_token(db, None, "admin:write")) as app_only:
        error(await app_only.post("/api/v1/easel/admin/vocabulary",
                                  json={"kind": "medium", "name": "Tempera"}), 422)
