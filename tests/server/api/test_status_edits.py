"""Editing statuses through the client API (``PUT /api/v1/statuses/:id``), their history
(``/history``) and source (``/source``), as Mastodon does: versions kept from the original
on, an edit that changes nothing records nothing, boosters told with an "update"
notification, the change federated as an ``Update``; bad input refused with nothing
written. Mastodon.py's ``status_update``/``status_history``/``status_source`` at the end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from mastodon import Mastodon, MastodonAPIError, MastodonNotFoundError
from sqlalchemy import func, select

from server.db import Database
from server.models import (
    Activity,
    Job,
    MediaAttachment,
    Notification,
    Status,
    StatusEdit,
    User,
    Work,
)
from server.services import edits
from server.services.statuses import PURGE_DETACHED_JOB, publish_if_ready
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.protect import images
from tests.server.api.live import LiveServer, live_server


async def post(api: httpx.AsyncClient, **data: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/statuses", json=data)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def edit(api: httpx.AsyncClient, status_id: str, **data: Any) -> dict[str, Any]:
    response = await api.put(f"/api/v1/statuses/{status_id}", json=data)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def history(api: httpx.AsyncClient, status_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/api/v1/statuses/{status_id}/history")
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def media(db: Database, owner: User, state: str = "ready", description: str = "") -> int:
    async with db.session() as session:
        item = MediaAttachment(account_id=owner.account.id, state=state, description=description,
                               file_key="media/aa/bb/file.webp" if state == "ready" else None,
                               small_key="media/aa/bb/small.webp" if state == "ready" else None)
        session.add(item)
        await session.commit()
        return item.id


async def count(db: Database, model: type, *where: Any) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def updates_recorded(db: Database) -> int:
    return await count(db, Activity, Activity.type == "Update")


# ------------------------------------------------------------------------- editing

async def test_an_edit_changes_the_status_and_keeps_every_version(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
    db: Database, bob: User
) -> None:
    original = await post(alice_api, status="first draft #one", spoiler_text="cw")
    boost = await bob_api.post(f"/api/v1/statuses/{original['id']}/reblog")
    assert boost.status_code == 200

    edited = await edit(alice_api, original["id"], status="second take @bob #two",
                        spoiler_text="", language="fr")
    assert edited["id"] == original["id"]
    assert "second take" in edited["content"] and edited["spoiler_text"] == ""
    assert edited["sensitive"] is True  # not sent: kept
    assert edited["language"] == "fr" and edited["edited_at"] is not None
    assert [t["name"] for t in edited["tags"]] == ["two"]
    assert [m["username"] for m in edited["mentions"]] == ["bob"]
    assert (await client.get(f"/api/v1/statuses/{original['id']}")).json()["content"] \
        == edited["content"]

    versions = await history(client, original["id"])  # public: no token needed
    assert [("first draft" in v["content"], v["spoiler_text"]) for v in versions] \
        == [(True, "cw"), (False, "")]
    assert versions[0]["created_at"] == original["created_at"]
    assert versions[1]["created_at"] == edited["edited_at"]
    assert versions[1]["account"]["username"] == "alice" and versions[1]["poll"] is None
    assert set(versions[0]) == {"content", "spoiler_text", "sensitive", "created_at", "account",
                                "poll", "media_attachments", "emojis"}

    again = await edit(alice_api, original["id"], status="third take @bob #two")
    assert [v["content"] for v in await history(alice_api, original["id"])][2] == again["content"]
    source = (await alice_api.get(f"/api/v1/statuses/{original['id']}/source")).json()
    assert source == {"id": original["id"], "text": "third take @bob #two", "spoiler_text": ""}

    assert await count(db, StatusEdit) == 3
    assert await updates_recorded(db) == 2
    # Bob boosted it: one "update" notification (the latest edit's), and one mention.
    async with db.session() as session:
        kinds = sorted(await session.scalars(select(Notification.type).where(
            Notification.account_id == bob.account_id)))
    assert kinds == ["mention", "update"]
    notified = (await bob_api.get("/api/v1/notifications", params={"types[]": "update"})).json()
    assert [n["status"]["id"] for n in notified] == [original["id"]]


async def test_an_edit_that_changes_nothing_records_nothing(
    alice_api: httpx.AsyncClient, db: Database
) -> None:
    status = await post(alice_api, status="steady #still")
    same = await edit(alice_api, status["id"], status="steady #still", sensitive=False)
    assert same["edited_at"] is None and same["content"] == status["content"]
    versions = await history(alice_api, status["id"])
    assert len(versions) == 1 and versions[0]["content"] == status["content"]
    assert versions[0]["created_at"] == status["created_at"]
    assert await count(db, StatusEdit) == 0
    assert await updates_recorded(db) == 0


async def test_media_can_be_swapped_described_and_removed(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    first, second = await media(db, alice, description="old alt"), await media(db, alice)
    status = await post(alice_api, status="two images", media_ids=[str(first), str(second)])
    assert [m["id"] for m in status["media_attachments"]] == [str(first), str(second)]

    third = await media(db, alice)
    edited = await edit(alice_api, status["id"], media_ids=[str(first), str(third)],
                        media_attributes=[{"id": str(first), "description": "new alt",
                                           "focus": "0.5,-0.25"}])
    assert [m["id"] for m in edited["media_attachments"]] == [str(first), str(third)]
    described = edited["media_attachments"][0]
    assert described["description"] == "new alt"
    assert described["meta"]["focus"] == {"x": 0.5, "y": -0.25}
    # The removed image is detached and purged later, like a deleted status's.
    async with db.session() as session:
        removed = await session.get(MediaAttachment, second)
        assert removed is not None and removed.status_id is None
        purges = list(await session.scalars(select(Job.ref).where(Job.kind == PURGE_DETACHED_JOB)))
    assert purges == [str(second)]
    versions = await history(alice_api, status["id"])
    assert [[(m["id"], m["description"]) for m in v["media_attachments"]] for v in versions] \
        == [[(str(first), "old alt")], [(str(first), "new alt"), (str(third), None)]]

    # The same as a form, without media_ids: the media stay, described.
    form = await alice_api.put(f"/api/v1/statuses/{status['id']}", data={
        "media_attributes[][id]": str(third), "media_attributes[][description]": "form alt"})
    assert form.status_code == 200, form.text
    assert [m["description"] for m in form.json()["media_attachments"]] == ["new alt", "form alt"]

    # JSON "media_ids": [] removes every attachment (text remains).
    bare = await edit(alice_api, status["id"], media_ids=[])
    assert bare["media_attachments"] == []
    # A form's empty media_ids[] says the same; with no text left it is refused.
    refused = await alice_api.put(f"/api/v1/statuses/{status['id']}",
                                  data={"status": "", "media_ids[]": ""})
    assert refused.status_code == 422
    assert refused.json() == {"error": "Validation failed: Text can't be blank"}


async def test_a_published_status_takes_only_ready_images(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    status = await post(alice_api, status="done")
    waiting = await media(db, alice, state="processing")
    refused = await alice_api.put(f"/api/v1/statuses/{status['id']}",
                                  json={"media_ids": [str(waiting)]})
    assert refused.status_code == 422
    assert refused.json()["error"] == ("Cannot attach files that have not finished processing. "
                                       "Try again in a moment!")
    async with db.session() as session:
        item = await session.get(MediaAttachment, waiting)
        assert item is not None and item.status_id is None


async def test_a_status_waiting_for_its_images_is_edited_in_place_and_published_when_ready(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    waiting, ready = await media(db, alice, state="processing"), await media(db, alice)
    draft = await post(alice_api, status="draft", media_ids=[str(waiting), str(ready)])
    edited = await edit(alice_api, draft["id"], status="better draft")
    assert edited["edited_at"] is None and "better draft" in edited["content"]
    assert await count(db, StatusEdit) == 0 and await updates_recorded(db) == 0
    assert (await bob_api.get(f"/api/v1/statuses/{draft['id']}")).status_code == 404

    # Dropping the image still in the pipeline publishes it (with its published id).
    published = await edit(alice_api, draft["id"], media_ids=[str(ready)])
    assert published["id"] != draft["id"]
    assert (await bob_api.get(f"/api/v1/statuses/{published['id']}")).status_code == 200
    async with db.session() as session:
        assert await publish_if_ready(session, int(published["id"])) is False


async def test_a_works_portfolio_data_is_edited_with_easel_and_goes_with_its_images(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    image = await media(db, alice)
    work = await post(alice_api, status="harbour", media_ids=[str(image)],
                      easel={"title": "Harbour", "medium": ["Oil"]})
    edited = await edit(alice_api, work["id"], status="harbour at dawn",
                        easel={"title": "Harbour at dawn", "medium": ["Ink"]})
    assert edited["easel"]["title"] == "Harbour at dawn"
    assert [t["name"] for t in edited["easel"]["tags"]["medium"]] == ["Ink"]
    assert "#Ink" in edited["content"] or "Ink</span>" in edited["content"]
    # A text edit keeps the work's data.
    kept = await edit(alice_api, work["id"], status="harbour, dawn")
    assert kept["easel"]["title"] == "Harbour at dawn"
    # Without images it is not a work any more.
    plain = await edit(alice_api, work["id"], media_ids=[])
    assert "easel" not in plain
    assert await count(db, Work) == 0


async def test_a_poll_is_added_changed_and_removed_by_edits(
    alice_api: httpx.AsyncClient, db: Database
) -> None:
    status = await post(alice_api, status="which one?")
    await edit(alice_api, status["id"], poll={"options": ["red", "blue"], "expires_in": 3600})
    await edit(alice_api, status["id"], poll={"options": ["red", "green"], "expires_in": 3600})
    response = await alice_api.put(f"/api/v1/statuses/{status['id']}",
                                   content=b'{"poll": null}',
                                   headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    polls = [v["poll"] for v in await history(alice_api, status["id"])]
    assert polls == [None, {"options": [{"title": "red"}, {"title": "blue"}]},
                     {"options": [{"title": "red"}, {"title": "green"}]}, None]


async def test_an_edit_is_the_whole_status_except_its_media(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    """As Mastodon reads an edit (Tusky, Elk, Ivory remove a poll by leaving it out): an
    omitted poll is removed and an omitted content warning cleared; the images stay
    unless ``media_ids`` says otherwise, and an omitted ``sensitive`` stays raised."""
    status = await post(alice_api, status="which one?", spoiler_text="spoilers",
                        poll={"options": ["red", "blue"], "expires_in": 3600})
    voted = await bob_api.post(f"/api/v1/polls/{status['poll']['id']}/votes",
                               json={"choices": ["0"]})
    assert voted.status_code == 200, voted.text
    # The app sends the poll back unchanged: it stays, with its vote.
    kept = await edit(alice_api, status["id"], status="which one, really?",
                      spoiler_text="spoilers", sensitive=True,
                      poll={"options": ["red", "blue"], "expires_in": 3600}, media_ids=[])
    assert kept["poll"] is not None and kept["poll"]["votes_count"] == 1
    # The user removed the poll and the warning in the app: neither is sent.
    plain = await edit(alice_api, status["id"], status="which one, really?", media_ids=[])
    assert plain["poll"] is None and plain["spoiler_text"] == ""
    assert plain["sensitive"] is True
    versions = await history(alice_api, status["id"])
    assert [(v["spoiler_text"], v["poll"] is not None) for v in versions] \
        == [("spoilers", True), ("spoilers", True), ("", False)]

    image = await media(db, alice)
    work = await post(alice_api, status="a study", media_ids=[str(image)])
    texted = await edit(alice_api, work["id"], status="a study in blue")
    assert [m["id"] for m in texted["media_attachments"]] == [str(image)]


# --------------------------------------------------------------------- bad input

async def test_bad_edits_are_refused_and_write_nothing(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
    db: Database, alice: User, bob: User
) -> None:
    status = await post(alice_api, status="mine")
    path = f"/api/v1/statuses/{status['id']}"
    boost = (await alice_api.post(f"{path}/reblog")).json()
    bobs_media = await media(db, bob)
    mine = [str(await media(db, alice)) for _ in range(5)]
    image_status = await post(alice_api, status="pictured", media_ids=mine[:1])

    refusals: list[tuple[httpx.AsyncClient, str, dict[str, Any], int, str | None]] = [
        (bob_api, path, {"status": "hijack"}, 404, "Record not found"),
        (alice_api, "/api/v1/statuses/123456789", {"status": "x"}, 404, "Record not found"),
        (alice_api, "/api/v1/statuses/abc", {"status": "x"}, 404, "Record not found"),
        (alice_api, f"/api/v1/statuses/{boost['id']}", {"status": "x"}, 404, "Record not found"),
        (alice_api, path, {"status": "   "}, 422, "Validation failed: Text can't be blank"),
        (alice_api, path, {"status": "x" * 501}, 422,
         "Validation failed: Text character limit of 500 exceeded"),
        (alice_api, path, {"language": "klingon"}, 422,
         "Validation failed: Language is not a valid language code"),
        (alice_api, path, {"media_ids": ["abc"]}, 422,
         "Validation failed: media_ids must contain ids"),
        (alice_api, path, {"media_ids": [str(bobs_media)]}, 422,
         f"Media {bobs_media} not found or already attached to another post"),
        (alice_api, path, {"media_ids": mine}, 422, "Cannot attach more than 4 files"),
        (alice_api, path, {"media_ids": mine[1:2],
                           "media_attributes": [{"id": mine[1], "focus": "2,0"}]}, 422,
         "Validation failed: Focus must be between -1.0 and 1.0 on each axis"),
        (alice_api, path, {"media_ids": mine[1:2],
                           "media_attributes": [{"id": mine[1], "description": "d" * 1501}]},
         422, "Validation failed: Description is too long (maximum is 1500 characters)"),
        (alice_api, path, {"media_attributes": [{"description": "no id"}]}, 422,
         "Validation failed: media_attributes must name media ids"),
        (alice_api, path, {"easel": {"title": "not a work"}}, 422,
         "Validation failed: A work needs at least one image"),
        (alice_api, path, {"easel": "flat"}, 422, "Validation failed: easel must be an object"),
        (alice_api, path, {"sensitive": "maybe"}, 422,
         "Validation failed: sensitive must be true or false"),
        (alice_api, f"/api/v1/statuses/{image_status['id']}",
         {"poll": {"options": ["a", "b"], "expires_in": 3600}}, 422,
         "Cannot attach more than 4 files"),
        (alice_api, path, {"poll": {"options": ["only one"], "expires_in": 3600}}, 422, None),
        (alice_api, path, {"poll": "yes"}, 422, "Validation failed: poll must be an object"),
        (client, path, {"status": "anonymous"}, 401, None),
    ]
    for api, target, body, code, error in refusals:
        response = await api.put(target, json=body)
        assert response.status_code == code, (body, response.text)
        assert "error" in response.json()
        if error is not None:
            assert response.json()["error"] == error, body
    malformed = await alice_api.put(path, content=b"{", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    read_only = authorized(client, await make_token(db, alice, "read"))
    forbidden = await read_only.put(path, json={"status": "x"})
    assert forbidden.status_code == 403

    assert await count(db, StatusEdit) == 0
    assert await updates_recorded(db) == 0
    async with db.session() as session:
        edited = await session.scalar(select(func.count()).select_from(Status).where(
            Status.edited_at.is_not(None)))
        attached = await session.scalar(select(func.count()).select_from(MediaAttachment).where(
            MediaAttachment.status_id.is_not(None)))
    assert edited == 0 and attached == 1
    assert (await alice_api.get(path)).json()["content"] == status["content"]


async def test_history_is_shown_to_those_who_may_see_the_status(
    alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
    db: Database
) -> None:
    private = await post(alice_api, status="followers only", visibility="private")
    await edit(alice_api, private["id"], status="followers only, edited")
    assert len(await history(alice_api, private["id"])) == 2
    for api in (bob_api, client):
        response = await api.get(f"/api/v1/statuses/{private['id']}/history")
        assert response.status_code == 404 and response.json() == {"error": "Record not found"}
    assert (await client.get("/api/v1/statuses/abc/history")).status_code == 404


# ------------------------------------------------------------------------ Mastodon.py

@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings) as live:
        yield live


def test_mastodon_py_edits_reads_the_history_and_the_source(server: LiveServer) -> None:
    app = Mastodon.create_app("edits", scopes=["read", "write"], api_base_url=server.base_url)
    api = Mastodon(client_id=app[0], client_secret=app[1], api_base_url=server.base_url,
                   version_check_mode="created", ratelimit_method="throw", request_timeout=30)
    api.create_account("alice", "a long enough password", "alice@example.com", agreement=True,
                       scopes=["read", "write"])
    picture = api.media_post(images.png(), mime_type="image/png", file_name="a.png")
    assert server.run_protect() >= 1

    status = api.status_post("a first version #art", media_ids=[picture])
    edited = api.status_update(status, "a second version #art", spoiler_text="careful",
                               media_attributes=[api.generate_media_edit_attributes(
                                   picture, description="A green square", focus=(0.1, 0.2))])
    assert edited.edited_at is not None and edited.spoiler_text == "careful"
    assert edited.media_attachments[0].description == "A green square"
    versions = api.status_history(status)
    assert ["first" in v.content for v in versions] == [True, False]
    assert [v.media_attachments[0].description for v in versions] == [None, "A green square"]
    source = api.status_source(status)
    assert (source.text, source.spoiler_text) == ("a second version #art", "careful")
    with pytest.raises(MastodonAPIError):
        api.status_update(status, "x" * 501)
    with pytest.raises(MastodonNotFoundError):
        api.status_history("123")


# ------------------------------------------------------------------- review fixes

async def test_a_new_focal_point_or_alt_text_alone_is_an_edit(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    image = await media(db, alice, description="alt")
    status = await post(alice_api, status="framed", media_ids=[str(image)])
    focused = await edit(alice_api, status["id"],
                         media_attributes=[{"id": str(image), "focus": "0.5,0.5"}])
    assert focused["edited_at"] is not None
    assert focused["media_attachments"][0]["meta"]["focus"] == {"x": 0.5, "y": 0.5}
    # As a form, as Mastodon.py sends it.
    described = await alice_api.put(f"/api/v1/statuses/{status['id']}", data={
        "media_attributes[][id]": str(image), "media_attributes[][description]": "better"})
    assert described.status_code == 200, described.text
    assert described.json()["edited_at"] > focused["edited_at"]
    versions = await history(alice_api, status["id"])
    assert [[m["description"] for m in v["media_attachments"]] for v in versions] \
        == [["alt"], ["alt"], ["better"]]
    assert await count(db, StatusEdit) == 3 and await updates_recorded(db) == 2
    # The same focal point again changes nothing.
    await edit(alice_api, status["id"], media_attributes=[{"id": str(image), "focus": "0.5,0.5"}])
    assert await count(db, StatusEdit) == 3 and await updates_recorded(db) == 2


async def test_form_media_attributes_pair_as_rails_reads_them(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    first, second = await media(db, alice), await media(db, alice)
    status = await post(alice_api, status="pair", media_ids=[str(first), str(second)])
    response = await alice_api.put(f"/api/v1/statuses/{status['id']}", content=(
        f"media_attributes[][id]={first}&media_attributes[][focus]=0.5,0.5"
        f"&media_attributes[][id]={second}&media_attributes[][description]=x"),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text
    shown = {m["id"]: m for m in response.json()["media_attachments"]}
    assert shown[str(first)]["description"] is None
    assert shown[str(first)]["meta"]["focus"] == {"x": 0.5, "y": 0.5}
    assert shown[str(second)]["description"] == "x"


async def test_media_reserved_by_a_scheduled_status_cannot_be_attached_by_an_edit(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    reserved = await media(db, alice)
    soon = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    scheduled = await alice_api.post("/api/v1/statuses", json={
        "status": "later", "media_ids": [str(reserved)], "scheduled_at": soon})
    assert scheduled.status_code == 200, scheduled.text
    status = await post(alice_api, status="now")
    refused = await alice_api.put(f"/api/v1/statuses/{status['id']}",
                                  json={"media_ids": [str(reserved)]})
    assert refused.status_code == 422
    assert refused.json() == {
        "error": f"Media {reserved} not found or already attached to another post"}
    async with db.session() as session:
        item = await session.get(MediaAttachment, reserved)
        assert item is not None and item.status_id is None
    assert await count(db, StatusEdit) == 0


async def test_a_change_of_portfolio_data_alone_is_federated_without_a_version(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    image = await media(db, alice)
    work = await post(alice_api, status="harbour", media_ids=[str(image)],
                      easel={"title": "Harbour"})
    renamed = await edit(alice_api, work["id"], easel={"title": "Harbour at dawn"})
    assert renamed["easel"]["title"] == "Harbour at dawn"
    assert renamed["edited_at"] is None  # not part of Mastodon's versions
    assert len(await history(alice_api, work["id"])) == 1
    assert await count(db, StatusEdit) == 0
    assert await updates_recorded(db) == 1  # other servers still learn the new data


async def test_a_status_published_while_its_edit_starts_is_not_found_not_an_error(
    alice_api: httpx.AsyncClient, db: Database, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = await media(db, alice, state="processing")
    draft = await post(alice_api, status="draft", media_ids=[str(waiting)])
    read_own = edits.own_status

    async def published_meanwhile(session: Any, account: Any, status_id: int) -> Status:
        status = await read_own(session, account, status_id)
        if status.id == int(draft["id"]):  # the pipeline finishes now: renumbered
            async with db.session() as other:
                item = await other.get(MediaAttachment, waiting)
                assert item is not None
                item.state, item.file_key = "ready", "media/aa/bb/file.webp"
                await other.flush()
                assert await publish_if_ready(other, status.id) is True
                await other.commit()
        return status

    monkeypatch.setattr(edits, "own_status", published_meanwhile)
    response = await alice_api.put(f"/api/v1/statuses/{draft['id']}", json={"status": "better"})
    assert response.status_code == 404
    assert response.json() == {"error": "Record not found"}
    assert await count(db, StatusEdit) == 0
