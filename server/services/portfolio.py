"""Portfolios: a work's metadata and tags, browsing by tags, projects, pins, the vocabulary.

Why it exists: a status with images is a *work*; what makes it one for the portfolio —
title, description, year, dimensions and terms of five open vocabularies — lives here, as
do the rules that keep it findable: every term is stored once per kind under its
normalised key (:func:`normalise_key`), aliases map other spellings onto a term, the
terms also become the status's ordinary hashtags (so Mastodon users see and follow them),
and whether a work may be browsed (``listed``: public, published, not AI-generated) is
copied onto its tag rows in the same transaction that changes it, so that browsing by
tags over hundreds of thousands of works is an index walk.

What it must never do: import ``server.services.statuses`` (which calls in here on
create, publish and delete) or ``federation`` (callers record the Update activities),
or commit inside the functions that ``statuses`` calls within its own transactions
(:func:`set_work_metadata`, :func:`ensure_work`, :func:`refresh_listed`,
:func:`recognise_hashtags`, :func:`move_work`). The use cases for endpoints (projects,
pins, vocabulary) commit themselves.
"""

from __future__ import annotations

import re
import time
import unicodedata
import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, delete, exists, func, insert, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import insert_ignoring_conflict
from server.ids import new_id, utcnow
from server.models import (
    TAG_KINDS,
    Account,
    MediaAttachment,
    Mention,
    PortfolioTag,
    PortfolioTagAlias,
    Project,
    ProjectWork,
    Status,
    StatusPin,
    StatusTag,
    Work,
    WorkTag,
)
from server.services.errors import NotFound, ValidationFailed, get_or_404
from server.services.outbox import record_activity
from server.services.tags import tags_for
from server.services.text import extract_hashtags, normalize_tag, render_status
from server.services.visibility import limited_account_ids, limited_by_domain, visible_to

KINDS = TAG_KINDS  # ("field", "medium", "project_type", "category", "software")
# The name of each kind in query strings and JSON bodies.
API_PARAM = {"field": "field", "medium": "medium", "project_type": "project_type",
             "category": "category", "software": "software"}

MAX_TITLE = 200
MAX_DESCRIPTION = 5000
MAX_DIMENSIONS = 100
MAX_TERMS_PER_KIND = 10
MAX_TERM_LENGTH = 64
MIN_YEAR = 1000
# Mastodon's StatusPinValidator limit.
MAX_PINS = 5
MAX_PROJECTS = 200
MAX_PROJECT_WORKS = 500
MAX_PROJECT_TITLE = 200
# Browsing: the driving kind is the one whose terms have the fewest listed works, counted
# up to this many (enough to tell a rare term from a common one, bounded in cost).
_COUNT_CAP = 4000
# Those counts, kept per database and set of terms for a few minutes: they only choose the
# driving kind, never what a page holds, and a term's popularity changes slowly; a count
# served from here saves a query and the walk of up to _COUNT_CAP index entries.
_COUNT_TTL_S = 300.0
_COUNTS_KEPT = 4096
_counted: weakref.WeakKeyDictionary[Engine, dict[frozenset[int], tuple[float, int]]] = \
    weakref.WeakKeyDictionary()
MAX_BROWSE_TERMS = 20
# Further references to work_tags for browse's EXISTS checks on the other kinds, by their
# place after the driving kind rather than by kind: the page's SQL then has one shape per
# number of kinds and terms, not one per combination of kinds, which a first run pays for
# (SQLAlchemy compiles it, PostgreSQL prepares and plans it). Made once: an alias per
# query costs more than the query's compiled-cache lookup.
_KIND_ROWS = [WorkTag.__table__.alias(f"wt_{n}") for n in range(1, len(KINDS))]


# ------------------------------------------------------------------ normalisation

def normalise_key(text: str) -> str:
    """The form every spelling of a term is looked up by: NFKC, case-folded, letters and
    digits only. ``"Digital-painting "`` and ``"#DigitalPainting"`` → ``"digitalpainting"``."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if c.isalnum())


def clean_name(text: str) -> str:
    """A term as it is shown: trimmed, a leading ``#`` dropped, inner whitespace collapsed."""
    text = unicodedata.normalize("NFC", text).strip().lstrip("#\uff03").strip()
    return re.sub(r"\s+", " ", text)


def hashtag_for(name: str) -> str:
    """The hashtag a term is posted as: its words joined, each capitalised unless it
    already has capitals (``"Digital Painting"`` → ``"DigitalPainting"``, ``"3D"``)."""
    words = re.split(r"[^\w]+|_", unicodedata.normalize("NFKC", name))
    parts = []
    for word in words:
        word = "".join(c for c in word if c.isalnum())
        if not word:
            continue
        parts.append(word if any(c.isupper() for c in word) else word[:1].upper() + word[1:])
    return "".join(parts)


def _is_hashtag(tag: str) -> bool:
    """Whether ``#tag`` is a hashtag at all (Mastodon wants something besides digits)."""
    return any(c.isalpha() for c in tag)


# ------------------------------------------------------------------ work metadata

@dataclass
class WorkMeta:
    """What a client (or a remote server) says about a work."""

    title: str = ""
    description: str = ""
    year: int | None = None
    dimensions: str = ""
    tags: dict[str, list[str]] = field(default_factory=dict)  # kind → display names
    ai_generated: bool = False


@dataclass(frozen=True)
class TermView:
    name: str
    key: str
    hashtag: str


@dataclass
class WorkView:
    title: str
    description: str
    year: int | None
    dimensions: str
    ai_generated: bool
    tags: dict[str, list[TermView]]
    listed: bool = False
    local: bool = True


def validate_meta(meta: WorkMeta) -> dict[str, list[str]]:
    """Check ``meta``; its terms per kind, cleaned and without repeats (by key).
    ValidationFailed (422) with a message naming what is wrong."""
    if len(meta.title.strip()) > MAX_TITLE:
        raise ValidationFailed(f"Title is too long (maximum is {MAX_TITLE} characters)")
    if len(meta.description.strip()) > MAX_DESCRIPTION:
        raise ValidationFailed(
            f"Description is too long (maximum is {MAX_DESCRIPTION} characters)")
    if len(meta.dimensions.strip()) > MAX_DIMENSIONS:
        raise ValidationFailed(
            f"Dimensions is too long (maximum is {MAX_DIMENSIONS} characters)")
    if meta.year is not None:
        latest = datetime.now(UTC).year + 1
        if not MIN_YEAR <= meta.year <= latest:
            raise ValidationFailed(f"Year must be between {MIN_YEAR} and {latest}")
    cleaned: dict[str, list[str]] = {}
    for kind, names in meta.tags.items():
        if kind not in KINDS:
            raise ValidationFailed(
                f"Unknown portfolio tag kind {kind!r}; the kinds are {', '.join(KINDS)}")
        seen: set[str] = set()
        terms: list[str] = []
        for raw in names:
            name = clean_name(str(raw))
            if not name:
                continue
            if len(name) > MAX_TERM_LENGTH:
                raise ValidationFailed(
                    f"{kind} {name[:20]!r}… is too long (maximum is {MAX_TERM_LENGTH} characters)")
            key = normalise_key(name)
            if not key:
                raise ValidationFailed(f"{kind} {name!r} needs a letter or a digit")
            if key not in seen:
                seen.add(key)
                terms.append(name)
        if len(terms) > MAX_TERMS_PER_KIND:
            raise ValidationFailed(
                f"Too many {kind} terms (maximum is {MAX_TERMS_PER_KIND})")
        cleaned[kind] = terms
    return cleaned


async def _existing_terms(session: AsyncSession, kind: str,
                          keys: Sequence[str]) -> dict[str, PortfolioTag]:
    """Terms of ``kind`` found by key or by alias, keyed by the key asked for."""
    if not keys:
        return {}
    found = {t.key: t for t in await session.scalars(select(PortfolioTag).where(
        PortfolioTag.kind == kind, PortfolioTag.key.in_(keys)))}
    missing = [k for k in keys if k not in found]
    if missing:
        for alias_key, term in (await session.execute(
                select(PortfolioTagAlias.key, PortfolioTag)
                .join(PortfolioTag, PortfolioTag.id == PortfolioTagAlias.tag_id)
                .where(PortfolioTagAlias.kind == kind, PortfolioTagAlias.key.in_(missing)))).all():
            found[alias_key] = term
    return found


async def resolve_terms(session: AsyncSession, kind: str, names: Sequence[str]) -> list[PortfolioTag]:
    """The terms for these (cleaned) names, in order: existing by key or alias, else new
    with the spelling given. Concurrent requests may create the same term: the insert
    ignores the conflict and the row is read back."""
    keys = [normalise_key(n) for n in names]
    found = await _existing_terms(session, kind, keys)
    for name, key in zip(names, keys, strict=True):
        if key not in found:
            await session.execute(insert_ignoring_conflict(
                session, PortfolioTag, {"id": new_id(), "kind": kind, "key": key, "name": name,
                                        "suggested": False, "position": 0,
                                        "created_at": utcnow()}, ["kind", "key"]))
    if any(k not in found for k in keys):
        found = await _existing_terms(session, kind, keys)
    result: list[PortfolioTag] = []
    for key in keys:
        term = found[key]
        if term.id not in {t.id for t in result}:
            result.append(term)
    return result


def _is_listed(status: Status, work: Work) -> bool:
    return (status.visibility == "public" and status.published and status.reblog_of_id is None
            and not work.ai_generated)


async def media_says_ai(session: AsyncSession, status_id: int) -> bool:
    return bool(await session.scalar(select(exists().where(
        MediaAttachment.status_id == status_id, MediaAttachment.ai_provenance.is_not(None)))))


async def ensure_work(session: AsyncSession, status: Status) -> Work:
    """The status's Work row, created (empty) if missing; not committed."""
    work = await session.get(Work, status.id)
    if work is None:
        now = utcnow()
        await session.execute(insert_ignoring_conflict(session, Work, {
            "status_id": status.id, "account_id": status.account_id, "local": status.local,
            "title": "", "description": "", "year": None, "dimensions": "",
            "ai_generated": await media_says_ai(session, status.id), "listed": False,
            "created_at": now, "updated_at": now}, ["status_id"]))
        work = await session.get(Work, status.id)
        assert work is not None
        work.listed = _is_listed(status, work)
        await session.flush()
    return work


async def set_work_metadata(session: AsyncSession, status: Status, meta: WorkMeta) -> Work:
    """Replace a work's portfolio data with ``meta`` (not committed, not federated).

    Validates first (ValidationFailed, nothing written), then writes the Work and its
    WorkTag rows, resolves terms (aliases; new ones with the spelling given), makes the
    terms hashtags of the status, and keeps ``listed`` right.
    """
    if status.reblog_of_id is not None:
        raise ValidationFailed("A boost cannot be a work")
    terms_by_kind = validate_meta(meta)
    work = await ensure_work(session, status)
    work.title = meta.title.strip()
    work.description = meta.description.strip()
    work.year = meta.year
    work.dimensions = meta.dimensions.strip()
    work.ai_generated = meta.ai_generated or await media_says_ai(session, status.id)
    work.listed = _is_listed(status, work)
    work.updated_at = utcnow()
    terms: list[PortfolioTag] = []
    for kind in KINDS:
        terms.extend(await resolve_terms(session, kind, terms_by_kind.get(kind, [])))
    await _replace_work_tags(session, work, terms)
    await _sync_hashtags(session, status, terms)
    await session.flush()
    return work


async def _replace_work_tags(session: AsyncSession, work: Work, terms: Sequence[PortfolioTag]) -> None:
    await session.execute(delete(WorkTag).where(WorkTag.status_id == work.status_id)
                          .execution_options(synchronize_session=False))
    rows = [{"status_id": work.status_id, "tag_id": term.id, "position": position,
             "listed": work.listed} for position, term in enumerate(terms)]
    if rows:
        await session.execute(insert(WorkTag), rows)


async def recognise_hashtags(session: AsyncSession, status: Status, hashtags: Sequence[str]) -> None:
    """Give a work the suggested terms (or aliases) its hashtags name — for posts from
    plain Mastodon clients and remote notes. A hashtag matching terms of several kinds
    gives all of them. Creates the Work row if missing; keeps the work's other terms."""
    if status.reblog_of_id is not None:
        return
    keys = list(dict.fromkeys(k for k in (normalise_key(h) for h in hashtags) if k))
    if not keys:
        return
    matched: dict[int, PortfolioTag] = {
        t.id: t for t in await session.scalars(select(PortfolioTag).where(
            PortfolioTag.key.in_(keys), PortfolioTag.suggested.is_(True)))}
    for term in await session.scalars(select(PortfolioTag).join(
            PortfolioTagAlias, PortfolioTagAlias.tag_id == PortfolioTag.id).where(
            PortfolioTagAlias.key.in_(keys), PortfolioTagAlias.kind == PortfolioTag.kind)):
        matched.setdefault(term.id, term)
    work = await ensure_work(session, status)
    if not matched:
        return
    have = {tag_id: position for tag_id, position in (await session.execute(
        select(WorkTag.tag_id, WorkTag.position).where(WorkTag.status_id == status.id))).all()}
    per_kind: dict[str, int] = defaultdict(int)
    for kind in (await session.scalars(select(PortfolioTag.kind).join(
            WorkTag, WorkTag.tag_id == PortfolioTag.id).where(WorkTag.status_id == status.id))):
        per_kind[kind] += 1
    position = max(have.values(), default=-1) + 1
    for term in sorted(matched.values(), key=lambda t: (KINDS.index(t.kind), t.position)):
        if term.id in have or per_kind[term.kind] >= MAX_TERMS_PER_KIND:
            continue
        session.add(WorkTag(status_id=status.id, tag_id=term.id, position=position,
                            listed=work.listed))
        per_kind[term.kind] += 1
        position += 1
    await session.flush()


async def refresh_listed(session: AsyncSession, status: Status) -> None:
    """Recompute whether a work may be browsed, on its Work and WorkTag rows (after a
    publish, a visibility change, an AI label, or a delete). Not committed."""
    work = await session.get(Work, status.id)
    if work is None:
        return
    gone = await session.scalar(select(Status.id).where(Status.id == status.id)) is None
    listed = not gone and _is_listed(status, work)
    await session.execute(update(Work).where(Work.status_id == status.id).values(listed=listed)
                          .execution_options(synchronize_session=False))
    await session.execute(update(WorkTag).where(WorkTag.status_id == status.id)
                          .values(listed=listed).execution_options(synchronize_session=False))
    work.listed = listed


async def move_work(session: AsyncSession, old_id: int, new_id_: int) -> None:
    """A status was renumbered (``statuses._renumber``): its Work and WorkTag rows follow.
    The new status row exists already; the old one is deleted after this. Not committed."""
    work = await session.get(Work, old_id)
    if work is None:
        return
    values = {column.key: getattr(work, column.key) for column in Work.__mapper__.columns}
    values["status_id"] = new_id_
    await session.execute(insert(Work).values(**values))
    await session.execute(update(WorkTag).where(WorkTag.status_id == old_id)
                          .values(status_id=new_id_).execution_options(synchronize_session=False))
    await session.execute(delete(Work).where(Work.status_id == old_id)
                          .execution_options(synchronize_session=False))
    session.expunge(work)


async def work_metadata(session: AsyncSession, status_ids: Sequence[int]) -> dict[int, WorkView]:
    """The portfolio data of those of ``status_ids`` that are works, in two queries."""
    ids = list(set(status_ids))
    if not ids:
        return {}
    views: dict[int, WorkView] = {}
    for work in await session.scalars(select(Work).where(Work.status_id.in_(ids))):
        views[work.status_id] = WorkView(
            title=work.title, description=work.description, year=work.year,
            dimensions=work.dimensions, ai_generated=work.ai_generated,
            tags={kind: [] for kind in KINDS}, listed=work.listed, local=work.local)
    if views:
        for status_id, term in (await session.execute(
                select(WorkTag.status_id, PortfolioTag)
                .join(PortfolioTag, PortfolioTag.id == WorkTag.tag_id)
                .where(WorkTag.status_id.in_(list(views)))
                .order_by(WorkTag.status_id, WorkTag.position))).all():
            views[status_id].tags.setdefault(term.kind, []).append(
                TermView(term.name, term.key, hashtag_for(term.name)))
    return views


# ------------------------------------------------------------------ hashtags

def _base_url(status: Status) -> str:
    parts = urlsplit(status.uri)
    return f"{parts.scheme}://{parts.netloc}"


async def _sync_hashtags(session: AsyncSession, status: Status, terms: Sequence[PortfolioTag]) -> None:
    """The status's hashtags are its text's plus its terms'. A local status's content
    gets a last paragraph of links for the terms' hashtags its text does not have."""
    term_tags = [h for h in dict.fromkeys(hashtag_for(t.name) for t in terms) if _is_hashtag(h)]
    if not status.local:
        # A remote note's content is its own; its terms still find it by hashtag.
        for tag in await tags_for(session, term_tags):
            await session.execute(insert_ignoring_conflict(
                session, StatusTag, {"status_id": status.id, "tag_id": tag.id},
                ["status_id", "tag_id"]))
        return
    text_tags = extract_hashtags(status.text)
    in_text = {normalize_tag(t) for t in text_tags}
    extra = [h for h in term_tags if normalize_tag(h) not in in_text]
    wanted = await tags_for(session, [*text_tags, *extra])
    wanted_ids = {t.id for t in wanted}
    have = set(await session.scalars(select(StatusTag.tag_id).where(
        StatusTag.status_id == status.id)))
    stale = have - wanted_ids
    if stale:
        await session.execute(delete(StatusTag).where(
            StatusTag.status_id == status.id, StatusTag.tag_id.in_(stale))
            .execution_options(synchronize_session=False))
    for tag_id in wanted_ids - have:
        session.add(StatusTag(status_id=status.id, tag_id=tag_id))
    mentioned = list(await session.scalars(select(Account).join(
        Mention, Mention.account_id == Account.id).where(Mention.status_id == status.id)))
    base_url = _base_url(status)
    content = render_status(status.text, mentioned, base_url)
    if extra:
        content += render_status(" ".join(f"#{h}" for h in extra), [], base_url)
    status.content = content


# ------------------------------------------------------------------ browsing

async def _browse_terms(session: AsyncSession,
                        filters: dict[str, list[str]]) -> dict[str, set[int]]:
    """The term ids each kind's names stand for (by key or alias), in one query."""
    keys = {kind: {k for k in (normalise_key(n) for n in names) if k}
            for kind, names in filters.items()}
    every = sorted(set().union(*keys.values())) if keys else []
    found: dict[str, set[int]] = {kind: set() for kind in filters}
    if not every:
        return found
    by_key = select(PortfolioTag.kind, PortfolioTag.key, PortfolioTag.id).where(
        PortfolioTag.key.in_(every), PortfolioTag.kind.in_(list(filters)))
    by_alias = select(PortfolioTagAlias.kind, PortfolioTagAlias.key, PortfolioTagAlias.tag_id) \
        .where(PortfolioTagAlias.key.in_(every), PortfolioTagAlias.kind.in_(list(filters)))
    for kind, key, tag_id in (await session.execute(union_all(by_key, by_alias))).all():
        if key in keys[kind]:
            found[kind].add(tag_id)
    return found


def _capped_count(tag_ids: Sequence[int]) -> Any:
    """How many listed tag rows ``tag_ids`` have, counted up to ``_COUNT_CAP``: the works
    with one of them, a work with two counted twice (as the walk would go through it)."""
    capped = select(WorkTag.status_id).where(
        WorkTag.tag_id.in_(list(tag_ids)), WorkTag.listed.is_(True)).limit(_COUNT_CAP).subquery()
    return select(func.count()).select_from(capped).scalar_subquery()


async def _kind_counts(session: AsyncSession, term_sets: list[frozenset[int]]) -> list[int]:
    """:func:`_capped_count` of each set of term ids: from the last few minutes' counts
    where they have it, the others in one query."""
    kept = _counted.setdefault(session.get_bind().engine, {})
    now = time.monotonic()
    known = {terms: entry[1] for terms in term_sets
             if (entry := kept.get(terms)) is not None and entry[0] > now}
    missing = list(dict.fromkeys(t for t in term_sets if t not in known))
    if missing:
        counted = (await session.execute(select(*(
            _capped_count(sorted(terms)).label(f"n_{i}") for i, terms in enumerate(missing))))).one()
        if len(kept) + len(missing) > _COUNTS_KEPT:
            kept.clear()
        for terms, count in zip(missing, counted, strict=True):
            known[terms] = count
            kept[terms] = (now + _COUNT_TTL_S, count)
    return [known[terms] for terms in term_sets]


async def browse(session: AsyncSession, viewer: Account | None, filters: dict[str, list[str]], *,
                 local: bool | None = None, max_id: int | None = None,
                 since_id: int | None = None, min_id: int | None = None,
                 limit: int = 20) -> list[Status]:
    """Listed works matching every kind in ``filters`` (any of the terms given for a kind),
    newest first (``min_id``: the oldest after it, still returned newest first), as
    Mastodon pages. Unknown kinds are a 422; a term nobody used matches nothing.

    Six queries whatever the filters: the accounts and the domain blocks that leave works
    out (``visibility.limited_account_ids``, ``visibility.limited_by_domain``; the allows
    too in allowlist mode), the terms, their counts (none when recent counts of those
    terms are kept, see ``_COUNT_TTL_S``), the page, the statuses.
    The page walks the tag rows of the rarest kind's terms in status order on
    ``ix_work_tags_browse`` (one index range per term, merged) and checks the other kinds
    with EXISTS on the primary key (status_id, tag_id).
    """
    wanted_names: dict[str, list[str]] = {}
    for kind, names in filters.items():
        if kind not in KINDS:
            raise ValidationFailed(
                f"Unknown portfolio tag kind {kind!r}; the kinds are {', '.join(KINDS)}")
        names = [n for n in names if n.strip()]
        if len(names) > MAX_BROWSE_TERMS:
            raise ValidationFailed(f"Too many {kind} terms (maximum is {MAX_BROWSE_TERMS})")
        if names:
            wanted_names[kind] = names
    wanted = await _browse_terms(session, wanted_names)
    if any(not ids for ids in wanted.values()):
        return []
    ascending = min_id is not None
    hidden = await limited_account_ids(session, viewer)  # silenced, suspended: usually none
    # Accounts of silenced and suspended domains (in allowlist mode, of every domain not
    # allowed, as if suspended): usually none either.
    by_domain = await limited_by_domain(session, viewer)
    barred = (None if by_domain is None
              else Work.account_id.not_in(select(Account.id).where(by_domain)))

    def bounded(column: Any, query: Any) -> Any:
        if max_id is not None:
            query = query.where(column < max_id)
        if since_id is not None:
            query = query.where(column > since_id)
        if min_id is not None:
            query = query.where(column > min_id)
        order = column.asc() if ascending else column.desc()
        return query.order_by(order).limit(limit)

    if not wanted:
        query = select(Work.status_id).where(Work.listed.is_(True))
        if local is not None:
            query = query.where(Work.local.is_(local))
        if hidden:
            query = query.where(Work.account_id.not_in(hidden))
        if barred is not None:
            query = query.where(barred)
        ids = list(await session.scalars(bounded(Work.status_id, query)))
    else:
        kinds = list(wanted)
        if len(kinds) > 1:
            # Rarest first: it drives, and the EXISTS checks go from the most selective.
            counts = await _kind_counts(session, [frozenset(wanted[k]) for k in kinds])
            kinds = [k for _count, k in sorted(zip(counts, kinds, strict=True))]
        driving, others = kinds[0], kinds[1:]
        # PostgreSQL would turn each EXISTS into a hash semi-join over every row of the
        # other kind's terms; OFFSET 0 keeps it a per-row index probe, so the walk stops
        # after ``limit`` matches. (SQLite probes per row anyway.)
        postgres = session.bind is not None and session.bind.dialect.name == "postgresql"

        def probe(query: Any) -> Any:
            return (query.offset(0) if postgres else query).exists()

        local_check = None
        if local is not None:
            local_check = probe(select(Work.status_id).where(
                Work.status_id == WorkTag.status_id, Work.local.is_(local)))
        ranges = []
        for tag_id in sorted(wanted[driving]):
            # One index range per term of the driving kind, merged below.
            query = select(WorkTag.status_id).where(
                WorkTag.tag_id == tag_id, WorkTag.listed.is_(True))
            if local is False and local_check is not None:
                query = query.where(local_check)  # usually the minority: check it early
            for kind, other in zip(others, _KIND_ROWS, strict=False):
                query = query.where(probe(select(other.c.status_id).where(
                    other.c.status_id == WorkTag.status_id,
                    other.c.tag_id.in_(sorted(wanted[kind])))))
            if local is True and local_check is not None:
                query = query.where(local_check)
            if hidden:
                query = query.where(probe(select(Work.status_id).where(
                    Work.status_id == WorkTag.status_id, Work.account_id.not_in(hidden))))
            if barred is not None:
                query = query.where(probe(select(Work.status_id).where(
                    Work.status_id == WorkTag.status_id, barred)))
            ranges.append(bounded(WorkTag.status_id, query).subquery())
        if len(ranges) == 1:
            merged = select(ranges[0].c.status_id)
        else:
            pieces = union_all(*(select(r.c.status_id) for r in ranges)).subquery()
            merged = select(pieces.c.status_id).distinct()
        column = merged.selected_columns[0]
        merged = merged.order_by(column.asc() if ascending else column.desc()).limit(limit)
        ids = list(await session.scalars(merged))
    ids.sort(reverse=True)
    if not ids:
        return []
    rows = {s.id: s for s in await session.scalars(select(Status).where(
        Status.id.in_(ids), visible_to(viewer)))}
    return [rows[i] for i in ids if i in rows]


async def portfolio(session: AsyncSession, viewer: Account | None, account: Account, *,
                    max_id: int | None = None, since_id: int | None = None,
                    min_id: int | None = None, limit: int = 20) -> tuple[list[Status], list[Status]]:
    """An artist's works the viewer may see: (pinned works, first page only; the page of
    the others, newest first). Pinned works are not repeated in the pages."""
    pins = await pinned_ids(session, account.id)
    first_page = max_id is None and since_id is None and min_id is None
    query = select(Status).join(Work, Work.status_id == Status.id).where(
        Work.account_id == account.id, Status.account_id == account.id, visible_to(viewer))
    if pins:
        query = query.where(Status.id.not_in(pins))
    if max_id is not None:
        query = query.where(Status.id < max_id)
    if since_id is not None:
        query = query.where(Status.id > since_id)
    if min_id is not None:
        query = query.where(Status.id > min_id).order_by(Status.id.asc())
    else:
        query = query.order_by(Status.id.desc())
    page = list(await session.scalars(query.limit(limit)))
    if min_id is not None:
        page.reverse()
    pinned: list[Status] = []
    if first_page and pins:
        visible = {s.id: s for s in await session.scalars(
            select(Status).join(Work, Work.status_id == Status.id).where(
                Status.id.in_(pins), visible_to(viewer)))}
        pinned = [visible[i] for i in pins if i in visible]
    return pinned, page


# ------------------------------------------------------------------ pins

async def pinned_ids(session: AsyncSession, account_id: int) -> list[int]:
    """The account's pinned statuses, the latest pin first."""
    return list(await session.scalars(select(StatusPin.status_id).where(
        StatusPin.account_id == account_id).order_by(StatusPin.id.desc())))


async def pinned_statuses(session: AsyncSession, viewer: Account | None,
                          account_id: int) -> list[Status]:
    ids = await pinned_ids(session, account_id)
    if not ids:
        return []
    found = {s.id: s for s in await session.scalars(
        select(Status).where(Status.id.in_(ids), visible_to(viewer)))}
    return [found[i] for i in ids if i in found]


async def pinned_among(session: AsyncSession, account_id: int, status_ids: Sequence[int]) -> set[int]:
    if not status_ids:
        return set()
    return set(await session.scalars(select(StatusPin.status_id).where(
        StatusPin.account_id == account_id, StatusPin.status_id.in_(list(status_ids)))))


async def pin(session: AsyncSession, account: Account, status: Status) -> Status:
    """Pin one of the account's own public or unlisted statuses (idempotent), committed.
    ``status`` is one the account may see; errors are Mastodon's texts (422). A new pin is
    sent to the followers as an ``Add`` to the account's ``featured`` collection."""
    if status.reblog_of_id is not None:
        raise ValidationFailed("A boost cannot be pinned")
    if status.account_id != account.id:
        raise ValidationFailed("Someone else's post cannot be pinned")
    if status.visibility == "direct":
        raise ValidationFailed("Posts that are only visible to mentioned users cannot be pinned")
    if status.visibility != "public" and status.visibility != "unlisted":
        raise ValidationFailed("Only public and unlisted posts can be pinned")
    already = await session.scalar(select(StatusPin.id).where(
        StatusPin.account_id == account.id, StatusPin.status_id == status.id))
    if already is None:
        count = await session.scalar(select(func.count()).select_from(StatusPin).where(
            StatusPin.account_id == account.id)) or 0
        if count >= MAX_PINS:
            raise ValidationFailed("You have already pinned the maximum number of posts")
        if await _add_pin(session, account, status) and status.published:
            # (a post still waiting for its images is sent pinned when it is published)
            await record_activity(session, account, "Add", object_uri=status.uri,
                                  object_type="Note")
    await session.commit()
    return status


async def unpin(session: AsyncSession, account: Account, status: Status) -> Status:
    """Unpin a status (idempotent), committed; the followers are sent a ``Remove``."""
    if await _remove_pin(session, account, status) and status.published:
        await record_activity(session, account, "Remove", object_uri=status.uri,
                              object_type="Note")
    await session.commit()
    return status


async def _add_pin(session: AsyncSession, account: Account, status: Status) -> bool:
    added = await session.execute(insert_ignoring_conflict(session, StatusPin, {
        "id": new_id(), "account_id": account.id, "status_id": status.id,
        "created_at": utcnow()}, ["account_id", "status_id"]))
    return bool(getattr(added, "rowcount", 0))


async def _remove_pin(session: AsyncSession, account: Account, status: Status) -> bool:
    removed = await session.execute(delete(StatusPin).where(
        StatusPin.account_id == account.id, StatusPin.status_id == status.id))
    return bool(getattr(removed, "rowcount", 0))


async def record_remote_pin(session: AsyncSession, account: Account, status: Status, *,
                            pinned: bool) -> bool:
    """A remote account pinned (``Add`` to its ``featured``) or unpinned (``Remove``) one of
    its own public or unlisted statuses, in the caller's transaction (not committed); True
    when that changed anything. Anything else is refused (ValidationFailed)."""
    if account.is_local or status.account_id != account.id or status.reblog_of_id is not None:
        raise ValidationFailed("Only an account's own post can be on its profile")
    if not pinned:
        return await _remove_pin(session, account, status)
    if status.visibility not in ("public", "unlisted"):
        raise ValidationFailed("Only public and unlisted posts can be pinned")
    return await _add_pin(session, account, status)


# ------------------------------------------------------------------ projects

@dataclass
class ProjectView:
    project: Project
    work_ids: list[int]  # in order, only those the viewer may see

    @property
    def cover_id(self) -> int | None:
        cover = self.project.cover_status_id
        if cover is not None and cover in self.work_ids:
            return cover
        return self.work_ids[0] if self.work_ids else None


def _project_text(title: str | None, description: str | None) -> None:
    if title is not None:
        if not title.strip():
            raise ValidationFailed("Title can't be blank")
        if len(title.strip()) > MAX_PROJECT_TITLE:
            raise ValidationFailed(f"Title is too long (maximum is {MAX_PROJECT_TITLE} characters)")
    if description is not None and len(description.strip()) > MAX_DESCRIPTION:
        raise ValidationFailed(f"Description is too long (maximum is {MAX_DESCRIPTION} characters)")


async def _own_project(session: AsyncSession, account: Account, project_id: int) -> Project:
    project = await session.scalar(select(Project).where(
        Project.id == project_id, Project.account_id == account.id))
    if project is None:
        raise NotFound("Record not found")
    return project


async def _own_work_ids(session: AsyncSession, account: Account, status_ids: Sequence[int]) -> list[int]:
    """``status_ids`` without repeats, each checked to be one of the account's works
    (published or not); ValidationFailed naming the first that is not."""
    ids = list(dict.fromkeys(status_ids))
    if len(ids) > MAX_PROJECT_WORKS:
        raise ValidationFailed(f"A project holds at most {MAX_PROJECT_WORKS} works")
    own = set(await session.scalars(select(Work.status_id).where(
        Work.status_id.in_(ids), Work.account_id == account.id))) if ids else set()
    missing = [i for i in ids if i not in own]
    if missing:
        raise ValidationFailed(f"Work {missing[0]} not found among your works")
    return ids


async def _set_works(session: AsyncSession, project: Project, ids: Sequence[int]) -> None:
    await session.execute(delete(ProjectWork).where(ProjectWork.project_id == project.id))
    if ids:
        await session.execute(insert(ProjectWork), [
            {"project_id": project.id, "status_id": status_id, "position": position}
            for position, status_id in enumerate(ids)])
    if project.cover_status_id is not None and project.cover_status_id not in ids:
        project.cover_status_id = None


async def create_project(session: AsyncSession, account: Account, *, title: str,
                         description: str = "", work_ids: Sequence[int] = (),
                         cover_id: int | None = None) -> ProjectView:
    """A new project, last in the account's order, committed."""
    _project_text(title, description)
    ids = await _own_work_ids(session, account, work_ids)
    if cover_id is not None and cover_id not in ids:
        raise ValidationFailed("The cover must be one of the project's works")
    count = await session.scalar(select(func.count()).select_from(Project).where(
        Project.account_id == account.id)) or 0
    if count >= MAX_PROJECTS:
        raise ValidationFailed(f"You already have the maximum of {MAX_PROJECTS} projects")
    last = await session.scalar(select(func.max(Project.position)).where(
        Project.account_id == account.id))
    project = Project(id=new_id(), account_id=account.id, title=title.strip(),
                      description=description.strip(), cover_status_id=cover_id,
                      position=(last + 1) if last is not None else 0,
                      created_at=utcnow(), updated_at=utcnow())
    session.add(project)
    await session.flush()
    await _set_works(session, project, ids)
    await session.commit()
    return ProjectView(project, ids)


_UNCHANGED: Any = object()


async def update_project(session: AsyncSession, account: Account, project_id: int, *,
                         title: str | None = None, description: str | None = None,
                         cover_id: Any = _UNCHANGED) -> ProjectView:
    """Change a project's title, description or cover (None: its first work), committed."""
    project = await _own_project(session, account, project_id)
    _project_text(title, description)
    ids = await _project_work_ids(session, project.id)
    if cover_id is not _UNCHANGED:
        if cover_id is not None and cover_id not in ids:
            raise ValidationFailed("The cover must be one of the project's works")
        project.cover_status_id = cover_id
    if title is not None:
        project.title = title.strip()
    if description is not None:
        project.description = description.strip()
    project.updated_at = utcnow()
    await session.commit()
    return ProjectView(project, ids)


async def set_project_works(session: AsyncSession, account: Account, project_id: int,
                            status_ids: Sequence[int]) -> ProjectView:
    """Replace a project's works with ``status_ids``, in that order, committed."""
    project = await _own_project(session, account, project_id)
    ids = await _own_work_ids(session, account, status_ids)
    await _set_works(session, project, ids)
    project.updated_at = utcnow()
    await session.commit()
    return ProjectView(project, ids)


async def delete_project(session: AsyncSession, account: Account, project_id: int) -> None:
    project = await _own_project(session, account, project_id)
    await session.execute(delete(ProjectWork).where(ProjectWork.project_id == project.id))
    await session.delete(project)
    await session.commit()


async def reorder_projects(session: AsyncSession, account: Account,
                           project_ids: Sequence[int]) -> list[Project]:
    """Put the account's projects in this order (those not named keep their relative
    order after them), committed; returns them all in the new order."""
    projects = list(await session.scalars(select(Project).where(
        Project.account_id == account.id).order_by(Project.position, Project.id)))
    by_id = {p.id: p for p in projects}
    ordered = list(dict.fromkeys(project_ids))
    unknown = [i for i in ordered if i not in by_id]
    if unknown:
        raise ValidationFailed(f"Project {unknown[0]} not found among your projects")
    rest = [p.id for p in projects if p.id not in set(ordered)]
    for position, project_id in enumerate([*ordered, *rest]):
        by_id[project_id].position = position
    await session.commit()
    return sorted(projects, key=lambda p: p.position)


async def _project_work_ids(session: AsyncSession, project_id: int,
                            viewer: Account | None = None, *, owner: bool = True) -> list[int]:
    query = select(ProjectWork.status_id).where(ProjectWork.project_id == project_id)
    if not owner:
        query = query.join(Status, Status.id == ProjectWork.status_id).where(visible_to(viewer))
    return list(await session.scalars(query.order_by(ProjectWork.position)))


async def get_project(session: AsyncSession, viewer: Account | None, project_id: int) -> ProjectView:
    """One project with the works the viewer may see (its owner sees them all). Others
    do not find a project none of whose works they may see, as :func:`projects_of` leaves
    it out: its title and description say what they may not see (a commission's private
    works), and a suspended artist's works are seen by nobody."""
    found = await get_or_404(session, Project, project_id)
    owner = viewer is not None and viewer.id == found.account_id
    work_ids = await _project_work_ids(session, found.id, viewer, owner=owner)
    if not owner and not work_ids:
        raise NotFound("Record not found")
    return ProjectView(found, work_ids)


async def projects_of(session: AsyncSession, viewer: Account | None, account_id: int) -> list[ProjectView]:
    """An account's projects in its order, each with the works the viewer may see; a
    project with none of them is left out for others (its owner sees every project)."""
    projects = list(await session.scalars(select(Project).where(
        Project.account_id == account_id).order_by(Project.position, Project.id)))
    if not projects:
        return []
    owner = viewer is not None and viewer.id == account_id
    query = select(ProjectWork.project_id, ProjectWork.status_id).where(
        ProjectWork.project_id.in_([p.id for p in projects]))
    if not owner:
        query = query.join(Status, Status.id == ProjectWork.status_id).where(visible_to(viewer))
    works: dict[int, list[int]] = defaultdict(list)
    for project_id, status_id in (await session.execute(
            query.order_by(ProjectWork.project_id, ProjectWork.position))).all():
        works[project_id].append(status_id)
    return [ProjectView(p, works.get(p.id, [])) for p in projects if owner or works.get(p.id)]


# ------------------------------------------------------------------ vocabulary

@dataclass
class Suggestion:
    term: PortfolioTag
    aliases: list[str]

    @property
    def hashtag(self) -> str:
        return hashtag_for(self.term.name)


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValidationFailed(
            f"Unknown portfolio tag kind {kind!r}; the kinds are {', '.join(KINDS)}")
    return kind


def _term_name(name: str) -> tuple[str, str]:
    cleaned = clean_name(name)
    if not cleaned:
        raise ValidationFailed("Name can't be blank")
    if len(cleaned) > MAX_TERM_LENGTH:
        raise ValidationFailed(f"Name is too long (maximum is {MAX_TERM_LENGTH} characters)")
    key = normalise_key(cleaned)
    if not key:
        raise ValidationFailed(f"{cleaned!r} needs a letter or a digit")
    return cleaned, key


async def vocabulary(session: AsyncSession, kind: str | None = None) -> dict[str, list[Suggestion]]:
    """The instance's suggestion lists, per kind in position order, with their aliases."""
    kinds = [_kind(kind)] if kind is not None else list(KINDS)
    terms = list(await session.scalars(select(PortfolioTag).where(
        PortfolioTag.suggested.is_(True), PortfolioTag.kind.in_(kinds))
        .order_by(PortfolioTag.position, PortfolioTag.name)))
    aliases: dict[int, list[str]] = defaultdict(list)
    if terms:
        for tag_id, key in (await session.execute(
                select(PortfolioTagAlias.tag_id, PortfolioTagAlias.key).where(
                    PortfolioTagAlias.tag_id.in_([t.id for t in terms]))
                .order_by(PortfolioTagAlias.key))).all():
            aliases[tag_id].append(key)
    result: dict[str, list[Suggestion]] = {k: [] for k in kinds}
    for term in terms:
        result[term.kind].append(Suggestion(term, aliases.get(term.id, [])))
    return result


async def _find_term(session: AsyncSession, kind: str, key: str) -> PortfolioTag | None:
    return (await _existing_terms(session, kind, [key])).get(key)


async def _add_alias(session: AsyncSession, term: PortfolioTag, alias: str) -> None:
    key = normalise_key(clean_name(alias))
    if not key:
        raise ValidationFailed(f"Alias {alias!r} needs a letter or a digit")
    if len(key) > MAX_TERM_LENGTH:
        raise ValidationFailed(f"Alias is too long (maximum is {MAX_TERM_LENGTH} characters)")
    if key == term.key:
        return
    other = await session.scalar(select(PortfolioTag).where(
        PortfolioTag.kind == term.kind, PortfolioTag.key == key))
    if other is not None and other.id != term.id:
        raise ValidationFailed(
            f"{alias!r} is already the {term.kind} term {other.name!r}; remove it first")
    existing = await session.get(PortfolioTagAlias, (term.kind, key))
    if existing is not None:
        if existing.tag_id != term.id:
            raise ValidationFailed(f"{alias!r} is already an alias of another {term.kind} term")
        return
    session.add(PortfolioTagAlias(kind=term.kind, key=key, tag_id=term.id))
    await session.flush()


async def add_suggestion(session: AsyncSession, kind: str, name: str,
                         aliases: Sequence[str] = ()) -> Suggestion:
    """Put a term on the kind's suggestion list (last), in this spelling, with these
    aliases; an existing term (by key or alias) is promoted, keeping its works. Committed."""
    kind = _kind(kind)
    cleaned, key = _term_name(name)
    term = await _find_term(session, kind, key)
    if term is None:
        term = (await resolve_terms(session, kind, [cleaned]))[0]
    if term.key == key:
        term.name = cleaned
    if not term.suggested:
        last = await session.scalar(select(func.max(PortfolioTag.position)).where(
            PortfolioTag.kind == kind, PortfolioTag.suggested.is_(True)))
        term.suggested = True
        term.position = (last + 1) if last is not None else 0
    for alias in aliases:
        await _add_alias(session, term, alias)
    await session.commit()
    return (await _suggestion(session, term))


async def _suggestion(session: AsyncSession, term: PortfolioTag) -> Suggestion:
    aliases = list(await session.scalars(select(PortfolioTagAlias.key).where(
        PortfolioTagAlias.tag_id == term.id).order_by(PortfolioTagAlias.key)))
    return Suggestion(term, aliases)


async def remove_suggestion(session: AsyncSession, kind: str, name: str) -> PortfolioTag:
    """Take a term off the suggestion list (works keep it), committed; NotFound if none."""
    kind = _kind(kind)
    _cleaned, key = _term_name(name)
    term = await _find_term(session, kind, key)
    if term is None or not term.suggested:
        raise NotFound(f"No suggested {kind} {name!r}")
    term.suggested = False
    await session.commit()
    return term


async def add_alias(session: AsyncSession, kind: str, name: str, alias: str) -> Suggestion:
    """Make ``alias`` another spelling of the term ``name`` (which must exist), committed."""
    kind = _kind(kind)
    _cleaned, key = _term_name(name)
    term = await _find_term(session, kind, key)
    if term is None:
        raise NotFound(f"No {kind} {name!r}")
    await _add_alias(session, term, alias)
    await session.commit()
    return await _suggestion(session, term)


async def reorder_suggestions(session: AsyncSession, kind: str,
                              names: Sequence[str]) -> list[Suggestion]:
    """Put these suggested terms first, in this order; the rest follow in their order."""
    kind = _kind(kind)
    current = (await vocabulary(session, kind))[kind]
    by_id = {s.term.id: s for s in current}
    ordered: list[int] = []
    for name in names:
        _cleaned, key = _term_name(name)
        term = await _find_term(session, kind, key)
        if term is None or term.id not in by_id:
            raise NotFound(f"No suggested {kind} {name!r}")
        if term.id not in ordered:
            ordered.append(term.id)
    rest = [s.term.id for s in current if s.term.id not in set(ordered)]
    for position, term_id in enumerate([*ordered, *rest]):
        by_id[term_id].term.position = position
    await session.commit()
    return [by_id[i] for i in [*ordered, *rest]]


def check_kinds(kinds: Sequence[str]) -> None:
    for kind in kinds:
        _kind(kind)

