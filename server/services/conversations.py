"""Direct conversations (``/api/v1/conversations``), as Mastodon's ``AccountConversation``.

Why it exists: the "Direct messages" column of a client lists, per thread and per set of
people, the last direct status and whether something new arrived. Each local participant
of a direct status (its author and the local accounts it mentions) has its own
conversation row; the other participants, sorted, and the thread identify it, so a new
direct thread with the same people is a new conversation, as in Mastodon. A thread is
the status it started from: a direct reply joins its parent's conversation.

When a direct status is published (posted here, or received from another server),
:func:`record_direct_status` adds it; it marks the conversation unread for everyone but
the author, and never for an account that refuses the author's notifications (a block
either way, a mute with notifications). Deleting a status removes it from its
conversations by cascade; a conversation with no status left is not listed.

What it must never do: commit in :func:`record_direct_status` (it runs inside the
publishing transaction), or show a conversation to anyone but its account.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import insert_ignoring_conflict
from server.models import Account, Conversation, ConversationStatus, Mention, Status
from server.services import events
from server.services.blocks import notification_blocked
from server.services.errors import NotFound


def participants_key(participants: str) -> str:
    return hashlib.sha256(participants.encode()).hexdigest()


async def _thread_of(session: AsyncSession, status: Status) -> int:
    """The thread a direct status belongs to: its parent's, or the parent itself (a direct
    reply to a public post), or the status (a new thread)."""
    if status.in_reply_to_id is None:
        return status.id
    found = await session.scalar(
        select(Conversation.thread_id)
        .join(ConversationStatus, ConversationStatus.conversation_id == Conversation.id)
        .where(ConversationStatus.status_id == status.in_reply_to_id).limit(1))
    return found if found is not None else status.in_reply_to_id


async def _conversation(session: AsyncSession, account_id: int, thread_id: int,
                        participants: str) -> Conversation:
    key = participants_key(participants)
    query = select(Conversation).where(Conversation.account_id == account_id,
                                       Conversation.thread_id == thread_id,
                                       Conversation.participants_key == key)
    found = await session.scalar(query)
    if found is not None:
        return found
    try:
        async with session.begin_nested():
            found = Conversation(account_id=account_id, thread_id=thread_id,
                                 participants=participants, participants_key=key)
            session.add(found)
    except IntegrityError:  # created concurrently by another status of the thread
        found = await session.scalar(query)
        assert found is not None
    return found


async def record_direct_status(session: AsyncSession, status: Status) -> None:
    """Add a just-published status, if direct, to its local participants' conversations.
    Not committed."""
    if status.visibility != "direct" or status.reblog_of_id is not None:
        return
    mentioned = set(await session.scalars(
        select(Mention.account_id).where(Mention.status_id == status.id)))
    everyone = sorted({status.account_id, *mentioned})
    local = list(await session.scalars(select(Account.id).where(
        Account.id.in_(everyone), Account.domain == "", Account.actor_type != "Application")))
    if not local:
        return
    thread_id = await _thread_of(session, status)
    for recipient_id in local:
        is_author = recipient_id == status.account_id
        if not is_author and await notification_blocked(session, recipient_id, status.account_id):
            continue
        participants = ",".join(str(i) for i in everyone if i != recipient_id)
        conversation = await _conversation(session, recipient_id, thread_id, participants)
        conversation.unread = not is_author
        await session.execute(insert_ignoring_conflict(
            session, ConversationStatus,
            {"conversation_id": conversation.id, "status_id": status.id},
            ["conversation_id", "status_id"]))
        events.conversation_updated(session, recipient_id, conversation.id)


def participant_ids(conversation: Conversation) -> list[int]:
    return [int(i) for i in conversation.participants.split(",") if i]


def conversations_query(account_id: int) -> Select[Any]:
    """(last status id, Conversation) rows of ``account_id``'s conversations that still
    hold a status; the API pages them by the last status id, as Mastodon does."""
    last = (select(ConversationStatus.conversation_id,
                   func.max(ConversationStatus.status_id).label("last_status_id"))
            .join(Conversation, Conversation.id == ConversationStatus.conversation_id)
            .where(Conversation.account_id == account_id)
            .group_by(ConversationStatus.conversation_id).subquery())
    return (select(last.c.last_status_id, Conversation)
            .join(last, last.c.conversation_id == Conversation.id))


async def own_conversation(session: AsyncSession, account: Account,
                           conversation_id: int) -> tuple[int, Conversation]:
    """(last status id, conversation) of ``account``'s conversation; NotFound otherwise."""
    query = conversations_query(account.id).where(Conversation.id == conversation_id)
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFound("Record not found")
    return int(row[0]), row[1]


async def mark_read(session: AsyncSession, account: Account,
                    conversation_id: int) -> tuple[int, Conversation]:
    last_status_id, conversation = await own_conversation(session, account, conversation_id)
    if conversation.unread:
        conversation.unread = False
        events.conversation_updated(session, account.id, conversation.id)
    await session.commit()
    return last_status_id, conversation


async def remove(session: AsyncSession, account: Account, conversation_id: int) -> None:
    """Remove a conversation from ``account``'s list (the statuses stay). A later direct
    status in the thread brings it back."""
    found = await session.scalar(select(Conversation.id).where(
        Conversation.id == conversation_id, Conversation.account_id == account.id))
    if found is None:
        raise NotFound("Record not found")
    await session.execute(delete(Conversation).where(Conversation.id == found))
    await session.commit()
