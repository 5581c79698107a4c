"""``easel admin announcement …``: the admins' announcements from the command line — add
(published at once, a draft, or a draft published at a time), edit, list, publish,
unpublish, remove.

Why it exists: an admin tells the members something (maintenance tonight, a meet-up)
without opening the admin pages, as Mastodon's apps show announcements above the home
timeline. Parsing lives here beside the handlers so that ``server/cli.py`` only hooks them
in; the use cases are ``server/services/announcements.py``, which checks the text and the
period. Dates are ISO 8601 and UTC unless they carry an offset.

An announcement published or withdrawn here is told at once to the open streams of the
running web processes (through Redis, or the embedded mode's sibling sockets), as when
the admin pages do it; apps without an open stream see it on their next refresh.

It must never print anything but what was done and the announcements asked for, nor a
traceback for a bad date or an unknown id.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from server.db import Database
from server.ids import row_id, utcnow
from server.models import Announcement
from server.services import announcements
from server.services.announcements import AnnouncementView
from server.services.errors import NotFound, ServiceError
from server.settings import Settings
from server.streaming.bus import StreamBus

FIRST_LINE_LIMIT = 72
NEXT_REFRESH = ("Apps with an open stream are told at once; the others see the change on "
                "their next refresh.")


def moment(raw: str) -> datetime:
    """An ISO 8601 date or date and time for ``--starts-at``/``--ends-at``: UTC unless it
    carries an offset (``2026-12-24``, ``2026-12-24T18:00``, ``2026-12-24T18:00+01:00``)."""
    try:
        parsed = datetime.fromisoformat(raw.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a date: use ISO 8601, e.g. 2026-12-24 or 2026-12-24T18:00 "
            "(UTC unless an offset such as +01:00 is given)") from None


def add_parsers(admin_commands: argparse._SubParsersAction) -> None:
    announcement = admin_commands.add_parser(
        "announcement", help="notices shown to everyone signed in, above the home timeline",
        description="The admins' announcements, as Mastodon apps show them. " + NEXT_REFRESH)
    commands = announcement.add_subparsers(dest="announcement_command", required=True)
    add = commands.add_parser(
        "add", help="add an announcement (published at once unless --draft)",
        description="Add an announcement, published at once unless --draft. " + NEXT_REFRESH)
    add.add_argument("text")
    add.add_argument("--starts-at", type=moment, default=None, metavar="ISO",
                     help="when what it announces starts, e.g. 2026-12-24T18:00 (UTC unless "
                          "an offset is given); needs --ends-at")
    add.add_argument("--ends-at", type=moment, default=None, metavar="ISO",
                     help="when it ends (after --starts-at); once past, apps no longer list it")
    add.add_argument("--all-day", action="store_true", help="only the dates of the period matter")
    add.add_argument("--draft", action="store_true",
                     help="save it unpublished: nobody sees it until it is published")
    add.add_argument("--scheduled-at", type=moment, default=None, metavar="ISO",
                     help="save it as a draft that is published at this time (UTC unless an "
                          "offset is given)")
    edit = commands.add_parser(
        "edit", help="change its text, period or (a draft's) publication time",
        description="Change an announcement; what is not given stays as it is. A published "
                    "one is sent again to the apps with an open stream, which show the new "
                    "text in its place; the others see it on their next refresh.")
    edit.add_argument("id", type=row_id)
    edit.add_argument("--text", default=None)
    edit.add_argument("--starts-at", type=moment, default=None, metavar="ISO",
                      help="when what it announces starts (with --ends-at, unless it has a period)")
    edit.add_argument("--ends-at", type=moment, default=None, metavar="ISO", help="when it ends")
    edit.add_argument("--no-period", action="store_true", help="remove its period")
    day = edit.add_mutually_exclusive_group()
    day.add_argument("--all-day", dest="all_day", action="store_const", const=True, default=None,
                     help="only the dates of the period matter")
    day.add_argument("--not-all-day", dest="all_day", action="store_const", const=False,
                     help="the times of the period matter")
    when = edit.add_mutually_exclusive_group()
    when.add_argument("--scheduled-at", type=moment, default=None, metavar="ISO",
                      help="publish this draft at that time")
    when.add_argument("--unschedule", action="store_true",
                      help="keep this draft unpublished until it is published by hand")
    commands.add_parser("list", help="list every announcement, drafts included, newest first")
    for name, what in (("publish", "publish a draft (or an unpublished one)"),
                       ("unpublish", "withdraw it from the apps: a draft again"),
                       ("remove", "delete it, with its reads and reactions")):
        parser = commands.add_parser(name, help=what, description=f"{what[0].upper()}{what[1:]}. "
                                     + NEXT_REFRESH)
        parser.add_argument("id", type=row_id)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from server.commands import CommandError, migrate

    await migrate(settings, quiet=True)
    db = Database.from_settings(settings)
    streams = StreamBus(settings)  # what this commits reaches the web processes' streams
    db.dispatch_events = streams.publish
    await streams.start(listen=False)
    try:
        async with db.session() as session:
            return await _run(session, args)
    except NotFound as exc:  # only edit, publish, unpublish and remove look one up
        raise CommandError(f"Announcement {getattr(args, 'id', '')} not found") from exc
    except ServiceError as exc:
        raise CommandError(exc.message) from exc
    finally:
        await streams.close()  # once what was published has been sent
        await db.dispose()


async def _run(session: AsyncSession, args: argparse.Namespace) -> int:
    command = args.announcement_command
    if command == "add":
        added = await announcements.create_announcement(
            session, args.text, starts_at=args.starts_at, ends_at=args.ends_at,
            all_day=args.all_day, publish=not args.draft, scheduled_at=args.scheduled_at)
        if args.scheduled_at is not None:
            print(f"added announcement {added.id}, to be published at "
                  f"{args.scheduled_at:%Y-%m-%d %H:%M} UTC")
        else:
            print(f"added {'draft ' if args.draft else ''}announcement {added.id}")
        return 0
    if command == "edit":
        return await _edit(session, args)
    change = {"publish": (announcements.publish_announcement, "published"),
              "unpublish": (announcements.unpublish_announcement, "unpublished"),
              "remove": (announcements.remove_announcement, "removed")}.get(command)
    if change is not None:
        do, done = change
        await do(session, args.id)
        print(f"{done} announcement {args.id}")
        return 0
    found = await announcements.all_announcements(session)
    if not found:
        print("no announcements")
    now = utcnow()
    for view in await announcements.views(session, found, None):
        print(_line(view, now))
    return 0


async def _edit(session: AsyncSession, args: argparse.Namespace) -> int:
    from server.commands import CommandError

    current = await announcements.get_announcement(session, args.id)
    if args.no_period and (args.starts_at is not None or args.ends_at is not None):
        raise CommandError("--no-period removes the period: give it without --starts-at/--ends-at")
    starts_at, ends_at = current.starts_at, current.ends_at
    if args.no_period:
        starts_at = ends_at = None
    starts_at = args.starts_at if args.starts_at is not None else starts_at
    ends_at = args.ends_at if args.ends_at is not None else ends_at
    scheduled_at = None if args.unschedule else (args.scheduled_at or current.scheduled_at)
    await announcements.update_announcement(
        session, current.id, args.text if args.text is not None else current.text,
        starts_at=starts_at, ends_at=ends_at,
        all_day=current.all_day if args.all_day is None else args.all_day,
        scheduled_at=scheduled_at)
    print(f"changed announcement {current.id}")
    return 0


def period(announcement: Announcement) -> str:
    """Its period in UTC (dates only when all day), or "" when it has none."""
    starts, ends = announcement.starts_at, announcement.ends_at
    if starts is None or ends is None:
        return ""
    if announcement.all_day:
        first, last = f"{starts:%Y-%m-%d}", f"{ends:%Y-%m-%d}"
        return f"{first} (all day)" if first == last else f"{first} – {last} (all day)"
    return f"{starts:%Y-%m-%d %H:%M} – {ends:%Y-%m-%d %H:%M} UTC"


def _line(view: AnnouncementView, now: datetime) -> str:
    announcement = view.announcement
    reactions = " ".join(f"{r.name} {r.count}" for r in view.reactions) or "no reactions"
    lines = announcement.text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    if len(first) > FIRST_LINE_LIMIT or len(lines) > 1:
        first = first[:FIRST_LINE_LIMIT].rstrip() + "…"
    scheduled = announcement.scheduled_at
    publishes = f"at {scheduled:%Y-%m-%d %H:%M} UTC" if scheduled is not None else ""
    parts = [str(announcement.id), f"{announcements.state_of(announcement, now):<9}", publishes,
             period(announcement), reactions, first]
    return "  ".join(part for part in parts if part)
