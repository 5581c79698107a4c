"""Scheduled statuses through the client API: scheduling with ``scheduled_at`` (Mastodon's
entity and validation texts, limits, idempotency), listing, moving and cancelling, media
reserved meanwhile, and the job posting them at their time — driven by a job runner
whose clock is set ahead, never by waiting. Mastodon.py schedules and lists too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from mastodon import Mastodon, MastodonAPIError
from sqlalchemy import func, select
from starlette.applications import Starlette

from server.db import Database
from server.ids import utcnow
from server.models import (
    Job,
    JobState,
    MediaAttachment,
    Poll,
    ScheduledStatus,
    ScheduledStatusMedia,
    Status,
    User,
)
from server.queue.kinds import QUEUES, kind_named
from server.queue.runner import JobRunner
from server.services.scheduled import DAILY_LIMIT, PUBLISH_JOB, TOTAL_LIMIT
from server.settings import Settings
from tests.conftest import make_token
from tests.server.api.live import LiveServer, live_server

TOO_SOON = "Validation failed: Scheduled at The scheduled date must be in the future"
NOT_A_DATE = "Validation failed: Scheduled at is not a valid date"


def later(minutes: float = 60) -> datetime:
    """That many minutes from now, to the millisecond (what the API keeps)."""
    moment = utcnow() + timedelta(minutes=minutes)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def schedule(api: httpx.AsyncClient, at: datetime, **data: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/statuses", json={"scheduled_at": stamp(at), **data})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def run_jobs_at(app: Starlette, moment: datetime) -> int:
    """Run the publication jobs due at ``moment`` as a worker would then (the clock seam:
    no waiting); the jobs they make are the app's to run, now."""
    state = app.state.easel
    runner = JobRunner(state.db, state.settings, clock=lambda: moment,
                       kinds={PUBLISH_JOB: kind_named(PUBLISH_JOB)})
    ran: int = await runner.run_due(QUEUES)
    return ran


async def media(db: Database, owner: User) -> int:
    async with db.session() as session:
        item = MediaAttachment(account_id=owner.account.id, state="ready",
                               file_key="media/aa/bb/file.webp", thumb_key="media/aa/bb/thumb.webp",
                               small_key="media/aa/bb/small.webp")
        session.add(item)
        await session.commit()
        return item.id


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def statuses_of(api: httpx.AsyncClient, user: User) -> list[dict[str, Any]]:
    response = await api.get(f"/api/v1/accounts/{user.account_id}/statuses")
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


# ------------------------------------------------------------------ schedule and publish

async def test_a_scheduled_status_waits_then_is_posted_once_at_its_time(
    app: Starlette, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User,
    db: Database,
) -> None:
    at = later(60)
    entity = await schedule(alice_api, at, status="Opening at dawn #gallery",
                            visibility="unlisted", spoiler_text="news", language="en")
    assert entity["scheduled_at"] == stamp(at)
    assert entity["media_attachments"] == []
    params = entity["params"]
    assert params["text"] == "Opening at dawn #gallery"
    assert (params["visibility"], params["spoiler_text"], params["language"]) == ("unlisted", "news", "en")
    assert (params["poll"], params["media_ids"], params["in_reply_to_id"], params["scheduled_at"]) \
        == (None, None, None, None)
    assert params["application_id"] is not None
    assert "id" not in entity["params"] and "content" not in entity  # not a Status

    # Nothing is posted meanwhile, and only its author sees it.
    assert await statuses_of(alice_api, alice) == []
    listed = (await alice_api.get("/api/v1/scheduled_statuses")).json()
    assert [s["id"] for s in listed] == [entity["id"]]
    shown = await alice_api.get(f"/api/v1/scheduled_statuses/{entity['id']}")
    assert shown.status_code == 200 and shown.json() == entity
    assert (await bob_api.get(f"/api/v1/scheduled_statuses/{entity['id']}")).status_code == 404
    assert (await bob_api.get("/api/v1/scheduled_statuses")).json() == []

    await run_jobs_at(app, at - timedelta(minutes=1))
    assert await statuses_of(alice_api, alice) == []

    await run_jobs_at(app, at + timedelta(seconds=1))
    posted = await statuses_of(alice_api, alice)
    assert len(posted) == 1
    status = posted[0]
    assert (status["content"].startswith("<p>Opening at dawn"), status["visibility"],
            status["spoiler_text"], status["language"]) == (True, "unlisted", "news", "en")
    assert status["application"]["name"]
    assert [t["name"] for t in status["tags"]] == ["gallery"]
    assert (await alice_api.get("/api/v1/scheduled_statuses")).json() == []
    assert (await alice_api.get(f"/api/v1/scheduled_statuses/{entity['id']}")).status_code == 404

    # Running the job again (a worker that died after posting) posts nothing more.
    async with db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == PUBLISH_JOB))
        assert job is not None and job.state == JobState.DONE
        job.state, job.next_try_at = JobState.QUEUED, utcnow()
        await session.commit()
    await run_jobs_at(app, at + timedelta(minutes=5))
    assert len(await statuses_of(alice_api, alice)) == 1
    me = (await alice_api.get("/api/v1/accounts/verify_credentials")).json()
    assert me["statuses_count"] == 1


async def test_scheduled_media_are_reserved_and_posted_with_the_status(
    app: Starlette, alice_api: httpx.AsyncClient, alice: User, db: Database,
) -> None:
    first, second = await media(db, alice), await media(db, alice)
    at = later(30)
    entity = await schedule(alice_api, at, status="Two studies", media_ids=[str(second), str(first)],
                            easel={"title": "Studies", "medium": ["Oil"]})
    assert entity["params"]["media_ids"] == [str(second), str(first)]
    assert [m["id"] for m in entity["media_attachments"]] == [str(second), str(first)]
    assert entity["params"]["easel"]["title"] == "Studies"

    # Reserved: neither a post nor another schedule may take them meanwhile.
    taken = await alice_api.post("/api/v1/statuses", json={"status": "mine", "media_ids": [str(first)]})
    assert taken.status_code == 422 and "already attached" in taken.json()["error"]
    again = await alice_api.post("/api/v1/statuses", json={
        "status": "mine", "media_ids": [str(second)], "scheduled_at": stamp(later(90))})
    assert again.status_code == 422 and "already attached" in again.json()["error"]
    assert await count(db, ScheduledStatus) == 1

    await run_jobs_at(app, at + timedelta(seconds=1))
    [status] = await statuses_of(alice_api, alice)
    assert sorted(m["id"] for m in status["media_attachments"]) == sorted([str(second), str(first)])
    assert status["easel"]["title"] == "Studies"
    assert [t["name"] for t in status["easel"]["tags"]["medium"]] == ["Oil"]
    assert await count(db, ScheduledStatusMedia) == 0


async def test_cancelling_frees_the_media_and_removes_the_job(
    app: Starlette, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User,
    db: Database,
) -> None:
    medium = await media(db, alice)
    at = later(30)
    entity = await schedule(alice_api, at, status="Maybe", media_ids=[str(medium)])
    path = f"/api/v1/scheduled_statuses/{entity['id']}"
    assert (await bob_api.delete(path)).status_code == 404
    deleted = await alice_api.delete(path)
    assert deleted.status_code == 200 and deleted.json() == {}
    assert (await alice_api.delete(path)).status_code == 404
    assert await count(db, Job, Job.kind == PUBLISH_JOB) == 0
    await run_jobs_at(app, at + timedelta(seconds=1))
    assert await statuses_of(alice_api, alice) == []
    posted = await alice_api.post("/api/v1/statuses", json={"status": "now", "media_ids": [str(medium)]})
    assert posted.status_code == 200 and len(posted.json()["media_attachments"]) == 1


async def test_moving_a_scheduled_status_posts_it_at_the_new_time_only(
    app: Starlette, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User,
) -> None:
    first = later(20)
    entity = await schedule(alice_api, first, status="moved")
    path = f"/api/v1/scheduled_statuses/{entity['id']}"
    moved_to = later(24 * 60)
    moved = await alice_api.put(path, data={"scheduled_at": stamp(moved_to)})
    assert moved.status_code == 200 and moved.json()["scheduled_at"] == stamp(moved_to)
    assert (await bob_api.put(path, data={"scheduled_at": stamp(later(60))})).status_code == 404
    # No time given: nothing changes.
    unchanged = await alice_api.put(path, json={})
    assert unchanged.status_code == 200 and unchanged.json()["scheduled_at"] == stamp(moved_to)

    await run_jobs_at(app, first + timedelta(minutes=1))
    assert await statuses_of(alice_api, alice) == []
    await run_jobs_at(app, moved_to + timedelta(seconds=1))
    assert [s["content"] for s in await statuses_of(alice_api, alice)] == ["<p>moved</p>"]


async def test_a_time_already_past_posts_at_once(alice_api: httpx.AsyncClient, db: Database) -> None:
    response = await alice_api.post("/api/v1/statuses", data={
        "status": "right now", "scheduled_at": stamp(utcnow() - timedelta(minutes=1))})
    assert response.status_code == 200
    assert response.json()["content"] == "<p>right now</p>"
    assert await count(db, ScheduledStatus) == 0


async def test_the_idempotency_key_schedules_once(alice_api: httpx.AsyncClient, db: Database) -> None:
    at = later(45)
    headers = {"Idempotency-Key": "k-1"}
    body = {"status": "once", "scheduled_at": stamp(at)}
    first = await alice_api.post("/api/v1/statuses", json=body, headers=headers)
    second = await alice_api.post("/api/v1/statuses", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert await count(db, ScheduledStatus) == 1


async def test_a_scheduled_poll_is_created_when_posted(
    app: Starlette, alice_api: httpx.AsyncClient, alice: User, db: Database,
) -> None:
    at = later(10)
    entity = await schedule(alice_api, at, status="Which?", poll={
        "options": ["Ink", "Oil"], "expires_in": 3600, "multiple": True})
    assert entity["params"]["poll"] == {"options": ["Ink", "Oil"], "expires_in": 3600,
                                        "multiple": True, "hide_totals": False}
    assert await count(db, Poll) == 0
    await run_jobs_at(app, at + timedelta(seconds=1))
    [status] = await statuses_of(alice_api, alice)
    poll = status["poll"]
    assert [o["title"] for o in poll["options"]] == ["Ink", "Oil"] and poll["multiple"] is True
    # Its hour starts when it is posted, not when it was scheduled.
    expires = datetime.fromisoformat(poll["expires_at"].replace("Z", "+00:00"))
    assert expires > at + timedelta(minutes=50)


async def test_a_reply_whose_parent_was_deleted_meanwhile_is_dropped(
    app: Starlette, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User,
    db: Database,
) -> None:
    parent = (await bob_api.post("/api/v1/statuses", data={"status": "a question"})).json()
    at = later(10)
    await schedule(alice_api, at, status="an answer", in_reply_to_id=parent["id"])
    assert (await bob_api.delete(f"/api/v1/statuses/{parent['id']}")).status_code == 200
    await run_jobs_at(app, at + timedelta(seconds=1))
    assert await statuses_of(alice_api, alice) == []
    assert await count(db, ScheduledStatus) == 0
    async with db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == PUBLISH_JOB))
        assert job is not None and job.state == JobState.DONE


async def test_the_list_is_paginated_with_links(alice_api: httpx.AsyncClient) -> None:
    ids = [(await schedule(alice_api, later(10 + n), status=f"n{n}"))["id"] for n in range(3)]
    page = await alice_api.get("/api/v1/scheduled_statuses", params={"limit": "2"})
    assert [s["id"] for s in page.json()] == [ids[2], ids[1]]
    assert 'rel="next"' in page.headers["link"]
    rest = await alice_api.get("/api/v1/scheduled_statuses", params={"max_id": ids[1]})
    assert [s["id"] for s in rest.json()] == [ids[0]]
    newer = await alice_api.get("/api/v1/scheduled_statuses", params={"min_id": ids[0], "limit": "1"})
    assert [s["id"] for s in newer.json()] == [ids[1]]


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize(("body", "status", "error"), [
    ({"status": "soon", "scheduled_at": "SOON"}, 422, TOO_SOON),
    ({"status": "x", "scheduled_at": "next tuesday"}, 422,
     NOT_A_DATE),
    ({"status": "x", "scheduled_at": {"at": "2030-01-01T00:00:00Z"}}, 422,
     NOT_A_DATE),
    ({"status": "x", "scheduled_at": "2030-02-30T00:00:00Z"}, 422,
     NOT_A_DATE),
    ({"status": "", "scheduled_at": "LATER"}, 422, "Validation failed: Text can't be blank"),
    ({"status": "x" * 501, "scheduled_at": "LATER"}, 422,
     "Validation failed: Text character limit of 500 exceeded"),
    ({"status": "x", "visibility": "everyone", "scheduled_at": "LATER"}, 422,
     "Validation failed: Visibility is not included in the list"),
    ({"status": "x", "media_ids": ["123456"], "scheduled_at": "LATER"}, 422, None),
    ({"status": "x", "in_reply_to_id": "123456", "scheduled_at": "LATER"}, 404, "Record not found"),
    ({"status": "x", "poll": {"options": ["only one"], "expires_in": 3600}, "scheduled_at": "LATER"},
     422, "Validation failed: Poll options must have more than one item"),
    ({"status": "x", "easel": {"title": "A work without images"}, "scheduled_at": "LATER"}, 422,
     "Validation failed: A work needs at least one image"),
])
async def test_bad_schedules_are_refused_and_write_nothing(
    alice_api: httpx.AsyncClient, db: Database, body: dict[str, Any], status: int, error: str | None,
) -> None:
    values = {"SOON": stamp(later(4)), "LATER": stamp(later(60))}
    body = {k: values.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    response = await alice_api.post("/api/v1/statuses", json=body)
    assert response.status_code == status, response.text
    assert "error" in response.json()
    if error is not None:
        assert response.json()["error"] == error
    assert await count(db, ScheduledStatus) == 0
    assert await count(db, Job, Job.kind == PUBLISH_JOB) == 0
    assert await count(db, Status) == 0


async def test_bad_moves_are_refused_and_change_nothing(
    alice_api: httpx.AsyncClient, db: Database,
) -> None:
    at = later(60)
    entity = await schedule(alice_api, at, status="stay")
    path = f"/api/v1/scheduled_statuses/{entity['id']}"
    for body, error in (({"scheduled_at": stamp(later(2))}, TOO_SOON),
                        ({"scheduled_at": stamp(utcnow() - timedelta(days=1))}, TOO_SOON),
                        ({"scheduled_at": "tomorrow-ish"}, NOT_A_DATE),
                        ({"scheduled_at": ""}, "Validation failed: Scheduled at can't be blank")):
        response = await alice_api.put(path, json=body)
        assert (response.status_code, response.json()) == (422, {"error": error}), body
    assert (await alice_api.get(path)).json()["scheduled_at"] == stamp(at)
    async with db.session() as session:
        jobs = list(await session.scalars(select(Job).where(Job.kind == PUBLISH_JOB)))
    assert [job.next_try_at for job in jobs] == [at]
    for odd in ("nope", "99999999999999999999", "-1"):
        assert (await alice_api.get(f"/api/v1/scheduled_statuses/{odd}")).status_code == 404
        assert (await alice_api.put(f"/api/v1/scheduled_statuses/{odd}",
                                    json={"scheduled_at": stamp(later(60))})).status_code == 404
        assert (await alice_api.delete(f"/api/v1/scheduled_statuses/{odd}")).status_code == 404


async def test_mastodons_limits_per_day_and_in_all(
    alice_api: httpx.AsyncClient, alice: User, db: Database,
) -> None:
    day = (utcnow() + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    async with db.session() as session:
        session.add_all(ScheduledStatus(account_id=alice.account_id, params={"text": "x"},
                                        scheduled_at=day + timedelta(minutes=n))
                        for n in range(DAILY_LIMIT))
        await session.commit()
    full = await alice_api.post("/api/v1/statuses", json={
        "status": "one more", "scheduled_at": stamp(day + timedelta(hours=5))})
    assert full.status_code == 422
    assert full.json() == {"error": f"Validation failed: You have exceeded the limit of "
                                    f"{DAILY_LIMIT} scheduled posts for today"}
    # The next day is fine, and so is moving one within the full day.
    await schedule(alice_api, day + timedelta(days=1), status="the day after")
    listed = (await alice_api.get("/api/v1/scheduled_statuses", params={"limit": "40"})).json()
    same_day = next(s for s in listed if s["scheduled_at"].startswith(day.strftime("%Y-%m-%d")))
    moved = await alice_api.put(f"/api/v1/scheduled_statuses/{same_day['id']}",
                                json={"scheduled_at": stamp(day + timedelta(hours=8))})
    assert moved.status_code == 200, moved.text

    async with db.session() as session:
        session.add_all(ScheduledStatus(account_id=alice.account_id, params={"text": "x"},
                                        scheduled_at=day + timedelta(days=2 + n // DAILY_LIMIT))
                        for n in range(TOTAL_LIMIT - DAILY_LIMIT - 1))
        await session.commit()
    over = await alice_api.post("/api/v1/statuses", json={
        "status": "too many", "scheduled_at": stamp(day + timedelta(days=365))})
    assert over.json() == {"error": f"Validation failed: You have exceeded the limit of "
                                    f"{TOTAL_LIMIT} scheduled posts"}
    assert await count(db, ScheduledStatus) == TOTAL_LIMIT


async def test_scopes_and_users(
    client: httpx.AsyncClient, alice_api: httpx.AsyncClient, alice: User, db: Database,
) -> None:
    entity = await schedule(alice_api, later(60), status="scoped")
    path = f"/api/v1/scheduled_statuses/{entity['id']}"
    reader = {"Authorization": f"Bearer {await make_token(db, alice, 'read:statuses')}"}
    assert (await client.get(path, headers=reader)).status_code == 200
    moved = await client.put(path, headers=reader, json={"scheduled_at": stamp(later(90))})
    assert moved.status_code == 403
    assert (await client.delete(path, headers=reader)).status_code == 403
    writer = {"Authorization": f"Bearer {await make_token(db, alice, 'write:statuses')}"}
    assert (await client.get("/api/v1/scheduled_statuses", headers=writer)).status_code == 403
    app_only = {"Authorization": f"Bearer {await make_token(db, None, 'read write')}"}
    assert (await client.get("/api/v1/scheduled_statuses", headers=app_only)).status_code in (401, 403, 422)
    assert (await client.get("/api/v1/scheduled_statuses")).status_code == 401


# ------------------------------------------------------------------------- Mastodon.py

@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings) as live:
        yield live


def test_mastodon_py_schedules_lists_moves_and_cancels(server: LiveServer) -> None:
    app_id, secret = Mastodon.create_app("Easel tests (scheduling)", scopes=["read", "write"],
                                         api_base_url=server.base_url)
    api = Mastodon(client_id=app_id, client_secret=secret, api_base_url=server.base_url,
                   version_check_mode="created", ratelimit_method="throw", request_timeout=30)
    api.create_account("sched", "a long enough password", "sched@example.com", agreement=True,
                       scopes=["read", "write"])
    at = datetime.now(UTC) + timedelta(hours=2)
    scheduled = api.status_post("Later, from Mastodon.py", scheduled_at=at, visibility="private")
    assert scheduled.params.text == "Later, from Mastodon.py"
    assert scheduled.params.visibility == "private"
    assert abs((scheduled.scheduled_at - at).total_seconds()) < 1
    assert [s.id for s in api.scheduled_statuses()] == [scheduled.id]
    assert api.scheduled_status(scheduled.id).params.text == "Later, from Mastodon.py"
    moved = api.scheduled_status_update(scheduled.id, at + timedelta(days=1))
    assert abs((moved.scheduled_at - at - timedelta(days=1)).total_seconds()) < 1
    with pytest.raises(MastodonAPIError) as refused:
        api.scheduled_status_update(scheduled.id, datetime.now(UTC) + timedelta(minutes=1))
    assert "The scheduled date must be in the future" in str(refused.value)
    api.scheduled_status_delete(scheduled.id)
    assert api.scheduled_statuses() == []


async def test_redrafted_media_scheduled_again_are_not_purged(
    app: Starlette, alice_api: httpx.AsyncClient, alice: User, db: Database,
) -> None:
    medium = await media(db, alice)
    posted = await alice_api.post("/api/v1/statuses", json={"status": "v1", "media_ids": [str(medium)]})
    assert (await alice_api.delete(f"/api/v1/statuses/{posted.json()['id']}")).status_code == 200
    at = later(3 * 24 * 60)  # after the day a deleted status's media are kept for
    await schedule(alice_api, at, status="v2", media_ids=[str(medium)])

    state = app.state.easel
    purge = "purge_detached_media"
    runner = JobRunner(state.db, state.settings, clock=lambda: utcnow() + timedelta(days=2),
                       kinds={purge: kind_named(purge)})
    assert await runner.run_due(QUEUES) == 1
    assert await count(db, MediaAttachment, MediaAttachment.id == medium) == 1

    await run_jobs_at(app, at + timedelta(seconds=1))
    [status] = await statuses_of(alice_api, alice)
    assert [m["id"] for m in status["media_attachments"]] == [str(medium)]


async def test_a_status_moved_away_and_back_is_still_posted(
    app: Starlette, alice_api: httpx.AsyncClient, alice: User, db: Database,
) -> None:
    first, second = later(30), later(90)
    entity = await schedule(alice_api, first, status="back again")
    path = f"/api/v1/scheduled_statuses/{entity['id']}"
    # Its job was running (and so found nothing to do) while it was moved away.
    async with db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == PUBLISH_JOB))
        assert job is not None
        job.state = JobState.RUNNING
        await session.commit()
    assert (await alice_api.put(path, json={"scheduled_at": stamp(second)})).status_code == 200
    async with db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == PUBLISH_JOB, Job.ref.endswith(
            str((first - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)))))
        assert job is not None
        job.state = JobState.DONE
        await session.commit()
    assert (await alice_api.put(path, json={"scheduled_at": stamp(first)})).status_code == 200
    await run_jobs_at(app, first + timedelta(seconds=1))
    assert [s["content"] for s in await statuses_of(alice_api, alice)] == ["<p>back again</p>"]
    await run_jobs_at(app, second + timedelta(seconds=1))
    assert len(await statuses_of(alice_api, alice)) == 1
