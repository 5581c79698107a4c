"""The collections an actor links to, and its statuses as objects, fetched over HTTP.

Given alice with public, unlisted, private, direct and unpublished statuses, boosts and
followers, when another server reads her outbox, followers, following, featured
collection and status objects, I expect only what an anonymous viewer may see, in
Mastodon's shapes, paged newest first with ``next`` links, and 404 for the rest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update

from federation.collections import OUTBOX_PAGE_SIZE
from federation.content_types import PUBLIC
from server.db import Database
from server.models import Account, Status, StatusPin, User
from server.services import follows, portfolio, statuses
from server.settings import Settings

AS2 = {"Accept": "application/activity+json"}
ALICE = "https://easel.test/users/alice"
OUTBOX = ALICE + "/outbox"


async def post(db: Database, settings: Settings, user: User, text: str,
               visibility: str = "public", **kwargs: Any) -> Status:
    async with db.session() as session:
        account = await session.get(Account, user.account_id)
        assert account is not None
        return await statuses.create_status(session, settings, account, None, text=text,
                                            visibility=visibility, **kwargs)


async def boost(db: Database, settings: Settings, user: User, status_id: int,
                visibility: str | None = None) -> Status:
    async with db.session() as session:
        account = await session.get(Account, user.account_id)
        assert account is not None
        return await statuses.reblog(session, settings, account, status_id, visibility)


async def unpublish(db: Database, status_id: int) -> None:
    async with db.session() as session:
        await session.execute(update(Status).where(Status.id == status_id).values(published=False))
        await session.commit()


async def follow(db: Database, follower: User, target: User) -> None:
    async with db.session() as session:
        source = await session.get(Account, follower.account_id)
        assert source is not None
        await follows.follow(session, source, target.account_id)


async def get_json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(url, headers=AS2)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/activity+json")
    assert response.headers["vary"] == "Accept"
    data: dict[str, Any] = response.json()
    return data


@pytest.fixture
async def mixed(db: Database, settings: Settings, alice: User, bob: User) -> dict[str, Status]:
    """alice's statuses of every kind, and bob's status she boosts."""
    made = {
        "public": await post(db, settings, alice, "hello #Ink @bob"),
        "unlisted": await post(db, settings, alice, "quiet", "unlisted"),
        "private": await post(db, settings, alice, "followers only", "private"),
        "direct": await post(db, settings, alice, "@bob secret", "direct"),
        "unpublished": await post(db, settings, alice, "not yet"),
        "bobs": await post(db, settings, bob, "bob's drawing"),
        "bobs_private": await post(db, settings, bob, "bob only", "private"),
    }
    await unpublish(db, made["unpublished"].id)
    made["boost"] = await boost(db, settings, alice, made["bobs"].id, "public")
    return made


# ------------------------------------------------------------------------------ outbox

async def test_the_outbox_counts_and_lists_only_what_anyone_may_see(
    client: httpx.AsyncClient, mixed: dict[str, Status]
) -> None:
    collection = await get_json(client, "/users/alice/outbox")
    assert collection["@context"][0] == "https://www.w3.org/ns/activitystreams"
    assert (collection["id"], collection["type"]) == (OUTBOX, "OrderedCollection")
    assert collection["totalItems"] == 3  # public, unlisted, the boost
    assert collection["first"] == OUTBOX + "?page=true"
    assert "orderedItems" not in collection

    page = await get_json(client, collection["first"])
    assert (page["id"], page["type"], page["partOf"]) == (
        OUTBOX + "?page=true", "OrderedCollectionPage", OUTBOX)
    assert "next" not in page
    items = page["orderedItems"]
    assert [item["type"] for item in items] == ["Announce", "Create", "Create"]
    announce, unlisted, public = items
    assert announce["object"] == mixed["bobs"].uri
    assert announce["actor"] == ALICE
    assert announce["to"] == [PUBLIC]
    assert "https://easel.test/users/bob" in announce["cc"]
    assert unlisted["object"]["id"] == mixed["unlisted"].uri
    assert unlisted["object"]["to"] == [ALICE + "/followers"]
    assert unlisted["cc"] == [PUBLIC]
    note = public["object"]
    assert (note["id"], note["type"], note["attributedTo"]) == (mixed["public"].uri, "Note", ALICE)
    assert public["id"] == mixed["public"].uri + "/activity"
    assert "@context" not in note and "@context" not in public
    assert {tag["type"]: tag["name"] for tag in note["tag"]} == {
        "Mention": "@bob@easel.test", "Hashtag": "#Ink"}
    text = str(page)
    for hidden in ("private", "direct", "unpublished", "bobs_private"):
        assert mixed[hidden].uri not in text


async def test_the_outbox_pages_newest_first_through_next(
    client: httpx.AsyncClient, db: Database, settings: Settings, alice: User
) -> None:
    posted = [await post(db, settings, alice, f"post {n}") for n in range(OUTBOX_PAGE_SIZE + 5)]
    collection = await get_json(client, "/users/alice/outbox")
    assert collection["totalItems"] == OUTBOX_PAGE_SIZE + 5

    first = await get_json(client, collection["first"])
    assert len(first["orderedItems"]) == OUTBOX_PAGE_SIZE
    last_on_first = posted[-OUTBOX_PAGE_SIZE]
    assert first["next"] == f"{OUTBOX}?page=true&max_id={last_on_first.id}"
    second = await get_json(client, first["next"])
    assert second["id"] == first["next"]
    assert second["partOf"] == OUTBOX
    assert "next" not in second
    seen = [item["object"]["id"] for item in first["orderedItems"] + second["orderedItems"]]
    assert seen == [status.uri for status in reversed(posted)]


async def test_an_outbox_page_loads_its_notes_in_a_fixed_number_of_queries(
    client: httpx.AsyncClient, db: Database, settings: Settings, alice: User, bob: User,
    app: Any,
) -> None:
    async def queries_for_page() -> int:
        count = 0

        def counted(*_: Any) -> None:
            nonlocal count
            count += 1

        engine = app.state.easel.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", counted)
        try:
            await get_json(client, OUTBOX + "?page=true")
        finally:
            event.remove(engine, "before_cursor_execute", counted)
        return count

    parent = await post(db, settings, bob, "a question")
    await post(db, settings, alice, "@bob #one answer", in_reply_to_id=parent.id)
    few = await queries_for_page()
    for n in range(6):
        await post(db, settings, alice, f"@bob #tag{n} more")
    await boost(db, settings, alice, parent.id)
    assert await queries_for_page() <= few + 1  # + the originals of boosts


async def test_a_reply_names_what_it_replies_to(
    client: httpx.AsyncClient, db: Database, settings: Settings, alice: User, bob: User
) -> None:
    parent = await post(db, settings, bob, "a question")
    await post(db, settings, alice, "@bob an answer", in_reply_to_id=parent.id)
    page = await get_json(client, OUTBOX + "?page=true")
    assert page["orderedItems"][0]["object"]["inReplyTo"] == parent.uri


async def test_a_boost_of_an_original_that_went_unpublished_is_left_out(
    client: httpx.AsyncClient, db: Database, mixed: dict[str, Status]
) -> None:
    await unpublish(db, mixed["bobs"].id)
    assert (await get_json(client, "/users/alice/outbox"))["totalItems"] == 2
    page = await get_json(client, OUTBOX + "?page=true")
    assert [item["type"] for item in page["orderedItems"]] == ["Create", "Create"]


async def test_a_bad_max_id_is_refused(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.get(OUTBOX + "?page=true&max_id=abc", headers=AS2)
    assert response.status_code == 400


# ----------------------------------------------------------------- followers, following

async def test_followers_and_following_count_and_list_actor_ids(
    client: httpx.AsyncClient, db: Database, settings: Settings, alice: User, bob: User
) -> None:
    await follow(db, bob, alice)
    followers = await get_json(client, "/users/alice/followers")
    assert followers == {
        "@context": followers["@context"], "id": ALICE + "/followers",
        "type": "OrderedCollection", "totalItems": 1, "first": ALICE + "/followers?page=true"}
    page = await get_json(client, followers["first"])
    assert page["orderedItems"] == ["https://easel.test/users/bob"]
    assert page["partOf"] == ALICE + "/followers"
    following = await get_json(client, "/users/bob/following")
    assert following["totalItems"] == 1
    assert (await get_json(client, following["first"]))["orderedItems"] == [ALICE]
    assert (await get_json(client, "/users/alice/following"))["totalItems"] == 0
    empty = await get_json(client, "/users/alice/following?page=true")
    assert empty["orderedItems"] == [] and "next" not in empty


async def test_followers_page_by_follow_id(
    client: httpx.AsyncClient, db: Database, settings: Settings, alice: User
) -> None:
    from server.services.accounts import create_user

    fans = []
    for n in range(12):
        async with db.session() as session:
            fans.append(await create_user(session, settings, username=f"fan{n}",
                                          email=f"fan{n}@example.com",
                                          password="a long enough password"))
        await follow(db, fans[-1], alice)
    first = await get_json(client, "/users/alice/followers?page=true")
    assert len(first["orderedItems"]) == 10
    assert "max_id=" in first["next"]
    second = await get_json(client, first["next"])
    assert "next" not in second
    assert first["orderedItems"] + second["orderedItems"] == [
        f"https://easel.test/users/fan{n}" for n in reversed(range(12))]


# ------------------------------------------------------------------------------ featured

async def test_featured_is_an_empty_collection_without_pins(
    client: httpx.AsyncClient, mixed: dict[str, Status]
) -> None:
    featured = await get_json(client, "/users/alice/collections/featured")
    assert (featured["id"], featured["type"], featured["totalItems"], featured["orderedItems"]) == (
        ALICE + "/collections/featured", "OrderedCollection", 0, [])


async def pin(db: Database, user: User, status: Status, minute: int) -> None:
    async with db.session() as session:
        session.add(StatusPin(account_id=user.account_id, status_id=status.id,
                              created_at=datetime(2024, 5, 1, 10, minute, tzinfo=UTC)))
        await session.commit()


async def test_featured_is_the_shareable_pins_newest_first_as_full_notes(
    client: httpx.AsyncClient, db: Database, alice: User, mixed: dict[str, Status]
) -> None:
    async with db.session() as session:
        await portfolio.set_work_metadata(session, mixed["public"], portfolio.WorkMeta(
            title="Heron", tags={"medium": ["Ink"]}))
        await session.commit()
    for minute, kind in enumerate(["public", "private", "unlisted", "direct", "unpublished"]):
        await pin(db, alice, mixed[kind], minute)

    featured = await get_json(client, "/users/alice/collections/featured")
    assert (featured["type"], featured["totalItems"]) == ("OrderedCollection", 2)
    unlisted, public = featured["orderedItems"]
    assert (unlisted["id"], public["id"]) == (mixed["unlisted"].uri, mixed["public"].uri)
    for note in (unlisted, public):
        assert note["type"] == "Note" and note["attributedTo"] == ALICE
        assert "@context" not in note and note["xRobotsTag"] == "noai, noimageai"
    assert public["name"] == "Heron"
    assert public["portfolio"]["mediums"] == [{"name": "Ink", "hashtag": "#Ink"}]
    assert "#Ink" in {t["name"] for t in public["tag"] if t["type"] == "Hashtag"}
    # bob's featured does not show alice's pins
    assert (await get_json(client, "/users/bob/collections/featured"))["totalItems"] == 0


# ------------------------------------------------------------------------- status objects

@pytest.mark.parametrize("kind", ["public", "unlisted"])
async def test_a_shared_status_is_served_as_its_note(
    client: httpx.AsyncClient, mixed: dict[str, Status], kind: str
) -> None:
    status = mixed[kind]
    path = status.uri.removeprefix("https://easel.test")
    note = await get_json(client, path)
    assert (note["id"], note["type"], note["attributedTo"]) == (status.uri, "Note", ALICE)
    assert note["@context"][0] == "https://www.w3.org/ns/activitystreams"
    activity = await get_json(client, path + "/activity")
    assert (activity["id"], activity["type"]) == (status.uri + "/activity", "Create")
    assert activity["object"]["id"] == status.uri


async def test_a_browser_is_sent_to_the_status_page(
    client: httpx.AsyncClient, mixed: dict[str, Status]
) -> None:
    status = mixed["public"]
    response = await client.get(status.uri.removeprefix("https://easel.test"),
                                headers={"Accept": "text/html"})
    assert response.status_code == 302
    assert response.headers["location"] == status.url
    assert response.headers["vary"] == "Accept"


@pytest.mark.parametrize("kind", ["private", "direct", "unpublished", "bobs"])
@pytest.mark.parametrize("accept", ["application/activity+json", "text/html"])
async def test_what_is_not_alices_to_share_is_not_found(
    client: httpx.AsyncClient, mixed: dict[str, Status], kind: str, accept: str
) -> None:
    # Private and direct statuses need a signed fetch by an authorised actor: future work.
    path = f"/users/alice/statuses/{mixed[kind].id}"
    for url in (path, path + "/activity"):
        response = await client.get(url, headers={"Accept": accept})
        assert response.status_code == 404, url


async def test_a_boost_is_served_as_its_announce_and_points_to_the_original(
    client: httpx.AsyncClient, mixed: dict[str, Status]
) -> None:
    path = f"/users/alice/statuses/{mixed['boost'].id}"
    announce = await get_json(client, path + "/activity")
    assert (announce["type"], announce["object"]) == ("Announce", mixed["bobs"].uri)
    response = await client.get(path, headers=AS2)
    assert response.status_code == 302
    assert response.headers["location"] == mixed["bobs"].uri


# ------------------------------------------------------------------------------ not found

@pytest.mark.parametrize("path", [
    "/users/nobody/outbox", "/users/nobody/followers", "/users/nobody/following",
    "/users/nobody/collections/featured", "/users/nobody/statuses/1",
    "/users/alice/statuses/123", "/users/alice/statuses/abc",
    "/users/alice/statuses/123/activity",
])
async def test_unknown_accounts_and_statuses_are_not_found(
    client: httpx.AsyncClient, alice: User, path: str
) -> None:
    assert (await client.get(path, headers=AS2)).status_code == 404


async def test_an_unapproved_account_has_no_collections(
    client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    async with db.session() as session:
        await session.execute(update(User).where(User.id == alice.id).values(approved=False))
        await session.commit()
    for path in ("outbox", "followers", "following", "collections/featured"):
        assert (await client.get(f"/users/alice/{path}", headers=AS2)).status_code == 404



async def test_a_boost_is_served_as_the_announce_its_uri_names(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient
) -> None:
    original = (await alice_api.post("/api/v1/statuses", json={"status": "boost me"})).json()
    boost = (await bob_api.post(f"/api/v1/statuses/{original['id']}/reblog")).json()
    uri = boost["uri"]
    assert uri.endswith("/activity")
    path = uri.removeprefix("https://easel.test")
    response = await client.get(path, headers={"Accept": "application/activity+json"})
    assert response.status_code == 200
    announce = response.json()
    assert announce["type"] == "Announce" and announce["id"] == uri
    assert announce["object"] == original["uri"]
