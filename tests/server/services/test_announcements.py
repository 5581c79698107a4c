"""``server.services.announcements``: the admins' side and what it tells open streams.

I expect bad announcements (blank, too long, half a period, an end before its start) to be
refused storing nothing; publishing, withdrawing and removing to tell the streams exactly
once each, after the commit (a draft tells nobody); a withdrawn announcement to be out of
reach of every member action; removal to take its reads and reactions with it; and the
emoji check to take exactly one emoji, however it is composed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from server.db import Database
from server.ids import utcnow
from server.models import Account, Announcement, AnnouncementReaction, AnnouncementRead, User
from server.services import announcements
from server.services.errors import NotFound, ValidationFailed


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
