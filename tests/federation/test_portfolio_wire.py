"""Portfolio data and the AI opt-out on the wire: Easel's ``portfolio`` term and FEP-5e53.

Given alice's work with a title, a description, a year, dimensions and terms of every
vocabulary, when it is serialised as a Note (and alice as an actor), I expect the
portfolio object and a ``name``, the terms as ordinary hashtags, the opt-out as
``xRobotsTag`` and ``dataMining`` — all defined in the inline context, nothing that says
an image is protected — and that Easel reads back exactly what it wrote. Given documents
with wrong types, huge strings and nested junk in those terms, I expect bounded values or
nothing, never an exception.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from federation.parse import (
    MAX_ROBOTS_CHARS,
    RemoteWork,
    parse_actor,
    parse_data_mining,
    parse_note,
    parse_robots_tag,
    parse_work,
)
from federation.serialize import (
    PERMITTED_CONTEXT_URLS,
    PORTFOLIO_TERMS,
    account_to_actor,
    status_to_note,
)
from protect.optout_metadata import DMI_PROHIBITED_AIML
from server.models import Account, MediaAttachment, Status, Tag
from server.services.portfolio import (
    MAX_TERM_LENGTH,
    MAX_TERMS_PER_KIND,
    MAX_TITLE,
    TermView,
    WorkView,
    hashtag_for,
    normalise_key,
)
from server.settings import Settings
from server.storage import LocalStorage
from server.urls import Urls

BASE = "https://easel.test"
ALICE = f"{BASE}/users/alice"
WHEN = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
PLUS = "http://ns.useplus.org/ldf/vocab/"


@pytest.fixture
def urls() -> Urls:
    return Urls(Settings(domain="easel.test", scheme="https"))


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path, BASE)


def alice(urls: Urls, **changes: Any) -> Account:
    account = Account(
        id=1, username="alice", username_key="alice", domain="", actor_type="Person",
        display_name="Alice", note="", uri=ALICE, url=urls.profile("alice"),
        inbox_url=urls.inbox("alice"), outbox_url=urls.outbox("alice"),
        shared_inbox_url=urls.shared_inbox, followers_url=urls.followers("alice"),
        following_url=urls.following("alice"), featured_url=urls.featured("alice"),
        public_key_id=f"{ALICE}#main-key",
        public_key_pem="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        locked=False, discoverable=True, indexable=False, fields=[], created_at=WHEN,
        avatar_key=None, header_key=None, data_mining=None)
    for key, value in changes.items():
        setattr(account, key, value)
    return account


def work_status() -> Status:
    return Status(
        id=7190000000000000001, account_id=1, uri=f"{ALICE}/statuses/7190000000000000001",
        url=f"{BASE}/@alice/7190000000000000001", text="Harbour",
        content='<p>Harbour</p><p><a href="https://easel.test/tags/OilPainting">#OilPainting</a></p>',
        spoiler_text="", visibility="public", sensitive=False, language="en", published=True,
        published_at=WHEN, created_at=WHEN, edited_at=None)


def protected_image() -> MediaAttachment:
    return MediaAttachment(
        id=101, type="image", state="ready", protection="protected",
        file_key="media/aa/bb/full.webp", small_key="media/aa/bb/small.webp",
        original_key="originals/aa/bb/orig.png",
        meta={"original": {"width": 1200, "height": 800}}, blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
        description="A harbour at dusk", focus_x=0.0, focus_y=0.0)


def term(name: str) -> TermView:
    return TermView(name=name, key=normalise_key(name), hashtag=hashtag_for(name))


def work_view(**changes: Any) -> WorkView:
    view = WorkView(
        title="Harbour at Dusk", description="Plein-air study.\nSecond line.", year=2024,
        dimensions="40 × 50 cm", ai_generated=False,
        tags={"field": [term("Illustration"), term("Concept Art")],
              "medium": [term("Oil Painting")], "project_type": [term("Personal")],
              "category": [], "software": [term("Krita")]})
    for key, value in changes.items():
        setattr(view, key, value)
    return view


def hashtags_of(view: WorkView) -> list[Tag]:
    names = [t.hashtag for terms in view.tags.values() for t in terms]
    return [Tag(id=n, name=name.lower(), display_name=name) for n, name in enumerate(names)]


def note_for(urls: Urls, storage: LocalStorage, view: WorkView | None = None,
             author: Account | None = None) -> dict[str, Any]:
    view = view or work_view()
    return status_to_note(work_status(), author or alice(urls), [protected_image()], [],
                          hashtags_of(view), urls, storage, work=view)


def defined_terms(document: Any) -> set[str]:
    """Every key used anywhere in ``document`` (JSON-LD keywords left out)."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key != "@context":
                found.add(key)
                if key != "contentMap":  # keyed by language
                    found |= defined_terms(value)
    elif isinstance(document, list):
        for item in document:
            found |= defined_terms(item)
    return found


# ---------------------------------------------------------------------------- outgoing

def test_a_work_note_carries_its_portfolio_its_title_and_its_terms_as_hashtags(
    urls: Urls, storage: LocalStorage
) -> None:
    note = note_for(urls, storage)
    assert note["name"] == "Harbour at Dusk"
    assert note["portfolio"] == {
        "type": "PortfolioWork",
        "title": "Harbour at Dusk",
        "description": "Plein-air study.\nSecond line.",
        "year": 2024,
        "dimensions": "40 × 50 cm",
        "fields": [{"name": "Illustration", "hashtag": "#Illustration"},
                   {"name": "Concept Art", "hashtag": "#ConceptArt"}],
        "mediums": [{"name": "Oil Painting", "hashtag": "#OilPainting"}],
        "projectTypes": [{"name": "Personal", "hashtag": "#Personal"}],
        "software": [{"name": "Krita", "hashtag": "#Krita"}],
    }
    hashtags = {t["name"]: t["href"] for t in note["tag"] if t["type"] == "Hashtag"}
    for name in ("Illustration", "ConceptArt", "OilPainting", "Personal", "Krita"):
        assert hashtags[f"#{name}"] == f"{BASE}/tags/{name.lower()}"


def test_every_easel_term_is_defined_inline_and_only_permitted_contexts_are_named(
    urls: Urls, storage: LocalStorage
) -> None:
    note = note_for(urls, storage, work_view(ai_generated=True))
    context = note["@context"]
    assert [c for c in context if isinstance(c, str)] == ["https://www.w3.org/ns/activitystreams"]
    assert all(c in PERMITTED_CONTEXT_URLS for c in context if isinstance(c, str))
    inline = context[-1]
    assert inline["easel"] == "https://easel.social/ns#"
    as2 = {"id", "type", "summary", "inReplyTo", "published", "url", "attributedTo", "to",
           "cc", "content", "contentMap", "attachment", "tag", "name", "mediaType", "href",
           "width", "height"}
    for key in defined_terms(note) - as2:
        assert key in inline, f"{key} is not defined in the inline context"
    for key in ("title", "description", "year", "dimensions", "aiGenerated", "hashtag",
                *PORTFOLIO_TERMS.values(), "portfolio", "PortfolioWork", "dataMining"):
        definition = inline[key]
        iri = definition["@id"] if isinstance(definition, dict) else definition
        assert iri.startswith("easel:"), key
    assert inline["xRobotsTag"].startswith("https://w3id.org/fep/5e53")
    json.dumps(note)


def test_an_ai_generated_work_says_so_and_an_empty_work_has_no_title(
    urls: Urls, storage: LocalStorage
) -> None:
    labelled = note_for(urls, storage, work_view(ai_generated=True))
    assert labelled["portfolio"]["aiGenerated"] is True
    bare = note_for(urls, storage, work_view(title="", description="", year=None,
                                            dimensions="", tags={}))
    assert "name" not in bare
    assert bare["portfolio"] == {"type": "PortfolioWork"}
    plain = status_to_note(work_status(), alice(urls), [], [], [], urls, storage)
    assert "portfolio" not in plain and "name" not in plain


def test_notes_and_actors_say_not_for_ai_training_by_default(
    urls: Urls, storage: LocalStorage
) -> None:
    note = note_for(urls, storage)
    actor = account_to_actor(alice(urls), urls, storage)
    for document in (note, actor):
        assert document["xRobotsTag"] == "noai, noimageai"
        assert document["dataMining"] == DMI_PROHIBITED_AIML
        assert document["dataMining"] == f"{PLUS}DMI-PROHIBITED-AIMLTRAINING"


@pytest.mark.parametrize(("choice", "robots"), [
    (f"{PLUS}DMI-PROHIBITED-GENAIMLTRAINING", "noai, noimageai"),
    (f"{PLUS}DMI-PROHIBITED", "noai, noimageai"),
    (f"{PLUS}DMI-ALLOWED", None),
    (f"{PLUS}DMI-UNSPECIFIED", None),
])
def test_the_artists_choice_is_what_travels(
    urls: Urls, storage: LocalStorage, choice: str, robots: str | None
) -> None:
    author = alice(urls, data_mining=choice)
    for document in (note_for(urls, storage, author=author),
                     account_to_actor(author, urls, storage)):
        assert document["dataMining"] == choice
        assert document.get("xRobotsTag") == robots


def test_a_value_outside_the_vocabulary_is_read_as_the_default(
    urls: Urls, storage: LocalStorage
) -> None:
    author = alice(urls, data_mining="http://example.com/anything")
    note = note_for(urls, storage, author=author)
    assert (note["dataMining"], note["xRobotsTag"]) == (DMI_PROHIBITED_AIML, "noai, noimageai")


def test_the_instance_actor_carries_no_opt_out(urls: Urls, storage: LocalStorage) -> None:
    instance = alice(urls, actor_type="Application", username="easel.test")
    assert "xRobotsTag" not in account_to_actor(instance, urls, storage)


def test_nothing_says_an_image_is_protected(urls: Urls, storage: LocalStorage) -> None:
    text = json.dumps([note_for(urls, storage), account_to_actor(alice(urls), urls, storage)])
    for word in ("protect", "perturb", "glaze", "cloak", "verif", "originals/"):
        assert word not in text.lower(), word


# ---------------------------------------------------------------------- read back

def test_easel_reads_back_what_it_wrote(urls: Urls, storage: LocalStorage) -> None:
    view = work_view(ai_generated=True)
    note = parse_note(note_for(urls, storage, view))
    assert note.work == RemoteWork(
        title="Harbour at Dusk", description="Plein-air study.\nSecond line.", year=2024,
        dimensions="40 × 50 cm", ai_generated=True,
        tags=(("field", ("Illustration", "Concept Art")), ("medium", ("Oil Painting",)),
              ("project_type", ("Personal",)), ("software", ("Krita",))))
    assert note.robots == "noai, noimageai"
    assert note.data_mining == DMI_PROHIBITED_AIML
    assert {h.name for h in note.hashtags} >= {"OilPainting", "Krita", "ConceptArt"}
    actor = parse_actor(account_to_actor(alice(urls), urls, storage))
    assert (actor.robots, actor.data_mining) == ("noai, noimageai", DMI_PROHIBITED_AIML)


def test_a_note_without_easel_terms_has_no_work_and_no_opt_out() -> None:
    note = parse_note({"id": "https://m.example/n/1", "type": "Note",
                       "attributedTo": "https://m.example/u/carol", "content": "hi"})
    assert (note.work, note.robots, note.data_mining) == (None, None, None)


# ------------------------------------------------------------------------ opt-out parsing

@pytest.mark.parametrize(("value", "expected"), [
    ("noai", "noai"),
    ("noai, noimageai", "noai, noimageai"),
    ("NoAI,NoImageAI , noai", "noai, noimageai"),
    (["noai", "noimageai"], "noai, noimageai"),
    (["noai", 3, None, {"x": 1}, ["noimageai"]], "noai"),
    ("googlebot:  noindex", "googlebot: noindex"),
    ("noai\r\nSet-Cookie: x=1", None),
    ("noai, <script>, noimageai", "noai, noimageai"),
    ("", None),
    (", , ,", None),
    (42, None),
    (True, None),
    ({"value": "noai"}, None),
    (None, None),
])
def test_x_robots_tag_is_read_as_sanitised_directives(value: Any, expected: str | None) -> None:
    assert parse_robots_tag(value) == expected


def test_x_robots_tag_is_bounded() -> None:
    huge = ", ".join(f"directive{n}" for n in range(10_000))
    parsed = parse_robots_tag(huge)
    assert parsed is not None and len(parsed) <= MAX_ROBOTS_CHARS
    assert parse_robots_tag("x" * 1_000_000) is None
    assert parse_robots_tag(["noai"] * 100_000) == "noai"


@pytest.mark.parametrize(("value", "expected"), [
    (f"{PLUS}DMI-PROHIBITED-AIMLTRAINING", f"{PLUS}DMI-PROHIBITED-AIMLTRAINING"),
    ("https://ns.useplus.org/ldf/vocab/DMI-ALLOWED", f"{PLUS}DMI-ALLOWED"),
    ("DMI-PROHIBITED-GENAIMLTRAINING", f"{PLUS}DMI-PROHIBITED-GENAIMLTRAINING"),
    ("plus:DMI-prohibited", f"{PLUS}DMI-PROHIBITED"),
    ({"id": f"{PLUS}DMI-UNSPECIFIED"}, f"{PLUS}DMI-UNSPECIFIED"),
    ("https://evil.example/DMI-ALLOWED", None),
    (f"{PLUS}DMI-ALLOWED<script>", None),
    (f"{PLUS}NOT-A-CODE", None),
    ("DMI-" + "A" * 500, None),
    (["DMI-ALLOWED"], None),
    (7, None),
    (None, None),
])
def test_data_mining_is_a_plus_uri_or_nothing(value: Any, expected: str | None) -> None:
    assert parse_data_mining(value) == expected


# ------------------------------------------------------------------- malformed portfolio

@pytest.mark.parametrize("value", [None, "Harbour", 7, ["title"], True])
def test_a_portfolio_that_is_not_an_object_is_no_work(value: Any) -> None:
    assert parse_work(value) is None


def test_wrong_types_are_dropped_part_by_part() -> None:
    work = parse_work({
        "title": 12, "description": ["a"], "year": "nineteen", "dimensions": {"w": 1},
        "aiGenerated": "true",
        "fields": "Illustration", "mediums": {"name": "Ink"},
        "projectTypes": [1, None, True, {"name": 5}, {"hashtag": "#Personal"}, ["Study"]],
        "categories": [{"name": "Landscape"}, "Portrait"], "software": 3,
    })
    assert work == RemoteWork(tags=(("field", ("Illustration",)), ("medium", ("Ink",)),
                                    ("category", ("Landscape", "Portrait"))))


@pytest.mark.parametrize(("year", "expected"), [
    (2024, 2024), ("1999", 1999), (True, None), (2024.5, None), (-5, None), (0, None),
    (99_999, None), (10 ** 40, None), ("2024-01-01", None), ("", None),
])
def test_the_year_is_a_plausible_integer(year: Any, expected: int | None) -> None:
    work = parse_work({"year": year})
    assert work is not None and work.year == expected


def test_huge_strings_are_bounded_and_html_is_plain_text() -> None:
    work = parse_work({
        "title": "<b>Big</b> " + "x" * 1_000_000,
        "description": "<p>one</p><script>alert(1)</script>" + "y" * 1_000_000,
        "dimensions": "z" * 1_000_000,
        "fields": [{"name": "A" * 1000}, {"name": "  <i>Concept</i>   Art "}, {"name": "!!!"}],
        "mediums": [{"name": f"Medium {n}"} for n in range(1000)],
    })
    assert work is not None
    assert work.title.startswith("Big x") and len(work.title) <= MAX_TITLE
    assert "<" not in work.title and "script" not in work.description
    assert len(work.description) <= 5000 and len(work.dimensions) <= 100
    tags = work.tags_by_kind()
    assert tags["field"] == ["Concept Art"]  # too long and letterless terms dropped
    assert len(tags["medium"]) == MAX_TERMS_PER_KIND
    assert all(len(name) <= MAX_TERM_LENGTH for names in tags.values() for name in names)


def test_repeated_spellings_of_one_term_are_kept_once() -> None:
    work = parse_work({"mediums": ["Digital Painting", "digital-painting", "#DigitalPainting",
                                   {"name": "Ink"}, "INK"]})
    assert work is not None and work.tags_by_kind() == {"medium": ["Digital Painting", "Ink"]}


def test_nested_junk_never_raises() -> None:
    deep: Any = "Ink"
    for _ in range(500):
        deep = [deep, {"name": deep}]
    junk = {"title": deep, "description": deep, "year": deep, "dimensions": deep,
            "aiGenerated": deep, **{term: deep for term in PORTFOLIO_TERMS.values()}}
    work = parse_work(junk)
    assert work is not None and work.title == "" and work.tags == ()
    note = parse_note({"id": "https://x.example/n/1", "type": "Note",
                       "attributedTo": "https://x.example/u/1", "portfolio": junk,
                       "xRobotsTag": deep, "dataMining": deep})
    assert note.work == work and note.robots is None and note.data_mining is None
