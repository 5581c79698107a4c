"""Finding the local follower an ``Accept`` or ``Reject`` is about.

Why it exists: both name our Follow the same ways (its id, or the Follow embedded, with
or without an id we stored), and both must only ever concern a follow *of the actor who
answers*.

What it must never do: return a follower whose follow targets anyone but the answering
actor, or a remote account.
"""

from __future__ import annotations

from sqlalchemy import or_, select

from federation.inbox.base import InboxContext
from federation.inbox.lookups import embedded_ids, local_account_by_uri
from server.models import Account, Follow, FollowRequest


async def our_follow_request(inbox: InboxContext) -> Account | None:
    """The local account whose Follow of ``inbox.actor`` this Accept/Reject answers."""
    session = inbox.session
    follow_id = inbox.activity.object_id
    if follow_id:
        for model in (FollowRequest, Follow):
            account = await session.scalar(
                select(Account).join(model, model.account_id == Account.id).where(
                    model.uri == follow_id, model.target_account_id == inbox.actor.id,
                    Account.domain == ""))
            if account is not None:
                return account
    follower_uri, followed_uri = embedded_ids(inbox.activity)
    if followed_uri != inbox.actor.uri:
        return None
    follower = await local_account_by_uri(session, follower_uri)
    if follower is None:
        return None
    pending = await session.scalar(select(Account.id).where(or_(
        Account.id.in_(select(FollowRequest.account_id).where(
            FollowRequest.account_id == follower.id,
            FollowRequest.target_account_id == inbox.actor.id)),
        Account.id.in_(select(Follow.account_id).where(
            Follow.account_id == follower.id, Follow.target_account_id == inbox.actor.id)),
    )))
    return follower if pending is not None else None
