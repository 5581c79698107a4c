"""Inbound ``Move``: a remote account moved to another one; its local followers follow.

``object`` is the old account (it must be the Move's actor: one moves only oneself),
``target`` the new one. The target is refetched from its own origin — or, when it is an
account of this server (an artist arriving here), read from the database — and must list
the old account in ``alsoKnownAs`` (the new account's owner agreed to the move); then the old
account is marked as moved (``moved_to_account_id``), and each local follower of the old
account follows the new one and unfollows the old (through the follows service, which
sends the Follow and the Undo), as Mastodon's MoveWorker does.

What it must never do: move anyone on the old account's word alone (a local target's
aliases are the ones its owner set in the studio), or to an account on a suspended domain
(refused before anything is fetched or unfollowed).
"""

from __future__ import annotations

from sqlalchemy import select

from federation.actors import ActorError, ActorUnavailable
from federation.domains import is_suspended
from federation.inbox.base import InboxContext, Rejected
from server.models import Account, Follow
from server.services import follows
from server.services.errors import ServiceError


async def handle(inbox: InboxContext) -> str:
    activity = inbox.activity
    origin = inbox.actor
    if activity.object_id != activity.actor:
        raise Rejected("an actor may only move itself")
    if not activity.target or activity.target == origin.uri:
        raise Rejected("a Move needs a target other than the actor")
    if await is_suspended(inbox.session, activity.target):
        raise Rejected(f"the move's target {activity.target} is on a suspended domain")
    fetched: Account | None = await inbox.session.scalar(select(Account).where(
        Account.uri == activity.target, Account.domain == ""))
    if fetched is None:
        try:
            fetched = await inbox.fed.fetcher.fetch_actor(activity.target, refresh=True)
        except ActorUnavailable:
            raise
        except ActorError as exc:
            raise Rejected(f"the move's target may not be used: {exc}") from None
    if origin.uri not in (fetched.also_known_as or []):
        raise Rejected(f"{activity.target} does not list {origin.uri} in alsoKnownAs")
    session = inbox.session
    target = await session.get(Account, fetched.id, populate_existing=True)
    if target is None:
        raise Rejected("the move's target was removed meanwhile")
    followers = list(await session.scalars(
        select(Account).join(Follow, Follow.account_id == Account.id).where(
            Follow.target_account_id == origin.id, Account.domain == "")))
    moved = 0
    for follower in followers:
        try:
            await follows.follow(session, follower, target.id)
        except ServiceError:
            continue  # cannot follow the new account: keep following the old one
        await follows.unfollow(session, follower, origin.id)
        moved += 1
    origin.moved_to_account_id = target.id
    return f"moved to {target.uri}; {moved} of {len(followers)} local followers moved"
