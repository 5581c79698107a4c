"""Who may see which status: the one rule every read path applies.

- The author sees all their own statuses, published or not.
- Nobody sees the statuses of an author who blocks them, nor those of a suspended author:
  suspended here, or on a suspended domain (which suspends its accounts,
  ``server.services.domain_blocks``).
- Others see only published statuses, and then: ``public`` and ``unlisted`` by anyone;
  ``private`` by the author's followers; ``direct`` by the accounts it mentions.
A boost is visible when the boost itself is (boosts of private statuses are not allowed).
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    bindparam,
    exists,
    not_,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Account, Follow, Mention, Status
from server.services.blocks import blocked_by_author, hidden_accounts
from server.services.domain_blocks import read_hiding


class Viewer(Protocol):
    """Whom a clause is built for: an ``Account``, or ``BOUND_VIEWER``, which stands for
    any viewer in a statement built once and run with the viewer's id bound. Clauses read
    nothing of it but its ``id``."""

    @property
    def id(self) -> Any: ...


class _BoundViewer:
    id = bindparam("viewer", type_=BigInteger)


# The viewer of a prebuilt statement: run it with ``{"viewer": account.id}``.
BOUND_VIEWER: Viewer = _BoundViewer()


def visible_to(viewer: Viewer | None) -> ColumnElement[bool]:
    """A WHERE clause on ``Status``: the statuses ``viewer`` (None: anonymous) may see."""
    public = and_(Status.published.is_(True), Status.visibility.in_(("public", "unlisted")))
    if viewer is None:
        return and_(public, not_suspended_author())
    follows_author = exists().where(Follow.account_id == viewer.id,
                                    Follow.target_account_id == Status.account_id)
    mentioned = exists().where(Mention.status_id == Status.id, Mention.account_id == viewer.id)
    return or_(
        Status.account_id == viewer.id,
        and_(
            or_(
                public,
                and_(Status.published.is_(True), Status.visibility == "private", follows_author),
                and_(Status.published.is_(True), Status.visibility.in_(("private", "direct")),
                     mentioned),
            ),
            not_(blocked_by_author(viewer.id, Status.account_id)),
            not_suspended_author(),
        ),
    )


async def limited_account_ids(session: AsyncSession, viewer: Account | None) -> list[int]:
    """Accounts whose posts public lists (browse) leave out for ``viewer``: silenced ones
    it does not follow, suspended ones (``server.services.moderation``), and those its
    timelines leave out — blocked either way, muted, on a domain it blocks
    (``server.services.blocks.hidden_accounts``). One query. Their domains' blocks are
    :func:`limited_by_domain`'s."""
    query = select(Account.id).where(
        or_(Account.silenced_at.is_not(None), Account.suspended_at.is_not(None)))
    if viewer is not None:
        followed = select(Follow.target_account_id).where(Follow.account_id == viewer.id)
        query = query.where(or_(Account.suspended_at.is_not(None), Account.id.not_in(followed)))
        query = select(union(query, hidden_accounts(viewer.id)).subquery().c[0])
    return list(await session.scalars(query))


async def limited_by_domain(session: AsyncSession,
                            viewer: Account | None) -> ColumnElement[bool] | None:
    """A WHERE clause on ``Account``: the accounts public lists (browse) leave out for
    ``viewer`` because of their domain, as the public timelines do
    (``domain_blocks.Hiding``): those of silenced domains it does not follow, of suspended
    ones, and in allowlist mode of every domain not allowed; None when no block or mode
    leaves any out (usually). A clause, not ids: a domain may have thousands of accounts
    stored."""
    hiding = await read_hiding(session)
    limited = hiding.clause()
    if limited is None or viewer is None:
        return limited
    followed = Account.id.in_(
        select(Follow.target_account_id).where(Follow.account_id == viewer.id))
    suspended = hiding.clause(only_suspended=True)
    spared = followed if suspended is None else and_(followed, not_(suspended))
    return and_(limited, not_(spared))


def not_suspended_author() -> ColumnElement[bool]:
    """A suspended account's statuses are seen by nobody (``server.services.moderation``),
    nor, so, are those of an account on a suspended domain: a domain's suspension
    suspends its stored accounts (``domain_blocks.sync_domain_suspensions``)."""
    return Status.account_id.not_in(select(Account.id).where(Account.suspended_at.is_not(None)))


def only_visible(query: Select[Any], viewer: Account | None) -> Select[Any]:
    return query.where(visible_to(viewer))


async def can_see(session: AsyncSession, status: Status, viewer: Account | None) -> bool:
    found = await session.scalar(
        select(true()).where(Status.id == status.id, visible_to(viewer)))
    return bool(found)


