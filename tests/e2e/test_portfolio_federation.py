"""Portfolios across instances: a work posted on one Easel is a work, with all its portfolio
data, on another — and works from other fediverse servers are browsable by their hashtags.

Given alice on art.example and bob on paint.example (``conftest.py``), and a Mastodon
server (mastodon.example, a few static documents) on the same in-process network, when
bob follows alice and alice posts a work with a title, a year, dimensions, a description
and terms of several vocabularies, I expect paint.example to store that work with all of
it and to find it by browsing tags (``/api/v1/easel/works``), alongside a Mastodon post
that bob looked up, found by its hashtags; alice's edit of the metadata to reach paint as
an ``Update``; alice's AI opt-out to be kept on paint for her account and her post; and a
hostile Note's junk portfolio terms to be bounded, never a failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.models import Account, Status
from server.services import portfolio
from tests.e2e.conftest import Instance, Network, Person, settle
from tests.e2e.test_two_instances import follow, ok, resolve_status
from tests.federation.fediverse import CAROL, actor_doc, corpus_note
from tests.protect import images
from tests.protect.conftest import upload

JSON = dict[str, Any]
PLUS = "http://ns.useplus.org/ldf/vocab/"
MASTODON = "mastodon.example"
HOSTILE_NOTE = "https://mastodon.example/users/carol/statuses/999"


# ------------------------------------------------------------------- a Mastodon server

def mastodon_documents() -> dict[str, JSON]:
    """carol's actor and two of her posts: the corpus Note (two images, #InkDrawing and
    #art), and one that imitates Easel's terms with junk in them."""
    note = corpus_note("mastodon_create_note.json")
    hostile = dict(note, id=HOSTILE_NOTE, url="https://mastodon.example/@carol/999",
                   published="2024-05-01T11:00:00Z", tag=[])
    hostile["portfolio"] = {
        "type": ["PortfolioWork", {"x": 1}],
        "title": "<script>alert(1)</script>" + "T" * 200_000,
        "description": {"nested": [[["junk"]]]},
        "year": "twenty twenty-four",
        "dimensions": ["40", "50"],
        "aiGenerated": "no",
        "fields": [{"name": "Illustration"}, {"name": ["Concept Art"]}, 5, None,
                   {"name": "x" * 5000}],
        "mediums": "Oil",
        "software": [{"name": f"Tool {n}"} for n in range(10_000)],
    }
    hostile["xRobotsTag"] = ["NoAI", {"evil": True}, "x" * 100_000]
    hostile["dataMining"] = "javascript:alert(1)"
    return {CAROL: actor_doc(CAROL, "carol", web_url="https://mastodon.example/@carol"),
            note["id"]: note, HOSTILE_NOTE: hostile}


def mastodon_app(documents: dict[str, JSON]) -> Starlette:
    async def serve(request: Request) -> Response:
        document = documents.get(str(request.url).split("?", 1)[0])
        if document is None:
            return Response(status_code=404)
        return Response(json.dumps(document), media_type="application/activity+json")

    return Starlette(routes=[Route("/{path:path}", serve, methods=["GET"])])


@pytest.fixture
def mastodon(network: Network) -> Iterator[dict[str, JSON]]:
    documents = mastodon_documents()
    network.serve(MASTODON, mastodon_app(documents))
    yield documents


# ----------------------------------------------------------------------------- helpers

# The suggestion lists these stories rely on, as migration 0009 seeds them (the PostgreSQL
# test databases are emptied before each test).
SUGGESTED = [
    ("field", "Concept Art", ["concept"]), ("field", "Illustration", []),
    ("medium", "Oil", ["oil painting"]), ("medium", "Ink", ["ink drawing"]),
    ("category", "Landscape", ["landscapes"]), ("software", "Krita", []),
    ("project_type", "Personal", []),
]


@pytest.fixture(autouse=True)
async def vocabulary(art: Instance, paint: Instance) -> None:
    for instance in (art, paint):
        async with instance.db.session() as session:
            for kind, name, aliases in SUGGESTED:
                await portfolio.add_suggestion(session, kind, name, aliases)


@pytest.fixture
async def alice(art: Instance) -> Person:
    return await art.person("alice", data_mining=f"{PLUS}DMI-PROHIBITED-GENAIMLTRAINING")


@pytest.fixture
async def bob(paint: Instance) -> Person:
    return await paint.person("bob")


async def post_work(person: Person, *instances: Instance, **easel: Any) -> JSON:
    """``person`` uploads an image, waits for its protection, and posts it as a work."""
    uploaded = await ok(await upload(person.api, images.jpeg((96, 64)), fields={
        "description": "A harbour at dusk"}), 202)
    await settle(*instances)
    status: JSON = await ok(await person.api.post("/api/v1/statuses", json={
        "status": "From the pier.", "media_ids": [uploaded["id"]], "easel": easel}))
    return status


async def browse(person: Person, **filters: list[str] | str) -> list[str]:
    """The uris of the works ``person``'s app finds browsing with ``filters``."""
    params = {f"{k}[]" if isinstance(v, list) else k: v for k, v in filters.items()}
    found: list[JSON] = await ok(await person.api.get("/api/v1/easel/works", params=params))
    return [entity["uri"] for entity in found]


def terms(entity: JSON) -> dict[str, list[str]]:
    return {kind: [t["name"] for t in items] for kind, items in entity["easel"]["tags"].items()
            if items}


async def row(instance: Instance, model: Any, uri: str) -> Any:
    async with instance.db.session() as session:
        found = await session.scalar(select(model).where(model.uri == uri))
        assert found is not None, uri
        return found


# ------------------------------------------------------------------------------- stories

async def test_a_work_arrives_with_its_metadata_is_browsable_and_its_edit_follows(
    art: Instance, paint: Instance, alice: Person, bob: Person, mastodon: dict[str, JSON]
) -> None:
    await follow(bob, alice, art, paint)
    original = await post_work(
        alice, art, paint, title="Harbour at Dusk", description="Plein-air study.",
        year=2024, dimensions="40 × 50 cm", field=["Concept Art", "Illustration"],
        medium=["Oil"], software=["Krita"], project_type=["Personal"])
    await settle(art, paint)

    arrived = await resolve_status(bob, original["uri"])  # already stored: no fetch
    assert arrived["account"]["acct"] == "alice@art.example"
    assert arrived["easel"]["title"] == "Harbour at Dusk"
    assert (arrived["easel"]["description"], arrived["easel"]["year"],
            arrived["easel"]["dimensions"], arrived["easel"]["ai_generated"]) == (
        "Plein-air study.", 2024, "40 × 50 cm", False)
    assert terms(arrived) == {"field": ["Concept Art", "Illustration"], "medium": ["Oil"],
                              "project_type": ["Personal"], "software": ["Krita"]}
    assert {t["name"].lower() for t in arrived["tags"]} >= {
        "conceptart", "illustration", "oil", "krita", "personal"}
    assert "#<span>ConceptArt</span>" in arrived["content"] or "#ConceptArt" in arrived["content"]

    # A Mastodon post bob looked up: a work here, by its hashtags (#InkDrawing → Ink).
    ink = corpus_note("mastodon_create_note.json")
    carols = await resolve_status(bob, ink["id"])
    assert terms(carols) == {"medium": ["Ink"]} and carols["easel"]["title"] == ""

    assert await browse(bob, field=["concept art"]) == [original["uri"]]
    assert await browse(bob, medium=["Ink"]) == [ink["id"]]
    assert set(await browse(bob, medium=["Ink", "oil painting"])) == {original["uri"], ink["id"]}
    assert await browse(bob, medium=["Oil"], software=["Krita"], field=["Illustration"]) == [
        original["uri"]]
    assert set(await browse(bob, medium=["Ink", "Oil"], remote="true")) == {
        original["uri"], ink["id"]}
    assert await browse(bob, medium=["Ink", "Oil"], local="true") == []
    assert await browse(alice, medium=["Ink"]) == []  # art.example never saw carol's post

    # alice edits the metadata: paint.example gets the Update.
    await ok(await alice.api.put(f"/api/v1/easel/works/{original['id']}", json={
        "title": "Harbour, Evening", "year": 2023, "medium": ["Ink"],
        "category": ["Landscape"]}))
    await settle(art, paint)
    edited = await resolve_status(bob, original["uri"])
    assert (edited["easel"]["title"], edited["easel"]["year"], edited["easel"]["dimensions"]) == (
        "Harbour, Evening", 2023, "")
    assert terms(edited) == {"medium": ["Ink"], "category": ["Landscape"]}
    assert await browse(bob, field=["Concept Art"]) == []
    assert set(await browse(bob, medium=["Ink"])) == {original["uri"], ink["id"]}
    assert await browse(bob, category=["landscapes"]) == [original["uri"]]


async def test_alices_opt_out_is_kept_on_the_other_instance(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    await follow(bob, alice, art, paint)
    original = await post_work(alice, art, paint, title="Study", medium=["Ink"])
    await settle(art, paint)

    there = await row(paint, Account, alice.uri)
    assert (there.robots, there.data_mining) == (
        "noai, noimageai", f"{PLUS}DMI-PROHIBITED-GENAIMLTRAINING")
    status = await row(paint, Status, original["uri"])
    assert (status.robots, status.data_mining) == (
        "noai, noimageai", f"{PLUS}DMI-PROHIBITED-GENAIMLTRAINING")

    # The documents themselves, as any server reads them.
    document = await ok(await art.client().get(original["uri"], headers={
        "Accept": "application/activity+json"}))
    assert document["xRobotsTag"] == "noai, noimageai"
    assert document["dataMining"] == f"{PLUS}DMI-PROHIBITED-GENAIMLTRAINING"
    assert document["portfolio"]["title"] == "Study"
    assert "protect" not in json.dumps(document).lower()


async def test_a_hostile_notes_junk_terms_are_bounded_and_never_fail(
    art: Instance, paint: Instance, bob: Person, mastodon: dict[str, JSON]
) -> None:
    hostile = await resolve_status(bob, HOSTILE_NOTE)
    easel = hostile["easel"]
    assert easel["title"].startswith("T") and "<" not in easel["title"]
    assert len(easel["title"]) <= 200
    assert (easel["description"], easel["year"], easel["dimensions"], easel["ai_generated"]) == (
        "", None, "", False)
    found = terms(hostile)
    assert found["field"] == ["Illustration"] and found["medium"] == ["Oil"]
    assert len(found["software"]) == 10
    status = await row(paint, Status, HOSTILE_NOTE)
    assert (status.robots, status.data_mining) == ("noai", None)
    await settle(paint)
