"""``easel admin ip-block …``: IP blocks from the command line (add, list, remove, prune).

Why it exists: an admin stops a wave of sign-ups or abuse from a shell, or a script,
without a moderation client — the same blocks as ``/api/v1/admin/ip_blocks`` and the
``/admin/ip_blocks`` page. Parsing lives here beside the handlers so that
``server/cli.py`` only hooks them in; the rules are ``server/services/ip_blocks.py``'s.
A change made here reaches the running web processes within their reload interval
(``RELOAD_SECONDS``, 10 s), which ``add`` and ``remove`` say.

What it must never do: hold a rule of its own, or print anything but the blocks asked for.
"""

from __future__ import annotations

import argparse

from server.db import Database
from server.ids import parse_id, utcnow
from server.models import IpBlock
from server.registration_commands import duration
from server.services import ip_blocks
from server.services.errors import ServiceError
from server.settings import Settings

SEVERITY_HELP = ("no_access: every request refused; sign_up_block: sign-ups refused; "
                 "sign_up_requires_approval: new accounts wait for approval")


def add_parsers(admin_commands: argparse._SubParsersAction) -> None:
    block = admin_commands.add_parser(
        "ip-block", help="networks refused entirely, or refused or held for approval at sign-up")
    commands = block.add_subparsers(dest="ip_block_command", required=True)
    add = commands.add_parser("add", help="block an address or network (CIDR)")
    add.add_argument("ip", help="e.g. 203.0.113.7, 192.0.2.0/24 or 2001:db8::/32")
    add.add_argument("--severity", required=True, choices=list(ip_blocks.SEVERITIES[::-1]),
                     help=SEVERITY_HELP)
    add.add_argument("--comment", default="", help="why (shown to moderators only)")
    add.add_argument("--expires-in", type=duration, default=None, metavar="SECONDS",
                     help="lift the block after this long: seconds, or e.g. 12h, 7d, 2w "
                          "(default: never)")
    commands.add_parser("list", help="list the blocks, newest first (expired ones marked)")
    remove = commands.add_parser("remove", help="lift a block")
    remove.add_argument("block", metavar="ID-or-IP", help="the block's id (see list) or its network")
    commands.add_parser("prune", help="delete the blocks that have expired")


def _line(block: IpBlock) -> str:
    state = ("expired" if not ip_blocks.is_active(block, utcnow()) else "active")
    expires = f"until {block.expires_at:%Y-%m-%d %H:%M}" if block.expires_at else "no expiry"
    comment = f"  {block.comment}" if block.comment else ""
    return f"{block.id}  {block.ip:<20} {block.severity:<26} {state:<8} {expires}{comment}"


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from server.commands import CommandError, migrate

    await migrate(settings, quiet=True)
    db = Database.from_settings(settings)
    note = f"(running web processes apply it within {int(ip_blocks.RELOAD_SECONDS)} s)"
    try:
        async with db.session() as session:
            command = args.ip_block_command
            if command == "add":
                expires_in = int(args.expires_in.total_seconds()) if args.expires_in else None
                block = await ip_blocks.create_ip_block(
                    session, args.ip, args.severity, comment=args.comment, expires_in=expires_in)
                print(f"blocked {block.ip} ({block.severity}), id {block.id} {note}")
            elif command == "remove":
                block_id = parse_id(args.block)
                block = (await ip_blocks.get_ip_block(session, block_id) if block_id is not None
                         else await ip_blocks.find_ip_block(session, args.block))
                await ip_blocks.remove_ip_block(session, block.id)
                print(f"unblocked {block.ip} {note}")
            elif command == "prune":
                print(f"removed {await ip_blocks.remove_expired(session)} expired block(s)")
            else:
                found = await ip_blocks.list_ip_blocks(session)
                if not found:
                    print("no IP blocks")
                for block in found:
                    print(_line(block))
    except ServiceError as exc:
        raise CommandError(exc.message) from exc
    finally:
        await db.dispose()
    return 0
