"""Inbound ``Block``: a remote actor blocks a local account.

Nothing about the block itself is stored (Easel has no record of who blocks whom on other
servers); what changes is that the two stop following each other, both ways, with every
counter kept right (``server.services.follows.sever``). The blocked account is not told.

What it must never do: act on a Block of anyone but a local account.
"""

from __future__ import annotations

from federation.inbox.base import Ignored, InboxContext
from federation.inbox.lookups import local_account_by_uri
from server.services import follows


async def handle(inbox: InboxContext) -> str:
    target = await local_account_by_uri(inbox.session, inbox.activity.object_id)
    if target is None:
        raise Ignored(f"{inbox.activity.object_id} is not a local account")
    await follows.sever(inbox.session, inbox.actor, target)
    return f"follows between {inbox.actor.uri} and {target.username} severed"
