"""``easel admin status``: each check with its verdict, exit status 1 when the instance is
unhealthy (database or broker unreachable, migrations behind, a queue nobody takes,
storage not writable); warnings (failed jobs, failing remote servers, no protection
model) keep it 0."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from server.db import Database
from server.ids import utcnow
from server.models import Instance, Job, JobState
from server.observability import ERROR, OK, WARNING, Check, instance_status
from server.ops_commands import status_command
from server.settings import Settings
from server.storage import StorageError, media_storage
from tests.server.test_cli import easel, environment


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


async def test_a_fresh_instance_is_healthy(settings: Settings, db: Database) -> None:
    out = io.StringIO()
    assert await status_command(settings, as_json=False, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[-1] == "healthy"
    checks = by_name(await instance_status(settings, db, media_storage(settings)))
    for name in ("database", "migrations", "queue", "deliveries", "broker", "storage"):
        assert checks[name].level == OK, checks[name]
    assert checks["queue"].detail == "empty"
    assert checks["migrations"].detail.startswith("at head (")
    # No EASEL_VAE_PATH: works, but uploads go out unprotected.
    assert checks["protection"].level == WARNING
    assert "EASEL_VAE_PATH" in checks["protection"].detail


async def test_failures_are_warnings_and_a_stalled_queue_an_error(
    settings: Settings, db: Database
) -> None:
    now = utcnow()
    async with db.session() as session:
        session.add_all([
            Job(kind="deliver", queue="federation", ref="1", state=JobState.FAILED, finished_at=now),
            Instance(domain="down.example", failures=7, first_failure_at=now - timedelta(hours=5),
                     last_failure_at=now),
        ])
        await session.commit()
    checks = by_name(await instance_status(settings, db, media_storage(settings)))
    assert checks["failed jobs"].level == WARNING
    assert "1 failed job(s)" in checks["failed jobs"].detail
    assert checks["deliveries"].level == WARNING
    assert "down.example (7 failure(s) over 5 h)" in checks["deliveries"].detail
    assert await status_command(settings, as_json=False, out=io.StringIO()) == 0

    async with db.session() as session:
        session.add(Job(kind="deliver", queue="federation", ref="2",
                        next_try_at=now - timedelta(minutes=30)))
        await session.commit()
    out = io.StringIO()
    assert await status_command(settings, as_json=True, out=out) == 1
    report = json.loads(out.getvalue())
    assert report["status"] == "error"
    stalled = next(c for c in report["checks"] if c["name"] == "queue federation")
    assert stalled["level"] == ERROR
    assert "1 due job(s), the oldest waiting 30 min" in stalled["detail"]


async def test_an_unreachable_database_is_an_error(settings: Settings, tmp_path: Path) -> None:
    missing = Database(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/easel.sqlite3")
    try:
        checks = by_name(await instance_status(settings, missing, media_storage(settings)))
    finally:
        await missing.dispose()
    assert checks["database"].level == ERROR
    assert checks["migrations"].level == ERROR and "unreachable" in checks["migrations"].detail
    assert checks["storage"].level == OK  # the rest is still checked


async def test_migrations_behind_head_are_an_error(settings: Settings, db: Database) -> None:
    async with db.engine.begin() as conn:
        head = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        checks = by_name(await instance_status(settings, db, media_storage(settings)))
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
    assert checks["migrations"].level == ERROR
    assert checks["migrations"].detail == f"at 0001, head is {head}: run `easel migrate`"


class ReadOnlyStorage:
    async def put(self, key: str, data: bytes, *, private: bool = False) -> None:
        raise StorageError("permission denied")


async def test_storage_that_cannot_be_written_is_an_error(settings: Settings, db: Database) -> None:
    checks = by_name(await instance_status(settings, db, ReadOnlyStorage()))  # type: ignore[arg-type]
    assert checks["storage"] == Check("storage", ERROR, "not writable: StorageError: permission denied")


async def test_the_storage_probe_leaves_nothing_behind(settings: Settings, db: Database) -> None:
    storage = media_storage(settings)
    await instance_status(settings, db, storage)
    assert await storage.list_files("status", private=True) == []


async def test_an_unreachable_broker_is_an_error(settings: Settings, db: Database) -> None:
    broken = settings.with_changes(broker_url="redis://127.0.0.1:1/0")
    checks = by_name(await instance_status(broken, db, media_storage(settings)))
    assert checks["broker"].level == ERROR
    assert checks["broker"].detail.startswith("Redis unreachable: ConnectionError")


def test_easel_admin_status_exit_status(settings: Settings, tmp_path: Path) -> None:
    healthy = easel(["admin", "status", "--json"], environment(settings), tmp_path)
    assert healthy.returncode == 0, healthy.stderr
    assert json.loads(healthy.stdout)["status"] == "ok"
    broken = easel(["admin", "status"], environment(settings, EASEL_BROKER_URL="redis://127.0.0.1:1/0"),
                   tmp_path)
    assert broken.returncode == 1
    assert "error    broker" in broken.stdout and broken.stdout.rstrip().endswith("UNHEALTHY")
    assert "Traceback" not in broken.stderr
