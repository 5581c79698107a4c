"""Importing a Mastodon CSV across servers: the accounts and posts it names live on another
Easel, found by WebFinger and fetched, then followed (a request the other side accepts)
and bookmarked — two in-process instances federating (tests/e2e/conftest.py)."""

from __future__ import annotations

from sqlalchemy import select

from server.models import Account, AccountImport, Bookmark, Follow
from server.services.imports import create_import, parse_import
from tests.e2e.conftest import Instance, settle


async def test_a_following_and_a_bookmarks_export_are_imported_from_another_server(
        art: Instance, paint: Instance) -> None:
    alice, bob = await art.person("alice"), await paint.person("bob")
    posted = await bob.api.post("/api/v1/statuses", json={"status": "a public sketch"})
    assert posted.status_code == 200
    uri = posted.json()["uri"]
    async with art.db.session() as session:
        importer = await session.get(Account, int(alice.account_id))
        assert importer is not None
        for kind, body in (("following", "Account address,Show boosts,Notify on new posts,Languages\n"
                                         "bob@paint.example,true,false,\nghost@paint.example,true,false,\n"),
                           ("bookmarks", f"{uri}\n")):
            await create_import(session, importer, parse_import(kind, body.encode()), overwrite=False)
    await settle(art, paint)

    async with art.db.session() as session:
        imports = {found.type: found for found in await session.scalars(select(AccountImport))}
        follows = list(await session.scalars(select(Follow).where(
            Follow.account_id == int(alice.account_id))))
        bookmarked = list(await session.scalars(select(Bookmark)))
    assert (imports["following"].state, imports["following"].imported_items,
            imports["following"].failed_items) == ("done", 1, 1)  # the ghost is not there
    assert (imports["bookmarks"].state, imports["bookmarks"].imported_items) == ("done", 1)
    assert len(follows) == 1  # paint accepted the Follow the import sent
    assert len(bookmarked) == 1
    followers = (await bob.api.get(f"/api/v1/accounts/{bob.account_id}/followers")).json()
    assert [account["acct"] for account in followers] == ["alice@art.example"]


