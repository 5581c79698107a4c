"""``server.services.announcements``: the admins' side and what it tells open streams.

I expect bad announcements (blank, too long, half a period, an end before its start) to be
refused storing nothing; publishing, withdrawing and removing to tell the streams exactly
once each, after the commit (a draft tells nobody); a withdrawn announcement to be out of
reach of every member action; removal to take its reads and reactions with it; and the
emoji check to take exactly one emoji, however it is composed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from server.db import Database
from server.ids import utcnow
from server.models import Account, Announcement, AnnouncementReaction, AnnouncementRead, User
from server.queue.kinds import QUEUES, kind_named
from server.queue.runner import JobRunner
from server.services import announcements
from server.services.errors import NotFound, ValidationFailed
from server.settings import Settings


@pytest.fixture
def told(db: Database) -> Iterator[list[dict[str, Any]]]:
    """Every stream event the database dispatches after a commit, as plain dicts."""
    from server.services.events import event_message

    seen: list[dict[str, Any]] = []
    db.dispatch_events = lambda events: seen.extend(event_message(e) for e in events)
    yield seen
    db.dispatch_events = None


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(("text", "period", "message"), [
    ("  ", None, "Text can't be blank"),
    ("x" * 10_001, None, "Text is too long (maximum is 10000 characters)"),
    ("Soon", (1, None), "Starts at and ends at must be given together"),
    ("Soon", (None, 1), "Starts at and ends at must be given together"),
    ("Soon", (2, 1), "Ends at must be after starts at"),
    ("Soon", (1, 1), "Ends at must be after starts at"),  # an all-day one may: see below
    ("Soon", (-24 * 366 * 200, 1), "Dates must be between the years 1900 and 9000"),
    ("Soon", (1, 24 * 366 * 7000), "Dates must be between the years 1900 and 9000"),
])
async def test_bad_announcements_are_refused_storing_nothing(
        db: Database, told: list[dict[str, Any]], text: str,
        period: tuple[int | None, int | None] | None, message: str) -> None:
    now = utcnow()
    starts, ends = period or (None, None)
    with pytest.raises(ValidationFailed) as refused:
        async with db.session() as session:
            await announcements.create_announcement(
                session, text,
                starts_at=now + timedelta(hours=starts) if starts is not None else None,
                ends_at=now + timedelta(hours=ends) if ends is not None else None)
    assert refused.value.message == f"Validation failed: {message}"
    assert await count(db, Announcement) == 0 and told == []


async def test_each_change_tells_the_streams_once_and_drafts_tell_nobody(
        db: Database, told: list[dict[str, Any]]) -> None:
    async with db.session() as session:
        draft = await announcements.create_announcement(session, "Later", publish=False)
        assert told == []
        await announcements.publish_announcement(session, draft.id)
        await announcements.publish_announcement(session, draft.id)  # already published
        assert draft.published and draft.published_at is not None
        await announcements.unpublish_announcement(session, draft.id)
        await announcements.unpublish_announcement(session, draft.id)  # already a draft
        now = await announcements.create_announcement(session, "Now")
        await announcements.remove_announcement(session, now.id)
        await announcements.remove_announcement(session, draft.id)  # a draft: nobody to tell
    assert told == [
        {"kind": "announcement", "announcement_id": draft.id},
        {"kind": "announcement.delete", "announcement_id": draft.id},
        {"kind": "announcement", "announcement_id": now.id},
        {"kind": "announcement.delete", "announcement_id": now.id},
    ]
    with pytest.raises(NotFound):
        async with db.session() as session:
            await announcements.publish_announcement(session, draft.id)


async def test_a_withdrawn_announcement_is_out_of_reach_and_removal_takes_everything(
        db: Database, alice: User, told: list[dict[str, Any]]) -> None:
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        notice = await announcements.create_announcement(session, "Hello")
        await announcements.dismiss(session, account, notice.id)
        await announcements.add_reaction(session, account, notice.id, "🎉")
        await announcements.add_reaction(session, account, notice.id, "🎉")  # once
        assert told[-1] == {"kind": "announcement.reaction", "announcement_id": notice.id,
                            "name": "🎉", "count": 1}  # read once, for every stream
        assert len(told) == 2  # published, one reaction
        await announcements.unpublish_announcement(session, notice.id)
        assert await announcements.active_announcements(session) == []
        for action in (announcements.dismiss(session, account, notice.id),
                       announcements.add_reaction(session, account, notice.id, "🎉"),
                       announcements.remove_reaction(session, account, notice.id, "🎉")):
            with pytest.raises(NotFound):
                await action
        await announcements.remove_announcement(session, notice.id)
    assert await count(db, AnnouncementRead) == 0 and await count(db, AnnouncementReaction) == 0


async def test_an_all_day_announcement_may_start_and_end_on_the_same_date(db: Database) -> None:
    day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=3)
    async with db.session() as session:
        fair = await announcements.create_announcement(session, "Print fair", starts_at=day,
                                                       ends_at=day, all_day=True)
        assert announcements.state_of(fair, utcnow()) == "published"
        during = day + timedelta(hours=20)  # the end is its date: listed all that day
        assert announcements.state_of(fair, during) == "published"
        assert [a.id for a in await announcements.active_announcements(session, during)] == [fair.id]
        after = day + timedelta(days=1, seconds=1)
        assert announcements.state_of(fair, after) == "ended"
        assert await announcements.active_announcements(session, after) == []
        with pytest.raises(ValidationFailed):
            await announcements.create_announcement(session, "Fair", starts_at=day,
                                                    ends_at=day - timedelta(days=1), all_day=True)


async def test_an_ended_announcement_is_no_longer_listed(db: Database) -> None:
    now = utcnow()
    async with db.session() as session:
        notice = await announcements.create_announcement(
            session, "Tonight", starts_at=now + timedelta(hours=1), ends_at=now + timedelta(hours=2))
        assert [a.id for a in await announcements.active_announcements(session, now)] == [notice.id]
        later = now + timedelta(hours=3)
        assert await announcements.active_announcements(session, later) == []


@pytest.mark.parametrize("name", [
    "👍", "❤️", "❤", "©️", "👍🏿", "👩‍🎨", "👩🏽‍🎨", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "#️⃣", "1⃣",
    "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
])
def test_one_emoji_however_composed_is_an_emoji(name: str) -> None:
    assert announcements.is_emoji(name)


@pytest.mark.parametrize("name", [
    "", "a", "1", "#", "👍👍", "👍 ", " 👍", "🇯", "🇯🇵🇫", "\u200d👍", "👍\u200d", "👍\u200d\u200d🎨",
    "\ufe0f", "🏿", "🏴\U000e0067\U000e0062", "x\u20e3", ":blobcat:", "👍" * 40,
    "\u2800", "\u2500", "\u2588", "\u00b0", "\u2605\u2605",  # braille, box drawing, °
])
def test_anything_else_is_not(name: str) -> None:
    assert not announcements.is_emoji(name)


async def run_publications_at(db: Database, settings: Settings, moment: datetime) -> int:
    """Run the publication jobs due at ``moment``, as a worker would then (no waiting)."""
    runner = JobRunner(db, settings, clock=lambda: moment,
                       kinds={announcements.PUBLISH_JOB: kind_named(announcements.PUBLISH_JOB)})
    ran: int = await runner.run_due(QUEUES)
    return ran


async def test_a_scheduled_draft_is_published_at_its_time_and_only_then(
        db: Database, settings: Settings, told: list[dict[str, Any]]) -> None:
    at = utcnow() + timedelta(hours=2)
    async with db.session() as session:
        notice = await announcements.create_announcement(session, "Maintenance tonight",
                                                         scheduled_at=at)
        assert not notice.published and announcements.state_of(notice, utcnow()) == "scheduled"
    assert await run_publications_at(db, settings, at - timedelta(minutes=1)) == 0
    assert told == []
    assert await run_publications_at(db, settings, at + timedelta(seconds=1)) == 1
    async with db.session() as session:
        published = await announcements.get_announcement(session, notice.id)
        assert published.published and published.published_at is not None
        assert published.scheduled_at is None
        assert [a.id for a in await announcements.active_announcements(session)] == [notice.id]
    assert told == [{"kind": "announcement", "announcement_id": notice.id}]


async def test_a_moved_withdrawn_or_early_published_schedule_does_nothing_at_the_old_time(
        db: Database, settings: Settings, told: list[dict[str, Any]]) -> None:
    first, second = utcnow() + timedelta(hours=1), utcnow() + timedelta(hours=3)
    async with db.session() as session:
        moved = await announcements.create_announcement(session, "Moved", scheduled_at=first)
        await announcements.update_announcement(session, moved.id, "Moved later", starts_at=None,
                                                ends_at=None, all_day=False, scheduled_at=second)
        withdrawn = await announcements.create_announcement(session, "Off", scheduled_at=first)
        await announcements.unpublish_announcement(session, withdrawn.id)  # a plain draft now
        early = await announcements.create_announcement(session, "Early", scheduled_at=first)
        await announcements.publish_announcement(session, early.id)
    told.clear()
    assert await run_publications_at(db, settings, first + timedelta(minutes=1)) == 3
    async with db.session() as session:
        assert not (await announcements.get_announcement(session, moved.id)).published
        assert not (await announcements.get_announcement(session, withdrawn.id)).published
    assert told == []  # the early one was told when it was published by hand
    assert await run_publications_at(db, settings, second + timedelta(minutes=1)) == 1
    assert told == [{"kind": "announcement", "announcement_id": moved.id}]
    async with db.session() as session:
        assert (await announcements.get_announcement(session, moved.id)).text == "Moved later"


@pytest.mark.parametrize(("shift", "published", "message"), [
    (timedelta(minutes=-1), False, "Scheduled at must be in the future"),
    (timedelta(hours=1), True, "Only a draft can be scheduled: it is already published"),
])
async def test_a_bad_schedule_is_refused_changing_nothing(
        db: Database, told: list[dict[str, Any]], shift: timedelta, published: bool,
        message: str) -> None:
    async with db.session() as session:
        notice = await announcements.create_announcement(session, "As it was", publish=published)
    told.clear()
    with pytest.raises(ValidationFailed) as refused:
        async with db.session() as session:
            await announcements.update_announcement(
                session, notice.id, "Changed", starts_at=None, ends_at=None, all_day=False,
                scheduled_at=utcnow() + shift)
    assert refused.value.message == f"Validation failed: {message}"
    async with db.session() as session:
        kept = await announcements.get_announcement(session, notice.id)
        assert (kept.text, kept.scheduled_at) == ("As it was", None)
    assert told == []
    with pytest.raises(ValidationFailed):
        async with db.session() as session:
            await announcements.create_announcement(session, "Past", scheduled_at=utcnow())
    assert await count(db, Announcement) == 1


async def test_editing_a_published_announcement_tells_the_streams_its_new_text(
        db: Database, told: list[dict[str, Any]]) -> None:
    starts = utcnow() + timedelta(days=1)
    async with db.session() as session:
        notice = await announcements.create_announcement(session, "Meet-up on Friday")
        draft = await announcements.create_announcement(session, "Draft", publish=False)
        told.clear()
        edited = await announcements.update_announcement(
            session, notice.id, "Meet-up moved to Saturday", starts_at=starts,
            ends_at=starts + timedelta(hours=3), all_day=False, scheduled_at=None)
        await announcements.update_announcement(session, draft.id, "Still a draft",
                                                starts_at=None, ends_at=None, all_day=False,
                                                scheduled_at=None)
        assert edited.published and edited.updated_at > edited.published_at  # type: ignore[operator]
        with pytest.raises(ValidationFailed):  # the usual checks hold on an edit too
            await announcements.update_announcement(session, notice.id, " ", starts_at=None,
                                                    ends_at=None, all_day=False, scheduled_at=None)
    assert told == [{"kind": "announcement", "announcement_id": notice.id}]
    async with db.session() as session:
        listed = await announcements.active_announcements(session)
        assert [(a.text, a.ends_at is not None) for a in listed] == [("Meet-up moved to Saturday", True)]
