"""Blocks and mutes through the client API: the relationship each answers, the lists, and
what they hide — timelines, statuses, notifications, follows — as Mastodon does."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import utcnow
from server.models import Follow, Mute, Notification, User
from tests.conftest import authorized, make_token


async def post(api: httpx.AsyncClient, text: str, **extra: str) -> str:
    response = await api.post("/api/v1/statuses", data={"status": text, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def timeline_ids(api: httpx.AsyncClient, path: str) -> list[str]:
    response = await api.get(path)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()]


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_blocking_answers_the_relationship_and_ends_follows_both_ways(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User, bob: User,
        db: Database) -> None:
    assert (await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")).status_code == 200
    assert (await bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow")).status_code == 200
    response = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/block")
    assert response.status_code == 200
    relationship = response.json()
    assert relationship["id"] == str(bob.account_id)
    assert (relationship["blocking"], relationship["following"], relationship["followed_by"]) \
        == (True, False, False)
    assert await count(db, Follow) == 0
    seen_by_bob = (await bob_api.get("/api/v1/accounts/relationships",
                                     params={"id[]": str(alice.account_id)})).json()[0]
    assert (seen_by_bob["blocked_by"], seen_by_bob["blocking"]) == (True, False)
    # Neither may follow the other while the block stands.
    for api, target in ((bob_api, alice.account_id), (alice_api, bob.account_id)):
        refused = await api.post(f"/api/v1/accounts/{target}/follow")
        assert refused.status_code == 403 and refused.json() == {"error": "This action is not allowed"}
    counts = (await alice_api.get(f"/api/v1/accounts/{alice.account_id}")).json()
    assert (counts["followers_count"], counts["following_count"]) == (0, 0)

    listed = await alice_api.get("/api/v1/blocks")
    assert [a["id"] for a in listed.json()] == [str(bob.account_id)]
    assert 'rel="next"' in listed.headers["link"]
    unblocked = (await alice_api.post(f"/api/v1/accounts/{bob.account_id}/unblock")).json()
    assert unblocked["blocking"] is False
    assert (await alice_api.get("/api/v1/blocks")).json() == []
    assert (await bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow")).status_code == 200


async def test_a_blocked_account_sees_none_of_the_blockers_posts_nor_does_the_blocker_see_its(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User, bob: User) -> None:
    alices = await post(alice_api, "alice here #art")
    bobs = await post(bob_api, "bob here #art")
    await bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow")
    await alice_api.post(f"/api/v1/statuses/{bobs}/favourite")
    assert (await alice_api.post(f"/api/v1/accounts/{bob.account_id}/block")).status_code == 200

    assert (await bob_api.get(f"/api/v1/statuses/{alices}")).status_code == 404
    assert (await alice_api.get(f"/api/v1/statuses/{bobs}")).status_code == 200  # not hidden by id
    for path in ("/api/v1/timelines/public", "/api/v1/timelines/tag/art"):
        assert await timeline_ids(alice_api, path) == [alices]
        assert await timeline_ids(bob_api, path) == [bobs]
    assert alices not in await timeline_ids(bob_api, "/api/v1/timelines/home")
    # A mention from the blocked account notifies nobody.
    await post(bob_api, "@alice hello?")
    kinds = [n["type"] for n in (await alice_api.get("/api/v1/notifications")).json()]
    assert "mention" not in kinds


async def test_muting_hides_posts_and_boosts_and_optionally_notifications_until_it_expires(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        alice: User, bob: User, db: Database) -> None:
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    bobs = await post(bob_api, "bob posts")
    carols = await post(carol_api, "carol posts")
    await bob_api.post(f"/api/v1/statuses/{carols}/reblog")
    muted = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/mute",
                                 data={"notifications": "false", "duration": "3600"})
    assert muted.status_code == 200
    assert (muted.json()["muting"], muted.json()["muting_notifications"]) == (True, False)
    assert muted.json()["following"] is True  # a mute is not a block

    home = await timeline_ids(alice_api, "/api/v1/timelines/home")
    assert bobs not in home and all(s not in home for s in (bobs,))
    assert bobs not in await timeline_ids(alice_api, "/api/v1/timelines/public")
    # Notifications still come (notifications=false) ...
    await post(bob_api, "@alice psst")
    assert "mention" in [n["type"] for n in (await alice_api.get("/api/v1/notifications")).json()]
    # ... until the mute hides them too: existing ones disappear, new ones are not made.
    again = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/mute")
    assert again.json()["muting_notifications"] is True
    assert (await alice_api.get("/api/v1/notifications")).json() == []
    before = await count(db, Notification)
    await post(bob_api, "@alice psst again")
    assert await count(db, Notification) == before

    listed = (await alice_api.get("/api/v1/mutes")).json()
    assert [a["id"] for a in listed] == [str(bob.account_id)]
    assert listed[0]["mute_expires_at"] is None  # the second mute has no duration

    # An expired mute hides nothing.
    async with db.session() as session:
        await session.execute(update(Mute).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    assert bobs in await timeline_ids(alice_api, "/api/v1/timelines/home")
    assert (await alice_api.get("/api/v1/mutes")).json() == []
    unmuted = (await alice_api.post(f"/api/v1/accounts/{bob.account_id}/unmute")).json()
    assert unmuted["muting"] is False


async def test_timed_mutes_say_when_they_end(alice_api: httpx.AsyncClient, bob: User) -> None:
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/mute", json={"duration": 60})
    [entry] = (await alice_api.get("/api/v1/mutes")).json()
    assert entry["mute_expires_at"] is not None and entry["mute_expires_at"].endswith("Z")


async def test_bad_block_and_mute_requests_are_refused_clearly(
        alice_api: httpx.AsyncClient, client: httpx.AsyncClient, db: Database, alice: User,
        bob: User) -> None:
    me = alice.account_id
    for action in ("block", "mute"):
        refused = await alice_api.post(f"/api/v1/accounts/{me}/{action}")
        assert refused.status_code == 403 and refused.json() == {"error": "This action is not allowed"}
        missing = await alice_api.post(f"/api/v1/accounts/999999/{action}")
        assert missing.status_code == 404 and "error" in missing.json()
        bad_id = await alice_api.post(f"/api/v1/accounts/nope/{action}")
        assert bad_id.status_code == 404 and "error" in bad_id.json()
    for duration in ("-5", "soon", str(10**12)):
        bad = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/mute", data={"duration": duration})
        assert bad.status_code == 422 and bad.json()["error"].startswith("Validation failed"), duration
    assert (await alice_api.get("/api/v1/mutes")).json() == []
    # Scopes: blocks need write:blocks (or follow/write), lists read:blocks / read:mutes.
    assert (await client.post(f"/api/v1/accounts/{bob.account_id}/block")).status_code == 401
    reader = authorized(client, await make_token(db, alice, "read"))
    assert (await reader.post(f"/api/v1/accounts/{bob.account_id}/block")).status_code == 403
    assert (await reader.get("/api/v1/blocks")).status_code == 200
    follow_scope = authorized(client, await make_token(db, alice, "follow"))
    assert (await follow_scope.post(f"/api/v1/accounts/{bob.account_id}/block")).status_code == 200
