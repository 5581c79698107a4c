"""``Create`` of a Note (or Article, Page, Question, Image, Video, Audio, Event).

Why it exists: this is how other servers' posts arrive. The handler decides only whether
the object may be believed and whether Easel wants it; :mod:`federation.notes` stores it.

* The embedded object is used as sent only when the activity was signed by its actor
  (not forwarded) and the object's id is on the actor's origin. A forwarded activity, an
  object given by id only, or an embedded object from another origin is refetched from
  its own origin (``federation.objects``, DESIGN.md's origin rule), never taken from the
  body.
* The note's ``attributedTo`` must be the activity's actor, and the note must be on the
  actor's origin (Mastodon's ``non_matching_uri_hosts?``); otherwise the activity is
  rejected.
* A uri already stored is a replay: nothing changes. A uri with a ``Tombstone`` (deleted
  before this Create arrived) is ignored, and so is a note no local account has a reason
  to see — nobody here follows its author, it does not reply to a local status (or to one
  of an account followed here), and it addresses no local account (Mastodon's
  ``related_to_local_activity?``).
* Objects that are not notes are ignored. A Note that is a vote on a local poll (a
  ``name``, ``inReplyTo`` the poll, no content) is counted by
  :func:`federation.polls.receive_vote_note`, never stored as a status.

What it must never do: store a body it may not trust, or fail the job for anything but
an unreachable origin (which is retried).
"""

from __future__ import annotations

from typing import Any

from federation.inbox.base import Ignored, InboxContext, Rejected
from federation.notes import (
    NoteRefused,
    find_status_by_uri,
    is_relevant_locally,
    is_tombstoned,
    store_note,
)
from federation.objects import ObjectError, ObjectRefused, ObjectUnavailable, fetch_object
from federation.parse import NOTE_TYPES, ParseError, first_id, parse_note, same_origin
from federation.polls import receive_vote_note


def object_type(document: dict[str, Any]) -> str | None:
    value = document.get("type")
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, str)), None)
    return value if isinstance(value, str) else None


async def trusted_note(inbox: InboxContext) -> dict[str, Any]:
    """The activity's note as its origin says it is: the embedded object when the actor
    signed the activity and the object is on the actor's origin, else refetched from its
    own origin. Checks the object is a note on the actor's origin attributed to the actor."""
    activity, actor = inbox.activity, inbox.actor
    object_id = activity.object_id
    if object_id is None:
        raise Rejected("the activity names no object")
    embedded = activity.embedded_object
    if embedded is not None and object_type(embedded) not in NOTE_TYPES:
        raise Ignored(f"not a note: {object_type(embedded)!r}")
    if embedded is not None and not inbox.forwarded and embedded.get("id") == object_id \
            and same_origin(object_id, actor.uri):
        document = embedded
    else:
        try:
            document = await fetch_object(inbox.fed, object_id, session=inbox.session)
        except ObjectUnavailable:
            raise  # the origin may answer later: the job retries
        except ObjectRefused as exc:
            raise Rejected(f"the object may not be used: {exc}") from None
        except ObjectError as exc:
            raise Ignored(f"the object cannot be had: {exc}") from None
        if object_type(document) not in NOTE_TYPES:
            raise Ignored(f"not a note: {object_type(document)!r}")
    if first_id(document.get("attributedTo")) != actor.uri:
        raise Rejected(f"the note is attributed to {document.get('attributedTo')!r}, "
                       f"not to the actor")
    if not same_origin(document.get("id"), actor.uri):
        raise Rejected(f"the note {document.get('id')!r} is not on the actor's origin")
    return document


async def handle(inbox: InboxContext) -> str:
    document = await trusted_note(inbox)
    # A vote on a local poll is a Note too (a name, a reply, no text): counted, not stored.
    voted = await receive_vote_note(inbox.session, document, inbox.actor)
    if voted is not None:
        return voted
    note_id = str(document.get("id"))
    if await find_status_by_uri(inbox.session, note_id) is not None:
        return "already known"
    if await is_tombstoned(inbox.session, note_id):
        raise Ignored("the note was deleted before its Create arrived")
    try:
        note = parse_note(document, followers_url=inbox.actor.followers_url or None)
    except ParseError as exc:
        raise Rejected(f"not a usable note: {exc.reason}") from None
    if not await is_relevant_locally(inbox.session, note, inbox.actor):
        raise Ignored("no local account follows the author or is addressed")
    try:
        status = await store_note(inbox.fed, inbox.session, document, author=inbox.actor)
    except NoteRefused as exc:
        if exc.reason == "deleted":
            raise Ignored(str(exc)) from None
        raise Rejected(str(exc)) from None
    return f"stored status {status.id}"
