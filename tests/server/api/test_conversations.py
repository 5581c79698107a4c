"""Direct conversations through the client API (``/api/v1/conversations``), as Mastodon:
one per thread and set of people, for the author and every local account the direct
status mentions; unread for the recipients, read again with ``/read``; deleting the last
status shows the one before; removing one hides it until the thread moves again."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from server.db import Database
from server.models import Conversation, ConversationStatus, User
from tests.conftest import authorized, make_token
from tests.server.api.test_client_mastodon_py import Register, check_mode, register, server  # noqa: F401


async def post(api: httpx.AsyncClient, text: str, **extra: str) -> str:
    response = await api.post("/api/v1/statuses", data={"status": text, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def conversations(api: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/conversations", params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_a_direct_message_opens_a_conversation_for_the_author_and_each_recipient(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        alice: User, bob: User, carol: User) -> None:
    first = await post(alice_api, "@bob @carol a secret", visibility="direct")

    [mine] = await conversations(alice_api)
    assert mine["unread"] is False  # her own status
    assert mine["last_status"]["id"] == first
    assert sorted(a["username"] for a in mine["accounts"]) == ["bob", "carol"]
    [bobs] = await conversations(bob_api)
    assert bobs["unread"] is True
    assert sorted(a["username"] for a in bobs["accounts"]) == ["alice", "carol"]
    assert bobs["last_status"]["visibility"] == "direct"
    assert (await conversations(carol_api))[0]["unread"] is True

    # A reply continues the same conversation, unread again for alice.
    reply = await post(bob_api, "@alice @carol got it", visibility="direct", in_reply_to_id=first)
    [mine] = await conversations(alice_api)
    assert (mine["last_status"]["id"], mine["unread"]) == (reply, True)
    [bobs] = await conversations(bob_api)
    assert (bobs["last_status"]["id"], bobs["unread"]) == (reply, False)

    read = await alice_api.post(f"/api/v1/conversations/{mine['id']}/read")
    assert read.status_code == 200
    assert (read.json()["id"], read.json()["unread"]) == (mine["id"], False)
    assert (await conversations(alice_api))[0]["unread"] is False

    # Public posts and other people's conversations are not in anyone's list.
    await post(alice_api, "@bob hello in public")
    assert len(await conversations(alice_api)) == 1


async def test_a_new_thread_with_the_same_people_is_a_new_conversation_and_pages_by_last_status(
        alice_api: httpx.AsyncClient, bob: User) -> None:
    ids = [await post(alice_api, f"@bob thread {n}", visibility="direct") for n in range(3)]
    listed = await conversations(alice_api)
    assert [c["last_status"]["id"] for c in listed] == list(reversed(ids))

    response = await alice_api.get("/api/v1/conversations", params={"limit": "2"})
    assert [c["last_status"]["id"] for c in response.json()] == [ids[2], ids[1]]
    assert f"max_id={ids[1]}" in response.headers["link"]
    older = await conversations(alice_api, max_id=ids[1])
    assert [c["last_status"]["id"] for c in older] == [ids[0]]
    newer = await conversations(alice_api, min_id=ids[0], limit="1")
    assert [c["last_status"]["id"] for c in newer] == [ids[1]]


async def test_a_note_to_self_lists_oneself_as_the_participant(
        alice_api: httpx.AsyncClient, alice: User) -> None:
    await post(alice_api, "a note to myself", visibility="direct")
    [mine] = await conversations(alice_api)
    assert [a["username"] for a in mine["accounts"]] == ["alice"]


async def test_deleting_statuses_shows_the_one_before_and_then_none(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, bob: User, db: Database) -> None:
    first = await post(alice_api, "@bob one", visibility="direct")
    second = await post(alice_api, "@bob two", visibility="direct", in_reply_to_id=first)
    assert (await conversations(bob_api))[0]["last_status"]["id"] == second
    assert (await alice_api.delete(f"/api/v1/statuses/{second}")).status_code == 200
    assert (await conversations(bob_api))[0]["last_status"]["id"] == first
    assert (await alice_api.delete(f"/api/v1/statuses/{first}")).status_code == 200
    assert await conversations(bob_api) == []
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ConversationStatus)) == 0


async def test_removing_a_conversation_hides_it_until_the_thread_moves(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, bob: User, db: Database) -> None:
    first = await post(alice_api, "@bob one", visibility="direct")
    [bobs] = await conversations(bob_api)
    removed = await bob_api.delete(f"/api/v1/conversations/{bobs['id']}")
    assert (removed.status_code, removed.json()) == (200, {})
    assert await conversations(bob_api) == []
    assert len(await conversations(alice_api)) == 1  # hers stays
    await post(alice_api, "@bob two", visibility="direct", in_reply_to_id=first)
    [back] = await conversations(bob_api)
    assert back["unread"] is True and back["last_status"]["content"].endswith("two</p>")


async def test_blocked_and_muted_senders_open_no_conversation(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        alice: User, bob: User, carol: User) -> None:
    assert (await bob_api.post(f"/api/v1/accounts/{alice.account_id}/block")).status_code == 200
    assert (await carol_api.post(f"/api/v1/accounts/{alice.account_id}/mute")).status_code == 200
    await post(alice_api, "@bob @carol hello?", visibility="direct")
    assert await conversations(bob_api) == []
    assert await conversations(carol_api) == []
    assert len(await conversations(alice_api)) == 1


async def test_bad_conversation_requests_are_refused_clearly(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
        bob: User, db: Database) -> None:
    await post(alice_api, "@bob secret", visibility="direct")
    [mine] = await conversations(alice_api)
    for path in (f"/api/v1/conversations/{mine['id']}/read", "/api/v1/conversations/123/read",
                 "/api/v1/conversations/nope/read"):
        refused = await bob_api.post(path)
        assert (refused.status_code, refused.json()) == (404, {"error": "Record not found"})
    for path in (f"/api/v1/conversations/{mine['id']}", "/api/v1/conversations/nope"):
        refused = await bob_api.delete(path)
        assert (refused.status_code, refused.json()) == (404, {"error": "Record not found"})
    assert (await client.get("/api/v1/conversations")).status_code == 401
    bad_limit = await alice_api.get("/api/v1/conversations", params={"limit": "lots"})
    assert (bad_limit.status_code, bad_limit.json()) == \
        (422, {"error": "Validation failed: limit must be a number"})
    # A token without the scope may not read or change them.
    async with authorized(client, await make_token(db, bob, "read:accounts")) as narrow:
        assert (await narrow.get("/api/v1/conversations")).status_code == 403
        assert (await narrow.post(f"/api/v1/conversations/{mine['id']}/read")).status_code == 403
    async with db.session() as session:  # nothing changed by the refusals
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 2
    assert (await conversations(alice_api))[0]["unread"] is False


def test_conversations_through_mastodon_py(register: Register) -> None:  # noqa: F811
    alice, bob = register("alice"), register("bob")
    sent = alice.status_post("@bob a secret", visibility="direct")
    [conversation] = bob.conversations()
    assert conversation.unread is True and conversation.last_status.id == sent.id
    assert [a.username for a in conversation.accounts] == ["alice"]
    assert bob.conversations_read(conversation).unread is False
    assert bob.conversations()[0].unread is False
