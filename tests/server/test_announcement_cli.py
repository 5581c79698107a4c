"""``easel admin announcement …`` as an admin runs it.

I expect an announcement to be added published (or as a draft with ``--draft``), with its
period in UTC (an offset given is converted); ``list`` to show every one, newest first, one
line each with its id, state (draft, published, ended), period, reactions and the first
line of its text; ``--scheduled-at`` to save a draft published at that time, ``edit`` to
change only what it is given; publish, unpublish and remove to change the database; and a bad date, a
lone start or end, an end before the start, a blank text or an unknown id to be refused
with a clear message and a non-zero status, never a traceback.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from server.db import Database
from server.ids import utcnow
from server.models import Announcement, AnnouncementReaction, User
from server.settings import Settings
from tests.server.test_cli import easel, environment


def added_id(stdout: str) -> int:
    match = re.fullmatch(r"added (?:draft )?announcement ([0-9]+)\n", stdout)
    assert match, stdout
    return int(match.group(1))


async def fetch(db: Database, announcement_id: int) -> Announcement | None:
    async with db.session() as session:
        return await session.get(Announcement, announcement_id)


async def test_announcements_are_added_listed_published_unpublished_and_removed(
    settings: Settings, db: Database, alice: User, bob: User, tmp_path: Path
) -> None:
    env = environment(settings)
    assert easel(["admin", "announcement", "list"], env, tmp_path).stdout == "no announcements\n"

    meetup = easel(["admin", "announcement", "add", "  Meet-up on Saturday\nBring sketchbooks  ",
                    "--starts-at", "2099-06-01T18:00+02:00", "--ends-at", "2099-06-01T20:00"],
                   env, tmp_path)
    assert meetup.returncode == 0, meetup.stderr
    meetup_id = added_id(meetup.stdout)
    stored = await fetch(db, meetup_id)
    assert stored is not None and stored.published and stored.published_at is not None
    assert stored.text == "Meet-up on Saturday\nBring sketchbooks"
    assert stored.starts_at == datetime(2099, 6, 1, 16, 0, tzinfo=UTC)
    assert stored.ends_at == datetime(2099, 6, 1, 20, 0, tzinfo=UTC)
    assert not stored.all_day

    draft = easel(["admin", "announcement", "add", "Maintenance tonight", "--draft"], env, tmp_path)
    assert draft.returncode == 0, draft.stderr
    assert draft.stdout.startswith("added draft announcement ")
    draft_id = added_id(draft.stdout)
    stored = await fetch(db, draft_id)
    assert stored is not None and not stored.published and stored.published_at is None

    fair = easel(["admin", "announcement", "add", "Art fair", "--starts-at", "2020-03-01",
                  "--ends-at", "2020-03-03", "--all-day"], env, tmp_path)
    assert fair.returncode == 0, fair.stderr
    fair_id = added_id(fair.stdout)

    async with db.session() as session:
        session.add_all([
            AnnouncementReaction(announcement_id=meetup_id, account_id=alice.account_id,
                                 name="🎨", created_at=utcnow()),
            AnnouncementReaction(announcement_id=meetup_id, account_id=bob.account_id,
                                 name="🎨", created_at=utcnow()),
            AnnouncementReaction(announcement_id=meetup_id, account_id=bob.account_id,
                                 name="👍", created_at=utcnow())])
        await session.commit()

    listed = easel(["admin", "announcement", "list"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 3
    fair_line, draft_line, meetup_line = lines  # newest first
    assert fair_line == (f"{fair_id}  ended      2020-03-01 – 2020-03-03 (all day)  "
                         "no reactions  Art fair")
    assert draft_line == f"{draft_id}  draft      no reactions  Maintenance tonight"
    assert meetup_line == (f"{meetup_id}  published  2099-06-01 16:00 – 2099-06-01 20:00 UTC  "
                           "🎨 2 👍 1  Meet-up on Saturday…")

    published = easel(["admin", "announcement", "publish", str(draft_id)], env, tmp_path)
    assert published.returncode == 0 and published.stdout == f"published announcement {draft_id}\n"
    stored = await fetch(db, draft_id)
    assert stored is not None and stored.published and stored.published_at is not None
    again = easel(["admin", "announcement", "publish", str(draft_id)], env, tmp_path)
    assert again.returncode == 0  # publishing twice changes nothing

    unpublished = easel(["admin", "announcement", "unpublish", str(meetup_id)], env, tmp_path)
    assert unpublished.returncode == 0, unpublished.stderr
    assert unpublished.stdout == f"unpublished announcement {meetup_id}\n"
    stored = await fetch(db, meetup_id)
    assert stored is not None and not stored.published
    assert f"{meetup_id}  draft " in easel(["admin", "announcement", "list"], env, tmp_path).stdout

    removed = easel(["admin", "announcement", "remove", str(meetup_id)], env, tmp_path)
    assert removed.returncode == 0 and removed.stdout == f"removed announcement {meetup_id}\n"
    assert await fetch(db, meetup_id) is None
    async with db.session() as session:
        assert list(await session.scalars(select(AnnouncementReaction))) == []
    remaining = easel(["admin", "announcement", "list"], env, tmp_path).stdout
    assert "Meet-up" not in remaining and "Maintenance tonight" in remaining


async def test_bad_dates_texts_and_ids_are_refused_clearly(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    env = environment(settings)
    refusals = [
        (["add", "Soon", "--starts-at", "next week", "--ends-at", "2099-01-02"], 2,
         "is not a date"),
        (["add", "Soon", "--starts-at", "2099-01-01", "--ends-at", "2099-13-40"], 2,
         "is not a date"),
        (["add", "Soon", "--starts-at", "2099-01-01"], 1, "must be given together"),
        (["add", "Soon", "--ends-at", "2099-01-01T10:00"], 1, "must be given together"),
        (["add", "Soon", "--starts-at", "2099-01-02", "--ends-at", "2099-01-01"], 1,
         "Ends at must be after starts at"),
        (["add", "   "], 1, "Text can't be blank"),
        (["publish", "123"], 1, "Announcement 123 not found"),
        (["unpublish", "123"], 1, "Announcement 123 not found"),
        (["remove", "123"], 1, "Announcement 123 not found"),
        (["remove", "nope"], 2, "not an id: 'nope'"),
        (["remove", "99999999999999999999999"], 2, "not an id"),  # past a database id
        (["add", "Soon", "--starts-at", "0001-01-01T00:00+01:00",
          "--ends-at", "2099-01-01"], 2, "is not a date"),  # before year 1 in UTC
        (["add", "Soon", "--starts-at", "2099-01-01", "--ends-at", "9999-12-31"], 1,
         "Dates must be between the years 1900 and 9000"),
        (["add", "Soon", "--scheduled-at", "2001-01-01"], 1, "Scheduled at must be in the future"),
        (["add", "Soon", "--scheduled-at", "tomorrow"], 2, "is not a date"),
        (["edit", "123", "--text", "Later"], 1, "Announcement 123 not found"),
        (["edit", "123", "--scheduled-at", "2099-01-01", "--unschedule"], 2, "not allowed with"),
    ]
    for args, status, message in refusals:
        result = easel(["admin", "announcement", *args], env, tmp_path)
        assert result.returncode == status, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == "", args
    async with db.session() as session:
        assert list(await session.scalars(select(Announcement))) == []


def test_the_help_says_when_apps_see_a_change(settings: Settings, tmp_path: Path) -> None:
    shown = easel(["admin", "announcement", "publish", "--help"], environment(settings), tmp_path)
    assert shown.returncode == 0
    assert "next refresh" in " ".join(shown.stdout.split())


async def test_announcements_are_scheduled_and_edited(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    env = environment(settings)
    scheduled = easel(["admin", "announcement", "add", "Server move on Sunday",
                       "--scheduled-at", "2099-05-01T09:00+02:00"], env, tmp_path)
    assert scheduled.returncode == 0, scheduled.stderr
    match = re.fullmatch(r"added announcement ([0-9]+), to be published at 2099-05-01 07:00 UTC\n",
                         scheduled.stdout)
    assert match, scheduled.stdout
    notice_id = int(match.group(1))
    stored = await fetch(db, notice_id)
    assert stored is not None and not stored.published
    assert stored.scheduled_at == datetime(2099, 5, 1, 7, 0, tzinfo=UTC)
    listed = easel(["admin", "announcement", "list"], env, tmp_path).stdout
    assert f"{notice_id}  scheduled  at 2099-05-01 07:00 UTC  no reactions  Server move" in listed

    edited = easel(["admin", "announcement", "edit", str(notice_id), "--text", "Server move on Monday",
                    "--starts-at", "2099-05-02", "--ends-at", "2099-05-02", "--all-day"], env, tmp_path)
    assert edited.returncode == 0 and edited.stdout == f"changed announcement {notice_id}\n", edited.stderr
    stored = await fetch(db, notice_id)
    assert stored is not None and stored.text == "Server move on Monday" and stored.all_day
    assert stored.scheduled_at == datetime(2099, 5, 1, 7, 0, tzinfo=UTC)  # what was not given stays

    unscheduled = easel(["admin", "announcement", "edit", str(notice_id), "--unschedule", "--no-period",
                         "--not-all-day"], env, tmp_path)
    assert unscheduled.returncode == 0, unscheduled.stderr
    stored = await fetch(db, notice_id)
    assert stored is not None and stored.scheduled_at is None and stored.starts_at is None
    assert not stored.all_day and not stored.published
    assert f"{notice_id}  draft " in easel(["admin", "announcement", "list"], env, tmp_path).stdout

    both = easel(["admin", "announcement", "edit", str(notice_id), "--no-period", "--starts-at",
                  "2099-01-01"], env, tmp_path)
    assert both.returncode == 1 and "--no-period" in both.stderr and "Traceback" not in both.stderr
