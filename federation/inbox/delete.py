"""Inbound ``Delete``: an actor deletes itself, or one of its statuses.

* **The actor itself** (object = the actor's id, or an embedded actor/Tombstone with that
  id): its account row goes, with everything it owned — but through the services first,
  so that no counter of anyone else drifts: follows both ways are severed, its favourites
  taken back, its statuses and boosts deleted one by one (replies and boost counts of
  others' statuses go down), then the row is removed and its cached key forgotten. A
  forwarded Delete of an actor is applied only when the actor's server really says it is
  gone (410/404 when refetched).
* **Anything else** is a status uri: :func:`federation.notes.delete_remote_status` deletes
  it when the actor wrote it and leaves a Tombstone, so a late Create does not bring it
  back. A forwarded Delete is applied only when the object's own server says it is gone.

What it must never do: delete a local account or status, delete someone else's status, or
believe a forwarded Delete without asking the origin.
"""

from __future__ import annotations

from sqlalchemy import delete, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from federation import notes
from federation.actors import ActorGone, ActorNotFound
from federation.inbox.base import InboxContext, Rejected
from federation.inbox.lookups import embedded_type
from federation.inbox.routes import signer_keys
from federation.objects import (
    ObjectGone,
    ObjectNotFound,
    ObjectRefused,
    ObjectUnavailable,
    fetch_object,
)
from federation.parse import ACTOR_TYPES
from server.models import Account, Favourite, Follow, FollowRequest, Status
from server.services import follows, statuses


async def handle(inbox: InboxContext) -> str:
    uri = inbox.activity.object_id or ""
    if uri == inbox.activity.actor:
        return await _delete_actor(inbox)
    if embedded_type(inbox.activity) in ACTOR_TYPES:
        raise Rejected("an actor may only delete itself")
    if inbox.forwarded:
        await _require_gone_at_origin(inbox, uri)
    if await notes.delete_remote_status(inbox.fed, inbox.session, uri, actor=inbox.actor):
        return f"status {uri} deleted"
    return f"no status {uri} of this actor stored (tombstoned when on its origin)"


async def _require_gone_at_origin(inbox: InboxContext, uri: str) -> None:
    try:
        document = await fetch_object(inbox.fed, uri, session=inbox.session)
    except (ObjectGone, ObjectNotFound):
        return
    except ObjectUnavailable:
        raise  # ask again later
    except ObjectRefused as exc:
        raise Rejected(f"forwarded Delete of {uri} cannot be checked: {exc}") from None
    if document.get("type") != "Tombstone":
        raise Rejected(f"forwarded Delete of {uri}, which its server still serves")


async def _delete_actor(inbox: InboxContext) -> str:
    actor = inbox.actor
    uri = actor.uri
    if inbox.forwarded:
        try:
            await inbox.fed.fetcher.fetch_actor(uri, refresh=True)
        except (ActorGone, ActorNotFound):
            pass
        else:
            raise Rejected(f"forwarded Delete of {uri}, which its server still serves")
    counts = await remove_remote_account(inbox.session, actor)
    signer_keys(inbox.fed).forget(uri)
    return f"account {uri} deleted ({counts})"


async def remove_remote_account(session: AsyncSession, account: Account) -> str:
    """Remove a remote account and what it owned, keeping others' counters right; a
    summary of what went. Commits along the way (the services do)."""
    if account.is_local:
        raise Rejected("a local account is never deleted by federation")
    account_id = account.id
    related = list(await session.scalars(union(
        select(Follow.target_account_id).where(Follow.account_id == account_id),
        select(Follow.account_id).where(Follow.target_account_id == account_id),
        select(FollowRequest.target_account_id).where(FollowRequest.account_id == account_id),
        select(FollowRequest.account_id).where(FollowRequest.target_account_id == account_id),
    )))
    for other_id in related:
        other = await session.get(Account, other_id)
        if other is not None:
            await follows.sever(session, account, other)
    liked = list(await session.scalars(
        select(Favourite.status_id).where(Favourite.account_id == account_id)))
    for status_id in liked:
        await statuses.unfavourite(session, account, status_id)
    # Boosts first (their originals may be among its own statuses), then the rest.
    own = list(await session.scalars(select(Status).where(Status.account_id == account_id)
                                     .order_by(Status.reblog_of_id.is_(None), Status.id.desc())))
    for status in own:
        await statuses.delete_status(session, status)
    await session.execute(delete(Account).where(Account.id == account_id)
                          .execution_options(synchronize_session=False))
    return f"{len(related)} relations, {len(liked)} favourites, {len(own)} statuses"
