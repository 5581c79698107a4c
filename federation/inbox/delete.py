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
  back. A forwarded Delete (signed by someone else) is applied only when the object's
  own server, asked by our instance actor, says it is gone: **410**, or a served
  ``Tombstone``. A **404** is believed only for a stored status that was public or
  unlisted — a followers-only or direct post is not served to our instance actor at
  all, so its 404 (like any 401/403) proves nothing, and believing it would let any
  server delete anyone's private posts. Anything else is rejected.

What it must never do: delete a local account or status, delete someone else's status, or
believe a forwarded Delete without asking the origin — nor take "not served to us" for
"deleted".
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation import notes
from federation.actors import ActorGone, ActorNotFound
from federation.http import RemoteStatusError
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
from server.models import Account, Status
from server.services.moderation import remove_what_it_did

# Visibilities whose statuses the origin serves to anyone: only for these is a 404 a deletion.
PUBLICLY_FETCHABLE = frozenset({"public", "unlisted"})


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
    """Return when ``uri``'s origin confirms the deletion; raise Rejected otherwise."""
    try:
        document = await fetch_object(inbox.fed, uri, session=inbox.session)
    except ObjectGone:
        return
    except ObjectNotFound as exc:
        code = not_found_status(exc)
        if code in (404, None) and await _was_public(inbox.session, uri):
            return
        raise Rejected(f"forwarded Delete of {uri}: its server answers "
                       f"{code or 'not found'}, which does not prove a deletion of a "
                       f"status that is not public (or not stored)") from None
    except ObjectUnavailable:
        raise  # ask again later
    except ObjectRefused as exc:
        raise Rejected(f"forwarded Delete of {uri} cannot be checked: {exc}") from None
    if document.get("type") != "Tombstone":
        raise Rejected(f"forwarded Delete of {uri}, which its server still serves")


def not_found_status(exc: ObjectNotFound) -> int | None:
    """The HTTP status behind ``exc`` (401, 403 or 404), None when it cannot be told."""
    code = getattr(exc, "status_code", None)
    if isinstance(code, int):
        return code
    cause = exc.__cause__
    return cause.status_code if isinstance(cause, RemoteStatusError) else None


async def _was_public(session: AsyncSession, uri: str) -> bool:
    """Whether ``uri`` is a stored status that anyone (our instance actor too) could fetch."""
    visibility = await session.scalar(select(Status.visibility).where(Status.uri == uri))
    return visibility in PUBLICLY_FETCHABLE


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
    relations, liked, own = await remove_what_it_did(session, account)
    await session.execute(delete(Account).where(Account.id == account_id)
                          .execution_options(synchronize_session=False))
    return f"{relations} relations, {liked} favourites, {own} statuses"
