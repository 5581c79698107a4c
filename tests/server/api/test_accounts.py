"""The accounts API through the ASGI app: profiles, credentials, statuses, follows,
follow requests, relationships and account search, as Mastodon clients use them."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import new_id, utcnow
from server.models import (
    Account,
    Follow,
    FollowRequest,
    MediaAttachment,
    Notification,
    Status,
    StatusTag,
    Tag,
    User,
)
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import authorized, make_token

# --------------------------------------------------------------------------- fixtures


async def scoped(client: httpx.AsyncClient, db: Database, user: User | None,
                 scopes: str) -> httpx.AsyncClient:
    return authorized(client, await make_token(db, user, scopes))


async def account_row(db: Database, account_id: int) -> Account:
    async with db.session() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        return account


async def user_row(db: Database, user_id: int) -> User:
    async with db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user


async def count(db: Database, model: type, *where: Any) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def counters(db: Database, user: User) -> tuple[int, int]:
    account = await account_row(db, user.account_id)
    return account.followers_count, account.following_count


async def lock(db: Database, user: User) -> None:
    async with db.session() as session:
        account = await session.get(Account, user.account_id)
        assert account is not None
        account.locked = True
        await session.commit()


async def remote_account(db: Database) -> Account:
    async with db.session() as session:
        account = Account(username="dave", username_key="dave", domain="remote.example",
                          uri="https://remote.example/users/dave",
                          url="https://remote.example/@dave")
        session.add(account)
        await session.commit()
        return account


BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


async def add_status(db: Database, user: User, n: int, **values: Any) -> Status:
    """A status by ``user``, the ``n``th in time (ids sort as n does)."""
    moment = BASE_TIME + timedelta(minutes=n)
    status_id = new_id(moment)
    async with db.session() as session:
        status = Status(id=status_id, account_id=user.account_id,
                        uri=f"https://easel.test/users/x/statuses/{status_id}",
                        text=f"status {n}", content=f"<p>status {n}</p>", created_at=moment,
                        published_at=moment, **values)
        session.add(status)
        await session.commit()
        return status


def png(size: tuple[int, int] = (64, 48), colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def ids(response: httpx.Response) -> list[str]:
    return [item["id"] for item in response.json()]


# ------------------------------------------------------------------ verify_credentials


async def test_verify_credentials_shows_the_source_and_pending_requests(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    await lock(db, alice)
    assert (await bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow")).status_code == 200
    response = await alice_api.get("/api/v1/accounts/verify_credentials")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(alice.account_id) and body["username"] == "alice"
    assert body["locked"] is True
    assert body["source"] == {
        "privacy": "public", "sensitive": False, "language": "", "note": "", "fields": [],
        "follow_requests_count": 1, "hide_collections": False, "discoverable": True,
        "indexable": False,
    }


async def test_verify_credentials_takes_a_profile_or_read_accounts_token(
    client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    for scopes in ("profile", "read:accounts", "read"):
        async with await scoped(client, db, alice, scopes) as api:
            assert (await api.get("/api/v1/accounts/verify_credentials")).status_code == 200
    async with await scoped(client, db, alice, "read:statuses write") as api:
        narrow = await api.get("/api/v1/accounts/verify_credentials")
    assert narrow.status_code == 403
    async with await scoped(client, db, None, "read") as api:
        app_only = await api.get("/api/v1/accounts/verify_credentials")
    assert app_only.status_code == 422
    assert app_only.json() == {"error": "This method requires an authenticated user"}
    assert (await client.get("/api/v1/accounts/verify_credentials")).status_code == 401


# ------------------------------------------------------------------ update_credentials


async def test_a_form_update_changes_the_profile_and_posting_defaults(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    response = await alice_api.patch("/api/v1/accounts/update_credentials", data={
        "display_name": "  Alice Liddell ", "note": "Painter.\nhttps://alice.example",
        "locked": "true", "bot": "0", "discoverable": "false", "indexable": "true",
        "fields_attributes[0][name]": "Portfolio", "fields_attributes[0][value]": "https://a.example",
        "fields_attributes[1][name]": "Medium", "fields_attributes[1][value]": "oil",
        "fields_attributes[2][name]": "", "fields_attributes[2][value]": "dropped",
        "source[privacy]": "unlisted", "source[sensitive]": "true", "source[language]": "FR",
    })
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["display_name"] == "Alice Liddell"
    assert body["note"].startswith("<p>Painter.<br><a href=\"https://alice.example\"")
    flags = (body["locked"], body["bot"], body["discoverable"], body["indexable"])
    assert flags == (True, False, False, True)
    assert [(f["name"], f["value"]) for f in body["source"]["fields"]] == [
        ("Portfolio", "https://a.example"), ("Medium", "oil")]
    assert body["fields"][0]["value"].startswith('<a href="https://a.example"')  # shown as HTML
    assert body["source"]["privacy"] == "unlisted"
    assert body["source"]["sensitive"] is True
    assert body["source"]["language"] == "fr"
    assert body["source"]["note"] == "Painter.\nhttps://alice.example"
    user = await user_row(db, alice.id)
    assert (user.default_privacy, user.default_sensitive, user.default_language) == ("unlisted", True, "fr")
    verified = (await alice_api.get("/api/v1/accounts/verify_credentials")).json()
    assert verified["display_name"] == "Alice Liddell" and verified["locked"] is True


async def test_a_json_update_takes_fields_as_an_array_or_an_object(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    as_array = await alice_api.patch("/api/v1/accounts/update_credentials", json={
        "display_name": "A", "bot": True, "locked": False,
        "fields_attributes": [{"name": "Site", "value": "x"}, {"name": "Shop", "value": 42}],
        "source": {"privacy": "private", "sensitive": False, "language": "de"},
    })
    assert as_array.status_code == 200, as_array.text
    body = as_array.json()
    assert [(f["name"], f["value"]) for f in body["fields"]] == [("Site", "x"), ("Shop", "42")]
    assert body["bot"] is True and body["source"]["privacy"] == "private"
    assert (await account_row(db, alice.account_id)).actor_type == "Service"

    as_object = await alice_api.patch("/api/v1/accounts/update_credentials", json={
        "fields_attributes": {"1": {"name": "Second", "value": "2"}, "0": {"name": "First", "value": "1"}},
        "source": {"language": ""},
    })
    assert as_object.status_code == 200, as_object.text
    body = as_object.json()
    assert [f["name"] for f in body["fields"]] == ["First", "Second"]
    assert body["display_name"] == "A"  # what is not sent stays
    assert body["source"]["language"] == ""
    assert (await user_row(db, alice.id)).default_language is None


@pytest.mark.parametrize(("data", "error"), [
    ({"display_name": "x" * 31}, "Validation failed: Display name is too long (maximum is 30 characters)"),
    ({"note": "y" * 501}, "Validation failed: Note is too long (maximum is 500 characters)"),
    ({f"fields_attributes[{i}][name]": f"f{i}" for i in range(5)},
     "Validation failed: Fields is too long (maximum is 4 characters)"),
    ({"fields_attributes[0][name]": "n" * 256},
     "Validation failed: Field name is too long (maximum is 255 characters)"),
    ({"source[privacy]": "direct"}, "Validation failed: Default privacy is not included in the list"),
    ({"source[language]": "english"}, "Validation failed: Default language is not included in the list"),
    ({"locked": "perhaps"}, "Validation failed: locked must be true or false"),
    ({"source[sensitive]": "sometimes"}, "Validation failed: source[sensitive] must be true or false"),
    ({"display_name": "x" * 31, "source[privacy]": "secret"},
     "Validation failed: Display name is too long (maximum is 30 characters), "
     "Default privacy is not included in the list"),
])
async def test_a_bad_update_is_refused_and_writes_nothing(
    alice_api: httpx.AsyncClient, db: Database, alice: User, data: dict[str, str], error: str
) -> None:
    # Every bad request also carries good changes, which must not be applied either.
    response = await alice_api.patch("/api/v1/accounts/update_credentials",
                                     data={"note": "changed", "bot": "true", **data} if "note" not in data
                                     else {"display_name": "changed", **data})
    assert response.status_code == 422
    assert response.json() == {"error": error}
    account = await account_row(db, alice.account_id)
    user = await user_row(db, alice.id)
    assert (account.display_name, account.note, account.bot, account.fields) == ("", "", False, [])
    assert (user.default_privacy, user.default_language, user.default_sensitive) == ("public", None, False)


async def test_a_bad_json_update_is_refused(alice_api: httpx.AsyncClient, db: Database, alice: User) -> None:
    for body in ({"note": "x", "source": {"privacy": 5}}, {"note": "x", "discoverable": "nope"},
                 {"note": "x", "fields_attributes": [{"name": "a"}] * 5}):
        response = await alice_api.patch("/api/v1/accounts/update_credentials", json=body)
        assert response.status_code == 422, body
    not_an_object = await alice_api.patch("/api/v1/accounts/update_credentials", json=["note"])
    assert not_an_object.status_code == 400
    assert (await account_row(db, alice.account_id)).note == ""


async def test_update_credentials_needs_write_accounts_and_a_user(
    client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    async with await scoped(client, db, alice, "read write:statuses") as api:
        narrow = await api.patch("/api/v1/accounts/update_credentials", data={"note": "x"})
    assert narrow.status_code == 403
    async with await scoped(client, db, None, "write") as api:
        app_only = await api.patch("/api/v1/accounts/update_credentials", data={"note": "x"})
    assert app_only.status_code == 422
    async with await scoped(client, db, alice, "write:accounts") as api:
        ok = await api.patch("/api/v1/accounts/update_credentials", data={"note": "ok"})
        assert ok.status_code == 200
    assert (await account_row(db, alice.account_id)).note == "ok"


async def test_an_avatar_and_header_upload_is_served_at_once_and_replaces_the_old_file(
    alice_api: httpx.AsyncClient, app: Any, db: Database, alice: User
) -> None:
    storage = app.state.easel.storage
    first = await alice_api.patch("/api/v1/accounts/update_credentials", data={"display_name": "Al"},
                                  files={"avatar": ("a.png", png(), "image/png"),
                                         "header": ("h.png", png((300, 100), "blue"), "image/png")})
    assert first.status_code == 200, first.text
    account = await account_row(db, alice.account_id)
    assert account.avatar_key and account.header_key
    assert first.json()["avatar"] == storage.public_url(account.avatar_key)
    assert first.json()["header"] == storage.public_url(account.header_key)
    assert first.json()["display_name"] == "Al"
    assert await storage.exists(account.avatar_key) and await storage.exists(account.header_key)

    second = await alice_api.patch("/api/v1/accounts/update_credentials",
                                   files={"avatar": ("b.png", png(colour="green"), "image/png")})
    assert second.status_code == 200
    replaced = await account_row(db, alice.account_id)
    assert replaced.avatar_key != account.avatar_key and replaced.header_key == account.header_key
    assert second.json()["avatar"] == storage.public_url(replaced.avatar_key)
    assert not await storage.exists(account.avatar_key)
    assert await storage.exists(replaced.avatar_key) and await storage.exists(account.header_key)


async def test_a_bad_image_is_refused_and_nothing_is_written(
    alice_api: httpx.AsyncClient, app: Any, db: Database, alice: User
) -> None:
    response = await alice_api.patch("/api/v1/accounts/update_credentials", data={"display_name": "Al"},
                                     files={"avatar": ("a.png", png(), "image/png"),
                                            "header": ("h.png", b"not an image at all", "image/png")})
    assert response.status_code == 422
    assert response.json()["error"].startswith("Validation failed: Header")
    account = await account_row(db, alice.account_id)
    assert (account.display_name, account.avatar_key, account.header_key) == ("", None, None)
    public_root = app.state.easel.storage.public_root
    assert not [p for p in public_root.rglob("*") if p.is_file()]  # the good avatar was removed too
    text_avatar = await alice_api.patch("/api/v1/accounts/update_credentials", data={"avatar": "x"})
    assert text_avatar.status_code == 422


async def test_unlocking_accepts_the_pending_requests(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    await lock(db, alice)
    await bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow")
    response = await alice_api.patch("/api/v1/accounts/update_credentials", data={"locked": "false"})
    assert response.status_code == 200
    assert response.json()["followers_count"] == 1
    assert response.json()["source"]["follow_requests_count"] == 0
    assert await count(db, Follow, Follow.account_id == bob.account_id) == 1
    assert await count(db, FollowRequest) == 0
    assert await counters(db, bob) == (0, 1)


# ---------------------------------------------------------------------- reading accounts


async def test_an_account_is_public_by_id_and_unknown_ids_are_not_found(
    client: httpx.AsyncClient, alice: User
) -> None:
    response = await client.get(f"/api/v1/accounts/{alice.account_id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["acct"], body["url"]) == (str(alice.account_id), "alice", "https://easel.test/@alice")
    for bad in ("12345", "abc", "-1", "9" * 30):
        missing = await client.get(f"/api/v1/accounts/{bad}")
        assert missing.status_code == 404 and missing.json() == {"error": "Record not found"}


async def test_an_account_awaiting_approval_is_not_shown(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    async with db.session() as session:
        pending = await create_user(session, settings, username="eve", email="eve@example.com",
                                    password="a pending password", approved=False)
    assert (await client.get(f"/api/v1/accounts/{pending.account_id}")).status_code == 404
    assert (await client.get("/api/v1/accounts/lookup", params={"acct": "eve"})).status_code == 404


async def test_several_accounts_by_id_keep_the_order_asked(
    client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    response = await client.get("/api/v1/accounts", params=[
        ("id[]", str(bob.account_id)), ("id[]", "1"), ("id[]", str(alice.account_id)),
        ("id[]", str(bob.account_id))])
    assert response.status_code == 200
    assert ids(response) == [str(bob.account_id), str(alice.account_id)]
    bad = await client.get("/api/v1/accounts", params={"id[]": "abc"})
    assert bad.status_code == 422
    too_many = await client.get("/api/v1/accounts", params=[("id[]", str(i)) for i in range(1, 42)])
    assert too_many.status_code == 422


async def test_lookup_finds_local_names_only(client: httpx.AsyncClient, db: Database, alice: User) -> None:
    for acct in ("alice", "ALICE", "@alice", "alice@easel.test", "@alice@EASEL.test"):
        response = await client.get("/api/v1/accounts/lookup", params={"acct": acct})
        assert response.status_code == 200, acct
        assert response.json()["id"] == str(alice.account_id)
    for acct in ("alice@other.example", "nobody", "", "easel.test"):
        response = await client.get("/api/v1/accounts/lookup", params={"acct": acct})
        assert response.status_code == 404, acct
    assert (await client.get("/api/v1/accounts/lookup")).status_code == 404


# ---------------------------------------------------------------------- account statuses


async def test_account_statuses_filter_as_mastodon_does(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    plain = await add_status(db, alice, 1)
    with_media = await add_status(db, alice, 2)
    async with db.session() as session:
        session.add(MediaAttachment(account_id=alice.account_id, status_id=with_media.id))
        tag = Tag(name="oilpainting", display_name="OilPainting")
        session.add(tag)
        await session.flush()
        session.add(StatusTag(status_id=plain.id, tag_id=tag.id))
        await session.commit()
    bobs = await add_status(db, bob, 3)
    reply_to_other = await add_status(db, alice, 4, in_reply_to_id=bobs.id,
                                      in_reply_to_account_id=bob.account_id)
    self_reply = await add_status(db, alice, 5, in_reply_to_id=plain.id,
                                  in_reply_to_account_id=alice.account_id)
    boost = await add_status(db, alice, 6, reblog_of_id=bobs.id)
    await add_status(db, alice, 7, visibility="private")
    await add_status(db, alice, 8, published=False)

    url = f"/api/v1/accounts/{alice.account_id}/statuses"
    everything = await client.get(url)
    assert everything.status_code == 200
    expected = [boost, self_reply, reply_to_other, with_media, plain]
    assert ids(everything) == [str(s.id) for s in expected]
    assert everything.json()[0]["reblog"]["id"] == str(bobs.id)
    assert ids(await client.get(url, params={"only_media": "true"})) == [str(with_media.id)]
    assert ids(await client.get(url, params={"exclude_replies": "1"})) == [
        str(s.id) for s in (boost, self_reply, with_media, plain)]
    assert ids(await client.get(url, params={"exclude_reblogs": "true"})) == [
        str(s.id) for s in (self_reply, reply_to_other, with_media, plain)]
    assert ids(await client.get(url, params={"tagged": "#OilPainting"})) == [str(plain.id)]
    assert ids(await client.get(url, params={"tagged": "nothing"})) == []
    # Easel has no pins yet: the pinned list is empty.
    assert (await client.get(url, params={"pinned": "true"})).json() == []
    # The author sees the private and the unpublished status too.
    assert len(ids(await alice_api.get(url))) == 7
    assert (await client.get(url, params={"only_media": "maybe"})).status_code == 422
    assert (await client.get("/api/v1/accounts/42/statuses")).status_code == 404


async def test_account_statuses_page_with_a_link_header(client: httpx.AsyncClient, db: Database,
                                                       alice: User) -> None:
    statuses = [await add_status(db, alice, n) for n in range(5)]
    url = f"/api/v1/accounts/{alice.account_id}/statuses"
    first = await client.get(url, params={"limit": 2})
    assert ids(first) == [str(statuses[4].id), str(statuses[3].id)]
    links = first.links
    assert links["next"]["url"].endswith(f"max_id={statuses[3].id}")
    assert f"min_id={statuses[4].id}" in links["prev"]["url"]
    second = await client.get(links["next"]["url"])
    assert ids(second) == [str(statuses[2].id), str(statuses[1].id)]
    newer = await client.get(url, params={"min_id": statuses[1].id, "limit": 2})
    assert ids(newer) == [str(statuses[3].id), str(statuses[2].id)]
    empty = await client.get(url, params={"max_id": statuses[0].id})
    assert empty.json() == [] and "link" not in empty.headers


# -------------------------------------------------------------------------- following


async def test_following_an_unlocked_account_is_immediate(
    alice_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    response = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(bob.account_id)
    assert (body["following"], body["requested"], body["showing_reblogs"], body["notifying"]) == (
        True, False, True, False)
    assert await counters(db, bob) == (1, 0)
    assert await counters(db, alice) == (0, 1)
    assert await count(db, Notification, Notification.account_id == bob.account_id,
                       Notification.type == "follow") == 1


async def test_following_again_changes_options_not_counters(
    alice_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    url = f"/api/v1/accounts/{bob.account_id}/follow"
    await alice_api.post(url)
    again = await alice_api.post(url, json={"reblogs": False, "notify": True})
    assert again.status_code == 200
    assert (again.json()["showing_reblogs"], again.json()["notifying"]) == (False, True)
    keep = await alice_api.post(url, data={"notify": "false"})
    assert (keep.json()["showing_reblogs"], keep.json()["notifying"]) == (False, False)
    assert await counters(db, bob) == (1, 0) and await counters(db, alice) == (0, 1)
    assert await count(db, Follow) == 1
    assert await count(db, Notification) == 1


async def test_counters_survive_repeated_follows_and_unfollows(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
    db: Database, alice: User, bob: User, carol: User
) -> None:
    for _ in range(3):
        await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
        await carol_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
        await bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow")
    assert await counters(db, bob) == (2, 1)
    assert await counters(db, alice) == (1, 1)
    for _ in range(3):
        response = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/unfollow")
        assert response.status_code == 200 and response.json()["following"] is False
    assert await counters(db, bob) == (1, 1)
    assert await counters(db, alice) == (1, 0)
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    assert await counters(db, bob) == (2, 1)
    # A refollow notifies again: the old notification went with the old follow.
    assert await count(db, Notification, Notification.account_id == bob.account_id,
                       Notification.from_account_id == alice.account_id) == 1


async def test_a_locked_account_gets_a_request(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    await lock(db, bob)
    response = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow", data={"reblogs": "false"})
    assert response.status_code == 200
    assert (response.json()["following"], response.json()["requested"]) == (False, True)
    again = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow", data={"notify": "true"})
    assert (again.json()["requested"], again.json()["showing_reblogs"], again.json()["notifying"]) == (
        True, False, True)
    assert await count(db, FollowRequest) == 1 and await count(db, Follow) == 0
    assert await counters(db, bob) == (0, 0)
    assert await count(db, Notification, Notification.account_id == bob.account_id,
                       Notification.type == "follow_request") == 1
    seen_by_bob = (await bob_api.get("/api/v1/accounts/relationships",
                                     params={"id[]": alice.account_id})).json()
    assert seen_by_bob[0]["requested_by"] is True and seen_by_bob[0]["followed_by"] is False
    listed = await bob_api.get("/api/v1/follow_requests")
    assert ids(listed) == [str(alice.account_id)]


async def test_authorizing_a_request_makes_the_follow(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    await lock(db, bob)
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow",
                         data={"reblogs": "false", "notify": "1"})
    response = await bob_api.post(f"/api/v1/follow_requests/{alice.account_id}/authorize")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(alice.account_id)
    assert (body["followed_by"], body["requested_by"]) == (True, False)
    assert await counters(db, bob) == (1, 0) and await counters(db, alice) == (0, 1)
    mine = (await alice_api.get("/api/v1/accounts/relationships", params={"id[]": bob.account_id})).json()[0]
    assert (mine["following"], mine["requested"], mine["showing_reblogs"], mine["notifying"]) == (
        True, False, False, True)
    assert (await bob_api.get("/api/v1/follow_requests")).json() == []
    assert await count(db, Notification, Notification.type == "follow_request") == 0
    # Again: there is no request any more, and nothing moves.
    again = await bob_api.post(f"/api/v1/follow_requests/{alice.account_id}/authorize")
    assert again.status_code == 404
    assert await counters(db, bob) == (1, 0) and await counters(db, alice) == (0, 1)


async def test_rejecting_a_request_removes_it(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    await lock(db, bob)
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    response = await bob_api.post(f"/api/v1/follow_requests/{alice.account_id}/reject")
    assert response.status_code == 200
    assert (response.json()["followed_by"], response.json()["requested_by"]) == (False, False)
    assert await count(db, FollowRequest) == 0 and await count(db, Follow) == 0
    assert await count(db, Notification) == 0
    assert await counters(db, bob) == (0, 0)
    assert (await bob_api.post(f"/api/v1/follow_requests/{alice.account_id}/reject")).status_code == 404


async def test_unfollowing_withdraws_a_pending_request(
    alice_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    await lock(db, bob)
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    response = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/unfollow")
    assert response.status_code == 200 and response.json()["requested"] is False
    assert await count(db, FollowRequest) == 0 and await count(db, Notification) == 0
    assert await counters(db, bob) == (0, 0)


async def test_follow_request_endpoints_refuse_bad_input(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
    carol_api: httpx.AsyncClient, db: Database, alice: User, bob: User, carol: User
) -> None:
    await lock(db, bob)
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    # Carol cannot answer a request made to Bob.
    assert (await carol_api.post(f"/api/v1/follow_requests/{alice.account_id}/authorize")).status_code == 404
    assert (await carol_api.post(f"/api/v1/follow_requests/{alice.account_id}/reject")).status_code == 404
    for bad in ("abc", "12345"):
        assert (await bob_api.post(f"/api/v1/follow_requests/{bad}/authorize")).status_code == 404
    async with await scoped(client, db, bob, "read write:statuses") as narrow:
        assert (await narrow.post(f"/api/v1/follow_requests/{alice.account_id}/authorize")).status_code == 403
        assert (await narrow.get("/api/v1/follow_requests")).status_code == 200  # read covers read:follows
    async with await scoped(client, db, bob, "write") as write_only:
        assert (await write_only.get("/api/v1/follow_requests")).status_code == 403
    async with await scoped(client, db, None, "read write follow") as app_only:
        assert (await app_only.post(f"/api/v1/follow_requests/{alice.account_id}/reject")).status_code == 422
        assert (await app_only.get("/api/v1/follow_requests")).status_code == 422
    assert await count(db, FollowRequest) == 1 and await count(db, Follow) == 0


async def test_follow_endpoints_refuse_bad_input_and_write_nothing(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    yourself = await alice_api.post(f"/api/v1/accounts/{alice.account_id}/follow")
    assert yourself.status_code == 403
    assert yourself.json() == {"error": "Following your own account is not allowed"}
    remote = await remote_account(db)
    asked = await alice_api.post(f"/api/v1/accounts/{remote.id}/follow")
    assert asked.status_code == 200  # a remote follow is a request until its Accept arrives
    assert asked.json()["requested"] is True and asked.json()["following"] is False
    await alice_api.post(f"/api/v1/accounts/{remote.id}/unfollow")
    for bad in ("12345", "abc"):
        assert (await alice_api.post(f"/api/v1/accounts/{bad}/follow")).status_code == 404
        assert (await alice_api.post(f"/api/v1/accounts/{bad}/unfollow")).status_code == 404
    bad_bool = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow", data={"reblogs": "maybe"})
    assert bad_bool.status_code == 422
    async with await scoped(client, db, alice, "read write:statuses") as narrow:
        assert (await narrow.post(f"/api/v1/accounts/{bob.account_id}/follow")).status_code == 403
        assert (await narrow.post(f"/api/v1/accounts/{bob.account_id}/unfollow")).status_code == 403
    async with await scoped(client, db, alice, "write:follows") as granular:
        assert (await granular.get("/api/v1/accounts/relationships")).status_code == 403
    async with await scoped(client, db, None, "read write follow") as app_only:
        assert (await app_only.post(f"/api/v1/accounts/{bob.account_id}/follow")).status_code == 422
        assert (await app_only.get("/api/v1/accounts/relationships")).status_code == 422
    assert (await client.post(f"/api/v1/accounts/{bob.account_id}/follow")).status_code == 401
    assert await count(db, Follow) == 0 and await count(db, FollowRequest) == 0
    assert await count(db, Notification) == 0
    assert await counters(db, alice) == (0, 0) and await counters(db, bob) == (0, 0)


async def test_the_follow_scope_is_enough_to_follow(
    client: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    async with await scoped(client, db, alice, "follow") as api:
        assert (await api.post(f"/api/v1/accounts/{bob.account_id}/follow")).status_code == 200
        assert (await api.get("/api/v1/accounts/relationships",
                              params={"id[]": bob.account_id})).json()[0]["following"] is True


async def test_relationships_both_ways(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol: User, alice: User, bob: User
) -> None:
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    response = await alice_api.get("/api/v1/accounts/relationships", params=[
        ("id[]", str(carol.account_id)), ("id[]", "99"), ("id[]", str(bob.account_id))])
    assert response.status_code == 200
    assert ids(response) == [str(carol.account_id), str(bob.account_id)]
    to_bob = response.json()[1]
    assert (to_bob["following"], to_bob["followed_by"]) == (True, False)
    from_bob = (await bob_api.get("/api/v1/accounts/relationships", params={"id": alice.account_id})).json()
    assert (from_bob[0]["following"], from_bob[0]["followed_by"]) == (False, True)
    await bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow")
    mutual = (await bob_api.get("/api/v1/accounts/relationships", params={"id[]": alice.account_id})).json()
    assert (mutual[0]["following"], mutual[0]["followed_by"]) == (True, True)
    assert (await alice_api.get("/api/v1/accounts/relationships", params={"id[]": "x"})).status_code == 422
    assert (await alice_api.get("/api/v1/accounts/relationships")).json() == []


async def test_followers_and_following_page_by_follow(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
    carol_api: httpx.AsyncClient, alice: User, bob: User, carol: User
) -> None:
    await bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow")
    await carol_api.post(f"/api/v1/accounts/{alice.account_id}/follow")
    await alice_api.post(f"/api/v1/accounts/{carol.account_id}/follow")
    followers = await client.get(f"/api/v1/accounts/{alice.account_id}/followers")
    assert followers.status_code == 200
    assert ids(followers) == [str(carol.account_id), str(bob.account_id)]  # newest follow first
    first = await client.get(f"/api/v1/accounts/{alice.account_id}/followers", params={"limit": 1})
    assert ids(first) == [str(carol.account_id)]
    rest = await client.get(first.links["next"]["url"])
    assert ids(rest) == [str(bob.account_id)]
    following = await client.get(f"/api/v1/accounts/{alice.account_id}/following")
    assert ids(following) == [str(carol.account_id)]
    assert (await client.get(f"/api/v1/accounts/{bob.account_id}/following")).json()[0]["id"] == str(
        alice.account_id)
    assert (await client.get("/api/v1/accounts/777/followers")).status_code == 404
    assert (await client.get("/api/v1/accounts/x/following")).status_code == 404


async def test_followers_and_following_leave_out_suspended_accounts(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
    carol_api: httpx.AsyncClient, db: Database, alice: User, bob: User, carol: User
) -> None:
    for follower, target in ((bob_api, alice), (carol_api, alice), (alice_api, bob),
                             (alice_api, carol), (carol_api, bob)):
        assert (await follower.post(f"/api/v1/accounts/{target.account_id}/follow")).status_code == 200
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == bob.account_id)
                              .values(suspended_at=utcnow()))
        await session.commit()
    # Others' lists leave bob out (Mastodon's without_suspended)...
    assert ids(await client.get(f"/api/v1/accounts/{alice.account_id}/followers")) == [
        str(carol.account_id)]
    assert ids(await client.get(f"/api/v1/accounts/{alice.account_id}/following")) == [
        str(carol.account_id)]
    # ...and his own are empty: his profile is shown bare, as Mastodon's hide_results?.
    profile = await client.get(f"/api/v1/accounts/{bob.account_id}")
    assert (profile.status_code, profile.json()["suspended"]) == (200, True)
    for listing in ("followers", "following"):
        response = await carol_api.get(f"/api/v1/accounts/{bob.account_id}/{listing}")
        assert (response.status_code, response.json()) == (200, []), listing
        assert "link" not in response.headers
    # The rows are kept: lifting the suspension shows them again.
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == bob.account_id)
                              .values(suspended_at=None))
        await session.commit()
    assert ids(await client.get(f"/api/v1/accounts/{bob.account_id}/followers")) == [
        str(carol.account_id), str(alice.account_id)]


async def test_followers_see_private_statuses(
    client: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
    db: Database, alice: User
) -> None:
    private = await add_status(db, alice, 1, visibility="private")
    url = f"/api/v1/accounts/{alice.account_id}/statuses"
    assert (await client.get(url)).json() == []
    await bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow")
    assert ids(await bob_api.get(url)) == [str(private.id)]
    assert (await carol_api.get(url)).json() == []


# ------------------------------------------------------------------------------ search


async def test_account_search_by_name_prefix(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User, bob: User,
    carol: User
) -> None:
    await bob_api.patch("/api/v1/accounts/update_credentials", data={"display_name": "Robert Alvarez"})
    await alice_api.post(f"/api/v1/accounts/{carol.account_id}/follow")

    async def search(**params: Any) -> list[str]:
        response = await alice_api.get("/api/v1/accounts/search", params=params)
        assert response.status_code == 200, response.text
        return [a["username"] for a in response.json()]

    assert await search(q="al") == ["alice", "bob"]  # alice by username, bob by "Alvarez"
    assert await search(q="alice") == ["alice"]
    assert await search(q="@alice@easel.test") == ["alice"]
    assert await search(q="rob") == ["bob"]
    assert await search(q="c") == ["carol"]
    assert await search(q="c", following="true") == ["carol"]
    assert await search(q="al", following="true") == []
    assert await search(q="a", limit=1) == ["alice"]
    assert await search(q="al", offset=1) == ["bob"]
    assert await search(q="") == []
    assert await search(q="%") == []
    assert await search(q="alice@elsewhere.example") == []


async def test_account_search_needs_a_user_with_read_accounts(
    client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    assert (await client.get("/api/v1/accounts/search", params={"q": "a"})).status_code == 401
    async with await scoped(client, db, alice, "read:statuses") as narrow:
        assert (await narrow.get("/api/v1/accounts/search", params={"q": "a"})).status_code == 403
    async with await scoped(client, db, None, "read") as app_only:
        assert (await app_only.get("/api/v1/accounts/search", params={"q": "a"})).status_code == 422
    async with await scoped(client, db, alice, "read:accounts") as api:
        assert (await api.get("/api/v1/accounts/search", params={"q": "a", "limit": "x"})).status_code == 422
