"""Hostile and malformed requests found in review: each gets a clear 4xx, never a 500,
and nothing half-written."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.models import Status, User
from server.services.accounts import create_user
from server.settings import Settings

BIG = "9999999999999999999"  # 19 digits, above 2**63 - 1
SUPERSCRIPT_TWO = "%C2%B2"  # "²": str.isdigit() is True, int() refuses it


@pytest.mark.parametrize("path", [
    f"/api/v1/statuses/{BIG}", f"/api/v1/statuses/{SUPERSCRIPT_TWO}", f"/api/v1/statuses/{BIG}/context",
    f"/api/v1/accounts/{BIG}", f"/api/v1/accounts/{SUPERSCRIPT_TWO}", f"/api/v1/accounts/{BIG}/statuses",
    f"/api/v1/notifications/{BIG}", f"/api/v1/media/{BIG}",
])
async def test_ids_out_of_range_or_not_ascii_are_not_found(alice_api: httpx.AsyncClient, path: str) -> None:
    response = await alice_api.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": "Record not found"}


@pytest.mark.parametrize("path", [
    f"/api/v1/statuses?id[]={BIG}", f"/api/v1/accounts/relationships?id[]={SUPERSCRIPT_TWO}",
    f"/api/v1/timelines/home?max_id={BIG}", f"/api/v1/timelines/public?min_id={SUPERSCRIPT_TWO}",
    f"/api/v1/notifications?account_id={BIG}", f"/api/v2/search?q=hello&account_id={BIG}",
    "/api/v2/search?q=hello&offset=99999999999999999999&type=statuses",
    f"/api/v2/search?q=https://easel.test/@alice/{BIG}",
    "/api/v2/search?q=https://[::1", "/api/v2/search?q=http://[x]/",
])
async def test_bad_ids_and_urls_in_queries_are_never_a_server_error(
    alice_api: httpx.AsyncClient, path: str
) -> None:
    response = await alice_api.get(path)
    assert response.status_code < 500, response.text


@pytest.mark.parametrize("body", [
    {"status": "x", "media_ids": [BIG]}, {"status": "x", "media_ids": ["²"]},
    {"status": "x", "in_reply_to_id": BIG},
])
async def test_bad_ids_in_a_new_status_are_refused_and_nothing_posted(
    alice_api: httpx.AsyncClient, db: Database, body: dict[str, object]
) -> None:
    response = await alice_api.post("/api/v1/statuses", json=body)
    assert 400 <= response.status_code < 500
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Status)) == 0


@pytest.mark.parametrize("path", [
    "/@a%00b", "/.well-known/webfinger?resource=acct:a%00b@easel.test",
    "/api/v2/search?q=a%00b", "/api/v1/accounts/lookup?acct=a%00b", "/api/v1/timelines/tag/a%00b",
])
async def test_nul_characters_in_urls_are_a_bad_request(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 400


async def test_nul_characters_in_bodies_are_refused(alice_api: httpx.AsyncClient, db: Database) -> None:
    response = await alice_api.post("/api/v1/statuses", json={"status": "a\u0000b"})
    assert response.status_code == 422
    assert "NUL" in response.json()["error"]
    app = await alice_api.post("/api/v1/apps", json={"client_name": "x\u0000", "redirect_uris":
                                                       "urn:ietf:wg:oauth:2.0:oob"})
    assert app.status_code == 422


async def test_a_bad_website_url_on_an_app_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/apps", json={
        "client_name": "x", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "website": "http://[::1"})
    assert response.status_code == 422


async def test_deeply_nested_json_is_malformed_not_a_crash(alice_api: httpx.AsyncClient) -> None:
    body = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await alice_api.post("/api/v1/statuses", content=body,
                                    headers={"Content-Type": "application/json"})
    assert response.status_code == 400


async def test_a_streamed_json_body_over_the_limit_is_413(alice_api: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"status": "'
        for _ in range(3):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    response = await alice_api.post("/api/v1/statuses", content=chunks(),
                                    headers={"Content-Type": "application/json"})
    assert response.status_code == 413


async def test_profile_fields_are_escaped_html(alice_api: httpx.AsyncClient, client: httpx.AsyncClient,
                                               alice: User) -> None:
    response = await alice_api.patch("/api/v1/accounts/update_credentials", json={
        "fields_attributes": [{"name": "<b>site</b>",
                               "value": "<img src=x onerror=alert(1)> https://a.example"}]})
    assert response.status_code == 200
    shown = (await client.get(f"/api/v1/accounts/{alice.account_id}")).json()["fields"][0]
    assert shown["name"] == "&lt;b&gt;site&lt;/b&gt;"
    assert "<img" not in shown["value"] and "&lt;img" in shown["value"]
    assert 'href="https://a.example"' in shown["value"]
    source = (await alice_api.get("/api/v1/accounts/verify_credentials")).json()["source"]
    assert source["fields"][0]["value"] == "<img src=x onerror=alert(1)> https://a.example"


async def test_accounts_pending_approval_are_nowhere_public(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    async with db.session() as session:
        await create_user(session, settings, username="carol", email="carol@example.com",
                          password="long enough pw", approved=False)
    for path, headers in (
        ("/.well-known/webfinger?resource=acct:carol@easel.test", {}),
        ("/users/carol", {"Accept": "application/activity+json"}),
        ("/@carol", {}),
        ("/api/v1/accounts/lookup?acct=carol", {}),
    ):
        response = await client.get(path, headers=headers)
        assert response.status_code == 404, path


async def test_a_disabled_account_disappears_too(client: httpx.AsyncClient, db: Database,
                                                 alice: User) -> None:
    async with db.session() as session:
        await session.execute(update(User).where(User.id == alice.id).values(disabled=True))
        await session.commit()
    assert (await client.get("/@alice")).status_code == 404


async def test_a_too_long_locale_is_a_validation_error_and_writes_nothing(
    client: httpx.AsyncClient, db: Database
) -> None:
    from tests.conftest import make_token

    token = await make_token(db, None, "read write")
    response = await client.post("/api/v1/accounts", headers={"Authorization": f"Bearer {token}"}, json={
        "username": "zed", "email": "zed@example.com", "password": "long enough password",
        "agreement": True, "locale": "abc-12345678-12345678"})
    assert response.status_code == 422
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_hashtags_only_in_drafts_or_direct_messages_are_not_searchable(
    alice_api: httpx.AsyncClient, bob: User, client: httpx.AsyncClient
) -> None:
    await alice_api.post("/api/v1/statuses", json={"status": "@bob psst #secretgift",
                                                    "visibility": "direct"})
    await alice_api.post("/api/v1/statuses", json={"status": "open #openstudio"})
    found = (await client.get("/api/v2/search", params={"q": "secretg", "type": "hashtags"})).json()
    assert found["hashtags"] == []
    public = (await client.get("/api/v2/search", params={"q": "openst", "type": "hashtags"})).json()
    assert [t["name"] for t in public["hashtags"]] == ["openstudio"]


async def test_default_images_say_not_for_ai_training(client: httpx.AsyncClient) -> None:
    for name in ("avatar.png", "header.png"):
        response = await client.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.headers["x-robots-tag"] == "noai, noimageai"
