"""Announcements: the admins' notices to everyone signed in, as Mastodon's.

Why it exists: a community's admins need to tell their members things (maintenance
tonight, new rules, a meet-up) where the members already look: Mastodon apps show the
server's announcements (``GET /api/v1/announcements``) above the home timeline, let each
person mark one read (``dismiss``) and react with emoji, and the streaming API pushes new
ones, withdrawn ones and reaction counts. Admins write them with ``easel admin
announcement`` or the admin pages; a draft is seen by nobody until published.

Rules are Mastodon's: an announcement's text is required; ``starts_at`` and ``ends_at``
(when what it announces happens) go together, the end after the start; a reaction is one
Unicode emoji (Easel has no custom emoji), at most ``MAX_REACTION_KINDS`` different ones
per announcement, each person's once. Listing shows the published ones, oldest first
(by start, then publication), and — unlike Mastodon, which keeps them until an admin
unpublishes them — no longer once their end has passed.

What it must never do: show a draft to anyone but the admins, or let one person remove
another's reaction. Writes commit, and note their stream events on the session.
"""

from __future__ import annotations

import logging
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import insert_ignoring_conflict
from server.ids import new_id, utcnow
from server.models import Account, Announcement, AnnouncementReaction, AnnouncementRead, Status
from server.queue.jobs import enqueue
from server.queue.kinds import job_kind
from server.services.errors import NotFound, ValidationFailed, get_or_404
from server.services.events import StreamEvent, note_event
from server.services.search import local_status_path
from server.services.text import extract_mentions, extract_urls, local_domain_of, mention_key
from server.services.visibility import visible_to
from server.urls import Urls

if TYPE_CHECKING:
    from server.queue.runner import JobContext

log = logging.getLogger(__name__)

MAX_TEXT = 10_000
MAX_REACTION_KINDS = 8  # Mastodon's ReactionValidator::LIMIT
MAX_EMOJI_LENGTH = 32   # code points in one emoji sequence (a family with skin tones: ~11)
ALL_DAY = timedelta(days=1)  # an all-day announcement lasts until its end's date is over
EARLIEST_YEAR, LATEST_YEAR = 1900, 9000  # dates past these are typos (and overflow)

ANNOUNCEMENT_EVENT = "announcement"
REACTION_EVENT = "announcement.reaction"
DELETE_EVENT = "announcement.delete"
PUBLISH_JOB = "publish_announcement"


@dataclass(frozen=True)
class Reaction:
    name: str
    count: int
    me: bool


@dataclass
class AnnouncementView:
    announcement: Announcement
    read: bool | None                    # None: no viewer
    reactions: list[Reaction] = field(default_factory=list)
    # What its text refers to (``with_references``): accounts it mentions that this
    # server knows, and local public or unlisted statuses it links to.
    mentions: list[Account] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)


# ------------------------------------------------------------------------ emoji

_ZWJ, _VS16, _VS15, _KEYCAP = "\u200d", "\ufe0f", "\ufe0e", "\u20e3"


def _regional(c: str) -> bool:
    return 0x1F1E6 <= ord(c) <= 0x1F1FF


def _skin_tone(c: str) -> bool:
    return 0x1F3FB <= ord(c) <= 0x1F3FF


def _tag(c: str) -> bool:
    return 0xE0020 <= ord(c) <= 0xE007F


# Where Unicode's emoji pictographs live (its Extended_Pictographic property, by block):
# other symbols outside them (braille, box drawing, arrows of text…) are not emoji.
_EMOJI_RANGES = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049),
    (0x2122, 0x2122), (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA),
    (0x231A, 0x231B), (0x2328, 0x2328), (0x23CF, 0x23CF), (0x23E9, 0x23F3),
    (0x23F8, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x25AB), (0x25B6, 0x25B6),
    (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x27BF), (0x2934, 0x2935),
    (0x2B05, 0x2B07), (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55),
    (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299),
    (0x1F000, 0x1FAFF),
)


def _pictograph(c: str) -> bool:
    """A symbol an emoji is drawn from: in an emoji block, and a symbol there (not a
    regional indicator or skin tone, which only modify)."""
    code = ord(c)
    return (any(low <= code <= high for low, high in _EMOJI_RANGES)
            and unicodedata.category(c) == "So" and not _regional(c) and not _skin_tone(c))


def _element(name: str, at: int) -> int:
    """The end of the emoji element starting at ``at`` (one flag, keycap or pictograph with
    its presentation selector, skin tone and tag sequence), or -1 when there is none."""
    end = len(name)
    c = name[at]
    if _regional(c):
        return at + 2 if at + 1 < end and _regional(name[at + 1]) else -1
    if c in "0123456789#*":
        i = at + 1
        if i < end and name[i] == _VS16:
            i += 1
        return i + 1 if i < end and name[i] == _KEYCAP else -1
    if not _pictograph(c):
        return -1
    i = at + 1
    if i < end and name[i] in (_VS16, _VS15):
        i += 1
    if i < end and _skin_tone(name[i]):
        i += 1
    if i < end and _tag(name[i]):  # a subdivision flag: tag letters, then CANCEL TAG
        while i < end and _tag(name[i]) and name[i] != "\U000e007f":
            i += 1
        if i >= end or name[i] != "\U000e007f":
            return -1
        i += 1
    return i


def is_emoji(name: str) -> bool:
    """Whether ``name`` is exactly one Unicode emoji: a pictograph (with its presentation
    selector and skin tone), a flag, a keycap, or such elements joined by zero-width
    joiners (👩‍🎨, 🏳️‍🌈)."""
    if not name or len(name) > MAX_EMOJI_LENGTH:
        return False
    at = 0
    while True:
        at = _element(name, at)
        if at < 0:
            return False
        if at == len(name):
            return True
        if name[at] != _ZWJ or at + 1 == len(name):
            return False
        at += 1


# ------------------------------------------------------------------------ admins

def state_of(announcement: Announcement, now: datetime) -> str:
    """``draft`` (unpublished), ``scheduled`` (a draft with a time to be published),
    ``ended`` (its end has passed: no longer listed) or ``published``. An all-day
    announcement ends with its end's date."""
    if not announcement.published:
        return "scheduled" if announcement.scheduled_at is not None else "draft"
    ends_at = announcement.ends_at
    if ends_at is not None and (ends_at <= now - ALL_DAY if announcement.all_day
                                else ends_at <= now):
        return "ended"
    return "published"


def _checked(text: str, starts_at: datetime | None, ends_at: datetime | None,
             all_day: bool) -> str:
    text = text.strip()
    if not text:
        raise ValidationFailed("Text can't be blank")
    if len(text) > MAX_TEXT:
        raise ValidationFailed(f"Text is too long (maximum is {MAX_TEXT} characters)")
    if (starts_at is None) != (ends_at is None):
        raise ValidationFailed("Starts at and ends at must be given together")
    if any(moment is not None and not LATEST_YEAR >= moment.year >= EARLIEST_YEAR
           for moment in (starts_at, ends_at)):
        raise ValidationFailed(f"Dates must be between the years {EARLIEST_YEAR} and "
                               f"{LATEST_YEAR}")
    if starts_at is not None and ends_at is not None and (
            ends_at < starts_at or (ends_at == starts_at and not all_day)):
        raise ValidationFailed("Ends at must be after starts at")  # one all-day date: same day
    return text


def _checked_schedule(scheduled_at: datetime | None, now: datetime) -> None:
    if scheduled_at is not None and not scheduled_at.year <= LATEST_YEAR:
        raise ValidationFailed(f"Scheduled at must be before the year {LATEST_YEAR}")
    if scheduled_at is not None and scheduled_at <= now:
        raise ValidationFailed("Scheduled at must be in the future")


async def create_announcement(session: AsyncSession, text: str, *,
                              starts_at: datetime | None = None,
                              ends_at: datetime | None = None, all_day: bool = False,
                              publish: bool = True,
                              scheduled_at: datetime | None = None) -> Announcement:
    """A new announcement, published at once unless ``publish`` is False or it is
    ``scheduled_at`` a later time (then a draft until that time); committed."""
    now = utcnow()
    _checked_schedule(scheduled_at, now)
    publish = publish and scheduled_at is None
    announcement = Announcement(text=_checked(text, starts_at, ends_at, all_day), starts_at=starts_at,
                                ends_at=ends_at, all_day=all_day, published=publish,
                                published_at=now if publish else None, created_at=now,
                                updated_at=now, scheduled_at=scheduled_at)
    session.add(announcement)
    await session.flush()
    if publish:
        _announced(session, announcement)
    await _schedule(session, announcement)
    await session.commit()
    return announcement


async def update_announcement(session: AsyncSession, announcement_id: int, text: str, *,
                              starts_at: datetime | None, ends_at: datetime | None,
                              all_day: bool, scheduled_at: datetime | None) -> Announcement:
    """Change what it says, its period and (a draft's) publication time; committed. A
    published one is sent to the open streams again, as Mastodon does, and apps show the
    new text in its place."""
    announcement = await get_announcement(session, announcement_id)
    now = utcnow()
    text = _checked(text, starts_at, ends_at, all_day)
    if scheduled_at is not None and announcement.published:
        raise ValidationFailed("Only a draft can be scheduled: it is already published")
    if scheduled_at != announcement.scheduled_at:
        _checked_schedule(scheduled_at, now)
    announcement.text, announcement.all_day = text, all_day
    announcement.starts_at, announcement.ends_at = starts_at, ends_at
    announcement.scheduled_at, announcement.updated_at = scheduled_at, now
    if announcement.published:
        _announced(session, announcement)
    await _schedule(session, announcement)
    await session.commit()
    return announcement


async def get_announcement(session: AsyncSession, announcement_id: int) -> Announcement:
    return await get_or_404(session, Announcement, announcement_id)


async def all_announcements(session: AsyncSession) -> list[Announcement]:
    """Every announcement, drafts included, newest first (for the admins)."""
    return list(await session.scalars(
        select(Announcement).order_by(Announcement.created_at.desc(), Announcement.id.desc())))


async def publish_announcement(session: AsyncSession, announcement_id: int) -> Announcement:
    """Publish a draft (or an unpublished one) now; publishing twice changes nothing."""
    announcement = await get_announcement(session, announcement_id)
    _publish(session, announcement)
    await session.commit()
    return announcement


def _publish(session: AsyncSession, announcement: Announcement) -> None:
    if not announcement.published:
        announcement.published = True
        announcement.published_at = announcement.updated_at = utcnow()
        announcement.scheduled_at = None  # published, whether at its time or before
        _announced(session, announcement)


async def unpublish_announcement(session: AsyncSession, announcement_id: int) -> Announcement:
    """Withdraw it: a draft again (with no publication time), gone from every app."""
    announcement = await get_announcement(session, announcement_id)
    announcement.scheduled_at = None
    if announcement.published:
        announcement.published = False
        announcement.updated_at = utcnow()
        _withdrawn(session, announcement.id)
    await session.commit()
    return announcement


async def remove_announcement(session: AsyncSession, announcement_id: int) -> None:
    """Delete it, with its reads and reactions."""
    announcement = await get_announcement(session, announcement_id)
    if announcement.published:
        _withdrawn(session, announcement.id)
    await session.delete(announcement)
    await session.commit()


def _announced(session: AsyncSession, announcement: Announcement) -> None:
    note_event(session, StreamEvent(ANNOUNCEMENT_EVENT, {"announcement_id": announcement.id}))


def _withdrawn(session: AsyncSession, announcement_id: int) -> None:
    note_event(session, StreamEvent(DELETE_EVENT, {"announcement_id": announcement_id}))


# ------------------------------------------------------------------------ schedule

def _schedule_ref(announcement_id: int, scheduled_at: datetime) -> str:
    return f"{announcement_id}@{int(scheduled_at.timestamp() * 1_000_000)}"


async def _schedule(session: AsyncSession, announcement: Announcement) -> None:
    """Queue its publication at ``scheduled_at`` (one job per announcement and time: a
    job for a time it no longer has finds nothing to do)."""
    if announcement.scheduled_at is None or announcement.published:
        return
    delay = max(announcement.scheduled_at - utcnow(), timedelta(0))
    await enqueue(session, publish_announcement_job,
                  _schedule_ref(announcement.id, announcement.scheduled_at), delay=delay)


@job_kind(PUBLISH_JOB, queue="default", max_attempts=5, retry_base=timedelta(minutes=1))
async def publish_announcement_job(context: JobContext) -> None:
    """Publish a scheduled draft at its time (ref ``<id>@<time in µs>``). Idempotent, and
    one that was published, unpublished, rescheduled or removed meanwhile is left alone."""
    announcement_id = context.job.ref.partition("@")[0]
    if not announcement_id.isdigit():
        log.warning("%s: malformed ref %r", PUBLISH_JOB, context.job.ref)
        return
    announcement = await context.session.get(Announcement, int(announcement_id))
    if (announcement is None or announcement.published or announcement.scheduled_at is None
            or _schedule_ref(announcement.id, announcement.scheduled_at) != context.job.ref):
        return
    _publish(context.session, announcement)


# ------------------------------------------------------------------------ members

def _listed(now: datetime) -> list[ColumnElement[bool]]:
    """Published, and not ended (see :func:`state_of`)."""
    return [Announcement.published.is_(True),
            or_(Announcement.ends_at.is_(None),
                and_(Announcement.all_day.is_(False), Announcement.ends_at > now),
                and_(Announcement.all_day.is_(True), Announcement.ends_at > now - ALL_DAY))]


async def active_announcements(session: AsyncSession, now: datetime | None = None,
                               ) -> list[Announcement]:
    """The published announcements whose end (if any) is still to come, oldest first (by
    start, then publication), as Mastodon orders them."""
    when = func.coalesce(Announcement.starts_at, Announcement.published_at,
                         Announcement.created_at)
    return list(await session.scalars(
        select(Announcement).where(*_listed(now or utcnow()))
        .order_by(when, Announcement.id)))


async def listed_announcement(session: AsyncSession, announcement_id: int) -> Announcement:
    """One announcement the members can see; NotFound for a draft, an ended or an unknown
    one."""
    announcement = await session.scalar(select(Announcement).where(
        Announcement.id == announcement_id, *_listed(utcnow())))
    if announcement is None:
        raise NotFound("Record not found")
    return announcement


async def views(session: AsyncSession, announcements: Sequence[Announcement],
                viewer: Account | None) -> list[AnnouncementView]:
    """Each announcement with whether ``viewer`` read it and its reactions (first used
    first), in three queries."""
    ids = [a.id for a in announcements]
    if not ids:
        return []
    read: set[int] = set()
    mine: set[tuple[int, str]] = set()
    if viewer is not None:
        read = set(await session.scalars(select(AnnouncementRead.announcement_id).where(
            AnnouncementRead.announcement_id.in_(ids), AnnouncementRead.account_id == viewer.id)))
        mine = {(row[0], row[1]) for row in await session.execute(
            select(AnnouncementReaction.announcement_id, AnnouncementReaction.name).where(
                AnnouncementReaction.announcement_id.in_(ids),
                AnnouncementReaction.account_id == viewer.id))}
    reactions: dict[int, list[Reaction]] = defaultdict(list)
    rows = await session.execute(
        select(AnnouncementReaction.announcement_id, AnnouncementReaction.name, func.count())
        .where(AnnouncementReaction.announcement_id.in_(ids))
        .group_by(AnnouncementReaction.announcement_id, AnnouncementReaction.name)
        .order_by(func.min(AnnouncementReaction.created_at), AnnouncementReaction.name))
    for announcement_id, name, count in rows:
        reactions[announcement_id].append(Reaction(name, int(count),
                                                   (announcement_id, name) in mine))
    return [AnnouncementView(a, (a.id in read) if viewer is not None else None, reactions[a.id])
            for a in announcements]


MAX_REFERENCES = 20  # links looked up per announcement (each one query)


async def with_references(session: AsyncSession, views: Sequence[AnnouncementView],
                          urls: Urls) -> list[AnnouncementView]:
    """``views`` with the accounts their texts mention and the local statuses they link
    to, as Mastodon's Announcement lists them: mentions of accounts this server knows (not
    suspended; unknown ones stay text), and statuses anyone may see (public or unlisted)."""
    local_domain = local_domain_of(urls.base)
    wanted = {view.announcement.id: list(dict.fromkeys(  # @bob and @bob@here: one account
        mention_key(name, domain, local_domain)
        for name, domain in extract_mentions(view.announcement.text)))
        for view in views}
    linked = {view.announcement.id: local_status_ids(view.announcement.text, urls)
              for view in views}
    keys = {key for found in wanted.values() for key in found}
    known: dict[tuple[str, str], Account] = {}
    if keys:
        for account in await session.scalars(select(Account).where(
                tuple_(Account.username_key, Account.domain).in_(sorted(keys)),
                Account.suspended_at.is_(None), Account.actor_type != "Application")):
            known[(account.username_key, account.domain)] = account
    ids = {status_id for found in linked.values() for status_id, _ in found}
    statuses: dict[int, Status] = {}
    statuses_by_author: dict[int, str] = {}
    if ids:
        for status, username_key in await session.execute(
                select(Status, Account.username_key).join(Account, Account.id == Status.account_id)
                .where(Status.id.in_(sorted(ids)), Status.local.is_(True), visible_to(None))):
            statuses[status.id] = status
            statuses_by_author[status.id] = username_key
    for view in views:
        view.mentions = [known[key] for key in wanted[view.announcement.id] if key in known]
        view.statuses = [statuses[status_id] for status_id, username in linked[view.announcement.id]
                         if status_id in statuses and statuses_by_author[status_id] == username]
    return list(views)


def local_status_ids(text: str, urls: Urls) -> list[tuple[int, str]]:
    """``(status id, author's username key)`` of each link in ``text`` to a status of this
    server (``/@user/ID`` or ``/users/user/statuses/ID``), in order, once each, at most
    ``MAX_REFERENCES``: what is looked up by primary key, never by scanning URLs."""
    found: list[tuple[int, str]] = []
    for url in extract_urls(text):
        status = local_status_path(url, urls)
        if status is not None and status not in found:
            found.append(status)
    return found[:MAX_REFERENCES]


async def reaction_count(session: AsyncSession, announcement_id: int, name: str) -> int:
    return int(await session.scalar(select(func.count()).select_from(AnnouncementReaction).where(
        AnnouncementReaction.announcement_id == announcement_id,
        AnnouncementReaction.name == name)) or 0)


async def dismiss(session: AsyncSession, account: Account, announcement_id: int) -> None:
    """Mark it read for ``account`` (idempotent); committed."""
    announcement = await listed_announcement(session, announcement_id)
    await session.execute(insert_ignoring_conflict(session, AnnouncementRead, {
        "id": new_id(), "announcement_id": announcement.id, "account_id": account.id,
        "created_at": utcnow()}, ["announcement_id", "account_id"]))
    await session.commit()


async def add_reaction(session: AsyncSession, account: Account, announcement_id: int,
                       name: str) -> None:
    """``account`` reacts with the emoji ``name`` (idempotent); committed."""
    announcement = await listed_announcement(session, announcement_id)
    if not is_emoji(name):
        raise ValidationFailed("Name is not a recognized emoji")
    names = set(await session.scalars(select(AnnouncementReaction.name).where(
        AnnouncementReaction.announcement_id == announcement.id).distinct()))
    if name not in names and len(names) >= MAX_REACTION_KINDS:
        raise ValidationFailed("Limit of different reactions reached")
    added = await session.execute(insert_ignoring_conflict(session, AnnouncementReaction, {
        "id": new_id(), "announcement_id": announcement.id, "account_id": account.id,
        "name": name, "created_at": utcnow()}, ["announcement_id", "account_id", "name"]))
    if getattr(added, "rowcount", 0):
        await _reacted(session, announcement.id, name)
    await session.commit()


async def remove_reaction(session: AsyncSession, account: Account, announcement_id: int,
                          name: str) -> None:
    """Take back ``account``'s reaction; NotFound when there is none; committed."""
    announcement = await listed_announcement(session, announcement_id)
    removed = await session.execute(delete(AnnouncementReaction).where(
        AnnouncementReaction.announcement_id == announcement.id,
        AnnouncementReaction.account_id == account.id, AnnouncementReaction.name == name))
    if not getattr(removed, "rowcount", 0):
        await session.rollback()
        raise NotFound("Record not found")
    await _reacted(session, announcement.id, name)
    await session.commit()


async def _reacted(session: AsyncSession, announcement_id: int, name: str) -> None:
    """The reaction's new count, read once in the transaction that changed it, for every
    stream alike (Mastodon's payload)."""
    count = await reaction_count(session, announcement_id, name)
    note_event(session, StreamEvent(REACTION_EVENT, {"announcement_id": announcement_id,
                                                     "name": name, "count": count}))
