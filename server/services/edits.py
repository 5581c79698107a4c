"""Editing statuses, and the edit history Mastodon clients show.

Why it exists: Mastodon lets an author change a posted status's text, content warning,
sensitivity, language, media (which ones, their alt text and focal points) and poll, keeps
every version (``GET /api/v1/statuses/:id/history``) and tells other servers with
``Update(Note)``; remote authors' edits arrive the same way and are kept as history too.
This module is the one place for those rules:

* :func:`edit_status` — a local author's edit (``PUT /api/v1/statuses/:id``): validates
  everything first (nothing is written on bad input), applies what was sent — what was
  not sent is kept — and, when the status changed and is published, records the version
  (:func:`record_edit`), sets ``edited_at`` and records the ``Update`` for federation, in
  one transaction it commits. An edit that changes nothing changes nothing (no version,
  no ``edited_at``, no ``Update``), as in Mastodon; a new alt text or focal point is a
  change. A change of a work's portfolio data alone is not part of Mastodon's versions:
  it is federated (``Update``) without a version or ``edited_at``. A status still
  waiting for its images (unpublished: nobody else has seen it) is changed in place,
  without a version.
* :func:`current_version` / :func:`record_edit` — what :mod:`federation.notes` calls
  around a remote edit, so remote statuses get the same history, "update" notifications
  and stream event.
* :func:`status_history` — the versions, oldest first.

An image removed by an edit is detached and purged a day later with its files, like a
deleted status's (``statuses.DETACHED_MEDIA_TTL``): older versions do not show it. A
published status only takes images that are ready (the protect pipeline has finished):
publishing an unprotected rendition by an edit would break Easel's first promise.

What it must never do: edit another account's status or a boost, write a version for a
change that did not happen, import ``federation``, or publish an image before it is ready.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server import limits
from server.ids import utcnow
from server.models import (
    Account,
    MediaAttachment,
    MediaState,
    Mention,
    Notification,
    Poll,
    Status,
    StatusEdit,
    StatusTag,
    Work,
    WorkTag,
)
from server.models.scheduled import not_scheduled
from server.queue.jobs import enqueue
from server.queue.kinds import kind_named
from server.services import events, polls
from server.services.errors import NotFound, ServiceError, ValidationFailed
from server.services.languages import normalize_language
from server.services.link_cards import link_changed
from server.services.media import check_description, parse_focus
from server.services.notifications import notify
from server.services.outbox import record_activity
from server.services.polls import PollSpec
from server.services.portfolio import (
    WorkMeta,
    WorkView,
    ensure_work,
    recognise_hashtags,
    refresh_listed,
    set_work_metadata,
    validate_meta,
    work_metadata,
)
from server.services.statuses import (
    AUDIO_OR_VIDEO,
    DETACHED_MEDIA_TTL,
    PURGE_DETACHED_JOB,
    _mentioned_accounts,
    current_id,
    own_status,
    publish_if_ready,
    visible_status,
)
from server.services.tags import tags_for
from server.services.text import countable_length, extract_hashtags, extract_mentions, render_status
from server.settings import Settings

# Mastodon's text (media_attachments.validations.not_ready).
MEDIA_NOT_READY = "Cannot attach files that have not finished processing. Try again in a moment!"


@dataclass(frozen=True)
class MediaChange:
    """``media_attributes[]`` of an edit: new alt text and/or focal point of one image
    (None: unchanged; ``focus`` as Mastodon's ``"x,y"``)."""

    id: int
    description: str | None = None
    focus: str | None = None


@dataclass(frozen=True)
class Version:
    """A status as one version of its history shows it."""

    text: str
    content: str
    spoiler_text: str
    sensitive: bool
    language: str | None
    media_ids: tuple[int, ...]
    media_descriptions: tuple[str | None, ...]
    poll_options: tuple[str, ...] | None
    # Compared, not kept in the version's row (Mastodon's history has no column for them
    # either): a new focal point or a poll turned multiple-choice is still an edit.
    media_focuses: tuple[tuple[float, float], ...] = ()
    poll_multiple: bool | None = None

    def row(self, status: Status, *, created_at: Any) -> StatusEdit:
        values = asdict(self)
        del values["media_focuses"], values["poll_multiple"]
        values.update(media_ids=list(self.media_ids),
                      media_descriptions=list(self.media_descriptions),
                      poll_options=list(self.poll_options) if self.poll_options is not None
                      else None)
        return StatusEdit(status_id=status.id, account_id=status.account_id,
                          created_at=created_at, **values)


async def current_version(session: AsyncSession, status: Status) -> Version:
    """The status as it is now (read before a change, to be kept if the change is an edit)."""
    media = list(await session.scalars(select(MediaAttachment).where(
        MediaAttachment.status_id == status.id).order_by(MediaAttachment.id)))
    poll = await session.scalar(select(Poll).where(Poll.status_id == status.id))
    return Version(
        text=status.text, content=status.content, spoiler_text=status.spoiler_text,
        sensitive=status.sensitive, language=status.language,
        media_ids=tuple(m.id for m in media),
        media_descriptions=tuple(m.description or None for m in media),
        poll_options=tuple(poll.options or ()) if poll is not None else None,
        media_focuses=tuple((m.focus_x, m.focus_y) for m in media),
        poll_multiple=bool(poll.multiple) if poll is not None else None)


async def record_edit(session: AsyncSession, status: Status, before: Version) -> None:
    """After a published status was edited (its rows changed and ``edited_at`` set, not
    committed): keep ``before`` as the original if this is the first edit, and the new
    version; tell the local accounts that boosted it ("update", as Mastodon), and the
    streams. Local and remote edits alike."""
    await session.flush()
    first = await session.scalar(select(StatusEdit.id).where(
        StatusEdit.status_id == status.id).limit(1))
    if first is None:
        session.add(before.row(status, created_at=status.created_at))
    after = await current_version(session, status)
    session.add(after.row(status, created_at=status.edited_at or utcnow()))
    author = await session.get(Account, status.account_id)
    if author is not None:
        boosters = list(await session.scalars(select(Account).join(
            Status, Status.account_id == Account.id).where(
            Status.reblog_of_id == status.id, Status.published.is_(True),
            Account.domain == "")))
        if boosters:
            # One "update" notification per booster and status, the latest edit's.
            await session.execute(delete(Notification).where(
                Notification.type == "update", Notification.status_id == status.id,
                Notification.from_account_id == author.id,
                Notification.account_id.in_([b.id for b in boosters]))
                .execution_options(synchronize_session=False))
            for booster in boosters:
                await notify(session, booster, "update", author, status.id)
    events.status_edited(session, status.id)
    await link_changed(session, status, before.content)
    await session.flush()


async def status_history(session: AsyncSession, viewer: Account | None,
                         status_id: int) -> tuple[Status, list[StatusEdit]]:
    """A visible status and its versions, oldest first. A status never edited has one:
    itself (unsaved rows, as Mastodon answers)."""
    status = await visible_status(session, viewer, status_id)
    versions = list(await session.scalars(select(StatusEdit).where(
        StatusEdit.status_id == status.id).order_by(StatusEdit.created_at, StatusEdit.id)))
    if not versions:
        now = await current_version(session, status)
        versions = [now.row(status, created_at=status.edited_at or status.created_at)]
    return status, versions


# ---------------------------------------------------------------------------- editing

async def edit_status(
    session: AsyncSession,
    settings: Settings,
    account: Account,
    status_id: int,
    *,
    text: str | None = None,
    spoiler_text: str | None = None,
    sensitive: bool | None = None,
    language: str | None = None,
    media_ids: Sequence[int] | None = None,
    media_attributes: Sequence[MediaChange] = (),
    poll: PollSpec | None = None,
    remove_poll: bool = False,
    work: WorkMeta | None = None,
) -> Status:
    """Edit one of ``account``'s statuses, committed; returns it (under its current id).

    None (or, for ``media_ids``, not given) keeps that part as it is; ``media_ids=[]``
    removes every attachment, ``remove_poll`` the poll. ``work``: the work's new portfolio
    data (replacing all of it, as on create); without it a work keeps its data and gains
    the suggested terms its new hashtags name. ServiceError (422/404) with nothing
    written on bad input."""
    status = await own_status(session, account, status_id)
    if status.reblog_of_id is not None:
        raise NotFound("Record not found")
    # Lock the row: two edits at once must not both take the original as their "before".
    locked: Any = await session.execute(update(Status).where(Status.id == status.id)
                                        .values(replies_count=Status.replies_count)
                                        .execution_options(synchronize_session=False))
    if locked.rowcount != 1:  # published (renumbered) or deleted since it was read
        await session.rollback()
        raise NotFound("Record not found")
    await session.refresh(status)
    new_text = status.text if text is None else text.strip()
    new_spoiler = status.spoiler_text if spoiler_text is None else spoiler_text.strip()
    new_language = normalize_language(language) or status.language
    new_sensitive = (status.sensitive if sensitive is None else sensitive) or bool(new_spoiler)

    current_media = list(await session.scalars(select(MediaAttachment).where(
        MediaAttachment.status_id == status.id).order_by(MediaAttachment.id)))
    media = (current_media if media_ids is None
             else await _media_for(session, account, status, current_media, media_ids))
    changes = _checked_media_changes(media_attributes)
    has_poll = (await polls.poll_of(session, status.id)) is not None
    if media and (poll is not None or (has_poll and not remove_poll)):
        raise ServiceError(f"Cannot attach more than {limits.MAX_MEDIA_ATTACHMENTS} files")
    if not new_text and not media:
        raise ValidationFailed("Text can't be blank")
    length = (countable_length(new_text, limits.CHARACTERS_RESERVED_PER_URL)
              + countable_length(new_spoiler, limits.CHARACTERS_RESERVED_PER_URL))
    if length > limits.MAX_STATUS_CHARACTERS:
        raise ValidationFailed(f"Text character limit of {limits.MAX_STATUS_CHARACTERS} exceeded")
    has_images = any(m.type == "image" for m in media)
    if work is not None:
        validate_meta(work)
        if not has_images:
            raise ValidationFailed("A work needs at least one image")
    if poll is not None:
        polls.validate_poll(poll)

    before = await current_version(session, status)
    before_work = (await work_metadata(session, [status.id])).get(status.id)
    try:
        status.text, status.spoiler_text = new_text, new_spoiler
        status.sensitive, status.language = new_sensitive, new_language
        added_mentions = await _replace_mentions(session, settings, status)
        await _replace_media(session, status, current_media, media, changes)
        if poll is not None:
            await polls.attach_poll(session, status, poll)
        elif remove_poll:
            await polls.remove_poll(session, status)
        await _replace_work_and_tags(session, status, work, has_images=has_images,
                                     base_url=settings.base_url)
        await refresh_listed(session, status)
        await session.flush()
        after = await current_version(session, status)
        after_work = (await work_metadata(session, [status.id])).get(status.id)
        poll_edited = poll is not None or (remove_poll and has_poll)
        if after == before and _same_work(after_work, before_work) and not poll_edited:
            await session.rollback()
            return await own_status(session, account, status_id)
        if status.published:
            if after != before or poll_edited:
                status.edited_at = utcnow()
                await record_edit(session, status, before)
            else:
                # Only the portfolio data changed: it is not part of Mastodon's versions,
                # so no version and no edited_at (the post's words and images are as
                # they were); the Update still carries the data to other servers.
                events.status_edited(session, status.id)
            for mentioned in added_mentions:
                await notify(session, mentioned, "mention", account, status.id)
            await record_activity(session, account, "Update", object_uri=status.uri,
                                  object_type="Note", status_id=status.id)
            edited_id = status.id
        else:
            edited_id = status.id
            # Removing the images still in the pipeline may have made it ready: it gets
            # its published id then (statuses.publish_if_ready).
            await publish_if_ready(session, edited_id)
            edited_id = await current_id(session, edited_id)
        await session.commit()
    except IntegrityError:  # a row it refers to was deleted meanwhile
        await session.rollback()
        raise NotFound("Record not found") from None
    edited = await session.get(Status, edited_id, populate_existing=True)
    if edited is None:
        raise NotFound("Record not found")
    return edited


def _same_work(a: WorkView | None, b: WorkView | None) -> bool:
    return (a is None) == (b is None) and (a is None or b is None or (
        a.title, a.description, a.year, a.dimensions, a.ai_generated,
        {k: [t.key for t in v] for k, v in a.tags.items() if v},
    ) == (b.title, b.description, b.year, b.dimensions, b.ai_generated,
          {k: [t.key for t in v] for k, v in b.tags.items() if v}))


def _media_not_found(ids: Sequence[int]) -> str:
    return f"Media {', '.join(str(i) for i in ids)} not found or already attached to another post"


async def _media_for(session: AsyncSession, account: Account, status: Status,
                     current: list[MediaAttachment], media_ids: Sequence[int]
                     ) -> list[MediaAttachment]:
    """The attachments an edit asks for: the status's own, or the author's unattached
    uploads; in the order the entity shows them (by id). Validated as on create."""
    wanted = list(dict.fromkeys(media_ids))
    if len(wanted) > limits.MAX_MEDIA_ATTACHMENTS:
        raise ServiceError(f"Cannot attach more than {limits.MAX_MEDIA_ATTACHMENTS} files")
    found = {m.id: m for m in current if m.id in wanted}
    new_ids = [i for i in wanted if i not in found]
    if new_ids:
        for upload in await session.scalars(select(MediaAttachment).where(
                MediaAttachment.id.in_(new_ids), MediaAttachment.account_id == account.id,
                MediaAttachment.status_id.is_(None), MediaAttachment.purpose == "attachment",
                not_scheduled(MediaAttachment.id))):
            found[upload.id] = upload
    missing = [i for i in wanted if i not in found]
    if missing:
        raise ServiceError(_media_not_found(missing))
    media = sorted(found.values(), key=lambda m: m.id)
    if len(media) > 1 and any(m.type in AUDIO_OR_VIDEO for m in media):
        raise ServiceError("Cannot attach a video to a post that already contains images")
    if status.published and any(m.state != MediaState.READY.value for m in media
                                if m.id in new_ids):
        raise ServiceError(MEDIA_NOT_READY)
    return media


MediaUpdate = tuple[str | None, tuple[float, float] | None]  # checked alt text, focal point


def _checked_media_changes(changes: Sequence[MediaChange]) -> dict[int, MediaUpdate]:
    checked: dict[int, MediaUpdate] = {}
    for change in changes:
        checked[change.id] = (check_description(change.description), parse_focus(change.focus))
    return checked


async def _replace_mentions(session: AsyncSession, settings: Settings, status: Status) -> list[Account]:
    """The status's mentions as its new text names them; returns those added."""
    wanted = {a.id: a for a in await _mentioned_accounts(
        session, settings, extract_mentions(status.text))}
    current = set(await session.scalars(select(Mention.account_id).where(
        Mention.status_id == status.id)))
    removed = current - wanted.keys()
    if removed:
        await session.execute(delete(Mention).where(
            Mention.status_id == status.id, Mention.account_id.in_(removed))
            .execution_options(synchronize_session=False))
    added = [a for i, a in wanted.items() if i not in current]
    for account in added:
        session.add(Mention(status_id=status.id, account_id=account.id))
    await session.flush()
    return added


async def _replace_media(session: AsyncSession, status: Status, current: list[MediaAttachment],
                         wanted: list[MediaAttachment],
                         changes: dict[int, MediaUpdate]) -> None:
    wanted_ids = {m.id for m in wanted}
    removed = [m.id for m in current if m.id not in wanted_ids]
    if removed:
        await session.execute(update(MediaAttachment).where(MediaAttachment.id.in_(removed))
                              .values(status_id=None).execution_options(synchronize_session=False))
        for media in current:
            if media.id in removed:
                media.status_id = None
        if status.local:
            await enqueue(session, kind_named(PURGE_DETACHED_JOB), " ".join(map(str, removed)),
                          delay=DETACHED_MEDIA_TTL)
    current_ids = {m.id for m in current}
    added = [m.id for m in wanted if m.id not in current_ids]
    if added:
        # Claimed only if still unattached: a concurrent post cannot take them too.
        claimed: Any = await session.execute(
            update(MediaAttachment)
            .where(MediaAttachment.id.in_(added), MediaAttachment.status_id.is_(None),
                   not_scheduled(MediaAttachment.id))
            .values(status_id=status.id).execution_options(synchronize_session=False))
        if claimed.rowcount != len(added):
            await session.rollback()
            raise ServiceError(_media_not_found(added))
        for media in wanted:
            if media.id in added:
                media.status_id = status.id
    for media in wanted:
        description, focus = changes.get(media.id, (None, None))
        if description is not None:
            media.description = description
        if focus is not None:
            media.focus_x, media.focus_y = focus
    await session.flush()


async def _replace_work_and_tags(session: AsyncSession, status: Status, work: WorkMeta | None,
                                 *, has_images: bool, base_url: str) -> None:
    """Content, hashtags and portfolio data after the text or the images changed: a
    status with images is a work (its terms' hashtags join the content, as on create);
    one that lost its images is not a work any more."""
    hashtags = extract_hashtags(status.text)
    if has_images:
        if work is None:
            view = (await work_metadata(session, [status.id])).get(status.id)
            if view is None:
                await ensure_work(session, status)
                await recognise_hashtags(session, status, hashtags)
                view = (await work_metadata(session, [status.id])).get(status.id)
            else:
                await recognise_hashtags(session, status, hashtags)
                view = (await work_metadata(session, [status.id])).get(status.id)
            assert view is not None
            work = WorkMeta(title=view.title, description=view.description, year=view.year,
                            dimensions=view.dimensions, ai_generated=view.ai_generated,
                            tags={kind: [t.name for t in terms] for kind, terms in view.tags.items()})
        # Renders the content with the terms' hashtags and keeps the StatusTags right.
        await set_work_metadata(session, status, work)
        return
    await session.execute(delete(WorkTag).where(WorkTag.status_id == status.id)
                          .execution_options(synchronize_session=False))
    old_work = await session.get(Work, status.id)
    if old_work is not None:
        await session.delete(old_work)
    mentioned = list(await session.scalars(select(Account).join(
        Mention, Mention.account_id == Account.id).where(Mention.status_id == status.id)))
    status.content = render_status(status.text, mentioned, base_url)
    wanted = {t.id for t in await tags_for(session, hashtags)}
    have = set(await session.scalars(select(StatusTag.tag_id).where(
        StatusTag.status_id == status.id)))
    if have - wanted:
        await session.execute(delete(StatusTag).where(
            StatusTag.status_id == status.id, StatusTag.tag_id.in_(have - wanted))
            .execution_options(synchronize_session=False))
    for tag_id in wanted - have:
        session.add(StatusTag(status_id=status.id, tag_id=tag_id))
