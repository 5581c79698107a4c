"""The schema comes only from migrations, and the migrations match the models."""

from __future__ import annotations

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
