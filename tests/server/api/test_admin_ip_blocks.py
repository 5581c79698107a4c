"""The admin API for IP blocks (``/api/v1/admin/ip_blocks``).

Given an admin, I expect Mastodon's ``Admin::IpBlock`` for a created block (the network
with its prefix length, ``expires_at`` from ``expires_in``), the block to apply to requests
at once, show, update (only what is sent; an empty ``expires_in`` clears the expiry) and
delete to work, the list to page newest first with a ``Link`` header and to include
expired blocks; a missing or bad network or severity, a bad ``expires_in`` or the same
network twice to be a 422 storing nothing; unknown ids 404; normal users 403 and no token
401 on every endpoint.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import utcnow
from server.models import IpBlock, User
from tests.conftest import DOMAIN, authorized, make_token
from tests.server.api.test_admin_reports import ADMIN_SCOPES, admin_api, moderator

__all__ = ["admin_api", "moderator"]  # fixtures

ENDPOINTS = [("GET", "/api/v1/admin/ip_blocks"), ("POST", "/api/v1/admin/ip_blocks"),
             ("GET", "/api/v1/admin/ip_blocks/1"), ("PUT", "/api/v1/admin/ip_blocks/1"),
             ("DELETE", "/api/v1/admin/ip_blocks/1")]


async def count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(IpBlock)) or 0)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_create_show_update_and_delete(admin_api: httpx.AsyncClient, client: httpx.AsyncClient,
                                             moderator: User, db: Database) -> None:
    created = await admin_api.post("/api/v1/admin/ip_blocks", json={
        "ip": "203.0.113.9/24", "severity": "sign_up_block", "comment": "spam wave",
        "expires_in": 86400})
    assert created.status_code == 200, created.text
    block = created.json()
    assert block == {"id": block["id"], "ip": "203.0.113.0/24", "severity": "sign_up_block",
                     "comment": "spam wave", "created_at": block["created_at"],
                     "expires_at": block["expires_at"]}
    lasts = moment(block["expires_at"]) - moment(block["created_at"])
    assert timedelta(hours=23, minutes=59) < lasts <= timedelta(days=1)
    url = f"/api/v1/admin/ip_blocks/{block['id']}"
    assert (await admin_api.get(url)).json() == block

    form = await admin_api.put(url, data={"severity": "no_access"})  # a form works too
    assert form.status_code == 200, form.text
    assert (form.json()["severity"], form.json()["comment"], form.json()["expires_at"]) == (
        "no_access", "spam wave", block["expires_at"])
    cleared = (await admin_api.put(url, json={"expires_in": None, "ip": "2001:db8::/32"})).json()
    assert (cleared["ip"], cleared["expires_at"], cleared["severity"]) == ("2001:db8::/32", None,
                                                                           "no_access")
    # In force at once in this process (the test client comes from 127.0.0.1: unaffected).
    ipv6 = httpx.ASGITransport(app=client._transport.app, client=("2001:db8::1", 1))  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=ipv6, base_url=f"https://{DOMAIN}") as blocked:
        assert (await blocked.get("/api/v1/instance")).status_code == 403
        assert (await admin_api.delete(url)).json() == {}
        assert (await blocked.get("/api/v1/instance")).status_code == 200
    assert (await admin_api.get(url)).status_code == 404
    assert (await admin_api.put(url, json={"severity": "no_access"})).status_code == 404
    assert (await admin_api.delete(url)).status_code == 404
    assert (await admin_api.get("/api/v1/admin/ip_blocks/nope")).status_code == 404


async def test_the_list_pages_newest_first_expired_included(admin_api: httpx.AsyncClient,
                                                            db: Database) -> None:
    ids = []
    for n in range(3):
        response = await admin_api.post("/api/v1/admin/ip_blocks", data={
            "ip": f"192.0.2.{n}", "severity": "sign_up_requires_approval"})
        ids.append(response.json()["id"])
    async with db.session() as session:
        await session.execute(update(IpBlock).where(IpBlock.id == int(ids[0])).values(
            expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    listed = await admin_api.get("/api/v1/admin/ip_blocks")
    assert [b["id"] for b in listed.json()] == ids[::-1]
    first = await admin_api.get("/api/v1/admin/ip_blocks", params={"limit": 2})
    assert [b["id"] for b in first.json()] == [ids[2], ids[1]]
    assert 'rel="next"' in first.headers["link"]
    nxt = first.headers["link"].split(";")[0].strip("<>")
    second = await admin_api.get(nxt.replace(f"https://{DOMAIN}", ""))
    assert [b["id"] for b in second.json()] == [ids[0]]


@pytest.mark.parametrize("body", [
    {}, {"severity": "no_access"}, {"ip": "", "severity": "no_access"},
    {"ip": "not an ip", "severity": "no_access"}, {"ip": "10.0.0.0/33", "severity": "no_access"},
    {"ip": "10.0.0.1"}, {"ip": "10.0.0.1", "severity": "ban"},
    {"ip": "10.0.0.1", "severity": "no_access", "expires_in": 0},
    {"ip": "10.0.0.1", "severity": "no_access", "expires_in": "tomorrow"},
    {"ip": "10.0.0.1", "severity": "no_access", "expires_in": -60},
    {"ip": "10.0.0.1", "severity": "no_access", "comment": "x" * 5001},
    {"ip": {"a": "10.0.0.1"}, "severity": "no_access"},
])
async def test_bad_input_is_422_and_stores_nothing(admin_api: httpx.AsyncClient, db: Database,
                                                   body: dict[str, Any]) -> None:
    response = await admin_api.post("/api/v1/admin/ip_blocks", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("Validation failed: ")
    assert await count(db) == 0


async def test_the_same_network_twice_is_taken(admin_api: httpx.AsyncClient, db: Database) -> None:
    first = (await admin_api.post("/api/v1/admin/ip_blocks", json={
        "ip": "198.51.100.0/24", "severity": "no_access"})).json()
    again = await admin_api.post("/api/v1/admin/ip_blocks", json={
        "ip": "198.51.100.7/24", "severity": "sign_up_block"})
    assert again.status_code == 422
    assert again.json() == {"error": "Validation failed: Ip has already been taken"}
    other = (await admin_api.post("/api/v1/admin/ip_blocks", json={
        "ip": "198.51.101.0/24", "severity": "no_access"})).json()
    moved = await admin_api.put(f"/api/v1/admin/ip_blocks/{other['id']}", json={"ip": first["ip"]})
    assert moved.status_code == 422
    bad = await admin_api.put(f"/api/v1/admin/ip_blocks/{other['id']}", json={"severity": ""})
    assert bad.status_code == 422
    assert (await admin_api.get(f"/api/v1/admin/ip_blocks/{other['id']}")).json() == other
    assert await count(db) == 2


async def test_normal_users_get_403_and_no_token_401(
        client: httpx.AsyncClient, alice_api: httpx.AsyncClient, db: Database, alice: User,
        moderator: User) -> None:
    async with authorized(client, await make_token(db, alice, ADMIN_SCOPES)) as scoped, \
            authorized(client, await make_token(db, moderator, "read write")) as unscoped, \
            authorized(client, await make_token(db, moderator, "admin:read")) as read_only:
        for method, path in ENDPOINTS:
            kwargs: dict[str, Any] = (
                {"json": {"ip": "10.0.0.1", "severity": "no_access"}} if method in ("POST", "PUT")
                else {})
            assert (await alice_api.request(method, path, **kwargs)).status_code == 403, path
            assert (await scoped.request(method, path, **kwargs)).status_code == 403, path
            assert (await unscoped.request(method, path, **kwargs)).status_code == 403, path
            assert (await client.request(method, path, **kwargs)).status_code == 401, path
            if method != "GET":
                assert (await read_only.request(method, path, **kwargs)).status_code == 403, path
        assert (await read_only.get("/api/v1/admin/ip_blocks")).status_code == 200
    assert await count(db) == 0
