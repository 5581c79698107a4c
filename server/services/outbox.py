"""Recording what local actors did, for federation to send.

Why it exists: every service that changes something other servers should hear about
(a post, a favourite, a follow, a profile edit) says so here, in its own transaction, by
adding an :class:`~server.models.Activity` row and a ``federate`` job naming it. The job
(``federation/outbox.py``) builds the document and the deliveries after the commit, so a
web request never waits on another server, and a change that rolls back sends nothing.

What it must never do: import ``federation`` (the job is enqueued by name), record an
activity for a remote actor (inbound changes are theirs to announce, not ours), or put
anything in ``payload`` the job can read from the database later, except what deleting
the change itself destroys (the audience of a deleted status, the uri of an undone like).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import new_id
from server.models import Account, Activity
from server.queue.jobs import enqueue
from server.queue.kinds import kind_named

FEDERATE_JOB = "federate"


def activity_uri(actor: Account, type_: str, activity_id: int) -> str:
    """A fragment id under the actor, like Mastodon's ``…/users/alice#likes/123``."""
    return f"{actor.uri}#{type_.lower()}/{activity_id}"


async def record_activity(
    session: AsyncSession,
    actor: Account,
    type_: str,
    *,
    object_uri: str = "",
    uri: str | None = None,
    **payload: Any,
) -> Activity | None:
    """Record that local ``actor`` did ``type_`` and enqueue its federation.

    ``uri`` is the activity id when the caller already has one (a Follow's id stored on
    the request, a Like's on the favourite); otherwise one is made. Returns None, doing
    nothing, when ``actor`` is not local. The caller commits.
    """
    if not actor.is_local:
        return None
    activity_id = new_id()
    activity = Activity(
        id=activity_id,
        uri=uri or activity_uri(actor, type_, activity_id),
        account_id=actor.id,
        type=type_,
        object_uri=object_uri,
        payload=payload,
    )
    session.add(activity)
    await session.flush()
    await enqueue(session, kind_named(FEDERATE_JOB), str(activity.id))
    return activity
