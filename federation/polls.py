"""Polls on the wire: ``Question`` out and in, and votes as ``Create(Note{name})``.

Why it exists: the fediverse carries a poll as its status's object typed ``Question``
(``oneOf`` or ``anyOf`` options, each ``{"type": "Note", "name": …, "replies":
{"totalItems": n}}``, ``endTime``, ``closed``, ``votersCount``), and a vote as a
``Create`` of a ``Note`` whose ``name`` is the option's title and whose ``inReplyTo`` is
the poll, sent to the poll's author only (Mastodon's ``VoteSerializer``). This module is
the translation, both ways; the rules (who may vote, counting) are in
:mod:`server.services.polls`:

* :func:`question_fields` — what a local poll adds to its status's Note;
* :func:`parse_question` / :func:`keep_remote_poll` — a remote ``Question``'s poll, stored
  when its status is (``Create``) and refreshed by every ``Update``;
* :func:`receive_vote_note` — a remote vote on a local poll (from ``Create``);
* (:mod:`federation.votes`: a local account's vote on a remote poll, sent.)

What it must never do: show a ``hide_totals`` poll's counts before its end, count a vote
Note as a status, or trust a vote for a poll that is not local.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.serialize import Document, rfc3339
from server.models import Account, Poll, Status
from server.services import polls
from server.services.polls import RemotePoll

# The most options a remote poll may bring, and the longest title kept.
MAX_REMOTE_OPTIONS = 64
MAX_OPTION_TITLE = 500


# ------------------------------------------------------------------------- outgoing

def question_fields(poll: Poll, *, now: datetime | None = None) -> Document:
    """The fields a Note becomes a ``Question`` with (merged into the Note)."""
    expired = poll.expired(now)
    show_totals = expired or not poll.hide_totals
    tallies = poll.tallies()
    options = [{"type": "Note", "name": title,
                "replies": {"type": "Collection",
                            "totalItems": tallies[i] if show_totals else 0}}
               for i, title in enumerate(poll.options)]
    fields: Document = {"type": "Question", "anyOf" if poll.multiple else "oneOf": options,
                        "votersCount": (poll.voters_count or 0) if show_totals else 0}
    if poll.expires_at is not None:
        fields["endTime"] = rfc3339(poll.expires_at)
        if expired:
            fields["closed"] = rfc3339(poll.expires_at)
    return fields


async def polls_of(session: AsyncSession, status_ids: list[int]) -> dict[int, Poll]:
    if not status_ids:
        return {}
    return {poll.status_id: poll for poll in await session.scalars(
        select(Poll).where(Poll.status_id.in_(status_ids)))}


# ------------------------------------------------------------------------- incoming

def _count(option: dict[str, Any]) -> int:
    replies = option.get("replies")
    total = replies.get("totalItems") if isinstance(replies, dict) else None
    if isinstance(total, bool) or not isinstance(total, int | float | str):
        return 0
    try:
        return max(int(total), 0)
    except ValueError:
        return 0


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def parse_question(document: dict[str, Any]) -> RemotePoll | None:
    """The poll of a ``Question`` document; None when it is not one (or has no options)."""
    kind = document.get("type")
    if kind != "Question" and not (isinstance(kind, list) and "Question" in kind):
        return None
    multiple = "anyOf" in document and "oneOf" not in document
    raw = document.get("anyOf" if multiple else "oneOf")
    if not isinstance(raw, list):
        return None
    titles: list[str] = []
    tallies: list[int] = []
    for option in raw[:MAX_REMOTE_OPTIONS]:
        if not isinstance(option, dict) or not isinstance(option.get("name"), str):
            continue
        title = option["name"].strip()[:MAX_OPTION_TITLE]
        if title and title not in titles:
            titles.append(title)
            tallies.append(_count(option))
    if not titles:
        return None
    voters = document.get("votersCount")
    closed = document.get("closed")
    end = _moment(document.get("endTime")) or _moment(closed)
    return RemotePoll(options=titles, tallies=tallies, multiple=multiple, expires_at=end,
                      closed=closed is not None and closed is not False,
                      voters_count=int(voters) if isinstance(voters, int)
                      and not isinstance(voters, bool) and voters >= 0 else None)


async def keep_remote_poll(session: AsyncSession, status: Status,
                           document: dict[str, Any]) -> Poll | None:
    """Store or refresh remote ``status``'s poll from its document (a ``Question``)."""
    remote = parse_question(document)
    if remote is None:
        return None
    return await polls.store_remote_poll(session, status, remote)


def is_vote(document: dict[str, Any]) -> bool:
    """A Note that looks like a vote: a ``name``, a reply, and no text of its own."""
    return (document.get("type") == "Note" and isinstance(document.get("name"), str)
            and bool(document.get("inReplyTo")) and not document.get("content"))


async def receive_vote_note(session: AsyncSession, document: dict[str, Any],
                            voter: Account) -> str | None:
    """A vote Note on a local poll → the vote (or nothing when it does not count), and
    what happened; None when the Note is not a vote on a local poll (a reply, then)."""
    if not is_vote(document):
        return None
    reply_to = document.get("inReplyTo")
    if not isinstance(reply_to, str):
        return None
    row = (await session.execute(
        select(Poll, Status).join(Status, Status.id == Poll.status_id)
        .where(Status.uri == reply_to, Status.local.is_(True)))).first()
    if row is None:
        return None
    poll: Poll = row[0]
    if document["name"] not in poll.options:
        return None
    uri = document.get("id")
    vote = await polls.receive_vote(session, poll, voter, document["name"],
                                    uri if isinstance(uri, str) else None)
    return "vote counted" if vote is not None else "vote not counted"
