"""``Update`` of a Note: an edit of a remote status Easel already has.

Why it exists: edits arrive as ``Update`` with the whole new Note. The same origin rules
as ``Create`` apply (see :mod:`federation.inbox.create`: the embedded note is used only
when the actor signed it and it is on the actor's origin, else refetched; it must be
attributed to the actor). Beyond that:

* an Update of a status Easel does not have is ignored (Mastodon does not create posts
  from edits), and so is one whose refetched note turns out to have another id than the
  stored status (the origin may answer a URL with a different note of its own), which
  would otherwise be stored as a new status;
* only the status's author may edit it: anyone else is rejected;
* :func:`federation.notes.store_note` replaces content, warning, sensitivity, media,
  hashtags and mentions and sets ``edited_at`` — only when something changed and the edit
  is not older than the last one applied, so a replay changes nothing.

What it must never do: create a status, change another account's status, or trust a
forwarded body.
"""

from __future__ import annotations

from federation.inbox.base import Ignored, InboxContext, Rejected
from federation.inbox.create import trusted_note
from federation.notes import NoteRefused, find_status_by_uri, store_note


async def handle(inbox: InboxContext) -> str:
    object_id = inbox.activity.object_id
    if object_id is None:
        raise Rejected("the activity names no object")
    status = await find_status_by_uri(inbox.session, object_id)
    if status is None or status.uri != object_id:
        raise Ignored("an update of a status this server does not have")
    if status.local or status.account_id != inbox.actor.id:
        raise Rejected("only the author may update a status")
    document = await trusted_note(inbox)
    if document.get("id") != status.uri:
        # Refetched, the origin answered with another note of the same server (the
        # origin rule allows that for a web URL): not an edit of this status.
        raise Ignored(f"the origin served {document.get('id')!r}, not {status.uri}")
    edited_before = status.edited_at
    try:
        await store_note(inbox.fed, inbox.session, document, author=inbox.actor)
    except NoteRefused as exc:
        raise Rejected(str(exc)) from None
    return "updated" if status.edited_at != edited_before else "no change"
