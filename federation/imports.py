"""The ``process_import`` job: an account import's rows, looked up and applied one by one.

Why it exists: a row names an account (``user@domain``) or a post (its URI) that may live
on another server; finding it takes WebFinger and a fetch, which services may not do.
This job resolves each pending row — local accounts and posts from the database, remote
ones through :mod:`federation.search` — and hands it to
:func:`server.services.imports.apply_row`, committing row by row: a crash, a restart or a
retry goes on from the first pending row, and a row is never applied twice. Once every
row was tried, :func:`server.services.imports.finish` counts them (and, in overwrite
mode, undoes what the file did not name).

What it must never do: let one bad row stop the import, or resolve a row to an account the
importer may not see (suspended domains are never looked up).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from federation.context import FederationContext, federation_context
from federation.search import resolve_handle, resolve_url
from server.models import Account, AccountImport, AccountImportRow, Status
from server.queue.kinds import job_kind
from server.queue.runner import JobContext
from server.services import imports
from server.services.errors import ServiceError
from server.services.statuses import visible_status

log = logging.getLogger(__name__)

PROGRESS_EVERY = 25


async def _account(fed: FederationContext, session: AsyncSession, acct: str) -> Account | None:
    username, _, domain = acct.partition("@")
    if domain == fed.settings.domain.lower():
        return await session.scalar(select(Account).where(
            Account.domain == "", Account.username_key == username.lower()))
    known = await session.scalar(select(Account).where(
        Account.domain == domain, Account.username_key == username.lower()))
    return known if known is not None else await resolve_handle(fed, session, acct)


async def _status(fed: FederationContext, session: AsyncSession, importer: Account,
                  uri: str) -> Status | None:
    local = await session.scalar(select(Status).where(Status.uri == uri))
    if local is not None:
        try:
            return await visible_status(session, importer, local.id)
        except ServiceError:
            return None
    found = await resolve_url(fed, session, uri, viewer=importer)
    return found if isinstance(found, Status) else None


async def _resolve(fed: FederationContext, session: AsyncSession, importer: Account, kind: str,
                   row: AccountImportRow) -> tuple[int | None, str | None]:
    """(the account or status id the row names, or None with why)."""
    if kind == "domain_blocking":
        return None, None
    if kind == "bookmarks":
        status = await _status(fed, session, importer, str(row.data.get("uri")))
        return (status.id, None) if status is not None else (None, "post not found")
    account = await _account(fed, session, str(row.data.get("acct")))
    if account is None:
        return None, "account not found"
    if account.id == importer.id:
        return None, "that is this account"
    return account.id, None


@job_kind(imports.PROCESS_IMPORT_JOB, queue="default", max_attempts=5,
          retry_base=timedelta(minutes=1), time_limit=timedelta(hours=12),
          lease=timedelta(minutes=2))
async def process_import(context: JobContext) -> None:
    session = context.session
    found = await session.get(AccountImport, int(context.job.ref))
    if found is None or found.state == "done":
        return
    importer = await session.get(Account, found.account_id)
    if importer is None:
        return
    fed = federation_context(context.settings, context.db)
    kind, import_id, importer_id = found.type, found.id, importer.id
    await session.execute(update(AccountImport).where(AccountImport.id == import_id)
                           .values(state="running"))
    await session.commit()
    pending = list(await session.scalars(select(AccountImportRow.id).where(
        AccountImportRow.import_id == import_id, AccountImportRow.state == "pending")
        .order_by(AccountImportRow.id)))
    for done, row_id in enumerate(pending, start=1):
        row = await session.get(AccountImportRow, row_id)
        importer = await session.get(Account, importer_id)
        if row is None or row.state != "pending" or importer is None:
            continue
        data = dict(row.data)
        try:
            target_id, why = await _resolve(fed, session, importer, kind, row)
            if why is not None:
                raise ServiceError(why)
            await imports.apply_row(session, importer, kind, row, target_id)
            state, error = "done", None
        except ServiceError as exc:
            await session.rollback()
            state, target_id, error = "failed", None, exc.message
        except Exception as exc:  # one row's surprise is that row's failure, not the import's
            log.warning("import %s: row %s (%s) failed: %r", import_id, row_id, data, exc)
            await session.rollback()
            state, target_id, error = "failed", None, f"could not be imported ({type(exc).__name__})"
        await session.execute(update(AccountImportRow).where(AccountImportRow.id == row_id).values(
            state=state, resolved_id=target_id, error=error))
        await session.commit()
        if done % PROGRESS_EVERY == 0:
            await context.report_progress(done / len(pending))
    refreshed = await session.get(AccountImport, import_id, populate_existing=True)
    if refreshed is not None:
        await imports.finish(session, refreshed)
