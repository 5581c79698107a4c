"""Models → Mastodon entity JSON. The only place that knows Mastodon's entity shapes.

Lists of statuses are converted in batches (one query per related table, not per status),
because every timeline goes through here.
"""

from __future__ import annotations

import hashlib
import html
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import BigInteger, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import bound_list, json_lists, list_value
from server.models import (
    Account,
    AccountWarning,
    Bookmark,
    Conversation,
    Favourite,
    Filter,
    FilterKeyword,
    FilterStatus,
    Follow,
    FollowRequest,
    List,
    Marker,
    MediaAttachment,
    MediaState,
    Mention,
    Notification,
    OAuthApplication,
    PreviewCard,
    Report,
    Status,
    StatusEdit,
    StatusPreviewCard,
    StatusTag,
    Tag,
    User,
)
from server.services import filters
from server.services.account_notes import notes_among
from server.services.announcements import AnnouncementView
from server.services.appeals import appeals_of
from server.services.blocks import relationship_flags
from server.services.conversations import participant_ids
from server.services.domain_blocks import obfuscated
from server.services.endorsements import endorsed_among
from server.services.featured_tags import FeaturedTagView
from server.services.polls import PollView, poll_views
from server.services.portfolio import KINDS, WorkView, pinned_among, work_metadata
from server.services.scheduled import ScheduledView
from server.services.text import (
    extract_hashtags,
    linkify_line,
    normalize_tag,
    plain_to_html,
    render_status,
)
from server.services.thread_mutes import muted_among_query
from server.state import EaselState
from server.storage import Storage
from server.urls import Urls

Entity = dict[str, Any]


@dataclass(frozen=True)
class EntityContext:
    urls: Urls
    storage: Storage
    link_cards: bool = True  # EASEL_LINK_CARDS: statuses show their cards

    @classmethod
    def of(cls, state: EaselState) -> EntityContext:
        return cls(state.urls, state.storage, state.settings.link_cards)


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
    if account.suspended_at is not None:  # Mastodon shows a suspended account bare
        return _suspended_account_to_entity(account, ctx)
    avatar = urls.avatar_of(account, storage)
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
        # Mastodon adds it only when true (server.services.moderation).
        **({"limited": True} if account.silenced_at is not None else {}),
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

PROCESSING_PICTURE = "processing.png"  # server/web/static


def media_to_entity(media: MediaAttachment, ctx: EntityContext, *,
                    in_status: bool = False) -> Entity:
    """Mastodon's MediaAttachment. Alone (the media endpoints), one still being processed
    has a null ``url``, as Mastodon's; ``in_status``, it has a placeholder picture instead:
    a status never carries a null ``url`` in Mastodon, and apps that read it as required
    (Tusky) fail the whole page of an author whose post waits for its protection."""
    ready = media.state == MediaState.READY
    storage = ctx.storage
    meta: dict[str, Any] = {k: v for k, v in (media.meta or {}).items() if k in ("original", "small")}
    meta["focus"] = {"x": media.focus_x, "y": media.focus_y}
    # A remote status's media are referenced, not stored (federation.notes): its URL is
    # the origin's, for the full image and the preview alike — or, once the remote media
    # cache holds a copy (federation.media_cache), ours.
    referenced = media.remote_url if ready and not media.file_key else None
    # A referenced file is its own preview only when it is a picture: a video's or an
    # audio's preview (a picture clients load as one) is null, as Mastodon's without a
    # thumbnail; an attachment of type "unknown" (not media a client shows inline, or
    # rejected by a domain block: federation.media_cache) is a link with no preview.
    own_preview = media.type == "image"
    if referenced and media.cache_key:
        url: str | None = storage.public_url(media.cache_key)
        preview_url = (storage.public_url(media.cache_preview_key) if media.cache_preview_key
                       else url if own_preview else None)
    else:
        url = storage.public_url(media.file_key) if ready and media.file_key else referenced
        # Mastodon's preview is its "small" style, which meta["small"] describes.
        preview_url = (storage.public_url(media.small_key) if ready and media.small_key
                       else referenced if own_preview else None)
        if url is None and in_status:
            url = preview_url = ctx.urls.static(PROCESSING_PICTURE)
    return {
        "id": str(media.id),
        "type": media.type,
        "url": url,
        "preview_url": preview_url,
        "remote_url": media.remote_url,
        "preview_remote_url": None,
        "text_url": None,
        "meta": meta,
        "description": media.description or None,
        "blurhash": media.blurhash,
    }


# ---------------------------------------------------------------------------- statuses

def preview_card_to_entity(card: PreviewCard, ctx: EntityContext) -> Entity:
    """Mastodon's PreviewCard (federation.link_cards made it): never any HTML (Easel
    makes no embeds); the picture is our copy, from /system/."""
    image = ctx.storage.public_url(card.image_key) if card.image_key else None
    return {
        "url": card.url,
        "title": card.title,
        "description": card.description,
        "language": card.language,
        "type": card.type,
        "author_name": card.author_name,
        "author_url": card.author_url,
        "provider_name": card.provider_name,
        "provider_url": card.provider_url,
        "html": "",
        "width": card.width,
        "height": card.height,
        "image": image,
        "image_description": card.image_description,
        "embed_url": image if card.type == "photo" and image else "",
        "blurhash": card.blurhash,
        "published_at": iso(card.published_at),
        "authors": ([{"name": card.author_name, "url": card.author_url, "account": None}]
                    if card.author_name or card.author_url else []),
    }


def application_to_entity(app: OAuthApplication, *, with_secret: bool = False,
                          vapid_key: str = "") -> Entity:
    """Mastodon's ``Application``; ``vapid_key``: the instance's VAPID public key."""
    entity: Entity = {
        "id": str(app.id),
        "name": app.name,
        "website": app.website or None,
        "scopes": app.scopes.split(),
        "redirect_uri": "\n".join(app.redirect_uri_list),
        "redirect_uris": app.redirect_uri_list,
        "vapid_key": vapid_key,
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


@dataclass(frozen=True)
class _StatusQueries:
    """What ``statuses_to_entities`` reads, built once per kind of database with the ids
    (and the viewer) bound (``server.db.bound_list``): building them anew cost more CPU
    than running them."""

    mentions: Select[int, Account]
    tags: Select[int, Tag]
    media: Select[Any]
    accounts: Select[Any]
    favourited: Select[Any]
    bookmarked: Select[Any]
    reblogged: Select[Any]
    muted: Select[Any]
    cards: Select[int, PreviewCard]


_STATUS_QUERIES: dict[bool, _StatusQueries] = {}


def _status_queries(as_json: bool) -> _StatusQueries:
    found = _STATUS_QUERIES.get(as_json)
    if found is None:
        ids = bound_list("ids", BigInteger, json_lists=as_json)
        viewer = bindparam("viewer", type_=BigInteger)
        found = _STATUS_QUERIES[as_json] = _StatusQueries(
            mentions=select(Mention.status_id, Account).join(Account, Account.id == Mention.account_id)
            .where(ids(Mention.status_id)).order_by(Mention.id),
            tags=select(StatusTag.status_id, Tag).join(Tag, Tag.id == StatusTag.tag_id)
            .where(ids(StatusTag.status_id)).order_by(Tag.name),
            media=select(MediaAttachment).where(ids(MediaAttachment.status_id))
            .order_by(MediaAttachment.id),
            accounts=select(Account).where(ids(Account.id)),
            favourited=select(Favourite.status_id).where(
                Favourite.account_id == viewer, ids(Favourite.status_id)),
            bookmarked=select(Bookmark.status_id).where(
                Bookmark.account_id == viewer, ids(Bookmark.status_id)),
            reblogged=select(Status.reblog_of_id).where(
                Status.account_id == viewer, ids(Status.reblog_of_id)),
            muted=muted_among_query(ids, viewer),
            cards=select(StatusPreviewCard.status_id, PreviewCard).join(
                PreviewCard, PreviewCard.id == StatusPreviewCard.preview_card_id)
            .where(ids(StatusPreviewCard.status_id), PreviewCard.failed.is_(False)))
    return found


async def statuses_to_entities(
    session: AsyncSession, statuses: Sequence[Status], ctx: EntityContext, viewer: Account | None,
    *, filter_context: str | None = None,
) -> list[Entity]:
    """Convert statuses (with boosts) in a handful of queries. With ``filter_context``
    (home, notifications, public, thread, account) the viewer's filters apply: matching
    statuses carry ``filtered``, and those a "hide" filter matches are left out."""
    if not statuses:
        return []
    filter_matches = (await filters.match_statuses(session, viewer, statuses, filter_context)
                      if viewer is not None and filter_context is not None else {})
    by_id: dict[int, Status] = {s.id: s for s in statuses}
    reblogged_ids = {s.reblog_of_id for s in statuses if s.reblog_of_id is not None}
    missing = reblogged_ids - by_id.keys()
    if missing:
        for original in await session.scalars(select(Status).where(Status.id.in_(missing))):
            by_id[original.id] = original
    all_ids = list(by_id)
    account_ids = {s.account_id for s in by_id.values()}
    as_json = json_lists(session)
    queries = _status_queries(as_json)
    ids = {"ids": list_value(all_ids, json_lists=as_json)}

    mentions: dict[int, list[Account]] = defaultdict(list)
    for status_id, account in (await session.execute(queries.mentions, ids)).all():
        mentions[status_id].append(account)

    tags: dict[int, list[Tag]] = defaultdict(list)
    for status_id, tag in (await session.execute(queries.tags, ids)).all():
        tags[status_id].append(tag)

    media: dict[int, list[MediaAttachment]] = defaultdict(list)
    for item in await session.scalars(queries.media, ids):
        assert item.status_id is not None
        media[item.status_id].append(item)

    accounts = {a.id: a for a in await session.scalars(
        queries.accounts, {"ids": list_value(account_ids, json_lists=as_json)})}
    app_ids = {s.application_id for s in by_id.values() if s.application_id is not None}
    apps = {a.id: a for a in await session.scalars(
        select(OAuthApplication).where(OAuthApplication.id.in_(app_ids)))} if app_ids else {}

    favourited: set[int] = set()
    bookmarked: set[int] = set()
    reblogged: set[int] = set()
    muted: set[int] = set()
    if viewer is not None:
        mine = {**ids, "viewer": viewer.id}
        favourited = set(await session.scalars(queries.favourited, mine))
        bookmarked = set(await session.scalars(queries.bookmarked, mine))
        reblogged = {i for i in await session.scalars(queries.reblogged, mine) if i is not None}
        muted = set(await session.scalars(queries.muted, mine))  # threads it muted
        pinned = await pinned_among(
            session, viewer.id, [i for i, s in by_id.items() if s.account_id == viewer.id])
    else:
        pinned = set()
    works = await work_metadata(session, [i for i in all_ids if media.get(i)])
    cards: dict[int, Entity] = {}
    if ctx.link_cards:
        for status_id, card in (await session.execute(queries.cards, ids)).all():
            cards[status_id] = preview_card_to_entity(card, ctx)
    polls = await poll_views(session, all_ids, viewer)

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
            # A moderator's "mark media sensitive" covers every status of the account for
            # everyone but its author, as Mastodon's serializer does.
            "sensitive": bool(status.sensitive) or (
                accounts[status.account_id].sensitized_at is not None
                and (viewer is None or viewer.id != status.account_id)),
            "language": status.language,
            "replies_count": status.replies_count,
            "reblogs_count": status.reblogs_count,
            "favourites_count": status.favourites_count,
            "favourited": status.id in favourited,
            "reblogged": status.id in reblogged,
            "bookmarked": status.id in bookmarked,
            "muted": status.id in muted,
            "pinned": status.id in pinned,
            "media_attachments": [media_to_entity(m, ctx, in_status=True)
                                  for m in media.get(status.id, [])],
            "mentions": [
                {"id": str(a.id), "username": a.username, "acct": a.acct(),
                 "url": a.url or a.uri}
                for a in mentions.get(status.id, [])
            ],
            "tags": [tag_to_entity(t, ctx) for t in tags.get(status.id, [])],
            "emojis": [],
            "card": cards.get(status.id),
            "poll": poll_to_entity(polls[status.id]) if status.id in polls else None,
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
        matches = filter_matches.get(status.id, [])
        if any(m.hides for m in matches):
            continue
        entity = one(status)
        entity["filtered"] = [filter_result_to_entity(m) for m in matches]
        if status.reblog_of_id is not None and status.reblog_of_id in by_id:
            entity["reblog"] = one(by_id[status.reblog_of_id])
            entity["reblog"]["filtered"] = entity["filtered"]
            for key in ("content", "spoiler_text"):
                entity[key] = ""
            entity["media_attachments"] = []
            entity["favourited"] = entity["reblog"]["favourited"]
            entity["reblogged"] = entity["reblog"]["reblogged"]
            entity["bookmarked"] = entity["reblog"]["bookmarked"]
            entity["muted"] = entity["reblog"]["muted"]
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
    endorsed = await endorsed_among(session, viewer.id, ids)
    notes = await notes_among(session, viewer.id, ids)
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
            "endorsed": target.id in endorsed,
            "note": notes.get(target.id, ""),
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
    status_entities = {int(e["id"]): e for e in await statuses_to_entities(
        session, statuses, ctx, viewer, filter_context="notifications")}
    warnings = await _notified_warnings(session, notifications, ctx)
    reports = await _notified_reports(session, notifications, ctx)
    result = []
    for notification in notifications:
        sender = accounts.get(notification.from_account_id)
        if sender is None:
            continue
        if notification.status_id is not None and notification.status_id not in status_entities:
            continue  # its status is hidden by one of the viewer's filters
        entity: Entity = {
            "id": str(notification.id),
            "type": notification.type,
            "group_key": notification.group_key or f"ungrouped-{notification.id}",
            "created_at": iso(notification.created_at),
            "account": account_to_entity(sender, ctx),
            "status": (status_entities.get(notification.status_id)
                       if notification.status_id is not None else None),
        }
        if notification.type == "moderation_warning":
            entity["moderation_warning"] = warnings.get(notification.account_warning_id or 0)
        elif notification.type == "admin.report":
            entity["report"] = reports.get(notification.report_id or 0)
        result.append(entity)
    return result


def list_to_entity(found: List) -> Entity:
    return {"id": str(found.id), "title": found.title, "replies_policy": found.replies_policy,
            "exclusive": found.exclusive}


def marker_to_entity(marker: Marker) -> Entity:
    return {"last_read_id": str(marker.last_read_id), "version": marker.version,
            "updated_at": iso(marker.updated_at)}


# ------------------------------------------------------------------ filters

def filter_keyword_to_entity(keyword: FilterKeyword) -> Entity:
    return {"id": str(keyword.id), "keyword": keyword.keyword, "whole_word": keyword.whole_word}


def filter_status_to_entity(rule: FilterStatus) -> Entity:
    return {"id": str(rule.id), "status_id": str(rule.status_id)}


def filter_to_entity(found: Filter, keywords: Sequence[FilterKeyword] | None = None,
                     statuses: Sequence[FilterStatus] | None = None) -> Entity:
    """The v2 Filter; without ``keywords``/``statuses`` (inside a FilterResult) those keys
    are left out, as Mastodon does."""
    entity: Entity = {"id": str(found.id), "title": found.title, "context": found.contexts,
                      "expires_at": iso(found.expires_at), "filter_action": found.action}
    if keywords is not None:
        entity["keywords"] = [filter_keyword_to_entity(k) for k in keywords]
    if statuses is not None:
        entity["statuses"] = [filter_status_to_entity(r) for r in statuses]
    return entity


def filter_view_to_entity(view: filters.FilterView) -> Entity:
    return filter_to_entity(view.filter, view.keywords, view.statuses)


def filter_result_to_entity(match: filters.FilterMatch) -> Entity:
    return {"filter": filter_to_entity(match.filter),
            "keyword_matches": match.keyword_matches or None,
            "status_matches": [str(i) for i in match.status_matches] or None}


def v1_filter_to_entity(keyword: FilterKeyword, found: Filter) -> Entity:
    """A v1 filter is one keyword of a v2 filter (Mastodon's mapping)."""
    return {"id": str(keyword.id), "phrase": keyword.keyword, "context": found.contexts,
            "whole_word": keyword.whole_word, "expires_at": iso(found.expires_at),
            "irreversible": found.action == "hide"}


# ------------------------------------------------- conversations, featured tags (H7)

async def conversations_to_entities(
    session: AsyncSession, rows: Sequence[tuple[int, Conversation]], ctx: EntityContext,
    viewer: Account,
) -> list[Entity]:
    """Mastodon's Conversation: participants (the viewer alone when it wrote only to
    itself), ``unread`` and the last status, from (last status id, conversation) rows."""
    status_ids = [last for last, _ in rows]
    statuses = list(await session.scalars(select(Status).where(Status.id.in_(status_ids)))) \
        if status_ids else []
    status_entities = {int(e["id"]): e for e in
                       await statuses_to_entities(session, statuses, ctx, viewer)}
    wanted = {i for _, conversation in rows for i in participant_ids(conversation)}
    accounts = {a.id: a for a in await session.scalars(
        select(Account).where(Account.id.in_(wanted)))} if wanted else {}
    result = []
    for last, conversation in rows:
        people = [accounts[i] for i in participant_ids(conversation) if i in accounts] or [viewer]
        result.append({
            "id": str(conversation.id),
            "unread": conversation.unread,
            "accounts": [account_to_entity(a, ctx) for a in people],
            "last_status": status_entities.get(last),
        })
    return result


def featured_tag_to_entity(view: FeaturedTagView, account: Account, ctx: EntityContext) -> Entity:
    """Mastodon's FeaturedTag; ``url``: the profile's posts with the tag, on the account's
    own server (a remote account's: under its profile URL, as Mastodon serves them)."""
    if account.is_local or not account.url:
        url = ctx.urls.tagged(account.username, view.tag.name)
    else:
        url = f"{account.url.rstrip('/')}/tagged/{quote(view.tag.name)}"
    return {
        "id": str(view.featured.id),
        "name": view.tag.display_name,
        "url": url,
        "statuses_count": str(view.statuses_count),  # a string, as Mastodon sends it
        "last_status_at": iso_date(view.last_status_at),
    }


def poll_to_entity(view: PollView) -> Entity:
    """Mastodon's Poll: the counts per option are hidden (null) until the end of a
    ``hide_totals`` poll; ``voted``/``own_votes`` only for a signed-in viewer."""
    poll = view.poll
    expired = poll.expired()
    show_totals = expired or not poll.hide_totals
    tallies = poll.tallies()
    entity: Entity = {
        "id": str(poll.id),
        "expires_at": iso(poll.expires_at),
        "expired": expired,
        "multiple": poll.multiple,
        "votes_count": poll.votes_count,
        "voters_count": poll.voters_count,
        "options": [{"title": title, "votes_count": tallies[i] if show_totals else None}
                    for i, title in enumerate(poll.options)],
        "emojis": [],
    }
    if view.voted is not None:
        entity["voted"] = view.voted
        entity["own_votes"] = view.own_votes or []
    return entity


async def status_edits_to_entities(session: AsyncSession, status: Status,
                                   versions: Sequence[StatusEdit], ctx: EntityContext) -> list[Entity]:
    """Mastodon's StatusEdit list (``GET /api/v1/statuses/:id/history``), oldest first.
    A version shows the images it had that the status still has (an image removed by an
    edit is taken down), each with the alt text it had then."""
    author = await session.get(Account, status.account_id)
    assert author is not None
    account = account_to_entity(author, ctx)
    wanted = {media_id for version in versions for media_id in version.media_ids or []}
    media = {m.id: m for m in await session.scalars(select(MediaAttachment).where(
        MediaAttachment.id.in_(wanted), MediaAttachment.status_id == status.id))} if wanted else {}
    entities = []
    for version in versions:
        attachments = []
        descriptions = list(version.media_descriptions or [])
        for index, media_id in enumerate(version.media_ids or []):
            if media_id not in media:
                continue
            attachment = media_to_entity(media[media_id], ctx, in_status=True)
            attachment["description"] = descriptions[index] if index < len(descriptions) else None
            attachments.append(attachment)
        entities.append({
            "content": version.content,
            "spoiler_text": version.spoiler_text,
            "sensitive": version.sensitive,
            "created_at": iso(version.created_at),
            "account": account,
            "poll": ({"options": [{"title": title} for title in version.poll_options]}
                     if version.poll_options is not None else None),
            "media_attachments": attachments,
            "emojis": [],
        })
    return entities


# ------------------------------------------------------------------ scheduled statuses

def scheduled_status_to_entity(view: ScheduledView, ctx: EntityContext) -> Entity:
    """Mastodon's ScheduledStatus: the time, the parameters it will be posted with (ids
    as strings) and its media."""
    scheduled = view.scheduled
    params = dict(scheduled.params)
    params["application_id"] = (str(scheduled.application_id)
                                if scheduled.application_id is not None else None)
    return {
        "id": str(scheduled.id),
        "scheduled_at": iso(scheduled.scheduled_at),
        "params": params,
        "media_attachments": [media_to_entity(medium, ctx, in_status=True)
                              for medium in view.media],
    }


# ------------------------------------------------- grouped notifications, policies, requests

def partial_account_to_entity(account: Account, ctx: EntityContext) -> Entity:
    """Mastodon's PartialAccountWithAvatar (``expand_accounts=partial_avatars``)."""
    full = account_to_entity(account, ctx)
    return {key: full[key] for key in
            ("id", "acct", "url", "avatar", "avatar_static", "locked", "bot")}


# Notification types whose group names a status (REST::NotificationGroupSerializer).
_STATUS_GROUP_TYPES = ("favourite", "reblog", "status", "mention", "poll", "update")


async def notification_groups_to_entity(
    session: AsyncSession, groups: Sequence[Any], ctx: EntityContext, viewer: Account, *,
    expand_accounts: str = "full",
) -> Entity:
    """Mastodon's GroupedNotificationsResults for ``groups``
    (``services.notification_groups.NotificationGroup``): each account and status once,
    referenced by id from the groups. With "partial_avatars" only each group's most recent
    sender is a full account, the other samples are partial ones. A group whose sender is
    gone, or whose status a filter hides, is left out."""
    account_ids = {i for group in groups for i in group.sample_account_ids}
    accounts = {a.id: a for a in await session.scalars(
        select(Account).where(Account.id.in_(account_ids)))} if account_ids else {}
    status_ids = {g.notification.status_id for g in groups if g.notification.status_id is not None}
    statuses = list(await session.scalars(select(Status).where(Status.id.in_(status_ids)))) \
        if status_ids else []
    status_entities = {int(e["id"]): e for e in await statuses_to_entities(
        session, statuses, ctx, viewer, filter_context="notifications")}
    warnings = await _notified_warnings(session, [g.notification for g in groups], ctx)
    reports = await _notified_reports(session, [g.notification for g in groups], ctx)
    full_ids: dict[int, None] = {}
    partial_ids: dict[int, None] = {}
    entities = []
    for group in groups:
        samples = [i for i in group.sample_account_ids if i in accounts]
        status_id = group.notification.status_id
        if not samples or (status_id is not None and status_id not in status_entities):
            continue
        if expand_accounts == "partial_avatars":
            full_ids.setdefault(samples[0])
            for other in samples[1:]:
                partial_ids.setdefault(other)
        else:
            for account_id in samples:
                full_ids.setdefault(account_id)
        entity: Entity = {
            "group_key": group.group_key,
            "notifications_count": group.notifications_count,
            "type": group.notification.type,
            "most_recent_notification_id": str(group.most_recent_notification_id),
        }
        if group.page_max_id is not None:
            entity["page_min_id"] = str(group.page_min_id or group.page_max_id)
            entity["page_max_id"] = str(group.page_max_id)
            entity["latest_page_notification_at"] = iso(group.latest_page_notification_at)
        entity["sample_account_ids"] = [str(i) for i in samples]
        if group.notification.type in _STATUS_GROUP_TYPES:
            entity["status_id"] = str(status_id) if status_id is not None else None
        if group.notification.type == "moderation_warning":
            entity["moderation_warning"] = warnings.get(
                group.notification.account_warning_id or 0)
        elif group.notification.type == "admin.report":
            entity["report"] = reports.get(group.notification.report_id or 0)
        entities.append(entity)
    result: Entity = {
        "accounts": [account_to_entity(accounts[i], ctx) for i in full_ids],
        "statuses": [status_entities[i] for i in dict.fromkeys(
            int(e["status_id"]) for e in entities if e.get("status_id"))],
        "notification_groups": entities,
    }
    if expand_accounts == "partial_avatars":
        result["partial_accounts"] = [partial_account_to_entity(accounts[i], ctx)
                                      for i in partial_ids if i not in full_ids]
    return result


def notification_policy_to_entity(policy: Any, summary: Any) -> Entity:
    """Mastodon 4.3's NotificationPolicy (v2); ``summary``: a ``PolicySummary``."""
    return {
        "for_not_following": policy.for_not_following,
        "for_not_followers": policy.for_not_followers,
        "for_new_accounts": policy.for_new_accounts,
        "for_private_mentions": policy.for_private_mentions,
        "for_limited_accounts": policy.for_limited_accounts,
        "summary": {"pending_requests_count": summary.pending_requests_count,
                    "pending_notifications_count": summary.pending_notifications_count},
    }


def v1_notification_policy_to_entity(policy: Any, summary: Any) -> Entity:
    """The v1 NotificationPolicy: each ``filter_*`` is true unless the v2 field accepts."""
    return {
        "filter_not_following": policy.for_not_following != "accept",
        "filter_not_followers": policy.for_not_followers != "accept",
        "filter_new_accounts": policy.for_new_accounts != "accept",
        "filter_private_mentions": policy.for_private_mentions != "accept",
        "summary": {"pending_requests_count": summary.pending_requests_count,
                    "pending_notifications_count": summary.pending_notifications_count},
    }


async def notification_requests_to_entities(
    session: AsyncSession, requests: Sequence[Any], ctx: EntityContext, viewer: Account,
) -> list[Entity]:
    """Mastodon's NotificationRequest for each ``NotificationRequest`` row (the count is a
    string, as Mastodon sends it); a request whose sender is gone is left out."""
    account_ids = {r.from_account_id for r in requests}
    accounts = {a.id: a for a in await session.scalars(
        select(Account).where(Account.id.in_(account_ids)))} if account_ids else {}
    status_ids = {r.last_status_id for r in requests if r.last_status_id is not None}
    statuses = list(await session.scalars(select(Status).where(Status.id.in_(status_ids)))) \
        if status_ids else []
    status_entities = {int(e["id"]): e for e in
                       await statuses_to_entities(session, statuses, ctx, viewer)}
    result = []
    for request in requests:
        sender = accounts.get(request.from_account_id)
        if sender is None:
            continue
        result.append({
            "id": str(request.id),
            "created_at": iso(request.created_at),
            "updated_at": iso(request.updated_at),
            "account": account_to_entity(sender, ctx),
            "notifications_count": str(request.notifications_count),
            "last_status": (status_entities.get(request.last_status_id)
                            if request.last_status_id is not None else None),
        })
    return result


def announcement_to_entity(view: AnnouncementView, ctx: EntityContext) -> Entity:
    """Mastodon's Announcement: the text linkified (mentions of known accounts and hashtags
    as a status's are), the accounts it mentions and the local statuses it links to (once
    ``announcements.with_references`` has looked them up), its hashtags, the reactions
    (``me``: the viewer's own); ``read`` only for a signed-in viewer. Easel has no custom
    emoji."""
    announcement = view.announcement
    entity: Entity = {
        "id": str(announcement.id),
        "content": render_status(announcement.text, view.mentions, ctx.urls.base),
        "starts_at": iso(announcement.starts_at),
        "ends_at": iso(announcement.ends_at),
        "all_day": announcement.all_day,
        "published_at": iso(announcement.published_at),
        "updated_at": iso(announcement.updated_at),
        "mentions": [{"id": str(a.id), "username": a.username, "url": a.url or a.uri,
                      "acct": a.acct()} for a in view.mentions],
        "statuses": [{"id": str(s.id), "url": s.url or s.uri} for s in view.statuses],
        "tags": [{"name": name, "url": f"{ctx.urls.base}/tags/{quote(normalize_tag(name))}"}
                 for name in extract_hashtags(announcement.text)],
        "emojis": [],
        "reactions": [{"name": r.name, "count": r.count, "me": r.me} for r in view.reactions],
    }
    if view.read is not None:
        entity["read"] = view.read
    return entity


def rule_to_entity(rule: Any) -> Entity:
    """Mastodon's Rule for an ``InstanceRule`` row."""
    return {"id": str(rule.id), "text": rule.text, "hint": rule.hint}


# ------------------------------------------- admin: reports, domain blocks and allows (H4)

def admin_report_to_entity(report: Any, parties: dict[int, Entity], statuses: list[Entity],
                           rules: list[Entity]) -> Entity:
    """Mastodon's ``Admin::Report``; ``parties`` maps account ids to their
    ``Admin::Account`` entities (reporter, target, assignee, resolver); ``rules``, the
    Rule entities of the instance rules it cites that still exist."""
    def party(account_id: int | None) -> Entity | None:
        return parties.get(account_id) if account_id is not None else None

    return {
        **_report_basics(report),
        "updated_at": iso(report.updated_at or report.created_at),
        "account": party(report.account_id),
        "target_account": party(report.target_account_id),
        "assigned_account": party(report.assigned_account_id),
        "action_taken_by_account": party(report.action_taken_by_account_id),
        "statuses": statuses,
        "rules": rules,
    }


def admin_domain_block_to_entity(block: Any) -> Entity:
    """Mastodon's ``Admin::DomainBlock``."""
    return {
        "id": str(block.id),
        "domain": block.domain,
        "digest": hashlib.sha256(block.domain.encode()).hexdigest(),
        "created_at": iso(block.created_at),
        "severity": block.severity,
        "reject_media": block.reject_media,
        "reject_reports": block.reject_reports,
        "private_comment": block.private_comment or None,
        "public_comment": block.public_comment or None,
        "obfuscate": block.obfuscate,
    }


def admin_domain_allow_to_entity(allow: Any) -> Entity:
    """Mastodon's ``Admin::DomainAllow``."""
    return {"id": str(allow.id), "domain": allow.domain, "created_at": iso(allow.created_at)}


def admin_ip_block_to_entity(block: Any) -> Entity:
    """Mastodon's ``Admin::IpBlock`` (``ip`` always with its prefix length)."""
    return {"id": str(block.id), "ip": block.ip, "severity": block.severity,
            "comment": block.comment, "created_at": iso(block.created_at),
            "expires_at": iso(block.expires_at)}


def canonical_email_block_to_entity(block: Any) -> Entity:
    """Mastodon's ``Admin::CanonicalEmailBlock``."""
    return {"id": str(block.id), "canonical_email_hash": block.canonical_email_hash}


def public_domain_block_to_entity(block: Any, *, with_comment: bool) -> Entity:
    """Mastodon's ``DomainBlock`` (``/api/v1/instance/domain_blocks``): an obfuscated
    block shows its domain partly starred; the digest always names the real one."""
    return {
        "domain": obfuscated(block.domain) if block.obfuscate else block.domain,
        "digest": hashlib.sha256(block.domain.encode()).hexdigest(),
        "severity": block.severity,
        "comment": (block.public_comment or None) if with_comment else None,
    }


# ------------------------------------------------------------------- moderation (admin)

def admin_account_to_entity(account: Account, user: User | None, ctx: EntityContext,
                            ips: Sequence[Any] = ()) -> Entity:
    """Mastodon's Admin::Account: the account with its login's standing (``user`` None for
    a remote account) and the addresses it was used from (``ips``: its ``UserIp`` rows,
    most recently used first; ``ip`` is the first)."""
    return {
        "id": str(account.id),
        "username": account.username,
        "domain": account.domain or None,
        "created_at": iso(account.created_at),
        "email": user.email if user is not None else "",
        "ip": ips[0].ip if ips else None,
        "ips": [{"ip": row.ip, "used_at": iso(row.used_at)} for row in ips],
        "locale": user.locale if user is not None else "",
        "invite_request": (user.reason or None) if user is not None else None,
        "role": {"id": "3" if user is not None and user.admin else "-99",
                 "name": "Admin" if user is not None and user.admin else "",
                 "color": "", "permissions": "1" if user is not None and user.admin else "0",
                 "highlighted": bool(user is not None and user.admin)},
        "confirmed": user.confirmed_at is not None if user is not None else True,
        "approved": user.approved if user is not None else True,
        "disabled": user.disabled if user is not None else False,
        "silenced": account.silenced_at is not None,
        "suspended": account.suspended_at is not None,
        "sensitized": account.sensitized_at is not None,
        "account": account_to_entity(account, ctx),
        "created_by_application_id": None,
        "invited_by_account_id": None,
    }


def appeal_to_entity(appeal: Any | None) -> Entity | None:
    """Mastodon's Appeal: the text and ``approved``, ``rejected`` or ``pending``."""
    return {"text": appeal.text, "state": appeal.state} if appeal is not None else None


def account_warning_to_entity(warning: Any, appeal: Any | None = None) -> Entity:
    """Mastodon's AccountWarning (``status_ids`` empty: Easel keeps none; the target
    account is the viewer), with its ``appeal`` and, Easel's, ``overruled_at``."""
    return {
        "id": str(warning.id),
        "action": warning.action,
        "text": warning.text,
        "status_ids": [],
        "report_id": str(warning.report_id) if warning.report_id is not None else None,
        "appeal": appeal_to_entity(appeal),
        "overruled_at": iso(warning.overruled_at),
        "created_at": iso(warning.created_at),
    }


def _suspended_account_to_entity(account: Account, ctx: EntityContext) -> Entity:
    """A suspended account as Mastodon shows it: its name and uri, no profile, and
    ``suspended: true`` (``server.services.moderation``)."""
    return {
        "id": str(account.id), "username": account.username, "acct": account.acct(),
        "display_name": "", "locked": False, "bot": False, "discoverable": False,
        "indexable": False, "group": False,
        "created_at": iso(account.created_at.replace(hour=0, minute=0, second=0, microsecond=0)),
        "note": "", "url": account.url or account.uri, "uri": account.uri,
        "avatar": ctx.urls.default_avatar, "avatar_static": ctx.urls.default_avatar,
        "header": ctx.urls.default_header, "header_static": ctx.urls.default_header,
        "followers_count": 0, "following_count": 0, "statuses_count": 0,
        "last_status_at": None, "hide_collections": True, "noindex": True, "emojis": [],
        "roles": [], "fields": [], "suspended": True,
    }


# ------------------------------------------------- moderation warning notifications

def moderation_warning_to_entity(warning: Any, target_account: Entity,
                                 appeal: Any | None = None) -> Entity:
    """Mastodon's AccountWarning as a ``moderation_warning`` notification carries it
    (``status_ids`` empty: Easel keeps none)."""
    return {
        "id": str(warning.id),
        "action": warning.action,
        "text": warning.text,
        "status_ids": [],
        "target_account": target_account,
        "appeal": appeal_to_entity(appeal),
        "created_at": iso(warning.created_at),
    }


async def _notified_warnings(session: AsyncSession, notifications: Sequence[Any],
                             ctx: EntityContext) -> dict[int, Entity]:
    """The warnings ``moderation_warning`` notifications tell of, by id (one query each
    for the warnings and their targets, none when there is no such notification)."""
    ids = {n.account_warning_id for n in notifications if n.account_warning_id is not None}
    if not ids:
        return {}
    found = list(await session.scalars(select(AccountWarning).where(AccountWarning.id.in_(ids))))
    targets = {a.id: a for a in await session.scalars(select(Account).where(
        Account.id.in_({w.target_account_id for w in found})))}
    appeals = await appeals_of(session, [w.id for w in found])
    return {w.id: moderation_warning_to_entity(
                w, account_to_entity(targets[w.target_account_id], ctx), appeals.get(w.id))
            for w in found if w.target_account_id in targets}


def _report_basics(report: Any) -> Entity:
    """What Mastodon's ``Report`` and ``Admin::Report`` share."""
    return {
        "id": str(report.id),
        "action_taken": report.action_taken_at is not None,
        "action_taken_at": iso(report.action_taken_at),
        "category": report.category,
        "comment": report.comment,
        "forwarded": report.forwarded,
        "created_at": iso(report.created_at),
    }


def report_to_entity(report: Report, target: Account, ctx: EntityContext) -> Entity:
    """Mastodon's ``Report`` (as its reporter, or a moderator's notification, shows it)."""
    return {
        **_report_basics(report),
        "status_ids": [str(status_id) for status_id in report.status_ids or []],
        "rule_ids": [str(rule_id) for rule_id in report.rule_ids] if report.rule_ids else None,
        "target_account": account_to_entity(target, ctx),
    }


async def _notified_reports(session: AsyncSession, notifications: Sequence[Any],
                            ctx: EntityContext) -> dict[int, Entity]:
    """The reports ``admin.report`` notifications tell of, by id (none when there is no
    such notification)."""
    ids = {n.report_id for n in notifications if getattr(n, "report_id", None) is not None}
    if not ids:
        return {}
    found = list(await session.scalars(select(Report).where(Report.id.in_(ids))))
    targets = {a.id: a for a in await session.scalars(select(Account).where(
        Account.id.in_({r.target_account_id for r in found})))}
    return {r.id: report_to_entity(r, targets[r.target_account_id], ctx)
            for r in found if r.target_account_id in targets}
