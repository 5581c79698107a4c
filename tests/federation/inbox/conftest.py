"""A fake fediverse for the inbox: remote actors with real keys, their signed deliveries.

``fediverse`` serves each remote actor's document (and any object put in ``objects``)
through an ``httpx.MockTransport``, answers every inbox POST with 202 and records every
request; host names resolve through a fake resolver (``remote.example`` and friends to a
public address, ``private.example`` to a private one), and the app's federation context
is built over it with ``allow_private_addresses`` off, as in production.
``inbox_app`` runs no queue workers: tests run the federation queue themselves
(``process``), so each story is deterministic on SQLite and PostgreSQL/Redis alike.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from federation.context import FederationContext, federation_context, install_federation_context
from federation.inbox.intake import item_key
from federation.signatures import CavageSigner
from server.app import AppOptions, create_app
from server.db import Database
from server.models import Account, InboxItem, Job, Status, User
from server.services import statuses
from server.settings import Settings
from tests.conftest import _KEY_POOL, make_token

BASE = "https://easel.test"
AS2 = "application/activity+json"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
ALICE = BASE + "/users/alice"
ADDRESSES = {"private.example": "10.0.0.5"}
PUBLIC_ADDRESS = "93.184.215.14"
_ACTIVITY_NUMBERS = itertools.count(1)


@dataclass
class FakeActor:
    uri: str
    username: str
    private_pem: str
    public_pem: str
    name: str = ""
    locked: bool = False
    also_known_as: list[str] = field(default_factory=list)

    @property
    def key_id(self) -> str:
        return self.uri + "#main-key"

    @property
    def host(self) -> str:
        return httpx.URL(self.uri).host

    def document(self) -> dict[str, Any]:
        return {
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
            "id": self.uri, "type": "Person", "preferredUsername": self.username,
            "name": self.name or self.username.title(),
            "inbox": self.uri + "/inbox", "outbox": self.uri + "/outbox",
            "followers": self.uri + "/followers", "following": self.uri + "/following",
            "featured": self.uri + "/collections/featured",
            "endpoints": {"sharedInbox": f"https://{self.host}/inbox"},
            "manuallyApprovesFollowers": self.locked,
            "alsoKnownAs": self.also_known_as,
            "publicKey": {"id": self.key_id, "owner": self.uri, "publicKeyPem": self.public_pem},
        }

    def signer(self, private_pem: str | None = None, clock: Any = None) -> CavageSigner:
        if clock is not None:
            return CavageSigner(self.key_id, private_pem or self.private_pem, clock=clock)
        return CavageSigner(self.key_id, private_pem or self.private_pem)

    def activity(self, type_: str, obj: Any, suffix: str | None = None,
                 **extra: Any) -> dict[str, Any]:
        return {"@context": "https://www.w3.org/ns/activitystreams",
                "id": f"{self.uri}#{(suffix or type_).lower()}/{next(_ACTIVITY_NUMBERS)}",
                "type": type_, "actor": self.uri, "object": obj, **extra}


@dataclass
class Fediverse:
    actors: dict[str, FakeActor] = field(default_factory=dict)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)    # uri → forced HTTP status
    requests: list[httpx.Request] = field(default_factory=list)

    def actor(self, uri: str, username: str, **options: Any) -> FakeActor:
        private_pem, public_pem = _KEY_POOL.take()
        actor = FakeActor(uri=uri, username=username, private_pem=private_pem,
                          public_pem=public_pem, **options)
        self.actors[uri] = actor
        return actor

    def fetched(self, uri: str) -> int:
        return sum(1 for r in self.requests if r.method == "GET" and str(r.url) == uri)

    def posted(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.method == "POST"]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        if request.method == "POST":
            return httpx.Response(202)
        if url in self.status:
            return httpx.Response(self.status[url])
        if url in self.actors:
            return httpx.Response(200, json=self.actors[url].document(),
                                  headers={"Content-Type": AS2})
        if url in self.objects:
            return httpx.Response(200, json=self.objects[url], headers={"Content-Type": AS2})
        return httpx.Response(404)


@pytest.fixture
def fediverse() -> Fediverse:
    return Fediverse()


@pytest.fixture
async def inbox_app(settings: Settings, fediverse: Fediverse) -> AsyncIterator[Starlette]:
    application = create_app(settings, options=AppOptions(run_workers=False,
                                                          run_reconciler=False))
    async with application.router.lifespan_context(application):
        async def resolver(host: str, port: int) -> list[str]:
            return [ADDRESSES.get(host, PUBLIC_ADDRESS)]

        strict = settings.with_changes(allow_private_addresses=False)
        context = FederationContext.build(strict, application.state.easel.db,
                                          transport=httpx.MockTransport(fediverse.handler),
                                          resolver=resolver)
        install_federation_context(context)
        try:
            yield application
        finally:
            await context.close()


@pytest.fixture
def app_db(inbox_app: Starlette) -> Database:
    db: Database = inbox_app.state.easel.db
    return db


@pytest.fixture
async def remote_carol(fediverse: Fediverse) -> FakeActor:
    return fediverse.actor("https://remote.example/users/carol", "carol")


@pytest.fixture
async def remote_dave(fediverse: Fediverse) -> FakeActor:
    return fediverse.actor("https://other.example/users/dave", "dave")


def http(app: Starlette, auth: httpx.Auth | None = None, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, auth=auth,
                             headers=headers)


async def deliver(app: Starlette, sender: FakeActor, activity: dict[str, Any], *,
                  path: str = "/inbox", signer: httpx.Auth | None = None) -> httpx.Response:
    """POST ``activity`` to ``path``, signed by ``sender`` (or ``signer``)."""
    async with http(app, auth=signer or sender.signer()) as client:
        return await client.post(path, content=json.dumps(activity),
                                 headers={"Content-Type": AS2})


async def process(app: Starlette) -> int:
    """Run every due federation job (inbox items, and what they cause) until none is."""
    ran: int = await app.state.easel.runner.run_due(["federation"])
    return ran


async def stored(db: Database) -> tuple[int, int]:
    """(inbox items, process_inbox jobs) in the database."""
    async with db.session() as session:
        items = await session.scalar(select(func.count()).select_from(InboxItem))
        jobs = await session.scalar(select(func.count()).select_from(Job).where(
            Job.kind == "process_inbox"))
    return int(items or 0), int(jobs or 0)


async def item_for(db: Database, activity_id: str, *,
                   forwarded_by: FakeActor | None = None) -> InboxItem | None:
    """The inbox item of ``activity_id`` as its actor sent it, or as ``forwarded_by``
    forwarded it (stored under its own key)."""
    key = item_key(activity_id, forwarded_by=forwarded_by.uri if forwarded_by else None)
    async with db.session() as session:
        return await session.scalar(select(InboxItem).where(InboxItem.activity_uri == key))


async def receive(app: Starlette, sender: FakeActor, activity: dict[str, Any]) -> str:
    """Deliver ``activity``, run the queue, and return the item's outcome."""
    response = await deliver(app, sender, activity)
    assert response.status_code == 202, response.text
    await process(app)
    item = await item_for(app.state.easel.db, activity["id"])
    assert item is not None
    return item.outcome


class Api:
    """alice's client API on the inbox app."""

    def __init__(self, app: Starlette, token: str) -> None:
        self.app = app
        self.token = token

    async def get(self, path: str, **params: Any) -> Any:
        async with http(self.app, token=self.token) as client:
            response = await client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def post(self, path: str) -> Any:
        async with http(self.app, token=self.token) as client:
            response = await client.post(path)
        assert response.status_code == 200, response.text
        return response.json()

    async def account(self, account_id: int) -> Any:
        return await self.get(f"/api/v1/accounts/{account_id}")

    async def notifications(self) -> list[tuple[str, str]]:
        return [(n["type"], n["account"]["acct"]) for n in await self.get("/api/v1/notifications")]

    async def relationship(self, account_id: int) -> Any:
        return (await self.get("/api/v1/accounts/relationships", **{"id[]": account_id}))[0]

    async def status(self, status_id: int) -> Any:
        return await self.get(f"/api/v1/statuses/{status_id}")


@pytest.fixture
async def alice_app(inbox_app: Starlette, db: Database, alice: User) -> Api:
    return Api(inbox_app, await make_token(db, alice))


@pytest.fixture
async def artwork(db: Database, settings: Settings, alice: User) -> Status:
    async with db.session() as session:
        return await statuses.create_status(session, settings, alice.account, None,
                                            text="new painting #art")


async def remote_account(app: Starlette, actor: FakeActor) -> Account:
    state = app.state.easel
    return await federation_context(state.settings, state.db).fetcher.fetch_actor(actor.uri)


async def alice_asks_to_follow(app: Starlette, api: Api, actor: FakeActor,
                               fediverse: Fediverse) -> tuple[int, dict[str, Any]]:
    """alice follows ``actor`` through the API; its account id and the Follow it got."""
    account = await remote_account(app, actor)
    relationship = await api.post(f"/api/v1/accounts/{account.id}/follow")
    assert relationship["requested"] is True and relationship["following"] is False
    await process(app)
    sent = [a for a in fediverse.posted() if a["type"] == "Follow" and a["object"] == actor.uri]
    assert len(sent) == 1
    return account.id, sent[0]
