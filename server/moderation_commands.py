"""``easel admin`` commands for reports, appeals of moderators' decisions, domain blocks
(CSV import/export), domain allows and canonical e-mail blocks.

Why it exists: everything a moderator does in the admin API can be done from the shell
too (a server without an admin client, a script, a block list shared between servers in
Mastodon's CSV format). Each handler opens the database, calls one service function and
prints what changed; a refused change is a :class:`~server.commands.CommandError` (exit
status 1) with the service's message.

What it must never do: hold rules of its own (they are the services'), or write half of an
import: a CSV with a bad line is refused before any block is stored.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.commands import CommandError, migrate
from server.db import Database
from server.models import Account, AccountWarning, Appeal
from server.services import appeals as appeal_service
from server.services import domain_blocks, email_blocks
from server.services import reports as report_service
from server.services.accounts import find_local_account
from server.services.errors import NotFound, ServiceError
from server.settings import Settings


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[AsyncSession]:
    await migrate(settings, quiet=True)
    db = Database.from_settings(settings)
    try:
        async with db.session() as session:
            yield session
    except ServiceError as exc:
        raise CommandError(exc.message) from exc
    finally:
        await db.dispose()


# ---------------------------------------------------------------- domain-block CSV

def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8-sig")  # a spreadsheet's BOM is not a domain


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:  # no such folder, no permission, a full disk
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from exc


async def domain_block_export(settings: Settings, path: str) -> int:
    """Write every block as Mastodon's CSV to ``path`` ("-": standard output)."""
    async with _session(settings) as session:
        text = domain_blocks.export_csv(await domain_blocks.list_domain_blocks(session))
    if path == "-":
        sys.stdout.write(text)
    else:
        _write(path, text)
        print(f"exported {text.count(chr(10)) - 1} domain block(s) to {path}")
    return 0


async def domain_block_import(settings: Settings, path: str) -> int:
    """Read Mastodon's CSV (or one domain a line) from ``path`` ("-": standard input)
    and block each domain as it says (an existing block is updated)."""
    try:
        text = sys.stdin.read() if path == "-" else _read(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from exc
    try:
        parsed = domain_blocks.parse_csv(text)
    except ServiceError as exc:
        raise CommandError(f"{path}: {exc.message}") from exc
    async with _session(settings) as session:
        result = await domain_blocks.import_blocks(session, parsed, own_domain=settings.domain)
    print(f"imported {len(parsed)} domain block(s): {result.created} new, {result.updated} updated")
    for domain in result.skipped:
        print(f"skipped {domain}: it covers this server's own domain")
    return 0


# ------------------------------------------------------------------- domain allows

async def domain_allow(settings: Settings, action: str, domain: str | None) -> int:
    async with _session(settings) as session:
        if action == "add":
            assert domain is not None
            allow = await domain_blocks.allow_domain(session, domain)
            print(f"allowed {allow.domain}")
        elif action == "remove":
            assert domain is not None
            name = domain_blocks.normalize_domain(domain)
            found = [a for a in await domain_blocks.list_domain_allows(session) if a.domain == name]
            if not found:
                raise CommandError(f"{name} is not allowed")
            await domain_blocks.remove_domain_allow(session, found[0].id)
            print(f"no longer allowed: {name}")
        else:
            allows = await domain_blocks.list_domain_allows(session)
            if not allows:
                print("no allowed domains")
            for allow in allows:
                print(f"{allow.domain}  {allow.created_at:%Y-%m-%d}")
    if settings.federation_mode != "allowlist" and action != "list":
        print("note: EASEL_FEDERATION_MODE is not allowlist, so allows change nothing yet")
    return 0


# ---------------------------------------------------------- canonical e-mail blocks

async def email_block(settings: Settings, action: str, value: str | None) -> int:
    async with _session(settings) as session:
        if action == "add":
            assert value is not None
            block = await email_blocks.block_email(session, email=value)
            print(f"blocked {email_blocks.canonical_email(value)} ({block.canonical_email_hash})")
        elif action == "remove":
            assert value is not None
            found = await email_blocks.matching_blocks(session, value)
            if not found:
                raise CommandError(f"{value} is not blocked")
            await email_blocks.remove_email_block(session, found[0].id)
            print(f"unblocked {email_blocks.canonical_email(value)}")
        else:
            for block in await email_blocks.list_email_blocks(session):
                print(f"{block.id}  {block.canonical_email_hash}  {block.created_at:%Y-%m-%d}")
    return 0


# ------------------------------------------------------------------------- reports

async def _moderator(session: AsyncSession, username: str) -> Account:
    account = await find_local_account(session, username)
    if account is None:
        raise CommandError(f"no local account @{username}")
    return account


async def report_action(settings: Settings, action: str, report_id: int, *, by: str | None,
                        text: str | None = None) -> int:
    """``show``, ``assign``, ``unassign``, ``resolve``, ``reopen`` or ``note`` a report;
    ``by`` names the moderator (a local username) where the action records one."""
    async with _session(settings) as session:
        if action in ("assign", "resolve", "note") and not by:
            raise CommandError(f"report {action} needs --by USERNAME (the moderator)")
        if action == "assign":
            await report_service.assign_report(session, report_id, await _moderator(session, by or ""))
        elif action == "unassign":
            await report_service.assign_report(session, report_id, None)
        elif action == "resolve":
            await report_service.resolve_report(session, report_id, await _moderator(session, by or ""))
        elif action == "reopen":
            await report_service.reopen_report(session, report_id)
        elif action == "note":
            await report_service.add_report_note(
                session, report_id, await _moderator(session, by or ""), text or "")
        report = await report_service.get_report(session, report_id)
        notes = await report_service.report_notes(session, report_id)
        names = {}
        for account_id in (report.account_id, report.target_account_id,
                           report.assigned_account_id, report.action_taken_by_account_id,
                           *(n.account_id for n in notes)):
            if account_id is not None and account_id not in names:
                account = await session.get(Account, account_id)
                names[account_id] = account.acct() if account is not None else "?"
    state = (f"resolved by {names.get(report.action_taken_by_account_id or 0, '?')} "
             f"{report.action_taken_at:%Y-%m-%d %H:%M}" if report.action_taken_at else "open")
    assigned = names.get(report.assigned_account_id or 0, "nobody")
    print(f"report {report.id}: {names[report.account_id]} -> {names[report.target_account_id]}  "
          f"{report.category}  {state}  assigned to {assigned}")
    if report.comment:
        print(f"  comment: {report.comment}")
    for note in notes:
        print(f"  note by {names[note.account_id]} {note.created_at:%Y-%m-%d %H:%M}: {note.content}")
    return 0


# ------------------------------------------------------------------------- appeals

APPEAL_TEXT_WIDTH = 72


async def appeal_action(settings: Settings, action: str, appeal_id: int | None = None, *,
                        by: str | None = None, every: bool = False) -> int:
    """``list`` the pending appeals (``every``: all, newest first), or ``approve`` or
    ``reject`` one; ``by`` names the moderator (a local username) recorded as deciding."""
    async with _session(settings) as session:
        if action == "list":
            rows = await appeal_service.list_appeals(session, "all" if every else "pending")
            appellants = {appeal.account_id for appeal, _warning in rows}
            names = {account.id: account.acct() for account in await session.scalars(
                select(Account).where(Account.id.in_(appellants)))} if appellants else {}
            if not rows:
                print("no appeals" if every else "no pending appeals")
            for appeal, warning in rows:
                print(_appeal_line(appeal, warning, names.get(appeal.account_id, "?")))
            return 0
        assert appeal_id is not None
        moderator = await _moderator(session, by) if by else None
        decide = (appeal_service.approve_appeal if action == "approve"
                  else appeal_service.reject_appeal)
        try:
            appeal = await decide(session, settings, moderator, appeal_id)
        except NotFound:
            raise CommandError(f"no appeal {appeal_id}") from None
        decided = await session.get(AccountWarning, appeal.account_warning_id)
        appellant = await session.get(Account, appeal.account_id)
        assert decided is not None
        acct = appellant.acct() if appellant is not None else "?"
    outcome = ("approved: the decision is overruled and its action undone"
               if appeal.state == "approved" else "rejected: the decision stands")
    print(f"appeal {appeal.id} by {acct} of {decided.action} "
          f"{decided.created_at:%Y-%m-%d} {outcome}")
    return 0


def _appeal_line(appeal: Appeal, warning: AccountWarning, acct: str) -> str:
    lines = appeal.text.strip().splitlines()
    text = lines[0].strip() if lines else ""
    if len(text) > APPEAL_TEXT_WIDTH or len(lines) > 1:
        text = text[:APPEAL_TEXT_WIDTH - 1].rstrip() + "…"
    return (f"{appeal.id}  {appeal.state:<8}  {acct}  {warning.action} "
            f"{warning.created_at:%Y-%m-%d}  {text}")
