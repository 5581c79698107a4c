from __future__ import annotations

import httpx
from starlette.applications import Starlette

from server.db import Database
from server.queue.jobs import PENDING_JOBS_KEY, enqueue
from server.queue.kinds import KINDS
from server.state import EaselState
from tests.server.queue import kinds_for_tests  # noqa: F401  (registers test kinds)


async def test_health_reports_database_and_queue(client: httpx.AsyncClient, app: Starlette) -> None:
    state: EaselState = app.state.easel
    async with state.db.session() as session:
        job = await enqueue(session, KINDS["test.record"], "health-check")
        session.info.pop(PENDING_JOBS_KEY)  # keep it queued: not sent to any worker
        await session.commit()
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok"
    assert body["queue"]["status"] == "ok"
    assert body["queue"]["jobs"] == {job.queue: {"queued": 1}}
    assert body["queue"]["overdue"] == 0
    assert response.headers["cache-control"] == "no-store"


async def test_health_is_503_when_the_database_is_unreachable(
    client: httpx.AsyncClient, app: Starlette, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    state: EaselState = app.state.easel
    working = state.db
    state.db = Database(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/easel.sqlite3")
    try:
        response = await client.get("/health")
    finally:
        await state.db.dispose()
        state.db = working
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"]["status"] == "error"
