"""Browsing works by tags over 100,000 works, on SQLite and PostgreSQL.

    .venv/bin/python bench/browse.py [--works 100000] [--queries 300] [--database sqlite|postgres]
        [--repeat N] [--reuse]

Populates a fresh database with ``--works`` works (local and remote, 80/20), bulk-inserted
as the services would leave them: each work has 1–2 fields, 1–2 mediums, one project type,
1–2 categories and 0–3 software terms, drawn from the seeded vocabulary plus a long tail of
artist-made terms with a Zipf-like popularity; about 8 % are not listed (unlisted, private
or AI-labelled). Then times ``server.services.portfolio.browse`` — the query and loading
the statuses, not the HTTP layer — for ``--queries`` (≥ 200) varied queries with three
filters (three kinds; a third of them with two terms in one kind, OR), from popular terms
to rare ones, with a mix of first pages, ``max_id`` pages and ``local=true/false``. Prints
p50/p99 (``--repeat N``: of each query's best of N runs) and the ratio of p99 to the
target:

    p99 ≤ 50 ms

PostgreSQL: ``--database postgres`` with EASEL_BENCH_DATABASE_URL (or
EASEL_TEST_DATABASE_URL, e.g. from ``eval "$(bash .ci/services.sh)"``); its tables are
emptied first, unless ``--reuse`` finds the works a previous run wrote with the same
``--works`` and ``--seed`` (marked in a comment on the works table): then they are kept, and
only the random draws are replayed, so that the queries are the same. SQLite: a temporary
file.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text

from server.db import Database
from server.ids import new_id
from server.migrate import upgrade
from server.models import (
    TAG_KINDS,
    Account,
    Base,
    PortfolioTag,
    Status,
    Work,
    WorkTag,
)
from server.services import portfolio

TARGET_P99_MS = 50.0
LOCAL_ACCOUNTS = 400
REMOTE_ACCOUNTS = 600
# Terms per kind a work gets: (minimum, maximum).
PER_WORK = {"field": (1, 2), "medium": (1, 2), "project_type": (1, 1), "category": (1, 2),
            "software": (0, 3)}
# Artist-made terms beyond the suggestions, per kind (the long tail).
TAIL = {"field": 150, "medium": 300, "project_type": 40, "category": 400, "software": 200}
BATCH = 5000


def zipf_weights(count: int, s: float = 1.1) -> list[float]:
    return [1.0 / (rank ** s) for rank in range(1, count + 1)]


async def reset(db: Database, postgres: bool) -> None:
    await upgrade(db.engine)
    if postgres:
        async with db.engine.begin() as conn:
            existing = set((await conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))).scalars())
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables
                               if t.name in existing
                               and t.name not in ("portfolio_tags", "portfolio_tag_aliases"))
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            await conn.execute(text("DELETE FROM portfolio_tags WHERE suggested = false"))
            await conn.execute(text("COMMENT ON TABLE works IS NULL"))  # see mark_population


async def populate(db: Database, works: int, rng: random.Random,
                   write: bool = True) -> dict[str, list[str]]:
    """Write the accounts, statuses, works and tag rows; returns the term names per kind
    in popularity order (most used first). ``write=False``: the database already holds
    them (``--reuse``); only draw the same random numbers, so that ``rng`` ends where a
    fresh population leaves it and the queries are the same."""
    now = datetime.now(UTC)
    # Consecutive ids: thousands of new_id() in one millisecond would collide.
    ids = iter(range(new_id(), new_id() + 10_000_000))
    terms: dict[str, list[tuple[int, str]]] = {}
    async with db.session() as session:
        for kind in TAG_KINDS:
            seeded = [(t.id, t.name) for t in await session.scalars(
                select(PortfolioTag).where(PortfolioTag.kind == kind, PortfolioTag.suggested)
                .order_by(PortfolioTag.position))]
            if not seeded:
                raise SystemExit(
                    f"this database has no seeded {kind} vocabulary (migration 0009's rows): "
                    "another bench's TRUNCATE emptied it; use a fresh database")
            tail = [{"id": next(ids), "kind": kind, "key": f"{kind}tail{i}",
                     "name": f"{kind} tail {i}", "suggested": False, "position": 0,
                     "created_at": now} for i in range(TAIL[kind])]
            if write:
                await session.execute(insert(PortfolioTag), tail)
            terms[kind] = seeded + [(int(str(row["id"])), str(row["name"])) for row in tail]
        accounts = []
        for i in range(LOCAL_ACCOUNTS + REMOTE_ACCOUNTS):
            local = i < LOCAL_ACCOUNTS
            domain = "" if local else f"remote{i % 40}.example"
            name = f"artist{i}"
            accounts.append({
                "id": next(ids), "username": name, "username_key": name, "domain": domain,
                "actor_type": "Person", "display_name": name,
                "uri": (f"https://bench.example/users/{name}" if local
                        else f"https://{domain}/users/{name}"),
                "created_at": now, "updated_at": now})
        if write:
            await session.execute(insert(Account), accounts)
            await session.commit()

    # Cumulative, once (rng.choices would add them up on every call: the same draws).
    weights = {kind: list(itertools.accumulate(zipf_weights(len(terms[kind]))))
               for kind in TAG_KINDS}
    start = now - timedelta(days=365)
    step = timedelta(days=365) / works
    done = 0
    while done < works:
        count = min(BATCH, works - done)
        statuses, work_rows, tag_rows = [], [], []
        for n in range(done, done + count):
            local = rng.random() < 0.8
            account = accounts[rng.randrange(LOCAL_ACCOUNTS) if local
                               else LOCAL_ACCOUNTS + rng.randrange(REMOTE_ACCOUNTS)]
            status_id = new_id(start + step * n)
            roll = rng.random()
            visibility = "public" if roll < 0.95 else ("unlisted" if roll < 0.98 else "private")
            ai = rng.random() < 0.03
            listed = visibility == "public" and not ai
            statuses.append({
                "id": status_id, "account_id": account["id"],
                "uri": f"{account['uri']}/statuses/{status_id}", "url": "",
                "text": "", "content": "<p>A work</p>", "spoiler_text": "",
                "visibility": visibility, "sensitive": False, "local": local,
                "published": True, "created_at": start + step * n,
                "replies_count": 0, "reblogs_count": 0, "favourites_count": 0})
            work_rows.append({
                "status_id": status_id, "account_id": account["id"], "local": local,
                "title": f"Work {n}", "description": "", "dimensions": "", "year": None,
                "ai_generated": ai, "listed": listed, "created_at": now, "updated_at": now})
            position = 0
            for kind in TAG_KINDS:
                low, high = PER_WORK[kind]
                chosen: set[int] = set()
                for _ in range(rng.randint(low, high)):
                    tag_id, _name = rng.choices(terms[kind], cum_weights=weights[kind])[0]
                    chosen.add(tag_id)
                for tag_id in chosen:
                    tag_rows.append({"status_id": status_id, "tag_id": tag_id,
                                     "position": position, "listed": listed})
                    position += 1
        if write:
            async with db.session() as session:
                await session.execute(insert(Status), statuses)
                await session.execute(insert(Work), work_rows)
                await session.execute(insert(WorkTag), tag_rows)
                await session.commit()
        done += count
        print(f"\r  {'populated' if write else 'replayed'} {done:,} / {works:,} works",
              end="", flush=True)
    print()
    if write:
        async with db.engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    return {kind: [name for _id, name in terms[kind]] for kind in TAG_KINDS}


def population_mark(works: int, seed: int) -> str:
    return f"bench/browse.py population: works={works} seed={seed}"


async def reusable(db: Database, works: int, seed: int) -> bool:
    """Whether this PostgreSQL database holds a complete population of ``works`` works
    from ``seed`` (marked on the works table when it was written, checked by counting)."""
    async with db.engine.connect() as conn:
        mark = await conn.scalar(text("SELECT obj_description('works'::regclass, 'pg_class')"))
        if mark != population_mark(works, seed):
            return False
        return bool(await conn.scalar(select(func.count()).select_from(Work)) == works)


async def mark_population(db: Database, works: int, seed: int) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(f"COMMENT ON TABLE works IS '{population_mark(works, seed)}'"))


def queries(names: dict[str, list[str]], count: int, rng: random.Random,
            newest: list[int]) -> list[tuple[dict[str, list[str]], dict[str, Any]]]:
    """Varied three-kind filters: terms drawn by popularity (and a share uniformly, for
    the rare ones), a third with two terms in one kind; pages and local/remote mixed."""
    result = []
    for i in range(count):
        kinds = rng.sample(list(TAG_KINDS), 3)
        filters: dict[str, list[str]] = {}
        for kind in kinds:
            pool = names[kind]
            popular = pool[:max(3, len(pool) // 10)]
            how_many = 2 if rng.random() < 1 / 3 else 1
            source = popular if rng.random() < 0.7 else pool
            filters[kind] = rng.sample(source, min(how_many, len(source)))
        options: dict[str, Any] = {"limit": 20}
        if i % 4 == 1:
            options["local"] = True
        elif i % 4 == 2:
            options["local"] = False
        if i % 5 == 3:
            options["max_id"] = rng.choice(newest)
        result.append((filters, options))
    return result


async def measure(db: Database, names: dict[str, list[str]], count: int,
                  rng: random.Random, repeat: int) -> tuple[list[float], list[float], list[int]]:
    """Per query: the best wall time and this process's CPU time of ``repeat`` runs
    (more than one filters out other processes' interference on a shared machine)."""
    async with db.session() as session:
        newest = list(await session.scalars(select(Work.status_id).order_by(
            Work.status_id.desc()).limit(50000)))
    plan = queries(names, count, rng, newest)
    timings: list[float] = []
    cpu: list[float] = []
    sizes: list[int] = []
    async with db.session() as session:
        # The session keeps one connection (no commit below): its backend does the work.
        backend = (await session.scalar(text("SELECT pg_backend_pid()"))
                   if db.engine.dialect.name == "postgresql" else None)
        for filters, options in plan[:20]:  # warm the caches
            await portfolio.browse(session, None, filters, **options)
        for filters, options in plan:
            best = best_cpu = float("inf")
            for _ in range(repeat):
                session.expunge_all()
                began, began_cpu = time.perf_counter(), time.process_time()
                began_backend = backend_cpu_ms(backend)
                found = await portfolio.browse(session, None, filters, **options)
                best = min(best, (time.perf_counter() - began) * 1000)
                best_cpu = min(best_cpu, (time.process_time() - began_cpu) * 1000
                               + backend_cpu_ms(backend) - began_backend)
            timings.append(best)
            cpu.append(best_cpu)
            sizes.append(len(found))
    return timings, cpu, sizes


def backend_cpu_ms(pid: int | None) -> float:
    """A local PostgreSQL backend's CPU time so far (``/proc/PID/schedstat``, in ns), or
    0 when it cannot be read (another machine, another OS)."""
    if pid is None:
        return 0.0
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def run(url: str, postgres: bool, works: int, count: int, seed: int, repeat: int,
              reuse: bool = False) -> None:
    rng = random.Random(seed)
    db = Database(url)
    try:
        began = time.perf_counter()
        if reuse and postgres:
            await upgrade(db.engine)
            reuse = await reusable(db, works, seed)
            print(f"  {'reusing the population already there' if reuse else 'nothing to reuse'}")
        else:
            reuse = False
        if reuse:
            names = await populate(db, works, rng, write=False)
        else:
            await reset(db, postgres)
            names = await populate(db, works, rng)
            if postgres:
                await mark_population(db, works, seed)
        print(f"  {'replayed' if reuse else 'populated'} in {time.perf_counter() - began:.1f} s")
        timings, cpu, sizes = await measure(db, names, count, rng, repeat)
    finally:
        await db.dispose()
    p50, p99 = percentile(timings, 0.5), percentile(timings, 0.99)
    empty = sum(1 for size in sizes if size == 0)
    full = sum(1 for size in sizes if size == 20)
    best = f", best of {repeat} runs each" if repeat > 1 else ""
    print(f"  {count} queries with three filters{best}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
          f"max {max(timings):.2f} ms, mean {statistics.mean(timings):.2f} ms")
    # CPU time spent on the query — this process's (all threads; SQLite runs in-process)
    # plus, for a local PostgreSQL, its backend's — whatever else the machine is doing.
    print(f"  CPU time per query: p50 {percentile(cpu, 0.5):.2f} ms, "
          f"p99 {percentile(cpu, 0.99):.2f} ms "
          f"({'this process and its PostgreSQL backend' if postgres else 'this process, SQLite included'})")
    print(f"  load average during the run: {' '.join(f'{v:.1f}' for v in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs")
    print(f"  results: {full} full pages of 20, {empty} empty, "
          f"{count - full - empty} partial")
    print(f"  p99 ratio to the target ({TARGET_P99_MS:.0f} ms): {p99 / TARGET_P99_MS:.2f} "
          f"({'met' if p99 <= TARGET_P99_MS else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--works", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each query this many times and keep its best time "
                             "(for a machine shared with other work)")
    parser.add_argument("--reuse", action="store_true",
                        help="PostgreSQL: keep the works a previous run wrote with the same "
                             "--works and --seed instead of writing them again")
    args = parser.parse_args()
    if args.queries < 200:
        parser.error("--queries must be at least 200")
    if args.database == "postgres":
        url = os.environ.get("EASEL_BENCH_DATABASE_URL") or os.environ.get(
            "EASEL_TEST_DATABASE_URL", "")
        if not url:
            parser.error("set EASEL_BENCH_DATABASE_URL (or EASEL_TEST_DATABASE_URL)")
        print(f"PostgreSQL ({url.rsplit('@', 1)[-1]}), {args.works:,} works")
        asyncio.run(run(url, True, args.works, args.queries, args.seed, max(1, args.repeat),
                        args.reuse))
        return
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'browse.sqlite3'}"
        print(f"SQLite (a temporary file), {args.works:,} works")
        asyncio.run(run(url, False, args.works, args.queries, args.seed, max(1, args.repeat)))


if __name__ == "__main__":
    main()
