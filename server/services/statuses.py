"""Posting statuses and acting on them: create, publish, delete, favourite, boost, bookmark.

Every use case here validates first and writes second, in one transaction it commits
itself, so bad input is refused with nothing written. Publishing — counters, mention and
"new post" notifications — happens in exactly one place, ``publish_if_ready``: a status
whose media are still in the protect pipeline is created unpublished (its author sees it,
nobody else does), and the media job calls ``publish_if_ready`` when the last image is
ready. Each change other servers should hear about is recorded, in the same transaction,
with :func:`server.services.outbox.record_activity` (a no-op for remote actors, so the
inbound handlers use the same functions): Create and Announce when published, Delete (with
its audience captured) or Undo(Announce) when deleted, Like and Undo(Like). This module
never imports ``federation``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from server import limits
from server.db import insert_ignoring_conflict
from server.ids import new_id, utcnow
from server.models import (
    VISIBILITIES,
    Account,
    Bookmark,
    ConversationMute,
    Favourite,
    Follow,
    IdempotencyKey,
    MediaAttachment,
    MediaState,
    Mention,
    Notification,
    Project,
    ProjectWork,
    Status,
    StatusAlias,
    StatusPin,
    StatusPreviewCard,
    StatusTag,
    Tombstone,
    User,
)
from server.models.scheduled import not_scheduled
from server.queue.jobs import enqueue
from server.queue.kinds import kind_named
from server.services import events, portfolio, thread_mutes
from server.services.accounts import listed_accounts
from server.services.conversations import record_direct_status
from server.services.errors import NotFound, ServiceError, ValidationFailed
from server.services.languages import normalize_language
from server.services.link_cards import queue_link_card
from server.services.notifications import notify
from server.services.outbox import record_activity
from server.services.polls import PollSpec, attach_poll, validate_poll
from server.services.portfolio import (
    WorkMeta,
    ensure_work,
    move_work,
    recognise_hashtags,
    refresh_listed,
    set_work_metadata,
    validate_meta,
    work_metadata,
)
from server.services.tags import tags_for
from server.services.text import (
    countable_length,
    extract_hashtags,
    extract_mentions,
    local_domain_of,
    mention_key,
    render_status,
)
from server.services.timelines import not_hidden_from, original_visible_to
from server.services.visibility import visible_to
from server.settings import Settings

# How long a deleted status's images are kept for its author to post them again ("delete
# and redraft": Mastodon keeps unattached media a day), then purged with their files.
DETACHED_MEDIA_TTL = timedelta(days=1)
PURGE_DETACHED_JOB = "purge_detached_media"  # protect/jobs.py

IDEMPOTENCY_WINDOW = timedelta(hours=1)
# How far /context walks up and down a thread (Mastodon's limits).
ANCESTORS_LIMIT = 40
DESCENDANTS_LIMIT = 4096
ANONYMOUS_DESCENDANTS_LIMIT = 60
# Visibilities a boost may have (a boost is never direct).
REBLOG_VISIBILITIES = ("public", "unlisted", "private")
AUDIO_OR_VIDEO = ("video", "gifv", "audio")



# ------------------------------------------------------------------------- helpers

async def _inserted(session: AsyncSession, model: Any, values: dict[str, Any],
                    conflict: list[str]) -> bool:
    """Insert a row unless one with the same ``conflict`` columns exists; True if inserted.
    NotFound if a row it refers to has just been deleted (a concurrent delete)."""
    try:
        result: Any = await session.execute(
            insert_ignoring_conflict(session, model, values, conflict))
    except IntegrityError:
        await session.rollback()
        raise NotFound("Record not found") from None
    return bool(result.rowcount)


def status_uri(settings: Settings, username: str, status_id: int) -> str:
    return f"{settings.base_url}/users/{username}/statuses/{status_id}"


def status_url(settings: Settings, username: str, status_id: int) -> str:
    return f"{settings.base_url}/@{username}/{status_id}"


async def current_id(session: AsyncSession, status_id: int) -> int:
    """The id a status has now: a status published after waiting for its media was given
    a new id then (see ``_renumber``); its old id still finds it."""
    moved = await session.scalar(select(StatusAlias.status_id).where(StatusAlias.old_id == status_id))
    return moved if moved is not None else status_id


async def _status_or_404(session: AsyncSession, status_id: int) -> Status:
    status = await session.get(Status, await current_id(session, status_id))
    if status is None:
        raise NotFound("Record not found")
    return status


def _readable_by(viewer: Account | None) -> ColumnElement[bool]:
    """A WHERE clause on ``Status``: what ``viewer`` may read by id. A boost only with its
    original (``timelines.original_visible_to``): its entity carries the original whole, so
    a boost must not show what its author's suspension or block now hides."""
    return and_(visible_to(viewer), original_visible_to(viewer))


async def visible_status(session: AsyncSession, viewer: Account | None, status_id: int) -> Status:
    """The status ``viewer`` may see, or NotFound (Mastodon answers 404 for both); a boost
    whose original it may not see is not found either."""
    status_id = await current_id(session, status_id)
    status = await session.scalar(select(Status).where(Status.id == status_id,
                                                       _readable_by(viewer)))
    if status is None:
        raise NotFound("Record not found")
    return status


async def _visible_original(session: AsyncSession, viewer: Account, status_id: int) -> Status:
    """The visible status, or the status a visible boost boosts (actions act on the original)."""
    status = await visible_status(session, viewer, status_id)
    if status.reblog_of_id is not None:
        status = await visible_status(session, viewer, status.reblog_of_id)
    return status


async def visible_statuses(session: AsyncSession, viewer: Account | None,
                           ids: Sequence[int]) -> list[Status]:
    """The statuses among ``ids`` that ``viewer`` may see (a boost only with its original),
    in the order asked for."""
    return await _in_order(session, ids, _readable_by(viewer))


async def _in_order(session: AsyncSession, ids: Sequence[int],
                    where: ColumnElement[bool]) -> list[Status]:
    """The statuses among ``ids`` that pass ``where``, in the order of ``ids``, each once."""
    if not ids:
        return []
    found = {s.id: s for s in await session.scalars(
        select(Status).where(Status.id.in_(set(ids)), where))}
    seen: set[int] = set()
    result = []
    for status_id in ids:
        if status_id in found and status_id not in seen:
            seen.add(status_id)
            result.append(found[status_id])
    return result


async def own_status(session: AsyncSession, account: Account, status_id: int) -> Status:
    """One of ``account``'s own statuses (or boosts), or NotFound."""
    status_id = await current_id(session, status_id)
    status = await session.scalar(
        select(Status).where(Status.id == status_id, Status.account_id == account.id))
    if status is None:
        raise NotFound("Record not found")
    return status


async def _mentioned_accounts(session: AsyncSession, settings: Settings,
                              mentions: list[tuple[str, str | None]]) -> list[Account]:
    """The known accounts among ``mentions`` (local ones, and remote ones already stored)."""
    local_domain = local_domain_of(settings.base_url)
    keys = {mention_key(username, domain, local_domain) for username, domain in mentions}
    if not keys:
        return []
    conditions = [and_(Account.username_key == username, Account.domain == domain)
                  for username, domain in keys]
    # federate: resolve unknown remote mentions through WebFinger here.
    return list(await session.scalars(select(Account).where(
        or_(*conditions), Account.actor_type != "Application").order_by(Account.id)))


# ------------------------------------------------------------------------- create

async def create_status(
    session: AsyncSession,
    settings: Settings,
    account: Account,
    application_id: int | None,
    *,
    text: str | None = None,
    media_ids: Sequence[int] = (),
    sensitive: bool | None = None,
    spoiler_text: str | None = None,
    visibility: str | None = None,
    in_reply_to_id: int | None = None,
    language: str | None = None,
    idempotency_key: str | None = None,
    work: WorkMeta | None = None,
    poll: PollSpec | None = None,
) -> Status:
    """Post a status for ``account``, committed. Published at once unless some of its media
    are still processing. Raises ServiceError (422/404) with nothing written on bad input.

    A status with images is a work: ``work`` is its portfolio data; without it, the
    hashtags of the text that name suggested terms become its tags."""
    text = (text or "").strip()
    spoiler_text = (spoiler_text or "").strip()
    key = idempotency_key_of(idempotency_key)
    if key is not None:
        earlier = await _idempotent_status(session, account, key)
        if earlier is not None:
            return earlier

    checked = await check_new_status(
        session, account, text=text, media_ids=media_ids, sensitive=sensitive,
        spoiler_text=spoiler_text, visibility=visibility, in_reply_to_id=in_reply_to_id,
        language=language, work=work, poll=poll)

    mentioned = await _mentioned_accounts(session, settings, extract_mentions(text))
    try:
        status = await _insert_status(
            session, settings, account, application_id, text=text, spoiler_text=spoiler_text,
            visibility=checked.visibility, sensitive=checked.sensitive,
            language=checked.language, parent=checked.parent,
            media=checked.media, mentioned=mentioned, key=key, work=work, poll=poll)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        # The same Idempotency-Key was used by a concurrent request that committed first.
        if key is not None:
            earlier = await _idempotent_status(session, account, key)
            if earlier is not None:
                return earlier
        # Otherwise a row it refers to (the parent, a mentioned account) was deleted meanwhile.
        raise NotFound("Record not found") from None
    return status


@dataclass(frozen=True)
class CheckedStatus:
    """What ``check_new_status`` settled about a new status: the defaults filled in, the
    parent and media found."""

    visibility: str
    sensitive: bool
    language: str | None
    parent: Status | None
    media: list[MediaAttachment]


async def check_new_status(
    session: AsyncSession, account: Account, *, text: str, media_ids: Sequence[int],
    sensitive: bool | None, spoiler_text: str, visibility: str | None,
    in_reply_to_id: int | None, language: str | None, work: WorkMeta | None,
    poll: PollSpec | None = None,
) -> CheckedStatus:
    """Validate a new status (``text`` and ``spoiler_text`` already stripped) as
    ``create_status`` does, writing nothing: ServiceError (422/404) on bad input. A
    scheduled status is checked this way when it is scheduled (services/scheduled.py)."""
    unique_media_ids = list(dict.fromkeys(media_ids))
    if len(unique_media_ids) > limits.MAX_MEDIA_ATTACHMENTS:
        raise ServiceError(f"Cannot attach more than {limits.MAX_MEDIA_ATTACHMENTS} files")
    if not text and not unique_media_ids:
        raise ValidationFailed("Text can't be blank")
    length = (countable_length(text, limits.CHARACTERS_RESERVED_PER_URL)
              + countable_length(spoiler_text, limits.CHARACTERS_RESERVED_PER_URL))
    if length > limits.MAX_STATUS_CHARACTERS:
        raise ValidationFailed(f"Text character limit of {limits.MAX_STATUS_CHARACTERS} exceeded")
    if work is not None:
        validate_meta(work)
        if not unique_media_ids:
            raise ValidationFailed("A work needs at least one image")

    user = await session.scalar(select(User).where(User.account_id == account.id))
    if visibility is None or visibility == "":
        visibility = user.default_privacy if user is not None else "public"
    if visibility not in VISIBILITIES:
        raise ValidationFailed("Visibility is not included in the list")
    language = normalize_language(language) or (user.default_language if user else None)
    if sensitive is None:
        sensitive = user.default_sensitive if user is not None else False
    sensitive = sensitive or bool(spoiler_text)

    parent: Status | None = None
    if in_reply_to_id is not None:
        parent = await visible_status(session, account, in_reply_to_id)
        if parent.reblog_of_id is not None:
            parent = await visible_status(session, account, parent.reblog_of_id)

    if poll is not None:
        validate_poll(poll)
        if unique_media_ids:  # Mastodon's answer to a poll with media
            raise ServiceError(f"Cannot attach more than {limits.MAX_MEDIA_ATTACHMENTS} files")
    media = await _media_to_attach(session, account, unique_media_ids)
    return CheckedStatus(visibility=visibility, sensitive=sensitive, language=language,
                         parent=parent, media=media)


async def _insert_status(
    session: AsyncSession, settings: Settings, account: Account, application_id: int | None, *,
    text: str, spoiler_text: str, visibility: str, sensitive: bool, language: str | None,
    parent: Status | None, media: list[MediaAttachment], mentioned: list[Account],
    key: str | None, work: WorkMeta | None = None, poll: PollSpec | None = None,
) -> Status:
    """Write a validated status with its mentions, tags, media and idempotency key, and
    publish it if it can be (not committed)."""
    status_id = new_id()
    status = Status(
        id=status_id, account_id=account.id,
        uri=status_uri(settings, account.username, status_id),
        url=status_url(settings, account.username, status_id),
        text=text, content=render_status(text, mentioned, settings.base_url),
        spoiler_text=spoiler_text, visibility=visibility, sensitive=sensitive,
        language=language,
        in_reply_to_id=parent.id if parent else None,
        in_reply_to_account_id=parent.account_id if parent else None,
        application_id=application_id, local=True, published=False, created_at=utcnow(),
    )
    session.add(status)
    await session.flush()
    for mentioned_account in mentioned:
        session.add(Mention(status_id=status.id, account_id=mentioned_account.id))
    for tag in await tags_for(session, extract_hashtags(text)):
        session.add(StatusTag(status_id=status.id, tag_id=tag.id))
    if media:
        # Claim the media only if still unattached: a concurrent post cannot take them too.
        claimed: Any = await session.execute(
            update(MediaAttachment)
            .where(MediaAttachment.id.in_([m.id for m in media]),
                   MediaAttachment.account_id == account.id,
                   MediaAttachment.status_id.is_(None), not_scheduled(MediaAttachment.id))
            .values(status_id=status.id)
            .execution_options(synchronize_session=False))
        if claimed.rowcount != len(media):
            await session.rollback()
            raise ServiceError(_media_not_found([m.id for m in media]))
        if work is not None:
            await set_work_metadata(session, status, work)
        elif any(m.type == "image" for m in media):
            await ensure_work(session, status)
            await recognise_hashtags(session, status, extract_hashtags(text))
    if key is not None:
        # An expired use of the key frees it; a live one makes this insert conflict.
        await session.execute(delete(IdempotencyKey).where(
            IdempotencyKey.account_id == account.id, IdempotencyKey.key == key,
            IdempotencyKey.created_at <= utcnow() - IDEMPOTENCY_WINDOW))
        session.add(IdempotencyKey(account_id=account.id, key=key, status_id=status.id,
                                   created_at=utcnow()))
    if poll is not None:
        await attach_poll(session, status, poll)
    await session.flush()
    await publish_if_ready(session, status.id, renumber=False)
    return status


def idempotency_key_of(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    return raw if len(raw) <= 255 else hashlib.sha256(raw.encode("utf-8")).hexdigest()


async def _idempotent_status(session: AsyncSession, account: Account, key: str) -> Status | None:
    status: Status | None = await session.scalar(
        select(Status).join(IdempotencyKey, IdempotencyKey.status_id == Status.id).where(
            IdempotencyKey.account_id == account.id, IdempotencyKey.key == key,
            IdempotencyKey.created_at > utcnow() - IDEMPOTENCY_WINDOW))
    return status


def _media_not_found(ids: Sequence[int]) -> str:
    return f"Media {', '.join(str(i) for i in ids)} not found or already attached to another post"


async def _media_to_attach(session: AsyncSession, account: Account,
                           media_ids: list[int]) -> list[MediaAttachment]:
    if not media_ids:
        return []
    found = {m.id: m for m in await session.scalars(select(MediaAttachment).where(
        MediaAttachment.id.in_(media_ids), MediaAttachment.account_id == account.id,
        MediaAttachment.status_id.is_(None), MediaAttachment.purpose == "attachment",
        not_scheduled(MediaAttachment.id)))}
    missing = [i for i in media_ids if i not in found]
    if missing:
        raise ServiceError(_media_not_found(missing))
    media = [found[i] for i in media_ids]
    if len(media) > 1 and any(m.type in AUDIO_OR_VIDEO for m in media):
        raise ServiceError("Cannot attach a video to a post that already contains images")
    return media


# ------------------------------------------------------------------------ publish

# Rows that point at a status by id, moved along when a status is renumbered.
_STATUS_REFERENCES: tuple[tuple[Any, str], ...] = (
    (Mention, "status_id"), (StatusTag, "status_id"), (MediaAttachment, "status_id"),
    (Favourite, "status_id"), (Bookmark, "status_id"), (IdempotencyKey, "status_id"),
    (Notification, "status_id"), (StatusAlias, "status_id"),
    (Status, "in_reply_to_id"), (Status, "reblog_of_id"),
    (StatusPin, "status_id"), (ProjectWork, "status_id"), (Project, "cover_status_id"),
    (StatusPreviewCard, "status_id"),
)


async def _renumber(session: AsyncSession, status: Status, now: datetime) -> Status:
    """Give a status that waited for its media a new id as of ``now``, so it enters
    timelines (and ``since_id`` polling) when it becomes visible, not when it was drafted.

    The row is copied under the new id, everything that referred to the old id is moved
    over, the old row is deleted, and the old id is kept as an alias. Nobody but its author
    has seen it yet, and it has not been federated, so its uri can change too.
    """
    old_id, new = status.id, new_id(now)
    values = {column.key: getattr(status, column.key) for column in Status.__mapper__.columns}
    suffix = f"/{old_id}"
    values.update(
        id=new, created_at=now,
        uri=(status.uri[: -len(suffix)] + f"/{new}") if status.uri.endswith(suffix) else status.uri,
        url=(status.url[: -len(suffix)] + f"/{new}") if status.url.endswith(suffix) else status.url,
    )
    # The uri is unique: free it before the copy is inserted.
    await session.execute(update(Status).where(Status.id == old_id)
                          .values(uri=f"{status.uri}#renumbered")
                          .execution_options(synchronize_session=False))
    await session.execute(insert(Status).values(**values))
    await move_work(session, old_id, new)
    for model, column in _STATUS_REFERENCES:
        await session.execute(update(model).where(getattr(model, column) == old_id)
                              .values({column: new}).execution_options(synchronize_session=False))
    await session.execute(delete(Status).where(Status.id == old_id)
                          .execution_options(synchronize_session=False))
    session.add(StatusAlias(old_id=old_id, status_id=new))
    await session.flush()
    session.expunge(status)
    renumbered = await session.get(Status, new, populate_existing=True)
    assert renumbered is not None
    return renumbered


async def publish_if_ready(session: AsyncSession, status_id: int, *, renumber: bool = True) -> bool:
    """Publish an unpublished status once all its media are ready; True if it did now.

    Runs inside the caller's transaction and never commits (the media job calls it when
    it marks media ready). The status row is locked first, so two media finishing at once
    cannot both miss — or both do — the publishing. Side effects, here and nowhere else:
    the author's statuses_count and last_status_at, the parent's replies_count, a boost's
    reblogs_count, and the "mention", "status" and "reblog" notifications.
    """
    status = await session.scalar(
        select(Status).where(Status.id == status_id).with_for_update()
        .execution_options(populate_existing=True))
    if status is None or status.published:
        return False
    not_ready = await session.scalar(select(func.count()).select_from(MediaAttachment).where(
        MediaAttachment.status_id == status_id, MediaAttachment.state != MediaState.READY.value))
    if not_ready:
        return False
    now = utcnow()
    changed: Any = await session.execute(
        update(Status).where(Status.id == status_id, Status.published.is_(False))
        .values(published=True, published_at=now).execution_options(synchronize_session=False))
    if not changed.rowcount:
        return False
    status.published = True
    status.published_at = now
    if renumber:
        status = await _renumber(session, status, now)

    await session.execute(update(Account).where(Account.id == status.account_id).values(
        statuses_count=Account.statuses_count + 1, last_status_at=now))
    if status.in_reply_to_id is not None:
        await session.execute(update(Status).where(Status.id == status.in_reply_to_id).values(
            replies_count=Status.replies_count + 1))
    author = await session.get(Account, status.account_id)
    assert author is not None
    events.status_published(session, status.id)

    if status.reblog_of_id is not None:
        await session.execute(update(Status).where(Status.id == status.reblog_of_id).values(
            reblogs_count=Status.reblogs_count + 1))
        original = await session.get(Status, status.reblog_of_id)
        if original is not None:
            original_author = await session.get(Account, original.account_id)
            if original_author is not None:
                await notify(session, original_author, "reblog", author, original.id)
            # The Announce's id is the boost's uri (which ends in /activity).
            await record_activity(session, author, "Announce", object_uri=original.uri,
                                  uri=status.uri, object_type="Note", status_id=status.id)
        return True

    await refresh_listed(session, status)
    for mentioned in await session.scalars(select(Account).join(
            Mention, Mention.account_id == Account.id).where(Mention.status_id == status.id)):
        await notify(session, mentioned, "mention", author, status.id)
    await record_direct_status(session, status)
    # Mastodon notifies subscribers ("notify" on the follow) of posts that reach their home
    # feed: not direct messages, and not replies to other people.
    replies_to_other = (status.in_reply_to_account_id is not None
                        and status.in_reply_to_account_id != status.account_id)
    if status.visibility != "direct" and not replies_to_other:
        for follower in await session.scalars(select(Account).join(
                Follow, Follow.account_id == Account.id).where(
                Follow.target_account_id == status.account_id, Follow.notify.is_(True))):
            await notify(session, follower, "status", author, status.id)
    await record_activity(session, author, "Create", object_uri=status.uri,
                          uri=create_uri(status.uri), object_type="Note", status_id=status.id)
    await queue_link_card(session, status)
    if await session.scalar(select(StatusPin.id).where(StatusPin.status_id == status.id,
                                                       StatusPin.account_id == author.id)):
        # pinned while it waited: its followers learn of the pin now, under its final uri
        await record_activity(session, author, "Add", object_uri=status.uri, object_type="Note")
    return True


def create_uri(status_uri: str) -> str:
    """The id of a status's Create (served at ``…/statuses/{id}/activity``)."""
    return f"{status_uri}/activity"


# ------------------------------------------------------------------- portfolio data

WORK_FIELDS = ("title", "description", "year", "dimensions", "tags", "ai_generated")


async def visible_work(session: AsyncSession, viewer: Account | None, status_id: int) -> Status:
    """A status that is a work (it has images), if ``viewer`` may see it; else NotFound."""
    status = await visible_status(session, viewer, status_id)
    if status.reblog_of_id is not None or not await work_metadata(session, [status.id]):
        raise NotFound("Record not found")
    return status


async def edit_work(session: AsyncSession, account: Account, status_id: int,
                    meta: WorkMeta, *, given: Sequence[str] | None = None) -> Status:
    """Replace the portfolio data of one of the account's own works (``given``: only
    those of ``WORK_FIELDS``, keeping the others; for ``tags``, only the kinds in
    ``meta.tags``), committed. A published work's change is federated as an Update(Note)
    (its hashtags changed too)."""
    status = await own_status(session, account, status_id)
    if status.reblog_of_id is not None:
        raise NotFound("Record not found")
    has_images = await session.scalar(select(func.count()).select_from(MediaAttachment).where(
        MediaAttachment.status_id == status.id, MediaAttachment.type == "image"))
    if not has_images:
        raise ValidationFailed("A work needs at least one image")
    if given is not None:
        current = (await work_metadata(session, [status.id])).get(status.id)
        if current is not None:
            tags = {kind: [t.name for t in terms] for kind, terms in current.tags.items()}
            tags.update(meta.tags)
            meta = WorkMeta(
                title=meta.title if "title" in given else current.title,
                description=meta.description if "description" in given else current.description,
                year=meta.year if "year" in given else current.year,
                dimensions=meta.dimensions if "dimensions" in given else current.dimensions,
                tags=tags,
                ai_generated=meta.ai_generated if "ai_generated" in given else current.ai_generated)
    await set_work_metadata(session, status, meta)
    if status.published:
        # Portfolio data is not part of a status's versions (Mastodon's edit history), so
        # it neither sets edited_at nor makes a version, as an edit of it through PUT
        # /api/v1/statuses/:id does not (server/services/edits.py); others still hear of it.
        await record_activity(session, account, "Update", object_uri=status.uri,
                              object_type="Note", status_id=status.id)
    await session.commit()
    await session.refresh(status)
    return status


# ------------------------------------------------------------------------- delete

async def delete_status(session: AsyncSession, status: Status) -> None:
    """Delete one of an account's statuses (or boosts), committed, keeping every counter
    right. Its media are detached, not deleted, so the author can redraft with them for a
    day (``DETACHED_MEDIA_TTL``); then the ``purge_detached_media`` job deletes those not
    attached again, with their files. Favourites, bookmarks, mentions, tags and
    notifications go with it (foreign keys)."""
    # Lock the row, so a concurrent publish or delete sees the final state.
    await session.execute(update(Status).where(Status.id == status.id)
                          .values(replies_count=Status.replies_count))
    current = await session.scalar(select(Status).where(Status.id == status.id)
                                   .execution_options(populate_existing=True))
    if current is None:
        return
    await _record_deletion(session, current)
    if current.published:
        await _decrement(session, Account, current.account_id, Account.statuses_count)
        if current.in_reply_to_id is not None:
            await _decrement(session, Status, current.in_reply_to_id, Status.replies_count)
        if current.reblog_of_id is not None:
            await _decrement(session, Status, current.reblog_of_id, Status.reblogs_count)
    # Its boosts go with it; each booster's count goes down.
    boosts: dict[int, int] = defaultdict(int)
    for booster_id, published in (await session.execute(
            select(Status.account_id, Status.published).where(
                Status.reblog_of_id == current.id))).all():
        if published:
            boosts[booster_id] += 1
    for booster_id, count in boosts.items():
        await _decrement(session, Account, booster_id, Account.statuses_count, count)
    await session.execute(delete(Status).where(Status.reblog_of_id == current.id))
    media_ids = list(await session.scalars(select(MediaAttachment.id).where(
        MediaAttachment.status_id == current.id)))
    await session.execute(update(MediaAttachment).where(MediaAttachment.status_id == current.id)
                          .values(status_id=None).execution_options(synchronize_session=False))
    if media_ids and current.local:  # kept a day for a redraft, then deleted with their files
        await enqueue(session, kind_named(PURGE_DETACHED_JOB), " ".join(map(str, media_ids)),
                      delay=DETACHED_MEDIA_TTL)
    await events.status_deleted(session, current)  # before its mentions go with it
    await session.execute(delete(Status).where(Status.id == current.id)
                          .execution_options(synchronize_session=False))
    await session.commit()


async def _record_deletion(session: AsyncSession, status: Status) -> None:
    """Before a local status's rows go: its Tombstone, and the Delete (or, for a boost,
    the Undo of its Announce) with the audience it had, which the job can no longer read.
    Nothing is recorded for a status that was never published (never federated)."""
    if not status.local:
        return
    author = await session.get(Account, status.account_id)
    if author is None:
        return
    if status.reblog_of_id is not None:
        original = await session.get(Status, status.reblog_of_id)
        if status.published and original is not None:
            published = status.published_at or status.created_at
            await record_activity(
                session, author, "Undo", object_uri=original.uri, uri=f"{status.uri}/undo",
                object_type="Announce", boost_uri=status.uri, visibility=status.visibility,
                original_visibility=original.visibility,
                original_author_id=original.account_id, published_at=published.isoformat())
        return
    await session.execute(insert_ignoring_conflict(
        session, Tombstone, {"id": new_id(), "uri": status.uri, "account_id": author.id,
                             "created_at": utcnow()}, ["uri"]))
    if not status.published:
        return
    mentioned = list(await session.scalars(
        select(Mention.account_id).where(Mention.status_id == status.id)))
    await record_activity(
        session, author, "Delete", object_uri=status.uri, uri=f"{status.uri}#delete",
        object_type="Note", visibility=status.visibility, mentioned_ids=mentioned,
        parent_author_id=status.in_reply_to_account_id,
        reached_ids=await _reached_account_ids(session, status))


def reached_by(status: Status) -> CompoundSelect[tuple[int]]:
    """The accounts that boosted, favourited or replied to ``status`` (ids): their servers
    hold a copy (a boost, a reply in its thread), so a public or unlisted status's Update
    and Delete go to them too, Mastodon's StatusReachFinder (``federation.outbox``)."""
    return union(
        select(Status.account_id).where(Status.reblog_of_id == status.id),
        select(Favourite.account_id).where(Favourite.status_id == status.id),
        select(Status.account_id).where(Status.in_reply_to_id == status.id))


async def _reached_account_ids(session: AsyncSession, status: Status) -> list[int]:
    """The remote accounts a public or unlisted status reached (:func:`reached_by`): its
    boosts and favourites go with it, so the Delete's payload keeps them."""
    if status.visibility not in ("public", "unlisted"):
        return []
    return list(await session.scalars(select(Account.id).where(
        Account.domain != "", Account.id.in_(reached_by(status))).order_by(Account.id)))


async def _decrement(session: AsyncSession, model: Any, row_id: int,
                     column: InstrumentedAttribute[int], amount: int = 1) -> None:
    """One UPDATE that lowers a counter by ``amount``, never below zero."""
    await session.execute(update(model).where(model.id == row_id).values(
        {column: case((column > amount, column - amount), else_=0)}))


# ---------------------------------------------------------------- favourite, bookmark

async def favourite(session: AsyncSession, account: Account, status_id: int, *,
                    uri: str | None = None) -> Status:
    """Favourite a visible status (idempotent), committed; notifies its author once.

    A local account's favourite is federated as a Like whose id is stored on the row; a
    remote account's (an inbound Like) keeps ``uri``, the remote activity's id."""
    status = await _visible_original(session, account, status_id)
    favourite_id = new_id()
    like_uri = like_activity_uri(account, favourite_id) if account.is_local else uri
    if await _inserted(session, Favourite, {"id": favourite_id, "account_id": account.id,
                                            "status_id": status.id, "uri": like_uri,
                                            "created_at": utcnow()},
                       ["account_id", "status_id"]):
        await session.execute(update(Status).where(Status.id == status.id).values(
            favourites_count=Status.favourites_count + 1))
        author = await session.get(Account, status.account_id)
        if author is not None:
            await notify(session, author, "favourite", account, status.id)
        await record_activity(session, account, "Like", object_uri=status.uri, uri=like_uri,
                              object_type="Note", status_id=status.id)
    await session.commit()
    await session.refresh(status)
    return status


async def unfavourite(session: AsyncSession, account: Account, status_id: int) -> Status:
    """Take a favourite back (idempotent), committed. A favourited status can be
    unfavourited even if its author has since hidden it from the viewer."""
    status = await _status_or_404(session, status_id)
    if status.reblog_of_id is not None:
        status = await _status_or_404(session, status.reblog_of_id)
    removed = (await session.execute(delete(Favourite).where(
        Favourite.account_id == account.id, Favourite.status_id == status.id)
        .returning(Favourite.uri).execution_options(synchronize_session=False))).first()
    if removed is not None:
        await _decrement(session, Status, status.id, Status.favourites_count)
        if removed.uri:  # a favourite made before federation was never sent
            await record_activity(session, account, "Undo", object_uri=status.uri,
                                  uri=f"{removed.uri}/undo", object_type="Like",
                                  like_uri=removed.uri, author_id=status.account_id)
    else:
        await visible_status(session, account, status.id)
    await session.commit()
    await session.refresh(status)
    return status


def like_activity_uri(account: Account, favourite_id: int) -> str:
    """The id of a local favourite's Like (Mastodon's ``…/users/alice#likes/123``)."""
    return f"{account.uri}#likes/{favourite_id}"


async def bookmark(session: AsyncSession, account: Account, status_id: int) -> Status:
    status = await _visible_original(session, account, status_id)
    await _inserted(session, Bookmark, {"id": new_id(), "account_id": account.id,
                                        "status_id": status.id, "created_at": utcnow()},
                    ["account_id", "status_id"])
    await session.commit()
    return status


async def unbookmark(session: AsyncSession, account: Account, status_id: int) -> Status:
    status = await _status_or_404(session, status_id)
    if status.reblog_of_id is not None:
        status = await _status_or_404(session, status.reblog_of_id)
    removed: Any = await session.execute(delete(Bookmark).where(
        Bookmark.account_id == account.id, Bookmark.status_id == status.id))
    if not removed.rowcount:
        await visible_status(session, account, status.id)
    await session.commit()
    return status


# ------------------------------------------------------------------ muted threads

async def mute_conversation(session: AsyncSession, account: Account, status_id: int) -> Status:
    """Mute the thread of a visible status (of the status a boost boosts) for ``account``,
    idempotent, committed (``server.services.thread_mutes``: the thread is its root)."""
    status = await _visible_original(session, account, status_id)
    path = await thread_mutes.ancestors(session, status.id)
    await _inserted(session, ConversationMute, {"id": new_id(), "account_id": account.id,
                                                "thread_id": path[-1], "created_at": utcnow()},
                    ["account_id", "thread_id"])
    await session.commit()
    return status


async def unmute_conversation(session: AsyncSession, account: Account, status_id: int) -> Status:
    """Lift ``account``'s mute of the thread of a visible status: any muted root on the way
    up from it (idempotent), committed."""
    status = await _visible_original(session, account, status_id)
    path = await thread_mutes.ancestors(session, status.id)
    await session.execute(delete(ConversationMute).where(
        ConversationMute.account_id == account.id, ConversationMute.thread_id.in_(path)))
    await session.commit()
    return status


# ----------------------------------------------------------------------- boosts

async def reblog(session: AsyncSession, settings: Settings, account: Account, status_id: int,
                 visibility: str | None = None, *, uri: str | None = None) -> Status:
    """Boost a visible status (idempotent: an existing boost is returned), committed.
    Returns the boost. Direct statuses and other people's private ones cannot be boosted
    (403, as Mastodon); a boost of one's own private status stays private.

    A local boost's uri is its Announce's id (``…/statuses/{id}/activity``); a remote
    account's boost (an inbound Announce) takes ``uri``, the Announce's id."""
    if not account.is_local and not uri:
        raise ValidationFailed("A remote boost needs the Announce's id")
    original = await _visible_original(session, account, status_id)
    if visibility is not None and visibility != "" and visibility not in REBLOG_VISIBILITIES:
        raise ValidationFailed("Visibility is not included in the list")
    owned = original.account_id == account.id
    if original.visibility == "direct" or (original.visibility == "private" and not owned):
        raise ServiceError("This action is not allowed", 403)
    if not original.published:
        raise ValidationFailed("Status is not published yet")
    # Lock the original's row: two boosts at once must not both insert.
    await session.execute(update(Status).where(Status.id == original.id)
                          .values(reblogs_count=Status.reblogs_count))
    existing = await session.scalar(select(Status).where(
        Status.account_id == account.id, Status.reblog_of_id == original.id))
    if existing is not None:
        await session.commit()
        return existing
    if original.visibility == "private":
        visibility = "private"
    elif not visibility:
        user = await session.scalar(select(User).where(User.account_id == account.id))
        default = user.default_privacy if user is not None else "public"
        visibility = default if default in REBLOG_VISIBILITIES else "public"
    boost_id = new_id()
    if account.is_local:
        boost_uri = status_uri(settings, account.username, boost_id) + "/activity"
        boost_url = status_url(settings, account.username, boost_id)
    else:
        assert uri is not None
        boost_uri = boost_url = uri
    boost = Status(
        id=boost_id, account_id=account.id, uri=boost_uri, url=boost_url,
        reblog_of_id=original.id, visibility=visibility, local=account.is_local,
        published=False, created_at=utcnow())
    session.add(boost)
    try:
        await session.flush()
    except IntegrityError:  # the original was deleted meanwhile
        await session.rollback()
        raise NotFound("Record not found") from None
    await publish_if_ready(session, boost.id, renumber=False)
    await session.commit()
    return boost


async def unreblog(session: AsyncSession, account: Account, status_id: int) -> Status:
    """Undo the account's boost of a status (idempotent), committed; returns the original."""
    original = await _status_or_404(session, status_id)
    if original.reblog_of_id is not None:
        original = await _status_or_404(session, original.reblog_of_id)
    boost = await session.scalar(select(Status).where(
        Status.account_id == account.id, Status.reblog_of_id == original.id))
    if boost is None:
        return await visible_status(session, account, original.id)
    await delete_status(session, boost)
    await session.refresh(original)
    return original


# ------------------------------------------------------------------------- reading

class PageLike(Protocol):
    """What the API's pagination offers (``server.api.pagination.Page``)."""

    def apply(self, query: Any, column: InstrumentedAttribute[int]) -> Any: ...

    def arrange(self, rows: Sequence[Any]) -> list[Any]: ...


def _listed_and_active() -> ColumnElement[bool]:
    """A WHERE clause on ``Account``: whom a list of accounts shows — those whose profile
    the API shows (``accounts.listed_accounts``) and that are not suspended (Mastodon's
    ``without_suspended``; a suspended account's profile is bare, ``api.entities``)."""
    return and_(listed_accounts(), Account.suspended_at.is_(None))


async def favourited_by(session: AsyncSession, viewer: Account | None, status_id: int,
                        page: PageLike) -> list[tuple[int, Account]]:
    """(favourite id, account) of a visible status's favouriters, newest first; suspended
    and unlisted accounts left out (their favourites stay, and count)."""
    status = await visible_status(session, viewer, status_id)
    query = select(Favourite.id, Account).join(Account, Account.id == Favourite.account_id) \
        .where(Favourite.status_id == status.id, _listed_and_active())
    rows = (await session.execute(page.apply(query, Favourite.id))).all()
    return [(row[0], row[1]) for row in page.arrange(rows)]


async def reblogged_by(session: AsyncSession, viewer: Account | None, status_id: int,
                       page: PageLike) -> list[tuple[int, Account]]:
    """(boost id, account) of the boosts of a visible status the viewer may see, by
    accounts neither suspended nor unlisted."""
    status = await visible_status(session, viewer, status_id)
    query = select(Status.id, Account).join(Account, Account.id == Status.account_id) \
        .where(Status.reblog_of_id == status.id, visible_to(viewer), _listed_and_active())
    rows = (await session.execute(page.apply(query, Status.id))).all()
    return [(row[0], row[1]) for row in page.arrange(rows)]


@dataclass
class Context:
    ancestors: list[Status]
    descendants: list[Status]


async def context(session: AsyncSession, viewer: Account | None, status_id: int) -> Context:
    """A visible status's thread: ancestors oldest first, descendants in reading order
    (depth first, oldest reply first), each filtered by what ``viewer`` may see.

    The statuses of accounts ``viewer`` has hidden — blocked, muted, on a blocked domain
    (``timelines.not_hidden_from``) — are left out too, as Mastodon's ``StatusFilter``
    does. Each status is judged alone: the replies under a hidden one stay when their own
    authors are not hidden, so a thread is not cut short by someone else's reply. The
    status asked for is shown whoever wrote it (``visible_status``)."""
    status = await visible_status(session, viewer, status_id)

    ancestor_ids: list[int] = []
    parent_id = status.in_reply_to_id
    while parent_id is not None and len(ancestor_ids) < ANCESTORS_LIMIT \
            and parent_id not in ancestor_ids:
        ancestor_ids.append(parent_id)
        parent_id = await session.scalar(select(Status.in_reply_to_id).where(Status.id == parent_id))
    ancestor_ids.reverse()

    limit = DESCENDANTS_LIMIT if viewer is not None else ANONYMOUS_DESCENDANTS_LIMIT
    children: dict[int, list[int]] = defaultdict(list)
    frontier = [status.id]
    seen = {status.id}
    total = 0
    while frontier and total < limit:
        rows = (await session.execute(
            select(Status.id, Status.in_reply_to_id).where(Status.in_reply_to_id.in_(frontier))
            .order_by(Status.id))).all()
        frontier = []
        for child_id, parent in rows:
            if child_id in seen or parent is None:
                continue
            seen.add(child_id)
            children[parent].append(child_id)
            frontier.append(child_id)
            total += 1
    descendant_ids: list[int] = []
    stack = list(reversed(children[status.id]))
    while stack:
        current = stack.pop()
        descendant_ids.append(current)
        stack.extend(reversed(children.get(current, [])))

    shown = and_(_readable_by(viewer), not_hidden_from(viewer))
    ancestors = await _in_order(session, ancestor_ids, shown)
    descendants = await _in_order(session, descendant_ids[:limit], shown)
    return Context(ancestors, descendants)


async def pin_status(session: AsyncSession, account: Account, status_id: int) -> Status:
    """Pin one of the account's own public or unlisted statuses (Mastodon's rules)."""
    status = await visible_status(session, account, status_id)
    return await portfolio.pin(session, account, status)


async def unpin_status(session: AsyncSession, account: Account, status_id: int) -> Status:
    status = await visible_status(session, account, status_id)
    return await portfolio.unpin(session, account, status)


async def status_source(session: AsyncSession, account: Account, status_id: int) -> Status:
    """The author's own status, for GET /source (others: NotFound)."""
    return await own_status(session, account, status_id)
