"""The inbox endpoints: what is accepted (202, stored once, queued) and what is refused.

Given remote carol (remote.example) and dave (other.example), whose actor documents and
keys a fake fediverse serves, when they deliver signed activities to alice's Easel, I
expect a 202 and one stored, queued item for each good delivery, and for every bad one —
unsigned, forged, expired, wrong digest, signed by someone else, oversized, malformed,
from a suspended domain, from a private address — the documented refusal with nothing
stored at all.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette

from federation.context import federation_context
from federation.inbox.intake import InboxIntake
from federation.inbox.routes import INBOX_BODY_LIMIT, signer_keys
from federation.signatures import CavageSigner
from server.db import Database
from server.models import DomainBlock, InboxOutcome, User
from tests.conftest import _KEY_POOL
from tests.federation.inbox.conftest import (
    AS2,
    BASE,
    FakeActor,
    Fediverse,
    deliver,
    http,
    item_for,
    stored,
)

ALICE = BASE + "/users/alice"


def follow(sender: FakeActor) -> dict[str, object]:
    return sender.activity("Follow", ALICE)


def like(sender: FakeActor) -> dict[str, object]:
    """A kind the intake dedupes by id (a Follow's redelivery is stored again)."""
    return sender.activity("Like", ALICE + "/statuses/1")


# ---------------------------------------------------------------------------- accepted

async def test_a_signed_activity_is_stored_once_queued_and_answered_202(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    activity = follow(remote_carol)
    response = await deliver(inbox_app, remote_carol, activity)
    assert response.status_code == 202
    assert response.content == b""
    item = await item_for(app_db, str(activity["id"]))
    assert item is not None
    assert (item.activity_type, item.actor_uri, item.signer_uri, item.forwarded) == (
        "Follow", remote_carol.uri, remote_carol.uri, False)
    assert item.outcome == InboxOutcome.PENDING
    assert item.recipient_id is None
    assert await stored(app_db) == (1, 1)
    assert fediverse.fetched(remote_carol.uri) == 1  # the key's owner, fetched once


async def test_a_replay_is_answered_202_and_stores_nothing_more(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    activity = like(remote_carol)
    for _ in range(3):
        assert (await deliver(inbox_app, remote_carol, activity)).status_code == 202
    assert await stored(app_db) == (1, 1)
    assert fediverse.fetched(remote_carol.uri) == 1  # later keys come from the cache


async def test_the_personal_inbox_records_its_recipient(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor) -> None:
    activity = follow(remote_carol)
    response = await deliver(inbox_app, remote_carol, activity, path="/users/alice/inbox")
    assert response.status_code == 202
    item = await item_for(app_db, str(activity["id"]))
    assert item is not None and item.recipient_id == alice.account.id


async def test_the_instance_actors_inbox_is_the_shared_inbox(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor) -> None:
    async with http(inbox_app) as client:
        actor = (await client.get("/actor", headers={"Accept": AS2})).json()
    assert actor["inbox"] == BASE + "/actor/inbox"
    activity = follow(remote_carol)
    response = await deliver(inbox_app, remote_carol, activity, path="/actor/inbox")
    assert response.status_code == 202, response.text
    item = await item_for(app_db, str(activity["id"]))
    assert item is not None
    assert (item.signer_uri, item.recipient_id, item.outcome) == (
        remote_carol.uri, None, InboxOutcome.PENDING)
    assert await stored(app_db) == (1, 1)
    # Checked as at /inbox: signed for another path, it is refused.
    signed = httpx.Request("POST", BASE + "/inbox", content=json.dumps(follow(remote_carol)),
                           headers={"Content-Type": AS2})
    remote_carol.signer().sign(signed)
    async with http(inbox_app) as client:
        response = await client.post("/actor/inbox", headers=dict(signed.headers),
                                     content=signed.content)
    assert response.status_code == 401, response.text
    assert await stored(app_db) == (1, 1)


async def test_peertube_signs_with_its_bare_actor_url(
        inbox_app: Starlette, app_db: Database, alice: User, fediverse: Fediverse) -> None:
    # PeerTube's keyId is the actor's URL; its document lists the key as …#main-key.
    grace = fediverse.actor("https://peertube.example/accounts/grace", "grace")
    bare = CavageSigner(grace.uri, grace.private_pem)
    first = await deliver(inbox_app, grace, follow(grace), signer=bare)
    assert first.status_code == 202, first.text
    again = await deliver(inbox_app, grace, like(grace), signer=bare)  # from the cache now
    assert again.status_code == 202, again.text
    assert fediverse.fetched(grace.uri) == 1
    assert await stored(app_db) == (2, 2)
    # The bare URL of another actor is not grace's key.
    henry = fediverse.actor("https://peertube.example/accounts/henry", "henry")
    forged = await deliver(inbox_app, grace, follow(grace),
                           signer=CavageSigner(henry.uri, grace.private_pem))
    assert forged.status_code == 401, forged.text
    assert await stored(app_db) == (2, 2)


async def test_the_personal_inbox_of_an_unknown_user_is_404(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor) -> None:
    response = await deliver(inbox_app, remote_carol, follow(remote_carol),
                             path="/users/nobody/inbox")
    assert response.status_code == 404
    assert response.json() == {"error": "Record not found"}
    assert await stored(app_db) == (0, 0)


async def test_a_rotated_key_is_fetched_again_once(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    assert (await deliver(inbox_app, remote_carol, follow(remote_carol))).status_code == 202
    remote_carol.private_pem, remote_carol.public_pem = _KEY_POOL.take()
    assert (await deliver(inbox_app, remote_carol, follow(remote_carol))).status_code == 202
    assert fediverse.fetched(remote_carol.uri) == 2
    assert await stored(app_db) == (2, 2)


async def test_a_forwarded_create_is_accepted_and_marked(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        remote_dave: FakeActor) -> None:
    note = {"id": remote_carol.uri + "/statuses/1", "type": "Note",
            "attributedTo": remote_carol.uri, "content": "forwarded reply"}
    activity = remote_carol.activity("Create", note)
    response = await deliver(inbox_app, remote_dave, activity)  # dave signs carol's Create
    assert response.status_code == 202
    item = await item_for(app_db, str(activity["id"]), forwarded_by=remote_dave)
    assert item is not None
    assert (item.forwarded, item.signer_uri, item.actor_uri) == (
        True, remote_dave.uri, remote_carol.uri)
    assert item.body["id"] == activity["id"]


# ---------------------------------------------------------------------------- refused

async def assert_refused(response: httpx.Response, status: int, db: Database) -> None:
    assert response.status_code == status, response.text
    assert "error" in response.json()
    assert await stored(db) == (0, 0)


async def test_unsigned_is_401(inbox_app: Starlette, app_db: Database,
                               remote_carol: FakeActor) -> None:
    async with http(inbox_app) as client:
        response = await client.post("/inbox", content=json.dumps(follow(remote_carol)),
                                     headers={"Content-Type": AS2})
    await assert_refused(response, 401, app_db)
    assert response.json() == {"error": "Request not signed"}


async def test_a_forged_signature_is_401_after_one_refetch(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    forger_pem, _ = _KEY_POOL.take()
    response = await deliver(inbox_app, remote_carol, follow(remote_carol),
                             signer=remote_carol.signer(private_pem=forger_pem))
    await assert_refused(response, 401, app_db)
    assert fediverse.fetched(remote_carol.uri) == 2  # the key, then its rotation check


async def test_an_expired_signature_is_401(inbox_app: Starlette, app_db: Database,
                                           remote_carol: FakeActor) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    response = await deliver(inbox_app, remote_carol, follow(remote_carol),
                             signer=remote_carol.signer(clock=lambda: yesterday))
    await assert_refused(response, 401, app_db)


async def test_a_body_that_does_not_match_its_digest_is_401(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor) -> None:
    signed = httpx.Request("POST", BASE + "/inbox", content=json.dumps(follow(remote_carol)),
                           headers={"Content-Type": AS2})
    remote_carol.signer().sign(signed)
    headers = {k: v for k, v in signed.headers.items() if k.lower() != "content-length"}
    async with http(inbox_app) as client:
        response = await client.post("/inbox", headers=headers,
                                     content=json.dumps(follow(remote_carol)))
    await assert_refused(response, 401, app_db)
    assert "igest" in response.json()["error"]


async def test_a_key_owner_other_than_the_actor_is_401(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        remote_dave: FakeActor) -> None:
    # dave signs a Follow claiming to be carol: only Create/Update/Delete are forwarded.
    response = await deliver(inbox_app, remote_dave, follow(remote_carol))
    await assert_refused(response, 401, app_db)
    assert "not the activity's actor" in response.json()["error"]


async def test_an_activity_id_on_another_server_is_400(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor) -> None:
    activity = follow(remote_carol) | {"id": "https://victim.example/activities/1"}
    await assert_refused(await deliver(inbox_app, remote_carol, activity), 400, app_db)


async def test_an_oversized_body_is_413(inbox_app: Starlette, app_db: Database,
                                        remote_carol: FakeActor) -> None:
    activity = follow(remote_carol) | {"padding": "x" * INBOX_BODY_LIMIT}
    await assert_refused(await deliver(inbox_app, remote_carol, activity), 413, app_db)


async def test_an_oversized_streamed_body_without_length_is_413(
        inbox_app: Starlette, app_db: Database) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * (INBOX_BODY_LIMIT // 16)

    async with http(inbox_app) as client:
        response = await client.post("/inbox", content=chunks(),
                                     headers={"Content-Type": AS2})
    assert "content-length" not in response.request.headers
    await assert_refused(response, 413, app_db)


async def test_malformed_bodies_are_400(inbox_app: Starlette, app_db: Database,
                                        remote_carol: FakeActor) -> None:
    bodies = [b"{not json", b"[1, 2]", b'"a string"', b"\xff\xfe", b"[" * 100_000,
              b'{"type": "Follow", "value": NaN}',
              json.dumps({"type": "Follow", "actor": remote_carol.uri}).encode(),
              json.dumps({"id": "https://remote.example/1", "type": "Follow"}).encode()]
    async with http(inbox_app, auth=remote_carol.signer()) as client:
        for body in bodies:
            response = await client.post("/inbox", content=body, headers={"Content-Type": AS2})
            await assert_refused(response, 400, app_db)


async def test_a_suspended_domain_is_dropped_silently_without_a_fetch(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    async with app_db.session() as session:
        session.add(DomainBlock(domain="remote.example", severity="suspend"))
        await session.commit()
    response = await deliver(inbox_app, remote_carol, follow(remote_carol))
    assert response.status_code == 202
    assert await stored(app_db) == (0, 0)
    assert fediverse.requests == []


async def test_an_actor_on_a_private_address_is_refused(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse) -> None:
    sneaky = fediverse.actor("https://private.example/users/eve", "eve")
    response = await deliver(inbox_app, sneaky, follow(sneaky))
    await assert_refused(response, 401, app_db)
    assert fediverse.requests == []  # the safe client refused before any request


async def test_a_delete_from_a_gone_signer_is_dropped_with_202(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    fediverse.status[remote_carol.uri] = 410
    response = await deliver(inbox_app, remote_carol,
                             remote_carol.activity("Delete", remote_carol.uri))
    assert response.status_code == 202
    assert await stored(app_db) == (0, 0)
    assert fediverse.fetched(remote_carol.uri) == 1  # no refetch, no retry


async def test_other_activities_from_a_gone_signer_are_401(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    fediverse.status[remote_carol.uri] = 410
    await assert_refused(await deliver(inbox_app, remote_carol, follow(remote_carol)),
                         401, app_db)


async def test_an_unreachable_signer_server_is_503_to_retry_later(
        inbox_app: Starlette, app_db: Database, remote_carol: FakeActor,
        fediverse: Fediverse) -> None:
    fediverse.status[remote_carol.uri] = 502
    response = await deliver(inbox_app, remote_carol, follow(remote_carol))
    await assert_refused(response, 503, app_db)
    assert response.headers["retry-after"] == "60"


async def test_a_local_actor_is_refused(inbox_app: Starlette, app_db: Database,
                                        alice: User, remote_carol: FakeActor) -> None:
    activity = follow(remote_carol) | {"actor": ALICE, "id": ALICE + "#follows/1"}
    await assert_refused(await deliver(inbox_app, remote_carol, activity), 401, app_db)


async def test_a_key_is_served_from_memory_until_forgotten(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor) -> None:
    assert (await deliver(inbox_app, remote_carol, follow(remote_carol))).status_code == 202
    state = inbox_app.state.easel
    keys = signer_keys(federation_context(state.settings, state.db))
    cached = keys.get(remote_carol.key_id)
    assert cached is not None and cached.account_uri == remote_carol.uri
    keys.forget(remote_carol.uri)
    assert keys.get(remote_carol.key_id) is None


# ------------------------------------------------------------------------------ intake

async def test_a_suspension_applies_with_the_key_already_in_memory(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor) -> None:
    assert (await deliver(inbox_app, remote_carol, follow(remote_carol))).status_code == 202
    async with app_db.session() as session:
        session.add(DomainBlock(domain="example", severity="suspend"))  # a parent domain
        await session.commit()
    assert (await deliver(inbox_app, remote_carol, follow(remote_carol))).status_code == 202
    assert await stored(app_db) == (1, 1)


async def test_concurrent_deliveries_and_replays_are_each_stored_once(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        remote_dave: FakeActor) -> None:
    activities = [like(actor) for actor in (remote_carol, remote_dave) for _ in range(10)]
    senders = {remote_carol.uri: remote_carol, remote_dave.uri: remote_dave}
    responses = await asyncio.gather(*(
        deliver(inbox_app, senders[str(a["actor"])], a) for a in activities + activities))
    assert {r.status_code for r in responses} == {202}
    assert await stored(app_db) == (20, 20)


async def test_a_failed_write_is_503_and_stores_nothing(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: InboxIntake, batch: object) -> list[str]:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(InboxIntake, "_write", broken)
    response = await deliver(inbox_app, remote_carol, follow(remote_carol))
    await assert_refused(response, 503, app_db)
    assert response.headers["retry-after"] == "60"
