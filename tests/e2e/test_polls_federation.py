"""A poll across two Easel instances, through the client API only.

alice on art.example posts a poll; bob on paint.example (following her) sees it as a
``Question``, votes from his instance (a ``Create(Note{name})`` to art), and both sides
count the vote (art's ``Update(Question)``, batched, brings paint the counts). carol, local to art,
votes too. At the end, art notifies alice and carol, sends the closed poll, and paint
notifies bob.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from server.ids import utcnow
from server.models import Job, Poll, PollVote
from server.services.polls import CLOSE_POLL_JOB, POLL_COUNTS_JOB
from tests.e2e.conftest import Instance, Person, settle
from tests.e2e.test_two_instances import follow, ok, post

JSON = dict[str, Any]


async def poll_seen_by(person: Person, status_uri: str) -> JSON:
    """The poll of the status at ``status_uri`` as ``person``'s home timeline shows it."""
    rows = await ok(await person.api.get("/api/v1/timelines/home"))
    found = [row for row in rows if row["uri"] == status_uri]
    assert found, f"{status_uri} not in {person.handle}'s home"
    poll: JSON = found[0]["poll"]
    assert poll is not None
    return poll


async def counts_due(instance: Instance) -> None:
    """The batched counts ``Update`` of ``instance``'s polls is due now, not in 3 minutes."""
    async with instance.db.session() as session:
        await session.execute(update(Job).where(Job.kind == POLL_COUNTS_JOB, Job.state == "queued")
                              .values(next_try_at=utcnow() - timedelta(seconds=1)))
        await session.commit()


async def end_now(instance: Instance) -> None:
    """Every poll of ``instance`` ends now; its closing jobs are due."""
    past = utcnow() - timedelta(seconds=1)
    async with instance.db.session() as session:
        await session.execute(update(Poll).values(expires_at=past))
        await session.execute(update(Job).where(Job.kind == CLOSE_POLL_JOB).values(next_try_at=past))
        await session.commit()


async def test_a_vote_from_another_instance_counts_on_both_and_the_end_reaches_every_voter(
    art: Instance, paint: Instance
) -> None:
    alice = await art.person("alice")
    carol = await art.person("carol")
    bob = await paint.person("bob")
    await follow(bob, alice, art, paint)

    status = await post(alice, status="Which medium next?",
                        poll={"options": ["oil", "ink", "clay"], "expires_in": 3600})
    await settle(art, paint)
    seen = await poll_seen_by(bob, status["uri"])
    assert [o["title"] for o in seen["options"]] == ["oil", "ink", "clay"]
    assert (seen["multiple"], seen["expired"], seen["voted"]) == (False, False, False)
    assert seen["expires_at"][:19] == status["poll"]["expires_at"][:19]  # the wire has seconds

    voted = await ok(await bob.api.post(f"/api/v1/polls/{seen['id']}/votes",
                                        json={"choices": [1]}))
    assert (voted["voted"], voted["own_votes"], voted["votes_count"]) == (True, [1], 1)
    await settle(art, paint)
    at_art = await ok(await alice.api.get(f"/api/v1/polls/{status['poll']['id']}"))
    assert [o["votes_count"] for o in at_art["options"]] == [0, 1, 0]
    assert (at_art["votes_count"], at_art["voters_count"]) == (1, 1)
    # bob's vote again (a redelivery) is not counted twice, nor is a second vote.
    again = await bob.api.post(f"/api/v1/polls/{seen['id']}/votes", json={"choices": [0]})
    assert again.status_code == 422

    await ok(await carol.api.post(f"/api/v1/polls/{status['poll']['id']}/votes",
                                  json={"choices": [0]}))
    await settle(art, paint)
    assert [o["votes_count"] for o in (await poll_seen_by(bob, status["uri"]))["options"]] \
        == [0, 1, 0]  # art batches its counts' Update (Mastodon: 3 minutes): not sent yet
    await counts_due(art)
    await settle(art, paint)
    seen = await poll_seen_by(bob, status["uri"])
    assert [o["votes_count"] for o in seen["options"]] == [1, 1, 0]
    assert (seen["votes_count"], seen["voters_count"], seen["own_votes"]) == (2, 2, [1])
    async with art.db.session() as session:
        assert len(list(await session.scalars(PollVote.__table__.select()))) == 2

    await end_now(art)
    await settle(art, paint)
    ended = await poll_seen_by(bob, status["uri"])
    assert ended["expired"] is True
    await end_now(paint)  # paint learnt the end from art's Update; its own job is due too
    await settle(art, paint)
    for person in (alice, carol, bob):
        kinds = [(n["type"], n["status"]["uri"]) for n in
                 await ok(await person.api.get("/api/v1/notifications",
                                               params={"types[]": "poll"}))]
        assert kinds == [("poll", status["uri"])], (person.handle, kinds)
    late = await bob.api.post(f"/api/v1/polls/{seen['id']}/votes", json={"choices": [2]})
    assert late.json() == {"error": "Validation failed: The poll has already ended"}
