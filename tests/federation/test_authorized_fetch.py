"""Authorized fetch: with EASEL_AUTHORIZED_FETCH on, only signed GETs read actors,
collections and statuses.

Given a remote actor, carol, whose document (with her public key) a fake fediverse
serves through the app's own ActorFetcher, when she or an anonymous client fetches alice's
documents, I expect 200 for carol's signed fetches, 401 for unsigned and forged ones, and
the instance actor, WebFinger and NodeInfo open to everyone.

Given carol's key cached from an earlier fetch, when remote.example is suspended (or, in
allowlist mode, not allowed), I expect 403 for her fetches and no key fetched from there;
when alice blocks carol or remote.example (and carol signs), I expect alice's actor still
served, her statuses and their activities 404 and her collections empty, as in Mastodon
(StatusPolicy, AccountStatusesFilter); bob's documents, which no block covers, unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from federation.actors import ActorFetcher
from federation.http import safe_client
from federation.routes import install_actor_fetcher
from federation.signatures import CavageSigner
from server.app import AppOptions, create_app
from server.db import Database
from server.models import Account, Follow, Status, User
from server.services import blocks, domain_blocks, featured_tags, portfolio, statuses
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


# ------------------------------------------------------- suspended and blocked signers

async def _carol_fetches_once(app: Starlette) -> None:
    """Carol's key is stored (and her account with it) by one good fetch."""
    async with http(app, carol_signs()) as client:
        assert (await client.get("/users/alice/outbox", headers=AS2)).status_code == 200


async def _carol(db: Database) -> Account:
    async with db.session() as session:
        carol = await session.scalar(select(Account).where(Account.uri == CAROL))
    assert carol is not None
    return carol


async def test_a_suspended_domains_signer_is_refused_though_its_key_is_cached(
    secure_app: Starlette, shared: Status, remote: FakeFediverse, db: Database,
    settings: Settings
) -> None:
    await _carol_fetches_once(secure_app)
    async with db.session() as session:
        await domain_blocks.block_domain(session, "remote.example", own_domain=settings.domain,
                                         severity="suspend")
    async with http(secure_app, carol_signs()) as client:
        for path in protected_paths(shared):
            response = await client.get(path, headers=AS2)
            assert response.status_code == 403, (path, response.text)
        assert (await client.get("/actor", headers=AS2)).status_code == 200
    assert remote.fetches == [CAROL]  # nothing fetched from the suspended server


async def test_a_suspended_domains_signer_is_refused_before_its_key_is_fetched(
    secure_app: Starlette, shared: Status, remote: FakeFediverse, db: Database,
    settings: Settings
) -> None:
    async with db.session() as session:  # a block of the parent domain covers it
        await domain_blocks.block_domain(session, "example", own_domain=settings.domain,
                                         severity="suspend")
    async with http(secure_app, carol_signs()) as client:
        response = await client.get("/users/alice", headers=AS2)
    assert response.status_code == 403
    assert "remote.example" in response.json()["error"]
    assert remote.fetches == []


async def test_a_silenced_domains_signer_is_still_answered(
    secure_app: Starlette, shared: Status, db: Database, settings: Settings
) -> None:
    async with db.session() as session:
        await domain_blocks.block_domain(session, "remote.example", own_domain=settings.domain,
                                         severity="silence")
    async with http(secure_app, carol_signs()) as client:
        assert (await client.get("/users/alice/outbox", headers=AS2)).status_code == 200


async def test_in_allowlist_mode_a_domain_no_longer_allowed_is_refused(
    settings: Settings, remote: FakeFediverse, alice: User
) -> None:
    allowlist = settings.with_changes(authorized_fetch=True, federation_mode="allowlist")
    async for app in _app(allowlist, remote):
        async with http(app, carol_signs()) as client:
            assert (await client.get("/users/alice", headers=AS2)).status_code == 403
            assert remote.fetches == []  # not allowed: its key is never fetched
            async with app.state.easel.db.session() as session:
                allow = await domain_blocks.allow_domain(session, "remote.example")
            assert (await client.get("/users/alice", headers=AS2)).status_code == 200
            async with app.state.easel.db.session() as session:
                await domain_blocks.remove_domain_allow(session, allow.id)
            response = await client.get("/users/alice/outbox?page=true", headers=AS2)
            assert response.status_code == 403  # though carol's key is cached now
        assert remote.fetches == [CAROL]


async def test_a_signer_our_moderators_suspended_is_refused(
    secure_app: Starlette, shared: Status, db: Database
) -> None:
    await _carol_fetches_once(secure_app)
    async with db.session() as session:
        await session.execute(update(Account).where(Account.uri == CAROL).values(
            suspended_at=datetime.now(UTC), suspension_origin="local"))
        await session.commit()
    async with http(secure_app, carol_signs()) as client:
        response = await client.get("/users/alice/outbox", headers=AS2)
    assert response.status_code == 403


async def _alice_has_followers_pins_and_tags(db: Database, settings: Settings, alice: User,
                                            bob: User, shared: Status) -> None:
    async with db.session() as session:
        session.add_all([Follow(account_id=bob.account_id, target_account_id=alice.account_id),
                         Follow(account_id=alice.account_id, target_account_id=bob.account_id)])
        await session.commit()
        account = await session.get(Account, alice.account_id)
        status = await session.get(Status, shared.id)
        assert account is not None and status is not None
        await portfolio.pin(session, account, status)
        await featured_tags.feature_tag(session, account, "ink")


async def _assert_alice_hides_everything_from_carol(app: Starlette, shared: Status) -> None:
    status_path = shared.uri.removeprefix(BASE)
    async with http(app, carol_signs()) as client:
        actor = await client.get("/users/alice", headers=AS2)
        assert actor.status_code == 200  # as Mastodon: the actor (and its key) stay served
        for path in (status_path, status_path + "/activity"):
            response = await client.get(path, headers=AS2)
            assert response.status_code == 404, (path, response.text)
        for path in ("/users/alice/outbox", "/users/alice/followers", "/users/alice/following"):
            collection = await client.get(path, headers=AS2)
            assert collection.status_code == 200, path
            assert collection.json()["totalItems"] == 0, path
            page = await client.get(path + "?page=true", headers=AS2)
            assert page.status_code == 200, path
            assert page.json()["orderedItems"] == [], path
            assert "next" not in page.json(), path
        featured = await client.get("/users/alice/collections/featured", headers=AS2)
        assert (featured.status_code, featured.json()["totalItems"]) == (200, 0)
        assert featured.json()["orderedItems"] == []
        tags = await client.get("/users/alice/collections/tags", headers=AS2)
        assert (tags.status_code, tags.json()["totalItems"], tags.json()["items"]) == (200, 0, [])


async def test_alices_block_of_carol_hides_her_statuses_and_collections(
    secure_app: Starlette, shared: Status, db: Database, settings: Settings, alice: User,
    bob: User
) -> None:
    await _alice_has_followers_pins_and_tags(db, settings, alice, bob, shared)
    await _carol_fetches_once(secure_app)
    async with http(secure_app, carol_signs()) as client:  # before the block: all there
        featured = await client.get("/users/alice/collections/featured", headers=AS2)
        assert featured.json()["totalItems"] == 1
        followers = await client.get("/users/alice/followers?page=true", headers=AS2)
        assert followers.json()["orderedItems"] == [bob.account.uri]
    carol = await _carol(db)
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        await blocks.block(session, account, carol.id)
    await _assert_alice_hides_everything_from_carol(secure_app, shared)


async def test_alices_block_of_carols_domain_hides_the_same(
    secure_app: Starlette, shared: Status, db: Database, settings: Settings, alice: User,
    bob: User
) -> None:
    await _alice_has_followers_pins_and_tags(db, settings, alice, bob, shared)
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        await blocks.block_domain(session, account, "Remote.Example")
    await _assert_alice_hides_everything_from_carol(secure_app, shared)


async def test_a_block_hides_only_the_blockers_documents(
    secure_app: Starlette, shared: Status, db: Database, settings: Settings, alice: User,
    bob: User
) -> None:
    await _carol_fetches_once(secure_app)
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        bob_account = await session.get(Account, bob.account_id)
        assert account is not None and bob_account is not None
        await blocks.block(session, account, (await _carol(db)).id)
        bobs = await statuses.create_status(session, settings, bob_account, None, text="hi")
    async with http(secure_app, carol_signs()) as client:
        response = await client.get(bobs.uri.removeprefix(BASE), headers=AS2)
        assert response.status_code == 200
        page = await client.get("/users/bob/outbox?page=true", headers=AS2)
        assert len(page.json()["orderedItems"]) == 1
