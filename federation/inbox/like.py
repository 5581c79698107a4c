"""Inbound ``Like``: a remote actor favourites one of our statuses.

Only local statuses matter (as in Mastodon: a like of someone else's status is theirs to
count); the status is found by its uri (:func:`federation.notes.find_status_by_uri`) and
favourited through the statuses service with the Like's id, which counts it, notifies the
author once, and lets a later ``Undo`` find it.

What it must never do: fetch anything, or favourite a status the actor may not see.
"""

from __future__ import annotations

from federation import notes
from federation.inbox.base import Ignored, InboxContext, Rejected
from server.services import statuses
from server.services.errors import ServiceError


async def handle(inbox: InboxContext) -> str:
    uri = inbox.activity.object_id or ""
    status = await notes.find_status_by_uri(inbox.session, uri)
    if status is None or not status.local:
        raise Ignored(f"{uri} is not a local status")
    try:
        await statuses.favourite(inbox.session, inbox.actor, status.id, uri=inbox.activity.id)
    except ServiceError as exc:
        raise Rejected(f"may not favourite {uri}: {exc}") from None
    return f"favourited {status.id}"
