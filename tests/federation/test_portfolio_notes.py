"""Remote works: Notes with images from other servers → browsable works with portfolio data.

Given Notes from another Easel server (with the ``portfolio`` term and an opt-out), from
Mastodon, Pixelfed and GoToSocial (hashtags only), and hostile ones, when they arrive as
``Create`` and ``Update`` through the inbox handlers (or are stored by
``federation.notes``), I expect a work with the metadata the sender gave — bounded as a
local artist's input is — or the portfolio terms its hashtags name, found by browsing
tags; the AI opt-out of notes and actors kept as stated; and never a crash.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from federation.context import FederationContext
from federation.inbox import create, update_note
from federation.notes import _set_work, store_note
from federation.parse import RemoteWork
from server.db import Database
from server.models import Account, DomainBlock, Follow, Status, StatusTag, Tag, User, Work
from server.services import portfolio
from server.settings import Settings
from tests.federation.fediverse import (
    CAROL,
    ERIN,
    FRANK,
    PUBLIC,
    Fediverse,
    actor_doc,
    corpus_note,
    create_of,
    run_handler,
    update_of,
)

DORA = "https://easel.example/users/dora"
PLUS = "http://ns.useplus.org/ldf/vocab/"
NOTE_ID = f"{DORA}/statuses/7191000000000000001"


def dora_actor(**extra: Any) -> dict[str, Any]:
    doc = actor_doc(DORA, "dora", web_url="https://easel.example/@dora")
    doc.update({"xRobotsTag": "noai, noimageai",
                "dataMining": f"{PLUS}DMI-PROHIBITED-AIMLTRAINING"}, **extra)
    return doc


def easel_note(**changes: Any) -> dict[str, Any]:
    """A Note as another Easel server sends it (see FEDERATION.md)."""
    note: dict[str, Any] = {
        "id": NOTE_ID,
        "type": "Note",
        "attributedTo": DORA,
        "to": [PUBLIC],
        "cc": [f"{DORA}/followers"],
        "published": "2024-06-01T12:00:00Z",
        "url": "https://easel.example/@dora/7191000000000000001",
        "name": "Harbour at Dusk",
        "content": '<p>From the pier.</p><p><a href="https://easel.example/tags/ConceptArt">'
                   '#ConceptArt</a> <a href="https://easel.example/tags/OilPainting">'
                   '#OilPainting</a></p>',
        "attachment": [{"type": "Document", "mediaType": "image/webp",
                        "url": "https://easel.example/media/aa/harbour.webp",
                        "name": "A harbour at dusk", "width": 1600, "height": 1200}],
        "tag": [{"type": "Hashtag", "href": "https://easel.example/tags/conceptart",
                 "name": "#ConceptArt"},
                {"type": "Hashtag", "href": "https://easel.example/tags/oilpainting",
                 "name": "#OilPainting"}],
        "portfolio": {
            "type": "PortfolioWork", "title": "Harbour at Dusk",
            "description": "Plein-air study.", "year": 2024, "dimensions": "40 × 50 cm",
            "fields": [{"name": "Concept Art", "hashtag": "#ConceptArt"}],
            "mediums": [{"name": "Oil Painting", "hashtag": "#OilPainting"}],
        },
        "xRobotsTag": "noai, noimageai",
        "dataMining": f"{PLUS}DMI-PROHIBITED-GENAIMLTRAINING",
    }
    note.update(changes)
    return note


@pytest.fixture
def fediverse() -> Fediverse:
    remote = Fediverse()
    remote.corpus_authors()
    remote.serve(DORA, dora_actor())
    remote.webfinger[("easel.example", "acct:dora@easel.example")] = DORA
    return remote


@pytest.fixture
async def fed(settings: Settings, db: Database, fediverse: Fediverse
              ) -> AsyncIterator[FederationContext]:
    # The suggestion lists these stories rely on (as migration 0009 seeds them; the
    # PostgreSQL test database is emptied before each test).
    for kind, name, aliases in SUGGESTED:
        await suggest(db, kind, name, *aliases)
    context = fediverse.context(settings, db)
    yield context
    await context.close()


SUGGESTED = [
    ("field", "Concept Art", ["concept"]), ("field", "Illustration", []),
    ("field", "Photography", ["photo"]), ("medium", "Oil", ["oil painting", "oils"]),
    ("medium", "Ink", ["ink drawing"]), ("medium", "Watercolour", ["watercolor"]),
    ("software", "Krita", []),
]


async def follows(db: Database, user: User, uri: str, fed: FederationContext) -> None:
    target = await fed.fetcher.fetch_actor(uri)
    async with db.session() as session:
        session.add(Follow(account_id=user.account_id, target_account_id=target.id))
        await session.commit()


async def status_by_uri(db: Database, uri: str) -> Status:
    async with db.session() as session:
        status = await session.scalar(select(Status).where(Status.uri == uri))
        assert status is not None, uri
        return status


async def work_of(db: Database, uri: str) -> portfolio.WorkView | None:
    status = await status_by_uri(db, uri)
    async with db.session() as session:
        return (await portfolio.work_metadata(session, [status.id])).get(status.id)


def names(view: portfolio.WorkView | None) -> dict[str, list[str]]:
    assert view is not None
    return {kind: [t.name for t in terms] for kind, terms in view.tags.items() if terms}


async def browse(db: Database, **filters: list[str]) -> list[str]:
    async with db.session() as session:
        found = await portfolio.browse(session, None, dict(filters), local=None)
        return [s.uri for s in found]


async def suggest(db: Database, kind: str, name: str, *aliases: str) -> None:
    async with db.session() as session:
        await portfolio.add_suggestion(session, kind, name, aliases)


async def hashtags(db: Database, uri: str) -> set[str]:
    status = await status_by_uri(db, uri)
    async with db.session() as session:
        return set(await session.scalars(select(Tag.name).join(
            StatusTag, StatusTag.tag_id == Tag.id).where(StatusTag.status_id == status.id)))


# -------------------------------------------------------------------- from Easel servers

async def test_an_easel_work_arrives_with_its_full_metadata_and_is_browsable(
        fed: FederationContext, db: Database, alice: User) -> None:
    await follows(db, alice, DORA, fed)
    outcome = await run_handler(fed, db, create_of(easel_note()), create.handle)
    assert outcome.startswith("stored status")

    view = await work_of(db, NOTE_ID)
    assert view is not None and not view.local and view.listed
    assert (view.title, view.description, view.year, view.dimensions, view.ai_generated) == (
        "Harbour at Dusk", "Plein-air study.", 2024, "40 × 50 cm", False)
    # "Oil Painting" is an alias of this instance's suggested "Oil": one term here.
    assert names(view) == {"field": ["Concept Art"], "medium": ["Oil"]}
    assert await browse(db, field=["concept art"]) == [NOTE_ID]
    assert await browse(db, field=["Concept-Art"], medium=["#OilPainting"]) == [NOTE_ID]
    assert await browse(db, field=["Concept Art"], medium=["Ink"]) == []
    # Its hashtags, and this instance's spelling of its terms (#Oil finds it here too).
    assert await hashtags(db, NOTE_ID) == {"conceptart", "oilpainting", "oil"}

    status = await status_by_uri(db, NOTE_ID)
    assert status.content.count("#") == 2  # the sender's content, not rewritten here
    assert (status.robots, status.data_mining) == (
        "noai, noimageai", f"{PLUS}DMI-PROHIBITED-GENAIMLTRAINING")


async def test_an_update_replaces_the_metadata_and_a_replay_changes_nothing(
        fed: FederationContext, db: Database, alice: User) -> None:
    await follows(db, alice, DORA, fed)
    await run_handler(fed, db, create_of(easel_note()), create.handle)
    edited = easel_note(updated="2024-06-02T08:00:00Z", name="Harbour, Evening",
                        xRobotsTag=["noai"], dataMining=None)
    edited["portfolio"] = {"type": "PortfolioWork", "title": "Harbour, Evening",
                           "mediums": [{"name": "Ink", "hashtag": "#Ink"}],
                           "software": [{"name": "Krita", "hashtag": "#Krita"}]}
    for _ in range(2):
        await run_handler(fed, db, update_of(edited), update_note.handle)

    view = await work_of(db, NOTE_ID)
    assert view is not None
    assert (view.title, view.description, view.year, view.dimensions) == (
        "Harbour, Evening", "", None, "")
    assert names(view) == {"medium": ["Ink"], "software": ["Krita"]}
    assert await browse(db, field=["Concept Art"]) == []
    assert await browse(db, software=["krita"]) == [NOTE_ID]
    status = await status_by_uri(db, NOTE_ID)
    assert (status.robots, status.data_mining) == ("noai", None)


async def test_a_work_labelled_ai_generated_is_kept_but_never_browsable(
        fed: FederationContext, db: Database, alice: User) -> None:
    await follows(db, alice, DORA, fed)
    note = easel_note()
    note["portfolio"]["aiGenerated"] = True
    await run_handler(fed, db, create_of(note), create.handle)
    view = await work_of(db, NOTE_ID)
    assert view is not None and view.ai_generated and not view.listed
    assert await browse(db, field=["Concept Art"]) == []


async def test_a_followers_only_work_is_stored_but_not_browsable(
        fed: FederationContext, db: Database, alice: User) -> None:
    await follows(db, alice, DORA, fed)
    await run_handler(fed, db, create_of(easel_note(to=[f"{DORA}/followers"], cc=[])),
                      create.handle)
    view = await work_of(db, NOTE_ID)
    assert view is not None and names(view) and not view.listed
    assert await browse(db, field=["Concept Art"]) == []


async def test_a_note_without_images_or_that_loses_them_is_no_work(
        fed: FederationContext, db: Database, alice: User) -> None:
    await follows(db, alice, DORA, fed)
    await run_handler(fed, db, create_of(easel_note()), create.handle)
    assert await work_of(db, NOTE_ID) is not None
    await run_handler(fed, db, update_of(easel_note(attachment=[],
                                                    updated="2024-06-02T08:00:00Z")),
                      update_note.handle)
    assert await work_of(db, NOTE_ID) is None
    assert await browse(db, field=["Concept Art"]) == []

    text_only = easel_note(id=f"{DORA}/statuses/7191000000000000002", attachment=[])
    await run_handler(fed, db, create_of(text_only), create.handle)
    assert await work_of(db, text_only["id"]) is None


@pytest.mark.parametrize("portfolio_value", [
    "Harbour", 42, None, [], [{"title": "x"}], {"type": 5},
    {"title": {"nested": ["junk"]}, "year": [2024], "fields": [[["Concept Art"]]],
     "mediums": {"name": {"name": "Ink"}}, "aiGenerated": "yes"},
])
async def test_malformed_portfolio_terms_never_cost_the_note(
        fed: FederationContext, db: Database, alice: User, portfolio_value: Any) -> None:
    await follows(db, alice, DORA, fed)
    outcome = await run_handler(fed, db, create_of(easel_note(portfolio=portfolio_value)),
                                create.handle)
    assert outcome.startswith("stored status")
    view = await work_of(db, NOTE_ID)
    assert view is not None and not view.ai_generated
    assert view.title == "" and view.year is None


async def test_huge_values_are_bounded_like_local_input(
        fed: FederationContext, db: Database, alice: User) -> None:
    await follows(db, alice, DORA, fed)
    note = easel_note(xRobotsTag="noai, " + ", ".join(f"x{n}" for n in range(100_000)),
                      dataMining="DMI-" + "A" * 100_000)
    note["portfolio"] = {
        "title": "T" * 100_000, "description": "<p>" + "d" * 200_000 + "</p>",
        "dimensions": "9" * 100_000, "year": 10 ** 30,
        "fields": [{"name": f"Field {n}"} for n in range(5_000)],
        "mediums": [{"name": "m" * 10_000}, "Ink"],
    }
    assert (await run_handler(fed, db, create_of(note), create.handle)).startswith("stored")
    view = await work_of(db, NOTE_ID)
    assert view is not None
    assert len(view.title) == portfolio.MAX_TITLE
    assert len(view.description) == portfolio.MAX_DESCRIPTION
    assert len(view.dimensions) == portfolio.MAX_DIMENSIONS and view.year is None
    tags = names(view)
    assert len(tags["field"]) == portfolio.MAX_TERMS_PER_KIND and tags["medium"] == ["Ink"]
    status = await status_by_uri(db, NOTE_ID)
    assert status.robots is not None and status.robots.startswith("noai, x0")
    assert len(status.robots) <= 255 and status.data_mining is None


async def test_parts_the_service_refuses_are_dropped_one_by_one(
        fed: FederationContext, db: Database, alice: User) -> None:
    """Should a RemoteWork reach the service unbounded (another caller), each refused
    part is dropped and the rest kept."""
    await follows(db, alice, DORA, fed)
    await run_handler(fed, db, create_of(easel_note(portfolio=None)), create.handle)
    status = await status_by_uri(db, NOTE_ID)
    work = RemoteWork(title="Kept", description="x" * 10_000, year=2024,
                      tags=(("medium", tuple(f"Medium {n}" for n in range(30))),
                            ("field", ("Illustration",))))
    async with db.session() as session:
        await _set_work(session, status, work)
        await session.commit()
    view = await work_of(db, NOTE_ID)
    assert view is not None
    assert (view.title, view.description, view.year) == ("Kept", "", 2024)
    assert names(view) == {"field": ["Illustration"]}


# ------------------------------------------------------------------- from other servers

async def test_a_mastodon_work_is_browsable_by_its_recognised_hashtags(
        fed: FederationContext, db: Database, alice: User) -> None:
    await suggest(db, "field", "Fine Art", "art")  # #InkDrawing is an alias of Ink already
    note = corpus_note("mastodon_create_note.json")
    outcome = await run_handler(fed, db, create_of(note), create.handle)
    assert outcome.startswith("stored status")

    view = await work_of(db, note["id"])
    assert view is not None and not view.local and view.listed
    assert names(view) == {"field": ["Fine Art"], "medium": ["Ink"]}
    assert await browse(db, medium=["ink drawing"]) == [note["id"]]
    assert await browse(db, medium=["Ink"], field=["Fine Art"]) == [note["id"]]


async def test_pixelfed_and_gotosocial_works_are_found_by_their_hashtags(
        fed: FederationContext, db: Database, alice: User) -> None:
    await follows(db, alice, FRANK, fed)
    await follows(db, alice, ERIN, fed)
    pixelfed = corpus_note("pixelfed_create_note.json")
    gts = corpus_note("gotosocial_create_note.json")
    for note in (pixelfed, gts):
        assert (await run_handler(fed, db, create_of(note), create.handle)).startswith("stored")
    assert names(await work_of(db, pixelfed["id"])) == {"field": ["Photography"]}
    assert names(await work_of(db, gts["id"])) == {"medium": ["Watercolour"]}
    assert await browse(db, field=["photo"]) == [pixelfed["id"]]
    assert await browse(db, medium=["watercolor"]) == []  # GoToSocial's note is unlisted


async def test_an_edit_that_drops_a_hashtag_drops_its_term(
        fed: FederationContext, db: Database, alice: User) -> None:
    note = corpus_note("mastodon_create_note.json")
    await run_handler(fed, db, create_of(note), create.handle)
    edited = copy.deepcopy(note)
    edited["tag"] = [t for t in edited["tag"] if t.get("name") != "#InkDrawing"]
    edited["updated"] = "2024-05-02T10:00:00Z"
    assert await run_handler(fed, db, update_of(edited), update_note.handle) == "updated"
    view = await work_of(db, note["id"])
    assert view is not None and names(view) == {}
    assert await browse(db, medium=["Ink"]) == []
    assert await hashtags(db, note["id"]) == {"art"}


async def test_an_update_that_changes_nothing_is_no_edit(
        fed: FederationContext, db: Database, alice: User) -> None:
    note = corpus_note("mastodon_create_note.json")
    await run_handler(fed, db, create_of(note), create.handle)
    again = dict(note, updated="2024-05-02T10:00:00Z")
    assert await run_handler(fed, db, update_of(again), update_note.handle) == "no change"
    assert await hashtags(db, note["id"]) == {"inkdrawing", "art"}
    assert names(await work_of(db, note["id"])) == {"medium": ["Ink"]}
    unwanted = await run_handler(fed, db, create_of(easel_note()), create.handle)
    assert unwanted.startswith("ignored")  # nobody here follows dora yet
    await follows(db, alice, DORA, fed)
    await run_handler(fed, db, create_of(easel_note()), create.handle)
    edited = easel_note(updated="2024-06-02T08:00:00Z")
    assert await run_handler(fed, db, update_of(edited), update_note.handle) == "no change"


async def test_a_domain_whose_media_are_rejected_contributes_no_works(
        fed: FederationContext, db: Database, alice: User) -> None:
    async with db.session() as session:
        session.add(DomainBlock(domain="easel.example", severity="noop", reject_media=True))
        await session.commit()
    await follows(db, alice, DORA, fed)
    await run_handler(fed, db, create_of(easel_note()), create.handle)
    assert await work_of(db, NOTE_ID) is None


# -------------------------------------------------------------------------- actors

async def test_an_actors_opt_out_is_kept_as_stated_and_refreshed(
        fed: FederationContext, db: Database, fediverse: Fediverse) -> None:
    dora = await fed.fetcher.fetch_actor(DORA)
    assert (dora.robots, dora.data_mining) == (
        "noai, noimageai", f"{PLUS}DMI-PROHIBITED-AIMLTRAINING")

    fediverse.serve(DORA, dora_actor(xRobotsTag=["NoAI", "noimageai\u0000", 7],
                                     dataMining="https://ns.useplus.org/ldf/vocab/DMI-ALLOWED"))
    dora = await fed.fetcher.fetch_actor(DORA, refresh=True)
    assert (dora.robots, dora.data_mining) == ("noai", f"{PLUS}DMI-ALLOWED")

    carol = await fed.fetcher.fetch_actor(CAROL)
    assert (carol.robots, carol.data_mining) == (None, None)
    async with db.session() as session:
        stored = await session.scalar(select(Account).where(Account.uri == DORA))
        assert stored is not None and stored.robots == "noai"


async def test_store_note_is_idempotent_for_works(
        fed: FederationContext, db: Database) -> None:
    dora = await fed.fetcher.fetch_actor(DORA)
    for _ in range(3):
        async with db.session() as session:
            await store_note(fed, session, easel_note(), author=dora)
            await session.commit()
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Work)) == 1
    status = await status_by_uri(db, NOTE_ID)
    assert status.edited_at is None  # a replay is not an edit
    assert await hashtags(db, NOTE_ID) == {"conceptart", "oilpainting", "oil"}
    assert names(await work_of(db, NOTE_ID)) == {"field": ["Concept Art"], "medium": ["Oil"]}
