"""Inbound ``Reject`` of one of our Follows: declined, or a follower removed.

The object is our Follow, found as for ``Accept`` (:mod:`federation.inbox.follow_lookup`).
The follows service drops the pending request or the established follow, with counters.

What it must never do: reject a follow on someone else's behalf (the Follow's object must
be the Reject's actor).
"""

from __future__ import annotations

from federation.inbox.base import Ignored, InboxContext
from federation.inbox.follow_lookup import our_follow_request
from server.services import follows


async def handle(inbox: InboxContext) -> str:
    requester = await our_follow_request(inbox)
    if requester is None:
        raise Ignored("no follow of ours to reject")
    if await follows.reject_follow(inbox.session, requester, inbox.actor):
        return f"{inbox.actor.uri} rejected {requester.username}'s follow"
    return f"{requester.username} did not follow {inbox.actor.uri}"
