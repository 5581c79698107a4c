"""Polls on the wire (federation.polls): a local poll's status is a ``Question``; a remote
``Question`` (Mastodon's shape) is stored with its poll and refreshed by an ``Update``,
even one that is not an edit; malformed questions store the post without a poll; a
vote is the ``Create(Note{name})`` Mastodon sends."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.collections import status_note
from federation.context import FederationContext
from federation.notes import store_note
from federation.polls import parse_question, question_fields, receive_vote_note
from federation.votes import vote_document
from server.db import Database
from server.ids import utcnow
from server.models import Account, JobState, Poll, PollVote, Status, User
from server.services.polls import PollSpec
from server.services.statuses import create_status
from server.settings import Settings
from server.storage import media_storage
from server.urls import Urls
from tests.federation.fediverse import CAROL, PUBLIC

QUESTION = "https://mastodon.example/users/carol/statuses/9001"


def question(**changes: Any) -> dict[str, Any]:
    """A poll as Mastodon sends it."""
    document: dict[str, Any] = {
        "@context": ["https://www.w3.org/ns/activitystreams"],
        "id": QUESTION, "type": "Question", "attributedTo": CAROL,
        "content": "<p>Tea or coffee?</p>", "published": "2026-11-01T10:00:00Z",
        "to": [PUBLIC], "cc": [f"{CAROL}/followers"],
        "endTime": "2099-01-01T00:00:00Z", "votersCount": 3,
        "oneOf": [{"type": "Note", "name": "tea", "replies": {"type": "Collection", "totalItems": 2}},
                  {"type": "Note", "name": "coffee",
                   "replies": {"type": "Collection", "totalItems": 1}}],
    }
    document.update(changes)
    return document


async def store(fed: FederationContext, db: Database, document: dict[str, Any]) -> Status:
    author = await fed.fetcher.fetch_actor(CAROL)
    async with db.session() as session:
        status = await store_note(fed, session, document, author=author)
        await session.commit()
        return status


async def poll_of(db: Database, status_id: int) -> Poll | None:
    async with db.session() as session:
        return await session.scalar(select(Poll).where(Poll.status_id == status_id))


async def test_a_remote_question_is_stored_with_its_poll_and_updates_refresh_the_counts(
        fed: FederationContext, db: Database, alice: User, alice_api: httpx.AsyncClient) -> None:
    status = await store(fed, db, question())
    poll = await poll_of(db, status.id)
    assert poll is not None
    assert (poll.options, poll.tallies(), poll.multiple, poll.voters_count) \
        == (["tea", "coffee"], [2, 1], False, 3)
    assert "Tea or coffee?" in status.content
    entity = (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()["poll"]
    assert [o["votes_count"] for o in entity["options"]] == [2, 1]
    assert (entity["expired"], entity["voted"]) == (False, False)

    # New counts and the end, with no `updated`: a refresh, not an edit of the post.
    closed = question(oneOf=[{"type": "Note", "name": "tea", "replies": {"totalItems": 5}},
                             {"type": "Note", "name": "coffee", "replies": {"totalItems": 4}}],
                      votersCount=9, closed="2026-11-02T00:00:00Z",
                      endTime="2026-11-02T00:00:00Z")
    await store(fed, db, closed)
    poll = await poll_of(db, status.id)
    assert poll is not None and poll.tallies() == [5, 4] and poll.expired()
    refreshed = (await alice_api.get(f"/api/v1/statuses/{status.id}")).json()
    assert refreshed["edited_at"] is None and refreshed["poll"]["expired"] is True
    assert refreshed["poll"]["votes_count"] == 9


async def test_a_multiple_choice_question_uses_any_of(fed: FederationContext, db: Database) -> None:
    document = question(anyOf=question()["oneOf"])
    del document["oneOf"]
    poll = await poll_of(db, (await store(fed, db, document)).id)
    assert poll is not None and poll.multiple is True


@pytest.mark.parametrize("change", [
    {"oneOf": "tea"},
    {"oneOf": []},
    {"oneOf": [{"type": "Note"}, {"name": 5}, "coffee"]},
])
async def test_a_question_without_usable_options_is_stored_without_a_poll(
        fed: FederationContext, db: Database, change: dict[str, Any]) -> None:
    status = await store(fed, db, question(**change))
    assert await poll_of(db, status.id) is None


def test_parsing_keeps_what_is_sound_and_drops_the_rest() -> None:
    parsed = parse_question(question(
        oneOf=[{"name": " tea "}, {"name": "tea"}, {"name": "milk", "replies": {"totalItems": True}},
               {"name": "juice", "replies": {"totalItems": -4}},
               {"name": "soup", "replies": {"totalItems": "lots"}}],
        votersCount=-1, endTime="not a date"))
    assert parsed is not None
    assert (parsed.options, parsed.tallies) == (["tea", "milk", "juice", "soup"], [0, 0, 0, 0])
    assert (parsed.voters_count, parsed.expires_at, parsed.closed) == (None, None, False)
    assert parse_question({"type": "Note", "oneOf": [{"name": "a"}]}) is None


async def test_a_local_poll_is_a_question_with_hidden_totals_until_it_ends(
        settings: Settings, db: Database, alice: User) -> None:
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        status = await create_status(session, settings, account, None, text="Pick one",
                                     poll=PollSpec(["red", "blue"], 600, hide_totals=True))
        poll = await session.scalar(select(Poll).where(Poll.status_id == status.id))
        assert poll is not None
        poll.cached_tallies, poll.votes_count, poll.voters_count = [3, 1], 4, 4
        note = await status_note(session, account, status, Urls(settings), media_storage(settings))
    assert note["type"] == "Question" and "anyOf" not in note
    assert [(o["name"], o["replies"]["totalItems"]) for o in note["oneOf"]] == [("red", 0), ("blue", 0)]
    assert note["votersCount"] == 0 and "closed" not in note and note["endTime"].endswith("Z")

    poll.expires_at = utcnow() - timedelta(seconds=1)
    ended = question_fields(poll)
    assert [o["replies"]["totalItems"] for o in ended["oneOf"]] == [3, 1]
    assert ended["votersCount"] == 4 and ended["closed"] == ended["endTime"]
    poll.multiple = True
    assert "anyOf" in question_fields(poll) and "oneOf" not in question_fields(poll)


def test_a_vote_is_a_create_of_a_named_note_to_the_polls_author() -> None:
    document = vote_document("https://art.example/users/bob#votes/7", "https://art.example/users/bob",
                             CAROL, QUESTION, "tea")
    assert document["type"] == "Create" and document["to"] == [CAROL]
    assert document["id"] == "https://art.example/users/bob#votes/7/activity"
    note = copy.deepcopy(document["object"])
    assert note == {"id": "https://art.example/users/bob#votes/7", "type": "Note", "name": "tea",
                    "attributedTo": "https://art.example/users/bob", "to": [CAROL],
                    "inReplyTo": QUESTION}


async def test_remote_votes_on_a_local_poll_count_once_and_only_while_it_runs(
        fed: FederationContext, settings: Settings, db: Database, alice: User) -> None:
    carol = await fed.fetcher.fetch_actor(CAROL)
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        status = await create_status(session, settings, account, None, text="Pick one",
                                     poll=PollSpec(["red", "blue"], 600))
        uri, poll_id = status.uri, (await session.scalar(
            select(Poll.id).where(Poll.status_id == status.id)))

    def vote(name: str, number: int = 1, reply_to: str | None = None) -> dict[str, Any]:
        return {"id": f"{CAROL}#votes/{number}", "type": "Note", "name": name,
                "attributedTo": CAROL, "to": [account.uri], "inReplyTo": reply_to or uri}

    async with db.session() as session:
        assert await receive_vote_note(session, vote("blue"), carol) == "vote counted"
        assert await receive_vote_note(session, vote("blue"), carol) == "vote not counted"
        assert await receive_vote_note(session, vote("red", 2), carol) == "vote not counted"
        # Not a vote: an unknown option, a reply with text, a reply to another status.
        assert await receive_vote_note(session, vote("green", 3), carol) is None
        assert await receive_vote_note(session, {**vote("red", 4), "content": "<p>hi</p>"},
                                       carol) is None
        assert await receive_vote_note(session, vote("red", 5, QUESTION), carol) is None
        await session.commit()
        poll = await session.get(Poll, poll_id)
        assert poll is not None and poll.tallies() == [0, 1] and poll.voters_count == 1
        poll.expires_at = utcnow() - timedelta(seconds=1)
        await session.commit()
    async with db.session() as session:
        late = vote("red", 6)
        late["attributedTo"] = CAROL
        assert await receive_vote_note(session, late, carol) == "vote not counted"
        assert len(list(await session.scalars(select(PollVote)))) == 1


async def alices_poll(session: AsyncSession, settings: Settings, alice: User,
                      bob: User) -> tuple[Account, Account, Status, int]:
    """Alice's poll (red or blue, for an hour), and bob as its voter."""
    author = await session.get(Account, alice.account_id)
    voter = await session.get(Account, bob.account_id)
    assert author is not None and voter is not None
    status = await create_status(session, settings, author, None, text="Pick one",
                                 poll=PollSpec(["red", "blue"], 3600))
    poll_id = await session.scalar(select(Poll.id).where(Poll.status_id == status.id))
    assert poll_id is not None
    return author, voter, status, poll_id


async def test_votes_on_a_local_poll_are_sent_as_one_batched_update(
        fed: FederationContext, settings: Settings, db: Database, alice: User, bob: User,
        carol: User) -> None:
    """Mastodon batches a poll's count updates; so does Easel: the votes within
    ``POLL_UPDATE_DELAY`` of the first make one ``Update``, sent when the job is due,
    and a vote after it schedules the next; an ended poll's job sends nothing more."""
    from server.models import Activity, Job
    from server.queue.runner import JobRunner
    from server.services.polls import POLL_COUNTS_JOB, POLL_UPDATE_DELAY, vote

    remote = await fed.fetcher.fetch_actor(CAROL)
    async with db.session() as session:
        author, voter, status, poll_id = await alices_poll(session, settings, alice, bob)
        await vote(session, voter, poll_id, ["0"])
        note = {"id": f"{CAROL}#votes/1", "type": "Note", "name": "blue", "attributedTo": CAROL,
                "to": [author.uri], "inReplyTo": status.uri}
        assert await receive_vote_note(session, note, remote) == "vote counted"
        await session.commit()

    async def updates() -> int:
        async with db.session() as session:
            return len(list(await session.scalars(select(Activity).where(
                Activity.type == "Update", Activity.object_uri == status.uri))))

    async def run_counts_early() -> int:
        """Check the waiting job is due at its window's end, then run it now."""
        async with db.session() as session:
            [job] = await session.scalars(select(Job).where(Job.kind == POLL_COUNTS_JOB,
                                                            Job.state == "queued"))
            assert job.ref.startswith(f"{status.id}@")
            assert utcnow() < job.next_try_at <= utcnow() + 2 * POLL_UPDATE_DELAY
            job.next_try_at = utcnow() - timedelta(seconds=1)
            await session.commit()
        ran: int = await JobRunner(db, settings).run_due(["default"])
        return ran

    assert await updates() == 0  # two votes, nothing sent yet
    assert await run_counts_early() == 1 and await updates() == 1  # one Update for both
    async with db.session() as session:
        third = await session.get(Account, carol.account_id)
        assert third is not None
        with pytest.MonkeyPatch.context() as later:  # a vote in the next window
            later.setattr("server.services.polls.utcnow", lambda: utcnow() + POLL_UPDATE_DELAY)
            await vote(session, third, poll_id, ["1"])
        poll = await session.get(Poll, poll_id)
        assert poll is not None
        poll.expires_at = utcnow() - timedelta(seconds=1)  # ends: the closing sends the last
        await session.commit()
    assert await run_counts_early() == 1 and await updates() == 1  # ended: nothing more



@pytest.mark.parametrize("when", ["at a window's end", "after its window's job ran"])
async def test_a_vote_its_windows_job_may_miss_goes_to_the_next_window(
        settings: Settings, db: Database, alice: User, bob: User, when: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A vote that could commit after its window's job read the counts would wait for
    another vote or the poll's end: it is counted by the next window's job instead."""
    from server.models import Job
    from server.services.polls import POLL_COUNTS_JOB, POLL_UPDATE_DELAY, vote

    window = POLL_UPDATE_DELAY.total_seconds()
    start = (int(utcnow().timestamp() // window) + 1) * window  # the next window's start
    async with db.session() as session:
        _author, voter, status, poll_id = await alices_poll(session, settings, alice, bob)
        number = int(start // window)
        if when == "at a window's end":  # 2 s before it ends
            moment = datetime.fromtimestamp(start + window - 2, tz=UTC)
        else:  # early in it, its job already done
            moment = datetime.fromtimestamp(start + 1, tz=UTC)
            session.add(Job(kind=POLL_COUNTS_JOB, queue="default", ref=f"{status.id}@{number}",
                            state=JobState.DONE, next_try_at=moment))
            await session.commit()
        for clock in ("server.services.polls.utcnow", "server.queue.jobs.utcnow"):
            monkeypatch.setattr(clock, lambda: moment)
        await vote(session, voter, poll_id, ["0"])
        queued = list(await session.scalars(select(Job).where(
            Job.kind == POLL_COUNTS_JOB, Job.state == JobState.QUEUED)))
    assert [job.ref for job in queued] == [f"{status.id}@{number + 1}"]
    due = queued[0].next_try_at
    assert due.replace(tzinfo=UTC) == datetime.fromtimestamp(start + 2 * window, tz=UTC)
