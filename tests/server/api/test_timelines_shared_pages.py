"""The shared public page cache (``server.api.cache``): a signed-in viewer's page served
from the page built for everyone must equal the page built for that viewer alone.

Each test reads the same timeline from two apps on one database: ``cached`` (pages kept for
a minute) and ``fresh`` (the suite's default: no cache, every page built per request), and
compares what a viewer gets from each, in the states that make a viewer's page differ.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update
from starlette.requests import Request

from server.api.cache import PublicPageCache
from server.app import AppOptions, create_app
from server.db import Database
from server.errors import ApiError
from server.ids import new_id, utcnow
from server.models import (
    AccountDomainBlock,
    Block,
    ConversationMute,
    Filter,
    FilterKeyword,
    Mute,
    Status,
    StatusPin,
    User,
)
from server.services import timelines as timelines_service
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.api.test_timelines import BASE, Factory


@pytest.fixture
def make(db: Database, settings: Settings) -> Factory:
    return Factory(db, settings)


class Twin:
    """One viewer's reads from the cached app and from the uncached one."""

    def __init__(self, cached: httpx.AsyncClient, fresh: httpx.AsyncClient,
                 statements: list[str]) -> None:
        self.cached = cached
        self.fresh = fresh
        self.statements = statements

    async def both(self, path: str) -> tuple[Any, Any]:
        cached = await self.cached.get(path)
        fresh = await self.fresh.get(path)
        assert cached.status_code == fresh.status_code == 200, (cached.text, fresh.text)
        assert cached.headers.get("link") == fresh.headers.get("link")
        return cached.json(), fresh.json()

    async def same(self, path: str = "/api/v1/timelines/public") -> list[Any]:
        cached, fresh = await self.both(path)
        assert cached == fresh
        return list(cached)


@pytest.fixture
async def apps(settings: Settings) -> AsyncIterator[tuple[Any, Any]]:
    cached = create_app(settings.with_changes(public_cache_seconds=60),
                        options=AppOptions(run_workers=False))
    fresh = create_app(settings, options=AppOptions(run_workers=False))
    async with cached.router.lifespan_context(cached), fresh.router.lifespan_context(fresh):
        yield cached, fresh


async def twin(apps: tuple[Any, Any], db: Database, user: User | None) -> Twin:
    cached_app, fresh_app = apps
    statements: list[str] = []
    event.listen(cached_app.state.easel.db.engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: statements.append(statement))
    cached = httpx.AsyncClient(transport=httpx.ASGITransport(app=cached_app), base_url=BASE)
    fresh = httpx.AsyncClient(transport=httpx.ASGITransport(app=fresh_app), base_url=BASE)
    if user is not None:
        token = await make_token(db, user)
        cached, fresh = authorized(cached, token), authorized(fresh, token)
    return Twin(cached, fresh, statements)


async def test_a_viewers_marks_are_laid_over_the_shared_page(
    apps: tuple[Any, Any], db: Database, make: Factory, alice: User, bob: User
) -> None:
    first = await make.status(alice.account, "first #ink", tags=["ink"], media=1)
    second = await make.status(alice.account, "second #ink", tags=["ink"])
    own = await make.status(bob.account, "bob's own #ink", tags=["ink"])
    anonymous = await twin(apps, db, None)
    viewer = await twin(apps, db, bob)
    # Everyone's page is built and kept first …
    await anonymous.same()
    await anonymous.same("/api/v1/timelines/tag/ink")
    # … then the viewer marks things, which no status event announces.
    await make.favourite(bob.account, first)
    await make.bookmark(bob.account, second)
    await make.status(bob.account, reblog_of=first)
    await make.add(StatusPin(account_id=bob.account_id, status_id=own.id))
    await viewer.cached.get("/api/v1/accounts/verify_credentials")  # the token's first use is noted
    for path in ("/api/v1/timelines/public", "/api/v1/timelines/tag/ink"):
        viewer.statements.clear()
        page = await viewer.same(path)
        marks = {s["id"]: (s["favourited"], s["reblogged"], s["bookmarked"], s.get("pinned"))
                 for s in page}
        assert marks == {str(first.id): (True, True, False, None),
                         str(second.id): (False, False, True, None),
                         str(own.id): (False, False, False, True)}
        # Served from the shared page: the token, then the viewer's one check.
        assert len(viewer.statements) == 2, viewer.statements
    # The anonymous reader still gets the kept bytes (counters a minute stale at most).
    async with db.session() as session:
        await session.execute(update(Status).where(Status.id == first.id).values(favourites_count=1))
        await session.commit()
    cached, fresh = await anonymous.both("/api/v1/timelines/public")
    assert [s["favourites_count"] for s in cached] == [0, 0, 0]
    assert [s["favourites_count"] for s in fresh] == [0, 0, 1]


@pytest.mark.parametrize("relation", ["blocks", "blocked by", "mutes", "expired mute",
                                      "domain block", "filter", "follows silenced"])
async def test_a_page_that_differs_for_the_viewer_is_built_for_it(
    apps: tuple[Any, Any], db: Database, make: Factory, alice: User, bob: User, relation: str
) -> None:
    remote = await make.remote_account("faraway", "far.example")
    silenced = await make.remote_account("hushed", "hushed.example")
    async with db.session() as session:
        row = await session.get(type(silenced), silenced.id)
        assert row is not None
        row.silenced_at = utcnow()
        await session.commit()
    await make.status(alice.account, "a painting of a heron")
    await make.status(remote, "from afar")
    await make.status(silenced, "quiet one")
    anonymous = await twin(apps, db, None)
    viewer = await twin(apps, db, bob)
    everyone = await anonymous.same()
    assert "quiet one" not in str(everyone) and len(everyone) == 2
    now = utcnow()
    viewer_id = bob.account_id
    if relation == "blocks":
        await make.add(Block(account_id=viewer_id, target_account_id=alice.account_id))
    elif relation == "blocked by":
        await make.add(Block(account_id=alice.account_id, target_account_id=viewer_id))
    elif relation == "mutes":
        await make.add(Mute(account_id=viewer_id, target_account_id=remote.id))
    elif relation == "expired mute":
        await make.add(Mute(account_id=viewer_id, target_account_id=remote.id,
                            expires_at=now - timedelta(minutes=1)))
    elif relation == "domain block":
        await make.add(AccountDomainBlock(account_id=viewer_id, domain="far.example"))
    elif relation == "filter":
        found = Filter(id=new_id(), account_id=viewer_id, title="birds", context="public",
                       action="hide")
        await make.add(found)
        await make.add(FilterKeyword(id=new_id(), filter_id=found.id, keyword="heron"))
    else:
        await make.follow(bob.account, silenced)
    page = await viewer.same()
    expected = {"blocks": 1, "blocked by": 1, "mutes": 1, "expired mute": 2,
                "domain block": 1, "filter": 1, "follows silenced": 3}[relation]
    assert len(page) == expected, [s["content"] for s in page]


async def test_a_page_with_a_poll_shows_the_viewers_own_vote(
    apps: tuple[Any, Any], db: Database, make: Factory, alice: User, bob: User
) -> None:
    alice_cached = authorized(httpx.AsyncClient(
        transport=httpx.ASGITransport(app=apps[0]), base_url=BASE), await make_token(db, alice))
    posted = await alice_cached.post("/api/v1/statuses", json={
        "status": "Which medium?", "poll": {"options": ["ink", "oil"], "expires_in": 3600}})
    assert posted.status_code == 200, posted.text
    anonymous = await twin(apps, db, None)
    viewer = await twin(apps, db, bob)
    await anonymous.same()
    voted = await viewer.cached.post(f"/api/v1/polls/{posted.json()['poll']['id']}/votes",
                                     json={"choices": [1]})
    assert voted.status_code == 200, voted.text
    page = await viewer.same()
    assert page[0]["poll"]["voted"] is True and page[0]["poll"]["own_votes"] == [1]


async def test_a_new_status_empties_the_cache_and_a_token_in_the_query_is_no_key(
    apps: tuple[Any, Any], db: Database, make: Factory, alice: User, bob: User
) -> None:
    anonymous = await twin(apps, db, None)
    assert await anonymous.same() == []
    alice_cached = authorized(httpx.AsyncClient(
        transport=httpx.ASGITransport(app=apps[0]), base_url=BASE), await make_token(db, alice))
    posted = (await alice_cached.post("/api/v1/statuses", json={"status": "fresh"})).json()
    # The status event emptied the cache: no reader waits out the minute.
    assert [s["id"] for s in await anonymous.same()] == [posted["id"]]
    token = await make_token(db, bob)
    response = await anonymous.cached.get(f"/api/v1/timelines/public?access_token={token}")
    assert [s["id"] for s in response.json()] == [posted["id"]]
    keys = list(apps[0].state.easel.public_cache.entries)
    assert keys == ["/api/v1/timelines/public?"] and token not in str(keys)
    # A deleted status leaves at once too.
    assert (await alice_cached.delete(f"/api/v1/statuses/{posted['id']}")).status_code == 200
    assert await anonymous.same() == []


async def test_the_anonymous_page_is_the_shared_fragments_and_is_what_is_kept(
    apps: tuple[Any, Any], db: Database, make: Factory, alice: User
) -> None:
    # Built once from the fragments a viewer's copy is made of (each status encoded
    # once): the same statuses as the uncached page, and the very bytes kept.
    await make.status(alice.account, "ünïcode — \"quoted\" <b>#ink</b>", tags=["ink"], media=2)
    await make.status(alice.account, "plain")
    anonymous = await twin(apps, db, None)
    page = await anonymous.same()
    assert len(page) == 2 and all("pinned" not in s for s in page)
    assert all(not (s["favourited"] or s["reblogged"] or s["bookmarked"]) for s in page)
    response = await anonymous.cached.get("/api/v1/timelines/public")
    assert response.headers["content-type"] == "application/json"
    entry = apps[0].state.easel.public_cache.entries["/api/v1/timelines/public?"]
    assert response.content == entry.body


async def test_bad_parameters_are_refused_on_the_cached_path(
    apps: tuple[Any, Any], db: Database, bob: User
) -> None:
    for who in (None, bob):
        reader = await twin(apps, db, who)
        for path in ("/api/v1/timelines/public?limit=many", "/api/v1/timelines/tag/ink?local=maybe"):
            cached = await reader.cached.get(path)
            fresh = await reader.fresh.get(path)
            assert 400 <= cached.status_code < 500 and cached.status_code == fresh.status_code
            assert cached.json() == fresh.json() and "error" in cached.json()


async def test_a_missing_page_is_built_once_while_concurrent_readers_wait(
    apps: tuple[Any, Any], db: Database, make: Factory, alice: User, bob: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await make.status(alice.account, "one")
    await make.status(alice.account, "two")
    builds: list[object] = []
    build = timelines_service.public_timeline

    async def slow_build(*args: Any, **kwargs: Any) -> Any:
        builds.append(kwargs.get("viewer"))
        await asyncio.sleep(0.05)  # long enough for every reader below to miss the page
        return await build(*args, **kwargs)

    monkeypatch.setattr(timelines_service, "public_timeline", slow_build)
    anonymous = await twin(apps, db, None)
    viewer = await twin(apps, db, bob)
    answers = await asyncio.gather(
        *(anonymous.cached.get("/api/v1/timelines/public") for _ in range(8)),
        *(viewer.cached.get("/api/v1/timelines/public") for _ in range(4)))
    assert [a.status_code for a in answers] == [200] * 12
    assert len({a.content for a in answers[:8]}) == 1
    assert [s["content"] for s in answers[0].json()] == ["<p>two</p>", "<p>one</p>"]
    assert all(a.json() == answers[0].json() for a in answers[8:])  # no marks: same page
    assert builds == [None]  # one build, for everyone; the rest waited for it

    # A build that fails lets the waiters try for themselves (and fail the same way).
    builds.clear()
    bad = await asyncio.gather(*(anonymous.cached.get("/api/v1/timelines/public?limit=x")
                                 for _ in range(3)))
    assert [a.status_code for a in bad] == [422] * 3
    assert all("error" in a.json() for a in bad)


async def test_readers_that_waited_for_a_failed_build_do_not_queue_behind_each_other(
    apps: tuple[Any, Any], db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    running: list[int] = []
    most = 0

    async def failing_build(*args: Any, **kwargs: Any) -> Any:
        nonlocal most
        running.append(1)
        most = max(most, len(running))
        try:
            await asyncio.sleep(0.05)
            raise ApiError(503, "The database is not answering")
        finally:
            running.pop()

    monkeypatch.setattr(timelines_service, "public_timeline", failing_build)
    anonymous = await twin(apps, db, None)
    answers = await asyncio.gather(
        *(anonymous.cached.get("/api/v1/timelines/public") for _ in range(6)))
    assert [a.status_code for a in answers] == [503] * 6
    assert all(a.json() == {"error": "The database is not answering"} for a in answers)
    # the first build failed; the five that waited for it then tried at once, not in turn
    assert most == 5


def test_a_token_in_the_query_is_never_part_of_the_cache_key() -> None:
    def key(query: bytes) -> str:
        return PublicPageCache.key(Request({
            "type": "http", "path": "/api/v1/timelines/public", "root_path": "",
            "query_string": query, "headers": []}))

    assert key(b"local=1&access_token=SECRET") == "/api/v1/timelines/public?local=1"
    assert key(b"local=1&access%5Ftoken=SECRET") == "/api/v1/timelines/public?local=1"
    assert key(b"local=1&tokens=2") == "/api/v1/timelines/public?local=1&tokens=2"
    assert key(b"") == "/api/v1/timelines/public?"


async def test_a_thread_the_viewer_muted_is_marked_on_its_own_page(
    apps: tuple[Any, Any], db: Database, make: Factory, alice: User, bob: User
) -> None:
    root = await make.status(alice.account, "a heron")
    reply = await make.status(alice.account, "its nest", reply_to=root)
    other = await make.status(bob.account, "bob's own")
    off_page = await make.status(bob.account, "followers only", visibility="private")
    anonymous = await twin(apps, db, None)
    viewer = await twin(apps, db, bob)
    await anonymous.same()
    await viewer.cached.get("/api/v1/accounts/verify_credentials")  # the token's first use is noted
    # A thread muted off the page leaves the shared page shared.
    await make.add(ConversationMute(account_id=bob.account_id, thread_id=off_page.id))
    viewer.statements.clear()
    page = await viewer.same()
    assert len(viewer.statements) == 2, viewer.statements
    assert not any(s["muted"] for s in page)
    # A thread of the page muted: its statuses say so, on the viewer's own page.
    await make.add(ConversationMute(account_id=bob.account_id, thread_id=root.id))
    page = await viewer.same()
    assert {s["id"]: s["muted"] for s in page} == {
        str(root.id): True, str(reply.id): True, str(other.id): False}
