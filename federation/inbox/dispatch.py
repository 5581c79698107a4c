"""The dispatch table: (activity type, object kind) → the one handler module for it.

Why it exists: so anyone can see at a glance what Easel does with each activity it
accepts, and so each handler stays a small module of its own (Mastodon's
``app/lib/activitypub/activity/*.rb``). The object kind is read from the activity as
sent: ``note`` for an embedded Note/Article/Page/Question/…, ``actor`` for an embedded
Person/Service/…, the embedded type otherwise, and ``id`` when the object is only an id
(an ``Update`` naming its own actor by id is an actor update). ``*`` matches any kind.

Handler modules are imported when first used, so a handler's dependencies (notes,
reports) load only in processes that process inbox items.

What it must never do: decide anything beyond routing. A type with no row is "unknown":
the caller records the item as ignored, never as an error.
"""

from __future__ import annotations

import importlib
from typing import cast

from federation.inbox.base import Handler
from federation.parse import ACTOR_TYPES, NOTE_TYPES, RemoteActivity

ANY = "*"

# (activity type, object kind, handler module in federation.inbox)
TABLE: tuple[tuple[str, str, str], ...] = (
    ("Create", "note", "create"),          # notes: H3's federation.notes
    ("Create", "id", "create"),
    ("Update", "note", "update_note"),
    ("Update", "actor", "update_actor"),   # refetched from its origin, never the body
    ("Update", "id", "update_note"),       # an id that is not the actor's: a note
    ("Delete", ANY, "delete"),             # the actor itself, or one of its objects
    ("Follow", ANY, "follow"),
    ("Accept", ANY, "accept"),
    ("Reject", ANY, "reject"),
    ("Undo", ANY, "undo"),                 # Follow, Like, Announce, Block
    ("Like", ANY, "like"),
    ("Announce", ANY, "announce"),
    ("Block", ANY, "block"),
    ("Move", ANY, "move"),
    ("Flag", ANY, "flag"),                 # reports
    ("Add", ANY, "featured"),              # pins and featured hashtags
    ("Remove", ANY, "featured"),
)


def object_kind(activity: RemoteActivity) -> str:
    """``note``, ``actor``, the embedded object's type, or ``id``."""
    embedded = activity.embedded_object
    if embedded is None:
        if activity.type == "Update" and activity.object_id == activity.actor:
            return "actor"
        return "id"
    kind = embedded.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if isinstance(k, str)), None)
    if not isinstance(kind, str):
        return "id"
    if kind in NOTE_TYPES:
        return "note"
    if kind in ACTOR_TYPES:
        return "actor"
    return kind


def handler_module(activity: RemoteActivity) -> str | None:
    """The module name (``federation.inbox.…``) that handles ``activity``; None if unknown."""
    kind = object_kind(activity)
    for type_, object_kind_, module in TABLE:
        if type_ == activity.type and object_kind_ in (ANY, kind):
            return f"federation.inbox.{module}"
    return None


def handler_for(activity: RemoteActivity) -> Handler | None:
    """The ``handle`` function for ``activity``; None when Easel does not handle it.

    A listed module that cannot be imported is a broken installation, not an unknown
    activity: the ImportError escapes (and the job retries once it is fixed).
    """
    name = handler_module(activity)
    if name is None:
        return None
    return cast(Handler, importlib.import_module(name).handle)
