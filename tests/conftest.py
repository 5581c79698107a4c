"""Shared fixtures: settings, a migrated database per test, the app and its client, users.

The backends come from the environment, so the same suite runs on each:
``EASEL_TEST_DATABASE_URL`` (PostgreSQL; default: a SQLite file per test) and
``EASEL_TEST_BROKER_URL`` (Redis; default: dramatiq's in-process broker).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from server.app import AppOptions, create_app
from server.db import Database
from server.migrate import upgrade
from server.models import Base, User
from server.services.accounts import create_user
from server.settings import Settings

TEST_DATABASE_URL = os.environ.get("EASEL_TEST_DATABASE_URL", "")
TEST_BROKER_URL = os.environ.get("EASEL_TEST_BROKER_URL", "")
DOMAIN = "easel.test"


def _migrate(url: str) -> None:
    async def run() -> None:
        db = Database(url)
        try:
            await upgrade(db.engine)
        finally:
            await db.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "easel.sqlite3"
    _migrate(f"sqlite+aiosqlite:///{path}")
    return path


# Tables whose rows migrations seed (the instance's suggested portfolio vocabulary): kept
# across the per-test TRUNCATE on PostgreSQL, as a fresh SQLite copy keeps them.
SEEDED_TABLES = ("portfolio_tags", "portfolio_tag_aliases")
Seeds = dict[str, list[dict[str, object]]]


def seed_snapshot(url: str) -> Seeds:
    """The rows migrations seeded in a freshly migrated database."""
    async def run() -> Seeds:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                return {table: [dict(row._mapping) for row in
                                await conn.execute(Base.metadata.tables[table].select())]
                        for table in SEEDED_TABLES}
        finally:
            await db.dispose()

    return asyncio.run(run())


def truncate_all(url: str, seeds: Seeds) -> None:
    """Empty every table of a PostgreSQL test database, then put the seeded rows back."""
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)

    async def run() -> None:
        db = Database(url)
        try:
            async with db.engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
                for table in SEEDED_TABLES:  # parents first
                    if seeds[table]:
                        await conn.execute(Base.metadata.tables[table].insert(), seeds[table])
        finally:
            await db.dispose()

    asyncio.run(run())


def reset_postgres(url: str) -> None:
    """Drop everything in a PostgreSQL test database, so that a test session starts from a
    freshly migrated one (and its seeded rows are the migrations', not a former run's)."""
    async def run() -> None:
        db = Database(url)
        try:
            async with db.engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        finally:
            await db.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def postgres_migrated() -> tuple[str, Seeds]:
    """The freshly migrated test database and the rows its migrations seeded."""
    reset_postgres(TEST_DATABASE_URL)
    _migrate(TEST_DATABASE_URL)
    return TEST_DATABASE_URL, seed_snapshot(TEST_DATABASE_URL)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if TEST_DATABASE_URL:
        url, seeds = request.getfixturevalue("postgres_migrated")
        truncate_all(url, seeds)
        return str(url)
    template: Path = request.getfixturevalue("sqlite_template")
    path = tmp_path / "data" / "easel.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def broker_url() -> Iterator[str]:
    if TEST_BROKER_URL:
        import redis

        client = redis.Redis.from_url(TEST_BROKER_URL)
        client.flushdb()
        yield TEST_BROKER_URL
        client.flushdb()
        client.close()
    else:
        yield ""


@pytest.fixture
def settings(tmp_path: Path, database_url: str, broker_url: str) -> Settings:
    return Settings(
        domain=DOMAIN,
        scheme="https",
        data_dir=tmp_path / "data",
        database_url=database_url,
        broker_url=broker_url,
        rate_limits=False,
        allow_private_addresses=True,
        public_cache_seconds=0,
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database.from_settings(settings)
    yield database
    await database.dispose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings, options=AppOptions(worker_threads=2))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
        yield http


@pytest.fixture
async def alice(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="alice",
                                 email="alice@example.com", password="correct horse battery")


@pytest.fixture
async def bob(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="bob",
                                 email="bob@example.com", password="another good password")


@pytest.fixture
async def app_with_port(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an instance whose domain carries a port, with a user ``dora``."""
    ported = settings.with_changes(domain="localhost:8443")
    application = create_app(ported, options=AppOptions(run_workers=False))
    async with application.router.lifespan_context(application):
        async with application.state.easel.db.session() as session:
            await create_user(session, ported, username="dora", email="dora@example.com",
                              password="yet another password")
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="https://localhost:8443") as http:
            yield http


class KeyPool:
    """Real RSA-2048 key pairs, generated once per test session and handed out in order.

    Within a test every account gets a different key; across tests the same keys are
    reused, which saves a key generation per account.
    """

    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []
        self.next = 0

    def take(self) -> tuple[str, str]:
        from server.services.keys import generate_key_pair

        while len(self.keys) <= self.next:
            self.keys.append(generate_key_pair())
        self.next += 1
        return self.keys[self.next - 1]


_KEY_POOL = KeyPool()


@pytest.fixture(autouse=True)
def reuse_generated_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    _KEY_POOL.next = 0
    monkeypatch.setattr("server.services.accounts.generate_key_pair", _KEY_POOL.take)


# ------------------------------------------------------------------ client API helpers

DEFAULT_TEST_SCOPES = "read write follow push"


async def make_token(db: Database, user: User | None, scopes: str = DEFAULT_TEST_SCOPES) -> str:
    """An app and an access token for ``user`` (None: a client_credentials token), as the
    OAuth flow would leave them; returns the plaintext token."""
    import secrets

    from server.models import OAuthApplication, OAuthToken
    from server.services.tokens import token_digest

    token = secrets.token_urlsafe(32)
    async with db.session() as session:
        app = OAuthApplication(name="Test client", website="https://client.example",
                               redirect_uris="urn:ietf:wg:oauth:2.0:oob", scopes=scopes,
                               client_id=secrets.token_urlsafe(24),
                               client_secret=secrets.token_urlsafe(24))
        session.add(app)
        await session.flush()
        session.add(OAuthToken(token_digest=token_digest(token), application_id=app.id,
                               user_id=user.id if user else None, scopes=scopes))
        await session.commit()
    return token


def authorized(client: httpx.AsyncClient, token: str) -> httpx.AsyncClient:
    """A client sharing ``client``'s transport that sends ``token``."""
    return httpx.AsyncClient(transport=client._transport, base_url=client.base_url,
                             headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def alice_api(client: httpx.AsyncClient, db: Database, alice: User) -> AsyncIterator[httpx.AsyncClient]:
    """Alice's app client, authorised with read, write, follow and push."""
    async with authorized(client, await make_token(db, alice)) as http:
        yield http


@pytest.fixture
async def bob_api(client: httpx.AsyncClient, db: Database, bob: User) -> AsyncIterator[httpx.AsyncClient]:
    async with authorized(client, await make_token(db, bob)) as http:
        yield http


@pytest.fixture
async def carol(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="carol",
                                 email="carol@example.com", password="a third password")


@pytest.fixture
async def carol_api(client: httpx.AsyncClient, db: Database, carol: User) -> AsyncIterator[httpx.AsyncClient]:
    async with authorized(client, await make_token(db, carol)) as http:
        yield http


@pytest.fixture
def easel_env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The environment an admin's shell would have for this test's instance, for running
    ``server.cli.main`` in-process (the test backends' own settings are kept)."""
    for name in list(os.environ):
        if name.startswith("EASEL_") and not name.startswith("EASEL_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EASEL_DOMAIN", settings.domain)
    monkeypatch.setenv("EASEL_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("EASEL_DATABASE_URL", settings.effective_database_url)
    return settings


@pytest.fixture
def mid_rate_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rate-limit middleware's clock, 1 s after an edge of every window. With Redis the
    windows are aligned on the wall clock (multiples of 5 min, 30 min, 3 h): a test's burst
    that crossed an edge had its counts reset halfway and never saw its 429s."""
    import time as real_time

    import server.api.middleware as middleware

    start = real_time.time()
    base = (start // 10_800 + 1) * 10_800 + 1.0

    class Clock:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_time, name)

        def time(self) -> float:
            return base + (real_time.time() - start)

    monkeypatch.setattr(middleware, "time", Clock())
