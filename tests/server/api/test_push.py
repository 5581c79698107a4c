"""Web Push subscriptions: ``/api/v1/push/subscription`` (POST, GET, PUT, DELETE).

I expect one subscription per access token, the WebPushSubscription entity Mastodon
gives (every alert a boolean, the policy, the instance's VAPID key as ``server_key``), a
422 with an error for an endpoint that is not https or keys of the wrong size, 401 without
a token, 403 without the ``push`` scope, another token's subscription out of sight, and
the same VAPID key in the instance (v2) and application entities.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from server.db import Database
from server.models import User
from tests.conftest import authorized, make_token

URL = "/api/v1/push/subscription"
ALERTS = ["mention", "status", "reblog", "follow", "follow_request", "favourite", "poll",
          "update", "admin.sign_up", "admin.report"]


def b64(data: bytes, *, padded: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text if padded else text.rstrip("=")


def browser_keys() -> tuple[str, str]:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint)
    return b64(point), b64(os.urandom(16))


def subscription_form(endpoint: str = "https://push.example/send/abc", **extra: Any) -> dict[str, Any]:
    p256dh, auth = browser_keys()
    return {"subscription": {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
            **extra}


async def test_subscribe_show_change_and_delete(alice_api: httpx.AsyncClient) -> None:
    assert (await alice_api.get(URL)).status_code == 404
    assert (await alice_api.get(URL)).json() == {"error": "Record not found"}

    created = await alice_api.post(URL, json=subscription_form(
        data={"alerts": {"mention": True, "follow": True, "favourite": False}, "policy": "followed"}))
    assert created.status_code == 200, created.text
    entity = created.json()
    assert set(entity) == {"id", "endpoint", "standard", "alerts", "policy", "server_key"}
    assert isinstance(entity["id"], str)
    assert entity["endpoint"] == "https://push.example/send/abc"
    assert entity["standard"] is False
    assert entity["policy"] == "followed"
    assert list(entity["alerts"]) == ALERTS
    assert {k for k, v in entity["alerts"].items() if v} == {"mention", "follow"}
    key = base64.urlsafe_b64decode(entity["server_key"] + "==")
    assert len(key) == 65 and key[0] == 4
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)

    assert (await alice_api.get(URL)).json() == entity

    changed = await alice_api.put(URL, json={"data": {"alerts": {"favourite": True, "mention": False},
                                                      "policy": "all"}})
    assert changed.status_code == 200, changed.text
    assert {k for k, v in changed.json()["alerts"].items() if v} == {"follow", "favourite"}
    assert changed.json()["policy"] == "all"
    assert changed.json()["id"] == entity["id"]

    # Subscribing again replaces it (alerts and policy start afresh).
    form = subscription_form("https://push.example/send/new")
    form["subscription"]["standard"] = True
    again = await alice_api.post(URL, json=form)
    assert again.status_code == 200 and again.json()["id"] != entity["id"]
    shown = (await alice_api.get(URL)).json()
    assert shown["endpoint"] == "https://push.example/send/new"
    assert shown["standard"] is True
    assert not any(shown["alerts"].values()) and shown["policy"] == "all"

    deleted = await alice_api.delete(URL)
    assert deleted.status_code == 200 and deleted.json() == {}
    assert (await alice_api.get(URL)).status_code == 404
    assert (await alice_api.put(URL, json={"data": {"policy": "none"}})).status_code == 404


async def test_form_encoded_with_padded_keys(alice_api: httpx.AsyncClient) -> None:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint)
    response = await alice_api.post(URL, data={
        "subscription[endpoint]": "https://push.example/x",
        "subscription[keys][p256dh]": b64(point, padded=True),
        "subscription[keys][auth]": b64(os.urandom(16), padded=True),
        "data[alerts][reblog]": "true", "data[policy]": "follower"})
    assert response.status_code == 200, response.text
    assert response.json()["alerts"]["reblog"] is True
    assert response.json()["policy"] == "follower"


async def test_bad_inputs_are_422(alice_api: httpx.AsyncClient) -> None:
    good_p256dh, good_auth = browser_keys()
    cases: list[dict[str, Any]] = [
        subscription_form("ftp://push.example/x"),
        subscription_form("not a url"),
        subscription_form("https:///nohost"),
        subscription_form("https://user:pw@push.example/x"),
        {"subscription": {"endpoint": "https://push.example/x",
                          "keys": {"p256dh": b64(os.urandom(65)), "auth": good_auth}}},
        {"subscription": {"endpoint": "https://push.example/x",
                          "keys": {"p256dh": good_p256dh[:40], "auth": good_auth}}},
        {"subscription": {"endpoint": "https://push.example/x",
                          "keys": {"p256dh": good_p256dh, "auth": b64(os.urandom(15))}}},
        {"subscription": {"endpoint": "https://push.example/x",
                          "keys": {"p256dh": good_p256dh, "auth": "!!!!"}}},
        {"subscription": {"endpoint": "https://push.example/x", "keys": {"p256dh": good_p256dh}}},
        {"subscription": {"keys": {"p256dh": good_p256dh, "auth": good_auth}}},
        subscription_form(data={"policy": "everyone"}),
    ]
    for index, body in enumerate(cases):
        response = await alice_api.post(URL, json=body)
        assert response.status_code == 422, (index, response.text)
        assert isinstance(response.json()["error"], str)
    assert (await alice_api.get(URL)).status_code == 404
    await alice_api.post(URL, json=subscription_form())
    bad_policy = await alice_api.put(URL, json={"data": {"policy": "everyone"}})
    assert bad_policy.status_code == 422 and "error" in bad_policy.json()


async def test_http_endpoints_only_where_private_addresses_are_allowed(
        alice_api: httpx.AsyncClient) -> None:
    # The test settings allow private addresses (a test network): http is accepted there.
    assert (await alice_api.post(URL, json=subscription_form("http://push.example/x"))).status_code == 200
    from server.services.errors import ServiceError
    from server.services.web_push import check_endpoint
    from server.settings import Settings

    strict = Settings(domain="art.example", allow_private_addresses=False)
    try:
        check_endpoint(strict, "http://push.example/x")
    except ServiceError as exc:
        assert exc.status_code == 422
    else:
        raise AssertionError("http accepted")
    assert check_endpoint(strict, "https://push.example/x") == "https://push.example/x"


async def test_tokens_scopes_and_ownership(client: httpx.AsyncClient, db: Database,
                                           alice: User, bob: User) -> None:
    assert (await client.get(URL)).status_code == 401
    assert (await client.post(URL, json=subscription_form())).status_code == 401
    async with authorized(client, await make_token(db, alice, "read write follow")) as no_push:
        for method in ("GET", "POST", "PUT", "DELETE"):
            response = await no_push.request(method, URL, json=subscription_form())
            assert response.status_code == 403, method
    async with authorized(client, await make_token(db, None, "push")) as app_only:
        assert (await app_only.get(URL)).status_code == 422

    async with authorized(client, await make_token(db, alice)) as first, \
            authorized(client, await make_token(db, alice)) as second, \
            authorized(client, await make_token(db, bob)) as bobs:
        assert (await first.post(URL, json=subscription_form())).status_code == 200
        assert (await second.get(URL)).status_code == 404  # another token of the same person
        assert (await bobs.get(URL)).status_code == 404
        assert (await bobs.delete(URL)).status_code == 200
        assert (await first.get(URL)).status_code == 200
        assert (await second.post(URL, json=subscription_form("https://push.example/two"))).status_code == 200
        assert (await first.get(URL)).json()["endpoint"] == "https://push.example/send/abc"
        assert (await second.get(URL)).json()["endpoint"] == "https://push.example/two"


async def test_the_server_key_is_the_instances_vapid_key(client: httpx.AsyncClient,
                                                         alice_api: httpx.AsyncClient) -> None:
    key = (await alice_api.post(URL, json=subscription_form())).json()["server_key"]
    instance = (await client.get("/api/v2/instance")).json()
    assert instance["configuration"]["vapid"] == {"public_key": key}
    assert (await alice_api.get("/api/v1/apps/verify_credentials")).json()["vapid_key"] == key
    registered = await client.post("/api/v1/apps", json={"client_name": "x",
                                                        "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"})
    assert registered.json()["vapid_key"] == key
