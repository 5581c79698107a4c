"""``easel worker``: run jobs from the given queues until SIGTERM/SIGINT.

With a broker, dramatiq worker threads take messages and a reconciler re-sends due rows;
without one, the worker polls the database for due rows (the embedded protection child).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Sequence

from server.db import Database
from server.queue.broker import JobQueue, make_broker
from server.queue.kinds import load_job_modules
from server.queue.runner import JobRunner
from server.settings import Settings
from server.streaming.bus import StreamBus, pass_jobs

log = logging.getLogger(__name__)


async def run_worker(
    settings: Settings, queues: Sequence[str], *, threads: int = 4,
    stop: asyncio.Event | None = None,
) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    load_job_modules()
    db = Database.from_settings(settings)
    runner = JobRunner(db, settings)
    # Events committed here (a status published once its images are protected …) reach
    # the web processes' streams: through Redis, or the embedded sibling sockets.
    streams = StreamBus(settings)
    db.dispatch_events = streams.publish
    await streams.start(listen=False)
    try:
        if settings.broker_url:
            queue = JobQueue(runner, make_broker(settings))
            queue.start_worker(queues, threads=threads)
            log.info("worker consuming %s from the broker", ", ".join(queues))
            try:
                await queue.reconcile_forever(queues, stop)
            finally:
                await queue.stop_worker()
                queue.close()
        else:
            # The jobs committed here (a published status's federate …) run in the web
            # process's in-process queue: it hears of them now, not at its next reconcile.
            db.dispatch_jobs = functools.partial(pass_jobs, settings)
            log.info("worker polling the database for %s", ", ".join(queues))
            await asyncio.gather(*(runner.poll(queues, stop) for _ in range(max(threads, 1))))
    finally:
        await streams.close()
        await db.dispose()
