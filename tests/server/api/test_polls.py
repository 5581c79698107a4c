"""Polls through the client API: posting one with a status (form and JSON), reading it,
voting, the end (a job: "poll" notifications), and Mastodon's answers to bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import utcnow
from server.models import Job, JobState, Poll, PollVote, Status, User
from server.services.polls import CLOSE_POLL_JOB


async def post_poll(api: httpx.AsyncClient, options: list[str] | None = None, *,
                    expires_in: int = 3600, **extra: Any) -> dict[str, Any]:
    body = {"status": "Which medium?",
            "poll": {"options": options or ["oil", "ink", "clay"], "expires_in": expires_in,
                     **extra}}
    response = await api.post("/api/v1/statuses", json=body)
    assert response.status_code == 200, response.text
    entity: dict[str, Any] = response.json()
    return entity


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def end_poll(app: Any, db: Database, poll_id: str) -> None:
    """Move the poll's end (and its closing job) into the past and run due jobs."""
    past = utcnow() - timedelta(seconds=1)
    async with db.session() as session:
        await session.execute(update(Poll).where(Poll.id == int(poll_id)).values(expires_at=past))
        await session.execute(update(Job).where(Job.kind == CLOSE_POLL_JOB, Job.ref == poll_id)
                              .values(next_try_at=past))
        await session.commit()
    await app.state.easel.runner.run_due(["default"])


async def test_a_status_with_a_poll_shows_it_and_the_poll_answers_by_its_own_id(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    status = await post_poll(alice_api, ["  oil ", "ink", ""], multiple=True)
    poll = status["poll"]
    assert poll["options"] == [{"title": "oil", "votes_count": 0}, {"title": "ink", "votes_count": 0}]
    assert (poll["expired"], poll["multiple"], poll["votes_count"], poll["voters_count"]) \
        == (False, True, 0, 0)
    assert (poll["voted"], poll["own_votes"]) == (True, [])  # the author's own poll
    assert poll["expires_at"].endswith("Z") and poll["emojis"] == []

    seen = (await bob_api.get(f"/api/v1/polls/{poll['id']}")).json()
    assert (seen["voted"], seen["own_votes"]) == (False, [])
    anonymous = (await client.get(f"/api/v1/polls/{poll['id']}")).json()
    assert "voted" not in anonymous and "own_votes" not in anonymous
    assert (await client.get(f"/api/v1/statuses/{status['id']}")).json()["poll"]["id"] == poll["id"]
    assert (await client.get("/api/v1/polls/12345")).status_code == 404
    assert (await client.get("/api/v1/polls/abc")).status_code == 404


async def test_form_brackets_work_like_json(alice_api: httpx.AsyncClient) -> None:
    response = await alice_api.post("/api/v1/statuses", data={
        "status": "form poll", "poll[options][]": ["a", "b"], "poll[expires_in]": "300",
        "poll[hide_totals]": "true"})
    assert response.status_code == 200, response.text
    poll = response.json()["poll"]
    assert [o["title"] for o in poll["options"]] == ["a", "b"]
    assert [o["votes_count"] for o in poll["options"]] == [None, None]  # hidden until the end


async def test_voting_counts_once_and_shows_own_votes(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        db: Database) -> None:
    poll_id = (await post_poll(alice_api))["poll"]["id"]
    voted = await bob_api.post(f"/api/v1/polls/{poll_id}/votes", data={"choices[]": ["1"]})
    assert voted.status_code == 200, voted.text
    body = voted.json()
    assert (body["voted"], body["own_votes"], body["votes_count"], body["voters_count"]) \
        == (True, [1], 1, 1)
    assert [o["votes_count"] for o in body["options"]] == [0, 1, 0]
    again = await bob_api.post(f"/api/v1/polls/{poll_id}/votes", data={"choices[]": ["0"]})
    assert again.status_code == 422
    assert again.json() == {"error": "Validation failed: You have already voted on this poll"}
    await carol_api.post(f"/api/v1/polls/{poll_id}/votes", json={"choices": [1]})
    seen = (await alice_api.get(f"/api/v1/polls/{poll_id}")).json()
    assert (seen["votes_count"], seen["voters_count"]) == (2, 2)
    assert [o["votes_count"] for o in seen["options"]] == [0, 2, 0]
    assert await count(db, PollVote) == 2


async def test_a_multiple_choice_poll_takes_several_options_but_each_once(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient) -> None:
    poll_id = (await post_poll(alice_api, multiple=True))["poll"]["id"]
    twice = await bob_api.post(f"/api/v1/polls/{poll_id}/votes", json={"choices": [0, 0]})
    assert twice.status_code == 422
    voted = (await bob_api.post(f"/api/v1/polls/{poll_id}/votes",
                                json={"choices": ["0", "2"]})).json()
    assert (voted["own_votes"], voted["votes_count"], voted["voters_count"]) == ([0, 2], 2, 1)
    same = await bob_api.post(f"/api/v1/polls/{poll_id}/votes", json={"choices": [2]})
    assert same.json() == {"error": "Validation failed: You have already voted on this poll"}


@pytest.mark.parametrize(("body", "status", "error"), [
    ({}, 400, "param is missing or the value is empty: choices"),
    ({"choices": []}, 400, "param is missing or the value is empty: choices"),
    ({"choices": [7]}, 422, "Validation failed: The chosen vote option does not exist"),
    ({"choices": ["-1"]}, 422, "Validation failed: The chosen vote option does not exist"),
    ({"choices": ["x"]}, 422, "Validation failed: The chosen vote option does not exist"),
    ({"choices": [0, 1]}, 422, "Validation failed: You have already voted on this poll"),
    ({"choices": {"a": 1}}, 400, None),
])
async def test_bad_votes_are_refused_with_nothing_written(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database,
        body: dict[str, Any], status: int, error: str | None) -> None:
    poll_id = (await post_poll(alice_api))["poll"]["id"]
    response = await bob_api.post(f"/api/v1/polls/{poll_id}/votes", json=body)
    assert response.status_code == status, response.text
    if error is not None:
        assert response.json() == {"error": error}
    assert await count(db, PollVote) == 0


async def test_no_voting_on_ones_own_poll_an_ended_poll_or_one_not_visible(
        app: Any, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
        client: httpx.AsyncClient, db: Database) -> None:
    poll_id = (await post_poll(alice_api))["poll"]["id"]
    own = await alice_api.post(f"/api/v1/polls/{poll_id}/votes", json={"choices": [0]})
    assert own.json() == {"error": "Validation failed: You cannot vote in your own polls"}
    assert (await client.post(f"/api/v1/polls/{poll_id}/votes",
                              json={"choices": [0]})).status_code == 401
    private = await alice_api.post("/api/v1/statuses", json={
        "status": "followers only", "visibility": "private",
        "poll": {"options": ["a", "b"], "expires_in": 600}})
    hidden = private.json()["poll"]["id"]
    assert (await bob_api.get(f"/api/v1/polls/{hidden}")).status_code == 404
    assert (await bob_api.post(f"/api/v1/polls/{hidden}/votes",
                               json={"choices": [0]})).status_code == 404
    await end_poll(app, db, poll_id)
    ended = await bob_api.post(f"/api/v1/polls/{poll_id}/votes", json={"choices": [0]})
    assert ended.json() == {"error": "Validation failed: The poll has already ended"}
    assert await count(db, PollVote) == 0


@pytest.mark.parametrize(("poll", "error"), [
    ({"options": ["only one"], "expires_in": 600},
     "Validation failed: Poll options must have more than one item"),
    ({"options": ["a", "b", "c", "d", "e"], "expires_in": 600},
     "Validation failed: Poll options can't contain more than 4 items"),
    ({"options": ["a", "x" * 51], "expires_in": 600},
     "Validation failed: Poll options cannot be longer than 50 characters each"),
    ({"options": ["a", "a"], "expires_in": 600},
     "Validation failed: Poll options contain duplicate items"),
    ({"options": ["a", "b"], "expires_in": 299}, "Validation failed: Poll expires at is too soon"),
    ({"options": ["a", "b"], "expires_in": 2_629_747},
     "Validation failed: Poll expires at is too far into the future"),
    ({"options": ["a", "b"]}, "Validation failed: Poll expires at The poll has already ended"),
    ({"options": ["a", "b"], "expires_in": "soon"}, "Validation failed: poll[expires_in] must be a number"),
    ({"options": ["a", "b"], "expires_in": 600, "multiple": "maybe"},
     "Validation failed: poll[multiple] must be true or false"),
    ("a poll", "Validation failed: poll must be an object"),
])
async def test_bad_polls_are_refused_with_nothing_written(
        alice_api: httpx.AsyncClient, db: Database, poll: Any, error: str) -> None:
    response = await alice_api.post("/api/v1/statuses", json={"status": "q?", "poll": poll})
    assert response.status_code == 422, response.text
    assert response.json() == {"error": error}
    assert await count(db, Poll) == 0 and await count(db, Status) == 0


async def test_a_poll_cannot_come_with_media(alice_api: httpx.AsyncClient, db: Database) -> None:
    from tests.protect import images

    upload = await alice_api.post("/api/v1/media", files={"file": ("a.png", images.png(), "image/png")})
    assert upload.status_code in (200, 202), upload.text
    response = await alice_api.post("/api/v1/statuses", json={
        "status": "q?", "media_ids": [upload.json()["id"]],
        "poll": {"options": ["a", "b"], "expires_in": 600}})
    assert response.status_code == 422
    assert response.json() == {"error": "Cannot attach more than 4 files"}
    assert await count(db, Poll) == 0 and await count(db, Status) == 0


async def test_the_end_notifies_voters_and_the_author_and_reveals_hidden_totals(
        app: Any, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User,
        db: Database) -> None:
    status = await post_poll(alice_api, hide_totals=True)
    poll_id = status["poll"]["id"]
    await bob_api.post(f"/api/v1/polls/{poll_id}/votes", json={"choices": [2]})
    hidden = (await bob_api.get(f"/api/v1/polls/{poll_id}")).json()
    assert [o["votes_count"] for o in hidden["options"]] == [None, None, None]
    assert hidden["votes_count"] == 1
    async with db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == CLOSE_POLL_JOB, Job.ref == poll_id))
        assert job is not None and job.state == JobState.QUEUED
        assert job.next_try_at > utcnow() + timedelta(minutes=59)

    await end_poll(app, db, poll_id)
    ended = (await bob_api.get(f"/api/v1/polls/{poll_id}")).json()
    assert ended["expired"] is True
    assert [o["votes_count"] for o in ended["options"]] == [0, 0, 1]
    for api in (bob_api, alice_api):
        notes = [(n["type"], n["status"]["id"], n["account"]["id"])
                 for n in (await api.get("/api/v1/notifications")).json()]
        assert notes == [("poll", status["id"], str(alice.account_id))]
    # The job ran once; running the end again notifies nobody twice.
    await app.state.easel.runner.run_due(["default"])
    assert len((await bob_api.get("/api/v1/notifications")).json()) == 1


async def test_timelines_carry_the_poll_with_the_viewers_votes(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient) -> None:
    status = await post_poll(alice_api)
    await bob_api.post(f"/api/v1/polls/{status['poll']['id']}/votes", json={"choices": [0]})
    public = (await bob_api.get("/api/v1/timelines/public")).json()
    found = next(s for s in public if s["id"] == status["id"])
    assert (found["poll"]["voted"], found["poll"]["own_votes"]) == (True, [0])


async def test_the_instance_advertises_mastodons_poll_limits(client: httpx.AsyncClient) -> None:
    expected = {"max_options": 4, "max_characters_per_option": 50, "min_expiration": 300,
                "max_expiration": 2_629_746}
    for path in ("/api/v1/instance", "/api/v2/instance"):
        assert (await client.get(path)).json()["configuration"]["polls"] == expected


# ------------------------------------------------------------------------ Mastodon.py

def test_mastodon_py_posts_a_poll_votes_and_reads_it(settings: Any) -> None:
    from mastodon import Mastodon, MastodonAPIError

    from tests.server.api.live import live_server

    scopes = ["read", "write"]
    with live_server(settings) as server:
        def sign_up(username: str) -> Mastodon:
            client_id, client_secret = Mastodon.create_app(
                "poll tests", scopes=scopes, api_base_url=server.base_url)
            api = Mastodon(client_id=client_id, client_secret=client_secret,
                           api_base_url=server.base_url, version_check_mode="created",
                           request_timeout=30)
            api.create_account(username, "a long enough password", f"{username}@example.com",
                               agreement=True, scopes=scopes)
            return api

        alice, bob = sign_up("alice"), sign_up("bob")
        posted = alice.status_post("Brush or knife?", poll=alice.make_poll(
            ["brush", "knife"], expires_in=600, multiple=True))
        assert [o.title for o in posted.poll.options] == ["brush", "knife"]
        assert posted.poll.multiple is True and posted.poll.voted is True
        voted = bob.poll_vote(posted.poll.id, [0, 1])
        assert (voted.own_votes, voted.votes_count, voted.voters_count) == ([0, 1], 2, 1)
        assert [o.votes_count for o in alice.poll(posted.poll.id).options] == [1, 1]
        with pytest.raises(MastodonAPIError, match="You cannot vote in your own polls"):
            alice.poll_vote(posted.poll.id, 0)
        with pytest.raises(MastodonAPIError, match="must have more than one item"):
            alice.status_post("one?", poll=alice.make_poll(["only"], expires_in=600))
