"""Scheduled statuses: a post kept until the time its author chose (``scheduled_at``).

Why it exists: Mastodon apps schedule posts (``POST /api/v1/statuses`` with
``scheduled_at``), list, move and cancel them (``/api/v1/scheduled_statuses``). A
scheduled status is checked when it is scheduled exactly as a post made now would be
(``statuses.check_new_status``), then its parameters are stored, its media reserved (no
other post can take them, the purge of detached media leaves them) and a
``publish_scheduled_status`` job is made due at its time. The job posts it through
``statuses.create_status`` — so publishing, notifications, federation and streaming
happen as for any post — and deletes the row in the same transaction.

The job's ref names the row and the time it was scheduled for: moving a scheduled status
makes a new job, and a job whose time is no longer the row's does nothing. The row is the
truth.

What it must never do: post a scheduled status twice, post one its author cancelled or
moved, let another post take its media, or import ``federation``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import (
    Account,
    Job,
    JobState,
    MediaAttachment,
    ScheduledStatus,
    ScheduledStatusMedia,
    Status,
)
from server.queue.jobs import enqueue
from server.queue.kinds import JobKind, job_kind, kind_named
from server.services.errors import NotFound, ServiceError, ValidationFailed
from server.services.polls import PollSpec
from server.services.portfolio import WorkMeta
from server.services.statuses import (
    IDEMPOTENCY_WINDOW,
    check_new_status,
    create_status,
    idempotency_key_of,
)
from server.services.timelines import Paging
from server.settings import Settings

if TYPE_CHECKING:
    from server.queue.runner import JobContext

log = logging.getLogger(__name__)

PUBLISH_JOB = "publish_scheduled_status"
# Mastodon's rules (app/models/scheduled_status.rb): at least five minutes ahead, at most
# 300 waiting per account and 25 on one (UTC) day.
MINIMUM_OFFSET = timedelta(minutes=5)
TOTAL_LIMIT = 300
DAILY_LIMIT = 25
TOO_SOON = "Scheduled at The scheduled date must be in the future"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ScheduledView:
    """A scheduled status with its reserved media, in order (what the entity shows)."""

    scheduled: ScheduledStatus
    media: list[MediaAttachment]


def posts_now(scheduled_at: datetime) -> bool:
    """A time already past is no schedule: Mastodon posts such a status at once."""
    return scheduled_at <= utcnow()


# ------------------------------------------------------------------------- schedule

async def schedule_status(
    session: AsyncSession,
    settings: Settings,
    account: Account,
    application_id: int | None,
    *,
    scheduled_at: datetime,
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
) -> ScheduledView:
    """Schedule a status for ``account`` at ``scheduled_at`` (in the future), committed.
    Raises ServiceError (422/404) with nothing written on bad input: what a post made now
    would be refused for, a time less than five minutes ahead, or too many scheduled."""
    key = idempotency_key_of(idempotency_key)
    if key is not None:
        earlier = await session.scalar(select(ScheduledStatus).where(
            ScheduledStatus.account_id == account.id, ScheduledStatus.idempotency_key == key,
            ScheduledStatus.created_at > utcnow() - IDEMPOTENCY_WINDOW))
        if earlier is not None:
            return (await _views(session, [earlier]))[0]
    text = (text or "").strip()
    spoiler_text = (spoiler_text or "").strip()
    checked = await check_new_status(
        session, account, text=text, media_ids=media_ids, sensitive=sensitive,
        spoiler_text=spoiler_text, visibility=visibility, in_reply_to_id=in_reply_to_id,
        language=language, work=work, poll=poll)
    await _check_time(session, account, scheduled_at)

    params: dict[str, Any] = {
        "text": text,
        "poll": asdict(poll) if poll is not None else None,
        "media_ids": [str(medium.id) for medium in checked.media] or None,
        # As given: the author's defaults apply when it is posted, as Mastodon does.
        "sensitive": sensitive,
        "visibility": visibility or None,
        "scheduled_at": None,
        "spoiler_text": spoiler_text or None,
        "in_reply_to_id": str(checked.parent.id) if checked.parent is not None else None,
        "language": checked.language,
        "idempotency": None,
        "with_rate_limit": False,
    }
    if work is not None:
        params["easel"] = asdict(work)
    scheduled = ScheduledStatus(
        account_id=account.id, scheduled_at=scheduled_at, params=params,
        application_id=application_id, idempotency_key=key, created_at=utcnow())
    session.add(scheduled)
    await session.flush()
    for position, medium in enumerate(checked.media):
        session.add(ScheduledStatusMedia(media_attachment_id=medium.id,
                                         scheduled_status_id=scheduled.id, position=position))
    await _enqueue_publication(session, scheduled)
    try:
        await session.commit()
    except IntegrityError:
        # A concurrent post or schedule took one of the media first.
        await session.rollback()
        raise ServiceError("Media not found or already attached to another post") from None
    return ScheduledView(scheduled, checked.media)


async def _check_time(session: AsyncSession, account: Account, scheduled_at: datetime,
                      moving: int | None = None) -> None:
    """Mastodon's checks of a scheduled time (``moving``: the scheduled status being
    moved, which does not count against the limits)."""
    if scheduled_at <= utcnow() + MINIMUM_OFFSET:
        raise ValidationFailed(TOO_SOON)
    others = [ScheduledStatus.account_id == account.id]
    if moving is not None:
        others.append(ScheduledStatus.id != moving)
    total = await session.scalar(select(func.count()).select_from(ScheduledStatus).where(*others))
    if (total or 0) >= TOTAL_LIMIT:
        raise ValidationFailed(f"You have exceeded the limit of {TOTAL_LIMIT} scheduled posts")
    day = scheduled_at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    that_day = await session.scalar(select(func.count()).select_from(ScheduledStatus).where(
        *others, ScheduledStatus.scheduled_at >= day,
        ScheduledStatus.scheduled_at < day + timedelta(days=1)))
    if (that_day or 0) >= DAILY_LIMIT:
        raise ValidationFailed(
            f"You have exceeded the limit of {DAILY_LIMIT} scheduled posts for today")


def _stamp(moment: datetime) -> int:
    """A scheduled time as whole microseconds since the epoch (exact, unlike floats)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _job_ref(scheduled: ScheduledStatus) -> str:
    return f"{scheduled.id}@{_stamp(scheduled.scheduled_at)}"


def publish_kind() -> JobKind:
    return kind_named(PUBLISH_JOB)


async def _enqueue_publication(session: AsyncSession, scheduled: ScheduledStatus) -> None:
    """The job due at the row's time. ``again``: a status moved away and back finds the
    job of its old time finished (it did nothing then) and runs it once more."""
    job = await enqueue(session, publish_kind(), _job_ref(scheduled),
                        delay=scheduled.scheduled_at - utcnow(), again=True)
    if job.state == JobState.QUEUED:
        job.next_try_at = scheduled.scheduled_at


# ------------------------------------------------------------------------- read

async def _views(session: AsyncSession, rows: Sequence[ScheduledStatus]) -> list[ScheduledView]:
    """The rows with their media (one query for all of them)."""
    media: dict[int, list[MediaAttachment]] = defaultdict(list)
    if rows:
        for scheduled_id, medium in (await session.execute(
                select(ScheduledStatusMedia.scheduled_status_id, MediaAttachment)
                .join(MediaAttachment,
                      MediaAttachment.id == ScheduledStatusMedia.media_attachment_id)
                .where(ScheduledStatusMedia.scheduled_status_id.in_([r.id for r in rows]))
                .order_by(ScheduledStatusMedia.position))).all():
            media[scheduled_id].append(medium)
    return [ScheduledView(row, media[row.id]) for row in rows]


async def _own(session: AsyncSession, account: Account, scheduled_id: int) -> ScheduledStatus:
    scheduled = await session.scalar(select(ScheduledStatus).where(
        ScheduledStatus.id == scheduled_id, ScheduledStatus.account_id == account.id))
    if scheduled is None:
        raise NotFound("Record not found")
    return scheduled


async def scheduled_statuses(session: AsyncSession, account: Account,
                             page: Paging) -> list[ScheduledView]:
    """A page of ``account``'s scheduled statuses, newest scheduling first (by id)."""
    rows = list(await session.scalars(page.apply(
        select(ScheduledStatus).where(ScheduledStatus.account_id == account.id),
        ScheduledStatus.id)))
    return await _views(session, page.arrange(rows))


async def scheduled_status(session: AsyncSession, account: Account,
                           scheduled_id: int) -> ScheduledView:
    """One of ``account``'s scheduled statuses, or NotFound (others' too)."""
    return (await _views(session, [await _own(session, account, scheduled_id)]))[0]


# ------------------------------------------------------------------ move, cancel

async def reschedule(session: AsyncSession, account: Account, scheduled_id: int,
                     scheduled_at: datetime | None) -> ScheduledView:
    """Move one of ``account``'s scheduled statuses to ``scheduled_at`` (None: leave it),
    committed; the checks of a new one apply."""
    scheduled = await _own(session, account, scheduled_id)
    if scheduled_at is not None:
        await _check_time(session, account, scheduled_at, moving=scheduled.id)
        await _drop_queued_job(session, scheduled)
        scheduled.scheduled_at = scheduled_at
        await _enqueue_publication(session, scheduled)
        await session.commit()
    return (await _views(session, [scheduled]))[0]


async def cancel(session: AsyncSession, account: Account, scheduled_id: int) -> None:
    """Delete one of ``account``'s scheduled statuses, committed; its media are free to
    be posted again (until they are purged as unattached media are)."""
    scheduled = await _own(session, account, scheduled_id)
    await _drop_queued_job(session, scheduled)
    await _delete(session, scheduled.id)
    await session.commit()


async def _drop_queued_job(session: AsyncSession, scheduled: ScheduledStatus) -> None:
    """Remove the publication job of the time the row has now, unless it is running (a
    running one finds the row moved or gone and does nothing)."""
    await session.execute(delete(Job).where(
        Job.kind == PUBLISH_JOB, Job.ref == _job_ref(scheduled), Job.state == JobState.QUEUED)
        .execution_options(synchronize_session=False))


async def _delete(session: AsyncSession, scheduled_id: int) -> int:
    await session.execute(delete(ScheduledStatusMedia).where(
        ScheduledStatusMedia.scheduled_status_id == scheduled_id))
    result: Any = await session.execute(
        delete(ScheduledStatus).where(ScheduledStatus.id == scheduled_id)
        .execution_options(synchronize_session=False))
    return int(result.rowcount)


# ------------------------------------------------------------------------ publish

async def publish_scheduled(session: AsyncSession, settings: Settings,
                            scheduled_id: int, stamp: int) -> Status | None:
    """Post the scheduled status ``scheduled_id`` if it is still scheduled for ``stamp``
    (``_stamp`` of its time), committed, and delete it in the same transaction; None when
    there was nothing to post. A status that no longer passes the checks (its parent was
    deleted meanwhile, say) is dropped, as Mastodon drops it."""
    scheduled = await session.scalar(select(ScheduledStatus).where(
        ScheduledStatus.id == scheduled_id).with_for_update())
    if scheduled is None or _stamp(scheduled.scheduled_at) != stamp:
        return None
    account = await session.get(Account, scheduled.account_id)
    if account is None:
        return None
    params = dict(scheduled.params)
    account_id, application_id = account.id, scheduled.application_id
    media_ids = list(await session.scalars(
        select(ScheduledStatusMedia.media_attachment_id)
        .where(ScheduledStatusMedia.scheduled_status_id == scheduled_id)
        .order_by(ScheduledStatusMedia.position)))
    # The reservation goes first, so the post can take its media; both in one transaction.
    if not await _delete(session, scheduled_id):
        return None
    try:
        return await create_status(
            session, settings, account, application_id,
            text=params.get("text"), media_ids=media_ids, sensitive=params.get("sensitive"),
            spoiler_text=params.get("spoiler_text"), visibility=params.get("visibility"),
            in_reply_to_id=_int_or_none(params.get("in_reply_to_id")),
            language=params.get("language"), work=_work_of(params), poll=_poll_of(params))
    except ServiceError as exc:
        await session.rollback()
        log.warning("scheduled status %s of account %s dropped: %s",
                    scheduled_id, account_id, exc.message)
        await _delete(session, scheduled_id)
        await session.commit()
        return None


def _int_or_none(raw: object) -> int | None:
    return int(raw) if isinstance(raw, str | int) and str(raw).isdigit() else None


def _work_of(params: dict[str, Any]) -> WorkMeta | None:
    stored = params.get("easel")
    if not isinstance(stored, dict):
        return None
    return WorkMeta(**stored)


def _poll_of(params: dict[str, Any]) -> PollSpec | None:
    stored = params.get("poll")
    if not isinstance(stored, dict):
        return None
    return PollSpec(**stored)


def _parse_ref(ref: str) -> tuple[int, int] | None:
    scheduled_id, _, stamp = ref.partition("@")
    if not scheduled_id.isdigit() or not stamp.lstrip("-").isdigit():
        return None
    return int(scheduled_id), int(stamp)


@job_kind(PUBLISH_JOB, queue="default", max_attempts=5, retry_base=timedelta(minutes=1))
async def publish_scheduled_status_job(context: JobContext) -> None:
    """Post a scheduled status at its time (ref: ``<id>@<time in µs>``). Idempotent: the
    row is deleted with the post, and a moved or cancelled one is left alone."""
    parsed = _parse_ref(context.job.ref)
    if parsed is None:
        log.warning("%s: malformed ref %r", PUBLISH_JOB, context.job.ref)
        return
    status = await publish_scheduled(context.session, context.settings, *parsed)
    if status is None:
        log.debug("%s %s: nothing to post", PUBLISH_JOB, context.job.ref)
