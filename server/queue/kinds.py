"""Job kinds declared as data: queue, handler, attempts, time limit, retry schedule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.queue.runner import JobContext

Handler = Callable[["JobContext"], Awaitable[None]]

QUEUES = ("default", "federation", "protect")
# Run inside `easel serve` when no broker is configured; `protect` gets a child process.
LIGHT_QUEUES = ("default", "federation")


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: str
    handler: Handler
    max_attempts: int = 10
    # The most a single attempt may take; also how long a claim holds before the job is
    # considered abandoned (its worker died) and another worker may take it over.
    time_limit: timedelta = timedelta(minutes=5)
    retry_base: timedelta = timedelta(seconds=30)
    retry_cap: timedelta = timedelta(hours=6)

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
JOB_MODULES: tuple[str, ...] = ("protect.jobs", "federation.jobs")


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
