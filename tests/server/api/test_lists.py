"""Lists through the client API: CRUD, members (followed accounts only), the list
timeline with each replies policy, exclusive lists leaving home, and privacy."""

from __future__ import annotations

import httpx

from server.models import User


async def post(api: httpx.AsyncClient, text: str, **extra: str) -> str:
    response = await api.post("/api/v1/statuses", data={"status": text, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def ids(api: httpx.AsyncClient, path: str) -> list[str]:
    response = await api.get(path)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()]


async def test_a_list_is_made_filled_read_and_deleted(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        bob: User, carol: User) -> None:
    created = await alice_api.post("/api/v1/lists", json={"title": " Painters ", "exclusive": True})
    assert created.status_code == 200
    entity = created.json()
    assert (entity["title"], entity["replies_policy"], entity["exclusive"]) == ("Painters", "list", True)
    list_id = entity["id"]

    # Only followed accounts can join.
    bob_id = {"account_ids[]": str(bob.account_id)}
    refused = await alice_api.post(f"/api/v1/lists/{list_id}/accounts", data=bob_id)
    assert refused.status_code == 422 and "only add accounts you follow" in refused.json()["error"]
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    await alice_api.post(f"/api/v1/accounts/{carol.account_id}/follow")
    added = await alice_api.post(f"/api/v1/lists/{list_id}/accounts", data=bob_id)
    assert added.status_code == 200 and added.json() == {}
    members = await alice_api.get(f"/api/v1/lists/{list_id}/accounts", params={"limit": "0"})
    assert [a["id"] for a in members.json()] == [str(bob.account_id)]
    in_lists = await alice_api.get(f"/api/v1/accounts/{bob.account_id}/lists")
    assert [x["id"] for x in in_lists.json()] == [list_id]

    bobs, carols = await post(bob_api, "bob paints"), await post(carol_api, "carol paints")
    assert await ids(alice_api, f"/api/v1/timelines/list/{list_id}") == [bobs]
    home = await ids(alice_api, "/api/v1/timelines/home")
    assert carols in home and bobs not in home  # exclusive: bob is read in the list
    renamed = await alice_api.put(f"/api/v1/lists/{list_id}", data={"title": "Friends", "exclusive": "false"})
    assert renamed.json()["title"] == "Friends" and renamed.json()["exclusive"] is False
    assert bobs in await ids(alice_api, "/api/v1/timelines/home")

    # Unfollowing drops a member out of the list.
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/unfollow")
    assert (await alice_api.get(f"/api/v1/lists/{list_id}/accounts")).json() == []
    assert await ids(alice_api, f"/api/v1/timelines/list/{list_id}") == []

    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    removed = await alice_api.request("DELETE", f"/api/v1/lists/{list_id}/accounts",
                                      data={"account_ids[]": str(bob.account_id)})
    assert removed.status_code == 200
    assert (await alice_api.get(f"/api/v1/lists/{list_id}/accounts")).json() == []
    assert (await alice_api.delete(f"/api/v1/lists/{list_id}")).json() == {}
    assert (await alice_api.get(f"/api/v1/lists/{list_id}")).status_code == 404
    assert (await alice_api.get("/api/v1/lists")).json() == []


async def test_replies_policies(alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
                                carol_api: httpx.AsyncClient, alice: User, bob: User,
                                carol: User) -> None:
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    await alice_api.post(f"/api/v1/accounts/{carol.account_id}/follow")
    list_id = (await alice_api.post("/api/v1/lists", data={"title": "b"})).json()["id"]
    await alice_api.post(f"/api/v1/lists/{list_id}/accounts", data={"account_ids[]": str(bob.account_id)})
    carols = await post(carol_api, "carol asks")
    bobs = await post(bob_api, "bob starts")
    to_carol = await post(bob_api, "@carol answers", in_reply_to_id=carols)
    to_self = await post(bob_api, "thread", in_reply_to_id=bobs)
    expected = {"list": [to_self, bobs], "followed": [to_self, to_carol, bobs], "none": [bobs]}
    for policy, wanted in expected.items():
        await alice_api.put(f"/api/v1/lists/{list_id}", data={"replies_policy": policy})
        assert await ids(alice_api, f"/api/v1/timelines/list/{list_id}") == wanted, policy


async def test_lists_are_private_and_bad_input_is_refused(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, bob: User) -> None:
    list_id = (await alice_api.post("/api/v1/lists", data={"title": "mine"})).json()["id"]
    for method, path in (("GET", f"/api/v1/lists/{list_id}"), ("PUT", f"/api/v1/lists/{list_id}"),
                         ("DELETE", f"/api/v1/lists/{list_id}"),
                         ("GET", f"/api/v1/timelines/list/{list_id}"),
                         ("GET", f"/api/v1/lists/{list_id}/accounts")):
        response = await bob_api.request(method, path)
        assert response.status_code == 404 and response.json() == {"error": "Record not found"}, path
    for body in ({"title": ""}, {"title": "x" * 300}, {"title": "ok", "replies_policy": "all"}):
        bad = await alice_api.post("/api/v1/lists", json=body)
        assert bad.status_code == 422 and bad.json()["error"].startswith("Validation failed"), body
    missing = await alice_api.post(f"/api/v1/lists/{list_id}/accounts", data={"account_ids[]": "424242"})
    assert missing.status_code == 404
    empty = await alice_api.post(f"/api/v1/lists/{list_id}/accounts")
    assert empty.status_code == 422
    assert (await alice_api.get("/api/v1/lists/nope")).status_code == 404
    assert [x["title"] for x in (await alice_api.get("/api/v1/lists")).json()] == ["mine"]
