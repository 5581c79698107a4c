"""``easel admin queue``: depth by queue and kind, failures, retry (a new run of retries,
then the job runs once more) and purge (failed, or a kind's queued and failed jobs; never
a running one); ``easel admin jobs --retry`` goes through the same code."""

from __future__ import annotations

import argparse
import io
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from server.commands import CommandError, jobs
from server.db import Database
from server.ids import utcnow
from server.models import Job, JobState
from server.ops_commands import queue_command
from server.queue.jobs import PENDING_JOBS_KEY
from server.queue.runner import JobRunner
from server.settings import Settings
from tests.server.queue.kinds_for_tests import create_effects_table, effects
from tests.server.test_cli import easel, environment


async def add_jobs(db: Database) -> dict[str, int]:
    """One job per situation; their ids by ref."""
    now = utcnow()
    rows = [
        Job(kind="test.record", queue="default", ref="queued", next_try_at=now - timedelta(seconds=5)),
        Job(kind="test.record", queue="default", ref="later", next_try_at=now + timedelta(hours=1)),
        Job(kind="test.record", queue="default", ref="running", state=JobState.RUNNING,
            attempts=1, claims=1, locked_until=now + timedelta(minutes=5)),
        Job(kind="test.record", queue="default", ref="failed-record", state=JobState.FAILED,
            attempts=10, claims=10, finished_at=now - timedelta(minutes=2),
            last_error="Traceback…\nRuntimeError: the record broke"),
        Job(kind="test.flaky", queue="default", ref="9:failed-flaky", state=JobState.FAILED,
            attempts=5, claims=5, finished_at=now - timedelta(minutes=1),
            last_error="RuntimeError: flaky failure on attempt 5"),
        Job(kind="deliver", queue="federation", ref="1", state=JobState.DONE, finished_at=now),
    ]
    async with db.session() as session:
        session.add_all(rows)
        await session.commit()
        return {job.ref: job.id for job in rows}


def command(action: str | None, **options: object) -> argparse.Namespace:
    defaults: dict[str, object] = {"kind": None, "limit": 50, "ids": [], "all_failed": False,
                                   "failed": False}
    return argparse.Namespace(queue_command=action, **{**defaults, **options})


async def run(settings: Settings, action: str | None, **options: object) -> str:
    out = io.StringIO()
    assert await queue_command(settings, command(action, **options), out) == 0
    return out.getvalue()


async def states(db: Database) -> dict[str, tuple[str, int]]:
    async with db.session() as session:
        return {job.ref: (job.state, job.attempts) for job in await session.scalars(select(Job))}


async def test_depth_by_queue_and_kind(settings: Settings, db: Database) -> None:
    assert await run(settings, None) == "the queue is empty (no queued, running or failed job)\n"
    await add_jobs(db)
    lines = (await run(settings, "depth")).splitlines()
    assert lines[0].split() == ["queue", "kind", "queued", "running", "failed"]
    assert lines[1].split() == ["default", "test.flaky", "0", "0", "1"]
    assert lines[2].split() == ["default", "test.record", "2", "1", "1"]
    assert len(lines) == 4  # the done delivery is history, not depth
    assert lines[3].startswith("due now in default: 1, the oldest waiting ")


async def test_failures_latest_first_with_their_last_error(settings: Settings, db: Database) -> None:
    ids = await add_jobs(db)
    lines = (await run(settings, "failures")).splitlines()
    assert [line.split()[0] for line in lines] == [str(ids["9:failed-flaky"]), str(ids["failed-record"])]
    assert lines[1].endswith("RuntimeError: the record broke")
    only = (await run(settings, "failures", kind="test.record")).splitlines()
    assert len(only) == 1 and "attempts=10" in only[0]
    assert await run(settings, "failures", kind="test.hangs") == "no failed jobs\n"


async def test_retry_requeues_a_failed_job_which_then_runs_once(settings: Settings, db: Database) -> None:
    await create_effects_table(db)
    ids = await add_jobs(db)
    assert await run(settings, "retry", ids=[ids["failed-record"]]) == "requeued 1 failed job(s)\n"
    after = await states(db)
    assert after["failed-record"] == ("queued", 0)  # a new run of retries
    assert after["9:failed-flaky"] == ("failed", 5)  # not named: left alone
    async with db.session() as session:
        job = await session.get(Job, ids["failed-record"])
        assert job is not None and job.finished_at is None and job.claims == 10
    runner = JobRunner(db, settings)
    assert await runner.run(ids["failed-record"]) == "done"
    assert await effects(db, "failed-record") == [1]


async def test_retry_refuses_what_is_not_failed(settings: Settings, db: Database) -> None:
    ids = await add_jobs(db)
    with pytest.raises(CommandError, match=f"not failed \\(left alone\\): {ids['running']}"):
        await queue_command(settings, command("retry", ids=[ids["running"], ids["failed-record"]]),
                            io.StringIO())
    after = await states(db)
    assert after["running"] == ("running", 1)
    assert after["failed-record"] == ("queued", 0)
    with pytest.raises(CommandError, match="their ids\\) or give --all-failed"):
        await queue_command(settings, command("retry"), io.StringIO())
    with pytest.raises(CommandError, match="their ids\\) or give --all-failed"):
        await queue_command(settings, command("retry", ids=[1], all_failed=True), io.StringIO())


async def test_retry_all_failed_of_a_kind(settings: Settings, db: Database) -> None:
    await add_jobs(db)
    assert await run(settings, "retry", all_failed=True, kind="test.flaky") == "requeued 1 failed job(s)\n"
    after = await states(db)
    assert after["9:failed-flaky"] == ("queued", 0) and after["failed-record"] == ("failed", 10)
    assert await run(settings, "retry", all_failed=True) == "requeued 1 failed job(s)\n"
    assert (await states(db))["failed-record"] == ("queued", 0)


async def test_a_retry_tells_the_queue_after_the_commit(settings: Settings, db: Database) -> None:
    from server.queue import admin as queue_admin

    ids = await add_jobs(db)
    sent: list[list[tuple[int, str]]] = []
    db.dispatch_jobs = sent.append
    async with db.session() as session:
        await queue_admin.retry_failed(session, [ids["failed-record"]])
        assert session.info[PENDING_JOBS_KEY] == [(ids["failed-record"], "default")]
        assert sent == []
        await session.commit()
    assert sent == [[(ids["failed-record"], "default")]]


async def test_purge_failed_then_a_kind_never_running_jobs(settings: Settings, db: Database) -> None:
    await add_jobs(db)
    assert await run(settings, "purge", failed=True, kind="test.flaky") == \
        "purged 1 failed test.flaky job(s)\n"
    assert "9:failed-flaky" not in await states(db)
    assert await run(settings, "purge", kind="test.record") == \
        "purged 3 queued and failed test.record job(s)\n"
    assert set(await states(db)) == {"running", "1"}  # the running job and the done one stay
    assert await run(settings, "purge", failed=True) == "purged 0 failed job(s)\n"


async def test_purge_refuses_without_a_target_or_with_an_unknown_kind(
    settings: Settings, db: Database
) -> None:
    await add_jobs(db)
    with pytest.raises(CommandError, match="purge needs --failed, --kind KIND, or both"):
        await queue_command(settings, command("purge"), io.StringIO())
    with pytest.raises(CommandError, match=r"unknown job kind 'test\.recrod'; kinds: "):
        await queue_command(settings, command("purge", kind="test.recrod"), io.StringIO())
    assert len(await states(db)) == 6


async def test_admin_jobs_retry_goes_through_the_same_code(settings: Settings, db: Database,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    ids = await add_jobs(db)
    assert await jobs(settings, None, 50, [str(ids["9:failed-flaky"])]) == 0
    assert capsys.readouterr().out == "requeued 1 failed job(s)\n"
    assert (await states(db))["9:failed-flaky"] == ("queued", 0)
    with pytest.raises(CommandError, match="job ids are numbers"):
        await jobs(settings, None, 50, ["abc"])
    assert await jobs(settings, None, 50, []) == 0
    assert capsys.readouterr().out == "requeued 1 failed job(s)\n"


def test_easel_admin_queue_from_the_command_line(settings: Settings, tmp_path: Path) -> None:
    env = environment(settings)
    empty = easel(["admin", "queue"], env, tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert "the queue is empty" in empty.stdout
    refused = easel(["admin", "queue", "retry"], env, tmp_path)
    assert refused.returncode == 1
    assert "name the failed jobs to retry" in refused.stderr and "Traceback" not in refused.stderr
    bad = easel(["admin", "queue", "retry", "abc"], env, tmp_path)
    assert bad.returncode == 2 and "not an id: 'abc'" in bad.stderr
