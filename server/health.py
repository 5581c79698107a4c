"""``GET /health``: is the database reachable, is the queue moving. 200 or 503."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.ids import utcnow
from server.models import Job, JobState
from server.state import easel

CHECK_TIMEOUT = 5.0
# Queued jobs this far past due mean no worker is taking them (reported, not fatal).
OVERDUE_AFTER = timedelta(minutes=10)


async def health(request: Request) -> Response:
    state = easel(request)
    body: dict[str, Any] = {}
    healthy = True
    try:
        await asyncio.wait_for(state.db.ping(), CHECK_TIMEOUT)
        body["database"] = {"status": "ok", "backend": "sqlite" if state.db.is_sqlite else "postgresql"}
    except Exception as exc:
        healthy = False
        body["database"] = {"status": "error", "error": type(exc).__name__}

    queue: dict[str, Any] = {"broker": "in-process" if state.queue.in_process else "external"}
    try:
        if not state.queue.in_process:
            await asyncio.wait_for(asyncio.to_thread(_ping_broker, state.queue.broker), CHECK_TIMEOUT)
        if body["database"]["status"] == "ok":
            now = utcnow()
            async with state.db.session() as session:
                rows = await session.execute(
                    select(Job.queue, Job.state, func.count(Job.id))
                    .where(Job.state.in_([JobState.QUEUED, JobState.RUNNING, JobState.FAILED]))
                    .group_by(Job.queue, Job.state)
                )
                counts: dict[str, dict[str, int]] = {}
                for queue_name, job_state, count in rows:
                    counts.setdefault(queue_name, {})[job_state] = count
                overdue = await session.scalar(
                    select(func.count(Job.id)).where(
                        Job.state == JobState.QUEUED, Job.next_try_at < now - OVERDUE_AFTER)
                )
            queue["jobs"] = counts
            queue["overdue"] = overdue or 0
        queue["status"] = "ok"
    except Exception as exc:
        healthy = False
        queue.update(status="error", error=type(exc).__name__)
    body["queue"] = queue
    body["status"] = "ok" if healthy else "error"
    return JSONResponse(body, status_code=200 if healthy else 503,
                        headers={"Cache-Control": "no-store"})


def _ping_broker(broker: Any) -> None:
    client = getattr(broker, "client", None)
    if client is not None:
        client.ping()

routes: list[BaseRoute] = [Route("/health", health, methods=["GET", "HEAD"])]
