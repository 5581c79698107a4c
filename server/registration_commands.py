"""``easel admin invite …`` and ``easel admin rules …``: invites and instance rules from
the command line (there is no admin API for them in Mastodon's client API).

Why it exists: an admin hands out sign-up links with a number of uses and an expiry, and
writes the rules newcomers accept. Parsing lives here beside the handlers so that
``server/cli.py`` only hooks them in; the use cases are ``server/services/invites.py`` and
``rules.py``. It must never print anything but the codes, links and rules asked for.
"""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from server.db import Database
from server.ids import row_id, utcnow
from server.services import invites, rules
from server.services.errors import ServiceError
from server.settings import Settings

DURATION_RE = re.compile(r"\A([0-9]{1,6})([smhdw]?)\Z")
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(raw: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` or seconds, for ``--expires-in``."""
    match = DURATION_RE.match(raw.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a duration: use e.g. 30m, 12h, 7d or 2w")
    return timedelta(seconds=int(match.group(1)) * DURATION_UNITS[match.group(2)])


def add_parsers(admin_commands: argparse._SubParsersAction) -> None:
    invite = admin_commands.add_parser("invite", help="sign-up links that bypass approval")
    invite_commands = invite.add_subparsers(dest="invite_command", required=True)
    create = invite_commands.add_parser("create", help="create an invite and print its link")
    create.add_argument("--max-uses", type=int, default=None, metavar="N",
                        help="how many people may sign up with it (default: unlimited)")
    create.add_argument("--expires-in", type=duration, default=None, metavar="DURATION",
                        help="e.g. 30m, 12h, 7d, 2w (default: never)")
    invite_commands.add_parser("list", help="list invites")
    revoke = invite_commands.add_parser("revoke", help="stop an invite from working")
    revoke.add_argument("code")

    rule = admin_commands.add_parser("rules", help="the instance rules accepted at sign-up")
    rule_commands = rule.add_subparsers(dest="rules_command", required=True)
    add = rule_commands.add_parser("add", help="add a rule at the end")
    add.add_argument("text")
    add.add_argument("--hint", default="", help="a longer explanation")
    rule_commands.add_parser("list", help="list the rules with their ids")
    remove = rule_commands.add_parser("remove", help="remove a rule")
    remove.add_argument("id", type=row_id)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from server.commands import CommandError, migrate

    await migrate(settings, quiet=True)
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            if args.admin_command == "invite":
                return await _invite(session, settings, args)
            return await _rules(session, args)
    except ServiceError as exc:
        raise CommandError(exc.message) from exc
    finally:
        await db.dispose()


async def _invite(session: AsyncSession, settings: Settings, args: argparse.Namespace) -> int:
    base = settings.base_url
    if args.invite_command == "create":
        invite = await invites.create_invite(session, max_uses=args.max_uses,
                                             expires_in=args.expires_in)
        print(f"{base}/invite/{invite.code}")
        return 0
    if args.invite_command == "revoke":
        invite = await invites.revoke_invite(session, args.code)
        print(f"revoked {invite.code}")
        return 0
    found = await invites.list_invites(session)
    if not found:
        print("no invites")
    now = utcnow()
    for invite in found:
        uses = f"{invite.uses}/{invite.max_uses if invite.max_uses is not None else '∞'}"
        expires = f"expires {invite.expires_at:%Y-%m-%d %H:%M}" if invite.expires_at else "no expiry"
        status = ("revoked" if invite.revoked_at
                  else "expired" if invite.expires_at and invite.expires_at <= now
                  else "used up" if not invites.is_usable(invite, now) else "active")
        print(f"{invite.code}  {status:<8} uses {uses:<9} {expires}  {base}/invite/{invite.code}")
    return 0


async def _rules(session: AsyncSession, args: argparse.Namespace) -> int:
    if args.rules_command == "add":
        rule = await rules.add_rule(session, args.text, args.hint)
        print(f"added rule {rule.id}")
        return 0
    if args.rules_command == "remove":
        await rules.remove_rule(session, args.id)
        print(f"removed rule {args.id}")
        return 0
    found = await rules.list_rules(session)
    if not found:
        print("no rules")
    for number, rule in enumerate(found, start=1):
        print(f"{rule.id}  {number}. {rule.text}" + (f" — {rule.hint}" if rule.hint else ""))
    return 0
