"""What each ``easel`` command does, separate from argument parsing (and testable)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.sql.elements import ColumnElement

import server
from protect import document as doc
from server.db import Database
from server.ids import utcnow
from server.migrate import current_revision, head_revision, upgrade
from server.models import Account, Job, JobState, MediaAttachment, ProtectionState, Report
from server.queue import admin as queue_admin
from server.queue.broker import JobQueue, make_broker
from server.queue.runner import JobRunner
from server.services import domain_blocks, portfolio
from server.services.accounts import create_user as create_user_service
from server.services.accounts import instance_actor
from server.services.errors import ServiceError
from server.services.protection import (
    Configuration,
    find_stale,
    find_unverified,
    mark_for_reprotection,
    mark_for_verification,
)
from server.settings import Settings

# How often `easel admin reprotect` and `reverify` look at the jobs' progress (seconds).
FOLLOW_INTERVAL = 0.5


class CommandError(Exception):
    """A command could not do what it was asked; the message says why."""


async def migrate(settings: Settings, *, quiet: bool = False) -> int:
    # A migration's statements may rightly run for minutes (an index over every status).
    db = Database.from_settings(settings.with_changes(database_timeout=0))
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
    from server.app import AppOptions, create_app
    from server.streaming.shutdown import serve as run_ending_streams

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
    # uvicorn.run, except that open streams end when the server stops.
    # log_config=None: uvicorn's lines go through the root handler (request ids, JSON).
    run_ending_streams(app, host=host, port=port, log_level="info", log_config=None,
                       proxy_headers=True,
                       forwarded_allow_ips=list(settings.trusted_proxies), server_header=False)
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
                # A new run of retries (server/queue/admin.py; `easel admin queue retry`).
                try:
                    ids = [int(job_id) for job_id in retry] if retry else None
                except ValueError as exc:
                    raise CommandError(f"job ids are numbers: {exc}") from exc
                requeued = await queue_admin.retry_failed(session, ids)
                await session.commit()
                print(f"requeued {len(requeued)} failed job(s)")
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


# ------------------------------------------------------------------------ queue, status

async def queue(settings: Settings, args: argparse.Namespace) -> int:
    """``easel admin queue …`` (server/ops_commands.py)."""
    from server.ops_commands import queue_command

    return await queue_command(settings, args, sys.stdout)


async def status(settings: Settings, *, as_json: bool) -> int:
    """``easel admin status`` (server/ops_commands.py): 1 when unhealthy."""
    from server.ops_commands import status_command

    return await status_command(settings, as_json=as_json, out=sys.stdout)


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
        if result.clearing_media:
            print(f"the media stored from {block.domain} (avatars, headers, attachments, "
                  "cached copies) are being cleared in the background")
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


# --------------------------------------------------------------------------- vocabulary

def _print_suggestion(kind: str, suggestion: portfolio.Suggestion) -> None:
    aliases = f"  (aliases: {', '.join(suggestion.aliases)})" if suggestion.aliases else ""
    print(f"{kind:<13} {suggestion.term.name:<24} #{suggestion.hashtag}{aliases}")


async def vocabulary(settings: Settings, args: argparse.Namespace) -> int:
    """``easel admin vocabulary list|add|remove|alias|order``."""
    await migrate(settings, quiet=True)
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            command = args.vocabulary_command
            if command == "list":
                lists = await portfolio.vocabulary(session, args.kind)
                for kind, suggestions in lists.items():
                    for suggestion in suggestions:
                        _print_suggestion(kind, suggestion)
                if not any(lists.values()):
                    print("no suggestions")
            elif command == "add":
                _print_suggestion(args.kind, await portfolio.add_suggestion(
                    session, args.kind, args.name, args.alias))
            elif command == "remove":
                term = await portfolio.remove_suggestion(session, args.kind, args.name)
                print(f"{args.kind} {term.name!r} is no longer suggested")
            elif command == "alias":
                _print_suggestion(args.kind, await portfolio.add_alias(
                    session, args.kind, args.name, args.alias))
            else:
                for suggestion in await portfolio.reorder_suggestions(
                        session, args.kind, args.names):
                    _print_suggestion(args.kind, suggestion)
    except ServiceError as exc:
        raise CommandError(exc.message) from exc
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
                  f"{report.category}{_cited(report)}  statuses={len(report.status_ids or [])}  "
                  f"{'resolved' if report.action_taken_at else 'open'}  {comment}".rstrip())
    finally:
        await db.dispose()
    return 0


def _cited(report: Report) -> str:
    """``(rules 2,5)`` after a violation's category: the instance rules it cites."""
    return f" (rules {','.join(map(str, report.rule_ids))})" if report.rule_ids else ""


# ---------------------------------------------------------------------------- reprotect

class ProgressBar:
    """One line on stderr, redrawn in place on a terminal; elsewhere (logs, tests) a line
    each time another image is finished."""

    WIDTH = 30

    def __init__(self, stream: TextIO, total: int, label: str) -> None:
        self.stream = stream
        self.total = total
        self.label = label
        self.tty = stream.isatty()
        self.shown: tuple[int, int] | None = None

    def update(self, done: int, running: Sequence[float]) -> None:
        fraction = (done + sum(running)) / self.total if self.total else 1.0
        filled = round(self.WIDTH * min(fraction, 1.0))
        now = f" now {', '.join(f'{p:.0%}' for p in running)}" if running else ""
        line = (f"{self.label} [{'#' * filled}{'-' * (self.WIDTH - filled)}] "
                f"{done}/{self.total}{now}")
        if self.tty:
            self.stream.write("\r" + line.ljust(78))
        elif self.shown is None or self.shown[0] != done:
            self.stream.write(line + "\n")
        self.shown = (done, len(running))
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.shown is not None:
            self.stream.write("\n")
            self.stream.flush()


def _current_configuration(settings: Settings, *, here: bool, command: str = "reprotect",
                           pointless: str = "re-protecting would only make unprotected "
                                            "renditions again") -> Configuration:
    """Load the configured models (their names are what jobs record) and check them: a
    broken path is refused now rather than in every requeued job. Only ``--here`` loads
    them onto the configured device; for names the CPU does (the worker may hold the GPU).
    ``command`` and ``pointless`` (what it would do without a model) are for messages."""
    if not settings.vae_paths:
        raise CommandError(
            f"no protection model is configured (EASEL_VAE_PATH is empty): {pointless}; set "
            "EASEL_VAE_PATH first")
    try:
        from protect import models
    except ModuleNotFoundError as exc:
        raise CommandError(
            f"easel admin {command} loads the models, which needs the protect extra "
            f"(torch, diffusers): {exc}") from exc
    try:
        loaded = models.load_models(settings if here else settings.with_changes(protect_device="cpu"))
    except models.ModelLoadError as exc:
        raise CommandError(exc.message) from exc
    assert loaded is not None
    profile = None if settings.protect_profile == "auto" else settings.protect_profile
    return Configuration(models=tuple(loaded.names), strength=loaded.strength, profile=profile)


def _describe(doc: dict[str, object]) -> str:
    models = doc.get("models") or []
    named = ", ".join(str(m) for m in models) if isinstance(models, list) and models else "no model"
    return (f"{doc.get('state', '?')}: {named}, strength {doc.get('strength') or '-'}, "
            f"profile {doc.get('profile') or '-'}")


@dataclass(frozen=True)
class _Tracked:
    """The media jobs a command follows: of ``kind`` (on the protect queue), for media that
    match ``waiting`` (None: any) — a media that does not, or whose job has finished,
    counts as settled."""

    kind: str
    waiting: ColumnElement[bool] | None = None


def _protecting() -> _Tracked:
    from protect.jobs import protect_media

    return _Tracked(protect_media.name, MediaAttachment.protection == ProtectionState.PENDING)


def _verifying() -> _Tracked:
    from protect.verify_job import verify_media

    return _Tracked(verify_media.name)


async def _progress(db: Database, media_ids: Sequence[int],
                    tracked: _Tracked) -> tuple[int, list[float], list[int]]:
    """How many of these media are settled, the running jobs' progress, and the ids of the
    jobs still to run (queued or running). A media whose job has finished (or never
    existed) counts as settled, whatever its row says: nothing more will happen to it."""
    unsettled = 0
    running: list[float] = []
    waiting: list[int] = []
    async with db.session() as session:
        for start in range(0, len(media_ids), 500):
            chunk = media_ids[start:start + 500]
            pending = {str(media_id) for media_id in chunk}
            if tracked.waiting is not None:
                pending = {str(media_id) for media_id in await session.scalars(
                    select(MediaAttachment.id).where(MediaAttachment.id.in_(chunk), tracked.waiting))}
            if not pending:
                continue
            for job in await session.scalars(select(Job).where(
                    Job.kind == tracked.kind, Job.ref.in_(pending),
                    Job.state.in_([JobState.QUEUED, JobState.RUNNING]))):
                unsettled += 1
                waiting.append(job.id)
                if job.state == JobState.RUNNING:
                    running.append(job.progress)
    return len(media_ids) - unsettled, running, waiting


async def _follow(db: Database, media_ids: Sequence[int], bar: ProgressBar, tracked: _Tracked) -> None:
    while True:
        done, running, _waiting = await _progress(db, media_ids, tracked)
        bar.update(done, running)
        if done >= len(media_ids):
            return
        await asyncio.sleep(FOLLOW_INTERVAL)


async def _run_here(db: Database, settings: Settings, media_ids: Sequence[int], bar: ProgressBar,
                    tracked: _Tracked) -> None:
    """Run these media's jobs in this process (retries included), drawing the bar from a
    second task meanwhile (a job's progress is on its row)."""
    from server.queue.kinds import load_job_modules

    runner = JobRunner(db, settings, kinds=load_job_modules())
    follower = asyncio.create_task(_follow(db, media_ids, bar, tracked))
    try:
        while True:
            _done, _running, waiting = await _progress(db, media_ids, tracked)
            if not waiting:
                break
            ran = [await runner.run(job_id) for job_id in waiting]
            if all(result == "skipped" for result in ran):
                # Waiting for a retry's backoff, or another worker holds the claim.
                next_at = await runner.next_due_at(["protect"])
                wait = (next_at - utcnow()).total_seconds() if next_at else FOLLOW_INTERVAL
                await asyncio.sleep(min(max(wait, 0.05), 5.0))
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    done, running, _waiting = await _progress(db, media_ids, tracked)
    bar.update(done, running)


async def _run_or_follow(db: Database, settings: Settings, media_ids: Sequence[int], *, here: bool,
                         label: str, tracked: _Tracked, err: TextIO) -> None:
    """Run (``here``) or follow these media's jobs with a progress bar until all are
    settled. Ctrl-C stops following; the jobs stay queued for the protect worker."""
    bar = ProgressBar(err, len(media_ids), label)
    if not here:
        print("following the protect worker (Ctrl-C stops following; the jobs stay queued; "
              "no worker running? use --here)", file=err, flush=True)
    try:
        if here:
            await _run_here(db, settings, media_ids, bar, tracked)
        else:
            await _follow(db, media_ids, bar, tracked)
    except asyncio.CancelledError:
        bar.finish()
        print("stopped following; the remaining images stay queued for the protect worker",
              file=err, flush=True)
        raise
    bar.finish()


async def reprotect(settings: Settings, *, every: bool = False, dry_run: bool = False,
                    here: bool = False, stream: TextIO | None = None) -> int:
    """``easel admin reprotect``: requeue outdated images (``every``: all of them), then
    follow their progress (``here``: run them, and then their verifications) until all are
    finished. Ctrl-C stops following; the jobs stay queued for the worker.

    What is outdated is decided from this command's settings; the worker applies its own,
    loaded when it started. So the result is checked against what this command expected:
    images the worker refused (it runs another configuration) or protected otherwise are
    reported, with exit status 1 — after editing the settings, restart the worker first."""
    err = stream or sys.stderr
    current = await asyncio.to_thread(_current_configuration, settings, here=here)
    db = Database.from_settings(settings)
    queue: JobQueue | None = None
    if settings.broker_url and not dry_run:  # the broker's workers hear of the jobs at once
        queue = JobQueue(JobRunner(db, settings), make_broker(settings))
    try:
        async with db.session() as session:
            stale, in_progress = await find_stale(session, current, every=every)
        wanted = (f"{', '.join(current.models)}, strength {current.strength}, "
                  f"profile {current.profile or 'auto'}")
        print(f"{len(stale)} image(s) to re-protect with {wanted}"
              + (f"; {len(in_progress)} already being re-protected" if in_progress else ""))
        if dry_run:
            for media in stale:
                print(f"{media.id}  account={media.account_id}  {_describe(doc.stored(media))}")
            return 0
        async with db.session() as session:
            await mark_for_reprotection(session, current, [media.id for media in stale])
        media_ids = [media.id for media in stale + in_progress]
        if not media_ids:
            return 0
        await _run_or_follow(db, settings, media_ids, here=here, label="re-protecting",
                             tracked=_protecting(), err=err)
        if here:  # no worker to verify the new renditions: that is done here too
            await _run_or_follow(db, settings, media_ids, here=True, label="verifying",
                                 tracked=_verifying(), err=err)
        return _report(await _outcomes(db, media_ids, current), len(media_ids), err)
    finally:
        if queue is not None:
            queue.close()
        await db.dispose()


async def _outcomes(db: Database, media_ids: Sequence[int],
                    current: Configuration) -> dict[str, int]:
    """How the re-protection of these media ended: "failed" (kept their earlier renditions),
    "refused" (the worker runs another configuration), "otherwise" (done, but the result is
    not what ``current`` makes: the worker's configuration differs)."""
    from protect.jobs import OTHER_CONFIGURATION

    counts = {"failed": 0, "refused": 0, "otherwise": 0}
    async with db.session() as session:
        for start in range(0, len(media_ids), 500):
            for media in await session.scalars(select(MediaAttachment).where(
                    MediaAttachment.id.in_(media_ids[start:start + 500]))):
                stored = doc.stored(media)
                error = stored.get("reprotect_error")
                if error == OTHER_CONFIGURATION:
                    counts["refused"] += 1
                elif error:
                    counts["failed"] += 1
                elif media.protection != ProtectionState.PENDING and not current.applied_to(stored):
                    counts["otherwise"] += 1
    return counts


def _report(counts: dict[str, int], total: int, err: TextIO) -> int:
    """Print how it went; the exit status (1 unless every image is as expected)."""
    failed, refused, otherwise = counts["failed"], counts["refused"], counts["otherwise"]
    done = total - failed - refused - otherwise
    print(f"re-protected {done} image(s)"
          + (f"; {failed} kept their earlier renditions (see `easel admin jobs --state failed`)"
             if failed else ""))
    if refused or otherwise:
        print(f"{refused + otherwise} image(s) not re-protected as this command expected: the "
              f"protect worker is running another configuration (it reads the settings when it "
              f"starts); restart it (`easel serve` or `easel worker`), then run `easel admin "
              f"reprotect` again", file=err)
    return 1 if failed or refused or otherwise else 0


# ----------------------------------------------------------------------------- reverify

def _verification(document: dict[str, object]) -> str:
    state = document.get("verification") or "none"
    verdict = f", {document['verdict']}" if document.get("verdict") else ""
    at = f" at {document['verified_at']}" if document.get("verified_at") else ""
    return f"verification {state}{verdict}{at}"


async def reverify(settings: Settings, *, every: bool = False, dry_run: bool = False,
                   here: bool = False, media_ids: Sequence[int] = (),
                   stream: TextIO | None = None) -> int:
    """``easel admin reverify``: recompute the verification reports of ready protected
    local images — those without one, or whose report is older than their protection or
    was made with other thresholds (``every``: all of them; ``media_ids``: those) — then
    follow their progress (``here``: run them) until all are settled. Images protected
    against other models than the configured ones are left alone (re-protect them first).
    Exit status 1 when some could not be verified."""
    err = stream or sys.stderr
    current = await asyncio.to_thread(
        _current_configuration, settings, here=here, command="reverify",
        pointless="there is nothing to verify the protection against")
    from protect.verify import thresholds

    db = Database.from_settings(settings)
    queue: JobQueue | None = None
    if settings.broker_url and not dry_run:
        queue = JobQueue(JobRunner(db, settings), make_broker(settings))
    try:
        async with db.session() as session:
            found = await find_unverified(session, current.models, thresholds(), every=every,
                                          media_ids=media_ids)
        print(f"{len(found.due)} image(s) to verify against {', '.join(current.models)}")
        if found.other_models:
            print(f"{len(found.other_models)} image(s) protected against other models are left "
                  f"alone: re-protect them first (`easel admin reprotect`)", file=err)
        if found.not_verifiable:
            print(f"not a ready, protected local image: {' '.join(map(str, found.not_verifiable))}",
                  file=err)
        if dry_run:
            for media in found.due:
                print(f"{media.id}  account={media.account_id}  {_verification(doc.stored(media))}")
            return 0
        ids = [media.id for media in found.due]
        if ids:
            async with db.session() as session:
                await mark_for_verification(session, ids)
            await _run_or_follow(db, settings, ids, here=here, label="verifying",
                                 tracked=_verifying(), err=err)
        return await _verified(db, ids, err) or (1 if found.not_verifiable else 0)
    finally:
        if queue is not None:
            queue.close()
        await db.dispose()


async def _verified(db: Database, media_ids: Sequence[int], err: TextIO) -> int:
    """Print how the verification of these media ended; 1 unless each got its report."""
    counts: dict[str, int] = {}
    async with db.session() as session:
        for start in range(0, len(media_ids), 500):
            for media in await session.scalars(select(MediaAttachment).where(
                    MediaAttachment.id.in_(media_ids[start:start + 500]))):
                state = doc.verification(doc.stored(media)) or "none"
                counts[state] = counts.get(state, 0) + 1
    verified = counts.pop(doc.VERIFICATION_DONE, 0)
    print(f"verified {verified} image(s)")
    if counts:
        print("not verified: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
              + " (the reason is in each image's document; see also `easel admin jobs`)", file=err)
    return 1 if counts else 0


def _size(count: float) -> str:
    if count < 1024:
        return f"{count:.0f} B"
    for unit in ("KB", "MB"):
        count /= 1024
        if count < 1024:
            return f"{count:.1f} {unit}"
    return f"{count / 1024:.1f} GB"


async def media_prune(settings: Settings, *, older_than_hours: float, dry_run: bool,
                      err: TextIO = sys.stderr) -> int:
    """Keep the remote media cache within its limits, then delete stored files no row names
    (older than the grace period) and expired checks."""
    from datetime import timedelta

    from protect.prune import MINIMUM_GRACE, CacheLimits, prune
    from server.storage import StorageError, media_storage

    grace = timedelta(hours=older_than_hours)
    if grace < MINIMUM_GRACE:
        raise CommandError(f"--older-than must be at least {MINIMUM_GRACE.total_seconds() / 3600:g} hour(s): "
                           "a job may be about to commit the row that names a newer file")
    db = Database.from_settings(settings)
    bar: ProgressBar | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = ProgressBar(err, total, "deleting")
        bar.update(done, ())

    try:
        async with db.session() as session:
            report = await prune(session, media_storage(settings), grace=grace,
                                 dry_run=dry_run, progress=progress,
                                 cache=CacheLimits.from_settings(settings))
    except StorageError as exc:
        raise CommandError(f"the media storage could not be read: {exc}") from exc
    finally:
        await db.dispose()
    if bar is not None:
        bar.finish()
    found = len(report.orphans) + len(report.expired_checks)
    for stored, private in report.orphans if dry_run else ():
        print(f"{'private' if private else 'public'}  {stored.key}  {_size(stored.size)}  "
              f"{stored.modified:%Y-%m-%d %H:%M}")
    verb = "would delete" if dry_run else "deleted"
    if report.cache is not None:
        cache = report.cache
        print(f"remote media cache: {'would evict' if dry_run else 'evicted'} "
              f"{cache.expired + cache.over_limit} cached file set(s), {_size(cache.bytes)} "
              f"({cache.expired} past retention, {cache.over_limit} over the size limit); "
              f"{cache.kept} kept, {_size(cache.kept_bytes)}")
    print(f"{verb} {len(report.orphans)} orphaned file(s) and {len(report.expired_checks)} "
          f"expired check file(s), {_size(report.bytes)}"
          + (f"; {report.kept_young} unnamed file(s) younger than {older_than_hours:g} h kept"
             if report.kept_young else ""))
    if report.failed:
        print(f"{report.failed} of {found} could not be deleted (run it again)", file=err)
        return 1
    return 0
