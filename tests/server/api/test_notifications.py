"""Notifications through the client API: listing with filters and pages, one by id,
dismiss and clear — and nobody reaches another account's notifications."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from server.db import Database
from server.models import Follow, Notification, User
from server.settings import Settings
from tests.server.api.test_timelines import BASE, Factory, follow_links, ids, links, scoped_client


@pytest.fixture
def make(db: Database, settings: Settings) -> Factory:
    return Factory(db, settings)


async def count_notifications(db: Database, user: User) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Notification).where(
            Notification.account_id == user.account_id)) or 0)


async def test_notifications_list_newest_first_with_accounts_and_statuses(
    make: Factory, alice_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    work = await make.status(alice.account, "my painting")
    follow = await make.notification(alice.account, "follow", bob.account)
    favourite = await make.notification(alice.account, "favourite", bob.account, work)
    await make.notification(bob.account, "follow", alice.account)  # bob's, not alice's

    response = await alice_api.get("/api/v1/notifications")
    assert ids(response) == [str(favourite.id), str(follow.id)]
    newest = response.json()[0]
    assert newest["type"] == "favourite"
    assert newest["account"]["username"] == "bob"
    assert newest["status"]["id"] == str(work.id)
    assert response.json()[1]["status"] is None


async def test_notifications_filter_by_type_and_sender(
    make: Factory, alice_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    carol = (await make.user("carol")).account
    work = await make.status(alice.account, "work")
    follow = await make.notification(alice.account, "follow", bob.account)
    favourite = await make.notification(alice.account, "favourite", bob.account, work)
    mention = await make.notification(alice.account, "mention", carol, work)

    async def listed(**params: Any) -> list[str]:
        return ids(await alice_api.get("/api/v1/notifications", params=params))

    assert await listed(**{"types[]": ["follow", "mention"]}) == [str(mention.id), str(follow.id)]
    assert await listed(**{"exclude_types[]": ["follow"]}) == [str(mention.id), str(favourite.id)]
    assert await listed(**{"types[]": ["follow", "favourite"], "exclude_types[]": ["follow"]}) == [
        str(favourite.id)]
    assert await listed(account_id=str(bob.account_id)) == [str(favourite.id), str(follow.id)]
    assert await listed(account_id=str(carol.id), **{"types[]": "follow"}) == []
    # Types Easel does not know, and senders that are not ids, match nothing (never a 500).
    assert await listed(**{"types[]": ["poll_vote_of_doom"]}) == []
    assert await listed(**{"exclude_types[]": ["nonsense"]}) == [
        str(mention.id), str(favourite.id), str(follow.id)]
    assert await listed(account_id="bob") == []


async def test_notifications_page_by_their_own_ids(
    make: Factory, alice_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    made = [await make.notification(alice.account, "follow", bob.account) for _ in range(3)]
    newest_first = [str(n.id) for n in reversed(made)]
    first = await alice_api.get("/api/v1/notifications", params={"limit": "2"})
    assert links(first)["next"] == f"{BASE}/api/v1/notifications?limit=2&max_id={newest_first[1]}"
    assert await follow_links(alice_api, first, "next") == [newest_first[:2], newest_first[2:]]
    since = await alice_api.get("/api/v1/notifications", params={"min_id": newest_first[2]})
    assert ids(since) == newest_first[:2]
    filtered = await alice_api.get("/api/v1/notifications",
                                   params={"limit": "1", "types[]": "follow"})
    assert "types%5B%5D=follow" in links(filtered)["next"]
    assert (await alice_api.get("/api/v1/notifications", params={"limit": "x"})).status_code == 422


async def test_notifications_about_statuses_the_viewer_cannot_see_are_left_out(
    make: Factory, db: Database, alice_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    await make.follow(alice.account, bob.account)
    private = await make.status(bob.account, "@alice followers only", visibility="private")
    mention = await make.notification(alice.account, "status", bob.account, private)
    assert ids(await alice_api.get("/api/v1/notifications")) == [str(mention.id)]
    async with db.session() as session:
        await session.delete(await session.scalar(select(Follow)))
        await session.commit()
    assert ids(await alice_api.get("/api/v1/notifications")) == []
    hidden = await alice_api.get(f"/api/v1/notifications/{mention.id}")
    assert hidden.status_code == 404


async def test_a_notification_by_id_is_only_its_recipients(
    make: Factory, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    notification = await make.notification(alice.account, "follow", bob.account)
    mine = await alice_api.get(f"/api/v1/notifications/{notification.id}")
    assert mine.status_code == 200
    assert mine.json()["id"] == str(notification.id) and mine.json()["type"] == "follow"
    theirs = await bob_api.get(f"/api/v1/notifications/{notification.id}")
    assert theirs.status_code == 404 and theirs.json() == {"error": "Record not found"}
    assert (await alice_api.get("/api/v1/notifications/not-an-id")).status_code == 404
    assert (await alice_api.get("/api/v1/notifications/12345")).status_code == 404


async def test_dismiss_removes_only_ones_own_notification(
    make: Factory, db: Database, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
    alice: User, bob: User,
) -> None:
    first = await make.notification(alice.account, "follow", bob.account)
    second = await make.notification(alice.account, "mention", bob.account)

    refused = await bob_api.post(f"/api/v1/notifications/{first.id}/dismiss")
    assert refused.status_code == 404 and refused.json() == {"error": "Record not found"}
    assert await count_notifications(db, alice) == 2
    assert (await alice_api.post("/api/v1/notifications/abc/dismiss")).status_code == 404

    dismissed = await alice_api.post(f"/api/v1/notifications/{first.id}/dismiss")
    assert dismissed.status_code == 200 and dismissed.json() == {}
    assert ids(await alice_api.get("/api/v1/notifications")) == [str(second.id)]
    again = await alice_api.post(f"/api/v1/notifications/{first.id}/dismiss")
    assert again.status_code == 404


async def test_clear_removes_all_of_ones_own_notifications_only(
    make: Factory, db: Database, alice_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    for _ in range(3):
        await make.notification(alice.account, "follow", bob.account)
    await make.notification(bob.account, "follow", alice.account)
    cleared = await alice_api.post("/api/v1/notifications/clear")
    assert cleared.status_code == 200 and cleared.json() == {}
    assert await count_notifications(db, alice) == 0
    assert await count_notifications(db, bob) == 1


async def test_notifications_need_a_user_and_the_right_scopes(
    make: Factory, client: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    notification = await make.notification(alice.account, "follow", bob.account)
    assert (await client.get("/api/v1/notifications")).status_code == 401
    assert (await client.post("/api/v1/notifications/clear")).status_code == 401
    async with await scoped_client(client, db, alice, "read:notifications") as reader:
        assert (await reader.get("/api/v1/notifications")).status_code == 200
        assert (await reader.post("/api/v1/notifications/clear")).status_code == 403
        assert (await reader.post(
            f"/api/v1/notifications/{notification.id}/dismiss")).status_code == 403
    async with await scoped_client(client, db, alice, "write:notifications") as writer:
        assert (await writer.get("/api/v1/notifications")).status_code == 403
    async with await scoped_client(client, db, alice, "read:statuses write:statuses") as other:
        assert (await other.get(f"/api/v1/notifications/{notification.id}")).status_code == 403
    async with await scoped_client(client, db, None, "read write") as app_only:
        assert (await app_only.get("/api/v1/notifications")).status_code == 422
    assert await count_notifications(db, alice) == 1


async def test_the_prebuilt_notifications_statement_binds_viewer_sender_and_time(
    make: Factory, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    """The page's statement is built once per filter shape (``timelines.PREBUILT``): each
    viewer gets its own from it, a sender filter binds its sender, and a mute that hides
    notifications counts until its end."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from server.models import Mute

    carol = (await make.user("carol")).account
    by_bob = await make.notification(alice.account, "follow", bob.account)
    by_carol = await make.notification(alice.account, "follow", carol)
    to_bob = await make.notification(bob.account, "follow", carol)
    assert ids(await alice_api.get("/api/v1/notifications")) == [str(by_carol.id), str(by_bob.id)]
    assert ids(await bob_api.get("/api/v1/notifications")) == [str(to_bob.id)]
    for sender, expected in ((bob.account_id, by_bob), (carol.id, by_carol)):
        assert ids(await alice_api.get("/api/v1/notifications",
                                       params={"account_id": str(sender)})) == [str(expected.id)]

    now = datetime.now(UTC)
    await make.add(Mute(account_id=alice.account_id, target_account_id=carol.id,
                        hide_notifications=True, expires_at=now - timedelta(minutes=1)))
    assert ids(await alice_api.get("/api/v1/notifications")) == [str(by_carol.id), str(by_bob.id)]
    async with make.db.session() as session:
        await session.execute(update(Mute).values(expires_at=now + timedelta(hours=1)))
        await session.commit()
    assert ids(await alice_api.get("/api/v1/notifications")) == [str(by_bob.id)]


async def test_any_types_filter_is_one_prebuilt_statement_with_the_types_bound(
    make: Factory, alice_api: httpx.AsyncClient, alice: User, bob: User
) -> None:
    """``types[]``/``exclude_types[]`` combinations share one statement (the types are one
    bound list): a client cycling through them does not push others' statements out."""
    from server.services import timelines

    follow = await make.notification(alice.account, "follow", bob.account)
    favourite = await make.notification(alice.account, "favourite", bob.account)
    mention = await make.notification(alice.account, "mention", bob.account)
    everything = [str(mention.id), str(favourite.id), str(follow.id)]
    timelines.PREBUILT.statements.clear()
    cases: list[tuple[dict[str, list[str]], list[str]]] = [
        ({"types[]": ["follow"]}, [str(follow.id)]),
        ({"types[]": ["mention", "follow"]}, [str(mention.id), str(follow.id)]),
        ({"exclude_types[]": ["mention"]}, [str(favourite.id), str(follow.id)]),
        ({"types[]": ["favourite", "follow"], "exclude_types[]": ["follow"]}, [str(favourite.id)]),
    ]
    for params, expected in cases:
        assert ids(await alice_api.get("/api/v1/notifications", params=params)) == expected
    assert len(timelines.PREBUILT.statements) == 1
    # Every type, or none at all, are statements of their own (no list to bind).
    assert ids(await alice_api.get("/api/v1/notifications")) == everything
    assert ids(await alice_api.get("/api/v1/notifications",
                                   params={"types[]": ["follow"], "exclude_types[]": ["follow"]})) == []
    assert len(timelines.PREBUILT.statements) == 3
