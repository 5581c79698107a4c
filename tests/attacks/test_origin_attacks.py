"""Attack suite: origin confusion — one server speaking for another.

A server may only vouch for objects on its own origin. Each test has a remote server
(carol's, remote.example) try to make Easel believe something about another server's
object or actor (dave's, other.example): a document served from one host claiming
another's id, an Announce or Update embedding a forged copy of someone else's object, a
Delete of someone else's status. I expect the origin's word or nothing: no forged words
stored anywhere, no account or status stored under a foreign id, no other.example
object fetched where it must not be. The Create paths (embedded object from another
host, misattributed note, forwarded Create) are proven in
tests/federation/inbox/test_create.py; fetches by id in tests/federation/test_objects.py
and test_actors.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from starlette.applications import Starlette

from federation.domains import is_suspended
from server.db import Database
from server.models import Account, DomainBlock, InboxItem, Status, User
from tests.conftest import make_token
from tests.federation.inbox.conftest import (
    BASE,
    PUBLIC,
    FakeActor,
    Fediverse,
    deliver,
    http,
    item_for,
    process,
    remote_account,
    stored,
)

CORPUS = Path(__file__).parent.parent / "federation" / "corpus"
ALICE = f"{BASE}/users/alice"
FORGED = "words nobody wrote"


def note_by(actor: FakeActor, number: int = 1, **changes: Any) -> dict[str, Any]:
    """The corpus Mastodon note as ``actor``'s, mentioning alice (so it is wanted here)."""
    text = (CORPUS / "mastodon_create_note.json").read_text()
    text = text.replace("https://mastodon.example/users/carol", actor.uri)
    note: dict[str, Any] = json.loads(text)["object"]
    note["id"] = f"{actor.uri}/statuses/{number}"
    note.pop("url", None)
    note["cc"] = [*note.get("cc", []), ALICE]
    note["tag"] = [*note.get("tag", []), {"type": "Mention", "href": ALICE,
                                          "name": "@alice@easel.test"}]
    note.update(changes)
    return note


async def deliver_and_process(app: Starlette, sender: FakeActor,
                              activity: dict[str, Any]) -> str:
    response = await deliver(app, sender, activity)
    assert response.status_code == 202, response.text
    await process(app)
    item = await item_for(app.state.easel.db, activity["id"])
    assert item is not None
    return item.outcome


async def contents(db: Database) -> list[str]:
    async with db.session() as session:
        return list(await session.scalars(select(Status.content)))


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where))
                   or 0)


async def search(app: Starlette, db: Database, user: User, query: str) -> dict[str, Any]:
    async with http(app, token=await make_token(db, user)) as client:
        response = await client.get("/api/v2/search", params={"q": query, "resolve": "true"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# ------------------------------------------------------ documents claiming another's id

async def test_a_note_served_by_one_host_claiming_another_hosts_id_is_not_stored(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse, alice: User,
        remote_carol: FakeActor, remote_dave: FakeActor) -> None:
    served_at = remote_carol.uri + "/statuses/9"
    fediverse.objects[served_at] = note_by(remote_dave, 9, content=f"<p>{FORGED}</p>")
    result = await search(inbox_app, app_db, alice, served_at)
    assert fediverse.fetched(served_at) == 1  # asked, and refused what it said
    assert result["statuses"] == []
    assert await count(app_db, Status) == 0
    assert fediverse.fetched(remote_dave.uri + "/statuses/9") == 0  # not even asked


async def test_an_actor_served_by_one_host_claiming_another_hosts_id_is_not_stored(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse, alice: User,
        remote_carol: FakeActor, remote_dave: FakeActor) -> None:
    served_at = "https://remote.example/users/mallory"
    fediverse.objects[served_at] = remote_dave.document() | {"name": FORGED}
    result = await search(inbox_app, app_db, alice, served_at)
    assert fediverse.fetched(served_at) >= 1  # asked, and refused what it said
    assert result["accounts"] == []
    assert await count(app_db, Account, Account.uri == remote_dave.uri) == 0
    assert await count(app_db, Account, Account.display_name == FORGED) == 0


# ------------------------------------------------------------ activities about others

async def test_an_announce_embedding_a_forged_copy_stores_only_the_origins_words(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse, alice: User,
        remote_carol: FakeActor, remote_dave: FakeActor) -> None:
    original = note_by(remote_dave, 3)
    fediverse.objects[original["id"]] = original
    forged = copy.deepcopy(original) | {"content": f"<p>{FORGED}</p>"}
    boost = remote_carol.activity("Announce", forged, to=[PUBLIC])
    await deliver_and_process(inbox_app, remote_carol, boost)

    assert fediverse.fetched(original["id"]) == 1  # asked its own server
    assert not any(FORGED in text for text in await contents(app_db))
    assert await count(app_db, Status, Status.uri == original["id"]) <= 1


async def test_an_announce_of_a_foreign_id_its_origin_does_not_serve_stores_nothing(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse, alice: User,
        remote_carol: FakeActor, remote_dave: FakeActor) -> None:
    forged = note_by(remote_dave, 4, content=f"<p>{FORGED}</p>")  # dave's server: 404
    boost = remote_carol.activity("Announce", forged, to=[PUBLIC])
    outcome = await deliver_and_process(inbox_app, remote_carol, boost)
    assert outcome in ("rejected", "ignored", "failed")
    assert await count(app_db, Status) == 0


async def test_an_update_of_another_actor_changes_nothing(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse, alice: User,
        remote_carol: FakeActor, remote_dave: FakeActor) -> None:
    await remote_account(inbox_app, remote_dave)
    requests_before = fediverse.fetched(remote_dave.uri)
    update = remote_carol.activity("Update", remote_dave.document() | {"name": FORGED})
    assert await deliver_and_process(inbox_app, remote_carol, update) == "rejected"
    async with app_db.session() as session:
        dave = await session.scalar(select(Account).where(Account.uri == remote_dave.uri))
    assert dave is not None and dave.display_name != FORGED
    assert fediverse.fetched(remote_dave.uri) == requests_before


async def test_an_update_of_another_actors_note_changes_nothing(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse, alice: User,
        remote_carol: FakeActor, remote_dave: FakeActor) -> None:
    original = note_by(remote_dave, 5)
    await deliver_and_process(inbox_app, remote_dave,
                              remote_dave.activity("Create", original, to=[PUBLIC]))
    before = await contents(app_db)
    assert len(before) == 1
    forged = copy.deepcopy(original) | {"content": f"<p>{FORGED}</p>",
                                        "updated": "2030-01-01T00:00:00Z"}
    assert await deliver_and_process(inbox_app, remote_carol,
                                     remote_carol.activity("Update", forged)) == "rejected"
    assert await contents(app_db) == before


async def test_a_delete_of_another_actors_note_deletes_nothing(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse, alice: User,
        remote_carol: FakeActor, remote_dave: FakeActor) -> None:
    original = note_by(remote_dave, 6)
    await deliver_and_process(inbox_app, remote_dave,
                              remote_dave.activity("Create", original, to=[PUBLIC]))
    assert await count(app_db, Status, Status.uri == original["id"]) == 1
    delete = remote_carol.activity("Delete", {"id": original["id"], "type": "Tombstone"})
    await deliver_and_process(inbox_app, remote_carol, delete)  # an outcome, not a deletion
    assert await count(app_db, Status, Status.uri == original["id"]) == 1


async def test_a_delete_of_another_actor_deletes_nothing(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse, alice: User,
        remote_carol: FakeActor, remote_dave: FakeActor) -> None:
    await remote_account(inbox_app, remote_dave)
    delete = remote_carol.activity("Delete", remote_dave.uri)
    await deliver_and_process(inbox_app, remote_carol, delete)  # an outcome, not a deletion
    assert await count(app_db, Account, Account.uri == remote_dave.uri) == 1


# ------------------------------------------------- another spelling of a blocked domain

async def suspend(db: Database, domain: str) -> None:
    async with db.session() as session:
        session.add(DomainBlock(domain=domain, severity="suspend"))
        await session.commit()


async def test_a_suspended_domain_spelled_with_a_trailing_dot_is_still_refused(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse, alice: User) -> None:
    # evil.example. is evil.example (an absolute DNS name): same server, same block.
    await suspend(app_db, "evil.example")
    eve = fediverse.actor("https://evil.example./users/eve", "eve")
    response = await deliver(inbox_app, eve, eve.activity("Follow", ALICE))
    assert response.status_code in (202, 401), response.text
    await process(inbox_app)
    async with app_db.session() as session:
        items = await session.scalar(select(func.count()).select_from(InboxItem))
    assert items == 0
    assert await count(app_db, Account, Account.username == "eve") == 0
    assert fediverse.requests == []


async def test_an_actor_on_a_host_spelled_with_a_trailing_dot_is_never_fetched(
        inbox_app: Starlette, app_db: Database, fediverse: Fediverse, alice: User) -> None:
    # Not yet blocked: were its key fetched and kept in memory, a later suspension of
    # evil.example would not match "evil.example." and its deliveries would go on.
    eve = fediverse.actor("https://evil.example./users/eve", "eve")
    response = await deliver(inbox_app, eve, eve.activity("Follow", ALICE))
    assert response.status_code == 401, response.text
    assert await stored(app_db) == (0, 0)
    assert fediverse.requests == []


async def test_a_suspended_domain_spelled_in_unicode_is_still_refused(app_db: Database) -> None:
    # Blocks are stored in punycode; an id may spell its host in Unicode, or with a dot at
    # the end, in any case. (HTTP headers carry no Unicode, so a keyId cannot; an id in a
    # body or a link can.) Every spelling is the same server, under the same block.
    await suspend(app_db, "xn--bcher-kva.example")
    async with app_db.session() as session:
        for spelling in ("https://bücher.example/users/eve", "https://BÜCHER.example./users/eve",
                         "https://xn--bcher-kva.example/users/eve", "bücher.example",
                         "https://sub.bücher.example:8443/x"):
            assert await is_suspended(session, spelling), spelling
        assert not await is_suspended(session, "https://bucher.example/users/eve")
