"""``easel admin queue`` and ``easel admin status``: what an operator runs to see how the
instance is doing and to deal with failed background work.

Why it exists: the figures come from ``server/queue/admin.py`` and
``server/observability.py``; this module only turns them into lines (or JSON) and exit
statuses, as ``server/commands.py`` does for the other commands.

What it must never do: change anything for ``depth``, ``failures`` or ``status``; purge
without being told what (``--failed`` and/or ``--kind``); retry a job that is not failed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import TextIO

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import Database
from server.ids import utcnow
from server.models import Job
from server.observability import ERROR, instance_status
from server.queue import admin as queue_admin
from server.queue.broker import JobQueue, make_broker
from server.queue.runner import JobRunner
from server.settings import Settings
from server.storage import media_storage


def _fail(message: str) -> Exception:
    from server.commands import CommandError

    return CommandError(message)


async def require_migrated(settings: Settings) -> None:
    """Refuse, with the way out, to use a database that was never migrated: the commands
    that do not migrate it themselves (queue, jobs, reports, reprotect, reverify, media
    prune) would otherwise end in a "no such table" traceback. ``easel admin status`` says
    the same."""
    from server.migrate import current_revision

    db = Database.from_settings(settings)
    try:
        current = await current_revision(db.engine)
    except OSError as exc:
        raise _fail(f"cannot reach the database: {exc}") from exc
    finally:
        await db.dispose()
    if current is None:
        raise _fail("the database has no Easel tables (it was never migrated): run `easel migrate`")


async def queue_command(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """``easel admin queue [depth|failures|retry|purge]``."""
    action = getattr(args, "queue_command", None) or "depth"
    await require_migrated(settings)
    db = Database.from_settings(settings)
    queue: JobQueue | None = None
    try:
        if action == "depth":
            return await _depth(db, out)
        if action == "failures":
            return await _failures(db, out, kind=args.kind, limit=args.limit)
        if action == "retry":
            if bool(args.ids) == bool(args.all_failed):
                raise _fail("name the failed jobs to retry (their ids) or give --all-failed")
            if settings.broker_url:  # the broker's workers hear of the jobs at once
                queue = JobQueue(JobRunner(db, settings), make_broker(settings))
            async with db.session() as session:
                requeued = await queue_admin.retry_failed(
                    session, args.ids or None, kind=args.kind)
                await session.commit()
            print(f"requeued {len(requeued)} failed job(s)", file=out)
            left = sorted(set(args.ids or ()) - set(requeued))
            if left:
                raise _fail(f"not failed{' jobs of kind ' + args.kind if args.kind else ''} "
                            f"(left alone): {' '.join(map(str, left))}")
            return 0
        if not args.failed and args.kind is None:
            raise _fail("purge needs --failed, --kind KIND, or both")
        async with db.session() as session:
            if args.kind is not None:
                await _known_kind(session, args.kind)
            purged = await queue_admin.purge(session, failed=args.failed, kind=args.kind)
            await session.commit()
        what = "failed" if args.failed else "queued and failed"
        of_kind = f" {args.kind}" if args.kind else ""
        print(f"purged {purged} {what}{of_kind} job(s)", file=out)
        return 0
    finally:
        if queue is not None:
            queue.close()
        await db.dispose()


async def _known_kind(session: AsyncSession, kind: str) -> None:
    """Refuse a kind that is neither declared nor in the table (a typo purges nothing)."""
    from server.queue.kinds import load_job_modules

    kinds = load_job_modules()
    if kind in kinds:
        return
    if await session.scalar(select(func.count(Job.id)).where(Job.kind == kind)):
        return
    raise _fail(f"unknown job kind {kind!r}; kinds: {', '.join(sorted(kinds))}")


async def _depth(db: Database, out: TextIO) -> int:
    now = utcnow()
    async with db.session() as session:
        rows = await queue_admin.depth(session)
        backlogs = await queue_admin.backlog(session, now)
    if not rows:
        print("the queue is empty (no queued, running or failed job)", file=out)
        return 0
    table: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        table.setdefault((row.queue, row.kind), {})[row.state] = row.count
    print(f"{'queue':<11} {'kind':<28} {'queued':>7} {'running':>8} {'failed':>7}", file=out)
    for (queue, kind), states in sorted(table.items()):
        print(f"{queue:<11} {kind:<28} {states.get('queued', 0):>7} "
              f"{states.get('running', 0):>8} {states.get('failed', 0):>7}", file=out)
    for backlog in backlogs:
        waited = ""
        if backlog.oldest_due_at is not None:
            oldest = backlog.oldest_due_at
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo)
            waited = f", the oldest waiting {max(int((now - oldest).total_seconds()), 0)} s"
        print(f"due now in {backlog.queue}: {backlog.due}{waited}", file=out)
    return 0


async def _failures(db: Database, out: TextIO, *, kind: str | None, limit: int) -> int:
    async with db.session() as session:
        failed = await queue_admin.failures(session, kind=kind, limit=limit)
    if not failed:
        print("no failed jobs", file=out)
        return 0
    for job in failed:
        error = job.last_error.strip().splitlines()[-1] if job.last_error else "-"
        finished = f"{job.finished_at:%Y-%m-%d %H:%M:%S}" if job.finished_at else "-"
        print(f"{job.id}  {job.queue:<10} {job.kind:<24} attempts={job.attempts} "
              f"failed={finished} ref={job.ref}  {error}", file=out)
    return 0


async def status_command(settings: Settings, *, as_json: bool, out: TextIO) -> int:
    """``easel admin status``: every check, one line each (or JSON); 1 when any is an error."""
    db = Database.from_settings(settings)
    try:
        checks = await instance_status(settings, db, media_storage(settings))
    finally:
        await db.dispose()
    healthy = all(check.level != ERROR for check in checks)
    if as_json:
        print(json.dumps({"status": "ok" if healthy else "error",
                          "checks": [asdict(check) for check in checks]}, indent=2), file=out)
    else:
        for check in checks:
            print(f"{check.level:<8} {check.name:<14} {check.detail}", file=out)
        print("healthy" if healthy else "UNHEALTHY", file=out)
    return 0 if healthy else 1
