"""The schema comes only from migrations, and the migrations match the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from server.db import Database
from server.migrate import alembic_config, current_revision, head_revision, upgrade
from server.models import Base


def test_there_is_exactly_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1


async def test_models_and_the_migration_head_agree(db: Database) -> None:
    await upgrade(db.engine)

    def diff(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []
    assert await current_revision(db.engine) == head_revision()


async def test_upgrading_twice_is_a_no_op(db: Database) -> None:
    await upgrade(db.engine)
    await upgrade(db.engine)
    assert await current_revision(db.engine) == head_revision()


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'wal.sqlite3'}")
    try:
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() >= 5000
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await db.dispose()


async def test_upgrading_keeps_existing_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each revision after the first upgrades a database that already holds data."""
    from sqlalchemy import text

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}")
    try:
        await upgrade(db.engine, "0001")
        async with db.engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO accounts (id, username, username_key, domain, actor_type, display_name,"
                " note, uri, url, inbox_url, outbox_url, shared_inbox_url, followers_url,"
                " following_url, featured_url, public_key_id, public_key_pem, locked, discoverable,"
                " indexable, bot, created_at, updated_at) VALUES (1, 'old', 'old', '', 'Person', '',"
                " '', 'https://x/users/old', '', '', '', '', '', '', '', '', '', 0, 1, 0, 0,"
                " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            row = (await conn.execute(text(
                "SELECT username, statuses_count, fields FROM accounts WHERE id = 1"))).one()
        assert tuple(row) == ("old", 0, "[]")
    finally:
        await db.dispose()


async def test_web_processes_starting_together_on_postgresql_migrate_once() -> None:
    """Two processes migrating one fresh PostgreSQL database at the same moment (a cluster
    starting) both succeed: the second waits for the first and finds nothing to do."""
    import asyncio

    import pytest
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from tests.conftest import TEST_DATABASE_URL

    if not TEST_DATABASE_URL:
        pytest.skip("PostgreSQL only: one SQLite file has one web process")
    url = make_url(TEST_DATABASE_URL)
    fresh = url.set(database=f"{url.database}_migrate").render_as_string(hide_password=False)
    admin = Database(url.set(database="postgres").render_as_string(hide_password=False))
    try:
        async with admin.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}_migrate"'))
            await conn.execute(text(f'CREATE DATABASE "{url.database}_migrate"'))
    finally:
        await admin.dispose()
    first, second = Database(fresh), Database(fresh)
    try:
        await asyncio.gather(upgrade(first.engine), upgrade(second.engine))
        assert await current_revision(first.engine) == head_revision()
        async with first.engine.connect() as conn:
            assert (await conn.scalar(text("SELECT count(*) FROM alembic_version"))) == 1
    finally:
        await first.dispose()
        await second.dispose()


async def test_domain_suspensions_made_before_0033_suspend_their_stored_accounts(
        tmp_path: Path) -> None:
    """0033 applies the suspensions already made to the accounts already stored (the most
    specific block decides), and its downgrade lifts exactly those."""
    from alembic import command
    from sqlalchemy import select

    from server.ids import utcnow
    from server.migrate import alembic_config
    from server.models import Account, DomainBlock

    def downgrade(connection: Any, revision: str) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}")
    try:
        await upgrade(db.engine, "0032")
        moderated = utcnow()
        async with db.session() as session:
            session.add_all([
                DomainBlock(domain="bad.example", severity="suspend"),
                DomainBlock(domain="ok.bad.example", severity="noop"),
                DomainBlock(domain="loud.example", severity="silence")])
            for name, domain in (("a", "bad.example"), ("b", "art.bad.example:8443"),
                                 ("c", "ok.bad.example"), ("d", "loud.example"),
                                 ("e", "good.example"), ("f", "bad.example")):
                session.add(Account(username=name, username_key=name, domain=domain,
                                    uri=f"https://{domain}/users/{name}"))
            await session.commit()
            mod = await session.scalar(select(Account).where(Account.username == "f"))
            assert mod is not None
            mod.suspended_at, mod.suspension_origin = moderated, "local"
            await session.commit()

        async def standing() -> dict[str, str | None]:
            async with db.session() as session:
                return {a.username: a.suspension_origin
                        for a in await session.scalars(select(Account).order_by(Account.username))}

        await upgrade(db.engine)
        assert await standing() == {"a": "domain", "b": "domain", "c": None, "d": None,
                                    "e": None, "f": "local"}
        async with db.engine.begin() as conn:
            await conn.run_sync(downgrade, "0032")
        assert await standing() == {"a": None, "b": None, "c": None, "d": None, "e": None,
                                    "f": "local"}
    finally:
        await db.dispose()
