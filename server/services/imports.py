"""Account import: follows, blocks, mutes, domain blocks, bookmarks and lists from a CSV.

Why it exists: an artist arriving from Mastodon, GoToSocial, Cara's exports or another
Easel brings their network along. The files are Mastodon's export formats (see
:mod:`server.services.exports`; a header row is optional where Mastodon writes one), read
as Mastodon reads them. Creating an import only parses and stores its rows (checked
here: size, row count, each row's shape) and queues the ``process_import`` job
(:mod:`federation.imports`), which looks remote accounts and posts up and applies each row
through the same services as the API (so a follow of a remote account is a request with
a ``Follow`` sent, a block is federated, and so on). This module has the row-by-row rules
that need no network (:func:`apply_row`) and the overwrite clean-up (:func:`finish`).

What it must never do: apply a row to another account than the importer's, stop a whole
import because one row is bad (the row fails, with why), or undo anything in merge mode.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import (
    IMPORT_TYPES,
    Account,
    AccountDomainBlock,
    AccountImport,
    AccountImportRow,
    Block,
    Bookmark,
    Follow,
    FollowRequest,
    List,
    ListAccount,
    Mute,
)
from server.queue.jobs import enqueue
from server.queue.kinds import kind_named
from server.services import blocks, follows, lists
from server.services.errors import NotFound, ServiceError
from server.services.statuses import bookmark

# Mastodon's limits (app/models/form/import.rb): rows processed per file.
MAX_ROWS = 20_000
MAX_FILE_SIZE = 4 * 1024 * 1024
MAX_LIST_TITLE = 255
PROCESS_IMPORT_JOB = "process_import"  # federation/imports.py
TYPE_LABELS = {"following": "Accounts to follow", "blocking": "Accounts to block",
               "muting": "Accounts to mute", "domain_blocking": "Domains to block",
               "bookmarks": "Bookmarks", "lists": "Lists"}
# Whose first cell, in a header row, is this: the header is skipped.
_HEADERS = {"account address", "list name", "domain", "#domain", "#uri"}


class ImportRefused(ServiceError):
    """The file cannot be imported at all (the message says why); nothing was stored."""


@dataclass(frozen=True)
class ParsedImport:
    type: str
    rows: list[dict[str, Any]]


def _flag(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("true", "1", "yes")


_ACCT = re.compile(r"\A@?([A-Za-z0-9_][A-Za-z0-9_.-]*)@([A-Za-z0-9.-]+(?::[0-9]{1,5})?)\Z")


def _acct(raw: str) -> str | None:
    match = _ACCT.match(raw.strip())
    if match is None:
        return None
    return f"{match.group(1)}@{match.group(2).lower()}"


def parse_import(kind: str, data: bytes) -> ParsedImport:
    """Read a CSV of ``kind``; ImportRefused when it cannot be imported. Rows that are
    unreadable on their own are kept with an ``error`` (they fail, and are listed)."""
    if kind not in IMPORT_TYPES:
        raise ImportRefused(f"Unknown import type {kind!r}: use one of {', '.join(IMPORT_TYPES)}")
    if len(data) > MAX_FILE_SIZE:
        raise ImportRefused(f"The file is too large (at most {MAX_FILE_SIZE // (1024 * 1024)} MB)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused("The file is not UTF-8 text (a CSV export is)") from None
    if "\x00" in text:
        raise ImportRefused("The file is not a CSV file")
    try:
        records = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    except csv.Error as exc:
        raise ImportRefused(f"The file is not a readable CSV file: {exc}") from None
    if records and records[0] and records[0][0].strip().lower() in _HEADERS:
        records = records[1:]
    if not records:
        raise ImportRefused("The file has no rows to import")
    if len(records) > MAX_ROWS:
        raise ImportRefused(f"The file has {len(records)} rows; at most {MAX_ROWS} are imported at once")
    return ParsedImport(kind, [_row(kind, record) for record in records])


def _row(kind: str, record: list[str]) -> dict[str, Any]:
    first = record[0].strip()
    if kind == "bookmarks":
        if not first.startswith(("https://", "http://")):
            return {"uri": first[:200], "error": "not a post's address (https://…)"}
        return {"uri": first}
    if kind == "domain_blocking":
        domain = first.lower()
        if not domain or " " in domain or "/" in domain or "@" in domain:
            return {"domain": first[:200], "error": "not a domain"}
        return {"domain": domain}
    if kind == "lists":
        title = first
        acct = _acct(record[1]) if len(record) > 1 else None
        if not title or len(title) > MAX_LIST_TITLE or acct is None:
            return {"list": title[:MAX_LIST_TITLE], "acct": (record[1] if len(record) > 1 else "")[:200],
                    "error": "expected a list title and an account address (user@domain)"}
        return {"list": title, "acct": acct}
    acct = _acct(first)
    if acct is None:
        return {"acct": first[:200], "error": "not an account address (user@domain)"}
    row: dict[str, Any] = {"acct": acct}
    if kind == "following":
        row["show_reblogs"] = _flag(record[1] if len(record) > 1 else None, True)
        row["notify"] = _flag(record[2] if len(record) > 2 else None, False)
    elif kind == "muting":
        row["hide_notifications"] = _flag(record[1] if len(record) > 1 else None, True)
    return row


async def create_import(session: AsyncSession, account: Account, parsed: ParsedImport, *,
                        overwrite: bool) -> AccountImport:
    """Store the import and its rows and queue its processing; committed."""
    found = AccountImport(account_id=account.id, type=parsed.type, overwrite=overwrite,
                          total_items=len(parsed.rows))
    session.add(found)
    await session.flush()
    for data in parsed.rows:
        error = data.pop("error", None)
        session.add(AccountImportRow(import_id=found.id, data=data,
                                     state="failed" if error else "pending", error=error))
    await session.flush()
    await enqueue(session, kind_named(PROCESS_IMPORT_JOB), str(found.id))
    await session.commit()
    return found


async def imports_of(session: AsyncSession, account: Account, limit: int = 10) -> list[AccountImport]:
    return list(await session.scalars(select(AccountImport).where(
        AccountImport.account_id == account.id).order_by(AccountImport.id.desc()).limit(limit)))


async def failed_rows(session: AsyncSession, found: AccountImport, limit: int = 50) -> list[AccountImportRow]:
    return list(await session.scalars(select(AccountImportRow).where(
        AccountImportRow.import_id == found.id, AccountImportRow.state == "failed")
        .order_by(AccountImportRow.id).limit(limit)))


async def apply_row(session: AsyncSession, importer: Account, kind: str, row: AccountImportRow,
                    target_id: int | None) -> None:
    """Apply one row whose account or post was resolved to ``target_id`` (the domain
    rows need none); committed by the service called. ServiceError when it cannot be."""
    data = row.data
    if kind == "following":
        await follows.follow(session, importer, _target(target_id),
                             reblogs=bool(data.get("show_reblogs", True)),
                             notify=bool(data.get("notify", False)))
    elif kind == "blocking":
        await blocks.block(session, importer, _target(target_id))
    elif kind == "muting":
        await blocks.mute(session, importer, _target(target_id),
                          notifications=bool(data.get("hide_notifications", True)))
    elif kind == "domain_blocking":
        await blocks.block_domain(session, importer, str(data.get("domain", "")))
    elif kind == "bookmarks":
        await bookmark(session, importer, _target(target_id))
    elif kind == "lists":
        target = _target(target_id)
        found = await _list_named(session, importer, str(data.get("list", "")))
        following = await session.scalar(select(Follow.id).where(
            Follow.account_id == importer.id, Follow.target_account_id == target))
        if following is None:
            await follows.follow(session, importer, target)
        try:
            await lists.add_accounts(session, importer, found.id, [target])
        except ServiceError:
            if await session.scalar(select(FollowRequest.id).where(
                    FollowRequest.account_id == importer.id,
                    FollowRequest.target_account_id == target)) is not None:
                raise ServiceError("followed (a request): add them to the list once they accept") from None
            raise
    else:  # pragma: no cover - parse_import refuses other kinds
        raise ServiceError(f"unknown import type {kind}")


def _target(target_id: int | None) -> int:
    if target_id is None:
        raise NotFound("not found")
    return target_id


async def _list_named(session: AsyncSession, account: Account, title: str) -> List:
    found = await session.scalar(select(List).where(
        List.account_id == account.id, List.title == title).order_by(List.id).limit(1))
    if found is None:
        found = await lists.create_list(session, account, title=title)
    return found


async def finish(session: AsyncSession, found: AccountImport) -> None:
    """Count the rows, and in overwrite mode undo what the file did not name (only once
    every row was tried); committed."""
    counts = dict((state, n) for state, n in (await session.execute(
        select(AccountImportRow.state, func.count()).where(AccountImportRow.import_id == found.id)
        .group_by(AccountImportRow.state))).all())
    if found.overwrite:
        await _overwrite(session, found)
    await session.execute(update(AccountImport).where(AccountImport.id == found.id).values(
        state="done", imported_items=counts.get("done", 0), failed_items=counts.get("failed", 0),
        finished_at=utcnow()))
    await session.commit()


async def _overwrite(session: AsyncSession, found: AccountImport) -> None:
    importer = await session.get(Account, found.account_id)
    if importer is None:
        return
    rows = list(await session.scalars(select(AccountImportRow).where(
        AccountImportRow.import_id == found.id, AccountImportRow.state == "done")))
    kept = {row.resolved_id for row in rows if row.resolved_id is not None}
    if found.type == "following":
        for target_id in list(await session.scalars(select(Follow.target_account_id).where(
                Follow.account_id == importer.id, Follow.target_account_id.not_in(kept)))):
            await follows.unfollow(session, importer, target_id)
    elif found.type == "blocking":
        for target_id in list(await session.scalars(select(Block.target_account_id).where(
                Block.account_id == importer.id, Block.target_account_id.not_in(kept)))):
            await blocks.unblock(session, importer, target_id)
    elif found.type == "muting":
        for target_id in list(await session.scalars(select(Mute.target_account_id).where(
                Mute.account_id == importer.id, Mute.target_account_id.not_in(kept)))):
            await blocks.unmute(session, importer, target_id)
    elif found.type == "domain_blocking":
        domains = {str(row.data.get("domain")) for row in rows}
        await session.execute(delete(AccountDomainBlock).where(
            AccountDomainBlock.account_id == importer.id, AccountDomainBlock.domain.not_in(domains)))
    elif found.type == "bookmarks":
        await session.execute(delete(Bookmark).where(
            Bookmark.account_id == importer.id, Bookmark.status_id.not_in(kept)))
    elif found.type == "lists":
        # Each list the file names has exactly the members the file gives it.
        named: dict[str, set[int]] = {}
        for row in rows:
            if row.resolved_id is not None:
                named.setdefault(str(row.data.get("list")), set()).add(row.resolved_id)
        for title, members in named.items():
            list_id = await session.scalar(select(List.id).where(
                List.account_id == importer.id, List.title == title).order_by(List.id).limit(1))
            if list_id is not None:
                await session.execute(delete(ListAccount).where(
                    ListAccount.list_id == list_id, ListAccount.account_id.not_in(members)))
    await session.commit()
