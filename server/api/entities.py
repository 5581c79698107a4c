"""Models → Mastodon entity JSON. The only place that knows Mastodon's entity shapes.

Lists of statuses are converted in batches (one query per related table, not per status),
because every timeline goes through here.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import (
    Account,
    Bookmark,
    Favourite,
    Follow,
    FollowRequest,
    List,
    Marker,
    MediaAttachment,
    MediaState,
    Mention,
    Notification,
    OAuthApplication,
    Status,
    StatusTag,
    Tag,
    User,
)
from server.services.blocks import relationship_flags
from server.services.portfolio import KINDS, WorkView, pinned_among, work_metadata
from server.services.text import linkify_line, plain_to_html
from server.state import EaselState
from server.storage import Storage
from server.urls import Urls

Entity = dict[str, Any]


@dataclass(frozen=True)
class EntityContext:
    urls: Urls
    storage: Storage

    @classmethod
    def of(cls, state: EaselState) -> EntityContext:
        return cls(state.urls, state.storage)


def iso(moment: datetime | None) -> str | None:
    """Mastodon's datetime format: ``2026-11-27T21:13:04.123Z``."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_date(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d") if moment is not None else None


# ---------------------------------------------------------------------------- accounts

def account_note_html(account: Account) -> str:
    """Local notes are stored as the author typed them; remote ones as sanitised HTML."""
    return plain_to_html(account.note) if account.is_local else account.note


def fields_to_entities(account: Account) -> list[Entity]:
    """Profile fields as Mastodon shows them: HTML values (links made, everything else
    escaped) and escaped names. Remote values are stored already sanitised HTML; remote
    names are stored as plain text (``federation.parse``), so they are escaped like local
    ones."""
    fields = []
    for field in account.fields or []:
        name, value = str(field.get("name", "")), str(field.get("value", ""))
        name = html.escape(name, quote=False)
        if account.is_local:
            value = linkify_line(value)
        fields.append({"name": name, "value": value, "verified_at": field.get("verified_at")})
    return fields


def account_to_entity(account: Account, ctx: EntityContext) -> Entity:
    urls, storage = ctx.urls, ctx.storage
    avatar = (storage.public_url(account.avatar_key) if account.avatar_key
              else account.avatar_remote_url or urls.default_avatar)
    header = (storage.public_url(account.header_key) if account.header_key
              else account.header_remote_url or urls.default_header)
    return {
        "id": str(account.id),
        "username": account.username,
        "acct": account.acct(),
        "display_name": account.display_name,
        "locked": account.locked,
        "bot": account.bot or account.actor_type in ("Service", "Application"),
        "discoverable": account.discoverable,
        "indexable": account.indexable,
        "group": account.actor_type == "Group",
        "created_at": iso(account.created_at.replace(hour=0, minute=0, second=0, microsecond=0)),
        "note": account_note_html(account),
        "url": account.url or account.uri,
        "uri": account.uri,
        "avatar": avatar,
        "avatar_static": avatar,
        "header": header,
        "header_static": header,
        "followers_count": account.followers_count,
        "following_count": account.following_count,
        "statuses_count": account.statuses_count,
        "last_status_at": iso_date(account.last_status_at),
        "hide_collections": False,
        "noindex": not account.indexable,
        "emojis": [],
        "roles": [],
        "fields": fields_to_entities(account),
    }


def credential_account_to_entity(
    account: Account, user: User, ctx: EntityContext, *, follow_requests_count: int = 0
) -> Entity:
    """The viewer's own account (verify_credentials, update_credentials): adds ``source``."""
    entity = account_to_entity(account, ctx)
    entity["source"] = {
        "privacy": user.default_privacy,
        "sensitive": user.default_sensitive,
        "language": user.default_language or "",
        "note": account.note,
        "fields": [{"name": f.get("name", ""), "value": f.get("value", ""),
                    "verified_at": f.get("verified_at")} for f in (account.fields or [])],
        "follow_requests_count": follow_requests_count,
        "hide_collections": False,
        "discoverable": account.discoverable,
        "indexable": account.indexable,
    }
    entity["role"] = {
        "id": "3" if user.admin else "-99",
        "name": "Admin" if user.admin else "",
        "color": "",
        "permissions": "1" if user.admin else "0",
        "highlighted": user.admin,
    }
    return entity


# ------------------------------------------------------------------------------- media

def media_to_entity(media: MediaAttachment, ctx: EntityContext) -> Entity:
    ready = media.state == MediaState.READY
    storage = ctx.storage
    meta: dict[str, Any] = {k: v for k, v in (media.meta or {}).items() if k in ("original", "small")}
    meta["focus"] = {"x": media.focus_x, "y": media.focus_y}
    # A remote status's media are referenced, not stored (federation.notes): its URL is
    # the origin's, for the full image and the preview alike.
    referenced = media.remote_url if ready and not media.file_key else None
    return {
        "id": str(media.id),
        "type": media.type,
        "url": storage.public_url(media.file_key) if ready and media.file_key else referenced,
        # Mastodon's preview is its "small" style, which meta["small"] describes.
        "preview_url": (storage.public_url(media.small_key) if ready and media.small_key
                        else referenced),
        "remote_url": media.remote_url,
        "preview_remote_url": None,
        "text_url": None,
        "meta": meta,
        "description": media.description or None,
        "blurhash": media.blurhash,
    }


# ---------------------------------------------------------------------------- statuses

def application_to_entity(app: OAuthApplication, *, with_secret: bool = False) -> Entity:
    entity: Entity = {
        "id": str(app.id),
        "name": app.name,
        "website": app.website or None,
        "scopes": app.scopes.split(),
        "redirect_uri": "\n".join(app.redirect_uri_list),
        "redirect_uris": app.redirect_uri_list,
        "vapid_key": "",
    }
    if with_secret:
        entity["client_id"] = app.client_id
        entity["client_secret"] = app.client_secret
        entity["client_secret_expires_at"] = 0
    return entity


def work_to_entity(work: WorkView) -> Entity:
    """A work's portfolio data: the ``easel`` key of its status entity (Easel's own; no
    Mastodon field changes)."""
    return {
        "title": work.title,
        "description": work.description,
        "year": work.year,
        "dimensions": work.dimensions,
        "ai_generated": work.ai_generated,
        "tags": {kind: [{"name": term.name, "hashtag": term.hashtag}
                        for term in work.tags.get(kind, [])] for kind in KINDS},
    }


def tag_to_entity(tag: Tag, ctx: EntityContext, *, following: bool | None = None) -> Entity:
    entity: Entity = {"name": tag.display_name, "url": f"{ctx.urls.base}/tags/{tag.name}",
                      "history": []}
    if following is not None:
        entity["following"] = following
    return entity


async def statuses_to_entities(
    session: AsyncSession, statuses: Sequence[Status], ctx: EntityContext, viewer: Account | None
) -> list[Entity]:
    """Convert statuses (with boosts) in a handful of queries."""
    if not statuses:
        return []
    by_id: dict[int, Status] = {s.id: s for s in statuses}
    reblogged_ids = {s.reblog_of_id for s in statuses if s.reblog_of_id is not None}
    missing = reblogged_ids - by_id.keys()
    if missing:
        for original in await session.scalars(select(Status).where(Status.id.in_(missing))):
            by_id[original.id] = original
    all_ids = list(by_id)
    account_ids = {s.account_id for s in by_id.values()}

    mentions: dict[int, list[Account]] = defaultdict(list)
    for status_id, account in (await session.execute(
        select(Mention.status_id, Account).join(Account, Account.id == Mention.account_id)
        .where(Mention.status_id.in_(all_ids)).order_by(Mention.id)
    )).all():
        mentions[status_id].append(account)

    tags: dict[int, list[Tag]] = defaultdict(list)
    for status_id, tag in (await session.execute(
        select(StatusTag.status_id, Tag).join(Tag, Tag.id == StatusTag.tag_id)
        .where(StatusTag.status_id.in_(all_ids)).order_by(Tag.name)
    )).all():
        tags[status_id].append(tag)

    media: dict[int, list[MediaAttachment]] = defaultdict(list)
    for item in await session.scalars(
        select(MediaAttachment).where(MediaAttachment.status_id.in_(all_ids))
        .order_by(MediaAttachment.id)
    ):
        assert item.status_id is not None
        media[item.status_id].append(item)

    accounts = {a.id: a for a in await session.scalars(
        select(Account).where(Account.id.in_(account_ids)))}
    app_ids = {s.application_id for s in by_id.values() if s.application_id is not None}
    apps = {a.id: a for a in await session.scalars(
        select(OAuthApplication).where(OAuthApplication.id.in_(app_ids)))} if app_ids else {}

    favourited: set[int] = set()
    bookmarked: set[int] = set()
    reblogged: set[int] = set()
    if viewer is not None:
        favourited = set(await session.scalars(select(Favourite.status_id).where(
            Favourite.account_id == viewer.id, Favourite.status_id.in_(all_ids))))
        bookmarked = set(await session.scalars(select(Bookmark.status_id).where(
            Bookmark.account_id == viewer.id, Bookmark.status_id.in_(all_ids))))
        reblogged = {i for i in await session.scalars(select(Status.reblog_of_id).where(
            Status.account_id == viewer.id, Status.reblog_of_id.in_(all_ids))) if i is not None}
        pinned = await pinned_among(
            session, viewer.id, [i for i, s in by_id.items() if s.account_id == viewer.id])
    else:
        pinned = set()
    works = await work_metadata(session, [i for i in all_ids if media.get(i)])

    account_entities: dict[int, Entity] = {}  # a timeline often repeats its authors

    def author(account_id: int) -> Entity:
        entity = account_entities.get(account_id)
        if entity is None:
            entity = account_entities[account_id] = account_to_entity(accounts[account_id], ctx)
        return entity

    def one(status: Status) -> Entity:
        app = apps.get(status.application_id) if status.application_id else None
        entity: Entity = {
            "id": str(status.id),
            "uri": status.uri,
            "url": status.url or None,
            "created_at": iso(status.created_at),
            "edited_at": iso(status.edited_at),
            "account": author(status.account_id),
            "in_reply_to_id": str(status.in_reply_to_id) if status.in_reply_to_id else None,
            "in_reply_to_account_id": (str(status.in_reply_to_account_id)
                                       if status.in_reply_to_account_id else None),
            "reblog": None,
            "content": status.content,
            "spoiler_text": status.spoiler_text,
            "visibility": status.visibility,
            "sensitive": status.sensitive,
            "language": status.language,
            "replies_count": status.replies_count,
            "reblogs_count": status.reblogs_count,
            "favourites_count": status.favourites_count,
            "favourited": status.id in favourited,
            "reblogged": status.id in reblogged,
            "bookmarked": status.id in bookmarked,
            "muted": False,
            "pinned": status.id in pinned,
            "media_attachments": [media_to_entity(m, ctx) for m in media.get(status.id, [])],
            "mentions": [
                {"id": str(a.id), "username": a.username, "acct": a.acct(),
                 "url": a.url or a.uri}
                for a in mentions.get(status.id, [])
            ],
            "tags": [tag_to_entity(t, ctx) for t in tags.get(status.id, [])],
            "emojis": [],
            "card": None,
            "poll": None,
            "application": ({"name": app.name, "website": app.website or None}
                            if app is not None else None),
            "filtered": [],
        }
        if (viewer is None or status.account_id != viewer.id or status.reblog_of_id is not None
                or status.visibility == "direct"):
            del entity["pinned"]  # Mastodon: only where the viewer could pin it
        work = works.get(status.id)
        if work is not None:
            entity["easel"] = work_to_entity(work)
        return entity

    entities = []
    for status in statuses:
        entity = one(status)
        if status.reblog_of_id is not None and status.reblog_of_id in by_id:
            entity["reblog"] = one(by_id[status.reblog_of_id])
            for key in ("content", "spoiler_text"):
                entity[key] = ""
            entity["media_attachments"] = []
            entity["favourited"] = entity["reblog"]["favourited"]
            entity["reblogged"] = entity["reblog"]["reblogged"]
            entity["bookmarked"] = entity["reblog"]["bookmarked"]
        entities.append(entity)
    return entities


async def status_to_entity(
    session: AsyncSession, status: Status, ctx: EntityContext, viewer: Account | None
) -> Entity:
    return (await statuses_to_entities(session, [status], ctx, viewer))[0]


# ------------------------------------------------------------------ relationships etc.

async def relationships_to_entities(
    session: AsyncSession, viewer: Account, targets: Iterable[Account]
) -> list[Entity]:
    targets = list(targets)
    ids = [t.id for t in targets]
    following = {f.target_account_id: f for f in await session.scalars(
        select(Follow).where(Follow.account_id == viewer.id, Follow.target_account_id.in_(ids)))}
    followed_by = set(await session.scalars(select(Follow.account_id).where(
        Follow.target_account_id == viewer.id, Follow.account_id.in_(ids))))
    requested = {r.target_account_id: r for r in await session.scalars(
        select(FollowRequest).where(FollowRequest.account_id == viewer.id,
                                    FollowRequest.target_account_id.in_(ids)))}
    requested_by = set(await session.scalars(select(FollowRequest.account_id).where(
        FollowRequest.target_account_id == viewer.id, FollowRequest.account_id.in_(ids))))
    blocking = await relationship_flags(session, viewer.id, ids)
    result = []
    for target in targets:
        follow = following.get(target.id) or requested.get(target.id)
        result.append({
            "id": str(target.id),
            "following": target.id in following,
            "showing_reblogs": follow.show_reblogs if follow else False,
            "notifying": follow.notify if follow else False,
            "languages": None,
            "followed_by": target.id in followed_by,
            **blocking[target.id],
            "requested": target.id in requested,
            "requested_by": target.id in requested_by,
            "domain_blocking": False,
            "endorsed": False,
            "note": "",
        })
    return result


async def notifications_to_entities(
    session: AsyncSession, notifications: Sequence[Notification], ctx: EntityContext,
    viewer: Account,
) -> list[Entity]:
    account_ids = {n.from_account_id for n in notifications}
    accounts = {a.id: a for a in await session.scalars(
        select(Account).where(Account.id.in_(account_ids)))} if account_ids else {}
    status_ids = {n.status_id for n in notifications if n.status_id is not None}
    statuses = list(await session.scalars(select(Status).where(Status.id.in_(status_ids)))) \
        if status_ids else []
    status_entities = {int(e["id"]): e for e in
                       await statuses_to_entities(session, statuses, ctx, viewer)}
    result = []
    for notification in notifications:
        sender = accounts.get(notification.from_account_id)
        if sender is None:
            continue
        result.append({
            "id": str(notification.id),
            "type": notification.type,
            "group_key": f"ungrouped-{notification.id}",
            "created_at": iso(notification.created_at),
            "account": account_to_entity(sender, ctx),
            "status": (status_entities.get(notification.status_id)
                       if notification.status_id is not None else None),
        })
    return result


def list_to_entity(found: List) -> Entity:
    return {"id": str(found.id), "title": found.title, "replies_policy": found.replies_policy,
            "exclusive": found.exclusive}


def marker_to_entity(marker: Marker) -> Entity:
    return {"last_read_id": str(marker.last_read_id), "version": marker.version,
            "updated_at": iso(marker.updated_at)}
