"""Inbound ``Follow``: a remote actor asks to follow a local account.

The object is a local actor (by id, or embedded). An unlocked account is followed at once
(and answers with an ``Accept``), a locked one gets a follow request to approve; either
way its owner is notified. All of that is the follows service's
(``server.services.follows.remote_follow``); the Follow's id is kept so a later ``Undo``
or our ``Accept`` can name it.

What it must never do: let anyone follow the instance actor (the service answers with a
``Reject``, which is recorded, so the item is "processed") or a remote account through us,
or follow twice (a repeated Follow changes nothing but its stored id, and is accepted
again).
"""

from __future__ import annotations

from federation.inbox.base import Ignored, InboxContext
from federation.inbox.lookups import local_account_by_uri
from server.services import follows


async def handle(inbox: InboxContext) -> str:
    target = await local_account_by_uri(inbox.session, inbox.activity.object_id)
    if target is None:
        raise Ignored(f"{inbox.activity.object_id} is not a local account")
    result = await follows.remote_follow(inbox.session, inbox.actor, target,
                                         uri=inbox.activity.id)
    return f"follow of {target.username}: {result}"
