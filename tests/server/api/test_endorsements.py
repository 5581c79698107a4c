"""Endorsements (``/api/v1/accounts/:id/pin``, ``/unpin``, ``/api/v1/endorsements``, the
Relationship's ``endorsed``) and dismissed follow suggestions (``DELETE
/api/v1/suggestions/:account_id``), as Mastodon."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from server.db import Database
from server.models import Endorsement, SuggestionDismissal, User
from tests.conftest import authorized, make_token
from tests.server.api.test_client_mastodon_py import Register, check_mode, register, server  # noqa: F401

NOT_FOLLOWING = "Validation failed: You must be already following the person you want to endorse"


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_an_endorsement_of_a_followed_account_is_listed_and_told_by_the_relationship(
        alice_api: httpx.AsyncClient, bob: User, carol: User) -> None:
    for user in (bob, carol):
        assert (await alice_api.post(f"/api/v1/accounts/{user.account_id}/follow")).status_code == 200
    pinned = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/pin")
    assert pinned.status_code == 200
    assert (pinned.json()["id"], pinned.json()["endorsed"], pinned.json()["following"]) \
        == (str(bob.account_id), True, True)
    assert (await alice_api.post(f"/api/v1/accounts/{carol.account_id}/pin")).json()["endorsed"]
    again = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/pin")
    assert again.status_code == 200 and again.json()["endorsed"] is True

    listed = await alice_api.get("/api/v1/endorsements")
    assert [a["username"] for a in listed.json()] == ["carol", "bob"]
    first = await alice_api.get("/api/v1/endorsements", params={"limit": "1"})
    assert [a["username"] for a in first.json()] == ["carol"]
    assert 'rel="next"' in first.headers["link"]
    relationship = (await alice_api.get("/api/v1/accounts/relationships",
                                        params={"id[]": [str(bob.account_id)]})).json()[0]
    assert relationship["endorsed"] is True

    unpinned = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/unpin")
    assert unpinned.status_code == 200 and unpinned.json()["endorsed"] is False
    assert [a["username"] for a in (await alice_api.get("/api/v1/endorsements")).json()] == ["carol"]


async def test_an_endorsement_ends_with_the_follow_and_does_not_come_back_with_a_new_one(
        alice_api: httpx.AsyncClient, bob: User) -> None:
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/pin")
    unfollowed = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/unfollow")
    assert unfollowed.json()["endorsed"] is False
    assert (await alice_api.get("/api/v1/endorsements")).json() == []
    refollowed = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    assert refollowed.json()["endorsed"] is False
    assert (await alice_api.post(f"/api/v1/accounts/{bob.account_id}/pin")).json()["endorsed"] is True
    assert [a["username"] for a in (await alice_api.get("/api/v1/endorsements")).json()] == ["bob"]


async def test_bad_endorsement_requests_are_refused_clearly(
        alice_api: httpx.AsyncClient, client: httpx.AsyncClient, alice: User, bob: User,
        db: Database) -> None:
    refused = await alice_api.post(f"/api/v1/accounts/{bob.account_id}/pin")
    assert (refused.status_code, refused.json()) == (422, {"error": NOT_FOLLOWING})
    refused = await alice_api.post(f"/api/v1/accounts/{alice.account_id}/pin")
    assert (refused.status_code, refused.json()) == (422, {"error": NOT_FOLLOWING})
    for path in ("/api/v1/accounts/999/pin", "/api/v1/accounts/x/pin", "/api/v1/accounts/999/unpin"):
        refused = await alice_api.post(path)
        assert (refused.status_code, refused.json()) == (404, {"error": "Record not found"})
    assert await count(db, Endorsement) == 0
    assert (await client.get("/api/v1/endorsements")).status_code == 401
    async with authorized(client, await make_token(db, alice, "read")) as reader:
        assert (await reader.post(f"/api/v1/accounts/{bob.account_id}/pin")).status_code == 403


async def test_a_dismissed_suggestion_is_not_suggested_again(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        bob: User, carol: User, db: Database) -> None:
    suggested = (await alice_api.get("/api/v2/suggestions")).json()
    assert sorted(s["account"]["username"] for s in suggested) == ["bob", "carol"]
    for _ in range(2):  # idempotent
        dismissed = await alice_api.delete(f"/api/v1/suggestions/{bob.account_id}")
        assert (dismissed.status_code, dismissed.json()) == (200, {})
    assert [s["account"]["username"] for s in (await alice_api.get("/api/v2/suggestions")).json()] \
        == ["carol"]
    assert [a["username"] for a in (await alice_api.get("/api/v1/suggestions")).json()] == ["carol"]
    # Only for her.
    assert "bob" in [a["username"] for a in (await carol_api.get("/api/v1/suggestions")).json()]
    assert await count(db, SuggestionDismissal) == 1


async def test_bad_suggestion_dismissals_are_refused_clearly(
        alice_api: httpx.AsyncClient, client: httpx.AsyncClient, db: Database) -> None:
    for path in ("/api/v1/suggestions/999", "/api/v1/suggestions/bob"):
        refused = await alice_api.delete(path)
        assert (refused.status_code, refused.json()) == (404, {"error": "Record not found"})
    assert (await client.delete("/api/v1/suggestions/1")).status_code == 401
    assert await count(db, SuggestionDismissal) == 0


def test_endorsements_and_suggestions_through_mastodon_py(register: Register) -> None:  # noqa: F811
    alice, bob, carol = register("alice"), register("bob"), register("carol")
    bob_account, carol_account = bob.me(), carol.me()
    alice.account_follow(bob_account)
    assert alice.account_pin(bob_account).endorsed is True
    assert [a.username for a in alice.endorsements()] == ["bob"]
    assert alice.account_relationships(bob_account)[0].endorsed is True
    assert alice.account_unpin(bob_account).endorsed is False
    assert alice.endorsements() == []

    assert "carol" in [a.username for a in alice.suggestions()]
    alice.suggestion_delete(carol_account)
    assert "carol" not in [a.username for a in alice.suggestions()]
