"""What each ``easel`` command does, separate from argument parsing (and testable)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sqlalchemy import select, update

import server
from server.db import Database
from server.ids import utcnow
from server.migrate import current_revision, head_revision, upgrade
from server.models import Account, Job, JobState, Report
from server.services import domain_blocks
from server.services.accounts import create_user as create_user_service
from server.services.accounts import instance_actor
from server.services.errors import ServiceError
from server.settings import Settings


class CommandError(Exception):
    """A command could not do what it was asked; the message says why."""


async def migrate(settings: Settings, *, quiet: bool = False) -> int:
    db = Database.from_settings(settings)
    try:
        before = await current_revision(db.engine)
        await upgrade(db.engine)
        async with db.session() as session:
            await instance_actor(session, settings)
        if not quiet:
            head = head_revision()
            if before == head:
                print(f"database is up to date (revision {head})")
            else:
                print(f"database migrated from {before or 'empty'} to {head}")
    except OSError as exc:
        raise CommandError(f"cannot reach the database: {exc}") from exc
    finally:
        await db.dispose()
    return 0


def serve(settings: Settings, host: str, port: int) -> int:
    import asyncio

    import uvicorn

    from server.app import AppOptions, create_app

    asyncio.run(migrate(settings, quiet=True))
    child: list[str] = []
    if not settings.broker_url:
        child = [sys.executable, "-m", "server.cli", "worker", "--queues", "protect", "--threads", "1"]
    app = create_app(settings, options=AppOptions(child_worker=child))
    mode = "embedded (in-process queue)" if not settings.broker_url else "distributed (broker)"
    db = "SQLite" if settings.is_sqlite else "PostgreSQL"
    print(
        f"Easel {server.__version__} listening on http://{host}:{port} "
        f"as {settings.base_url} — {db}, {mode}, data in {settings.data_dir.resolve()}",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True,
                forwarded_allow_ips="127.0.0.1", server_header=False)
    return 0


async def worker(settings: Settings, queues: Sequence[str], threads: int) -> int:
    from server.worker import run_worker

    await run_worker(settings, queues, threads=threads)
    return 0


async def create_user(
    settings: Settings, username: str, email: str, password: str, admin: bool
) -> int:
    await migrate(settings, quiet=True)
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            user = await create_user_service(
                session, settings, username=username, email=email, password=password,
                admin=admin, confirmed=True, approved=True, allow_reserved=True,
            )
        print(f"created {'admin ' if admin else ''}user {username} "
              f"({settings.base_url}/@{username}, id {user.account_id})")
    except ServiceError as exc:
        raise CommandError(exc.message) from exc
    finally:
        await db.dispose()
    return 0


async def jobs(
    settings: Settings, state: str | None, limit: int, retry: list[str] | None
) -> int:
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            if retry is not None:
                statement = update(Job).where(Job.state == JobState.FAILED).values(
                    state=JobState.QUEUED, attempts=0, next_try_at=utcnow(),
                    finished_at=None, updated_at=utcnow())
                if retry:
                    try:
                        ids = [int(job_id) for job_id in retry]
                    except ValueError as exc:
                        raise CommandError(f"job ids are numbers: {exc}") from exc
                    statement = statement.where(Job.id.in_(ids))
                result = await session.execute(statement)
                await session.commit()
                print(f"requeued {result.rowcount} failed job(s)")  # type: ignore[attr-defined]
                return 0
            query = select(Job).order_by(Job.id.desc()).limit(limit)
            if state:
                query = query.where(Job.state == state)
            for job in await session.scalars(query):
                error = f"  {job.last_error.splitlines()[-1]}" if job.last_error else ""
                print(f"{job.id}  {job.queue:<10} {job.kind:<24} {job.state:<8} "
                      f"attempts={job.attempts} next={job.next_try_at:%Y-%m-%d %H:%M:%S} "
                      f"ref={job.ref}{error}")
    finally:
        await db.dispose()
    return 0


# ------------------------------------------------------------------------ domain blocks

async def domain_block_add(
    settings: Settings, domain: str, severity: str, reject_media: bool,
    public_comment: str | None, private_comment: str | None,
) -> int:
    await migrate(settings, quiet=True)
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            result = await domain_blocks.block_domain(
                session, domain, own_domain=settings.domain, severity=severity,
                reject_media=reject_media, public_comment=public_comment,
                private_comment=private_comment)
        block = result.block
        media = ", media rejected" if block.reject_media else ""
        print(f"{'blocked' if result.created else 'updated the block on'} {block.domain}: "
              f"{block.severity}{media}")
        if result.follows_removed or result.requests_removed:
            print(f"removed {result.follows_removed} follow(s) and "
                  f"{result.requests_removed} follow request(s) with {block.domain}")
    except ServiceError as exc:
        raise CommandError(exc.message) from exc
    finally:
        await db.dispose()
    return 0


async def domain_block_remove(settings: Settings, domain: str) -> int:
    await migrate(settings, quiet=True)
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            block = await domain_blocks.unblock_domain(session, domain)
        print(f"unblocked {block.domain} (was {block.severity})")
    except ServiceError as exc:
        raise CommandError(exc.message) from exc
    finally:
        await db.dispose()
    return 0


async def domain_block_list(settings: Settings) -> int:
    await migrate(settings, quiet=True)
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            blocks = await domain_blocks.list_domain_blocks(session)
        if not blocks:
            print("no domain blocks")
        for block in blocks:
            media = "reject-media" if block.reject_media else "-"
            comments = "  ".join(
                f"{label}: {text}" for label, text in
                (("public", block.public_comment), ("private", block.private_comment)) if text)
            print(f"{block.domain}  {block.severity:<8} {media:<12} "
                  f"{block.created_at:%Y-%m-%d}  {comments}".rstrip())
    finally:
        await db.dispose()
    return 0


# ------------------------------------------------------------------------------ reports

async def reports(settings: Settings, limit: int) -> int:
    """The latest reports, newest first: who reported whom, why, and about what."""
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            rows = list(await session.scalars(
                select(Report).order_by(Report.id.desc()).limit(max(limit, 1))))
            ids = {r.account_id for r in rows} | {r.target_account_id for r in rows}
            accounts = {a.id: a for a in await session.scalars(
                select(Account).where(Account.id.in_(ids)))} if ids else {}
        if not rows:
            print("no reports")
        for report in rows:
            reporter = accounts.get(report.account_id)
            target = accounts.get(report.target_account_id)
            origin = "remote" if report.uri else "local"
            forwarded = " forwarded" if report.forwarded else ""
            comment = report.comment.replace("\n", " ")
            print(f"{report.id}  {report.created_at:%Y-%m-%d %H:%M}  {origin}{forwarded}  "
                  f"{reporter.acct() if reporter else '?'} -> {target.acct() if target else '?'}  "
                  f"{report.category}  statuses={len(report.status_ids or [])}  {comment}".rstrip())
    finally:
        await db.dispose()
    return 0
