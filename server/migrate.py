"""Apply alembic migrations programmatically (``easel migrate``, ``easel serve``).

Alembic's configuration is built here rather than read from an ini file, so an installed
Easel migrates from any working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current(connection: Connection) -> Any:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        rev: str | None = await conn.run_sync(_current)
        return rev


# pg_advisory_xact_lock key held while migrating: several web processes starting at once
# against one PostgreSQL migrate one after the other (the later ones find nothing to do).
MIGRATION_LOCK_KEY = 0x65617365  # "ease"


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await conn.run_sync(_upgrade, revision)


async def _new_revision(message: str) -> None:
    """Autogenerate the next revision against a scratch SQLite database at head."""
    import tempfile

    from alembic.script import ScriptDirectory

    from server.db import make_engine

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    rev_id = f"{int(head or 0) + 1:04d}"
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite+aiosqlite:///{scratch}/scratch.sqlite3")
        try:
            await upgrade(engine)

            def generate(connection: Connection) -> None:
                config = alembic_config()
                config.attributes["connection"] = connection
                command.revision(config, message=message, autogenerate=True, rev_id=rev_id)

            async with engine.begin() as conn:
                await conn.run_sync(generate)
        finally:
            await engine.dispose()


if __name__ == "__main__":
    import asyncio
    import sys

    if len(sys.argv) != 2:
        sys.exit('usage: python -m server.migrate "what changed"  (writes the next revision)')
    asyncio.run(_new_revision(sys.argv[1]))
