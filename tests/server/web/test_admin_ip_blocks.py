"""The admin page for IP blocks (``/admin/ip_blocks``), linked from the admin navigation.

Given moira (an admin), I expect the page to list the blocks (expired ones marked), a
block added with its severity, comment and expiry to be stored and in force at once, bad
input to come back as the page with its error (422) storing nothing, removal to work; a
normal user to get 403, a signed-out visitor the sign-in redirect, a form without its CSRF
token 403, and an unknown id "not found".
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update
from starlette.applications import Starlette

from server.db import Database
from server.ids import utcnow
from server.models import IpBlock, User
from tests.conftest import DOMAIN
from tests.server.web.test_admin_pages import admin_web, count, moira, refused_with, submit, user_web
from tests.server.web.works import csrf_of

__all__ = ["admin_web", "moira", "user_web"]  # fixtures


async def test_blocks_are_added_listed_and_removed(app: Starlette, db: Database,
                                                   admin_web: httpx.AsyncClient) -> None:
    page = await admin_web.get("/admin")
    assert 'href="/admin/ip_blocks"' in page.text
    empty = await admin_web.get("/admin/ip_blocks")
    assert empty.status_code == 200 and "No network is blocked" in empty.text
    added = await submit(admin_web, "/admin/ip_blocks", {
        "ip": "2001:db8::5/64", "severity": "no_access", "comment": "scraper farm",
        "expires_in": "86400"})
    assert added.status_code == 303 and added.headers["location"] == "/admin/ip_blocks"
    listed = await admin_web.get("/admin/ip_blocks")
    assert "2001:db8::/64" in listed.text and "scraper farm" in listed.text
    assert 'aria-current="page">IP blocks' in listed.text
    async with db.session() as session:
        block = (await session.scalars(select(IpBlock))).one()
    assert block.severity == "no_access" and block.expires_at is not None
    blocked = httpx.ASGITransport(app=app, client=("2001:db8::9", 1))
    async with httpx.AsyncClient(transport=blocked, base_url=f"https://{DOMAIN}") as http:
        assert (await http.get("/api/v1/instance")).status_code == 403  # at once

        async with db.session() as session:
            await session.execute(update(IpBlock).values(expires_at=utcnow() - timedelta(seconds=1)))
            await session.commit()
        assert "expired" in (await admin_web.get("/admin/ip_blocks")).text
        removed = await submit(admin_web, f"/admin/ip_blocks/{block.id}/remove")
        assert removed.status_code == 303
        assert (await http.get("/api/v1/instance")).status_code == 200
    assert await count(db, IpBlock) == 0


async def test_bad_input_comes_back_on_the_page(db: Database, admin_web: httpx.AsyncClient) -> None:
    refused_with(await submit(admin_web, "/admin/ip_blocks", {"ip": "nonsense", "severity": "no_access"}),
                 422, "is not an IP address or network")
    refused_with(await submit(admin_web, "/admin/ip_blocks", {"ip": "192.0.2.1", "severity": "ban"}),
                 422, "Severity")
    refused_with(await submit(admin_web, "/admin/ip_blocks", {
        "ip": "192.0.2.1", "severity": "no_access", "expires_in": "-5"}), 422, "Expires in")
    assert await count(db, IpBlock) == 0
    assert (await submit(admin_web, "/admin/ip_blocks", {
        "ip": "192.0.2.1", "severity": "sign_up_block"})).status_code == 303
    again = await submit(admin_web, "/admin/ip_blocks", {
        "ip": "192.0.2.1/32", "severity": "no_access", "comment": "kept"})
    refused_with(again, 422, "Ip has already been taken")
    assert 'value="192.0.2.1/32"' in again.text and "kept" in again.text  # the form is kept
    assert await count(db, IpBlock) == 1
    missing = await submit(admin_web, "/admin/ip_blocks/123/remove")
    assert missing.status_code == 404


async def test_only_admins_with_the_form_token_change_blocks(
        db: Database, client: httpx.AsyncClient, admin_web: httpx.AsyncClient,
        user_web: httpx.AsyncClient, moira: User) -> None:
    assert (await user_web.get("/admin/ip_blocks")).status_code == 403
    token = csrf_of(await user_web.get("/studio"))
    form = {"authenticity_token": token, "ip": "192.0.2.1", "severity": "no_access"}
    assert (await user_web.post("/admin/ip_blocks", data=form)).status_code == 403
    signed_out = await client.get("/admin/ip_blocks")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith("/auth/sign_in?next=/admin/ip_blocks")
    forged = await admin_web.post("/admin/ip_blocks", data={**form, "authenticity_token": "forged"})
    assert forged.status_code == 403 and "Form expired" in forged.text
    assert await count(db, IpBlock) == 0
