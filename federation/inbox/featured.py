"""Inbound ``Add`` and ``Remove``: a remote account pins or unpins one of its statuses, or
features or stops featuring a hashtag, on its profile.

Both go to the actor's own ``featured`` collection (Mastodon sends a featured hashtag
there too, and reads it from there): the ``target`` must be the ``featured`` URL its actor
document gave, else the activity is about something Easel does not keep and is ignored.
A ``Hashtag`` object is a featured tag; anything else names a status, which must be one
of the actor's own that Easel already holds (an unknown one is not fetched: the profile
shows what Easel has seen).

What it must never do: let an actor pin someone else's status, change a local account's
profile, or believe a forwarded Add/Remove (signed by someone else than its actor).
"""

from __future__ import annotations

from sqlalchemy import select

from federation.inbox.base import Ignored, InboxContext, Rejected
from server.models import Status
from server.services.errors import ValidationFailed
from server.services.featured_tags import record_remote_featured_tag
from server.services.portfolio import record_remote_pin


async def handle(inbox: InboxContext) -> str:
    activity, actor = inbox.activity, inbox.actor
    adding = activity.type == "Add"
    if inbox.forwarded:
        raise Rejected(f"a forwarded {activity.type} is not believed")
    if not actor.featured_url or activity.target != actor.featured_url:
        raise Ignored(f"{activity.type} to {activity.target}, not {actor.uri}'s featured collection")
    embedded = activity.embedded_object
    try:
        if embedded is not None and embedded.get("type") == "Hashtag":
            name = embedded.get("name")
            if not isinstance(name, str):
                raise Rejected("a Hashtag without a name")
            changed = await record_remote_featured_tag(inbox.session, actor, name.lstrip("#"),
                                                       featured=adding)
            what = f"hashtag {name}"
        else:
            status = await inbox.session.scalar(select(Status).where(
                Status.uri == activity.object_id)) if activity.object_id else None
            if status is None:
                raise Ignored(f"{activity.object_id} is not a status Easel holds")
            changed = await record_remote_pin(inbox.session, actor, status, pinned=adding)
            what = f"status {status.id}"
    except ValidationFailed as exc:
        raise Rejected(exc.message) from None
    done = ("featured" if adding else "no longer featured") if changed else "unchanged"
    return f"{what} {done} on {actor.uri}'s profile"
