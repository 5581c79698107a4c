"""An artist moves from one Easel to another: the new account names the old one as an
alias, the old one moves, and followers on both servers follow the new account — the old
server moves its own, the other server acts on the ``Move`` it receives."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select
from starlette.responses import Response

from server.models import Account, Follow
from server.services import moves
from server.services.errors import ServiceError
from server.web.session import CSRF_FIELD, SESSION_COOKIE, log_in
from tests.e2e.conftest import Instance, Person, settle
from tests.e2e.test_two_instances import ok, resolve_account

PASSWORD = "a long enough password"  # what Instance.person gives everyone


async def _follow(person: Person, handle: str) -> None:
    found = await resolve_account(person, handle) if "@" in handle else None
    account_id = found["id"] if found else handle
    await ok(await person.api.post(f"/api/v1/accounts/{account_id}/follow"))


async def _followed_by(instance: Instance, username: str, domain: str) -> set[str]:
    """Who follows ``username@domain``, as ``instance`` knows it (acct strings)."""
    async with instance.db.session() as session:
        target = await session.scalar(select(Account).where(
            Account.username == username, Account.domain == domain))
        assert target is not None
        followers = await session.scalars(select(Account).join(
            Follow, Follow.account_id == Account.id).where(Follow.target_account_id == target.id))
        return {account.acct() for account in followers}


async def _studio(instance: Instance, person: Person) -> httpx.AsyncClient:
    """``person`` signed in to ``instance``'s web pages (a session cookie)."""
    browser = instance.client()
    response = Response()
    log_in(response, instance.app.state.easel, person.user)
    cookie = response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    browser.cookies.set(SESSION_COOKIE, cookie, domain=instance.domain.split(":")[0])
    return browser


async def _post_move(browser: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await browser.get("/studio/move")
    assert page.status_code == 200, page.text
    found = re.search(rf'name="{CSRF_FIELD}" value="([^"]+)"', page.text)
    assert found is not None
    return await browser.post("/studio/move", data={CSRF_FIELD: found.group(1), **fields})


async def test_a_move_takes_followers_on_both_servers_to_the_new_account(
        art: Instance, paint: Instance) -> None:
    alice, carol = await art.person("alice"), await art.person("carol")
    bob, new = await paint.person("bob"), await paint.person("alice2")
    await _follow(carol, alice.account_id)          # a follower on the old server
    await _follow(bob, "alice@art.example")         # a follower on the new one
    await settle(art, paint)
    assert await _followed_by(art, "alice", "") == {"carol", "bob@paint.example"}
    leaving, arriving = await _studio(art, alice), await _studio(paint, new)

    refused = await _post_move(leaving, action="move", handle="alice2@paint.example",
                               password=PASSWORD)
    assert refused.status_code == 422 and "does not list this account as an alias" in refused.text
    wrong = await _post_move(leaving, action="move", handle="alice2@paint.example", password="nope")
    assert wrong.status_code == 422 and "That is not your password" in wrong.text
    nobody = await _post_move(leaving, action="move", handle="ghost@paint.example", password=PASSWORD)
    assert nobody.status_code == 422 and "No account" in nobody.text

    saved = await _post_move(arriving, action="aliases", aliases=f"{alice.uri}\n")
    assert saved.status_code == 200 and "Aliases saved." in saved.text
    bad = await _post_move(arriving, action="aliases", aliases="not a url")
    assert bad.status_code == 422 and "is not an account&#39;s address" in bad.text
    moved = await _post_move(leaving, action="move", handle="@alice2@paint.example",
                             password=PASSWORD)
    assert moved.status_code == 200 and "Moved to alice2@paint.example" in moved.text
    await settle(art, paint)

    assert await _followed_by(art, "alice", "") == set()
    assert await _followed_by(paint, "alice2", "") == {"bob", "carol@art.example"}
    old_there = await resolve_account(bob, "alice@art.example")
    shown = await ok(await bob.api.get(f"/api/v1/accounts/{old_there['id']}"))
    assert shown["moved"]["acct"] == "alice2"
    wants = {"Accept": "application/activity+json"}
    assert (await art.client().get("/users/alice", headers=wants)).json()["movedTo"] == new.uri
    assert (await paint.client().get("/users/alice2", headers=wants)).json()["alsoKnownAs"] == [alice.uri]
    assert "This account has moved to" in (await leaving.get("/studio/move")).text


async def test_aliases_are_checked(art: Instance) -> None:
    alice = await art.person("alice")
    async with art.db.session() as session:
        account = await session.get(Account, int(alice.account_id))
        assert account is not None
        for bad, message in ([["not a url"], "is not an account's address"],
                             [[alice.uri], "cannot be its own alias"],
                             [[f"https://old.example/users/a{n}" for n in range(11)], "At most 10"]):
            with pytest.raises(ServiceError, match=message):
                await moves.set_aliases(session, account, bad)
            await session.rollback()
            await session.refresh(account)
        assert await moves.set_aliases(session, account, ["https://old.example/users/a", " ",
                                                          "https://old.example/users/a"]) == [
            "https://old.example/users/a"]
        with pytest.raises(ServiceError, match="That is this account"):
            await moves.move_to(session, account, account)
