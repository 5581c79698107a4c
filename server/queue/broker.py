"""dramatiq wiring: the broker, one actor per queue, workers, and the reconciler.

With ``EASEL_BROKER_URL`` empty, light queues use dramatiq's in-process ``StubBroker`` and
worker threads inside ``easel serve``; queues nobody consumes in-process (``protect``, run
by a child process that polls the database) get no message at all. With a broker URL,
every queue goes through it and ``easel worker`` processes consume them.

Actors are plain functions that hand the job id to the :class:`JobRunner` on the event
loop that owns the database engine, and wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import dramatiq
from dramatiq.brokers.stub import StubBroker

from server.queue.kinds import QUEUES
from server.queue.runner import JobRunner
from server.settings import Settings

log = logging.getLogger(__name__)

# Longest the reconciler sleeps; it wakes earlier when a retry or a lease falls due.
RECONCILE_INTERVAL = timedelta(seconds=60)


def make_broker(settings: Settings) -> dramatiq.Broker:
    url = settings.broker_url
    if not url:
        return StubBroker(middleware=[])
    if url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, middleware=[], namespace="easel")
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url, middleware=[])


class JobQueue:
    """Sends "run job N" messages and runs dramatiq workers for a :class:`JobRunner`."""

    def __init__(
        self,
        runner: JobRunner,
        broker: dramatiq.Broker,
        *,
        consumed_queues: Sequence[str] = QUEUES,
    ) -> None:
        self.runner = runner
        self.broker = broker
        self.in_process = isinstance(broker, StubBroker)
        # Queues this process will ever see messages for (all of them with a real broker).
        self.dispatch_queues = tuple(consumed_queues) if self.in_process else QUEUES
        self.loop: asyncio.AbstractEventLoop | None = None
        self.worker: dramatiq.Worker | None = None
        self.actors = {queue: self._declare_actor(queue) for queue in QUEUES}
        runner.on_retry = self._send_retry
        runner.db.dispatch_jobs = self.dispatch

    def _declare_actor(self, queue: str) -> dramatiq.Actor:
        def run_job(job_id: int) -> None:
            loop = self.loop
            if loop is None or loop.is_closed():
                raise RuntimeError("job queue is not started")
            asyncio.run_coroutine_threadsafe(self.runner.run(job_id), loop).result()

        return dramatiq.Actor(
            run_job, broker=self.broker, actor_name=f"easel_run_job_{queue}",
            queue_name=queue, priority=0, options={},
        )

    def dispatch(self, jobs: Iterable[tuple[int, str]], delay: timedelta | None = None) -> None:
        """Tell the broker to look at these jobs (now, or after ``delay``)."""
        for job_id, queue in jobs:
            if queue not in self.dispatch_queues:
                continue  # polled from the database by another process
            delay_ms = int(delay.total_seconds() * 1000) if delay else None
            try:
                self.actors[queue].send_with_options(args=(job_id,), delay=delay_ms)
            except Exception:  # the broker is down: the reconciler will send it later
                log.exception("could not send job %s to the %s queue", job_id, queue)

    def _send_retry(self, job_id: int, queue: str, delay: timedelta) -> None:
        self.dispatch([(job_id, queue)], delay)

    def start_worker(self, queues: Sequence[str], threads: int = 4) -> None:
        """Start dramatiq worker threads for ``queues``; call from the runner's loop."""
        self.loop = asyncio.get_running_loop()
        self.worker = dramatiq.Worker(self.broker, queues=set(queues), worker_threads=threads,
                                      worker_timeout=100)
        self.worker.start()

    def bind_loop(self) -> None:
        self.loop = asyncio.get_running_loop()

    async def stop_worker(self) -> None:
        if self.worker is not None:
            worker, self.worker = self.worker, None
            await asyncio.to_thread(worker.stop)

    def close(self) -> None:
        """Close the broker's connections (after stop_worker)."""
        self.broker.close()
        client = getattr(self.broker, "client", None)
        if client is not None:  # dramatiq's RedisBroker leaves its pool open
            client.close()
            client.connection_pool.disconnect()

    async def reconcile(self, queues: Sequence[str]) -> datetime | None:
        """Send every due job again; return when the next one falls due."""
        due = await self.runner.due_jobs(queues)
        if due:
            log.info("reconciler: %d due job(s) re-sent", len(due))
            if self.in_process:
                self.dispatch(due)
            else:  # a round trip each (~0.12 ms to a Redis on loopback): off the event loop
                await asyncio.to_thread(self.dispatch, due)
        return await self.runner.next_due_at(queues)

    async def reconcile_forever(self, queues: Sequence[str], stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait = RECONCILE_INTERVAL.total_seconds()
            try:
                next_at = await self.reconcile(queues)
                if next_at is not None:
                    until = (next_at - self.runner.clock()).total_seconds()
                    wait = min(wait, max(until, 0.0) + 0.05)
            except Exception:
                log.exception("reconciler pass failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def drain(self, queues: Sequence[str] = QUEUES) -> None:
        """Wait until the in-process broker has no message left in ``queues`` (tests)."""
        if not isinstance(self.broker, StubBroker):
            raise RuntimeError("drain() needs the in-process broker")
        for queue in queues:
            if queue in self.dispatch_queues:
                await asyncio.to_thread(self.broker.join, queue, fail_fast=True)
        if self.worker is not None:
            await asyncio.to_thread(self.worker.join)
