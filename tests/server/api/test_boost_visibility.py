"""A boost is shown only with its original: where the viewer may not see the status a
boost boosts (its author suspended, or blocking the viewer), the boost is not found by id
and is left out of lists — the status endpoints, ``id[]`` lookups and profiles — as
Mastodon leaves such boosts out. On a profile the boosts of accounts the viewer blocks or
mutes are left out too (Mastodon's ``AccountStatusesFilter#filtered_reblogs_scope``)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import update

from server.db import Database
from server.ids import utcnow
from server.models import Account, User


async def post(api: httpx.AsyncClient, **data: Any) -> str:
    response = await api.post("/api/v1/statuses", json=data)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def boost(api: httpx.AsyncClient, status_id: str) -> str:
    response = await api.post(f"/api/v1/statuses/{status_id}/reblog")
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def suspend(db: Database, user: User) -> None:
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == user.account_id)
                              .values(suspended_at=utcnow()))
        await session.commit()


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


async def test_a_boost_of_a_suspended_accounts_status_is_gone_with_it(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
    carol_api: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    original = await post(alice_api, status="alice's work")
    kept = await post(bob_api, status="bob's own")
    boosted = await boost(bob_api, original)
    profile = f"/api/v1/accounts/{bob.account_id}/statuses"
    assert ids(await carol_api.get(profile)) == [boosted, kept]

    await suspend(db, alice)
    for viewer in (client, carol_api, bob_api):  # anyone, the booster too
        assert (await viewer.get(f"/api/v1/statuses/{original}")).status_code == 404
        response = await viewer.get(f"/api/v1/statuses/{boosted}")
        assert (response.status_code, response.json()) == (404, {"error": "Record not found"})
        by_ids = await viewer.get("/api/v1/statuses", params={"id[]": [boosted, kept]})
        assert ids(by_ids) == [kept]
        assert ids(await viewer.get(profile)) == [kept]
    # Nor can it be acted on through the boost, nor its thread read.
    for action in ("favourite", "bookmark", "reblog"):
        assert (await carol_api.post(f"/api/v1/statuses/{boosted}/{action}")).status_code == 404
    for listing in ("context", "favourited_by", "reblogged_by"):
        assert (await carol_api.get(f"/api/v1/statuses/{boosted}/{listing}")).status_code == 404
    # The booster can still take the boost back.
    assert (await bob_api.delete(f"/api/v1/statuses/{boosted}")).status_code == 200


async def test_a_boost_of_an_author_who_blocks_the_viewer_is_not_shown_to_it(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
    carol_api: httpx.AsyncClient, alice: User, bob: User, carol: User
) -> None:
    original = await post(alice_api, status="not for carol")
    boosted = await boost(bob_api, original)
    assert (await alice_api.post(f"/api/v1/accounts/{carol.account_id}/block")).status_code == 200

    profile = f"/api/v1/accounts/{bob.account_id}/statuses"
    assert (await carol_api.get(f"/api/v1/statuses/{boosted}")).status_code == 404
    assert ids(await carol_api.get("/api/v1/statuses", params={"id[]": boosted})) == []
    assert ids(await carol_api.get(profile)) == []
    # A reply to the boost would be a reply to the original: refused as it is.
    reply = await carol_api.post("/api/v1/statuses",
                                 json={"status": "hm", "in_reply_to_id": boosted})
    assert reply.status_code == 404
    # Others still see the boost with what it boosts.
    for viewer in (client, bob_api):
        response = await viewer.get(f"/api/v1/statuses/{boosted}")
        assert response.status_code == 200
        assert response.json()["reblog"]["id"] == original
        assert ids(await viewer.get(profile)) == [boosted]


async def test_a_profile_leaves_out_boosts_of_accounts_the_viewer_blocks_or_mutes(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
    alice: User, bob: User, carol: User
) -> None:
    alices = await post(alice_api, status="alice's")
    carols = await post(carol_api, status="carol's")
    from_alice = await boost(bob_api, alices)
    from_carol = await boost(bob_api, carols)
    own = await post(bob_api, status="bob's own")
    profile = f"/api/v1/accounts/{bob.account_id}/statuses"

    assert (await carol_api.post(f"/api/v1/accounts/{alice.account_id}/mute")).status_code == 200
    assert ids(await carol_api.get(profile)) == [own, from_carol]
    # Muting is not a block: the boost itself may still be read.
    assert (await carol_api.get(f"/api/v1/statuses/{from_alice}")).status_code == 200
    await carol_api.post(f"/api/v1/accounts/{alice.account_id}/unmute")
    assert ids(await carol_api.get(profile)) == [own, from_carol, from_alice]
    await carol_api.post(f"/api/v1/accounts/{alice.account_id}/block")
    assert ids(await carol_api.get(profile)) == [own, from_carol]
    # Muting the profile's owner hides none of its own statuses there (as Mastodon).
    assert (await carol_api.post(f"/api/v1/accounts/{bob.account_id}/mute")).status_code == 200
    assert ids(await carol_api.get(profile)) == [own, from_carol]
    # The booster's own profile shows them all to the booster.
    assert ids(await bob_api.get(profile)) == [own, from_carol, from_alice]
