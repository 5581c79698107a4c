"""A scheduled public post federates when it is posted, not before: alice on art.example
schedules it, bob on paint.example follows her and sees nothing until art.example's job
runs at the scheduled time (a runner whose clock is set ahead), then finds it in his home
timeline with its image, hashtag and the app it came from."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from server.ids import utcnow
from server.queue.kinds import QUEUES, kind_named
from server.queue.runner import JobRunner
from server.services.scheduled import PUBLISH_JOB
from tests.e2e.conftest import Instance, Person, settle
from tests.e2e.test_two_instances import follow, home, ok, resolve_account
from tests.protect import images
from tests.protect.conftest import upload


async def publish_due_at(instance: Instance, moment: datetime) -> int:
    """Run ``instance``'s scheduled-status jobs due at ``moment``, as its worker would then."""
    state = instance.app.state.easel
    runner = JobRunner(state.db, state.settings, clock=lambda: moment,
                       kinds={PUBLISH_JOB: kind_named(PUBLISH_JOB)})
    ran: int = await runner.run_due(QUEUES)
    return ran


async def test_a_scheduled_public_post_reaches_followers_when_it_is_posted(
    art: Instance, paint: Instance,
) -> None:
    alice: Person = await art.person("alice")
    bob: Person = await paint.person("bob")
    await follow(bob, alice, art, paint)
    uploaded = await ok(await upload(alice.api, images.jpeg((64, 48)), fields={
        "description": "A harbour at dawn"}), 202)
    await settle(art, paint)  # its protection

    at = utcnow() + timedelta(hours=3)
    scheduled: dict[str, Any] = await ok(await alice.api.post("/api/v1/statuses", json={
        "status": "Harbour at dawn #seascape", "visibility": "public",
        "media_ids": [uploaded["id"]], "scheduled_at": at.isoformat()}))
    assert scheduled["media_attachments"][0]["id"] == uploaded["id"]
    await settle(art, paint)
    assert await home(bob) == []
    assert (await resolve_account(bob, alice.handle))["statuses_count"] == 0

    assert await publish_due_at(art, at + timedelta(seconds=1)) == 1
    await settle(art, paint)
    [seen] = await home(bob)
    assert seen["account"]["acct"] == "alice@art.example"
    assert "Harbour at dawn" in seen["content"]
    assert [t["name"] for t in seen["tags"]] == ["seascape"]
    [image] = seen["media_attachments"]
    assert image["description"] == "A harbour at dawn" and image["url"]
    assert (await ok(await alice.api.get("/api/v1/scheduled_statuses"))) == []
