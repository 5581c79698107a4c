"""Streaming channels: which events an open stream sends its viewer, and how they look.

Why it exists: one committed event (a status published, a notification added …) goes to
every open stream of this process; each stream keeps only what its viewer would find in
the matching timeline, and renders it for that viewer. Membership is decided by the very
queries the timelines run (``server.services.timelines``), narrowed to the one status, so
a stream applies the same visibility, blocks, mutes, list, reply and domain rules as the
timeline it mirrors.

Channels and events are Mastodon's (``streaming/index.js``): ``user`` (home: ``update``,
``status.update``, ``delete``, ``notification``, ``filters_changed``,
``notifications_merged``, and the admins' ``announcement``, ``announcement.reaction``,
``announcement.delete``), ``user:notification`` (``notification``,
``notifications_merged``), ``public``/``public:local``/``public:remote`` and their
``:media`` variants, ``hashtag``/``hashtag:local``, ``list`` (``update``,
``status.update``, ``delete``), and ``direct`` (``conversation``). Payloads are the JSON of the entity the
REST API returns for the same viewer, as a string (the deleted status's id for ``delete``).

A ``delete`` goes only where the status could have been shown, as Mastodon's
RemoveStatusService sends it (the event carries the facts, ``events.status_deleted``): a published
``public`` status's (not a boost's) to the public and hashtag streams (``:local`` or
``:remote`` as it was); any status's to its author's ``user`` and ``list`` streams; a
published public or unlisted one's to every ``user`` and ``list`` stream (it may be there
through a boost or a followed hashtag); a private one's to its followers' and mentioned
accounts'; a direct one's to the accounts it mentioned. Its id (which tells when it was
written) reaches no one else; without the facts, only its author's streams.

What it must never do: send a status or notification its viewer could not read through
the REST API, the id of a deleted status to a stream that could not have shown it, or
write to the database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

import server.api.entities as entities
from server.models import Account, Follow
from server.services import announcements, timelines
from server.services.conversations import own_conversation
from server.services.errors import NotFound
from server.services.lists import own_list
from server.services.scopes import grants

T = TypeVar("T")

PUBLIC_CHANNELS = (
    "public", "public:media", "public:local", "public:local:media", "public:remote",
    "public:remote:media", "hashtag", "hashtag:local",
)
USER_CHANNELS = ("user", "user:notification", "list", "direct")
CHANNELS = PUBLIC_CHANNELS + USER_CHANNELS
# Which status events a channel carries at all (the others never reach its queries).
STATUS_CHANNELS = ("user", "list", *PUBLIC_CHANNELS)
ANNOUNCEMENT_EVENTS = (announcements.ANNOUNCEMENT_EVENT, announcements.REACTION_EVENT,
                       announcements.DELETE_EVENT)


class ChannelError(Exception):
    """A stream that cannot be opened: ``status`` and Mastodon's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Channel:
    name: str
    tag: str | None = None
    list_id: int | None = None

    @property
    def stream(self) -> list[str]:
        """The ``stream`` field of WebSocket messages: ``["hashtag", "ink"]``, ``["user"]``."""
        if self.tag is not None:
            return [self.name, self.tag]
        if self.list_id is not None:
            return [self.name, str(self.list_id)]
        return [self.name]

    @property
    def key(self) -> tuple[str, ...]:
        """What makes two subscriptions the same (``#Ink`` and ``ink`` are one tag)."""
        if self.tag is not None:
            return self.name, timelines.tag_name(self.tag)
        return tuple(self.stream)


def may_carry(channel: Channel, viewer_id: int | None, message: dict[str, Any]) -> bool:
    """Whether ``channel`` could carry ``message`` at all, before any query: events about
    one account go only to that account's streams, status events only to timelines."""
    kind = message.get("kind")
    if kind in ("status.published", "status.edited"):
        return channel.name in STATUS_CHANNELS
    if kind == "status.deleted":
        return deletion_reaches(channel, viewer_id, message) is not False
    if kind in ANNOUNCEMENT_EVENTS:  # for everyone signed in
        return channel.name == "user" and viewer_id is not None
    targets = {"notification": ("user", "user:notification"), "conversation": ("direct",),
               "filters_changed": ("user",),
               "notifications_merged": ("user", "user:notification")}.get(str(kind), ())
    return (channel.name in targets and viewer_id is not None
            and message.get("account_id") == viewer_id)


def deletion_reaches(channel: Channel, viewer_id: int | None,
                     message: dict[str, Any]) -> bool | None:
    """Whether a ``status.deleted`` event's ``delete`` goes to ``channel`` (see the module
    docstring); None when that depends on whether the viewer follows the author (a private
    status), which ``Rendering`` asks the database."""
    if channel.name not in STATUS_CHANNELS:
        return False
    visibility, published = message.get("visibility"), message.get("published") is True
    if channel.name in PUBLIC_CHANNELS:
        if not (published and visibility == "public") or message.get("reblog") is not False:
            return False
        local = message.get("local") is True
        return not ((":local" in channel.name and not local)
                    or (":remote" in channel.name and local))
    if viewer_id is None:
        return False
    if viewer_id == message.get("account_id"):
        return True
    if not published:
        return False
    if visibility in ("public", "unlisted"):
        return True
    if visibility in ("private", "direct") and viewer_id in message.get("mentioned_ids", ()):
        return True
    return None if visibility == "private" else False


def channel_named(name: str, *, tag: str | None = None, list_id: str | None = None,
                  only_media: bool = False) -> Channel:
    """The channel a client asked for; ChannelError 400 for an unknown or incomplete one."""
    if name not in CHANNELS:
        raise ChannelError(400, "Unknown stream type")
    if only_media and name in ("public", "public:local", "public:remote"):
        name += ":media"
    if name.startswith("hashtag"):
        if not tag or not timelines.tag_name(tag):
            raise ChannelError(400, "No tag for stream provided")
        return Channel(name, tag=tag)
    if name == "list":
        if not list_id or not list_id.strip().isdigit():
            raise ChannelError(400, "No list for stream provided")
        return Channel(name, list_id=int(list_id))
    return Channel(name)


async def authorize(session: AsyncSession, channel: Channel, viewer: Account | None,
                    scopes: Sequence[str] | None) -> None:
    """Mastodon's rules: public channels for anyone; the others need a user's token with
    ``read`` (or ``read:statuses``; ``read:notifications`` for notifications), and a list
    must be the viewer's own."""
    if channel.name in PUBLIC_CHANNELS:
        return
    if scopes is None:
        raise ChannelError(401, "Missing access token")
    needed = "read:notifications" if channel.name == "user:notification" else "read:statuses"
    if not grants(list(scopes), needed):
        raise ChannelError(401, "Access token does not cover required scopes")
    if viewer is None:
        raise ChannelError(401, "This stream requires an authenticated user")
    if channel.list_id is not None:
        try:
            await own_list(session, viewer, channel.list_id)
        except NotFound as exc:
            raise ChannelError(401, "Not authorized to stream this list") from exc


@dataclass(frozen=True)
class _OnlyStatus:
    """A ``timelines.Paging`` that narrows a timeline's query to one status: the status is
    in the timeline exactly when the query still finds it. As cursors (what the home and
    list timelines' prebuilt statements bind), the one id between its neighbours."""

    status_id: int
    min_id: None = None
    limit: int = 1

    @property
    def max_id(self) -> int:
        return self.status_id + 1

    @property
    def since_id(self) -> int:
        return self.status_id - 1

    def apply(self, query: Select[Any], column: InstrumentedAttribute[int]) -> Select[Any]:
        return query.where(column == self.status_id)

    def arrange(self, rows: Sequence[T]) -> list[T]:
        return list(rows)


async def _in_timeline(session: AsyncSession, channel: Channel, viewer: Account | None,
                       status_id: int) -> list[Any]:
    page = _OnlyStatus(status_id)
    name = channel.name
    if name == "user":
        assert viewer is not None
        return await timelines.home_timeline(session, viewer, page)
    if name == "list":
        assert viewer is not None and channel.list_id is not None
        try:
            return await timelines.list_timeline(session, viewer, channel.list_id, page)
        except NotFound:  # the list was deleted meanwhile
            return []
    local, remote, media = ":local" in name, ":remote" in name, name.endswith(":media")
    if name.startswith("public"):
        return await timelines.public_timeline(session, page, local=local, remote=remote,
                                               only_media=media, viewer=viewer)
    assert channel.tag is not None
    return await timelines.tag_timeline(session, page, channel.tag, local=local, viewer=viewer)


@dataclass
class Rendering:
    """What one event looks like to one viewer, worked out once for all its channels."""

    session: AsyncSession
    ctx: entities.EntityContext
    viewer: Account | None
    message: dict[str, Any]
    # The status as rendered per filter context ("home", "public"); None: a filter hides it.
    _status_payloads: dict[str, str | None] = field(default_factory=dict)
    _follows: bool | None = None  # whether the viewer follows the status's author

    async def for_channel(self, channel: Channel) -> tuple[str, str | None] | None:
        """``(event, payload)`` for ``channel``, or None when it does not carry it."""
        kind = self.message.get("kind")
        viewer_id = self.viewer.id if self.viewer is not None else None
        if kind in ("status.published", "status.edited"):
            if channel.name not in STATUS_CHANNELS:
                return None
            found = await _in_timeline(self.session, channel, self.viewer,
                                       int(self.message["status_id"]))
            if not found:
                return None
            context = "home" if channel.name in ("user", "list") else "public"
            if context not in self._status_payloads:
                rendered = await entities.statuses_to_entities(
                    self.session, found[:1], self.ctx, self.viewer, filter_context=context)
                self._status_payloads[context] = json.dumps(rendered[0]) if rendered else None
            payload = self._status_payloads[context]
            if payload is None:  # a "hide" filter of the viewer's matches it
                return None
            return "update" if kind == "status.published" else "status.update", payload
        if kind == "status.deleted":
            reaches = deletion_reaches(channel, viewer_id, self.message)
            if reaches is None:
                reaches = await self._follows_author()
            return ("delete", str(self.message["status_id"])) if reaches else None
        if kind == "notification":
            if channel.name not in ("user", "user:notification") or viewer_id is None \
                    or self.message.get("account_id") != viewer_id:
                return None
            return await self._notification()
        if kind == "conversation":
            if channel.name != "direct" or viewer_id is None \
                    or self.message.get("account_id") != viewer_id:
                return None
            return await self._conversation()
        if kind == "filters_changed":
            if channel.name != "user" or self.message.get("account_id") != viewer_id:
                return None
            return "filters_changed", None
        if kind == "notifications_merged":
            if channel.name not in ("user", "user:notification") \
                    or self.message.get("account_id") != viewer_id:
                return None
            return "notifications_merged", "1"  # Mastodon's payload
        if kind in ANNOUNCEMENT_EVENTS:
            if channel.name != "user" or viewer_id is None:
                return None
            return await self._announcement(str(kind))
        return None

    async def _follows_author(self) -> bool:
        """Whether the viewer follows the author of the event's status (asked once)."""
        if self._follows is None:
            assert self.viewer is not None
            self._follows = await self.session.scalar(select(Follow.id).where(
                Follow.account_id == self.viewer.id,
                Follow.target_account_id == self.message.get("account_id")).limit(1)) is not None
        return self._follows

    async def _announcement(self, kind: str) -> tuple[str, str | None] | None:
        """Mastodon's payloads: the Announcement as this viewer sees it; ``{name, count,
        announcement_id}`` for a reaction; the id of one withdrawn."""
        announcement_id = int(self.message["announcement_id"])
        if kind == announcements.DELETE_EVENT:
            return kind, str(announcement_id)
        if kind == announcements.REACTION_EVENT:  # the count was read when it changed
            return kind, json.dumps({"name": str(self.message.get("name", "")),
                                     "count": int(self.message.get("count", 0)),
                                     "announcement_id": str(announcement_id)})
        try:
            found = await announcements.listed_announcement(self.session, announcement_id)
        except NotFound:  # withdrawn or removed meanwhile
            return None
        [view] = await announcements.with_references(
            self.session, await announcements.views(self.session, [found], self.viewer),
            self.ctx.urls)
        return kind, json.dumps(entities.announcement_to_entity(view, self.ctx))

    async def _notification(self) -> tuple[str, str | None] | None:
        assert self.viewer is not None
        notification_id = self.message.get("notification_id")
        if notification_id is None:
            return None
        try:
            found = await timelines.get_notification(self.session, self.viewer,
                                                     int(notification_id))
        except NotFound:  # gone, or hidden from the viewer (blocked, muted, status unseen)
            return None
        if getattr(found, "filtered", False):  # held as a notification request
            return None
        rendered = await entities.notifications_to_entities(self.session, [found], self.ctx,
                                                            self.viewer)
        if not rendered:  # its status is hidden by one of the viewer's filters
            return None
        return "notification", json.dumps(rendered[0])

    async def _conversation(self) -> tuple[str, str | None] | None:
        assert self.viewer is not None
        try:
            row = await own_conversation(self.session, self.viewer,
                                         int(self.message["conversation_id"]))
        except NotFound:  # removed, or no status left in it
            return None
        rendered = await entities.conversations_to_entities(self.session, [row], self.ctx,
                                                            self.viewer)
        return "conversation", json.dumps(rendered[0])
