"""What every inbox handler gets and may raise.

A handler is ``async def handle(inbox: InboxContext) -> str``: it turns one verified,
stored activity into domain changes through services (and :mod:`federation.notes`), in
``inbox.session``'s transaction, and returns a short note for the inbox item's record.
It is idempotent: the same activity processed twice changes nothing the second time.

It raises :class:`Ignored` when there is nothing to do (an Undo of something unknown, an
activity about a status we never saw) and :class:`Rejected` when the activity may not be
applied (origin rule, not addressed to us, the actor may not do that). Both are recorded
on the item and end the job; anything else is a failure the job retries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from federation.context import FederationContext
from federation.parse import RemoteActivity
from server.models import Account, InboxItem


class InboxOutcomeError(Exception):
    """Ends processing with a recorded outcome; ``str(exc)`` is the note."""


class Ignored(InboxOutcomeError):
    """Nothing to do; the item is recorded as ignored."""


class Rejected(InboxOutcomeError):
    """The activity may not be applied; the item is recorded as rejected."""


@dataclass
class InboxContext:
    fed: FederationContext
    session: AsyncSession
    item: InboxItem
    # The activity's actor, fetched or cached; for a forwarded activity the actor named
    # in it (its object is refetched from its origin by the handler, never trusted).
    actor: Account
    activity: RemoteActivity
    body: dict[str, Any]

    @property
    def forwarded(self) -> bool:
        return self.item.forwarded


Handler = Callable[[InboxContext], Awaitable[str]]
