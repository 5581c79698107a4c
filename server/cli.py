"""The ``easel`` command: serve, migrate, worker, protect, verify, admin.

Building the parser imports no torch (``protect.offline`` and ``protect.verify_cli`` load it
inside ``run``), so ``easel --help`` and every web-side command stay light.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import server
from server.models.portfolio import TAG_KINDS
from server.queue.kinds import QUEUES
from server.services.domain_blocks import SEVERITIES
from server.settings import SettingsError, load_settings


def _queues(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in QUEUES]
    if unknown or not names:
        named = ", ".join(unknown) if unknown else repr(value)
        raise argparse.ArgumentTypeError(f"unknown queue(s): {named}; choose from {', '.join(QUEUES)}")
    return names


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
    serve.add_argument("--port", type=int, default=8080)

    commands.add_parser("migrate", help="apply pending database migrations")

    worker = commands.add_parser("worker", help="run background jobs")
    worker.add_argument("--queues", type=_queues, default=list(QUEUES),
                        help=f"comma-separated, from: {', '.join(QUEUES)} (default: all)")
    worker.add_argument("--threads", type=int, default=4)

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
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--retry", nargs="*", metavar="ID", default=None,
                      help="requeue these failed jobs (all failed jobs when no id is given)")

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
    reports.add_argument("--limit", type=int, default=50)

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
    reverify.add_argument("media_ids", nargs="*", type=int, metavar="ID",
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
                    "images after 30 days.")
    prune.add_argument("--older-than", type=float, default=24.0, metavar="HOURS",
                       help="only files older than this (default 24, at least 1)")
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"easel: configuration error: {exc}", file=sys.stderr)
        return 2
    for name in settings.extra:
        if not name.startswith("EASEL_TEST_"):
            print(f"easel: warning: unknown setting {name} is ignored", file=sys.stderr)

    from server import commands

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
            return asyncio.run(commands.domain_block_list(settings))
        if args.admin_command == "vocabulary":
            return asyncio.run(commands.vocabulary(settings, args))
        if args.admin_command == "reports":
            return asyncio.run(commands.reports(settings, args.limit))
        if args.admin_command == "reprotect":
            return asyncio.run(commands.reprotect(settings, every=args.every, dry_run=args.dry_run,
                                                  here=args.here))
        if args.admin_command == "media":
            return asyncio.run(commands.media_prune(settings, older_than_hours=args.older_than,
                                                    dry_run=args.dry_run))
        if args.admin_command == "reverify":
            return asyncio.run(commands.reverify(settings, every=args.every, dry_run=args.dry_run,
                                                 here=args.here, media_ids=args.media_ids))
        return asyncio.run(commands.jobs(settings, args.state, args.limit, args.retry))
    except commands.CommandError as exc:
        print(f"easel: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
