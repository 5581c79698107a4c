"""Filters: a user's rules for statuses they would rather be warned about or not see.

As Mastodon 4 (filters v2): a filter has a title, the contexts it applies in (home and
lists, notifications, public and hashtag timelines, threads, account pages), an action
(``warn``: the status carries a ``filtered`` result naming the filter; ``hide``: it is left
out of the answer altogether) and an optional expiry, after which it matches nothing. It
matches a status by keywords (case-insensitive; a ``whole_word`` keyword only at word
boundaries, exactly as Mastodon builds its regular expression) in the spoiler text, the
text and the media descriptions, or by naming the status itself (a boost of a named
status matches too). The v1 API sees each keyword as one "filter"; ``create_v1_filter``
and friends map it onto this model as Mastodon does.

A viewer's own statuses are never filtered for them. Writes commit and note
``filters_changed`` for the streaming API.

What it must never do: show or change another account's filters (they are "not found"),
or leave a half-written filter behind after a refused request.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html.parser import HTMLParser

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import new_id, utcnow
from server.models import (
    FILTER_ACTIONS,
    FILTER_CONTEXTS,
    Account,
    Filter,
    FilterKeyword,
    FilterStatus,
    MediaAttachment,
    Status,
)
from server.services import events
from server.services.errors import NotFound, ValidationFailed
from server.services.visibility import visible_to

MAX_TITLE = 255
MAX_KEYWORD = 255
MAX_FILTERS = 300
MAX_KEYWORDS_PER_FILTER = 300
# Longer than any sensible expiry, short enough that no date overflows.
MAX_EXPIRES_IN = 100 * 365 * 24 * 3600


# ------------------------------------------------------------------ what callers pass in

@dataclass(frozen=True)
class KeywordChange:
    """One entry of ``keywords_attributes``: a new keyword (no ``id``), a change to one
    (``id`` with ``keyword``/``whole_word``), or its removal (``id`` and ``destroy``)."""

    id: int | None = None
    keyword: str | None = None
    whole_word: bool | None = None
    destroy: bool = False


@dataclass(frozen=True)
class Expiry:
    """A new expiry: ``seconds`` from now, or None for "never"."""

    seconds: int | None


@dataclass
class FilterView:
    """A filter with its keywords and statuses (what the v2 entity shows)."""

    filter: Filter
    keywords: list[FilterKeyword] = field(default_factory=list)
    statuses: list[FilterStatus] = field(default_factory=list)


@dataclass(frozen=True)
class FilterMatch:
    """Why a status matched a filter (Mastodon's FilterResult)."""

    filter: Filter
    keyword_matches: list[str]
    status_matches: list[int]

    @property
    def hides(self) -> bool:
        return self.filter.action == "hide"


# ------------------------------------------------------------------ validation

def check_title(title: str | None) -> str:
    title = (title or "").strip()
    if not title:
        raise ValidationFailed("Title can't be blank")
    if len(title) > MAX_TITLE:
        raise ValidationFailed(f"Title is too long (maximum is {MAX_TITLE} characters)")
    return title


def check_contexts(contexts: Sequence[str]) -> str:
    wanted = {c.strip() for c in contexts if c.strip()}
    if not wanted:
        raise ValidationFailed("Context can't be blank")
    if wanted - set(FILTER_CONTEXTS):
        raise ValidationFailed("Context None or invalid context supplied")
    return ",".join(c for c in FILTER_CONTEXTS if c in wanted)


def check_action(action: str | None) -> str | None:
    if action is not None and action not in FILTER_ACTIONS:
        raise ValidationFailed("Filter action is not included in the list")
    return action


def check_keyword(keyword: str | None, *, name: str = "Keyword") -> str:
    keyword = (keyword or "").strip()
    if not keyword:
        raise ValidationFailed(f"{name} can't be blank")
    if len(keyword) > MAX_KEYWORD:
        raise ValidationFailed(f"{name} is too long (maximum is {MAX_KEYWORD} characters)")
    return keyword


def expires_at_for(expiry: Expiry, now: datetime) -> datetime | None:
    if expiry.seconds is None:
        return None
    if expiry.seconds <= 0:
        raise ValidationFailed("Expires in must be greater than 0")
    if expiry.seconds > MAX_EXPIRES_IN:
        raise ValidationFailed("Expires in is too far in the future")
    return now + timedelta(seconds=expiry.seconds)


# ------------------------------------------------------------------ reading

async def own_filter(session: AsyncSession, account: Account, filter_id: int) -> Filter:
    found = await session.scalar(select(Filter).where(Filter.id == filter_id,
                                                      Filter.account_id == account.id))
    if found is None:
        raise NotFound("Record not found")
    return found


async def _views(session: AsyncSession, found: Sequence[Filter]) -> list[FilterView]:
    views = {f.id: FilterView(f) for f in found}
    if views:
        for keyword in await session.scalars(select(FilterKeyword).where(
                FilterKeyword.filter_id.in_(list(views))).order_by(FilterKeyword.id)):
            views[keyword.filter_id].keywords.append(keyword)
        for rule in await session.scalars(select(FilterStatus).where(
                FilterStatus.filter_id.in_(list(views))).order_by(FilterStatus.id)):
            views[rule.filter_id].statuses.append(rule)
    return list(views.values())


async def filters_of(session: AsyncSession, account: Account) -> list[FilterView]:
    """All of ``account``'s filters, expired ones too, oldest first."""
    return await _views(session, list(await session.scalars(
        select(Filter).where(Filter.account_id == account.id).order_by(Filter.id))))


async def filter_of(session: AsyncSession, account: Account, filter_id: int) -> FilterView:
    return (await _views(session, [await own_filter(session, account, filter_id)]))[0]


async def keywords_of(session: AsyncSession, account: Account, filter_id: int) -> list[FilterKeyword]:
    found = await own_filter(session, account, filter_id)
    return list(await session.scalars(select(FilterKeyword).where(
        FilterKeyword.filter_id == found.id).order_by(FilterKeyword.id)))


async def own_keyword(session: AsyncSession, account: Account,
                      keyword_id: int) -> tuple[FilterKeyword, Filter]:
    row = (await session.execute(
        select(FilterKeyword, Filter).join(Filter, Filter.id == FilterKeyword.filter_id)
        .where(FilterKeyword.id == keyword_id, Filter.account_id == account.id))).first()
    if row is None:
        raise NotFound("Record not found")
    return row[0], row[1]


async def statuses_of(session: AsyncSession, account: Account, filter_id: int) -> list[FilterStatus]:
    found = await own_filter(session, account, filter_id)
    return list(await session.scalars(select(FilterStatus).where(
        FilterStatus.filter_id == found.id).order_by(FilterStatus.id)))


async def own_filter_status(session: AsyncSession, account: Account, rule_id: int) -> FilterStatus:
    found = await session.scalar(
        select(FilterStatus).join(Filter, Filter.id == FilterStatus.filter_id)
        .where(FilterStatus.id == rule_id, Filter.account_id == account.id))
    if found is None:
        raise NotFound("Record not found")
    return found


# ------------------------------------------------------------------ writing (v2)

async def _count(session: AsyncSession, query: Select[int]) -> int:
    return int(await session.scalar(query) or 0)


async def _check_room_for_filter(session: AsyncSession, account: Account) -> None:
    count = await _count(session, select(func.count()).select_from(Filter).where(
        Filter.account_id == account.id))
    if count >= MAX_FILTERS:
        raise ValidationFailed(f"You cannot have more than {MAX_FILTERS} filters")


async def _apply_keyword_changes(session: AsyncSession, found: Filter,
                                 changes: Sequence[KeywordChange]) -> None:
    """``keywords_attributes``: everything is checked before anything is written."""
    existing = {k.id: k for k in await session.scalars(
        select(FilterKeyword).where(FilterKeyword.filter_id == found.id))}
    new: list[FilterKeyword] = []
    updates: list[tuple[FilterKeyword, str | None, bool | None]] = []
    destroyed: set[int] = set()
    for change in changes:
        if change.id is None:
            if change.destroy:
                continue  # Mastodon ignores a removal of nothing
            new.append(FilterKeyword(
                filter_id=found.id, keyword=check_keyword(change.keyword, name="Keywords keyword"),
                whole_word=True if change.whole_word is None else change.whole_word))
            continue
        keyword = existing.get(change.id)
        if keyword is None:
            raise NotFound("Record not found")
        if change.destroy:
            destroyed.add(keyword.id)
        else:
            text = (check_keyword(change.keyword, name="Keywords keyword")
                    if change.keyword is not None else None)
            updates.append((keyword, text, change.whole_word))
    if len(existing) - len(destroyed) + len(new) > MAX_KEYWORDS_PER_FILTER:
        raise ValidationFailed(f"A filter holds at most {MAX_KEYWORDS_PER_FILTER} keywords")
    for keyword, text, whole_word in updates:
        if text is not None:
            keyword.keyword = text
        if whole_word is not None:
            keyword.whole_word = whole_word
    if destroyed:
        await session.execute(delete(FilterKeyword).where(FilterKeyword.id.in_(destroyed)))
    # Ids made in the same millisecond sort at random: keep the order they were given in.
    for keyword, keyword_id in zip(new, sorted({new_id() for _ in range(len(new) * 2)}),
                                   strict=False):
        keyword.id = keyword_id
    session.add_all(new)


async def create_filter(
    session: AsyncSession, account: Account, *, title: str | None, context: Sequence[str],
    action: str | None = None, expiry: Expiry | None = None,
    keywords: Sequence[KeywordChange] = (),
) -> FilterView:
    now = utcnow()
    created = Filter(account_id=account.id, title=check_title(title),
                     context=check_contexts(context), action=check_action(action) or "warn",
                     expires_at=expires_at_for(expiry, now) if expiry else None)
    if any(k.id is not None for k in keywords):
        raise NotFound("Record not found")  # a new filter has no keywords to change yet
    await _check_room_for_filter(session, account)
    session.add(created)
    await session.flush()
    await _apply_keyword_changes(session, created, keywords)
    events.filters_changed(session, account.id)
    await session.commit()
    return await filter_of(session, account, created.id)


async def update_filter(
    session: AsyncSession, account: Account, filter_id: int, *, title: str | None = None,
    context: Sequence[str] | None = None, action: str | None = None,
    expiry: Expiry | None = None, keywords: Sequence[KeywordChange] = (),
) -> FilterView:
    found = await own_filter(session, account, filter_id)
    new_title = check_title(title) if title is not None else None
    new_context = check_contexts(context) if context is not None else None
    new_action = check_action(action)
    new_expiry = expires_at_for(expiry, utcnow()) if expiry is not None else None
    await _apply_keyword_changes(session, found, keywords)
    if new_title is not None:
        found.title = new_title
    if new_context is not None:
        found.context = new_context
    if new_action is not None:
        found.action = new_action
    if expiry is not None:
        found.expires_at = new_expiry
    events.filters_changed(session, account.id)
    await session.commit()
    return await filter_of(session, account, found.id)


async def delete_filter(session: AsyncSession, account: Account, filter_id: int) -> None:
    found = await own_filter(session, account, filter_id)
    await session.execute(delete(Filter).where(Filter.id == found.id))
    events.filters_changed(session, account.id)
    await session.commit()


async def add_keyword(session: AsyncSession, account: Account, filter_id: int, *,
                      keyword: str | None, whole_word: bool | None) -> FilterKeyword:
    found = await own_filter(session, account, filter_id)
    text = check_keyword(keyword)
    count = await _count(session, select(func.count()).select_from(FilterKeyword).where(
        FilterKeyword.filter_id == found.id))
    if count >= MAX_KEYWORDS_PER_FILTER:
        raise ValidationFailed(f"A filter holds at most {MAX_KEYWORDS_PER_FILTER} keywords")
    created = FilterKeyword(filter_id=found.id, keyword=text,
                            whole_word=True if whole_word is None else whole_word)
    session.add(created)
    events.filters_changed(session, account.id)
    await session.commit()
    return created


async def update_keyword(session: AsyncSession, account: Account, keyword_id: int, *,
                         keyword: str | None, whole_word: bool | None) -> FilterKeyword:
    found, _ = await own_keyword(session, account, keyword_id)
    if keyword is not None:
        found.keyword = check_keyword(keyword)
    if whole_word is not None:
        found.whole_word = whole_word
    events.filters_changed(session, account.id)
    await session.commit()
    return found


async def delete_keyword(session: AsyncSession, account: Account, keyword_id: int) -> None:
    found, _ = await own_keyword(session, account, keyword_id)
    await session.execute(delete(FilterKeyword).where(FilterKeyword.id == found.id))
    events.filters_changed(session, account.id)
    await session.commit()


async def add_status(session: AsyncSession, account: Account, filter_id: int,
                     status_id: int | None) -> FilterStatus:
    """Name a status the viewer can see in a filter (once per filter)."""
    found = await own_filter(session, account, filter_id)
    if status_id is None:
        raise ValidationFailed("Status must exist")
    if await session.scalar(select(Status.id).where(Status.id == status_id)) is None:
        raise ValidationFailed("Status must exist")
    if await session.scalar(select(Status.id).where(Status.id == status_id,
                                                    visible_to(account))) is None:
        raise ValidationFailed("Status is invalid")
    if await session.scalar(select(FilterStatus.id).where(
            FilterStatus.filter_id == found.id, FilterStatus.status_id == status_id)) is not None:
        raise ValidationFailed("Status has already been taken")
    created = FilterStatus(filter_id=found.id, status_id=status_id)
    try:
        async with session.begin_nested():
            session.add(created)
    except IntegrityError:  # added at the same moment by another request
        raise ValidationFailed("Status has already been taken") from None
    events.filters_changed(session, account.id)
    await session.commit()
    return created


async def delete_filter_status(session: AsyncSession, account: Account, rule_id: int) -> None:
    found = await own_filter_status(session, account, rule_id)
    await session.execute(delete(FilterStatus).where(FilterStatus.id == found.id))
    events.filters_changed(session, account.id)
    await session.commit()


# ------------------------------------------------------------------ v1: one keyword = one filter

async def v1_filters(session: AsyncSession, account: Account) -> list[tuple[FilterKeyword, Filter]]:
    rows = await session.execute(
        select(FilterKeyword, Filter).join(Filter, Filter.id == FilterKeyword.filter_id)
        .where(Filter.account_id == account.id).order_by(FilterKeyword.id))
    return [(k, f) for k, f in rows.all()]


async def create_v1_filter(
    session: AsyncSession, account: Account, *, phrase: str | None, context: Sequence[str],
    irreversible: bool | None, whole_word: bool | None, expiry: Expiry | None,
) -> tuple[FilterKeyword, Filter]:
    """A v2 filter titled by its phrase, with that one keyword (Mastodon's mapping)."""
    text = check_keyword(phrase, name="Phrase")
    view = await create_filter(
        session, account, title=text[:MAX_TITLE], context=context,
        action="hide" if irreversible else "warn", expiry=expiry,
        keywords=[KeywordChange(keyword=text, whole_word=whole_word)])
    return view.keywords[0], view.filter


async def update_v1_filter(
    session: AsyncSession, account: Account, keyword_id: int, *, phrase: str | None,
    context: Sequence[str] | None, irreversible: bool | None, whole_word: bool | None,
    expiry: Expiry | None,
) -> tuple[FilterKeyword, Filter]:
    """Change the keyword, and the filter it belongs to when that holds only this keyword
    (as Mastodon, a filter shared by several keywords cannot be changed from v1)."""
    keyword, found = await own_keyword(session, account, keyword_id)
    text = check_keyword(phrase, name="Phrase") if phrase is not None else None
    new_context = check_contexts(context) if context is not None else None
    new_expiry = expires_at_for(expiry, utcnow()) if expiry is not None else None
    new_action = None if irreversible is None else ("hide" if irreversible else "warn")
    filter_changes = ((new_context is not None and new_context != found.context)
                      or (new_action is not None and new_action != found.action)
                      or expiry is not None)
    if filter_changes:
        count = await _count(session, select(func.count()).select_from(FilterKeyword).where(
            FilterKeyword.filter_id == found.id))
        if count > 1:
            raise ValidationFailed(
                "These parameters cannot be changed from this application because they apply "
                "to more than one filter keyword. Use a more recent application or the web "
                "interface.")
    if text is not None:
        keyword.keyword = text
    if whole_word is not None:
        keyword.whole_word = whole_word
    if new_context is not None:
        found.context = new_context
    if new_action is not None:
        found.action = new_action
    if expiry is not None:
        found.expires_at = new_expiry
    events.filters_changed(session, account.id)
    await session.commit()
    return keyword, found


async def delete_v1_filter(session: AsyncSession, account: Account, keyword_id: int) -> None:
    """Remove the keyword; its filter goes too when nothing is left in it."""
    keyword, found = await own_keyword(session, account, keyword_id)
    await session.execute(delete(FilterKeyword).where(FilterKeyword.id == keyword.id))
    left = await _count(session, select(func.count()).select_from(FilterKeyword).where(
        FilterKeyword.filter_id == found.id))
    rules = await _count(session, select(func.count()).select_from(FilterStatus).where(
        FilterStatus.filter_id == found.id))
    if not left and not rules:
        await session.execute(delete(Filter).where(Filter.id == found.id))
    events.filters_changed(session, account.id)
    await session.commit()


# ------------------------------------------------------------------ matching

def keyword_pattern(keyword: str, whole_word: bool) -> re.Pattern[str]:
    """Mastodon's ``CustomFilterKeyword#to_regex``: a whole-word keyword gets a word
    boundary only at an end that is a word character (so ``#tag`` or ``c++`` still work)."""
    escaped = re.escape(keyword)
    if not whole_word:
        return re.compile(escaped, re.IGNORECASE)
    start = r"\b" if re.match(r"\w", keyword) else ""
    end = r"\b" if re.search(r"\w\Z", keyword) else ""
    return re.compile(f"{start}{escaped}{end}", re.IGNORECASE | re.MULTILINE)


class _Text(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "blockquote", "li", "pre", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(html: str) -> str:
    """What a reader sees of a status's HTML: text, with paragraphs and line breaks."""
    reader = _Text()
    reader.feed(html)
    reader.close()
    return "".join(reader.parts).strip()


def searchable_text(status: Status, media_descriptions: Sequence[str]) -> str:
    """Mastodon's ``Status#searchable_text``: spoiler, text, then media descriptions."""
    parts = [status.spoiler_text, plain_text(status.content), *media_descriptions]
    return "\n\n".join(p for p in parts if p)


async def match_statuses(
    session: AsyncSession, viewer: Account, statuses: Sequence[Status], context: str,
    *, now: datetime | None = None,
) -> dict[int, list[FilterMatch]]:
    """The viewer's active filters for ``context`` that each status matches, by status
    id (a boost is judged by what it boosts). Statuses the viewer wrote are never matched."""
    now = now or utcnow()
    filters = [f for f in await session.scalars(select(Filter).where(
        Filter.account_id == viewer.id, or_(Filter.expires_at.is_(None), Filter.expires_at > now),
    ).order_by(Filter.id)) if context in f.contexts]
    if not filters or not statuses:
        return {}
    originals = {s.id: s for s in statuses}
    missing = {s.reblog_of_id for s in statuses
               if s.reblog_of_id is not None and s.reblog_of_id not in originals}
    if missing:
        for original in await session.scalars(select(Status).where(Status.id.in_(missing))):
            originals[original.id] = original

    def proper(status: Status) -> Status | None:
        if status.reblog_of_id is None:
            return status
        return originals.get(status.reblog_of_id)

    judged = [(s, p) for s in statuses if (p := proper(s)) is not None and p.account_id != viewer.id]
    if not judged:
        return {}
    filter_ids = [f.id for f in filters]
    patterns: dict[int, list[tuple[str, re.Pattern[str]]]] = defaultdict(list)
    for keyword in await session.scalars(select(FilterKeyword).where(
            FilterKeyword.filter_id.in_(filter_ids)).order_by(FilterKeyword.id)):
        patterns[keyword.filter_id].append(
            (keyword.keyword, keyword_pattern(keyword.keyword, keyword.whole_word)))
    candidate_ids = {i for s, p in judged for i in (s.id, p.id)}
    named: dict[int, set[int]] = defaultdict(set)
    for filter_id, status_id in (await session.execute(
            select(FilterStatus.filter_id, FilterStatus.status_id).where(
                FilterStatus.filter_id.in_(filter_ids),
                FilterStatus.status_id.in_(candidate_ids)))).all():
        named[filter_id].add(status_id)
    descriptions: dict[int, list[str]] = defaultdict(list)
    if patterns:
        for media_status_id, description in (await session.execute(
                select(MediaAttachment.status_id, MediaAttachment.description).where(
                    MediaAttachment.status_id.in_({p.id for _, p in judged}))
                .order_by(MediaAttachment.id))).all():
            if media_status_id is not None and description:
                descriptions[media_status_id].append(description)

    result: dict[int, list[FilterMatch]] = {}
    texts: dict[int, str] = {}
    for status, original in judged:
        found: list[FilterMatch] = []
        for item in filters:
            keyword_matches: list[str] = []
            if patterns.get(item.id):
                text = texts.get(original.id)
                if text is None:
                    text = texts[original.id] = searchable_text(original, descriptions[original.id])
                keyword_matches = [k for k, pattern in patterns[item.id] if pattern.search(text)]
            status_matches = [i for i in dict.fromkeys((status.id, original.id))
                              if i in named.get(item.id, ())]
            if keyword_matches or status_matches:
                found.append(FilterMatch(item, keyword_matches, status_matches))
        if found:
            result[status.id] = found
    return result
