"""Who may see which status: the one rule every read path applies.

- The author sees all their own statuses, published or not.
- Nobody sees the statuses of an author who blocks them.
- Others see only published statuses, and then: ``public`` and ``unlisted`` by anyone;
  ``private`` by the author's followers; ``direct`` by the accounts it mentions.
A boost is visible when the boost itself is (boosts of private statuses are not allowed).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Account, Follow, Mention, Status
from server.services.blocks import blocked_by_author


def visible_to(viewer: Account | None) -> ColumnElement[bool]:
    """A WHERE clause on ``Status``: the statuses ``viewer`` (None: anonymous) may see."""
    public = and_(Status.published.is_(True), Status.visibility.in_(("public", "unlisted")))
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
        ),
    )


def only_visible(query: Select[Any], viewer: Account | None) -> Select[Any]:
    return query.where(visible_to(viewer))


async def can_see(session: AsyncSession, status: Status, viewer: Account | None) -> bool:
    found = await session.scalar(
        select(true()).where(Status.id == status.id, visible_to(viewer)))
    return bool(found)


