"""Stream events: what a committed change tells the streaming API.

Why it exists: the streaming API (``/api/v1/streaming``) pushes new and edited statuses,
deletions, notifications, conversations and filter changes as they happen. Services do
not know who is listening: they note an event on their session with one of the functions
below, and once the session commits the events are handed to the process's event hub
(in-process, or Redis pub/sub when a broker is configured), which decides per connected
stream what to send. A rolled-back session's events are dropped.

What it must never do: send anything that was not committed, or carry more than ids and
the few facts a stream needs to route an event (rendering happens per viewer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Account, Mention, Status

EVENTS_KEY = "easel_stream_events"


@dataclass
class StreamEvent:
    """One change: ``kind`` names it, ``data`` holds ids (and, for deletions, the routing
    facts that no longer exist in the database afterwards). ``source`` may hold an ORM
    object whose id is only known after the flush (read when the event is dispatched)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    source: Any = None


def note_event(session: AsyncSession, event: StreamEvent) -> None:
    session.info.setdefault(EVENTS_KEY, []).append(event)


def event_message(event: StreamEvent) -> dict[str, Any]:
    """The committed event as the plain dict the hub carries (between processes, JSON):
    ``kind`` plus its ids; a notification's id is read from its row here, after commit."""
    message: dict[str, Any] = {"kind": event.kind, **event.data}
    if event.kind == "notification" and event.source is not None:
        message["notification_id"] = event.source.id
    return message


def status_published(session: AsyncSession, status_id: int) -> None:
    """A status became visible to others (created, published after processing, received
    from another server, or a scheduled status posted)."""
    note_event(session, StreamEvent("status.published", {"status_id": status_id}))


def status_edited(session: AsyncSession, status_id: int) -> None:
    note_event(session, StreamEvent("status.edited", {"status_id": status_id}))


async def status_deleted(session: AsyncSession, status: Status) -> None:
    """``status`` is being deleted: noted before its rows go, with the facts that route
    its ``delete`` to only the streams that could have shown it (``server.streaming.
    channels``, as Mastodon's RemoveStatusService) — its visibility, whether it was
    published (never: its author alone saw it), local (the ``:local``/``:remote``
    streams) or a boost (in no public stream), and the local accounts a private or direct
    one mentioned (its mentions go with it)."""
    mentioned: list[int] = []
    if status.visibility in ("private", "direct"):
        mentioned = list(await session.scalars(
            select(Mention.account_id).join(Account, Account.id == Mention.account_id)
            .where(Mention.status_id == status.id, Account.domain == "")))
    note_event(session, StreamEvent("status.deleted", {
        "status_id": status.id, "account_id": status.account_id,
        "visibility": status.visibility, "published": bool(status.published),
        "local": bool(status.local), "reblog": status.reblog_of_id is not None,
        "mentioned_ids": mentioned}))


def notification_created(session: AsyncSession, notification: Any) -> None:
    """``notification``: the Notification row just added (its id is read after commit)."""
    note_event(session, StreamEvent("notification", {"account_id": notification.account_id},
                                    source=notification))


def conversation_updated(session: AsyncSession, account_id: int, conversation_id: int) -> None:
    note_event(session, StreamEvent("conversation", {"account_id": account_id,
                                                     "conversation_id": conversation_id}))


def filters_changed(session: AsyncSession, account_id: int) -> None:
    note_event(session, StreamEvent("filters_changed", {"account_id": account_id}))


def notifications_merged(session: AsyncSession, account_id: int) -> None:
    """Notifications held back (a request accepted) joined the account's list: apps
    reload it (Mastodon 4.3's ``notifications_merged``)."""
    note_event(session, StreamEvent("notifications_merged", {"account_id": account_id}))
