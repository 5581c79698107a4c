"""The ``easel`` command: serve, migrate, worker, protect, verify, admin.

Building the parser imports no torch (``protect.offline`` and ``protect.verify_cli`` load it
inside ``run``), so ``easel --help`` and every web-side command stay light.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import server
from server import account_commands, announcement_commands, ip_block_commands, registration_commands
from server.ids import row_id
from server.memory import limit_malloc_arenas
from server.models.portfolio import TAG_KINDS
from server.observability import configure_logging
from server.queue.kinds import QUEUES
from server.services.domain_blocks import SEVERITIES
from server.settings import Settings, SettingsError, load_settings


def _queues(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in QUEUES]
    if unknown or not names:
        named = ", ".join(unknown) if unknown else repr(value)
        raise argparse.ArgumentTypeError(f"unknown queue(s): {named}; choose from {', '.join(QUEUES)}")
    return names


def _whole_number(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high`` (a count, a limit, a
    port), so that none reaches the database or a library as a negative or huge one."""
    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(
                f"{value!r} must be a whole number from {low} to {high} ({what})")
        return number

    return parse


# Rows a listing shows at most; worker threads one process runs at most.
MAX_LIMIT = 10_000
MAX_THREADS = 256
_limit = _whole_number(1, MAX_LIMIT, "how many to show")


def _hours(value: str) -> float:
    """``--older-than``: a finite number of hours (the command checks the minimum)."""
    try:
        hours = float(value)
    except ValueError:
        hours = math.nan
    if not math.isfinite(hours) or not -1e6 < hours < 1e6:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of hours")
    return hours


def _requeue_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that requeue protect-queue jobs and follow them."""
    parser.add_argument("--dry-run", action="store_true", help="list what would be requeued")
    parser.add_argument("--here", action="store_true",
                        help="run the jobs in this process (an instance without a running "
                             "protect worker) instead of following the worker's progress")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="easel", description="Easel: a federated portfolio network")
    parser.add_argument("--version", action="version", version=f"easel {server.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply migrations, then serve HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_whole_number(1, 65535, "a TCP port"), default=8080)

    commands.add_parser("migrate", help="apply pending database migrations")

    worker = commands.add_parser("worker", help="run background jobs")
    worker.add_argument("--queues", type=_queues, default=list(QUEUES),
                        help=f"comma-separated, from: {', '.join(QUEUES)} (default: all)")
    worker.add_argument("--threads", type=_whole_number(1, MAX_THREADS, "worker threads"),
                        default=4)

    from protect import offline

    protect = commands.add_parser(
        "protect", help="protect image files or folders offline, with a progress bar "
                        "(needs the protect extra)")
    offline.add_arguments(protect)

    from protect import verify_cli

    verify = commands.add_parser(
        "verify", help="check whether an image's protection works (with --original: the full "
                       "report; without: a blind test; needs the protect extra)")
    verify_cli.add_arguments(verify)

    admin = commands.add_parser("admin", help="instance administration")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_commands.add_parser("create-user", help="create a confirmed, approved user")
    create.add_argument("username")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--admin", action="store_true")

    jobs = admin_commands.add_parser("jobs", help="list background jobs, or retry failed ones")
    jobs.add_argument("--state", choices=["queued", "running", "done", "failed"], default=None)
    jobs.add_argument("--limit", type=_limit, default=50)
    jobs.add_argument("--retry", nargs="*", type=row_id, metavar="ID", default=None,
                      help="requeue these failed jobs (all failed jobs when no id is given)")

    queue = admin_commands.add_parser(
        "queue", help="the job queue: depth by queue and kind (the default), failures, "
                      "retry, purge")
    queue_commands = queue.add_subparsers(dest="queue_command")
    queue_commands.add_parser("depth", help="queued, running and failed jobs by queue and kind")
    failures = queue_commands.add_parser("failures", help="the failed jobs, latest first")
    failures.add_argument("--kind", default=None, help="only jobs of this kind")
    failures.add_argument("--limit", type=_limit, default=50)
    retry = queue_commands.add_parser("retry", help="requeue failed jobs (a new run of retries)")
    retry.add_argument("ids", nargs="*", type=row_id, metavar="ID", help="these failed jobs")
    retry.add_argument("--all-failed", action="store_true", help="every failed job")
    retry.add_argument("--kind", default=None, help="only failed jobs of this kind")
    purge = queue_commands.add_parser(
        "purge", help="delete failed jobs (--failed), or the queued and failed jobs of a kind "
                      "(--kind); running jobs are never deleted; their work is dropped")
    purge.add_argument("--failed", action="store_true", help="failed jobs")
    purge.add_argument("--kind", default=None, help="jobs of this kind")

    status = admin_commands.add_parser(
        "status", help="check the instance's health: database, migrations, broker, queue, "
                       "deliveries, storage, protection; exit status 1 when unhealthy")
    status.add_argument("--json", action="store_true", help="print the checks as JSON")

    blocks = admin_commands.add_parser("domain-block", help="block, unblock or list other servers")
    block_commands = blocks.add_subparsers(dest="block_command", required=True)
    add = block_commands.add_parser(
        "add", help="block a domain (and its subdomains), or change its block")
    add.add_argument("domain", help="example.com, or host:port")
    add.add_argument("--severity", choices=list(SEVERITIES), default="suspend",
                     help="suspend: nothing in or out, follows removed; silence: kept out of "
                          "public timelines; noop: only --reject-media (default: suspend)")
    add.add_argument("--reject-media", action="store_true",
                     help="neither fetch nor show this domain's media")
    add.add_argument("--public-comment", default=None)
    add.add_argument("--private-comment", default=None)
    remove = block_commands.add_parser("remove", help="lift a domain block")
    remove.add_argument("domain")
    block_commands.add_parser("list", help="list domain blocks")
    block_export = block_commands.add_parser(
        "export", help="write every block as Mastodon's CSV (#domain,#severity,…)")
    block_export.add_argument("file", help="the CSV file to write, - for standard output")
    block_import = block_commands.add_parser(
        "import", help="block the domains of a Mastodon CSV export (or one domain a line)")
    block_import.add_argument("file", help="the CSV file to read, - for standard input")

    allows = admin_commands.add_parser(
        "domain-allow", help="the domains federated with when EASEL_FEDERATION_MODE=allowlist")
    allow_commands = allows.add_subparsers(dest="allow_command", required=True)
    allow_commands.add_parser("add", help="allow a domain (and its subdomains)").add_argument("domain")
    allow_commands.add_parser("remove", help="stop allowing a domain").add_argument("domain")
    allow_commands.add_parser("list", help="list allowed domains")

    email_blocks = admin_commands.add_parser(
        "email-block", help="e-mail addresses nobody may register with (canonical form)")
    email_commands = email_blocks.add_subparsers(dest="email_command", required=True)
    email_commands.add_parser("add", help="block an address (dots and +tags ignored)").add_argument("email")
    email_commands.add_parser("remove", help="lift an address's block").add_argument("email")
    email_commands.add_parser("list", help="list blocked address hashes")

    report = admin_commands.add_parser(
        "report", help="show, assign, resolve, reopen or annotate one report")
    report.add_argument("action", choices=["show", "assign", "unassign", "resolve", "reopen", "note"])
    report.add_argument("id", type=row_id, help="the report's id (easel admin reports)")
    report.add_argument("text", nargs="?", default=None, help="the note (for note)")
    report.add_argument("--by", default=None, metavar="USERNAME",
                        help="the moderator (a local username) for assign, resolve and note")

    appeal = admin_commands.add_parser(
        "appeal", help="the appeals of moderators' decisions: list, approve (undo the action), "
                       "reject")
    appeal_commands = appeal.add_subparsers(dest="appeal_command", required=True)
    appeal_list = appeal_commands.add_parser(
        "list", help="the pending appeals, oldest first: id, state, account, decision, text")
    appeal_list.add_argument("--all", dest="every", action="store_true",
                             help="every appeal, decided ones too, newest first")
    for name, what in (("approve", "approve an appeal: the decision is overruled and its "
                                   "action undone where still in place; the person is told"),
                       ("reject", "reject an appeal: the decision stands; the person is told")):
        decide = appeal_commands.add_parser(name, help=what)
        decide.add_argument("id", type=row_id, help="the appeal's id (easel admin appeal list)")
        decide.add_argument("--by", default=None, metavar="USERNAME",
                            help="the moderator deciding (a local username; default: none "
                                 "recorded)")

    vocabulary = admin_commands.add_parser(
        "vocabulary", help="the suggested portfolio terms (fields, mediums, project types, "
                           "categories, software) and their aliases")
    vocabulary_commands = vocabulary.add_subparsers(dest="vocabulary_command", required=True)
    listing = vocabulary_commands.add_parser("list", help="list the suggestions, by kind")
    listing.add_argument("kind", nargs="?", choices=list(TAG_KINDS), default=None)
    suggest = vocabulary_commands.add_parser(
        "add", help="suggest a term (last in its list), or promote an existing one")
    suggest.add_argument("kind", choices=list(TAG_KINDS))
    suggest.add_argument("name")
    suggest.add_argument("--alias", action="append", default=[], metavar="ALIAS",
                         help="another spelling that means this term (repeatable)")
    unsuggest = vocabulary_commands.add_parser(
        "remove", help="take a term off the suggestions (works keep it)")
    unsuggest.add_argument("kind", choices=list(TAG_KINDS))
    unsuggest.add_argument("name")
    alias = vocabulary_commands.add_parser("alias", help="add another spelling of a term")
    alias.add_argument("kind", choices=list(TAG_KINDS))
    alias.add_argument("name")
    alias.add_argument("alias")
    order = vocabulary_commands.add_parser(
        "order", help="put these suggestions first, in this order")
    order.add_argument("kind", choices=list(TAG_KINDS))
    order.add_argument("names", nargs="+", metavar="NAME")

    reports = admin_commands.add_parser("reports", help="list the latest reports")
    reports.add_argument("--limit", type=_limit, default=50)

    reprotect = admin_commands.add_parser(
        "reprotect", help="protect ready images again after the models, strength or profile changed",
        description="Finds local images protected otherwise than the current configuration "
                    "(EASEL_VAE_PATH, EASEL_PROTECT_STRENGTH, and EASEL_PROTECT_PROFILE unless it "
                    "is auto), requeues their protect jobs and shows their progress. They stay "
                    "published with their current renditions until the new ones are made; the "
                    "old files are deleted afterwards. Images their authors chose to publish "
                    "unprotected are left alone.")
    reprotect.add_argument("--all", dest="every", action="store_true",
                           help="every local image with renditions, not only the outdated ones")
    _requeue_options(reprotect)

    reverify = admin_commands.add_parser(
        "reverify", help="recompute the verification reports of protected images",
        description="Requeues the verification of ready local images protected against the "
                    "configured models (EASEL_VAE_PATH): by default those without a report, or "
                    "whose report is older than their protection or was made with other "
                    "thresholds; --all: every one (e.g. after the battery changed); or the "
                    "images given by id. Then shows their progress. Images protected against "
                    "other models are left alone: re-protect them first.")
    reverify.add_argument("media_ids", nargs="*", type=row_id, metavar="ID",
                          help="only these media (ids as the API shows them)")
    reverify.add_argument("--all", dest="every", action="store_true",
                          help="every protected local image, not only those without a current report")
    _requeue_options(reverify)

    media = admin_commands.add_parser("media", help="stored media files")
    media_commands = media.add_subparsers(dest="media_command", required=True)
    prune = media_commands.add_parser(
        "prune", help="delete stored files that nothing refers to",
        description="Lists the media storage (directory or bucket) and deletes the files no "
                    "database row names — left by a killed worker, a failed purge or a restored "
                    "backup — once older than --older-than, and the studio's checks of outside "
                    "images after 30 days. First it keeps the remote media cache within "
                    "EASEL_REMOTE_MEDIA_CACHE_MB and EASEL_REMOTE_MEDIA_RETENTION_DAYS.")
    prune.add_argument("--older-than", type=_hours, default=24.0, metavar="HOURS",
                       help="only files older than this (default 24, at least 1)")
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    registration_commands.add_parsers(admin_commands)
    announcement_commands.add_parsers(admin_commands)
    account_commands.add_parsers(admin_commands)
    ip_block_commands.add_parsers(admin_commands)
    return parser


async def _after_migrations(settings: Settings, command: Coroutine[Any, Any, int]) -> int:
    """``command``, on a database that was migrated (else a CommandError saying so)."""
    from server.ops_commands import require_migrated

    try:
        await require_migrated(settings)
    except BaseException:
        command.close()  # never awaited
        raise
    return await command


def main(argv: Sequence[str] | None = None) -> int:
    limit_malloc_arenas()  # before any thread starts (server.memory)
    args = build_parser().parse_args(argv)
    configure_logging("text")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"easel: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    for name in settings.extra:
        if not name.startswith("EASEL_TEST_"):
            print(f"easel: warning: unknown setting {name} is ignored", file=sys.stderr)

    from server import commands, moderation_commands

    try:
        if args.command == "serve":
            return commands.serve(settings, args.host, args.port)
        if args.command == "migrate":
            return asyncio.run(commands.migrate(settings))
        if args.command == "worker":
            return asyncio.run(commands.worker(settings, args.queues, args.threads))
        if args.command == "protect":
            from protect import offline

            return offline.run(args, settings)
        if args.command == "verify":
            from protect import verify_cli

            return verify_cli.run(args, settings)
        if args.admin_command == "create-user":
            return asyncio.run(commands.create_user(
                settings, args.username, args.email, args.password, args.admin))
        if args.admin_command == "domain-block":
            if args.block_command == "add":
                return asyncio.run(commands.domain_block_add(
                    settings, args.domain, args.severity, args.reject_media,
                    args.public_comment, args.private_comment))
            if args.block_command == "remove":
                return asyncio.run(commands.domain_block_remove(settings, args.domain))
            if args.block_command == "export":
                return asyncio.run(moderation_commands.domain_block_export(settings, args.file))
            if args.block_command == "import":
                return asyncio.run(moderation_commands.domain_block_import(settings, args.file))
            return asyncio.run(commands.domain_block_list(settings))
        if args.admin_command == "domain-allow":
            return asyncio.run(moderation_commands.domain_allow(
                settings, args.allow_command, getattr(args, "domain", None)))
        if args.admin_command == "email-block":
            return asyncio.run(moderation_commands.email_block(
                settings, args.email_command, getattr(args, "email", None)))
        if args.admin_command == "report":
            return asyncio.run(moderation_commands.report_action(
                settings, args.action, args.id, by=args.by, text=args.text))
        if args.admin_command == "appeal":
            return asyncio.run(moderation_commands.appeal_action(
                settings, args.appeal_command, getattr(args, "id", None),
                by=getattr(args, "by", None), every=getattr(args, "every", False)))
        if args.admin_command == "account":
            return asyncio.run(account_commands.run(settings, args))
        if args.admin_command in ("invite", "rules"):
            return asyncio.run(registration_commands.run(settings, args))
        if args.admin_command == "announcement":
            return asyncio.run(announcement_commands.run(settings, args))
        if args.admin_command == "ip-block":
            return asyncio.run(ip_block_commands.run(settings, args))
        if args.admin_command == "vocabulary":
            return asyncio.run(commands.vocabulary(settings, args))
        if args.admin_command == "reports":
            return asyncio.run(_after_migrations(settings, commands.reports(settings, args.limit)))
        if args.admin_command == "reprotect":
            return asyncio.run(_after_migrations(settings, commands.reprotect(
                settings, every=args.every, dry_run=args.dry_run, here=args.here)))
        if args.admin_command == "media":
            return asyncio.run(_after_migrations(settings, commands.media_prune(
                settings, older_than_hours=args.older_than, dry_run=args.dry_run)))
        if args.admin_command == "reverify":
            return asyncio.run(_after_migrations(settings, commands.reverify(
                settings, every=args.every, dry_run=args.dry_run, here=args.here,
                media_ids=args.media_ids)))
        if args.admin_command == "queue":
            return asyncio.run(commands.queue(settings, args))
        if args.admin_command == "status":
            return asyncio.run(commands.status(settings, as_json=args.json))
        return asyncio.run(_after_migrations(
            settings, commands.jobs(settings, args.state, args.limit, args.retry)))
    except commands.CommandError as exc:
        print(f"easel: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
