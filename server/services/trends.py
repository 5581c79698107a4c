"""Trends and suggestions, simple but real: computed from what people here can see.

* **Tags**: the hashtags of public, published posts (local and remote) in the last week,
  ranked by how many different accounts used them, then by uses; each with its history,
  one entry per day (today first), as Mastodon's ``Tag.history``.
* **Statuses**: public, published posts of the last two days with the most boosts and
  favourites (at least one); for a signed-in reader, none by accounts it blocks, is
  blocked by or mutes (``timelines.not_hidden_from``, as its public timeline).
* **Suggestions**: the most-followed local accounts the viewer does not follow yet (never
  itself, nor accounts it blocks, is blocked by or mutes, nor those it dismissed with
  ``DELETE /api/v1/suggestions/:account_id``).

Tags and statuses count no post of a suspended account (``visibility.not_suspended_author``,
domains included) nor, as Mastodon's trends, of a silenced one — by our moderators or
through its domain's block — even for its followers: a trend is a public list
(``timelines.without_silenced`` as for a reader who follows nobody).

Nothing is stored but the dismissals: each answer is one or two queries over indexed
columns, bounded by time and ``limit``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import Account, Follow, Status, StatusTag, SuggestionDismissal, Tag
from server.services.accounts import find_account, listed_accounts
from server.services.blocks import hidden_accounts
from server.services.timelines import not_hidden_from, without_silenced
from server.services.visibility import not_suspended_author

TAG_WINDOW = timedelta(days=7)
STATUS_WINDOW = timedelta(days=2)
HISTORY_DAYS = 7
# At most this many (tag, account, time) rows are read to draw the histories.
HISTORY_ROWS = 20000


@dataclass(frozen=True)
class DayUse:
    day: int  # the day's start, UTC, in seconds since the epoch
    uses: int
    accounts: int


@dataclass(frozen=True)
class TrendingTag:
    tag: Tag
    history: list[DayUse]


def _public_since(since: datetime) -> ColumnElement[bool]:
    return and_(Status.published.is_(True), Status.visibility == "public",
                Status.reblog_of_id.is_(None), Status.created_at >= since,
                not_suspended_author())


def _day_start(moment: datetime) -> int:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(day.timestamp())


async def trending_tags(session: AsyncSession, *, limit: int = 10, offset: int = 0,
                        now: datetime | None = None) -> list[TrendingTag]:
    now = now or utcnow()
    since = now - TAG_WINDOW
    accounts = func.count(func.distinct(Status.account_id))
    ranked = (await session.execute(await without_silenced(session,
        select(StatusTag.tag_id, accounts.label("accounts"), func.count().label("uses"))
        .join(Status, Status.id == StatusTag.status_id)
        .where(_public_since(since))
        .group_by(StatusTag.tag_id)
        .order_by(accounts.desc(), func.count().desc(), StatusTag.tag_id)
        .limit(limit).offset(offset), None))).all()
    tag_ids = [row.tag_id for row in ranked]
    if not tag_ids:
        return []
    tags = {t.id: t for t in await session.scalars(select(Tag).where(Tag.id.in_(tag_ids)))}
    uses: dict[tuple[int, int], int] = defaultdict(int)
    users: dict[tuple[int, int], set[int]] = defaultdict(set)
    for tag_id, account_id, created_at in (await session.execute(await without_silenced(session,
            select(StatusTag.tag_id, Status.account_id, Status.created_at)
            .join(Status, Status.id == StatusTag.status_id)
            .where(StatusTag.tag_id.in_(tag_ids), _public_since(since))
            .limit(HISTORY_ROWS), None))).all():
        day = _day_start(created_at)
        uses[(tag_id, day)] += 1
        users[(tag_id, day)].add(account_id)
    days = [_day_start(now - timedelta(days=n)) for n in range(HISTORY_DAYS)]
    return [TrendingTag(tags[tag_id], [DayUse(day, uses[(tag_id, day)], len(users[(tag_id, day)]))
                                       for day in days])
            for tag_id in tag_ids if tag_id in tags]


async def trending_statuses(session: AsyncSession, *, viewer: Account | None = None,
                            limit: int = 20, offset: int = 0,
                            now: datetime | None = None) -> list[Status]:
    """The trending statuses ``viewer`` (None: anonymous) may be shown."""
    since = (now or utcnow()) - STATUS_WINDOW
    score = Status.reblogs_count + Status.favourites_count
    query = await without_silenced(session, select(Status).where(
        _public_since(since), score > 0, not_hidden_from(viewer)), None)
    return list(await session.scalars(
        query.order_by(score.desc(), Status.id.desc()).limit(limit).offset(offset)))


async def suggested_accounts(session: AsyncSession, viewer: Account, *,
                             limit: int = 40) -> list[Account]:
    followed = select(Follow.target_account_id).where(Follow.account_id == viewer.id)
    dismissed = select(SuggestionDismissal.target_account_id).where(
        SuggestionDismissal.account_id == viewer.id)
    return list(await session.scalars(
        select(Account).where(
            Account.domain == "", Account.id != viewer.id, Account.discoverable.is_(True),
            listed_accounts(), Account.id.not_in(followed),
            Account.id.not_in(hidden_accounts(viewer.id)), Account.id.not_in(dismissed))
        .order_by(Account.followers_count.desc(), Account.id).limit(limit)))


async def dismiss_suggestion(session: AsyncSession, viewer: Account, account_id: int) -> None:
    """``viewer`` no longer wants ``account_id`` suggested (idempotent); committed."""
    target = await find_account(session, account_id)
    try:
        async with session.begin_nested():
            session.add(SuggestionDismissal(account_id=viewer.id, target_account_id=target.id))
    except IntegrityError:
        pass  # dismissed already
    await session.commit()
