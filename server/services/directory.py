"""The profile directory (Mastodon's ``GET /api/v1/directory``): accounts that chose to be
found, most recently active or newest first.

As Mastodon's ``Account.discoverable`` scope: only accounts with ``discoverable`` on that
the API lists (:func:`server.services.accounts.listed_accounts`: remote ones, and local
ones approved, confirmed and not disabled; never the instance actor), neither suspended
nor silenced (by our moderators, or through their domain's block; in allowlist mode,
remote accounts no allow covers), and not moved away. A viewer does not see the accounts
it blocks, is blocked by, mutes or whose domain it blocks
(:func:`server.services.blocks.hidden_accounts`). The domain blocks read, then one query.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Account
from server.services.accounts import listed_accounts
from server.services.blocks import hidden_accounts
from server.services.domain_blocks import read_hiding

DirectoryOrder = Literal["active", "new"]
ORDERS: tuple[DirectoryOrder, ...] = ("active", "new")


async def directory_accounts(session: AsyncSession, *, viewer: Account | None,
                             order: DirectoryOrder = "active", local: bool = False,
                             offset: int = 0, limit: int = 40) -> list[Account]:
    """A page of the directory: ``order`` "active" by the latest status (accounts that never
    posted last), "new" by sign-up (newest first); ``local`` keeps this server's accounts."""
    query = select(Account).where(
        Account.discoverable.is_(True), listed_accounts(), Account.suspended_at.is_(None),
        Account.silenced_at.is_(None), Account.moved_to_account_id.is_(None))
    hidden_domains = (await read_hiding(session)).clause()
    if hidden_domains is not None:
        query = query.where(~hidden_domains)
    if local:
        query = query.where(Account.domain == "")
    if viewer is not None:
        query = query.where(Account.id.not_in(hidden_accounts(viewer.id)))
    if order == "new":
        query = query.order_by(Account.created_at.desc(), Account.id.desc())
    else:
        query = query.order_by(Account.last_status_at.desc().nulls_last(), Account.id.desc())
    return list(await session.scalars(query.offset(max(offset, 0)).limit(max(limit, 1))))
