"""Inbound ``Undo``: a remote actor takes back a Follow, Like, Announce or Block.

The undone activity is embedded (Mastodon, Misskey, GoToSocial) or named by id. It is
looked up only among what the Undo's actor did, so nobody can undo another's activity:
by its id (the actor's follow or request, favourite or boost with that uri), else —
embedded, with an id we do not know or with no id at all, as some servers send it — by
its object (the actor's follow of that local account, favourite or boost of that status).
An embedded activity naming another actor is rejected; one without an id must name the
Undo's actor, since its actor and object are all it can be matched by. Then, through the
services, with counters:

* Follow → the follow (or pending request) is removed;
* Like → the favourite is removed;
* Announce → the boost status is removed;
* Block → nothing is stored for a remote block: ignored.

What it must never do: undo anything the Undo's actor did not do, match a row by a missing
id, or fail on an Undo of something unknown (ignored: it was never stored, or is already
undone).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from sqlalchemy import select

from federation import notes
from federation.inbox.base import Ignored, InboxContext, Rejected
from federation.inbox.lookups import EmbeddedActivity, embedded_activity, local_account_by_uri
from server.models import Account, Favourite, Follow, FollowRequest, Status
from server.services import follows, statuses
from server.services.errors import ServiceError


async def handle(inbox: InboxContext) -> str:
    inner = embedded_activity(inbox.activity)
    if inner is not None and inner.actor != inbox.activity.actor \
            and (inner.actor is not None or inner.id is None):
        raise Rejected("the undone activity belongs to another actor")
    kind = inner.type if inner is not None else None
    if kind == "Block":
        raise Ignored("remote blocks are not stored: nothing to undo")
    if kind in (None, "Follow") and (target := await _followed(inbox, inner)) is not None:
        await follows.remove_follow(inbox.session, inbox.actor, target)
        return f"follow of {target.username} undone"
    if kind in (None, "Like") and (status_id := await _favourited(inbox, inner)) is not None:
        await _quietly(statuses.unfavourite(inbox.session, inbox.actor, status_id))
        return f"favourite of {status_id} undone"
    if kind in (None, "Announce") and (original_id := await _boosted(inbox, inner)) is not None:
        await _quietly(statuses.unreblog(inbox.session, inbox.actor, original_id))
        return f"boost of {original_id} undone"
    raise Ignored(f"nothing known to undo for {inbox.activity.object_id or 'an activity without id'}")


async def _quietly(change: Awaitable[Any]) -> None:
    """Run a service call whose only failure is "not there (any more)"."""
    try:
        await change
    except ServiceError as exc:
        raise Ignored(f"nothing to undo: {exc}") from None


async def _followed(inbox: InboxContext, inner: EmbeddedActivity | None) -> Account | None:
    """The local account the undone Follow targets: by the Follow's uri among the actor's
    follows and requests, else (embedded) by its object."""
    session = inbox.session
    undone_id = inbox.activity.object_id
    for model in (Follow, FollowRequest):
        if not undone_id:
            break
        target = await session.scalar(
            select(Account).join(model, model.target_account_id == Account.id).where(
                model.uri == undone_id, model.account_id == inbox.actor.id,
                Account.domain == ""))
        if target is not None:
            return target
    if inner is None:
        return None
    target = await local_account_by_uri(session, inner.object)
    if target is None:
        return None
    for model in (Follow, FollowRequest):
        if await session.scalar(select(model.id).where(
                model.account_id == inbox.actor.id, model.target_account_id == target.id)):
            return target
    return None


async def _favourited(inbox: InboxContext, inner: EmbeddedActivity | None) -> int | None:
    """The status id of the undone Like: by its uri among the actor's favourites, else
    (embedded) by the liked status's uri."""
    session = inbox.session
    undone_id = inbox.activity.object_id
    if undone_id:
        status_id = await session.scalar(select(Favourite.status_id).where(
            Favourite.uri == undone_id, Favourite.account_id == inbox.actor.id))
        if status_id is not None:
            return int(status_id)
    if inner is None or not inner.object:
        return None
    status = await notes.find_status_by_uri(session, inner.object)
    if status is None:
        return None
    liked = await session.scalar(select(Favourite.id).where(
        Favourite.status_id == status.id, Favourite.account_id == inbox.actor.id))
    return status.id if liked is not None else None


async def _boosted(inbox: InboxContext, inner: EmbeddedActivity | None) -> int | None:
    """The id of the status whose boost is undone: the actor's boost with the Announce's
    uri, else (embedded) the actor's boost of the announced status's uri."""
    session = inbox.session
    undone_id = inbox.activity.object_id
    if undone_id:
        original_id = await session.scalar(select(Status.reblog_of_id).where(
            Status.uri == undone_id, Status.account_id == inbox.actor.id,
            Status.reblog_of_id.is_not(None)))
        if original_id is not None:
            return int(original_id)
    if inner is None or not inner.object:
        return None
    original = await notes.find_status_by_uri(session, inner.object)
    if original is None:
        return None
    boost = await session.scalar(select(Status.id).where(
        Status.reblog_of_id == original.id, Status.account_id == inbox.actor.id))
    return original.id if boost is not None else None
