"""Sending a local account's vote on a remote poll: ``Create(Note{name, inReplyTo})``.

Why it exists: :func:`server.services.polls.vote` records one ``Create`` activity per
vote on a remote poll (payload ``object_type`` "PollVote", ``vote_id``); this builder
turns it into the document Mastodon's ``VoteSerializer`` makes, addressed to the poll's
author alone. (Kept apart from :mod:`federation.polls`, which the Note converters use,
because builders import the outbox.)

What it must never do: send a vote to anyone but the poll's author, or send a vote on a
local poll.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from federation.context import FederationContext
from federation.outbox import Outgoing, builds
from federation.serialize import Document, context
from server.models import Account, Activity, Poll, PollVote
from server.services.polls import VOTE_OBJECT_TYPE


def vote_document(vote_uri: str, voter_uri: str, author_uri: str, poll_uri: str,
                  title: str) -> Document:
    """The ``Create`` of one vote, as Mastodon sends it."""
    note = {"id": vote_uri, "type": "Note", "name": title, "attributedTo": voter_uri,
            "to": [author_uri], "inReplyTo": poll_uri}
    return {"@context": context(), "id": f"{vote_uri}/activity", "type": "Create",
            "actor": voter_uri, "to": [author_uri], "object": note}


@builds("Create", VOTE_OBJECT_TYPE)
async def create_vote(fed: FederationContext, session: AsyncSession,
                      activity: Activity) -> Outgoing | None:
    vote_id = (activity.payload or {}).get("vote_id")
    vote = await session.get(PollVote, int(vote_id)) if isinstance(vote_id, int | str) else None
    poll = await session.get(Poll, vote.poll_id) if vote is not None else None
    author = await session.get(Account, poll.account_id) if poll is not None else None
    voter = await session.get(Account, activity.account_id)
    if vote is None or poll is None or author is None or voter is None or author.is_local \
            or vote.uri is None or not 0 <= vote.choice < len(poll.options):
        return None
    document = vote_document(vote.uri, voter.uri, author.uri, activity.object_uri,
                             poll.options[vote.choice])
    document["id"] = activity.uri
    return Outgoing(document=document, recipients=[author])
