"""The studio's export: Mastodon's CSV formats and the archive of the artist's works."""

from __future__ import annotations

import io
import json
import zipfile

import httpx
from starlette.applications import Starlette

from server.models import MediaAttachment, Status, User
from tests.protect.conftest import run_protect
from tests.server.web.test_studio import upload_work


async def _status(api: httpx.AsyncClient, text: str) -> str:
    response = await api.post("/api/v1/statuses", data={"status": text})
    assert response.status_code == 200
    return str(response.json()["id"])


async def test_the_network_exports_in_mastodons_formats(
        app: Starlette, alice_web: httpx.AsyncClient, alice_api: httpx.AsyncClient,
        bob_api: httpx.AsyncClient, bob: User, carol: User) -> None:
    bob_id, carol_id = str(bob.account_id), str(carol.account_id)
    assert (await alice_api.post(f"/api/v1/accounts/{bob_id}/follow",
                                 data={"reblogs": "false", "notify": "true"})).status_code == 200
    assert (await alice_api.post(f"/api/v1/accounts/{carol_id}/block")).status_code == 200
    assert (await alice_api.post(f"/api/v1/accounts/{bob_id}/mute",
                                 data={"notifications": "false"})).status_code == 200
    status_id = await _status(bob_api, "worth keeping")
    assert (await alice_api.post(f"/api/v1/statuses/{status_id}/bookmark")).status_code == 200
    created = await alice_api.post("/api/v1/lists", data={"title": "Inks, watercolours"})
    list_id = created.json()["id"]
    assert (await alice_api.post(f"/api/v1/lists/{list_id}/accounts",
                                 data={"account_ids[]": bob_id})).status_code == 200

    async def export(name: str) -> str:
        response = await alice_web.get(f"/studio/export/{name}.csv")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == f'attachment; filename="{name}.csv"'
        assert response.headers["cache-control"] == "private, no-store"
        return response.text

    assert await export("following_accounts") == (
        "Account address,Show boosts,Notify on new posts,Languages\n"
        "bob@easel.test,false,true,\n")
    assert await export("blocked_accounts") == "carol@easel.test\n"
    assert await export("muted_accounts") == "Account address,Hide notifications\nbob@easel.test,false\n"
    async with app.state.easel.db.session() as session:
        uri = (await session.get(Status, int(status_id))).uri  # type: ignore[union-attr]
    assert await export("bookmarks") == f"{uri}\n"
    assert await export("lists") == '"Inks, watercolours",bob@easel.test\n'  # quoted CSV


async def test_the_archive_holds_the_works_their_data_and_originals(
        app: Starlette, alice_web: httpx.AsyncClient, bob_web: httpx.AsyncClient,
        alice_api: httpx.AsyncClient) -> None:
    work_id = await upload_work(alice_web, description="Grey heron, brush and ink", year="2024")
    await run_protect(app)
    await _status(alice_api, "words only, not a work")
    response = await alice_web.get("/studio/export/archive.zip")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["content-disposition"].startswith('attachment; filename="easel-alice-')
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    works = json.loads(archive.read("works.json"))
    # Published once protected, the work got its published id (the old one still finds it).
    published = (await alice_api.get(f"/api/v1/statuses/{work_id}")).json()
    assert [w["id"] for w in works] == [published["id"]]
    assert works[0]["uri"] == published["uri"]
    work = works[0]
    assert work["portfolio"]["title"] == "Heron" and work["portfolio"]["year"] == 2024
    assert work["portfolio"]["tags"]["medium"] == ["Ink"]
    assert work["portfolio"]["tags"]["software"] == ["Krita"]
    [image] = work["images"]
    assert image["description"] == "A heron in ink" and image["file"].startswith("originals/")
    async with app.state.easel.db.session() as session:
        media = await session.get(MediaAttachment, int(image["id"]))
        assert media is not None and media.original_key
    original = await app.state.easel.storage.get(media.original_key, private=True)
    assert archive.read(image["file"]) == original  # the unprotected upload, only for its owner
    profile = json.loads(archive.read("profile.json"))
    assert profile["address"] == "alice@easel.test" and profile["avatar"] is None
    assert "README.txt" in archive.namelist() and "MISSING.txt" not in archive.namelist()

    # Bob's archive has nothing of Alice's.
    theirs = zipfile.ZipFile(io.BytesIO((await bob_web.get("/studio/export/archive.zip")).content))
    assert json.loads(theirs.read("works.json")) == []
    assert not [name for name in theirs.namelist() if name.startswith("originals/")]


async def test_a_file_gone_from_storage_is_listed_not_hidden(
        app: Starlette, alice_web: httpx.AsyncClient) -> None:
    await upload_work(alice_web)
    await run_protect(app)
    async with app.state.easel.db.session() as session:
        from sqlalchemy import select
        media = (await session.scalars(select(MediaAttachment))).one()
    assert media.original_key
    await app.state.easel.storage.delete(media.original_key, private=True)
    archive = zipfile.ZipFile(io.BytesIO((await alice_web.get("/studio/export/archive.zip")).content))
    [image] = json.loads(archive.read("works.json"))[0]["images"]
    assert image["file"] in archive.read("MISSING.txt").decode()
    assert image["file"] not in archive.namelist()


async def test_exports_are_the_signed_in_artists_only(
        client: httpx.AsyncClient, alice_web: httpx.AsyncClient) -> None:
    assert (await alice_web.get("/studio/export/passwords.csv")).status_code == 404
    page = await alice_web.get("/studio/export")
    assert page.status_code == 200 and "/studio/export/archive.zip" in page.text
    assert "following_accounts.csv" in page.text
    # Signed out: files answer 404, the page sends to the sign-in form.
    assert (await client.get("/studio/export/following_accounts.csv")).status_code == 404
    assert (await client.get("/studio/export/archive.zip")).status_code == 404
    signed_out = await client.get("/studio/export")
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/auth/sign_in")
