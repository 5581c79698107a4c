"""Moderating a local account, as another instance sees it: alice on art.example is
followed by bob on paint.example; art.example's moderator suspends her (bob's instance
hides her and her posts), lifts it (they are back), then suspends and deletes her (bob's
instance removes her, her posts and the follow)."""

from __future__ import annotations

from sqlalchemy import update

from server.models import User
from tests.conftest import make_token
from tests.e2e.conftest import Instance, Person, settle
from tests.e2e.test_two_instances import follow, me, ok

ADMIN_SCOPES = "read write admin:read admin:write"


async def moderator_of(instance: Instance) -> Person:
    person = await instance.person("moira")
    async with instance.db.session() as session:
        await session.execute(update(User).where(User.id == person.user.id).values(admin=True))
        await session.commit()
    token = await make_token(instance.db, person.user, ADMIN_SCOPES)
    return Person(instance=instance, username="moira", user=person.user, token=token,
                  api=instance.client(token))


async def test_suspending_then_deleting_an_account_is_seen_on_the_other_instance(
        art: Instance, paint: Instance) -> None:
    alice, bob = await art.person("alice"), await paint.person("bob")
    moira = await moderator_of(art)
    alice_there = await follow(bob, alice, art, paint)
    posted = await ok(await alice.api.post("/api/v1/statuses", data={"status": "hello paint"}))
    await settle(art, paint)
    home = await ok(await bob.api.get("/api/v1/timelines/home"))
    assert [s["content"] for s in home] == ["<p>hello paint</p>"]
    there_id = home[0]["id"]
    admin_url = f"/api/v1/admin/accounts/{alice.account_id}"

    await ok(await moira.api.post(f"{admin_url}/action", data={"type": "suspend"}))
    await settle(art, paint)
    seen = await ok(await bob.api.get(f"/api/v1/accounts/{alice_there['id']}"))
    assert seen["suspended"] is True
    assert (await bob.api.get(f"/api/v1/statuses/{there_id}")).status_code == 404
    assert await ok(await bob.api.get("/api/v1/timelines/home")) == []

    await ok(await moira.api.post(f"{admin_url}/unsuspend"))
    await settle(art, paint)
    assert "suspended" not in await ok(await bob.api.get(f"/api/v1/accounts/{alice_there['id']}"))
    assert (await bob.api.get(f"/api/v1/statuses/{there_id}")).status_code == 200

    await ok(await moira.api.post(f"{admin_url}/action", data={"type": "suspend"}))
    await ok(await moira.api.delete(admin_url))
    await settle(art, paint)
    assert (await bob.api.get(f"/api/v1/accounts/{alice_there['id']}")).status_code == 404
    assert (await bob.api.get(f"/api/v1/statuses/{there_id}")).status_code == 404
    assert (await me(bob))["following_count"] == 0
    assert posted["id"]
