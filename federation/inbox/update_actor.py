"""Inbound ``Update`` of an actor (Person, Service, …): a profile edit or a new key.

The embedded actor is never trusted: the actor is refetched from its own origin
(``ActorFetcher.fetch_actor(uri, refresh=True)``), which stores the new profile and key,
and the inbox's cached key for it is dropped so the next delivery uses the new one.

What it must never do: let an actor update anyone but itself, or store the body as sent.
"""

from __future__ import annotations

from federation.actors import ActorGone, ActorNotFound, ActorRefused
from federation.inbox.base import Ignored, InboxContext, Rejected
from federation.inbox.routes import signer_keys


async def handle(inbox: InboxContext) -> str:
    uri = inbox.activity.object_id
    if uri != inbox.activity.actor:
        raise Rejected("an actor may only update itself")
    signer_keys(inbox.fed).forget(uri)
    try:
        await inbox.fed.fetcher.fetch_actor(uri, refresh=True)
    except (ActorGone, ActorNotFound) as exc:
        raise Ignored(f"the actor is no longer there: {exc}") from None
    except ActorRefused as exc:
        raise Rejected(f"the refetched actor may not be used: {exc}") from None
    return f"actor {uri} refetched"
