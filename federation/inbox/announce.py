"""Inbound ``Announce``: a remote actor boosts a status (ours, or anyone's).

The boosted status is resolved by id (:func:`federation.notes.resolve_status`: the stored
one, else fetched from its own origin — an embedded copy is never trusted), then the boost
is stored through the statuses service with the Announce's id as its uri, so an ``Undo``
can find it. Only public and unlisted boosts exist (addressed to ``Public`` in ``to`` or
``cc``); anything else is ignored.

What it must never do: store a boost of a status the actor may not boost (direct, or
someone else's followers-only), or store one twice (a replayed Announce finds its uri).
"""

from __future__ import annotations

from sqlalchemy import select

from federation import notes
from federation.content_types import PUBLIC
from federation.inbox.base import Ignored, InboxContext, Rejected
from federation.parse import PUBLIC_ADDRESSES
from server.models import Status
from server.services import statuses
from server.services.errors import ServiceError


def boost_visibility(to: tuple[str, ...], cc: tuple[str, ...]) -> str | None:
    """public (Public in ``to``), unlisted (in ``cc``), or None for anything else."""
    if any(address in PUBLIC_ADDRESSES for address in to):
        return "public"
    if any(address in PUBLIC_ADDRESSES for address in cc):
        return "unlisted"
    return None


async def handle(inbox: InboxContext) -> str:
    activity = inbox.activity
    visibility = boost_visibility(activity.to, activity.cc)
    if visibility is None:
        raise Ignored(f"only public boosts are stored (addressed to {PUBLIC})")
    known = await inbox.session.scalar(select(Status.id).where(
        Status.uri == activity.id, Status.account_id == inbox.actor.id))
    if known is not None:
        return f"boost {known} already stored"
    try:
        original = await notes.resolve_status(inbox.fed, inbox.session, activity.object_id or "")
    except notes.NoteUnavailable:
        raise  # its server may answer later: the job retries
    except notes.NoteError as exc:
        raise Rejected(f"the boosted status may not be used: {exc}") from None
    try:
        boost = await statuses.reblog(inbox.session, inbox.fed.settings, inbox.actor,
                                      original.id, visibility=visibility, uri=activity.id)
    except ServiceError as exc:
        raise Rejected(f"may not boost {original.uri}: {exc}") from None
    return f"boost {boost.id} of {original.id}"
