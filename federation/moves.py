"""The ``Move`` Easel sends when a local artist moves to another account.

Why it exists: :func:`server.services.moves.move_to` records the move (after checking the
new account lists the old one in ``alsoKnownAs``); this builder turns that record into the
``Move`` every server with a follower of the old account receives — Mastodon, GoToSocial and
Easel (:mod:`federation.inbox.move`) then move those followers to the new account.

What it must never do: send a Move the target has not agreed to (the service checks it),
or one for a remote account.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from federation.context import FederationContext
from federation.outbox import Outgoing, builds
from federation.serialize import move_activity
from server.models import Account, Activity


@builds("Move", "Person")
async def build_move(fed: FederationContext, session: AsyncSession, activity: Activity) -> Outgoing | None:
    """The Move of ``activity``'s actor to ``payload["target_id"]``; None when either is gone."""
    actor = await session.get(Account, activity.account_id)
    target_id = activity.payload.get("target_id")
    target = await session.get(Account, target_id) if isinstance(target_id, int) else None
    if actor is None or target is None or not actor.is_local or not actor.followers_url:
        return None
    document = move_activity(activity.uri, actor.uri, target.uri, actor.followers_url)
    return Outgoing(document=document, followers_of=actor)
