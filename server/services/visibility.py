"""Who may see which status: the one rule every read path applies.

- The author sees all their own statuses, published or not.
- Nobody sees the statuses of an author who blocks them.
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
    public = and_(Status.published.is_(True), Status.visibility.in_(("public", "unlisted")),
                  not_suspended_author())
    if viewer is None:
        return public
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
    (``server.services.blocks.hidden_accounts``). One query."""
    query = select(Account.id).where(
        or_(Account.silenced_at.is_not(None), Account.suspended_at.is_not(None)))
    if viewer is not None:
        followed = select(Follow.target_account_id).where(Follow.account_id == viewer.id)
        query = query.where(or_(Account.suspended_at.is_not(None), Account.id.not_in(followed)))
        query = select(union(query, hidden_accounts(viewer.id)).subquery().c[0])
    return list(await session.scalars(query))


def not_suspended_author() -> ColumnElement[bool]:
    """A suspended account's statuses are seen by nobody (``server.services.moderation``)."""
    return Status.account_id.not_in(select(Account.id).where(Account.suspended_at.is_not(None)))


def only_visible(query: Select[Any], viewer: Account | None) -> Select[Any]:
    return query.where(visible_to(viewer))


async def can_see(session: AsyncSession, status: Status, viewer: Account | None) -> bool:
    found = await session.scalar(
        select(true()).where(Status.id == status.id, visible_to(viewer)))
    return bool(found)


