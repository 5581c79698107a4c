"""``DELETE /api/v1/profile/avatar`` and ``…/header``: back to the default image, the
stored file deleted, the change sent to followers' servers as an ``Update`` of the actor
(as ``update_credentials`` does), the CredentialAccount returned."""

from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import func, select

from server.db import Database
from server.models import Activity, User
from tests.conftest import authorized, make_token
from tests.server.api.test_accounts import account_row


def png(size: tuple[int, int] = (64, 48), colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


async def updates(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(Activity).where(
            Activity.type == "Update", Activity.payload["object_type"].as_string() == "Person")) or 0


async def upload_both(api: httpx.AsyncClient) -> None:
    response = await api.patch("/api/v1/accounts/update_credentials",
                               files={"avatar": ("a.png", png(), "image/png"),
                                      "header": ("h.png", png((300, 100), "blue"), "image/png")})
    assert response.status_code == 200, response.text


async def test_deleting_the_avatar_and_header_restores_the_defaults_and_federates(
    alice_api: httpx.AsyncClient, app: Any, db: Database, alice: User
) -> None:
    storage = app.state.easel.storage
    urls = app.state.easel.urls
    await upload_both(alice_api)
    uploaded = await account_row(db, alice.account_id)
    assert uploaded.avatar_key and uploaded.header_key
    assert await updates(db) == 1

    response = await alice_api.delete("/api/v1/profile/avatar")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(alice.account_id) and "source" in body  # a CredentialAccount
    assert body["avatar"] == body["avatar_static"] == urls.default_avatar
    assert body["header"] == storage.public_url(uploaded.header_key)
    account = await account_row(db, alice.account_id)
    assert account.avatar_key is None and account.header_key == uploaded.header_key
    assert not await storage.exists(uploaded.avatar_key)
    assert await storage.exists(uploaded.header_key)
    assert await updates(db) == 2

    again = await alice_api.delete("/api/v1/profile/avatar")
    assert again.status_code == 200 and again.json()["avatar"] == urls.default_avatar
    assert await updates(db) == 2  # nothing changed: nothing to tell

    header = await alice_api.delete("/api/v1/profile/header")
    assert header.status_code == 200
    assert header.json()["header"] == header.json()["header_static"] == urls.default_header
    assert (await account_row(db, alice.account_id)).header_key is None
    assert not await storage.exists(uploaded.header_key)
    assert await updates(db) == 3
    public_root = storage.public_root
    assert not [p for p in public_root.rglob("*") if p.is_file()]
    shown = (await alice_api.get(f"/api/v1/accounts/{alice.account_id}")).json()
    assert (shown["avatar"], shown["header"]) == (urls.default_avatar, urls.default_header)


async def test_deleting_profile_images_needs_write_accounts_and_a_user(
    client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    for path in ("/api/v1/profile/avatar", "/api/v1/profile/header"):
        assert (await client.delete(path)).status_code == 401
        async with authorized(client, await make_token(db, alice, "read write:statuses")) as api:
            narrow = await api.delete(path)
        assert narrow.status_code == 403
        assert narrow.json() == {"error": "This action is outside the authorized scopes"}
        async with authorized(client, await make_token(db, None, "write")) as api:
            app_only = await api.delete(path)
        assert app_only.status_code == 422
        assert app_only.json() == {"error": "This method requires an authenticated user"}
        async with authorized(client, await make_token(db, alice, "write:accounts")) as api:
            assert (await api.delete(path)).status_code == 200
            assert (await api.get(path)).status_code == 405
