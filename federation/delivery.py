"""Delivering an activity to one inbox: sign, POST, classify the answer, record it.

Why it exists: every local action that other servers should hear about ends as one
:class:`~server.models.Delivery` row per inbox, each with its own ``deliver`` job (ref =
the delivery id), so a failing inbox is retried on its own schedule while the others are
done. This module sends one (:func:`send_to_inbox`), records what happened
(:func:`record_outcomes`: the delivery row and the domain's health in ``instances``), and
is the ``deliver`` job that retries a failed delivery.

The first attempt of a fresh activity's deliveries does not go through the per-job path:
the ``federate`` job (:mod:`federation.outbox`) claims its new delivery jobs in bulk and
calls :func:`deliver_claimed`, which sends them concurrently over the keep-alive
delivery client and records the outcomes in bulk (successes ``done`` in one statement,
failures back to ``queued`` with their next try). Only failures then come back here.

Outcomes, as Mastodon treats them:

- 2xx: delivered (``delivered_at``, ``status_code``); the domain is healthy again.
- 408, 429, 5xx, 3xx, timeouts, network errors, unresolvable hosts: retried with
  exponential backoff — ``RETRY_BASE`` 1 min doubling to ``RETRY_CAP`` 8 h, for
  ``MAX_ATTEMPTS`` 15 attempts: 1+2+4+…+256 min (8 h 31 min) then five waits of 8 h,
  48 h 31 min in all — then the runner marks the job failed. Each failure counts against
  the domain (``Instance.failures``, first/last failure, last error).
- any other 4xx (404, 410 gone, 401/403 refused, 400, 413, …): given up at once — the
  job is done, the delivery keeps the status code and no ``delivered_at``. The server
  answered, so its domain counts as reachable (Mastodon's "unsalvageable" responses).
- an address Easel must not connect to (private, loopback, a bad scheme): given up.
- a domain suspended after the delivery was made: given up before sending, nothing
  recorded against the domain (the ``deliver`` job checks the blocks on every attempt,
  and the bulk first attempt drops claims on suspended domains — a rerun of ``federate``
  claims its earlier, still due deliveries too; its audience already leaves them out).

What it must never do: run in a web request, send a document other than the one stored
on the activity (every retry sends the same content), send twice what is already
delivered, or read more than a few KiB of a remote answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import httpx
from sqlalchemy import Table, bindparam, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from federation.content_types import ACTIVITY_JSON
from federation.context import FederationContext, federation_context
from federation.domains import all_blocks, is_suspended
from federation.http import FetchError, ForbiddenAddress, ForbiddenURL
from federation.signatures import CavageSigner
from server.db import Database
from server.ids import utcnow
from server.models import Account, Activity, Delivery, Instance, Job, JobState
from server.queue.kinds import job_kind
from server.queue.runner import MAX_ERROR_LENGTH, JobContext

log = logging.getLogger(__name__)

DELIVER_JOB = "deliver"
MAX_ATTEMPTS = 15
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=8)
# One attempt, end to end (connect, send, answer); the client's own timeouts are shorter.
ATTEMPT_TIMEOUT = 30.0
# Deliveries in flight at once in a bulk first attempt, over the keep-alive client
# (federation.http.KeepAlivePool). More hides more network latency; on loopback 32 was no
# faster than 16 (bench/outbound.py --concurrency), the work being the sender's CPU.
CONCURRENCY = 16
# How much of an inbox's answer is read (enough for an error message; the rest is dropped).
MAX_ANSWER_BYTES = 16 * 1024
# Outcomes recorded per transaction in a bulk first attempt.
RECORD_BATCH = 500
# Statuses after which another attempt may succeed (besides 5xx).
RETRYABLE_STATUSES = frozenset({408, 429})

DELIVERED = "delivered"
RETRY = "retry"
GIVE_UP = "give_up"


class DeliveryFailed(Exception):
    """An attempt failed in a way worth retrying (the runner schedules the retry)."""


@dataclass
class Outcome:
    """What one attempt at one inbox came to."""

    delivery_id: int
    domain: str
    result: str                    # DELIVERED, RETRY or GIVE_UP
    status_code: int | None = None
    error: str = ""
    job_id: int | None = None      # bulk path: the claimed job
    attempts: int = 0              # bulk path: the attempt this was


@dataclass(frozen=True)
class Claim:
    """A delivery job the ``federate`` job claimed to make its first attempt itself."""

    job_id: int
    delivery_id: int
    inbox_url: str
    domain: str
    attempts: int


# --------------------------------------------------------------------------- sending

def activity_body(document: dict[str, Any]) -> bytes:
    """The bytes POSTed for ``document`` (the same for every inbox and every retry)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signer_for(actor: Account) -> CavageSigner:
    """Signs as ``actor`` (a local account: it has a private key)."""
    if not actor.private_key_pem or not actor.public_key_id:
        raise ValueError(f"account {actor.id} has no signing key")
    return CavageSigner(actor.public_key_id, actor.private_key_pem)


def classify(status_code: int) -> str:
    if 200 <= status_code < 300:
        return DELIVERED
    if status_code in RETRYABLE_STATUSES or status_code >= 500 or status_code < 400:
        return RETRY
    return GIVE_UP


async def send_to_inbox(client: httpx.AsyncClient, inbox_url: str, body: bytes,
                        signer: httpx.Auth) -> tuple[str, int | None, str]:
    """POST ``body`` to ``inbox_url`` signed by ``signer``: (result, status code, error)."""
    try:
        async with asyncio.timeout(ATTEMPT_TIMEOUT):
            async with client.stream("POST", inbox_url, content=body, auth=signer,
                                     headers={"Content-Type": ACTIVITY_JSON,
                                              "Accept": ACTIVITY_JSON}) as response:
                answer = b""
                async for chunk in response.aiter_bytes():
                    answer += chunk
                    if len(answer) >= MAX_ANSWER_BYTES:
                        break
                result = classify(response.status_code)
                error = "" if result == DELIVERED else (
                    f"HTTP {response.status_code}: "
                    + answer[:200].decode("utf-8", "replace").strip())
                return result, response.status_code, error
    except (ForbiddenAddress, ForbiddenURL, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return GIVE_UP, None, f"{type(exc).__name__}: {exc}"
    except TimeoutError:
        return RETRY, None, f"no answer within {ATTEMPT_TIMEOUT:.0f} s"
    except (httpx.HTTPError, FetchError, OSError) as exc:
        return RETRY, None, f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------- recording

def _upsert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def record_outcomes(session: AsyncSession, outcomes: Sequence[Outcome],
                          now: datetime) -> None:
    """Write ``outcomes`` to their delivery rows and their domains' health (not committed).

    Within one call a domain that answered at all (delivered, or refused for good) is
    healthy: its failure count is reset. Otherwise each failure adds one.
    """
    if not outcomes:
        return
    deliveries = cast(Table, Delivery.__table__)
    # One UPDATE per distinct (status code, delivered) — a burst is nearly all one — rather
    # than one parameter set per row: the executemany cost more than the rest of recording.
    rows: dict[tuple[int | None, bool], list[int]] = defaultdict(list)
    for outcome in outcomes:
        rows[outcome.status_code, outcome.result == DELIVERED].append(outcome.delivery_id)
    for (status_code, delivered), ids in rows.items():
        await session.execute(
            update(deliveries).where(deliveries.c.id.in_(ids))
            .values(status_code=status_code, delivered_at=now if delivered else None))

    answered: set[str] = set()
    failures: dict[str, int] = defaultdict(int)
    last_error: dict[str, str] = {}
    for outcome in outcomes:
        if outcome.result == RETRY:
            failures[outcome.domain] += 1
            last_error[outcome.domain] = outcome.error
        elif outcome.status_code is not None:  # refused before connecting: no news of it
            answered.add(outcome.domain)
    insert = _upsert(session)
    table = cast(Table, Instance.__table__)
    for domain in sorted(answered):
        statement = insert(table).values(domain=domain, failures=0, last_success_at=now,
                                         created_at=now)
        await session.execute(statement.on_conflict_do_update(
            index_elements=["domain"],
            set_={"failures": 0, "first_failure_at": None, "last_success_at": now}))
    for domain in sorted(set(failures) - answered):
        error = last_error[domain][:MAX_ERROR_LENGTH]
        statement = insert(table).values(domain=domain, failures=failures[domain],
                                         first_failure_at=now, last_failure_at=now,
                                         last_error=error, created_at=now)
        await session.execute(statement.on_conflict_do_update(
            index_elements=["domain"],
            set_={"failures": table.c.failures + failures[domain],
                  "first_failure_at": func.coalesce(table.c.first_failure_at, now),
                  "last_failure_at": now, "last_error": error}))


class _Dispatch(Protocol):
    def __call__(self, jobs: list[tuple[int, str]], delay: timedelta | None = None) -> None: ...


def _tell_broker(db: Database, jobs: list[tuple[int, str]], delay: timedelta) -> None:
    """Ask the queue to look at ``jobs`` after ``delay`` (after the commit that made them
    due then). A lost message is harmless: the reconciler finds due rows."""
    dispatch: _Dispatch | None = db.dispatch_jobs  # type: ignore[assignment]
    if dispatch is not None and jobs:
        dispatch(jobs, delay)


async def _record_bulk(db: Database, outcomes: Sequence[Outcome], lease: datetime) -> None:
    """Record a batch of bulk first attempts: their rows, domains and jobs, one transaction.

    A job's row changes only while our claim holds (still running, locked until ``lease``):
    a claim that expired and was taken over is the other worker's to record.
    """
    now = utcnow()
    kind = deliver_job
    done = [o.job_id for o in outcomes if o.result != RETRY and o.job_id is not None]
    retries = [o for o in outcomes if o.result == RETRY and o.job_id is not None]
    jobs = cast(Table, Job.__table__)
    claim_holds = (jobs.c.state == JobState.RUNNING.value) & (jobs.c.locked_until == lease)
    async with db.session() as session:
        await record_outcomes(session, outcomes, now)
        if done:
            await session.execute(
                update(jobs).where(jobs.c.id.in_(done), claim_holds)
                .values(state=JobState.DONE.value, progress=1.0, locked_until=None,
                        finished_at=now, last_error=None, updated_at=now))
        if retries:
            await session.execute(
                update(jobs).where(jobs.c.id == bindparam("b_id"), claim_holds)
                .values(state=bindparam("b_state"), next_try_at=bindparam("b_next"),
                        finished_at=bindparam("b_finished"), locked_until=None,
                        last_error=bindparam("b_error"), updated_at=now),
                [{"b_id": o.job_id,
                  "b_state": (JobState.FAILED if o.attempts >= kind.max_attempts
                              else JobState.QUEUED).value,
                  "b_next": now + kind.retry_delay(o.attempts),
                  "b_finished": now if o.attempts >= kind.max_attempts else None,
                  "b_error": o.error[:MAX_ERROR_LENGTH]} for o in retries])
        await session.commit()
    by_delay: dict[timedelta, list[tuple[int, str]]] = defaultdict(list)
    for outcome in retries:
        if outcome.job_id is not None and outcome.attempts < kind.max_attempts:
            by_delay[kind.retry_delay(outcome.attempts)].append((outcome.job_id, kind.queue))
    for delay, due in by_delay.items():
        _tell_broker(db, due, delay)


async def _release(db: Database, claims: Sequence[Claim], lease: datetime) -> None:
    """Hand unfinished claims back to the queue, due now (the attempt did not complete)."""
    if not claims:
        return
    now = utcnow()
    jobs = cast(Table, Job.__table__)
    async with db.session() as session:
        await session.execute(
            update(jobs).where(jobs.c.id.in_([c.job_id for c in claims]),
                               jobs.c.state == JobState.RUNNING.value,
                               jobs.c.locked_until == lease)
            .values(state=JobState.QUEUED.value, attempts=jobs.c.attempts - 1,
                    locked_until=None, next_try_at=now, updated_at=now))
        await session.commit()
    _tell_broker(db, [(c.job_id, deliver_job.queue) for c in claims], timedelta(0))


# ----------------------------------------------------------------- bulk first attempt

async def _without_suspended(db: Database, claims: Sequence[Claim],
                             lease: datetime) -> Sequence[Claim]:
    """``claims`` less those on a suspended domain, which are given up (recorded, their
    jobs done, nothing sent). The audience already leaves suspended domains out; this
    catches the deliveries of an earlier run of the same activity claimed again."""
    if not claims:
        return claims
    async with db.session() as session:
        blocks = await all_blocks(session)
    if not blocks.found:
        return claims
    suspended = [claim for claim in claims if blocks.suspends(claim.domain)]
    if not suspended:
        return claims
    await _record_bulk(db, [Outcome(delivery_id=claim.delivery_id, domain=claim.domain,
                                    result=GIVE_UP, error="domain suspended",
                                    job_id=claim.job_id, attempts=claim.attempts)
                            for claim in suspended], lease)
    skipped = {claim.job_id for claim in suspended}
    return [claim for claim in claims if claim.job_id not in skipped]


async def deliver_claimed(fed: FederationContext, claims: Sequence[Claim], body: bytes,
                          actor: Account, *, lease: datetime, budget: float) -> int:
    """Make the claimed deliveries' attempt now, ``CONCURRENCY`` at a time, recording the
    outcomes in batches; returns how many were delivered.

    Claims still in flight after ``budget`` seconds are cancelled and handed back to the
    queue (their jobs run through the normal path). A worker that dies here leaves its
    claims running until ``lease``; then the runner takes them over.
    """
    claims = await _without_suspended(fed.db, claims, lease)
    if not claims:
        return 0
    signer = signer_for(actor)
    client = fed.delivery_client
    gate = asyncio.Semaphore(CONCURRENCY)

    finished: asyncio.Queue[Outcome] = asyncio.Queue()

    async def attempt(claim: Claim) -> None:
        try:
            async with gate:
                result, code, error = await send_to_inbox(client, claim.inbox_url, body, signer)
        except Exception as exc:  # recorded as a failure to retry, never lost
            log.exception("delivery %s to %s failed", claim.delivery_id, claim.inbox_url)
            result, code, error = RETRY, None, f"{type(exc).__name__}: {exc}"
        finished.put_nowait(Outcome(delivery_id=claim.delivery_id, domain=claim.domain,
                                    result=result, status_code=code, error=error,
                                    job_id=claim.job_id, attempts=claim.attempts))

    tasks = [asyncio.ensure_future(attempt(claim)) for claim in claims]
    received: set[int] = set()
    delivered = 0
    batch: list[Outcome] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget

    def take(outcome: Outcome) -> None:
        nonlocal delivered
        received.add(outcome.delivery_id)
        delivered += outcome.result == DELIVERED
        batch.append(outcome)

    try:
        while len(received) < len(claims):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                take(await asyncio.wait_for(finished.get(), remaining))
            except TimeoutError:
                break
            while not finished.empty():
                take(finished.get_nowait())
            if len(batch) >= RECORD_BATCH:
                await _record_bulk(fed.db, batch, lease)
                batch = []
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    while not finished.empty():
        take(finished.get_nowait())
    if batch:
        await _record_bulk(fed.db, batch, lease)
    unfinished = [claim for claim in claims if claim.delivery_id not in received]
    if unfinished:
        log.warning("federate: %d deliveries unfinished after %.0f s, queued", len(unfinished),
                    budget)
        await _release(fed.db, unfinished, lease)
    return delivered


# ---------------------------------------------------------------------- the job

@job_kind(DELIVER_JOB, queue="federation", max_attempts=MAX_ATTEMPTS, retry_base=RETRY_BASE,
          retry_cap=RETRY_CAP, time_limit=timedelta(minutes=2))
async def deliver(context: JobContext) -> None:
    """One attempt at one delivery (a retry, or a first attempt the federate job left)."""
    session = context.session
    delivery = await session.get(Delivery, int(context.job.ref))
    if delivery is None or delivery.delivered_at is not None:
        return  # gone with its activity, or already delivered: never send twice
    activity = await session.get(Activity, delivery.activity_id)
    if activity is None or activity.document is None:
        return  # nothing was ever built to send
    actor = await session.get(Account, activity.account_id)
    if actor is None or not actor.is_local:
        return
    if await is_suspended(session, delivery.domain):
        # Suspended since the delivery was made: given up, nothing sent, the row kept
        # without delivered_at (the domain's health is not news of it).
        log.info("delivery %s to %s given up: %s is suspended", delivery.id,
                 delivery.inbox_url, delivery.domain)
        await record_outcomes(session, [Outcome(delivery_id=delivery.id, domain=delivery.domain,
                                                result=GIVE_UP, error="domain suspended")],
                              utcnow())
        return
    fed = federation_context(context.settings, context.db)
    result, code, error = await send_to_inbox(fed.delivery_client, delivery.inbox_url,
                                              activity_body(activity.document),
                                              signer_for(actor))
    outcome = Outcome(delivery_id=delivery.id, domain=delivery.domain, result=result,
                      status_code=code, error=error)
    if result != RETRY:
        await record_outcomes(session, [outcome], utcnow())
        return
    # The runner rolls this job's session back when it raises: record the failure apart.
    async with context.db.session() as failure_session:
        await record_outcomes(failure_session, [outcome], utcnow())
        await failure_session.commit()
    raise DeliveryFailed(f"{delivery.inbox_url}: {error}")


deliver_job = deliver
