"""Small lookups the inbox handlers share: local accounts by uri, embedded activities.

Why it exists: Follow, Accept, Reject, Undo and Block all name a local actor by uri or
carry another activity inside them (an Accept's Follow, an Undo's Like); reading those the
same way everywhere keeps each handler to its one decision.

What it must never do: fetch anything, or trust an embedded activity's claims beyond the
ids it names (callers check that its actor is who they expect). An embedded activity may
come without an id (:data:`federation.parse.ACTIVITIES_WITH_ANONYMOUS_OBJECT`); its actor
and object are all there is to match it by.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.parse import RemoteActivity, first_id
from server.models import Account


async def local_account_by_uri(session: AsyncSession, uri: str | None) -> Account | None:
    """The local account whose actor id is ``uri``; None for anything else."""
    if not uri:
        return None
    return await session.scalar(select(Account).where(Account.uri == uri, Account.domain == ""))


@dataclass(frozen=True)
class EmbeddedActivity:
    """An activity embedded as another's object (an Undo's Like, an Accept's Follow), read
    leniently: each part None when absent or invalid — ``id`` too, which some servers
    leave out."""

    id: str | None
    type: str | None
    actor: str | None
    object: str | None


def embedded_activity(activity: RemoteActivity) -> EmbeddedActivity | None:
    """``activity``'s embedded object as an activity; None when the object is only an id."""
    embedded = activity.embedded_object
    if embedded is None:
        return None
    actor, object_ = embedded_ids(activity)
    return EmbeddedActivity(id=first_id(embedded.get("id")), type=embedded_type(activity),
                            actor=actor, object=object_)


def embedded_type(activity: RemoteActivity) -> str | None:
    """The type of the embedded object, if any (a list of types: its first string)."""
    embedded = activity.embedded_object
    if embedded is None:
        return None
    kind = embedded.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if isinstance(k, str)), None)
    return kind if isinstance(kind, str) else None


def embedded_ids(activity: RemoteActivity) -> tuple[str | None, str | None]:
    """(actor, object) ids of the embedded object, read leniently (some servers embed a
    Follow without an id)."""
    embedded = activity.embedded_object
    if embedded is None:
        return None, None
    return first_id(embedded.get("actor")), first_id(embedded.get("object"))
