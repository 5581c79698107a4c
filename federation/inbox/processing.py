"""The ``process_inbox`` job: one stored, verified inbox item → its handler → an outcome.

Why it exists: the inbox endpoint only checks and stores (a delivery is answered in
milliseconds); the work an activity causes — fetching its actor or object, changing
follows, statuses, counters, notifications — happens here, in the federation queue,
with retries. The job (ref = the item's id):

1. loads the :class:`~server.models.InboxItem`; one no longer pending is done already;
2. parses its body again (``parse_activity``); unusable → ``rejected``;
3. checks the actor's domain is not suspended now (a block made after the 202), nor the
   actor itself by our moderators (but for a Delete, Undo or Reject) → ``rejected``;
4. resolves the actor through the :class:`~federation.actors.ActorFetcher` (the cached
   row while fresh). Unreachable → the job retries. Gone or unknown: a ``Delete`` still
   goes to its handler when the account is stored (to remove it), anything else is
   ``ignored``; refused (origin rule, forbidden address) → ``rejected``;
5. dispatches (:mod:`federation.inbox.dispatch`). No handler → ``ignored`` ("unknown
   activity"), never an error. The handler returns a note → ``processed``; it raises
   :class:`~federation.inbox.base.Ignored` / :class:`~federation.inbox.base.Rejected` →
   that outcome, its changes rolled back, no retry; anything else → the job retries with
   backoff, and on its last attempt the item is recorded ``rejected`` with the error, so
   no item stays pending forever.

The outcome, note and ``processed_at`` are written in the handler's transaction, which the
job runner commits together with the job's completion.

What it must never do: trust the body more than the endpoint checked it (a forwarded
item's object is refetched by its handler), or let an unknown activity fail the job.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.actors import ActorGone, ActorNotFound, ActorRefused
from federation.context import FederationContext, federation_context
from federation.domains import is_suspended
from federation.inbox.base import Ignored, InboxContext, InboxOutcomeError, Rejected
from federation.inbox.dispatch import handler_for
from federation.inbox.intake import ALLOWED_WHILE_SUSPENDED
from federation.parse import ParseError, RemoteActivity, parse_activity
from server.ids import utcnow
from server.models import Account, InboxItem, InboxOutcome
from server.queue.kinds import job_kind
from server.queue.runner import JobContext

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8          # 30 s, 1, 2, 4 … minutes: about two hours in all
MAX_NOTE_LENGTH = 2000


@job_kind(
    "process_inbox",
    queue="federation",
    max_attempts=MAX_ATTEMPTS,
    retry_base=timedelta(seconds=30),
    retry_cap=timedelta(hours=1),
    time_limit=timedelta(minutes=5),
)
async def process_inbox(job: JobContext) -> None:
    session = job.session
    item = await session.get(InboxItem, int(job.job.ref))
    if item is None or item.outcome != InboxOutcome.PENDING:
        return
    item_id = item.id
    fed = federation_context(job.settings, job.db)
    try:
        note = await process_item(fed, session, item)
    except InboxOutcomeError as exc:
        outcome = InboxOutcome.IGNORED if isinstance(exc, Ignored) else InboxOutcome.REJECTED
        note = str(exc)
    except Exception as exc:
        if job.job.attempts < MAX_ATTEMPTS:
            raise
        log.warning("inbox item %s: giving up after %s attempts: %s", item_id,
                    job.job.attempts, exc)
        outcome, note = InboxOutcome.REJECTED, f"gave up: {type(exc).__name__}: {exc}"
    else:
        await record_outcome(session, item_id, InboxOutcome.PROCESSED, note)
        return
    await session.rollback()  # an ignored or rejected activity changes nothing
    await record_outcome(session, item_id, outcome, note)


async def record_outcome(session: AsyncSession, item_id: int, outcome: InboxOutcome,
                         note: str) -> None:
    """Write the item's outcome in ``session`` (the caller, or the job runner, commits)."""
    item = await session.get(InboxItem, item_id)
    if item is None:
        return
    item.outcome = outcome.value
    item.note = note[:MAX_NOTE_LENGTH]
    item.processed_at = utcnow()


async def process_item(fed: FederationContext, session: AsyncSession, item: InboxItem) -> str:
    """Run ``item``'s handler; its note. Raises Ignored, Rejected, or a retryable error."""
    try:
        activity = parse_activity(item.body)
    except ParseError as exc:
        raise Rejected(f"not a usable activity: {exc.reason}") from None
    if await is_suspended(session, activity.actor):
        raise Rejected("the actor's domain is suspended")
    if activity.type not in ALLOWED_WHILE_SUSPENDED and await suspended_here(session, activity.actor):
        raise Rejected("the actor is suspended by this server's moderators")
    handler = handler_for(activity)
    if handler is None:
        raise Ignored(f"unknown activity: {activity.type}")
    actor = await resolve_actor(fed, session, activity)
    return await handler(InboxContext(fed=fed, session=session, item=item, actor=actor,
                                      activity=activity, body=item.body))


async def suspended_here(session: AsyncSession, actor_uri: str) -> bool:
    """Whether ``actor_uri`` is a stored remote account our moderators suspended
    (``server.services.moderation``): refused like a suspended domain."""
    return await session.scalar(select(Account.id).where(
        Account.uri == actor_uri, Account.domain != "", Account.suspended_at.is_not(None),
        Account.suspension_origin == "local")) is not None


async def resolve_actor(fed: FederationContext, session: AsyncSession,
                        activity: RemoteActivity) -> Account:
    """The activity's actor as a row of ``session``. ``ActorUnavailable`` escapes (retry)."""
    try:
        fetched = await fed.fetcher.fetch_actor(activity.actor)
    except (ActorGone, ActorNotFound) as exc:
        stored = await session.scalar(select(Account).where(
            Account.uri == activity.actor, Account.domain != ""))
        if stored is not None and activity.type == "Delete":
            return stored  # the Delete handler removes it
        raise Ignored(f"the actor is gone or unknown: {exc}") from None
    except ActorRefused as exc:
        raise Rejected(f"the actor may not be used: {exc}") from None
    actor = await session.get(Account, fetched.id, populate_existing=True)
    if actor is None:  # deleted between the fetch and now
        raise Ignored("the actor's account was removed meanwhile")
    return actor


