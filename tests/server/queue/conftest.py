from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from server.db import Database
from server.models import Job
from tests.server.queue.kinds_for_tests import create_effects_table

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    """The runner's injectable clock, moved by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
async def effects_table(db: Database) -> AsyncIterator[None]:
    """The scratch table the test job kinds write to; gone after the test (it is not
    part of Easel's schema, which the migration test checks)."""
    await create_effects_table(db)
    yield
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE test_effects"))


async def reload(db: Database, job: Job) -> Job:
    """The job row as it is now."""
    async with db.session() as session:
        found = await session.get(Job, job.id)
        assert found is not None
        return found
