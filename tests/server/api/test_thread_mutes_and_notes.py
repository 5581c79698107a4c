"""Muted threads (``POST /api/v1/statuses/:id/mute``, ``/unmute``, the Status's
``muted``) and private notes on accounts (``POST /api/v1/accounts/:id/note``, the
Relationship's ``note``), as Mastodon."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select

from server.db import Database
from server.ids import utcnow
from server.models import AccountNote, ConversationMute, Notification, User
from server.services import moderation
from server.settings import Settings
from tests.conftest import authorized, make_token

NOT_FOUND = {"error": "Record not found"}


async def count(db: Database, model: type, **where: int) -> int:
    async with db.session() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return await session.scalar(query) or 0


async def post(api: httpx.AsyncClient, text: str, reply_to: str | None = None,
               visibility: str = "public") -> str:
    data = {"status": text, "visibility": visibility}
    if reply_to is not None:
        data["in_reply_to_id"] = reply_to
    response = await api.post("/api/v1/statuses", data=data)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def notification_types(db: Database, user: User) -> list[str]:
    async with db.session() as session:
        return list(await session.scalars(select(Notification.type).where(
            Notification.account_id == user.account_id).order_by(Notification.id)))


async def test_a_muted_thread_sends_no_notifications_and_its_statuses_say_muted(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        alice: User, db: Database) -> None:
    root = await post(alice_api, "a new painting")
    reply = await post(bob_api, "@alice lovely", root)
    deeper = await post(carol_api, "@alice @bob agreed", reply)
    before = await notification_types(db, alice)
    assert sorted(before) == ["mention", "mention"]

    muted = await alice_api.post(f"/api/v1/statuses/{deeper}/mute")  # any status of the thread
    assert muted.status_code == 200
    assert (muted.json()["id"], muted.json()["muted"]) == (deeper, True)
    again = await alice_api.post(f"/api/v1/statuses/{reply}/mute")
    assert again.status_code == 200 and again.json()["muted"] is True
    assert await count(db, ConversationMute) == 1

    # Every status of the thread says so, to alice only, in one page (context, timelines).
    context = (await alice_api.get(f"/api/v1/statuses/{root}/context")).json()
    assert [s["muted"] for s in context["descendants"]] == [True, True]
    assert (await alice_api.get(f"/api/v1/statuses/{root}")).json()["muted"] is True
    home = (await alice_api.get("/api/v1/timelines/home")).json()
    assert {s["id"]: s["muted"] for s in home}[root] is True
    assert (await bob_api.get(f"/api/v1/statuses/{root}")).json()["muted"] is False
    other = await post(alice_api, "another thread")
    assert (await alice_api.get(f"/api/v1/statuses/{other}")).json()["muted"] is False

    # No favourite, boost, mention or reply notification about the thread reaches alice.
    await bob_api.post(f"/api/v1/statuses/{root}/favourite")
    boost = (await carol_api.post(f"/api/v1/statuses/{root}/reblog")).json()["id"]
    await post(bob_api, "@alice still here?", deeper)
    assert await notification_types(db, alice) == before
    # A boost of a status of the thread shows it muted too.
    boosted = (await alice_api.get(f"/api/v1/statuses/{boost}")).json()
    assert (boosted["reblog"]["id"], boosted["muted"]) == (root, True)
    # The public timeline (a page shared between viewers) shows it to alice alone.
    public = {s["id"]: s["muted"] for s in (await bob_api.get("/api/v1/timelines/public")).json()}
    assert public[root] is False
    public = {s["id"]: s["muted"] for s in (await alice_api.get("/api/v1/timelines/public")).json()}
    assert public[root] is True and public[other] is False
    # Others still hear about it.
    await alice_api.post(f"/api/v1/statuses/{reply}/favourite")
    assert await notification_types(db, alice) == before

    unmuted = await alice_api.post(f"/api/v1/statuses/{root}/unmute")
    assert unmuted.status_code == 200 and unmuted.json()["muted"] is False
    assert (await alice_api.post(f"/api/v1/statuses/{root}/unmute")).status_code == 200
    assert await count(db, ConversationMute) == 0
    await carol_api.post(f"/api/v1/statuses/{root}/favourite")
    assert (await notification_types(db, alice))[-1] == "favourite"


async def test_muting_a_thread_is_refused_clearly(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
        alice: User, db: Database) -> None:
    private = await post(bob_api, "followers only", visibility="private")
    for path in ("/api/v1/statuses/999/mute", "/api/v1/statuses/x/mute",
                 "/api/v1/statuses/999/unmute", f"/api/v1/statuses/{private}/mute",
                 f"/api/v1/statuses/{private}/unmute"):
        refused = await alice_api.post(path)
        assert (refused.status_code, refused.json()) == (404, NOT_FOUND), path
    mine = await post(alice_api, "mine")
    assert (await client.post(f"/api/v1/statuses/{mine}/mute")).status_code == 401
    async with authorized(client, await make_token(db, alice, "read write:statuses")) as other:
        refused = await other.post(f"/api/v1/statuses/{mine}/mute")
        assert refused.status_code == 403 and "error" in refused.json()
    async with authorized(client, await make_token(db, alice, "write:mutes")) as muter:
        assert (await muter.post(f"/api/v1/statuses/{mine}/mute")).status_code == 200
    assert await count(db, ConversationMute) == 1
    # Deleting the thread's root ends the mute.
    assert (await alice_api.delete(f"/api/v1/statuses/{mine}")).status_code == 200
    assert await count(db, ConversationMute) == 0


async def test_a_note_on_an_account_is_private_and_shown_in_the_relationship(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, bob: User, alice: User,
        db: Database) -> None:
    noted = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/note",
                                 data={"comment": "met at the spring show"})
    assert noted.status_code == 200
    assert (noted.json()["id"], noted.json()["note"]) == (str(bob.account_id),
                                                          "met at the spring show")
    changed = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/note",
                                   json={"comment": "x" * 2000})
    assert changed.status_code == 200 and changed.json()["note"] == "x" * 2000
    assert await count(db, AccountNote) == 1
    relationship = (await alice_api.get("/api/v1/accounts/relationships",
                                        params={"id[]": [str(bob.account_id)]})).json()[0]
    assert relationship["note"] == "x" * 2000
    theirs = (await bob_api.get("/api/v1/accounts/relationships",
                                params={"id[]": [str(alice.account_id)]})).json()[0]
    assert theirs["note"] == ""

    for blank in ({"comment": ""}, {"comment": "  "}, {}):
        cleared = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/note", data=blank)
        assert cleared.status_code == 200 and cleared.json()["note"] == ""
    assert await count(db, AccountNote) == 0


async def test_bad_note_requests_are_refused_clearly(
        alice_api: httpx.AsyncClient, client: httpx.AsyncClient, alice: User, bob: User,
        db: Database) -> None:
    too_long = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/note",
                                    data={"comment": "x" * 2001})
    assert (too_long.status_code, too_long.json()) == (
        422, {"error": "Validation failed: Comment is too long (maximum is 2000 characters)"})
    for path in ("/api/v1/accounts/999/note", "/api/v1/accounts/x/note"):
        refused = await alice_api.post(path, data={"comment": "hi"})
        assert (refused.status_code, refused.json()) == (404, NOT_FOUND)
    assert (await client.post(f"/api/v1/accounts/{bob.account_id}/note",
                              data={"comment": "hi"})).status_code == 401
    async with authorized(client, await make_token(db, alice, "read write:follows")) as other:
        refused = await other.post(f"/api/v1/accounts/{bob.account_id}/note", data={"comment": "hi"})
        assert refused.status_code == 403 and "error" in refused.json()
    assert await count(db, AccountNote) == 0


async def test_a_purged_account_takes_its_muted_threads_and_notes_along(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        alice: User, bob: User, carol: User, db: Database, settings: Settings) -> None:
    root = await post(carol_api, "a thread")
    await alice_api.post(f"/api/v1/statuses/{root}/mute")
    await bob_api.post(f"/api/v1/statuses/{root}/mute")
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/note", data={"comment": "alice on bob"})
    await bob_api.post(f"/api/v1/accounts/{alice.account_id}/note", data={"comment": "bob on alice"})
    await carol_api.post(f"/api/v1/accounts/{bob.account_id}/note", data={"comment": "carol on bob"})
    async with db.session() as session:
        await moderation.take_action(session, settings, moderator=None,
                                     account_id=alice.account_id, action="suspend", text="")
        await moderation.delete_by_moderator(session, alice.account_id)
        assert await moderation.purge(session, alice.account_id,
                                      now=utcnow() + timedelta(seconds=1))
    assert await count(db, ConversationMute) == 1
    assert await count(db, ConversationMute, account_id=bob.account_id) == 1
    assert await count(db, AccountNote) == 1
    assert await count(db, AccountNote, account_id=carol.account_id) == 1
