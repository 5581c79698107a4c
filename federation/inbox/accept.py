"""Inbound ``Accept`` of one of our Follows: the remote account took our follower.

The object is our Follow, by id or embedded. It is found by its id among our pending
requests (and follows, for a repeated Accept) to the accepting actor, or — when the
embedded Follow's id is not one we know — by its actor (a local account) and object (the
accepting actor). The follows service turns the request into a follow.

What it must never do: accept a follow on someone else's behalf: only the followed
account itself may accept (the request's target must be the Accept's actor).
"""

from __future__ import annotations

from federation.inbox.base import Ignored, InboxContext
from federation.inbox.follow_lookup import our_follow_request
from server.services import follows


async def handle(inbox: InboxContext) -> str:
    requester = await our_follow_request(inbox)
    if requester is None:
        raise Ignored("no follow of ours to accept")
    if await follows.accept_follow(inbox.session, requester, inbox.actor):
        return f"{requester.username} now follows {inbox.actor.uri}"
    return f"{requester.username} already followed {inbox.actor.uri}"
