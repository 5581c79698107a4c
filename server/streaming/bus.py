"""The stream bus: carries committed stream events to every web process's open streams.

Why it exists: an event is raised where the change is committed — a web request, a job in
a worker thread, a ``easel worker`` process, the embedded protect child — but the streams
that want it are open in web processes. Every process publishes here; web processes also
listen, and hand what arrives to their subscribers (one queue per open stream).

- With a Redis ``EASEL_BROKER_URL``: Redis pub/sub on one channel per Redis database and
  instance domain. Everything, the publishing process's own events included, goes through
  Redis, so every web process sees each event exactly once.
- Without a broker (embedded): events reach this process's streams directly, and each
  other process on the same data directory (another ``easel serve`` on the same SQLite
  file, the protect child) gets them as a datagram on the Unix socket that process listens
  on (``EASEL_DATA_DIR/streams/<pid>-<random>.sock``).
- With another broker (RabbitMQ): as without one; ``easel worker`` processes on other
  machines do not reach the streams.

Without a broker the sockets also carry "jobs committed" notes (:func:`pass_jobs`): the
embedded protect child, which polls the database, tells the web process of the jobs it
commits (a published status's ``federate`` …), whose in-process queue runs them now
instead of at its next reconcile (up to a minute later).

Streaming is best effort, as Mastodon's: an event that cannot be carried is dropped and
logged, never retried and never allowed to fail the commit that raised it.

What it must never do: block the event loop, raise into the committing code, or carry
anything but ids and the few facts that route an event (``server.services.events``;
a deleted status's visibility and mentions, ``events.status_deleted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from server.services.events import StreamEvent, event_message
from server.settings import Settings

log = logging.getLogger(__name__)

Message = dict[str, Any]
# Longest Unix socket path the kernel takes (sun_path is 108 bytes with its NUL).
MAX_SOCKET_PATH = 100
# An open stream that falls this far behind is closed instead of buffering without end.
SUBSCRIBER_BACKLOG = 1000
REDIS_RETRY_SECONDS = 1.0
JOBS_KEY = "easel_jobs"  # a datagram entry that is a jobs note (pass_jobs), not an event


class Subscription:
    """One open stream's inbox: the messages that arrived since it last looked."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Message | None] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self.closed = False

    async def next(self, wait_seconds: float | None = None) -> Message | None:
        """The next message; None after ``wait_seconds`` without one, or once the
        stream is ``closed`` (it fell too far behind, or the bus closed)."""
        try:
            return await asyncio.wait_for(self.queue.get(), wait_seconds)
        except TimeoutError:
            return None

    def offer(self, message: Message) -> bool:
        try:
            self.queue.put_nowait(message)
            return True
        except asyncio.QueueFull:
            return False

    def offer_close(self) -> None:
        """Tell the stream to end (the bus is closing, or it fell behind)."""
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class StreamBus:
    """Publishes this process's committed events and, in a web process, delivers every
    process's events to the local subscribers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.subscribers: set[Subscription] = set()
        # Called with every batch delivered here, and with this process's own as they are
        # published (the public page cache forgets its pages); must be idempotent.
        self.watchers: list[Callable[[list[Message]], None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listening = False
        self.redis_channel = redis_channel(settings)
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._socket: socket.socket | None = None
        self._socket_path: Path | None = None
        self._ready = asyncio.Event()
        # Without a broker: called with the (job id, queue) pairs another process on this
        # data directory committed (pass_jobs); the web process's in-process queue listens.
        self.job_listeners: list[Callable[[list[tuple[int, str]]], None]] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, listen: bool) -> None:
        """Start publishing; with ``listen`` (web processes) also receiving. Returns once
        this process receives what others publish from now on."""
        self.loop = asyncio.get_running_loop()
        self.listening = listen
        if self.redis_channel is not None:
            import redis.asyncio

            self._redis = redis.asyncio.Redis.from_url(self.settings.broker_url)
            if listen:
                self._listener = asyncio.create_task(self._listen_redis())
                await self._ready.wait()
        elif listen:
            self._bind_socket()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._socket is not None:
            assert self.loop is not None
            self.loop.remove_reader(self._socket.fileno())
            self._socket.close()
            self._socket = None
            if self._socket_path is not None:
                self._socket_path.unlink(missing_ok=True)
        self._end_streams()
        self.listening = False

    def end_streams_soon(self) -> None:
        """End every open stream (the server is stopping); safe from a signal handler."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._end_streams)

    def _end_streams(self) -> None:
        for subscription in list(self.subscribers):
            subscription.offer_close()

    # ------------------------------------------------------------------ subscribers

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)

    def deliver(self, messages: list[Message]) -> None:
        """Hand messages to every local subscriber (on the event loop's thread)."""
        self._tell_watchers(messages)
        for subscription in list(self.subscribers):
            for message in messages:
                if not subscription.offer(message):
                    log.warning("a stream fell %d events behind; closing it", SUBSCRIBER_BACKLOG)
                    self.subscribers.discard(subscription)
                    subscription.offer_close()
                    break

    def _tell_watchers(self, messages: list[Message]) -> None:
        for watcher in self.watchers:
            try:
                watcher(messages)
            except Exception:  # a watcher never keeps the streams from their events
                log.exception("a stream watcher failed")

    # ------------------------------------------------------------------ publishing

    def publish(self, events: list[StreamEvent]) -> None:
        """Called by the database session after a commit (``Database.dispatch_events``)."""
        try:
            messages = [event_message(event) for event in events]
        except Exception:  # never fail the commit that raised them
            log.exception("could not read committed stream events")
            return
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:  # another thread: hop onto the bus's loop
            loop.call_soon_threadsafe(self._publish_on_loop, messages)
        else:
            self._publish_on_loop(messages)

    def _publish_on_loop(self, messages: list[Message]) -> None:
        if self._redis is not None and self.redis_channel is not None:
            # This process's watchers hear of its own events now, not a Redis round trip
            # later (and again when the message comes back: watchers are idempotent).
            self._tell_watchers(messages)
            task = asyncio.ensure_future(self._publish_redis(messages))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        if self.listening:
            self.deliver(messages)
        self._send_to_siblings(messages)

    async def _publish_redis(self, messages: list[Message]) -> None:
        try:
            await self._redis.publish(self.redis_channel, json.dumps(messages))
        except Exception:  # best effort, as Mastodon's streaming
            log.warning("could not publish %d stream events to Redis", len(messages),
                        exc_info=True)

    # ------------------------------------------------------------------ Redis

    async def _listen_redis(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.redis_channel)
                self._ready.set()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        self.deliver(list(json.loads(message["data"])))
                    except (ValueError, TypeError):
                        log.warning("ignored a malformed stream message from Redis")
            except asyncio.CancelledError:
                raise
            except Exception:  # reconnect; streams stay open meanwhile
                log.warning("lost the Redis stream subscription; retrying", exc_info=True)
                self._ready.set()  # never hold up start-up on an unreachable Redis
                await asyncio.sleep(REDIS_RETRY_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    # ------------------------------------------------------------------ sibling processes

    def _bind_socket(self) -> None:
        directory = socket_directory(self.settings)
        directory.mkdir(parents=True, exist_ok=True)
        # Unique even for two apps in one process (tests); stale ones are removed by senders.
        path = directory / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(path))
        except OSError:
            sock.close()
            log.warning("cannot listen for other processes' stream events at %s", path,
                        exc_info=True)
            return
        sock.setblocking(False)
        self._socket, self._socket_path = sock, path
        assert self.loop is not None
        self.loop.add_reader(sock.fileno(), self._read_socket)

    def _read_socket(self) -> None:
        assert self._socket is not None
        while True:
            try:
                data = self._socket.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log.warning("stream socket read failed", exc_info=True)
                return
            try:
                messages = list(json.loads(data))
            except (ValueError, TypeError):
                log.warning("ignored a malformed stream datagram")
                continue
            events = [m for m in messages if not (isinstance(m, dict) and JOBS_KEY in m)]
            for note in messages:
                if isinstance(note, dict) and JOBS_KEY in note:
                    self._tell_job_listeners(note[JOBS_KEY])
            if events:
                self.deliver(events)

    def _tell_job_listeners(self, raw: Any) -> None:
        try:
            jobs = [(int(job_id), str(queue)) for job_id, queue in raw]
        except (ValueError, TypeError):
            log.warning("ignored a malformed jobs note")
            return
        for listener in self.job_listeners:
            try:
                listener(jobs)
            except Exception:  # a lost note is harmless: the reconciler finds due jobs
                log.exception("a job listener failed")

    def _send_to_siblings(self, messages: list[Message]) -> None:
        send_to_siblings(self.settings, messages, own=self._socket_path)


def pass_jobs(settings: Settings, jobs: list[tuple[int, str]]) -> None:
    """Without a broker: tell the other processes on this data directory of jobs this one
    committed (``Database.dispatch_jobs`` of a process that runs no queue of its own: the
    embedded protect child). Best effort, as the stream events: a lost note only waits for
    the reconciler."""
    if jobs:
        send_to_siblings(settings, [{JOBS_KEY: [[job_id, queue] for job_id, queue in jobs]}])


def send_to_siblings(settings: Settings, messages: list[Message], *,
                     own: Path | None = None) -> None:
    """One datagram per message to every other process's socket (never blocks)."""
    directory = socket_directory(settings)
    try:
        siblings = [p for p in directory.iterdir() if p.suffix == ".sock" and p != own]
    except FileNotFoundError:
        return
    if not siblings:
        return
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    try:
        for message in messages:
            data = json.dumps([message]).encode()
            for path in siblings:
                try:
                    sender.sendto(data, str(path))
                except (ConnectionRefusedError, FileNotFoundError):
                    path.unlink(missing_ok=True)  # its process is gone
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                        log.warning("could not pass a stream event to %s: %s", path, exc)
    finally:
        sender.close()


def redis_channel(settings: Settings) -> str | None:
    """The pub/sub channel (None without a Redis broker). Pub/sub ignores the database
    number, so it is part of the name, with the domain: instances sharing a Redis server
    on different databases never see each other's events."""
    url = settings.broker_url
    if not url.startswith(("redis://", "rediss://")):
        return None
    database = urlsplit(url).path.strip("/") or "0"
    return f"easel:{database}:streaming:{settings.domain}"


def socket_directory(settings: Settings) -> Path:
    """Where embedded processes on one data directory find each other's stream sockets:
    under the data directory, or, when that path is too long for a Unix socket, a
    directory in the temporary folder named after it."""
    directory = settings.data_dir.resolve() / "streams"
    if len(str(directory)) + 16 <= MAX_SOCKET_PATH:
        return directory
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"easel-streams-{digest}"
