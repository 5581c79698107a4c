"""Polls: a status's question with options, votes and an end.

Why it exists: Mastodon apps create polls with a status (``poll[options][]``,
``poll[expires_in]``, ``poll[multiple]``, ``poll[hide_totals]``), vote on them and read
results; the fediverse carries them as ``Question``. The rules (limits, Mastodon's
validation texts, one vote per account and option, no votes after the end, no voting on
one's own poll) live here; the API and federation only translate:

- a local poll is attached to its status (``attach_poll``) when the status is created or
  edited; a ``close_poll`` job is due at its end;
- a local account votes (``vote``): on a local poll the tallies are recounted from the
  votes and an ``Update`` of the status is scheduled (``poll_counts``: one for all the
  votes of each ``POLL_UPDATE_DELAY`` window, as Mastodon batches them, so a busy poll
  does not send its audience an Update per vote); on a remote poll each vote is recorded as a
  ``Create`` of a vote for federation to send to the poll's author;
- a remote account's vote on a local poll arrives through ``receive_vote``, and a remote
  poll's state through ``store_remote_poll``;
- at the end, ``close_poll`` sends "poll" notifications to the local voters and to a
  local poll's author, and the final ``Update`` of a local poll.

What it must never do: count a vote twice, accept a vote after the poll has closed, show
totals of a ``hide_totals`` poll before it ends, or import ``federation``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server import limits
from server.ids import utcnow
from server.models import Account, JobState, Notification, Poll, PollVote, Status
from server.queue.jobs import enqueue
from server.queue.kinds import JobKind, job_kind, kind_named
from server.services import events
from server.services.errors import NotFound, ServiceError, ValidationFailed
from server.services.notifications import notify
from server.services.outbox import record_activity
from server.services.thread_mutes import thread_muted
from server.services.visibility import visible_to

if TYPE_CHECKING:
    from server.queue.runner import JobContext

log = logging.getLogger(__name__)

CLOSE_POLL_JOB = "close_poll"
POLL_COUNTS_JOB = "poll_counts"
# Votes on a local poll within this long of the first are sent as one Update (Mastodon: 3 min).
POLL_UPDATE_DELAY = timedelta(minutes=3)
# A vote this close to its window's end is counted in the next window's Update.
WINDOW_MARGIN = timedelta(seconds=10)
# Federation's builder of a vote on a remote poll (federation/polls.py).
VOTE_OBJECT_TYPE = "PollVote"


@dataclass(frozen=True)
class PollSpec:
    """A poll as a client asked for it, before validation (``validate_poll``)."""

    options: list[str] = field(default_factory=list)
    expires_in: int = 0  # seconds from now
    multiple: bool = False
    hide_totals: bool = False


# ----------------------------------------------------------------------- validation

def _clean_options(options: Sequence[str]) -> list[str]:
    """Options as Mastodon stores them: stripped, blank ones dropped."""
    return [option.strip() for option in options if option and option.strip()]


def validate_poll(spec: PollSpec) -> None:
    """Raise ValidationFailed with Mastodon's texts when ``spec`` is not a valid poll."""
    options = _clean_options(spec.options)
    if len(options) < 2:
        raise ValidationFailed("Poll options must have more than one item")
    if len(options) > limits.MAX_POLL_OPTIONS:
        raise ValidationFailed(f"Poll options can't contain more than {limits.MAX_POLL_OPTIONS} items")
    if any(len(option) > limits.MAX_POLL_OPTION_CHARACTERS for option in options):
        raise ValidationFailed("Poll options cannot be longer than "
                               f"{limits.MAX_POLL_OPTION_CHARACTERS} characters each")
    if len(set(options)) != len(options):
        raise ValidationFailed("Poll options contain duplicate items")
    if spec.expires_in > limits.MAX_POLL_EXPIRATION:
        raise ValidationFailed("Poll expires at is too far into the future")
    if spec.expires_in < limits.MIN_POLL_EXPIRATION:
        raise ValidationFailed("Poll expires at is too soon")


# --------------------------------------------------------------------- local polls

async def poll_of(session: AsyncSession, status_id: int) -> Poll | None:
    poll: Poll | None = await session.scalar(select(Poll).where(Poll.status_id == status_id))
    return poll


async def attach_poll(session: AsyncSession, status: Status, spec: PollSpec) -> Poll:
    """Validate ``spec`` and give ``status`` (local) that poll: a new one, or its existing
    poll changed in place. Changed options (or ``multiple``) void the votes cast, as in
    Mastodon. The closing job is (re)scheduled for the new end. Not committed."""
    validate_poll(spec)
    options = _clean_options(spec.options)
    now = utcnow()
    expires_at = now + timedelta(seconds=spec.expires_in)
    poll = await poll_of(session, status.id) if status.id is not None else None
    if poll is None:
        poll = Poll(status_id=status.id, account_id=status.account_id, options=options,
                    cached_tallies=[0] * len(options), multiple=spec.multiple,
                    hide_totals=spec.hide_totals, votes_count=0, voters_count=0,
                    expires_at=expires_at, created_at=now, updated_at=now)
        session.add(poll)
        await session.flush()
    else:
        if options != list(poll.options) or spec.multiple != poll.multiple:
            await session.execute(delete(PollVote).where(PollVote.poll_id == poll.id))
            poll.cached_tallies = [0] * len(options)
            poll.votes_count = 0
            poll.voters_count = 0
        poll.options = options
        poll.multiple = spec.multiple
        poll.hide_totals = spec.hide_totals
        poll.expires_at = expires_at
        poll.closed_at = None
        poll.updated_at = now
        await session.flush()
    await _schedule_close(session, poll)
    return poll


async def remove_poll(session: AsyncSession, status: Status) -> bool:
    """Remove ``status``'s poll and its votes (an edit without a poll); True if it had one.
    Not committed."""
    result = await session.execute(delete(Poll).where(Poll.status_id == status.id))
    return bool(getattr(result, "rowcount", 0))


async def _schedule_close(session: AsyncSession, poll: Poll) -> None:
    """Make the ``close_poll`` job of ``poll`` due at its end (one job per poll)."""
    if poll.expires_at is None:
        return
    kind = close_poll_kind()
    delay = max(poll.expires_at - utcnow(), timedelta(0))
    job = await enqueue(session, kind, str(poll.id), delay=delay, again=True)
    if job.state == JobState.QUEUED:
        job.next_try_at = poll.expires_at


def close_poll_kind() -> JobKind:
    return kind_named(CLOSE_POLL_JOB)


# ------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class PollView:
    """A poll as one viewer sees it: the row and the viewer's own votes (None: anonymous)."""

    poll: Poll
    own_votes: list[int] | None
    voted: bool | None


async def poll_views(session: AsyncSession, status_ids: Sequence[int],
                     viewer: Account | None) -> dict[int, PollView]:
    """The polls of ``status_ids`` by status id, with ``viewer``'s votes (two queries)."""
    if not status_ids:
        return {}
    polls = list(await session.scalars(select(Poll).where(Poll.status_id.in_(set(status_ids)))))
    if not polls:
        return {}
    votes: dict[int, list[int]] = {}
    if viewer is not None:
        for poll_id, choice in (await session.execute(
            select(PollVote.poll_id, PollVote.choice).where(
                PollVote.account_id == viewer.id,
                PollVote.poll_id.in_([p.id for p in polls])).order_by(PollVote.choice)
        )).all():
            votes.setdefault(poll_id, []).append(choice)
    views = {}
    for poll in polls:
        if viewer is None:
            views[poll.status_id] = PollView(poll, None, None)
        else:
            own = votes.get(poll.id, [])
            views[poll.status_id] = PollView(poll, own, bool(own) or poll.account_id == viewer.id)
    return views


async def visible_poll(session: AsyncSession, viewer: Account | None,
                       poll_id: int) -> tuple[Poll, Status]:
    """The poll whose status ``viewer`` may see, or NotFound."""
    row = (await session.execute(
        select(Poll, Status).join(Status, Status.id == Poll.status_id)
        .where(Poll.id == poll_id, visible_to(viewer)))).first()
    if row is None:
        raise NotFound("Record not found")
    return row[0], row[1]


async def poll_view(session: AsyncSession, viewer: Account | None, poll_id: int) -> PollView:
    _poll, status = await visible_poll(session, viewer, poll_id)
    return (await poll_views(session, [status.id], viewer))[status.id]


# -------------------------------------------------------------------------- voting

def _choices(poll: Poll, raw: Sequence[str]) -> list[int]:
    choices = []
    for item in raw:
        text = str(item).strip()
        if not text.isascii() or not text.isdigit() or int(text) >= len(poll.options):
            raise ValidationFailed("The chosen vote option does not exist")
        choices.append(int(text))
    return choices


def vote_uri(account: Account, vote: PollVote) -> str:
    """Mastodon's id for a vote: ``{actor}#votes/{id}``."""
    return f"{account.uri}#votes/{vote.id}"


async def vote(session: AsyncSession, account: Account, poll_id: int,
               raw_choices: Sequence[str]) -> PollView:
    """``account`` votes ``raw_choices`` (option indexes) on a poll it can see; committed.

    Mastodon's rules and texts: 400 without choices; 422 for an ended poll, an unknown
    option, one's own poll, a second vote on a single-choice poll or the same option
    twice. Nothing is written when any choice is refused."""
    if not raw_choices:
        raise ServiceError("param is missing or the value is empty: choices", 400)
    poll, status = await visible_poll(session, account, poll_id)
    # One vote at a time per poll (PostgreSQL): the recount and the checks see every vote.
    poll = await session.scalar(select(Poll).where(Poll.id == poll.id).with_for_update()
                                .execution_options(populate_existing=True)) or poll
    if poll.expired():
        raise ValidationFailed("The poll has already ended")
    choices = _choices(poll, raw_choices)
    if poll.account_id == account.id:
        raise ValidationFailed("You cannot vote in your own polls")
    earlier = set(await session.scalars(select(PollVote.choice).where(
        PollVote.poll_id == poll.id, PollVote.account_id == account.id)))
    if len(set(choices)) != len(choices) or (not poll.multiple and (earlier or len(choices) > 1)):
        raise ValidationFailed("You have already voted on this poll")
    if earlier & set(choices):
        raise ValidationFailed("You have already voted on this poll")
    author = await session.get(Account, poll.account_id)
    if author is None:
        raise NotFound("Record not found")
    votes = [PollVote(poll_id=poll.id, account_id=account.id, choice=choice, created_at=utcnow())
             for choice in choices]
    session.add_all(votes)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent identical vote (SQLite has no row lock)
        await session.rollback()
        raise ValidationFailed("You have already voted on this poll") from None
    if author.is_local:
        await _recount(session, poll)
        await _schedule_poll_counts(session, status)
    else:
        tallies = poll.tallies()
        for choice in choices:
            tallies[choice] += 1
        poll.cached_tallies = tallies
        poll.votes_count = (poll.votes_count or 0) + len(choices)
        if not earlier:
            poll.voters_count = (poll.voters_count or 0) + 1
        for cast in votes:
            cast.uri = vote_uri(account, cast)
            await record_activity(session, account, "Create", object_uri=status.uri,
                                  uri=f"{cast.uri}/activity", object_type=VOTE_OBJECT_TYPE,
                                  vote_id=cast.id)
        # Its voters hear when it ends, as in Mastodon.
        await _schedule_close(session, poll)
    poll.updated_at = utcnow()
    await session.commit()
    return (await poll_views(session, [status.id], account))[status.id]


async def _recount(session: AsyncSession, poll: Poll) -> None:
    """A local poll's tallies, votes and voters, counted from its votes."""
    counts = {choice: number for choice, number in (await session.execute(
        select(PollVote.choice, func.count()).where(PollVote.poll_id == poll.id)
        .group_by(PollVote.choice))).all()}
    poll.cached_tallies = [int(counts.get(i, 0)) for i in range(len(poll.options))]
    poll.votes_count = sum(poll.cached_tallies)
    poll.voters_count = int(await session.scalar(
        select(func.count(func.distinct(PollVote.account_id))).where(
            PollVote.poll_id == poll.id)) or 0)


async def _federate_poll_state(session: AsyncSession, author: Account, status: Status) -> None:
    """Tell the status's audience the poll's new counts (an ``Update`` of its Question)."""
    if status.published:
        await record_activity(session, author, "Update", object_uri=status.uri,
                              object_type="Note", status_id=status.id)


async def _schedule_poll_counts(session: AsyncSession, status: Status) -> None:
    """The counts' ``Update`` at the end of the current ``POLL_UPDATE_DELAY`` window: one
    job per status and window (its ref ``"<status id>@<window>"``), due when the window
    ends, so every vote of a window is counted by its job and a vote after that due time
    belongs to the next window's — even while the previous job is still running.

    A vote that might commit only after its window's job has read the counts belongs to
    the next window too: one within ``WINDOW_MARGIN`` of its window's end (its transaction
    may outlast it), and one whose window's job is running or has run already."""
    window = POLL_UPDATE_DELAY.total_seconds()
    now = utcnow()
    first = int((now + WINDOW_MARGIN).timestamp() // window)
    for number in (first, first + 1):
        due = datetime.fromtimestamp((number + 1) * window, tz=UTC)
        job = await enqueue(session, kind_named(POLL_COUNTS_JOB), f"{status.id}@{number}",
                            delay=due - now)
        if job.state == JobState.QUEUED:
            return


async def receive_vote(session: AsyncSession, poll: Poll, voter: Account, title: str,
                       uri: str | None) -> PollVote | None:
    """A remote account's vote (an option's title) on local ``poll``; None, writing
    nothing, when it does not count (ended, unknown option, own poll, already voted, the
    same vote delivered again). Not committed."""
    if poll.expired() or voter.id == poll.account_id:
        return None
    if title not in poll.options:
        return None
    choice = list(poll.options).index(title)
    if uri is not None and await session.scalar(select(PollVote.id).where(PollVote.uri == uri)):
        return None
    earlier = set(await session.scalars(select(PollVote.choice).where(
        PollVote.poll_id == poll.id, PollVote.account_id == voter.id)))
    if choice in earlier or (earlier and not poll.multiple):
        return None
    cast = PollVote(poll_id=poll.id, account_id=voter.id, choice=choice, uri=uri,
                    created_at=utcnow())
    session.add(cast)
    await session.flush()
    await _recount(session, poll)
    poll.updated_at = utcnow()
    status = await session.get(Status, poll.status_id)
    if status is not None:
        await _schedule_poll_counts(session, status)
    return cast


# --------------------------------------------------------------------- remote polls

@dataclass(frozen=True)
class RemotePoll:
    """A ``Question``'s poll as parsed: titles with their counts, and the end."""

    options: list[str]
    tallies: list[int]
    multiple: bool = False
    expires_at: datetime | None = None
    closed: bool = False
    voters_count: int | None = None


async def store_remote_poll(session: AsyncSession, status: Status, remote: RemotePoll) -> Poll:
    """Create or refresh the poll of remote ``status`` from its server's word. Changed
    options void the local votes. Not committed."""
    poll = await poll_of(session, status.id)
    now = utcnow()
    tallies = [max(int(count), 0) for count in remote.tallies]
    expires_at = remote.expires_at
    if remote.closed and (expires_at is None or expires_at > now):
        expires_at = now
    if poll is None:
        poll = Poll(status_id=status.id, account_id=status.account_id, created_at=now)
        session.add(poll)
    elif list(poll.options) != remote.options or poll.multiple != remote.multiple:
        await session.execute(delete(PollVote).where(PollVote.poll_id == poll.id))
    poll.options = list(remote.options)
    poll.cached_tallies = tallies
    poll.multiple = remote.multiple
    poll.votes_count = sum(tallies)
    poll.voters_count = (remote.voters_count if remote.voters_count is not None
                         else (None if remote.multiple else sum(tallies)))
    poll.expires_at = expires_at
    poll.updated_at = now
    await session.flush()
    local_voter = await session.scalar(
        select(PollVote.id).join(Account, Account.id == PollVote.account_id)
        .where(PollVote.poll_id == poll.id, Account.domain == "").limit(1))
    if local_voter is not None:  # its end (perhaps moved, or now) tells them
        await _schedule_close(session, poll)
    return poll


# ------------------------------------------------------------------------- closing

async def close_poll(session: AsyncSession, poll_id: int) -> bool:
    """Handle the end of a poll once: "poll" notifications to its local voters (and to
    its author, when local) and, for a local poll, the final ``Update``. True if it did
    now. Not committed."""
    poll = await session.get(Poll, poll_id)
    if poll is None or poll.closed_at is not None or not poll.expired():
        return False
    status = await session.get(Status, poll.status_id)
    author = await session.get(Account, poll.account_id)
    if status is None or author is None:
        return False
    poll.closed_at = utcnow()
    voter_ids = list(dict.fromkeys(await session.scalars(
        select(PollVote.account_id).where(PollVote.poll_id == poll.id).order_by(PollVote.id))))
    voters = list(await session.scalars(select(Account).where(Account.id.in_(voter_ids)))) \
        if voter_ids else []
    for voter in voters:
        notification = await notify(session, voter, "poll", author, status.id)
        if notification is not None:
            events.notification_created(session, notification)
    if author.is_local:
        # Mastodon tells the author too (the one notification from oneself), unless it
        # muted the thread.
        if not await thread_muted(session, author.id, status.id):
            own = Notification(account_id=author.id, from_account_id=author.id, type="poll",
                               status_id=status.id)
            session.add(own)
            events.notification_created(session, own)
        await _federate_poll_state(session, author, status)
    await session.flush()
    return True


@job_kind(POLL_COUNTS_JOB, queue="default", max_attempts=5, retry_base=timedelta(minutes=1))
async def poll_counts_job(context: JobContext) -> None:
    """Send a local poll's counts as they are now (the votes since it was scheduled)."""
    session = context.session
    status_id = int(context.job.ref.partition("@")[0])
    status = await session.get(Status, status_id)
    poll = await session.scalar(select(Poll).where(Poll.status_id == status_id)) \
        if status is not None else None
    author = await session.get(Account, status.account_id) if status is not None else None
    if status is None or poll is None or author is None or not author.is_local or poll.expired():
        return  # deleted, or ended: the closing sent the final counts
    await _federate_poll_state(session, author, status)


@job_kind(CLOSE_POLL_JOB, queue="default", max_attempts=5, retry_base=timedelta(minutes=1))
async def close_poll_job(context: JobContext) -> None:
    closed = await close_poll(context.session, int(context.job.ref))
    if not closed:
        log.debug("close_poll %s: nothing to do", context.job.ref)
