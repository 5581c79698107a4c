"""Browsing by tags, what its speed rests on: the counts that choose the driving kind are
kept for a while (per database and set of terms) and never change what a page holds, and
the page's SQL does not depend on which kinds are asked for (one statement to compile,
prepare and plan per number of kinds and terms)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select

from server.db import Database
from server.models import MediaAttachment, PortfolioTag, Status, User
from server.services import portfolio, statuses
from server.services.portfolio import WorkMeta
from server.settings import Settings


async def post_work(db: Database, settings: Settings, user: User,
                    tags: dict[str, list[str]]) -> Status:
    async with db.session() as session:
        item = MediaAttachment(account_id=user.account.id, state="ready",
                               file_key="media/aa/bb/file.webp")
        session.add(item)
        await session.commit()
        return await statuses.create_status(session, settings, user.account, None,
                                            text="A work", media_ids=[item.id],
                                            work=WorkMeta(tags=tags))


async def browse(db: Database, filters: dict[str, list[str]], **options: Any) -> list[int]:
    async with db.session() as session:
        return [s.id for s in await portfolio.browse(session, None, filters, **options)]


async def term_ids(db: Database, kind: str, *keys: str) -> frozenset[int]:
    async with db.session() as session:
        return frozenset(await session.scalars(select(PortfolioTag.id).where(
            PortfolioTag.kind == kind, PortfolioTag.key.in_(keys))))


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL sent to the database inside the block."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def count_queries(sent: list[str]) -> list[str]:
    return [sql for sql in sent if "count(*)" in sql and "work_tags" in sql]


def counts_in(sent: list[str]) -> int:
    return len(count_queries(sent))


@pytest.fixture
async def gallery(db: Database, settings: Settings, alice: User, bob: User) -> dict[str, int]:
    """Works over three kinds, with one kind far rarer than the others in each pair."""
    works = {
        "a": await post_work(db, settings, alice, {"medium": ["Oil"], "category": ["Portrait"],
                                                   "software": ["Krita"]}),
        "b": await post_work(db, settings, bob, {"medium": ["Oil", "Ink"],
                                                 "category": ["Portrait"]}),
        "c": await post_work(db, settings, alice, {"medium": ["Ink"], "category": ["Landscape"],
                                                   "software": ["Krita"]}),
        "d": await post_work(db, settings, bob, {"medium": ["Oil"], "category": ["Portrait"],
                                                 "software": ["Krita", "Blender"]}),
        "e": await post_work(db, settings, alice, {"medium": ["Oil"], "category": ["Landscape"],
                                                   "software": ["Blender"]}),
    }
    return {name: status.id for name, status in works.items()}


async def test_counts_choose_the_driving_kind_but_never_the_page(
    db: Database, gallery: dict[str, int]
) -> None:
    filters = {"medium": ["oil", "ink"], "category": ["portrait"], "software": ["krita"]}
    expected = sorted([gallery["a"], gallery["d"]], reverse=True)
    assert await browse(db, filters) == expected
    sets = {"medium": await term_ids(db, "medium", "oil", "ink"),
            "category": await term_ids(db, "category", "portrait"),
            "software": await term_ids(db, "software", "krita")}
    kept = portfolio._counted[db.engine.sync_engine]
    # What was counted: the listed tag rows of the kind's terms (a work with both Oil and
    # Ink twice: the rows the walk would go through).
    assert {kind: kept[terms][1] for kind, terms in sets.items()} == {
        "medium": 6, "category": 3, "software": 3}
    # Whichever kind the (kept, here made up) counts make drive the walk, and in whichever
    # order the others are checked, the pages are the same: first, by max_id, by min_id.
    for order in itertools.permutations(sets):
        for rank, kind in enumerate(order):
            kept[sets[kind]] = (float("inf"), rank)
        with statements(db) as sent:
            assert await browse(db, filters) == expected
            assert await browse(db, filters, limit=1) == expected[:1]
            assert await browse(db, filters, max_id=expected[0]) == expected[1:]
            assert await browse(db, filters, min_id=expected[1]) == expected[:1]
            assert await browse(db, filters, local=False) == []
        assert counts_in(sent) == 0


async def test_counts_are_kept_for_a_while_per_set_of_terms(
    db: Database, settings: Settings, alice: User, gallery: dict[str, int]
) -> None:
    filters = {"medium": ["oil"], "software": ["blender"]}
    with statements(db) as sent:
        assert await browse(db, filters) == sorted([gallery["d"], gallery["e"]], reverse=True)
        assert counts_in(sent) == 1
        # Kept: no count, and a work added since is on the page all the same.
        newer = await post_work(db, settings, alice, {"medium": ["Oil"],
                                                      "software": ["Blender"]})
        assert await browse(db, filters) == sorted(
            [newer.id, gallery["d"], gallery["e"]], reverse=True)
        assert counts_in(sent) == 1
        # Another set of terms in a kind is counted on its own; only it.
        assert await browse(db, {"medium": ["oil", "ink"], "software": ["blender"]}) == sorted(
            [newer.id, gallery["d"], gallery["e"]], reverse=True)
        assert counts_in(sent) == 2
        last = count_queries(sent)[-1]
        assert last.count("count(*)") == 1  # Blender's count was kept
        # Expired: counted again.
        kept = portfolio._counted[db.engine.sync_engine]
        for terms, (_expires, count) in list(kept.items()):
            kept[terms] = (0.0, count)
        assert await browse(db, filters) == sorted(
            [newer.id, gallery["d"], gallery["e"]], reverse=True)
        assert counts_in(sent) == 3
    assert kept[await term_ids(db, "medium", "oil")][1] == 5


async def test_counts_stop_at_the_cap(
    db: Database, gallery: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(portfolio, "_COUNT_CAP", 2)
    oil = await term_ids(db, "medium", "oil")
    blender = await term_ids(db, "software", "blender")
    async with db.session() as session:
        assert await portfolio._kind_counts(session, [oil, blender, oil]) == [2, 2, 2]
    krita = await term_ids(db, "software", "krita")
    monkeypatch.setattr(portfolio, "_COUNT_CAP", 4000)
    async with db.session() as session:
        # Kept counts are served as they were; new ones count up to the cap in force.
        assert await portfolio._kind_counts(session, [oil, krita]) == [2, 3]


async def test_the_page_sql_is_the_same_for_any_kinds(
    db: Database, gallery: dict[str, int]
) -> None:
    def page(sent: list[str]) -> str:
        (found,) = [sql for sql in sent if "EXISTS" in sql and "work_tags" in sql]
        return found

    shapes = set()
    for filters in ({"medium": ["oil"], "category": ["portrait"], "software": ["krita"]},
                    {"software": ["blender"], "medium": ["ink"], "category": ["landscape"]},
                    {"category": ["landscape"], "software": ["krita"], "medium": ["oil"]}):
        with statements(db) as sent:
            await browse(db, filters, local=True)
        shapes.add(page(sent))
    (shape,) = shapes
    assert not any(kind in shape for kind in ("medium", "category", "software"))
