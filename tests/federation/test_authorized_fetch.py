"""Authorized fetch: with EASEL_AUTHORIZED_FETCH on, only signed GETs read actors,
collections and statuses.

Given a remote actor, carol, whose document (with her public key) a fake fediverse
serves through the app's own ActorFetcher, when she or an anonymous client fetches alice's
documents, I expect 200 for carol's signed fetches, 401 for unsigned and forged ones, and
the instance actor, WebFinger and NodeInfo open to everyone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from federation.actors import ActorFetcher
from federation.http import safe_client
from federation.routes import install_actor_fetcher
from federation.signatures import CavageSigner
from server.app import AppOptions, create_app
from server.db import Database
from server.models import Status, User
from server.services import statuses
from server.services.keys import generate_key_pair
from server.settings import Settings

AS2 = {"Accept": "application/activity+json"}
BASE = "https://easel.test"
CAROL = "https://remote.example/users/carol"
CAROL_KEY = CAROL + "#main-key"

# One real key pair each for carol (current and rotated) and a forger; made once.
_KEYS: list[tuple[str, str]] = []


def keys() -> list[tuple[str, str]]:
    while len(_KEYS) < 3:
        _KEYS.append(generate_key_pair())
    return _KEYS


def carol_document(public_pem: str) -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": CAROL, "type": "Person", "preferredUsername": "carol",
        "inbox": CAROL + "/inbox", "outbox": CAROL + "/outbox",
        "publicKey": {"id": CAROL_KEY, "owner": CAROL, "publicKeyPem": public_pem},
    }


@dataclass
class FakeFediverse:
    """remote.example, serving carol's actor with whichever key she has now."""

    public_pem: str
    fetches: list[str] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.fetches.append(str(request.url))
        if str(request.url) == CAROL:
            return httpx.Response(200, json=carol_document(self.public_pem),
                                  headers={"Content-Type": "application/activity+json"})
        return httpx.Response(404)


@pytest.fixture
def remote() -> FakeFediverse:
    return FakeFediverse(public_pem=keys()[0][1])


async def _app(settings: Settings, remote: FakeFediverse) -> AsyncIterator[Starlette]:
    application = create_app(settings, options=AppOptions(run_workers=False))
    async with application.router.lifespan_context(application):
        async def resolver(host: str, port: int) -> list[str]:
            return ["203.0.113.9"]

        state = application.state.easel
        client = safe_client(settings, resolver=resolver,
                             transport=httpx.MockTransport(remote.handler))
        async with client:
            install_actor_fetcher(application, ActorFetcher(state.db, state.settings, client))
            yield application


@pytest.fixture
async def secure_app(settings: Settings, remote: FakeFediverse) -> AsyncIterator[Starlette]:
    async for application in _app(settings.with_changes(authorized_fetch=True), remote):
        yield application


@pytest.fixture
async def open_app(settings: Settings, remote: FakeFediverse) -> AsyncIterator[Starlette]:
    async for application in _app(settings, remote):
        yield application


def http(app: Starlette, auth: httpx.Auth | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, auth=auth)


def carol_signs(private_pem: str | None = None) -> CavageSigner:
    return CavageSigner(CAROL_KEY, private_pem or keys()[0][0])


@pytest.fixture
async def shared(db: Database, settings: Settings, alice: User) -> Status:
    async with db.session() as session:
        account = alice.account
        return await statuses.create_status(session, settings, account, None, text="hello")


def protected_paths(status: Status) -> list[str]:
    path = status.uri.removeprefix(BASE)
    return ["/users/alice", "/users/alice/outbox", "/users/alice/outbox?page=true",
            "/users/alice/followers", "/users/alice/followers?page=true",
            "/users/alice/following", "/users/alice/collections/featured",
            path, path + "/activity"]


async def test_with_the_setting_off_everything_is_public(
    open_app: Starlette, shared: Status, remote: FakeFediverse
) -> None:
    async with http(open_app) as client:
        for path in protected_paths(shared):
            assert (await client.get(path, headers=AS2)).status_code == 200, path
    assert remote.fetches == []


async def test_unsigned_fetches_are_refused(secure_app: Starlette, shared: Status) -> None:
    async with http(secure_app) as client:
        for path in protected_paths(shared):
            response = await client.get(path, headers=AS2)
            assert response.status_code == 401, path
            assert response.json() == {"error": "Request not signed"}


async def test_a_remote_actors_signed_fetch_is_answered(
    secure_app: Starlette, shared: Status, remote: FakeFediverse
) -> None:
    async with http(secure_app, carol_signs()) as client:
        for path in protected_paths(shared):
            response = await client.get(path, headers=AS2)
            assert response.status_code == 200, (path, response.text)
    assert remote.fetches == [CAROL]  # the key is fetched once, then cached


async def test_a_forged_signature_is_refused(
    secure_app: Starlette, shared: Status, remote: FakeFediverse
) -> None:
    forger = keys()[2][0]
    async with http(secure_app, carol_signs(forger)) as client:
        response = await client.get("/users/alice/outbox", headers=AS2)
    assert response.status_code == 401
    assert response.json()["error"] not in ("", "Request not signed")
    assert remote.fetches == [CAROL, CAROL]  # fetched, then refetched once for rotation


async def test_a_rotated_key_is_refetched_once(
    secure_app: Starlette, shared: Status, remote: FakeFediverse
) -> None:
    async with http(secure_app, carol_signs()) as client:
        assert (await client.get("/users/alice/outbox", headers=AS2)).status_code == 200
    remote.public_pem = keys()[1][1]
    async with http(secure_app, carol_signs(keys()[1][0])) as client:
        assert (await client.get("/users/alice/outbox", headers=AS2)).status_code == 200
    assert remote.fetches == [CAROL, CAROL]


async def test_an_unknown_signer_is_refused(
    secure_app: Starlette, shared: Status, remote: FakeFediverse
) -> None:
    stranger = CavageSigner("https://remote.example/users/nobody#main-key", keys()[0][0])
    async with http(secure_app, stranger) as client:
        response = await client.get("/users/alice/outbox", headers=AS2)
    assert response.status_code == 401


async def test_a_signature_over_another_path_is_refused(
    secure_app: Starlette, shared: Status
) -> None:
    signed = httpx.Request("GET", BASE + "/users/alice/followers", headers=AS2)
    carol_signs().sign(signed)
    headers = dict(signed.headers)
    async with http(secure_app) as client:
        response = await client.get("/users/alice/outbox", headers=headers)
    assert response.status_code == 401


async def test_a_malformed_signature_is_refused(secure_app: Starlette, shared: Status) -> None:
    async with http(secure_app) as client:
        response = await client.get("/users/alice/outbox",
                                    headers={**AS2, "Signature": "keyId=nonsense"})
    assert response.status_code == 401
    assert response.json()["error"]


async def test_the_instance_actor_webfinger_and_nodeinfo_stay_public(
    secure_app: Starlette, alice: User
) -> None:
    async with http(secure_app) as client:
        actor = await client.get("/actor", headers=AS2)
        assert actor.status_code == 200
        assert actor.json()["id"] == BASE + "/actor"
        finger = await client.get("/.well-known/webfinger",
                                  params={"resource": "acct:alice@easel.test"})
        assert finger.status_code == 200
        assert (await client.get("/.well-known/nodeinfo")).status_code == 200


async def test_browsers_are_still_redirected_without_a_signature(
    secure_app: Starlette, shared: Status
) -> None:
    async with http(secure_app) as client:
        profile = await client.get("/users/alice", headers={"Accept": "text/html"})
        status = await client.get(shared.uri.removeprefix(BASE), headers={"Accept": "text/html"})
    assert (profile.status_code, status.status_code) == (302, 302)
