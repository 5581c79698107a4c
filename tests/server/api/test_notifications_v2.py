"""Mastodon 4.3's notification surface through the client API: grouped notifications
(/api/v2/notifications and its group routes), unread counts, notification policies (v1 and
v2) and the requests that hold filtered mentions — with bad input on every write, and
Mastodon.py's grouped-notification and policy methods against a live server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from mastodon import Mastodon, MastodonAPIError, MastodonNotFoundError
from sqlalchemy import delete, func, select, update

from server.db import Database
from server.models import Notification, NotificationPermission, NotificationRequest, User
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.api.live import LiveServer, live_server


async def post(api: httpx.AsyncClient, text: str, **extra: str) -> str:
    response = await api.post("/api/v1/statuses", data={"status": text, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def ok(response_awaitable: object) -> httpx.Response:
    response: httpx.Response = await response_awaitable  # type: ignore[misc]
    assert response.status_code == 200, response.text
    return response


async def rows(db: Database, model: type, **where: object) -> int:
    async with db.session() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


async def v1_types(api: httpx.AsyncClient, **params: str) -> list[tuple[str, str]]:
    body = (await ok(api.get("/api/v1/notifications", params=params))).json()
    return [(n["type"], n["account"]["username"]) for n in body]


@pytest.fixture
async def favourited_and_followed(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
    alice: User, bob: User, carol: User,
) -> str:
    """Bob then Carol favourite and follow Alice; Bob mentions her in public."""
    work = await post(alice_api, "my painting")
    for api in (bob_api, carol_api):
        await ok(api.post(f"/api/v1/statuses/{work}/favourite"))
        await ok(api.post(f"/api/v1/accounts/{alice.account_id}/follow"))
    await post(bob_api, "@alice lovely work")
    return work


# ------------------------------------------------------------------ grouped notifications

async def test_grouped_notifications_collapse_favourites_and_follows(
    favourited_and_followed: str, alice_api: httpx.AsyncClient, bob: User, carol: User
) -> None:
    work = favourited_and_followed
    response = await ok(alice_api.get("/api/v2/notifications"))
    body = response.json()
    groups = body["notification_groups"]
    assert [g["type"] for g in groups] == ["mention", "follow", "favourite"]
    mention, follow, favourite = groups
    assert mention["group_key"].startswith("ungrouped-")
    assert mention["notifications_count"] == 1 and mention["sample_account_ids"] == [str(bob.account_id)]
    assert follow["group_key"].startswith("follow-") and "status_id" not in follow
    assert follow["notifications_count"] == 2
    assert follow["sample_account_ids"] == [str(carol.account_id), str(bob.account_id)]
    assert favourite["group_key"].startswith(f"favourite-{work}-")
    assert favourite["status_id"] == work and favourite["notifications_count"] == 2
    # The page spans its groups' most recent notifications (Mastodon's pagination range).
    assert favourite["page_min_id"] == favourite["page_max_id"] \
        == favourite["most_recent_notification_id"]
    assert favourite["latest_page_notification_at"].endswith("Z")
    # Each account and status once; the groups refer to them by id.
    assert sorted(a["id"] for a in body["accounts"]) == sorted(
        [str(bob.account_id), str(carol.account_id)])
    assert {s["id"] for s in body["statuses"]} == {work, mention["status_id"]}
    assert "partial_accounts" not in body
    assert 'rel="next"' in response.headers["link"]

    # The v1 list carries the same group keys.
    v1 = (await ok(alice_api.get("/api/v1/notifications"))).json()
    assert {n["group_key"] for n in v1} == {g["group_key"] for g in groups}

    # Only the grouped types the client asks for are grouped.
    only_favourites = (await ok(alice_api.get(
        "/api/v2/notifications", params={"grouped_types[]": "favourite"}))).json()
    assert [g["type"] for g in only_favourites["notification_groups"]] == [
        "mention", "follow", "favourite", "follow"]
    # types / exclude_types narrow as in v1.
    follows = (await ok(alice_api.get("/api/v2/notifications",
                                      params={"types[]": "follow"}))).json()
    assert [g["type"] for g in follows["notification_groups"]] == ["follow"]


async def test_partial_avatars_give_one_full_account_per_group(
    favourited_and_followed: str, alice_api: httpx.AsyncClient, bob: User, carol: User
) -> None:
    body = (await ok(alice_api.get("/api/v2/notifications",
                                   params={"expand_accounts": "partial_avatars",
                                           "types[]": ["favourite"]}))).json()
    assert [a["id"] for a in body["accounts"]] == [str(carol.account_id)]
    assert [a["id"] for a in body["partial_accounts"]] == [str(bob.account_id)]
    assert set(body["partial_accounts"][0]) == {
        "id", "acct", "url", "avatar", "avatar_static", "locked", "bot"}

    bad = await alice_api.get("/api/v2/notifications", params={"expand_accounts": "all"})
    assert bad.status_code == 400
    assert bad.json() == {"error": "Invalid value for 'expand_accounts': 'all', "
                                   "allowed values are 'full' and 'partial_avatars'"}


async def test_grouped_pages_follow_the_link_header(
    favourited_and_followed: str, alice_api: httpx.AsyncClient
) -> None:
    first = await ok(alice_api.get("/api/v2/notifications", params={"limit": "2"}))
    assert [g["type"] for g in first.json()["notification_groups"]] == ["mention", "follow"]
    next_url = first.headers["link"].split(";")[0].strip("<>")
    second = await ok(alice_api.get(next_url))
    # Below the page: Carol's favourite (the group counts both up to there), Bob's follow.
    assert [(g["type"], g["notifications_count"]) for g in second.json()["notification_groups"]] \
        == [("favourite", 2), ("follow", 1)]
    prev_url = second.headers["link"].split(", ")[1].split(";")[0].strip("<>")
    back = await ok(alice_api.get(prev_url))
    assert [g["type"] for g in back.json()["notification_groups"]] == ["mention", "follow"]


async def test_one_group_its_accounts_and_dismissing_it(
    favourited_and_followed: str, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
    bob: User, carol: User,
) -> None:
    groups = (await ok(alice_api.get("/api/v2/notifications"))).json()["notification_groups"]
    mention, follow, favourite = groups
    shown = (await ok(alice_api.get(f"/api/v2/notifications/{favourite['group_key']}"))).json()
    [group] = shown["notification_groups"]
    assert group["notifications_count"] == 2 and "page_min_id" not in group
    assert [s["id"] for s in shown["statuses"]] == [favourite["status_id"]]
    single = (await ok(alice_api.get(f"/api/v2/notifications/{mention['group_key']}"))).json()
    assert single["notification_groups"][0]["group_key"] == mention["group_key"]

    accounts = await ok(alice_api.get(f"/api/v2/notifications/{follow['group_key']}/accounts"))
    assert [a["id"] for a in accounts.json()] == [str(carol.account_id), str(bob.account_id)]

    # Nobody else reaches Alice's groups; unknown keys are not found (or an empty list).
    for key in (favourite["group_key"], "nonsense", "ungrouped-abc", "ungrouped-1"):
        missing = await bob_api.get(f"/api/v2/notifications/{key}")
        assert missing.status_code == 404 and missing.json() == {"error": "Record not found"}
    assert (await ok(bob_api.get(f"/api/v2/notifications/{follow['group_key']}/accounts"))).json() == []
    await ok(bob_api.post(f"/api/v2/notifications/{favourite['group_key']}/dismiss"))
    await ok(alice_api.post("/api/v2/notifications/ungrouped-nope/dismiss"))
    assert len((await ok(alice_api.get("/api/v2/notifications"))).json()["notification_groups"]) == 3

    assert (await ok(alice_api.post(f"/api/v2/notifications/{favourite['group_key']}/dismiss"))).json() == {}
    assert (await ok(alice_api.post(f"/api/v2/notifications/{mention['group_key']}/dismiss"))).json() == {}
    left = (await ok(alice_api.get("/api/v2/notifications"))).json()["notification_groups"]
    assert [g["type"] for g in left] == ["follow"]


async def test_unread_counts_start_after_the_notifications_marker(
    favourited_and_followed: str, alice_api: httpx.AsyncClient
) -> None:
    assert (await ok(alice_api.get("/api/v1/notifications/unread_count"))).json() == {"count": 5}
    assert (await ok(alice_api.get("/api/v2/notifications/unread_count"))).json() == {"count": 3}
    assert (await ok(alice_api.get("/api/v2/notifications/unread_count",
                                   params={"limit": "2"}))).json() == {"count": 2}
    v1 = (await ok(alice_api.get("/api/v1/notifications"))).json()
    # Read up to the first favourite: the second favourite, both follows and the mention remain.
    oldest = v1[-1]["id"]
    await ok(alice_api.post("/api/v1/markers", data={"notifications[last_read_id]": oldest}))
    assert (await ok(alice_api.get("/api/v1/notifications/unread_count"))).json() == {"count": 4}
    assert (await ok(alice_api.get("/api/v2/notifications/unread_count"))).json() == {"count": 3}
    assert (await ok(alice_api.get("/api/v1/notifications/unread_count",
                                   params={"types[]": "follow"}))).json() == {"count": 2}
    bad = await alice_api.get("/api/v1/notifications/unread_count", params={"limit": "many"})
    assert bad.status_code == 422


async def test_a_group_spans_at_most_twelve_hours(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
    db: Database, carol: User,
) -> None:
    work = await post(alice_api, "a painting")
    await ok(bob_api.post(f"/api/v1/statuses/{work}/favourite"))
    async with db.session() as session:
        first = await session.scalar(select(Notification).where(Notification.type == "favourite"))
        assert first is not None and first.group_key is not None
        bucket = int(first.group_key.rsplit("-", 1)[1])
        # Pretend Bob's favourite came eleven hours ago: Carol's joins its group.
        first.group_key = f"favourite-{work}-{bucket - 11}"
        await session.commit()
    await ok(carol_api.post(f"/api/v1/statuses/{work}/favourite"))
    groups = (await ok(alice_api.get("/api/v2/notifications"))).json()["notification_groups"]
    assert [(g["group_key"], g["notifications_count"]) for g in groups] == [
        (f"favourite-{work}-{bucket - 11}", 2)]

    # Twelve hours on, a new favourite starts a new group.
    async with db.session() as session:
        await session.execute(delete(Notification).where(
            Notification.from_account_id == carol.account_id))
        await session.execute(update(Notification).values(group_key=f"favourite-{work}-{bucket - 12}"))
        await session.commit()
    await ok(carol_api.post(f"/api/v1/statuses/{work}/unfavourite"))
    await ok(carol_api.post(f"/api/v1/statuses/{work}/favourite"))
    groups = (await ok(alice_api.get("/api/v2/notifications"))).json()["notification_groups"]
    assert [(g["group_key"], g["notifications_count"]) for g in groups] == [
        (f"favourite-{work}-{bucket}", 1), (f"favourite-{work}-{bucket - 12}", 1)]


async def test_new_accounts_and_replies_to_ones_own_private_mentions(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
    bob: User,
) -> None:
    # Alice writes to Bob privately first: his private answer is not "out of the blue".
    opener = await post(alice_api, "@bob do you take commissions?", visibility="direct")
    await post(bob_api, "@alice yes!", visibility="direct", in_reply_to_id=opener)
    assert await v1_types(alice_api) == [("mention", "bob")]
    # Every account here is new (under 30 days): filtering new accounts holds Carol back.
    await ok(alice_api.patch("/api/v2/notifications/policy", data={"for_new_accounts": "filter"}))
    work = await post(alice_api, "a painting")
    await ok(carol_api.post(f"/api/v1/statuses/{work}/favourite"))
    assert await v1_types(alice_api) == [("mention", "bob")]
    assert await v1_types(alice_api, include_filtered="1") == [
        ("favourite", "carol"), ("mention", "bob")]


# ------------------------------------------------------------------------------- policy

DEFAULT_POLICY = {"for_not_following": "accept", "for_not_followers": "accept",
                  "for_new_accounts": "accept", "for_private_mentions": "filter",
                  "for_limited_accounts": "filter",
                  "summary": {"pending_requests_count": 0, "pending_notifications_count": 0}}


async def test_policy_defaults_and_updates_v2_and_v1(alice_api: httpx.AsyncClient,
                                                     bob_api: httpx.AsyncClient) -> None:
    assert (await ok(alice_api.get("/api/v2/notifications/policy"))).json() == DEFAULT_POLICY
    assert (await ok(alice_api.get("/api/v1/notifications/policy"))).json() == {
        "filter_not_following": False, "filter_not_followers": False,
        "filter_new_accounts": False, "filter_private_mentions": True,
        "summary": {"pending_requests_count": 0, "pending_notifications_count": 0}}

    updated = await ok(alice_api.patch("/api/v2/notifications/policy",
                                       json={"for_not_following": "drop",
                                             "for_new_accounts": "filter"}))
    assert updated.json()["for_not_following"] == "drop"
    assert updated.json()["for_new_accounts"] == "filter"
    assert updated.json()["for_private_mentions"] == "filter"

    # Bad values: 422 and nothing stored.
    for body in ({"for_not_following": "ignore"}, {"for_new_accounts": "accept",
                                                   "for_not_followers": "maybe"},
                 {"for_private_mentions": ""}, {"for_limited_accounts": True}):
        bad = await alice_api.patch("/api/v2/notifications/policy", json=body)
        assert bad.status_code == 422, body
        assert bad.json()["error"].startswith("Validation failed")
    bad_json = await alice_api.patch("/api/v2/notifications/policy", content=b"{",
                                     headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    stored = (await ok(alice_api.get("/api/v2/notifications/policy"))).json()
    assert (stored["for_not_following"], stored["for_new_accounts"],
            stored["for_not_followers"]) == ("drop", "filter", "accept")

    v1 = await ok(alice_api.patch("/api/v1/notifications/policy",
                                  data={"filter_not_following": "false",
                                        "filter_private_mentions": "false"}))
    assert v1.json()["filter_not_following"] is False
    assert v1.json()["filter_new_accounts"] is True
    assert v1.json()["filter_private_mentions"] is False
    assert (await ok(alice_api.get("/api/v2/notifications/policy"))).json()[
        "for_private_mentions"] == "accept"
    bad = await alice_api.patch("/api/v1/notifications/policy", data={"filter_new_accounts": "perhaps"})
    assert bad.status_code == 422
    # Bob's policy is his own.
    assert (await ok(bob_api.get("/api/v2/notifications/policy"))).json() == DEFAULT_POLICY


async def test_policy_needs_the_right_scopes(client: httpx.AsyncClient, db: Database,
                                            alice: User) -> None:
    async with authorized(client, await make_token(db, alice, "read")) as reader:
        assert (await reader.get("/api/v2/notifications/policy")).status_code == 200
        refused = await reader.patch("/api/v2/notifications/policy",
                                     data={"for_not_following": "filter"})
        assert refused.status_code == 403
        assert (await reader.post("/api/v1/notifications/requests/accept",
                                  data={"id[]": "1"})).status_code == 403
    assert (await client.get("/api/v2/notifications")).status_code == 401


async def test_dropping_and_filtering_by_policy(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
    alice: User, bob: User, carol: User, db: Database,
) -> None:
    work = await post(alice_api, "a painting")
    await ok(alice_api.post(f"/api/v1/accounts/{carol.account_id}/follow"))
    await ok(alice_api.patch("/api/v2/notifications/policy", data={"for_not_following": "drop"}))
    await ok(bob_api.post(f"/api/v1/statuses/{work}/favourite"))    # Alice does not follow Bob
    await ok(carol_api.post(f"/api/v1/statuses/{work}/favourite"))  # she follows Carol
    assert await v1_types(alice_api) == [("favourite", "carol")]
    assert await rows(db, Notification, from_account_id=bob.account_id) == 0

    await ok(alice_api.patch("/api/v2/notifications/policy", data={"for_not_following": "filter"}))
    await ok(bob_api.post(f"/api/v1/accounts/{alice.account_id}/follow"))
    assert await v1_types(alice_api) == [("favourite", "carol")]
    assert await v1_types(alice_api, include_filtered="true") == [
        ("follow", "bob"), ("favourite", "carol")]
    grouped = (await ok(alice_api.get("/api/v2/notifications"))).json()
    assert [g["type"] for g in grouped["notification_groups"]] == ["favourite"]
    # Only mentions are held as requests (Mastodon 4.3).
    assert (await ok(alice_api.get("/api/v1/notifications/requests"))).json() == []


# ----------------------------------------------------------------------------- requests

async def test_a_private_mention_from_a_stranger_waits_as_a_request_until_accepted(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
    alice: User, bob: User, db: Database,
) -> None:
    first = await post(bob_api, "@alice hello there", visibility="direct")
    second = await post(bob_api, "@alice are you there?", visibility="direct")
    await post(carol_api, "@alice public hello")
    assert await v1_types(alice_api) == [("mention", "carol")]
    assert (await ok(alice_api.get("/api/v1/notifications/unread_count"))).json() == {"count": 1}

    policy = (await ok(alice_api.get("/api/v2/notifications/policy"))).json()
    assert policy["summary"] == {"pending_requests_count": 1, "pending_notifications_count": 2}
    listed = await ok(alice_api.get("/api/v1/notifications/requests"))
    [request] = listed.json()
    assert request["account"]["id"] == str(bob.account_id)
    assert request["notifications_count"] == "2"
    assert request["last_status"]["id"] == second and first != second
    assert request["created_at"].endswith("Z") and request["updated_at"].endswith("Z")
    assert (await ok(alice_api.get(f"/api/v1/notifications/requests/{request['id']}"))).json() == request

    # Nobody else reaches it; bad ids are not found.
    for path in (f"/api/v1/notifications/requests/{request['id']}", "/api/v1/notifications/requests/abc"):
        assert (await bob_api.get(path)).status_code == 404
    for action in ("accept", "dismiss"):
        missing = await bob_api.post(f"/api/v1/notifications/requests/{request['id']}/{action}")
        assert missing.status_code == 404 and missing.json() == {"error": "Record not found"}
    assert await rows(db, NotificationRequest) == 1

    assert (await ok(alice_api.get("/api/v1/notifications/requests/merged"))).json() == {"merged": True}
    assert (await ok(alice_api.post(f"/api/v1/notifications/requests/{request['id']}/accept"))).json() == {}
    assert await v1_types(alice_api) == [("mention", "carol"), ("mention", "bob"), ("mention", "bob")]
    assert (await ok(alice_api.get("/api/v1/notifications/requests"))).json() == []
    assert await rows(db, NotificationPermission, from_account_id=bob.account_id) == 1
    # From now on Bob's private mentions come straight through.
    await post(bob_api, "@alice thanks!", visibility="direct")
    assert (await v1_types(alice_api))[0] == ("mention", "bob")
    assert await rows(db, Notification, filtered=True) == 0


async def test_dismissing_requests_one_or_many_deletes_what_they_held(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
    alice: User, db: Database,
) -> None:
    await post(bob_api, "@alice psst", visibility="direct")
    await post(carol_api, "@alice psst", visibility="direct")
    requests = (await ok(alice_api.get("/api/v1/notifications/requests", params={"limit": "1"})))
    assert len(requests.json()) == 1 and 'rel="next"' in requests.headers["link"]
    ids = [r["id"] for r in (await ok(alice_api.get("/api/v1/notifications/requests"))).json()]
    assert len(ids) == 2

    await ok(alice_api.post(f"/api/v1/notifications/requests/{ids[0]}/dismiss"))
    assert await rows(db, NotificationRequest) == 1
    assert await rows(db, Notification, filtered=True) == 1

    # Bulk: the id is required and must be ids; others' and unknown ids are skipped.
    missing = await alice_api.post("/api/v1/notifications/requests/dismiss")
    assert missing.status_code == 400
    assert missing.json() == {"error": "param is missing or the value is empty: id"}
    garbage = await alice_api.post("/api/v1/notifications/requests/accept", data={"id[]": "x"})
    assert garbage.status_code == 422
    assert await rows(db, NotificationRequest) == 1
    await ok(bob_api.post("/api/v1/notifications/requests/dismiss", data={"id[]": ids[1]}))
    assert await rows(db, NotificationRequest) == 1
    await ok(alice_api.post("/api/v1/notifications/requests/dismiss",
                            json={"id": [ids[1], "12345"]}))
    assert await rows(db, NotificationRequest) == 0
    assert await rows(db, Notification) == 0
    assert await v1_types(alice_api, include_filtered="true") == []


async def test_accepting_requests_in_bulk(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
) -> None:
    await post(bob_api, "@alice one", visibility="direct")
    await post(carol_api, "@alice two", visibility="direct")
    ids = [r["id"] for r in (await ok(alice_api.get("/api/v1/notifications/requests"))).json()]
    assert (await ok(alice_api.post("/api/v1/notifications/requests/accept",
                                    data={"id[]": ids}))).json() == {}
    assert sorted(await v1_types(alice_api)) == [("mention", "bob"), ("mention", "carol")]
    groups = (await ok(alice_api.get("/api/v2/notifications"))).json()["notification_groups"]
    assert [g["type"] for g in groups] == ["mention", "mention"]


# ----------------------------------------------------------------- Mastodon.py (live)

@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings) as live:
        yield live


def _sign_up(server: LiveServer, username: str) -> Mastodon:
    client_id, client_secret = Mastodon.create_app(
        "Easel tests (Mastodon.py)", scopes=["read", "write", "follow", "push"],
        redirect_uris="urn:ietf:wg:oauth:2.0:oob", api_base_url=server.base_url)
    api = Mastodon(client_id=client_id, client_secret=client_secret,
                   api_base_url=server.base_url, version_check_mode="created",
                   ratelimit_method="throw", request_timeout=30)
    api.create_account(username, "a long enough password", f"{username}@example.com",
                       agreement=True, scopes=["read", "write", "follow", "push"])
    return api


def test_mastodon_py_grouped_notifications_and_policies(server: LiveServer) -> None:
    alice, bob, carol = (_sign_up(server, name) for name in ("alice", "bob", "carol"))
    assert (alice.mastodon_major, alice.mastodon_minor) == (4, 3)
    post = alice.status_post("a painting")
    me = alice.me()
    for fan in (bob, carol):
        fan.status_favourite(post)
        fan.account_follow(me)

    results = alice.grouped_notifications()
    assert [g.type for g in results.notification_groups] == ["follow", "favourite"]
    favourites = results.notification_groups[1]
    assert favourites.notifications_count == 2 and favourites.status_id == post.id
    # Mastodon.py asks for partial avatars: Carol (newest in both groups) in full, Bob partial.
    assert [a.username for a in results.accounts] == ["carol"]
    assert [a.acct for a in results.partial_accounts] == ["bob"]
    assert results.statuses[0].id == post.id
    assert len(alice.grouped_notifications(expand_accounts="full").accounts) == 2
    one = alice.grouped_notification(favourites.group_key)
    assert one.notification_groups[0].notifications_count == 2
    assert {a.username for a in alice.grouped_notification_accounts(favourites.group_key)} \
        == {"bob", "carol"}
    assert alice.unread_grouped_notifications_count() == 2
    assert alice.notifications_unread_count().count == 4
    alice.dismiss_grouped_notification(favourites.group_key)
    assert [g.type for g in alice.grouped_notifications().notification_groups] == ["follow"]
    with pytest.raises(MastodonNotFoundError):
        alice.grouped_notification("favourite-1-1")

    policy = alice.notifications_policy()
    assert policy.for_private_mentions == "filter" and policy.summary.pending_requests_count == 0
    assert alice.update_notifications_policy(for_new_accounts="filter").for_new_accounts == "filter"
    with pytest.raises(MastodonAPIError):
        alice.update_notifications_policy(for_not_following="never")
    alice.update_notifications_policy(for_new_accounts="accept")

    bob.status_post("@alice a secret", visibility="direct")
    carol.status_post("@alice another secret", visibility="direct")
    requests = alice.notification_requests()
    assert sorted(r.account.username for r in requests) == ["bob", "carol"]
    by_name = {r.account.username: r for r in requests}
    assert alice.notification_request(by_name["bob"]).notifications_count == "1"
    alice.accept_notification_request(by_name["bob"])
    alice.dismiss_notification_request(by_name["carol"])
    assert alice.notifications_merged() is True
    assert alice.notification_requests() == []
    assert [n.account.username for n in alice.notifications(types=["mention"])] == ["bob"]
    carol.status_post("@alice again", visibility="direct")
    bob_again = bob.status_post("@alice hi", visibility="direct")
    assert alice.notifications(types=["mention"])[0].status.id == bob_again.id
    [pending] = alice.notification_requests()
    alice.dismiss_multiple_notification_requests([pending])
    assert alice.notification_requests() == []
    carol.status_post("@alice and again", visibility="direct")
    [pending] = alice.notification_requests()
    alice.accept_multiple_notification_requests([pending])
    assert alice.notification_requests() == []
    assert alice.notifications(types=["mention"])[0].account.username == "carol"
