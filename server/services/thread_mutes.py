"""Muted threads: Mastodon's "Mute conversation" (``POST /api/v1/statuses/:id/mute`` and
``/unmute``, its ``ConversationMute``).

Why it exists: someone in a busy thread stops hearing about it without muting anyone.
Easel keeps no conversation id on its statuses (``conversations`` are direct threads
only), so a thread is known by its root: the status reached by following
``in_reply_to_id`` up (at most ``MAX_DEPTH`` steps). Muting stores that root; a status is
in a muted thread when it or one of its ancestors is a muted root, so a parent fetched
later (the root moving up) keeps the mute. Deleting a status of the thread unlinks its
replies (``in_reply_to_id`` becomes NULL): they leave the muted thread, and deleting the
root ends the mute (its row goes with it).

Effects, as Mastodon: ``notify`` creates no notification about a status of a muted
thread for the muter, and the muter sees ``muted: true`` on its statuses. Timelines are
unchanged. Private; never federated. Each check is one recursive query (the walk up is
an indexed primary-key step per ancestor; with no thread muted at all it stops at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Integer, Select, and_, bindparam, exists, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server.models import ConversationMute, Status

# How far up a thread the walk goes (a guard: in_reply_to_id never loops by design).
MAX_DEPTH = 512


def muted_among_query(ids: Callable[[Any], Any], viewer: Any) -> Select[Any]:
    """The ids among ``ids(column)`` whose thread ``viewer`` (an account id or a bound
    parameter) has muted; one recursive query for any number of statuses."""
    seed = (select(Status.id.label("start_id"), Status.id.label("cur"),
                   literal(0, Integer).label("depth"))
            .where(ids(Status.id), exists().where(ConversationMute.account_id == viewer))
            .cte("thread_up", recursive=True))
    parent = aliased(Status)
    up = seed.union_all(
        select(seed.c.start_id, parent.in_reply_to_id, seed.c.depth + 1)
        .join(parent, parent.id == seed.c.cur)
        .where(parent.in_reply_to_id.is_not(None), seed.c.depth < MAX_DEPTH))
    return (select(up.c.start_id)
            .join(ConversationMute, and_(ConversationMute.thread_id == up.c.cur,
                                         ConversationMute.account_id == viewer))
            .distinct())


_ONE = muted_among_query(lambda column: column == bindparam("status_id"), bindparam("viewer"))


async def thread_muted(session: AsyncSession, account_id: int, status_id: int) -> bool:
    """Whether ``account_id`` has muted the thread of status ``status_id``."""
    found = await session.scalar(_ONE.limit(1), {"status_id": status_id, "viewer": account_id})
    return found is not None


async def ancestors(session: AsyncSession, status_id: int) -> list[int]:
    """``status_id`` and the statuses it replies to, up to its thread's root (last)."""
    seed = (select(Status.id.label("cur"), literal(0, Integer).label("depth"))
            .where(Status.id == status_id).cte("thread_path", recursive=True))
    parent = aliased(Status)
    up = seed.union_all(
        select(parent.in_reply_to_id, seed.c.depth + 1)
        .join(parent, parent.id == seed.c.cur)
        .where(parent.in_reply_to_id.is_not(None), seed.c.depth < MAX_DEPTH))
    return [int(i) for i in await session.scalars(select(up.c.cur).order_by(up.c.depth))]

