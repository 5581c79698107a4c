"""The viewer's followers as Mastodon apps manage them: familiar followers (``GET
/api/v1/accounts/familiar_followers``: who, of those I follow, follows this account) and
removing a follower (``POST /api/v1/accounts/:id/remove_from_followers``), which a remote
follower's server hears as a ``Reject`` of its Follow."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import utcnow
from server.models import (
    Account,
    Activity,
    DomainBlock,
    Follow,
    FollowRequest,
    Mute,
    Notification,
    User,
)
from server.services import follows
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.api.test_accounts import account_row
from tests.server.api.test_directory import remote, user

FOLLOW_URI = "https://remote.example/follows/7"


async def follow(db: Database, source_id: int, target_id: int) -> None:
    """A follow row as an accepted follow leaves it (newer rows get larger ids)."""
    async with db.session() as session:
        session.add(Follow(account_id=source_id, target_account_id=target_id))
        await session.commit()


async def count(db: Database, model: type, *where: Any) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def familiar(response: httpx.Response) -> list[tuple[str, list[str]]]:
    assert response.status_code == 200, response.text
    return [(item["id"], [account["username"] for account in item["accounts"]])
            for item in response.json()]


# ------------------------------------------------------------------ familiar followers


async def test_familiar_followers_are_the_followed_accounts_that_follow_each_one(
    alice_api: httpx.AsyncClient, db: Database, settings: Settings, alice: User, bob: User,
    carol: User
) -> None:
    dave, erin = await user(db, settings, "dave"), await user(db, settings, "erin")
    zed = await remote(db, "zed")
    for followed in (bob.account_id, carol.account_id, zed.id):
        await follow(db, alice.account_id, followed)
    await follow(db, bob.account_id, dave.account_id)
    await follow(db, zed.id, dave.account_id)
    await follow(db, carol.account_id, dave.account_id)
    await follow(db, erin.account_id, dave.account_id)  # alice does not follow erin
    await follow(db, bob.account_id, alice.account_id)  # a mutual: alice's own entry
    await follow(db, carol.account_id, erin.account_id)

    response = await alice_api.get("/api/v1/accounts/familiar_followers", params=[
        ("id[]", str(dave.account_id)), ("id[]", str(erin.account_id)),
        ("id[]", str(alice.account_id)), ("id[]", str(bob.account_id)),
        ("id[]", str(dave.account_id))])
    # In the order asked, each once; the most recent follow first.
    assert familiar(response) == [
        (str(dave.account_id), ["carol", "zed", "bob"]),
        (str(erin.account_id), ["carol"]),
        (str(alice.account_id), ["bob"]),
        (str(bob.account_id), []),
    ]
    entity = response.json()[0]["accounts"][1]
    assert entity["acct"] == "zed@remote.example" and entity["id"] == str(zed.id)
    assert (await alice_api.get("/api/v1/accounts/familiar_followers")).json() == []
    # A plain `id` works as in the other id lists.
    assert familiar(await alice_api.get(
        "/api/v1/accounts/familiar_followers", params={"id": str(erin.account_id)})) == [
        (str(erin.account_id), ["carol"])]


async def test_familiar_followers_leave_out_the_muted_the_suspended_and_unknown_ids(
    alice_api: httpx.AsyncClient, db: Database, settings: Settings, alice: User, bob: User,
    carol: User
) -> None:
    dave, erin = await user(db, settings, "dave"), await user(db, settings, "erin")
    for followed in (bob.account_id, carol.account_id, erin.account_id):
        await follow(db, alice.account_id, followed)
    for follower in (bob.account_id, carol.account_id, erin.account_id):
        await follow(db, follower, dave.account_id)
    await follow(db, bob.account_id, erin.account_id)
    async with db.session() as session:
        session.add(Mute(account_id=alice.account_id, target_account_id=carol.account_id))
        await session.execute(update(Account).where(Account.id == erin.account_id)
                              .values(suspended_at=utcnow()))
        await session.commit()
    response = await alice_api.get("/api/v1/accounts/familiar_followers", params=[
        ("id[]", str(dave.account_id)), ("id[]", str(erin.account_id)), ("id[]", "4242")])
    # carol is muted, erin suspended (left out as a follower, and as an account asked for),
    # 4242 is no one: as Mastodon, only what can be shown is answered.
    assert familiar(response) == [(str(dave.account_id), ["bob"])]

    async with db.session() as session:  # an expired mute hides nothing
        await session.execute(update(Mute).values(expires_at=utcnow()))
        await session.commit()
    response = await alice_api.get("/api/v1/accounts/familiar_followers",
                                   params={"id[]": str(dave.account_id)})
    assert familiar(response) == [(str(dave.account_id), ["carol", "bob"])]


async def test_familiar_followers_leave_out_accounts_of_a_suspended_domain(
    alice_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    zed = await remote(db, "zed")
    yan = await remote(db, "yan")
    await follow(db, alice.account_id, zed.id)
    await follow(db, zed.id, bob.account_id)
    await follow(db, alice.account_id, bob.account_id)
    await follow(db, bob.account_id, yan.id)
    async with db.session() as session:
        session.add(DomainBlock(domain="remote.example", severity="suspend"))
        await session.commit()
    response = await alice_api.get("/api/v1/accounts/familiar_followers", params=[
        ("id[]", str(bob.account_id)), ("id[]", str(yan.id))])
    assert familiar(response) == [(str(bob.account_id), [])]


async def test_familiar_followers_refuse_bad_requests(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    path = "/api/v1/accounts/familiar_followers"
    bad = await alice_api.get(path, params={"id[]": "abc"})
    assert bad.status_code == 422
    assert bad.json() == {"error": "Validation failed: id must contain ids"}
    too_many = await alice_api.get(path, params=[("id[]", str(n)) for n in range(1, 42)])
    assert too_many.status_code == 422
    assert too_many.json() == {"error": "Validation failed: at most 40 ids may be asked for"}
    assert (await client.get(path)).status_code == 401
    async with authorized(client, await make_token(db, alice, "read:accounts write")) as api:
        narrow = await api.get(path, params={"id[]": "1"})
    assert narrow.status_code == 403
    assert narrow.json() == {"error": "This action is outside the authorized scopes"}
    async with authorized(client, await make_token(db, None, "read")) as api:
        app_only = await api.get(path, params={"id[]": "1"})
    assert app_only.status_code == 422
    assert app_only.json() == {"error": "This method requires an authenticated user"}
    async with authorized(client, await make_token(db, alice, "read:follows")) as api:
        assert (await api.get(path, params={"id[]": "1"})).status_code == 200


# ---------------------------------------------------------------- remove from followers


async def test_removing_a_local_follower_ends_its_follow_and_sends_nothing(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User,
    bob: User
) -> None:
    assert (await bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow")).status_code == 200
    assert (await account_row(db, alice.account_id)).followers_count == 1
    assert await count(db, Notification, Notification.type == "follow") == 1

    response = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/remove_from_followers")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(bob.account_id)
    assert body["followed_by"] is False and body["following"] is False
    assert await count(db, Follow) == 0
    assert (await account_row(db, alice.account_id)).followers_count == 0
    assert (await account_row(db, bob.account_id)).following_count == 0
    assert await count(db, Notification, Notification.type == "follow") == 0
    assert await count(db, Activity) == 0
    relationship = (await bob_api.get("/api/v1/accounts/relationships",
                                      params={"id[]": str(alice.account_id)})).json()[0]
    assert relationship["following"] is False

    # Again, or for someone who does not follow: nothing changes, the relationship is shown.
    again = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/remove_from_followers")
    assert again.status_code == 200 and again.json()["followed_by"] is False
    assert (await account_row(db, alice.account_id)).followers_count == 0


async def test_removing_a_remote_follower_sends_a_reject_of_its_follow(
    alice_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    zed = await remote(db, "zed")
    async with db.session() as session:
        target = await session.get(Account, alice.account_id)
        assert target is not None
        assert await follows.remote_follow(session, zed, target, uri=FOLLOW_URI) == follows.FOLLOWED
        await session.commit()
    await follow(db, alice.account_id, zed.id)  # alice follows back: that stays

    response = await alice_api.post(f"/api/v1/accounts/{zed.id}/remove_from_followers")
    assert response.status_code == 200
    assert response.json()["followed_by"] is False and response.json()["following"] is True
    assert await count(db, Follow, Follow.account_id == zed.id) == 0
    assert (await account_row(db, alice.account_id)).followers_count == 0
    async with db.session() as session:
        sent = [(a.type, a.object_uri, a.payload) for a in await session.scalars(
            select(Activity).order_by(Activity.id))]
    assert [(kind, uri) for kind, uri, _ in sent] == [("Accept", FOLLOW_URI), ("Reject", FOLLOW_URI)]
    assert sent[1][2]["requester_id"] == zed.id and sent[1][2]["follow_uri"] == FOLLOW_URI

    # Removing again finds no follow: nothing more is sent.
    assert (await alice_api.post(f"/api/v1/accounts/{zed.id}/remove_from_followers")).status_code == 200
    assert await count(db, Activity, Activity.type == "Reject") == 1


async def test_a_pending_follow_request_is_not_a_follower(
    alice_api: httpx.AsyncClient, carol_api: httpx.AsyncClient, db: Database, alice: User,
    carol: User
) -> None:
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == alice.account_id)
                              .values(locked=True))
        await session.commit()
    assert (await carol_api.post(f"/api/v1/accounts/{alice.account_id}/follow")).status_code == 200
    response = await alice_api.post(f"/api/v1/accounts/{carol.account_id}/remove_from_followers")
    assert response.status_code == 200
    assert response.json()["requested_by"] is True
    assert await count(db, FollowRequest) == 1


async def test_remove_from_followers_refuses_bad_requests(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, db: Database, alice: User,
    bob: User
) -> None:
    for path in ("/api/v1/accounts/4242/remove_from_followers",
                 "/api/v1/accounts/abc/remove_from_followers"):
        response = await alice_api.post(path)
        assert response.status_code == 404
        assert response.json() == {"error": "Record not found"}
    own = await alice_api.post(f"/api/v1/accounts/{alice.account_id}/remove_from_followers")
    assert own.status_code == 200  # no one follows themselves: nothing to do, as Mastodon
    assert own.json()["id"] == str(alice.account_id) and own.json()["followed_by"] is False
    path = f"/api/v1/accounts/{bob.account_id}/remove_from_followers"
    assert (await client.post(path)).status_code == 401
    async with authorized(client, await make_token(db, alice, "read write:accounts")) as api:
        narrow = await api.post(path)
    assert narrow.status_code == 403
    async with authorized(client, await make_token(db, None, "write")) as api:
        assert (await api.post(path)).status_code == 422
    async with authorized(client, await make_token(db, alice, "write:follows")) as api:
        assert (await api.post(path)).status_code == 200
