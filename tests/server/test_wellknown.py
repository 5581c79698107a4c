from __future__ import annotations

import httpx
import pytest

from server.models import User


@pytest.mark.parametrize("resource", [
    "acct:alice@easel.test",
    "alice@easel.test",
    "acct:ALICE@Easel.Test",
    "https://easel.test/users/alice",
    "https://easel.test/@alice",
])
async def test_webfinger_finds_alice_by_handle_or_url(
    client: httpx.AsyncClient, alice: User, resource: str
) -> None:
    response = await client.get("/.well-known/webfinger", params={"resource": resource})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jrd+json")
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    assert body["subject"] == "acct:alice@easel.test"
    assert "https://easel.test/users/alice" in body["aliases"]
    self_link = next(link for link in body["links"] if link["rel"] == "self")
    assert self_link == {"rel": "self", "type": "application/activity+json",
                         "href": "https://easel.test/users/alice"}
    profile = next(link for link in body["links"]
                   if link["rel"] == "http://webfinger.net/rel/profile-page")
    assert profile["href"] == "https://easel.test/@alice"


@pytest.mark.parametrize(("params", "status"), [
    ({}, 400),
    ({"resource": ""}, 400),
    ({"resource": "acct:alice"}, 400),
    ({"resource": "acct:@easel.test"}, 400),
    ({"resource": "acct:nobody@easel.test"}, 404),
    ({"resource": "acct:alice@elsewhere.example"}, 404),
    ({"resource": "https://elsewhere.example/users/alice"}, 404),
    ({"resource": "https://easel.test/users/alice/followers"}, 404),
    ({"resource": "https://easel.test/about"}, 404),
])
async def test_webfinger_answers_bad_or_unknown_resources_with_400_or_404(
    client: httpx.AsyncClient, alice: User, params: dict[str, str], status: int
) -> None:
    response = await client.get("/.well-known/webfinger", params=params)
    assert response.status_code == status
    assert "error" in response.json()


async def test_webfinger_keeps_the_port_of_the_domain(app_with_port: httpx.AsyncClient) -> None:
    response = await app_with_port.get(
        "/.well-known/webfinger", params={"resource": "acct:dora@localhost:8443"})
    assert response.status_code == 200
    assert response.json()["subject"] == "acct:dora@localhost:8443"
    missing_port = await app_with_port.get(
        "/.well-known/webfinger", params={"resource": "acct:dora@localhost"})
    assert missing_port.status_code == 404


async def test_webfinger_finds_the_instance_actor(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/.well-known/webfinger", params={"resource": "acct:easel.test@easel.test"})
    assert response.status_code == 200
    assert response.json()["links"][0]["href"] == "https://easel.test/actor"


async def test_host_meta_in_xml_and_json(client: httpx.AsyncClient) -> None:
    xml = await client.get("/.well-known/host-meta")
    assert xml.status_code == 200
    assert xml.headers["content-type"].startswith("application/xrd+xml")
    assert 'template="https://easel.test/.well-known/webfinger?resource={uri}"' in xml.text
    as_json = await client.get("/.well-known/host-meta.json")
    assert as_json.json() == {"links": [{
        "rel": "lrdd", "template": "https://easel.test/.well-known/webfinger?resource={uri}"}]}


async def test_nodeinfo_is_linked_in_both_versions(client: httpx.AsyncClient, alice: User) -> None:
    links = (await client.get("/.well-known/nodeinfo")).json()["links"]
    assert [link["href"] for link in links] == [
        "https://easel.test/nodeinfo/2.0", "https://easel.test/nodeinfo/2.1"]
    for version in ("2.0", "2.1"):
        response = await client.get(f"/nodeinfo/{version}")
        assert response.status_code == 200
        assert f"schema/{version}" in response.headers["content-type"]
        body = response.json()
        assert body["version"] == version
        assert body["software"]["name"] == "easel"
        assert body["protocols"] == ["activitypub"]
        assert body["usage"]["users"]["total"] == 1
        assert body["openRegistrations"] is False
    assert (await client.get("/nodeinfo/3.0")).status_code == 404


async def test_cors_preflight_on_well_known_but_not_on_pages(client: httpx.AsyncClient) -> None:
    preflight = await client.options("/.well-known/webfinger", headers={
        "Origin": "https://elk.zone", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    page = await client.get("/@nobody", headers={"Origin": "https://elk.zone"})
    assert "access-control-allow-origin" not in page.headers


async def test_nodeinfo_counts_published_local_posts_only(
        client: httpx.AsyncClient, alice_api: httpx.AsyncClient) -> None:
    assert (await client.get("/nodeinfo/2.1")).json()["usage"]["localPosts"] == 0
    posted = await alice_api.post("/api/v1/statuses", data={"status": "first"})
    assert posted.status_code == 200
    boosted = await alice_api.post(f"/api/v1/statuses/{posted.json()['id']}/reblog")
    assert boosted.status_code == 200
    assert (await client.get("/nodeinfo/2.1")).json()["usage"]["localPosts"] == 1
