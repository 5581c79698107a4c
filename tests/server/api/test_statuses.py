"""The statuses API as Mastodon clients use it: posting in every body format, reading with
visibility per viewer, threads, favourites, boosts, bookmarks, delete and redraft, and
refusals for bad input that leave nothing written."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import utcnow
from server.models import (
    Account,
    Bookmark,
    Favourite,
    Follow,
    IdempotencyKey,
    MediaAttachment,
    Mention,
    Notification,
    Status,
    StatusTag,
    Tag,
    User,
)
from server.services.accounts import create_user
from server.services.statuses import publish_if_ready
from server.settings import Settings
from tests.conftest import authorized, make_token

WATCHED = (Status, Mention, Tag, StatusTag, IdempotencyKey, Notification, Favourite, Bookmark)


async def post(api: httpx.AsyncClient, **data: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/statuses", json=data)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def media(db: Database, owner: User, state: str = "ready") -> int:
    async with db.session() as session:
        item = MediaAttachment(account_id=owner.account.id, state=state,
                               file_key="media/aa/bb/file.webp" if state == "ready" else None,
                               thumb_key="media/aa/bb/thumb.webp" if state == "ready" else None)
        session.add(item)
        await session.commit()
        return item.id


async def follow(db: Database, follower: User, target: User, *, notify: bool = False) -> None:
    async with db.session() as session:
        session.add(Follow(account_id=follower.account.id, target_account_id=target.account.id,
                           notify=notify))
        await session.commit()


async def counts(db: Database) -> dict[str, int]:
    async with db.session() as session:
        result = {model.__name__: await session.scalar(select(func.count()).select_from(model)) or 0
                  for model in WATCHED}
        result["attached"] = await session.scalar(select(func.count()).select_from(
            MediaAttachment).where(MediaAttachment.status_id.is_not(None))) or 0
        result["statuses_count"] = await session.scalar(
            select(func.sum(Account.statuses_count))) or 0
    return result


# ------------------------------------------------------------------------- posting

async def test_a_status_posted_as_a_form_comes_back_as_a_mastodon_entity(
    alice_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    response = await alice_api.post("/api/v1/statuses", data={
        "status": "Hello @bob, new #Ink piece https://example.com/work",
        "visibility": "unlisted", "sensitive": "1", "spoiler_text": "eyes", "language": "en"})
    assert response.status_code == 200
    status = response.json()
    assert status["id"].isdigit()
    assert status["uri"] == f"https://easel.test/users/alice/statuses/{status['id']}"
    assert status["url"] == f"https://easel.test/@alice/{status['id']}"
    assert status["account"]["username"] == "alice"
    assert (status["visibility"], status["sensitive"], status["spoiler_text"], status["language"]) \
        == ("unlisted", True, "eyes", "en")
    assert status["content"] == (
        '<p>Hello <span class="h-card" translate="no"><a href="https://easel.test/@bob" '
        'class="u-url mention">@<span>bob</span></a></span>, new <a href="https://easel.test/tags/ink" '
        'class="mention hashtag" rel="tag">#<span>Ink</span></a> piece <a href="https://example.com/work" '
        'rel="nofollow noopener noreferrer" target="_blank"><span class="invisible">https://</span>'
        '<span class="ellipsis">example.com/work</span></a></p>')
    assert status["mentions"] == [{"id": str(bob.account.id), "username": "bob", "acct": "bob",
                                   "url": "https://easel.test/@bob"}]
    assert status["tags"] == [{"name": "Ink", "url": "https://easel.test/tags/ink", "history": []}]
    assert status["application"] == {"name": "Test client", "website": "https://client.example"}
    assert status["in_reply_to_id"] is None and status["reblog"] is None
    assert (status["favourited"], status["reblogged"], status["bookmarked"]) == (False, False, False)
    assert "text" not in status


async def test_a_status_posted_as_json_with_media_ids(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    first, second = await media(db, alice), await media(db, alice)
    response = await alice_api.post("/api/v1/statuses", json={
        "status": "", "media_ids": [str(first), str(second)], "sensitive": False})
    assert response.status_code == 200
    status = response.json()
    assert [m["id"] for m in status["media_attachments"]] == [str(first), str(second)]
    assert status["media_attachments"][0]["url"].endswith("/media/aa/bb/file.webp")
    assert status["content"] == "" and status["sensitive"] is False


async def test_json_nulls_for_lists_are_no_values(alice_api: httpx.AsyncClient) -> None:
    response = await alice_api.post("/api/v1/statuses", json={
        "status": "no media", "media_ids": None, "poll": None, "spoiler_text": None})
    assert response.status_code == 200, response.text
    assert response.json()["media_attachments"] == [] and response.json()["poll"] is None


async def test_a_status_posted_as_multipart_with_bracketed_media_ids(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    item = await media(db, alice)
    response = await alice_api.post(
        "/api/v1/statuses", data={"status": "multipart", "media_ids[]": str(item)},
        files={"unused": ("a.txt", b"x", "text/plain")})
    assert response.status_code == 200, response.text
    assert [m["id"] for m in response.json()["media_attachments"]] == [str(item)]


async def test_the_idempotency_key_header_posts_once(
    alice_api: httpx.AsyncClient, db: Database
) -> None:
    headers = {"Idempotency-Key": "3f1c-once"}
    first = await alice_api.post("/api/v1/statuses", data={"status": "once"}, headers=headers)
    again = await alice_api.post("/api/v1/statuses", data={"status": "once"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    other = await alice_api.post("/api/v1/statuses", data={"status": "once"},
                                 headers={"Idempotency-Key": "another"})
    assert other.json()["id"] != first.json()["id"]
    assert (await counts(db))["Status"] == 2


# ---------------------------------------------------------------------- bad input

BAD_POSTS: list[tuple[Any, int, str]] = [
    ({"status": ""}, 422, "Validation failed: Text can't be blank"),
    ({"status": "   \n "}, 422, "Validation failed: Text can't be blank"),
    ({}, 422, "Validation failed: Text can't be blank"),
    ({"status": "x" * 501}, 422, "Validation failed: Text character limit of 500 exceeded"),
    ({"status": "hi", "visibility": "everyone"}, 422,
     "Validation failed: Visibility is not included in the list"),
    ({"status": "hi", "sensitive": "maybe"}, 422, "Validation failed: sensitive must be true or false"),
    ({"status": "hi", "in_reply_to_id": "999999"}, 404, "Record not found"),
    ({"status": "hi", "in_reply_to_id": "abc"}, 404, "Record not found"),
    ({"status": "hi", "media_ids[]": ["1", "x"]}, 422, "Validation failed: media_ids must contain ids"),
    ({"status": "hi", "media_ids[]": ["1", "2", "3", "4", "5"]}, 422, "Cannot attach more than 4 files"),
    ({"status": "hi", "language": "klingon"}, 422,
     "Validation failed: Language is not a valid language code"),
    ({"status": {"nested": "object"}}, 422, "Validation failed: Text can't be blank"),
    ({"status": "hi", "poll[options][]": ["a", "b"], "poll[expires_in]": "60"}, 422,
     "Validation failed: Poll expires at is too soon"),
]


@pytest.mark.parametrize(("data", "status_code", "message"), BAD_POSTS)
async def test_bad_posts_are_refused_and_write_nothing(
    alice_api: httpx.AsyncClient, db: Database, data: Any, status_code: int, message: str
) -> None:
    before = await counts(db)
    if any(isinstance(v, dict) for v in data.values()):
        response = await alice_api.post("/api/v1/statuses", json=data,
                                        headers={"Idempotency-Key": "k"})
    else:
        response = await alice_api.post("/api/v1/statuses", data=data,
                                        headers={"Idempotency-Key": "k"})
    assert (response.status_code, response.json()) == (status_code, {"error": message})
    assert await counts(db) == before


async def test_someone_elses_media_cannot_be_posted(
    alice_api: httpx.AsyncClient, db: Database, bob: User
) -> None:
    bobs = await media(db, bob)
    before = await counts(db)
    response = await alice_api.post("/api/v1/statuses",
                                    json={"status": "mine now", "media_ids": [str(bobs)]})
    assert response.status_code == 422
    assert response.json() == {"error": f"Media {bobs} not found or already attached to another post"}
    assert await counts(db) == before


async def test_a_reply_to_an_invisible_status_is_not_found(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database
) -> None:
    secret = await post(bob_api, status="followers only", visibility="private")
    before = await counts(db)
    response = await alice_api.post("/api/v1/statuses",
                                    data={"status": "re", "in_reply_to_id": secret["id"]})
    assert (response.status_code, response.json()) == (404, {"error": "Record not found"})
    assert await counts(db) == before


async def test_posting_needs_the_write_statuses_scope_and_a_user(
    client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    before = await counts(db)
    anonymous = await client.post("/api/v1/statuses", data={"status": "hi"})
    assert anonymous.status_code == 401
    async with authorized(client, await make_token(db, alice, "read write:media")) as narrow:
        response = await narrow.post("/api/v1/statuses", data={"status": "hi"})
    assert (response.status_code, response.json()) == (
        403, {"error": "This action is outside the authorized scopes"})
    async with authorized(client, await make_token(db, alice, "write:statuses")) as granular:
        assert (await granular.post("/api/v1/statuses", data={"status": "hi"})).status_code == 200
    async with authorized(client, await make_token(db, None, "read write")) as app_only:
        response = await app_only.post("/api/v1/statuses", data={"status": "hi"})
    assert (response.status_code, response.json()) == (
        422, {"error": "This method requires an authenticated user"})
    after = await counts(db)
    assert after["Status"] == before["Status"] + 1


# ------------------------------------------------------------------------ reading

@pytest.fixture
async def dave(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="dave",
                                 email="dave@example.com", password="a fourth password")


VISIBLE_TO = {
    # visibility: (anonymous, follower bob, stranger carol, mentioned dave)
    "public": (True, True, True, True),
    "unlisted": (True, True, True, True),
    "private": (False, True, False, True),
    "direct": (False, False, False, True),
}


@pytest.mark.parametrize("visibility", list(VISIBLE_TO))
async def test_who_sees_a_status_depends_on_its_visibility(
    client: httpx.AsyncClient, db: Database, alice_api: httpx.AsyncClient,
    bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient, alice: User, bob: User,
    dave: User, visibility: str
) -> None:
    await follow(db, bob, alice)
    status = await post(alice_api, status="hello @dave", visibility=visibility)
    async with authorized(client, await make_token(db, dave)) as dave_api:
        viewers = (client, bob_api, carol_api, dave_api)
        for viewer, expected in zip(viewers, VISIBLE_TO[visibility], strict=True):
            response = await viewer.get(f"/api/v1/statuses/{status['id']}")
            assert response.status_code == (200 if expected else 404), (visibility, viewer)
            if not expected:
                assert response.json() == {"error": "Record not found"}
            listed = await viewer.get("/api/v1/statuses", params={"id[]": [status["id"]]})
            assert [s["id"] for s in listed.json()] == ([status["id"]] if expected else [])
    assert (await alice_api.get(f"/api/v1/statuses/{status['id']}")).status_code == 200


async def test_statuses_by_id_keep_the_order_asked_and_skip_unknown_ids(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient
) -> None:
    first = await post(alice_api, status="one")
    second = await post(alice_api, status="two")
    response = await client.get("/api/v1/statuses",
                                params={"id[]": [second["id"], "12345", first["id"], second["id"]]})
    assert [s["id"] for s in response.json()] == [second["id"], first["id"]]
    bad = await client.get("/api/v1/statuses", params={"id[]": ["abc"]})
    assert bad.status_code == 422


async def test_odd_status_ids_are_not_found(client: httpx.AsyncClient) -> None:
    for raw in ("abc", "-1", "1e5", "99999999999999999999999"):
        response = await client.get(f"/api/v1/statuses/{raw}")
        assert (response.status_code, response.json()) == (404, {"error": "Record not found"})


async def test_a_status_waiting_for_its_media_is_its_authors_alone_until_published(
    client: httpx.AsyncClient, db: Database, alice_api: httpx.AsyncClient,
    bob_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    await follow(db, bob, alice, notify=True)
    item = await media(db, alice, state="processing")
    response = await alice_api.post("/api/v1/statuses",
                                    json={"status": "wip @bob", "media_ids": [str(item)]})
    assert response.status_code == 200
    status = response.json()
    # Waiting for its protection: a placeholder, never a null url (Tusky reads it as required).
    [waiting] = status["media_attachments"]
    assert waiting["url"] == waiting["preview_url"] == "https://easel.test/static/processing.png"
    placeholder = await client.get("/static/processing.png")
    assert placeholder.status_code == 200 and placeholder.headers["content-type"] == "image/png"
    path = f"/api/v1/statuses/{status['id']}"
    assert (await alice_api.get(path)).status_code == 200
    assert (await bob_api.get(path)).status_code == 404
    assert (await client.get(path)).status_code == 404
    assert (await bob_api.post(f"{path}/favourite")).status_code == 404
    # Its author may act on it as usual.
    assert (await alice_api.post(f"{path}/favourite")).json()["favourited"] is True
    assert (await alice_api.post(f"{path}/bookmark")).json()["bookmarked"] is True
    assert (await counts(db))["Notification"] == 0

    async with db.session() as session:
        await session.execute(update(MediaAttachment).where(MediaAttachment.id == item)
                              .values(state="ready", file_key="media/aa/bb/done.webp"))
        assert await publish_if_ready(session, int(status["id"]))
        await session.commit()
    seen = await bob_api.get(path)
    assert seen.status_code == 200
    assert seen.json()["media_attachments"][0]["url"].endswith("/media/aa/bb/done.webp")
    assert (await client.get(path)).status_code == 200
    async with db.session() as session:
        types = sorted(await session.scalars(select(Notification.type)))
    assert types == ["mention", "status"]


# ------------------------------------------------------------------------ threads

async def test_the_context_lists_the_visible_thread_around_a_status(
    client: httpx.AsyncClient, db: Database, alice_api: httpx.AsyncClient,
    bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    root = await post(alice_api, status="root")
    reply = await post(bob_api, status="@alice reply", in_reply_to_id=root["id"])
    nested = await post(alice_api, status="nested", in_reply_to_id=reply["id"])
    private = await post(alice_api, status="for followers", in_reply_to_id=reply["id"],
                         visibility="private")
    other = await post(carol_api, status="another", in_reply_to_id=root["id"])
    assert reply["in_reply_to_id"] == root["id"]
    assert reply["in_reply_to_account_id"] == str(alice.account.id)
    assert (await alice_api.get(f"/api/v1/statuses/{root['id']}")).json()["replies_count"] == 2

    response = await client.get(f"/api/v1/statuses/{reply['id']}/context")
    assert response.status_code == 200
    thread = response.json()
    assert [s["id"] for s in thread["ancestors"]] == [root["id"]]
    assert [s["id"] for s in thread["descendants"]] == [nested["id"]]
    await follow(db, bob, alice)
    thread = (await bob_api.get(f"/api/v1/statuses/{root['id']}/context")).json()
    assert thread["ancestors"] == []
    assert [s["id"] for s in thread["descendants"]] == [
        reply["id"], nested["id"], private["id"], other["id"]]
    secret = await post(alice_api, status="dm", visibility="direct")
    assert (await client.get(f"/api/v1/statuses/{secret['id']}/context")).status_code == 404


async def test_the_context_leaves_out_the_statuses_of_accounts_the_viewer_hides(
    client: httpx.AsyncClient, db: Database, alice_api: httpx.AsyncClient,
    bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient, alice: User, bob: User,
    carol: User, dave: User
) -> None:
    root = await post(alice_api, status="root")
    reply = await post(bob_api, status="bob's reply", in_reply_to_id=root["id"])
    under_bobs = await post(alice_api, status="alice answers bob", in_reply_to_id=reply["id"])
    carols = await post(carol_api, status="carol's own", in_reply_to_id=under_bobs["id"])
    path = f"/api/v1/statuses/{root['id']}/context"

    def thread_ids(response: httpx.Response, part: str) -> list[str]:
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()[part]]

    everyone = [reply["id"], under_bobs["id"], carols["id"]]
    assert thread_ids(await carol_api.get(path), "descendants") == everyone
    # Muting or blocking bob takes his reply out of carol's view of the thread; the replies
    # under it stay, each status being judged on its own author (as Mastodon's StatusFilter).
    assert (await carol_api.post(f"/api/v1/accounts/{bob.account_id}/mute")).status_code == 200
    assert thread_ids(await carol_api.get(path), "descendants") == [under_bobs["id"], carols["id"]]
    await carol_api.post(f"/api/v1/accounts/{bob.account_id}/unmute")
    await carol_api.post(f"/api/v1/accounts/{bob.account_id}/block")
    assert thread_ids(await carol_api.get(path), "descendants") == [under_bobs["id"], carols["id"]]
    # Ancestors too; the status asked for is still shown (a block does not hide it by id).
    below = f"/api/v1/statuses/{under_bobs['id']}/context"
    assert thread_ids(await carol_api.get(below), "ancestors") == [root["id"]]
    assert (await carol_api.get(f"/api/v1/statuses/{reply['id']}/context")).status_code == 200
    # Only the viewer's own choices count: others, and anyone signed out, see it all.
    assert thread_ids(await client.get(path), "descendants") == everyone
    assert thread_ids(await client.get(below), "ancestors") == [root["id"], reply["id"]]
    async with authorized(client, await make_token(db, dave)) as dave_api:
        assert thread_ids(await dave_api.get(path), "descendants") == everyone
        # A block by an author hides its statuses from the account it blocks, as before.
        assert thread_ids(await bob_api.get(path), "descendants") == [reply["id"], under_bobs["id"]]


# -------------------------------------------------------- favourites, boosts, bookmarks

async def test_favourites_are_idempotent_and_counted(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database
) -> None:
    status = await post(alice_api, status="like me")
    path = f"/api/v1/statuses/{status['id']}"
    for _ in range(2):
        body = (await bob_api.post(f"{path}/favourite")).json()
        assert (body["favourited"], body["favourites_count"]) == (True, 1)
    assert (await alice_api.get(path)).json()["favourited"] is False
    for _ in range(2):
        body = (await bob_api.post(f"{path}/unfavourite")).json()
        assert (body["favourited"], body["favourites_count"]) == (False, 0)
    async with db.session() as session:
        assert list(await session.scalars(select(Notification.type))) == ["favourite"]


async def test_bookmarks_are_idempotent_and_private_to_their_owner(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database
) -> None:
    status = await post(alice_api, status="save me")
    path = f"/api/v1/statuses/{status['id']}"
    for _ in range(2):
        assert (await bob_api.post(f"{path}/bookmark")).json()["bookmarked"] is True
    assert (await alice_api.get(path)).json()["bookmarked"] is False
    assert (await counts(db))["Bookmark"] == 1
    for _ in range(2):
        assert (await bob_api.post(f"{path}/unbookmark")).json()["bookmarked"] is False
    assert (await counts(db))["Bookmark"] == 0
    assert (await counts(db))["Notification"] == 0


async def test_boosting_wraps_the_status_and_is_idempotent(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database
) -> None:
    status = await post(alice_api, status="boost me")
    path = f"/api/v1/statuses/{status['id']}"
    response = await bob_api.post(f"{path}/reblog", data={"visibility": "unlisted"})
    assert response.status_code == 200
    boost = response.json()
    assert boost["id"] != status["id"] and boost["visibility"] == "unlisted"
    assert boost["account"]["username"] == "bob"
    assert boost["reblog"]["id"] == status["id"] and boost["reblog"]["reblogs_count"] == 1
    assert boost["reblogged"] is True and boost["reblog"]["reblogged"] is True
    again = (await bob_api.post(f"/api/v1/statuses/{boost['id']}/reblog")).json()
    assert again["id"] == boost["id"] and again["reblog"]["reblogs_count"] == 1
    # A boost is a status that can be read, and favouriting it favourites the original.
    assert (await alice_api.get(f"/api/v1/statuses/{boost['id']}")).json()["reblog"]["id"] \
        == status["id"]
    for _ in range(2):
        undone = (await bob_api.post(f"{path}/unreblog")).json()
        assert (undone["id"], undone["reblogged"], undone["reblogs_count"]) == (
            status["id"], False, 0)
    assert (await bob_api.get(f"/api/v1/statuses/{boost['id']}")).status_code == 404
    async with db.session() as session:
        assert list(await session.scalars(select(Notification.type))) == ["reblog"]
        assert await session.scalar(select(Account.statuses_count).where(
            Account.username == "bob")) == 0


async def test_private_and_direct_statuses_of_others_cannot_be_boosted(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    await follow(db, bob, alice)
    private = await post(alice_api, status="followers only", visibility="private")
    direct = await post(alice_api, status="@bob hi", visibility="direct")
    before = await counts(db)
    for status in (private, direct):
        response = await bob_api.post(f"/api/v1/statuses/{status['id']}/reblog")
        assert (response.status_code, response.json()) == (
            403, {"error": "This action is not allowed"})
    assert await counts(db) == before
    own = (await alice_api.post(f"/api/v1/statuses/{private['id']}/reblog")).json()
    assert own["visibility"] == "private"


async def test_a_boost_with_a_bad_visibility_is_refused(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database
) -> None:
    status = await post(alice_api, status="boost me")
    before = await counts(db)
    for visibility in ("direct", "everyone"):
        response = await bob_api.post(f"/api/v1/statuses/{status['id']}/reblog",
                                      data={"visibility": visibility})
        assert response.status_code == 422
    assert await counts(db) == before


ACTIONS = [("favourite", "write:favourites"), ("unfavourite", "write:favourites"),
           ("reblog", "write:statuses"), ("unreblog", "write:statuses"),
           ("bookmark", "write:bookmarks"), ("unbookmark", "write:bookmarks")]


@pytest.mark.parametrize(("action", "scope"), ACTIONS)
async def test_actions_refuse_bad_ids_scopes_and_app_tokens(
    client: httpx.AsyncClient, db: Database, alice_api: httpx.AsyncClient,
    bob_api: httpx.AsyncClient, alice: User, bob: User, action: str, scope: str
) -> None:
    status = await post(alice_api, status="target")
    secret = await post(alice_api, status="followers", visibility="private")
    before = await counts(db)
    for bad in ("abc", "12345", secret["id"]):
        response = await bob_api.post(f"/api/v1/statuses/{bad}/{action}")
        assert (response.status_code, response.json()) == (404, {"error": "Record not found"})
    path = f"/api/v1/statuses/{status['id']}/{action}"
    assert (await client.post(path)).status_code == 401
    async with authorized(client, await make_token(db, bob, "read write:media")) as narrow:
        assert (await narrow.post(path)).status_code == 403
    async with authorized(client, await make_token(db, bob, scope)) as granular:
        assert (await granular.post(path)).status_code == 200
    async with authorized(client, await make_token(db, None, "read write")) as app_only:
        response = await app_only.post(path)
    assert (response.status_code, response.json()) == (
        422, {"error": "This method requires an authenticated user"})
    after = await counts(db)
    if action in ("favourite", "reblog", "bookmark"):  # the one granular call did write
        assert after != before
    else:
        assert after == before


async def test_favourited_by_and_reblogged_by_are_paginated_with_links(
    client: httpx.AsyncClient, db: Database, settings: Settings, alice_api: httpx.AsyncClient
) -> None:
    status = await post(alice_api, status="popular")
    names = ["fan0", "fan1", "fan2"]
    for name in names:
        async with db.session() as session:
            fan = await create_user(session, settings, username=name, email=f"{name}@example.com",
                                    password="a long enough password")
        async with authorized(client, await make_token(db, fan)) as fan_api:
            assert (await fan_api.post(f"/api/v1/statuses/{status['id']}/favourite")).status_code == 200
            assert (await fan_api.post(f"/api/v1/statuses/{status['id']}/reblog")).status_code == 200
    for endpoint in ("favourited_by", "reblogged_by"):
        path = f"/api/v1/statuses/{status['id']}/{endpoint}"
        first = await client.get(path, params={"limit": 2})
        assert [a["username"] for a in first.json()] == ["fan2", "fan1"]
        link = first.headers["link"]
        assert 'rel="next"' in link and 'rel="prev"' in link
        next_url = link.split(">;")[0].lstrip("<")
        assert next_url.startswith(f"https://easel.test{path}?")
        rest = await client.get(next_url.replace("https://easel.test", ""))
        assert [a["username"] for a in rest.json()] == ["fan0"]
    secret = await post(alice_api, status="dm", visibility="direct")
    assert (await client.get(f"/api/v1/statuses/{secret['id']}/favourited_by")).status_code == 404
    assert (await client.get("/api/v1/statuses/abc/reblogged_by")).status_code == 404


async def test_favourited_by_and_reblogged_by_leave_out_suspended_accounts(
    client: httpx.AsyncClient, db: Database, alice_api: httpx.AsyncClient,
    bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient, bob: User, carol: User
) -> None:
    status = await post(alice_api, status="liked")
    for fan in (bob_api, carol_api):
        assert (await fan.post(f"/api/v1/statuses/{status['id']}/favourite")).status_code == 200
        assert (await fan.post(f"/api/v1/statuses/{status['id']}/reblog")).status_code == 200
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == bob.account_id)
                              .values(suspended_at=utcnow()))
        await session.execute(update(User).where(User.id == carol.id).values(disabled=True))
        await session.commit()
    # As Mastodon's without_suspended; a disabled login's account, whose profile is not
    # found, is not listed either.
    for endpoint in ("favourited_by", "reblogged_by"):
        response = await client.get(f"/api/v1/statuses/{status['id']}/{endpoint}")
        assert (response.status_code, response.json()) == (200, []), endpoint


# -------------------------------------------------------------- delete and redraft

async def test_delete_returns_the_source_for_a_redraft_and_cleans_up(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    item = await media(db, alice)
    status = await post(alice_api, status="draft #one @bob", media_ids=[str(item)],
                        spoiler_text="cw")
    path = f"/api/v1/statuses/{status['id']}"
    await bob_api.post(f"{path}/favourite")
    await bob_api.post(f"{path}/reblog")
    await bob_api.post(f"{path}/bookmark")
    response = await alice_api.delete(path)
    assert response.status_code == 200
    deleted = response.json()
    assert deleted["id"] == status["id"] and deleted["text"] == "draft #one @bob"
    assert deleted["spoiler_text"] == "cw"
    assert [m["id"] for m in deleted["media_attachments"]] == [str(item)]
    assert (await alice_api.get(path)).status_code == 404
    assert (await alice_api.delete(path)).status_code == 404
    after = await counts(db)
    assert after == {"Status": 0, "Mention": 0, "Tag": 1, "StatusTag": 0, "IdempotencyKey": 0,
                     "Notification": 0, "Favourite": 0, "Bookmark": 0, "attached": 0,
                     "statuses_count": 0}
    redraft = await post(alice_api, status=deleted["text"], spoiler_text=deleted["spoiler_text"],
                         media_ids=[m["id"] for m in deleted["media_attachments"]])
    assert [m["id"] for m in redraft["media_attachments"]] == [str(item)]


async def test_only_the_author_deletes_and_with_the_right_token(
    client: httpx.AsyncClient, db: Database, alice_api: httpx.AsyncClient,
    bob_api: httpx.AsyncClient, alice: User
) -> None:
    status = await post(alice_api, status="mine")
    path = f"/api/v1/statuses/{status['id']}"
    before = await counts(db)
    assert (await bob_api.delete(path)).status_code == 404
    assert (await bob_api.delete("/api/v1/statuses/abc")).status_code == 404
    assert (await client.delete(path)).status_code == 401
    async with authorized(client, await make_token(db, alice, "read write:favourites")) as narrow:
        assert (await narrow.delete(path)).status_code == 403
    async with authorized(client, await make_token(db, None, "write")) as app_only:
        assert (await app_only.delete(path)).status_code == 422
    assert await counts(db) == before


async def test_the_source_is_for_the_author(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient
) -> None:
    status = await post(alice_api, status="a <b>bold</b> #claim", spoiler_text="cw")
    path = f"/api/v1/statuses/{status['id']}/source"
    response = await alice_api.get(path)
    assert response.json() == {"id": status["id"], "text": "a <b>bold</b> #claim",
                               "spoiler_text": "cw"}
    assert (await bob_api.get(path)).status_code == 404
    assert (await client.get(path)).status_code == 401


async def test_json_bodies_with_real_booleans_and_null_values(
    alice_api: httpx.AsyncClient
) -> None:
    response = await alice_api.post(
        "/api/v1/statuses", content=json.dumps({"status": "hi", "sensitive": True,
                                                "in_reply_to_id": None, "visibility": None}),
        headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["sensitive"] is True and response.json()["visibility"] == "public"


async def test_markup_typed_into_a_status_is_shown_as_text(
    alice_api: httpx.AsyncClient, alice: User
) -> None:
    status = await post(alice_api, status='<script>alert(1)</script> @alice"><img src=x onerror=alert(1)>',
                        spoiler_text="<b>cw</b>")
    assert status["content"] == (
        '<p>&lt;script&gt;alert(1)&lt;/script&gt; <span class="h-card" translate="no">'
        '<a href="https://easel.test/@alice" class="u-url mention">@<span>alice</span></a></span>'
        '"&gt;&lt;img src=x onerror=alert(1)&gt;</p>')
    # spoiler_text is plain text in Mastodon's entity; clients escape it.
    assert status["spoiler_text"] == "<b>cw</b>"
