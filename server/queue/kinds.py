"""Job kinds declared as data: queue, handler, attempts, time limit, lease, retry schedule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from server.models import Job
    from server.queue.runner import JobContext

Handler = Callable[["JobContext"], Awaitable[None]]
GiveUpHandler = Callable[["AsyncSession", "Job", BaseException], Awaitable[None]]

QUEUES = ("default", "federation", "protect")
# Run inside `easel serve` when no broker is configured; `protect` gets a child process.
LIGHT_QUEUES = ("default", "federation")


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: str
    handler: Handler
    max_attempts: int = 10
    # The most a single attempt may take.
    time_limit: timedelta = timedelta(minutes=5)
    retry_base: timedelta = timedelta(seconds=30)
    retry_cap: timedelta = timedelta(hours=6)
    # How long a claim holds before the job counts as abandoned (its worker died) and
    # another worker may take it over. None: the whole time limit (short jobs). A kind
    # with long attempts sets a short lease; the runner renews it every lease/3 while the
    # handler runs (a heartbeat), so a killed worker's job is due again within a lease.
    lease: timedelta | None = None
    # Called when the last attempt has failed, in the transaction that marks the job
    # failed: records the failure where its owner looks (e.g. the media row).
    on_give_up: GiveUpHandler | None = None
    # Among due jobs of one queue, higher priority runs first (polling workers): a new
    # upload's protection goes before the verification of earlier ones.
    priority: int = 0

    @property
    def claim_duration(self) -> timedelta:
        """How far ``locked_until`` is set ahead at a claim and at each renewal."""
        return self.lease if self.lease is not None else self.time_limit

    def retry_delay(self, attempts: int) -> timedelta:
        """Exponential backoff after the ``attempts``-th failed attempt."""
        delay = self.retry_base * (2 ** max(attempts - 1, 0))
        return min(delay, self.retry_cap)


KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    if kind.queue not in QUEUES:
        raise ValueError(f"job kind {kind.name}: unknown queue {kind.queue!r}")
    existing = KINDS.get(kind.name)
    if existing is not None and existing.handler is not kind.handler:
        raise ValueError(f"job kind {kind.name} is already registered")
    KINDS[kind.name] = kind
    return kind


def job_kind(name: str, *, queue: str = "default", **options: object) -> Callable[[Handler], JobKind]:
    """Declare a job kind: ``@job_kind("deliver", queue="federation", max_attempts=16)``."""

    def decorate(handler: Handler) -> JobKind:
        return register(JobKind(name=name, queue=queue, handler=handler, **options))  # type: ignore[arg-type]

    return decorate


# Modules that declare job kinds; every process that runs jobs imports them all.
JOB_MODULES: tuple[str, ...] = ("protect.jobs", "protect.verify_job", "protect.check_job",
                                 "federation.jobs", "server.services.polls",
                                 "server.services.scheduled", "server.mail",
                                 "server.services.moderation", "server.services.announcements",
                                 "server.services.user_ips")


def load_job_modules() -> dict[str, JobKind]:
    import importlib

    for module in JOB_MODULES:
        importlib.import_module(module)
    return KINDS


def kind_named(name: str) -> JobKind:
    """The kind registered as ``name``, for code that may not import its module (services
    enqueue federation jobs by name: they never import ``federation``)."""
    kind = KINDS.get(name)
    if kind is None:
        kind = load_job_modules().get(name)
    if kind is None:
        raise LookupError(f"no job kind named {name!r}")
    return kind
