"""Two Easel instances federating in one process: ``art`` (art.example) and ``paint``
(paint.example).

Each is a real app (``create_app``) with its own database — on SQLite its own file; on
PostgreSQL the test database and a second one named after it (``<name>_b``, created on
first use) — its own data directory, and no background workers: tests move time forward
with :func:`settle`, which runs every due job of both instances (protection, federate,
deliver, process_inbox …) until neither has anything left, so each story is
deterministic. Their federation contexts share one :class:`Network`: an httpx transport
that routes a request by host to the other app's ``ASGITransport``, behind Easel's safe
client (a fake resolver gives both hosts a public address, and private addresses are
refused, as in production). Nothing leaves the process.

People are made with :meth:`Instance.person`: a confirmed user with an access token and
an API client, as a Mastodon app would hold.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from federation.context import FederationContext, install_federation_context
from server.app import AppOptions, create_app
from server.db import Database
from server.models import Account, Job, JobState, User
from server.queue.kinds import QUEUES
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import (
    TEST_DATABASE_URL,
    Seeds,
    _migrate,
    make_token,
    reset_postgres,
    seed_snapshot,
    truncate_all,
)

ART = "art.example"
PAINT = "paint.example"
# What the fake resolver answers for every host: a public address (never connected to).
PUBLIC_ADDRESS = "93.184.215.34"
# settle() gives up after this many rounds: a loop of activities would never end.
MAX_SETTLE_ROUNDS = 40


# ------------------------------------------------------------------------- databases

def peer_database_url(url: str) -> str:
    """The second instance's PostgreSQL database: the test database's name + ``_b``."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_b").render_as_string(hide_password=False)


def _create_database_if_missing(url: str) -> None:
    async def run() -> None:
        parsed = make_url(url)
        admin = Database(parsed.set(database="postgres").render_as_string(hide_password=False))
        try:
            async with admin.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                exists = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                           {"name": parsed.database})
                if not exists:
                    await conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
        finally:
            await admin.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def peer_postgres_migrated() -> tuple[str, Seeds]:
    url = peer_database_url(TEST_DATABASE_URL)
    _create_database_if_missing(url)
    reset_postgres(url)
    _migrate(url)
    return url, seed_snapshot(url)


@pytest.fixture
def peer_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database for the second instance, on the suite's backend."""
    if TEST_DATABASE_URL:
        url, seeds = request.getfixturevalue("peer_postgres_migrated")
        truncate_all(url, seeds)
        return str(url)
    template: Path = request.getfixturevalue("sqlite_template")
    path = tmp_path / "peer" / "easel.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, path)
    return f"sqlite+aiosqlite:///{path}"


# --------------------------------------------------------------------------- network

class Network(httpx.AsyncBaseTransport):
    """Routes each request by ``host[:port]`` to that instance's app; records them all.
    A host no instance serves is unreachable (a connection error)."""

    def __init__(self) -> None:
        self.hosts: dict[str, httpx.ASGITransport] = {}
        self.requests: list[tuple[str, str]] = []

    def serve(self, domain: str, app: Starlette) -> None:
        self.hosts[domain] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, str(request.url)))
        transport = self.hosts.get(request.url.netloc.decode("ascii"))
        if transport is None:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        return await transport.handle_async_request(request)

    def posted_to(self, domain: str) -> list[str]:
        return [url for method, url in self.requests
                if method == "POST" and httpx.URL(url).netloc.decode("ascii") == domain]


async def public_resolver(host: str, port: int) -> list[str]:
    return [PUBLIC_ADDRESS]


# ---------------------------------------------------------------------- instances

@dataclass
class Person:
    """A local user of one instance, with a token and an API client of their own."""

    instance: Instance
    username: str
    user: User
    token: str
    api: httpx.AsyncClient

    @property
    def handle(self) -> str:
        return f"{self.username}@{self.instance.domain}"

    @property
    def account_id(self) -> str:
        return str(self.user.account_id)

    @property
    def uri(self) -> str:
        return f"{self.instance.base_url}/users/{self.username}"


@dataclass
class Instance:
    app: Starlette
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.easel.settings
        return settings

    @property
    def db(self) -> Database:
        db: Database = self.app.state.easel.db
        return db

    @property
    def domain(self) -> str:
        return self.settings.domain

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                 base_url=self.base_url, headers=headers)
        self.clients.append(http)
        return http

    async def person(self, username: str, **changes: Any) -> Person:
        """A confirmed user ``username`` (account columns set from ``changes``)."""
        async with self.db.session() as session:
            user = await create_user(session, self.settings, username=username,
                                     email=f"{username}@{self.domain}",
                                     password="a long enough password")
            if changes:
                account = await session.get(Account, user.account_id)
                assert account is not None
                for key, value in changes.items():
                    setattr(account, key, value)
                await session.commit()
        token = await make_token(self.db, user)
        return Person(instance=self, username=username, user=user, token=token,
                      api=self.client(token))

    async def run_due(self) -> int:
        ran: int = await self.app.state.easel.runner.run_due(QUEUES)
        return ran

    async def troubled_jobs(self) -> list[str]:
        """Jobs that failed, or wait for a retry: each a line with its last error."""
        async with self.db.session() as session:
            jobs = list(await session.scalars(select(Job).where(
                (Job.state == JobState.FAILED) | ((Job.state == JobState.QUEUED) & (Job.attempts > 0)))))
        return [f"{self.domain}: {job.kind} ref={job.ref} state={job.state} attempts={job.attempts}: "
                f"{(job.last_error or '').strip()[-600:]}" for job in jobs]


async def settle(*instances: Instance, allow_troubled: bool = False) -> int:
    """Run every due job of every instance until a whole round runs none; return how many
    ran. Fails when a job failed or waits for a retry (with the jobs' last errors), unless
    ``allow_troubled``, and when activities keep causing each other forever."""
    total = 0
    for _ in range(MAX_SETTLE_ROUNDS):
        ran = 0
        for instance in instances:
            ran += await instance.run_due()
        total += ran
        if ran == 0:
            break
    else:
        raise AssertionError(f"still busy after {MAX_SETTLE_ROUNDS} rounds")
    if not allow_troubled:
        troubled = [line for instance in instances for line in await instance.troubled_jobs()]
        assert not troubled, "\n".join(troubled)
    return total


async def _instance(settings: Settings, network: Network) -> AsyncIterator[Instance]:
    application = create_app(settings, options=AppOptions(run_workers=False, run_reconciler=False))
    async with application.router.lifespan_context(application):
        context = FederationContext.build(settings, application.state.easel.db,
                                          transport=network, resolver=public_resolver)
        install_federation_context(context)
        network.serve(settings.domain, application)
        instance = Instance(app=application)
        try:
            yield instance
        finally:
            for http in instance.clients:
                await http.aclose()


@pytest.fixture
def network() -> Network:
    return Network()


def instance_settings(settings: Settings, domain: str, database_url: str, data_dir: Path) -> Settings:
    return settings.with_changes(domain=domain, scheme="https", data_dir=data_dir,
                                 database_url=database_url, allow_private_addresses=False,
                                 public_cache_seconds=0)


@pytest.fixture
async def art(settings: Settings, network: Network, tmp_path: Path) -> AsyncIterator[Instance]:
    """art.example, on the suite's own test database."""
    async for instance in _instance(
            instance_settings(settings, ART, settings.database_url, tmp_path / "art"), network):
        yield instance


@pytest.fixture
async def paint(settings: Settings, network: Network, peer_database: str,
                tmp_path: Path) -> AsyncIterator[Instance]:
    """paint.example, on the second database."""
    async for instance in _instance(
            instance_settings(settings, PAINT, peer_database, tmp_path / "paint"), network):
        yield instance


@pytest.fixture
def both(art: Instance, paint: Instance) -> Iterator[tuple[Instance, Instance]]:
    yield art, paint
