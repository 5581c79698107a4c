"""The studio's import: a CSV in, its rows applied by the process_import job, failures shown."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from starlette.applications import Starlette

from server.models import (
    AccountImport,
    AccountImportRow,
    Block,
    Bookmark,
    Follow,
    List,
    ListAccount,
    Mute,
    User,
)
from server.web.session import CSRF_FIELD
from tests.protect.conftest import settle
from tests.server.web.test_studio import token


async def _import(browser: httpx.AsyncClient, kind: str, body: str, *, mode: str = "merge",
                  name: str = "export.csv") -> httpx.Response:
    return await browser.post("/studio/import", data={
        CSRF_FIELD: await token(browser, "/studio/import"), "type": kind, "mode": mode},
        files={"file": (name, body.encode(), "text/csv")})


async def _run(app: Starlette) -> int:
    """Let the imports run (the in-process workers, or here with a broker); how many are done."""
    await settle(app)
    async with app.state.easel.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(AccountImport).where(
            AccountImport.state == "done")) or 0)


async def _pairs(app: Starlette, model: type, account_id: int) -> set[int]:
    async with app.state.easel.db.session() as session:
        return set(await session.scalars(select(model.target_account_id).where(  # type: ignore[attr-defined]
            model.account_id == account_id)))  # type: ignore[attr-defined]


async def test_follows_blocks_and_mutes_are_imported_and_failures_listed(
        app: Starlette, alice_web: httpx.AsyncClient, alice: User, bob: User, carol: User) -> None:
    response = await _import(alice_web, "following",
                             "Account address,Show boosts,Notify on new posts,Languages\n"
                             "bob@easel.test,false,true,\nnobody@easel.test,true,false,\n"
                             "alice@easel.test,true,false,\nnot-an-address\n")
    assert response.status_code == 303 and response.headers["location"] == "/studio/import"
    assert await _run(app) == 1
    async with app.state.easel.db.session() as session:
        follow = (await session.scalars(select(Follow).where(Follow.account_id == alice.account_id))).one()
        found = (await session.scalars(select(AccountImport))).one()
    assert follow.target_account_id == bob.account_id
    assert (follow.show_reblogs, follow.notify) == (False, True)
    assert (found.state, found.total_items, found.imported_items, found.failed_items) == ("done", 4, 1, 3)
    page = (await alice_web.get("/studio/import")).text
    for shown in ("nobody@easel.test</code>: account not found",
                  "alice@easel.test</code>: that is this account",
                  "not-an-address</code>: not an account address (user@domain)"):
        assert shown in page

    await _import(alice_web, "blocking", "carol@easel.test\n")
    await _import(alice_web, "muting", "Account address,Hide notifications\nbob@easel.test,false\n")
    assert await _run(app) == 3
    assert await _pairs(app, Block, alice.account_id) == {carol.account_id}
    async with app.state.easel.db.session() as session:
        mute = (await session.scalars(select(Mute))).one()
    assert mute.target_account_id == bob.account_id and mute.hide_notifications is False


async def test_overwrite_undoes_what_the_file_does_not_name_and_merge_never_does(
        app: Starlette, alice_web: httpx.AsyncClient, alice_api: httpx.AsyncClient,
        alice: User, bob: User, carol: User) -> None:
    for user in (bob, carol):
        assert (await alice_api.post(f"/api/v1/accounts/{user.account_id}/follow")).status_code == 200
    await _import(alice_web, "following", "carol@easel.test\n")  # merge
    assert await _run(app) == 1
    assert await _pairs(app, Follow, alice.account_id) == {bob.account_id, carol.account_id}
    await _import(alice_web, "following", "carol@easel.test\n", mode="overwrite")
    assert await _run(app) == 2
    assert await _pairs(app, Follow, alice.account_id) == {carol.account_id}


async def test_bookmarks_and_lists_are_imported(
        app: Starlette, alice_web: httpx.AsyncClient, bob_api: httpx.AsyncClient,
        alice: User, bob: User) -> None:
    status = (await bob_api.post("/api/v1/statuses", data={"status": "keep me"})).json()
    await _import(alice_web, "bookmarks", f"{status['uri']}\nhttps://easel.test/users/bob/statuses/1\n")
    await _import(alice_web, "lists", "Painters,bob@easel.test\n")
    assert await _run(app) == 2
    async with app.state.easel.db.session() as session:
        assert [b.status_id for b in await session.scalars(select(Bookmark))] == [int(status["id"])]
        painters = (await session.scalars(select(List).where(List.account_id == alice.account_id))).one()
        assert painters.title == "Painters"
        members = list(await session.scalars(select(ListAccount.account_id)))
        failed = list(await session.scalars(select(AccountImportRow.error).where(
            AccountImportRow.state == "failed")))
    assert members == [bob.account_id]  # followed first, as a list needs
    assert await _pairs(app, Follow, alice.account_id) == {bob.account_id}
    assert failed == ["post not found"]


async def test_files_that_cannot_be_imported_are_refused_on_the_form(
        app: Starlette, alice_web: httpx.AsyncClient) -> None:
    for kind, body, mode, message in [
        ("following", "", "merge", "The file has no rows to import"),
        ("contacts", "bob@easel.test\n", "merge", "Unknown import type"),
        ("following", "bob@easel.test\n", "replace", "Choose merge or overwrite."),
    ]:
        refused = await _import(alice_web, kind, body, mode=mode)
        assert refused.status_code == 422 and message in refused.text
    no_file = await alice_web.post("/studio/import", data={
        CSRF_FIELD: await token(alice_web, "/studio/import"), "type": "following", "mode": "merge"})
    assert no_file.status_code == 422 and "Choose the CSV file" in no_file.text
    forged = await alice_web.post("/studio/import", data={"type": "following", "mode": "merge"},
                                  files={"file": ("x.csv", b"bob@easel.test\n", "text/csv")})
    assert forged.status_code == 403
    async with app.state.easel.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(AccountImport)) == 0
