"""``easel admin account …``: moderating an account from the command line — warn, mark
sensitive, disable, silence, suspend, their lifting, approving or rejecting a sign-up,
deleting, and listing accounts by standing.

Why it exists: an admin without a moderation app (or locked out of it) can still act,
with the same effects as the admin API (``server/services/moderation.py`` does the work).
Parsing lives here beside the handlers so that ``server/cli.py`` only hooks them in. It
must never act on the instance actor, nor print more than what was done.
"""

from __future__ import annotations

import argparse

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import Database
from server.ids import row_id
from server.models import Account, User
from server.services import moderation
from server.services.errors import NotFound, ServiceError
from server.settings import Settings

ACTIONS = {"warn": "none", "sensitive": "sensitive", "disable": "disable",
           "silence": "silence", "suspend": "suspend"}
LIFTS = ("unsilence", "unsuspend", "unsensitive", "enable")


def add_parsers(admin_commands: argparse._SubParsersAction) -> None:
    account = admin_commands.add_parser(
        "account", help="moderate an account: warn, silence, suspend, delete, …")
    account_commands = account.add_subparsers(dest="account_command", required=True)
    for name, what in (("warn", "warn (the person reads the text in the studio)"),
                       ("sensitive", "mark its media sensitive"),
                       ("disable", "refuse its login"),
                       ("silence", "keep it out of public timelines for non-followers"),
                       ("suspend", "hide it and refuse its login; other servers are told")):
        parser = account_commands.add_parser(name, help=what)
        parser.add_argument("account", help="username, or user@domain for a remote account")
        parser.add_argument("--text", default="", help="the reason, shown to the person")
        parser.add_argument("--report", type=row_id, default=None, metavar="ID",
                            help="the report this action resolves")
    for name in LIFTS:
        account_commands.add_parser(name, help=f"{name} an account").add_argument("account")
    account_commands.add_parser("approve", help="approve a pending sign-up").add_argument("account")
    account_commands.add_parser("reject", help="reject (delete) a pending sign-up").add_argument(
        "account")
    delete = account_commands.add_parser(
        "delete", help="suspend and delete a local account now (other servers get Delete)")
    delete.add_argument("account")
    listing = account_commands.add_parser("list", help="list accounts by standing")
    listing.add_argument("--status", choices=moderation.ACCOUNT_STATES, default=None)
    listing.add_argument("--remote", action="store_true", help="remote accounts only")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from server.commands import CommandError, migrate

    await migrate(settings, quiet=True)
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            if args.account_command == "list":
                return await _list(session, args)
            account_id = await _account_id(session, args.account)
            return await _act(session, settings, args, account_id)
    except ServiceError as exc:
        raise CommandError(exc.message) from exc
    finally:
        await db.dispose()


async def _account_id(session: AsyncSession, handle: str) -> int:
    username, _, domain = handle.strip().lstrip("@").partition("@")
    found = await session.scalar(select(Account.id).where(
        Account.username_key == username.lower(), Account.domain == domain.lower(),
        Account.actor_type != "Application", Account.deleted_at.is_(None)))
    if found is None:
        raise NotFound(f"no account {handle!r}")
    return int(found)


async def _act(session: AsyncSession, settings: Settings, args: argparse.Namespace,
               account_id: int) -> int:
    command = args.account_command
    if command in ACTIONS:
        await moderation.take_action(session, settings, moderator=None, account_id=account_id,
                                     action=ACTIONS[command], text=args.text,
                                     report_id=args.report)
    elif command in LIFTS:
        await moderation.lift(session, account_id, command)
    elif command == "approve":
        await moderation.approve(session, settings, account_id)
    elif command == "reject":
        await moderation.reject(session, settings, account_id)
    elif command == "delete":
        account, _user = await moderation.account_with_user(session, account_id)
        if account.suspended_at is None:
            await moderation.take_action(session, settings, moderator=None,
                                         account_id=account_id, action="suspend",
                                         notify_by_email=False)
        await moderation.delete_by_moderator(session, account_id)
        await moderation.purge(session, account_id)
    print(f"{command}: {args.account}")
    return 0


async def _list(session: AsyncSession, args: argparse.Namespace) -> int:
    wanted = moderation.AccountFilter(origin="remote" if args.remote else None, state=args.status)
    rows = (await session.execute(moderation.accounts_query(wanted).order_by(Account.id))).all()
    for account, user in rows:
        print(f"{account.acct():<40} {_standing(account, user)}")
    if not rows:
        print("no accounts")
    return 0


def _standing(account: Account, user: User | None) -> str:
    marks = [name for name, on in (
        ("suspended", account.suspended_at is not None),
        ("deleting", account.delete_after is not None),
        ("silenced", account.silenced_at is not None),
        ("sensitive", account.sensitized_at is not None),
        ("disabled", user is not None and user.disabled),
        ("pending", user is not None and not user.approved),
        ("admin", user is not None and user.admin)) if on]
    return ", ".join(marks) or "active"
