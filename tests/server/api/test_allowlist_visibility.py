"""Allowlist federation mode and the accounts stored before it (or before their domain's
allow was removed).

Given ``EASEL_FEDERATION_MODE=allowlist`` and a remote artist whose posts are stored, I
expect her posts out of the public and hashtag timelines and the works gallery (for
everyone, signed in or not) and her page absent, as if her domain were suspended, while
local posts stay; allowing her domain (or a parent of it) through the admin API shows her,
and removing the allow hides her again. In open mode nothing changes.
"""

from __future__ import annotations

import httpx
import pytest

from server.app import create_app
from server.db import Database
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.web.works import add_work, remote_account

ADMIN_SCOPES = "read write admin:read admin:write"


async def ids(api: httpx.AsyncClient, path: str) -> list[str]:
    response = await api.get(path)
    assert response.status_code == 200, response.text
    return [entity["id"] for entity in response.json()]


SURFACES = ("/api/v1/timelines/public", "/api/v1/timelines/tag/inktober",
            "/api/v1/easel/works")


@pytest.mark.parametrize("mode", ["allowlist", "open"])
async def test_stored_accounts_of_domains_not_allowed_are_hidden_in_allowlist_mode(
        settings: Settings, mode: str) -> None:
    chosen = settings.with_changes(federation_mode=mode)
    app = create_app(chosen)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=chosen.base_url) as client:
        db: Database = app.state.easel.db
        async with db.session() as session:
            root = await create_user(session, chosen, username="moira",
                                     email="moira@example.com", password="a long password here",
                                     admin=True)
            alice = await create_user(session, chosen, username="alice",
                                      email="alice@example.com", password="a long password here")
        rita = await remote_account(db, domain="art.remote.example")
        hers = str((await add_work(db, chosen, rita)).id)
        own = str((await add_work(db, chosen, alice.account)).id)
        async with authorized(client, await make_token(db, root, ADMIN_SCOPES)) as admin, \
                authorized(client, await make_token(db, alice)) as alice_api:
            async def shown() -> bool:
                seen = []
                for api in (alice_api, client):
                    for path in SURFACES:
                        found = await ids(api, path)
                        assert own in found, path
                        seen.append(hers in found)
                page = (await client.get("/@rita@art.remote.example")).status_code
                seen.append(page == 200)
                assert len(set(seen)) == 1, seen  # every surface agrees
                return seen[0]

            if mode == "open":
                assert await shown()
                return
            assert not await shown()
            allowed = await admin.post("/api/v1/admin/domain_allows",
                                       json={"domain": "remote.example"})
            assert allowed.status_code == 200, allowed.text
            assert await shown()
            removed = await admin.delete(f"/api/v1/admin/domain_allows/{allowed.json()['id']}")
            assert removed.status_code == 200
            assert not await shown()
            other = await admin.post("/api/v1/admin/domain_allows", json={"domain": "elsewhere.example"})
            assert other.status_code == 200
            assert not await shown()
