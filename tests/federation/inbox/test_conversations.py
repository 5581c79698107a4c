"""A direct note from another server opens (and continues) a conversation for the local
accounts it mentions, as one posted here does; a local direct reply joins it too."""

from __future__ import annotations

from starlette.applications import Starlette

from server.db import Database
from server.models import User
from tests.conftest import make_token
from tests.federation.inbox.conftest import BASE, FakeActor, http, receive
from tests.federation.inbox.test_create import mastodon_note

ALICE = f"{BASE}/users/alice"


async def test_a_remote_direct_note_opens_a_conversation_that_a_local_reply_continues(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor, alice: User) -> None:
    note = mastodon_note(remote_carol, to=[ALICE], cc=[],
                         tag=[{"type": "Mention", "href": ALICE, "name": "@alice@easel.test"}])
    assert await receive(inbox_app, remote_carol, remote_carol.activity(
        "Create", note, to=note["to"], cc=[])) == "processed"

    async with http(inbox_app, token=await make_token(app_db, alice)) as alice_api:
        [conversation] = (await alice_api.get("/api/v1/conversations")).json()
        assert conversation["unread"] is True
        assert [a["acct"] for a in conversation["accounts"]] == ["carol@remote.example"]
        status = conversation["last_status"]
        assert (status["uri"], status["visibility"]) == (note["id"], "direct")

        reply = await alice_api.post("/api/v1/statuses", data={
            "status": "@carol@remote.example thanks", "visibility": "direct",
            "in_reply_to_id": status["id"]})
        assert reply.status_code == 200, reply.text
        [conversation] = (await alice_api.get("/api/v1/conversations")).json()
        assert conversation["last_status"]["id"] == reply.json()["id"]
        assert conversation["unread"] is False

    # A public note mentioning her opens nothing.
    public = mastodon_note(remote_carol, 2)
    assert await receive(inbox_app, remote_carol, remote_carol.activity(
        "Create", public, to=public["to"], cc=public["cc"])) == "processed"
    async with http(inbox_app, token=await make_token(app_db, alice)) as alice_api:
        assert len((await alice_api.get("/api/v1/conversations")).json()) == 1
