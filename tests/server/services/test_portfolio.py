"""The portfolio service: one term per spelling, works' tags and hashtags, what may be
browsed (``listed``) as a work is published, hidden, labelled or deleted, browsing by tags
(AND across kinds, OR within one, local/remote, pages), projects and pins."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import new_id
from server.models import (
    Account,
    Block,
    MediaAttachment,
    Mute,
    PortfolioTag,
    PortfolioTagAlias,
    Status,
    StatusTag,
    Tag,
    User,
    Work,
    WorkTag,
)
from server.services import portfolio, statuses
from server.services.errors import NotFound, ServiceError, ValidationFailed
from server.services.portfolio import WorkMeta, hashtag_for, normalise_key
from server.settings import Settings


async def media(db: Database, owner: User, state: str = "ready", **values: Any) -> int:
    async with db.session() as session:
        item = MediaAttachment(account_id=owner.account.id, state=state,
                               file_key="media/aa/bb/file.webp" if state == "ready" else None,
                               **values)
        session.add(item)
        await session.commit()
        return item.id


async def post_work(db: Database, settings: Settings, user: User, *, text: str = "A work",
                    meta: WorkMeta | None = None, state: str = "ready",
                    visibility: str = "public", **media_values: Any) -> Status:
    item = await media(db, user, state, **media_values)
    async with db.session() as session:
        return await statuses.create_status(session, settings, user.account, None, text=text,
                                            media_ids=[item], visibility=visibility, work=meta)


async def work_row(db: Database, status_id: int) -> Work | None:
    async with db.session() as session:
        return await session.get(Work, status_id)


async def tag_rows_listed(db: Database, status_id: int) -> set[bool]:
    async with db.session() as session:
        return set(await session.scalars(select(WorkTag.listed).where(
            WorkTag.status_id == status_id)))


async def suggest(db: Database, kind: str, name: str, *aliases: str) -> None:
    async with db.session() as session:
        await portfolio.add_suggestion(session, kind, name, aliases)


async def view(db: Database, status_id: int) -> portfolio.WorkView:
    async with db.session() as session:
        return (await portfolio.work_metadata(session, [status_id]))[status_id]


def names(work: portfolio.WorkView, kind: str) -> list[str]:
    return [t.name for t in work.tags[kind]]


# ------------------------------------------------------------------ normalisation

@pytest.mark.parametrize(("spelling", "key"), [
    ("Digital Painting", "digitalpainting"),
    ("digital-painting ", "digitalpainting"),
    ("#DigitalPainting", "digitalpainting"),
    ("ＤＩＧＩＴＡＬ　painting", "digitalpainting"),  # full-width (NFKC)
    ("Straße", "strasse"),  # case folding, not lower()
    ("Aquarelle à l'eau", "aquarelleàleau"),
    ("水彩", "水彩"),
    ("3D", "3d"),
    ("--", ""),
])
def test_every_spelling_of_a_term_has_one_key(spelling: str, key: str) -> None:
    assert normalise_key(spelling) == key


@pytest.mark.parametrize(("name", "hashtag"), [
    ("Digital Painting", "DigitalPainting"),
    ("digital painting", "DigitalPainting"),
    ("3D", "3D"),
    ("Children's Books", "ChildrenSBooks"),
    ("ZBrush", "ZBrush"),
    ("Clip Studio", "ClipStudio"),
])
def test_a_term_has_a_hashtag(name: str, hashtag: str) -> None:
    assert hashtag_for(name) == hashtag


async def test_spellings_resolve_to_one_term_created_with_the_first_spelling(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    first = await post_work(db, settings, alice, meta=WorkMeta(
        tags={"medium": ["  gouache   and  ink "]}))
    second = await post_work(db, settings, bob, meta=WorkMeta(
        tags={"medium": ["Gouache-and-Ink"]}))
    assert names(await view(db, first.id), "medium") == ["gouache and ink"]
    assert names(await view(db, second.id), "medium") == ["gouache and ink"]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(PortfolioTag).where(
            PortfolioTag.key == "gouacheandink")) == 1


async def test_aliases_resolve_within_their_kind_only(
    db: Database, settings: Settings, alice: User
) -> None:
    await suggest(db, "software", "Photoshop", "ps", "Adobe Photoshop")
    status = await post_work(db, settings, alice, meta=WorkMeta(
        tags={"software": ["PS", "adobe-photoshop"], "field": ["ps"]}))
    work = await view(db, status.id)
    assert names(work, "software") == ["Photoshop"]  # two aliases, one term
    assert names(work, "field") == ["ps"]  # another kind: a term of its own


async def test_the_terms_become_hashtags_in_the_text_and_the_tags(
    db: Database, settings: Settings, alice: User
) -> None:
    status = await post_work(db, settings, alice, text="Morning study #Gouache",
                             meta=WorkMeta(tags={"medium": ["gouache", "Digital Painting"],
                                                 "software": ["Krita"]}))
    async with db.session() as session:
        stored = await session.get(Status, status.id)
        assert stored is not None
        tags = set(await session.scalars(select(Tag.name).join(
            StatusTag, StatusTag.tag_id == Tag.id).where(StatusTag.status_id == status.id)))
    assert tags == {"gouache", "digitalpainting", "krita"}
    # The text's own hashtag is not repeated; the others follow in a last paragraph.
    assert stored.content.count("#<span>Gouache</span>") == 1
    assert stored.content.endswith(
        '<p><a href="https://easel.test/tags/digitalpainting" class="mention hashtag" '
        'rel="tag">#<span>DigitalPainting</span></a> <a href="https://easel.test/tags/krita" '
        'class="mention hashtag" rel="tag">#<span>Krita</span></a></p>')
    assert stored.text == "Morning study #Gouache"  # the source stays the author's


async def test_changing_the_terms_changes_the_hashtags(
    db: Database, settings: Settings, alice: User
) -> None:
    status = await post_work(db, settings, alice, meta=WorkMeta(tags={"medium": ["Ink"]}))
    async with db.session() as session:
        await statuses.edit_work(session, alice.account, status.id,
                                 WorkMeta(tags={"medium": ["Charcoal"]}))
        tags = set(await session.scalars(select(Tag.name).join(
            StatusTag, StatusTag.tag_id == Tag.id).where(StatusTag.status_id == status.id)))
        stored = await session.get(Status, status.id)
    assert tags == {"charcoal"}
    assert stored is not None and "Ink" not in stored.content and "Charcoal" in stored.content


@pytest.mark.parametrize(("meta", "message"), [
    (WorkMeta(title="t" * 201), "Title is too long"),
    (WorkMeta(description="d" * 5001), "Description is too long"),
    (WorkMeta(dimensions="x" * 101), "Dimensions is too long"),
    (WorkMeta(year=999), "Year must be between"),
    (WorkMeta(year=9999), "Year must be between"),
    (WorkMeta(tags={"colour": ["red"]}), "Unknown portfolio tag kind"),
    (WorkMeta(tags={"medium": [f"m{i}" for i in range(11)]}), "Too many medium terms"),
    (WorkMeta(tags={"medium": ["x" * 65]}), "is too long"),
    (WorkMeta(tags={"medium": ["!!!"]}), "needs a letter or a digit"),
])
async def test_bad_metadata_is_refused_with_nothing_written(
    db: Database, settings: Settings, alice: User, meta: WorkMeta, message: str
) -> None:
    item = await media(db, alice)
    async with db.session() as session:
        with pytest.raises(ValidationFailed, match=message):
            await statuses.create_status(session, settings, alice.account, None,
                                         media_ids=[item], work=meta)
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Status)) == 0
        assert await session.scalar(select(func.count()).select_from(Work)) == 0


async def test_a_term_may_be_64_characters_after_trimming(
    db: Database, settings: Settings, alice: User
) -> None:
    status = await post_work(db, settings, alice, meta=WorkMeta(
        tags={"category": ["   " + "a" * 64 + "   "]}, year=2026, title="Ok"))
    assert names(await view(db, status.id), "category") == ["a" * 64]


async def test_metadata_needs_an_image(db: Database, settings: Settings, alice: User) -> None:
    async with db.session() as session:
        with pytest.raises(ValidationFailed, match="needs at least one image"):
            await statuses.create_status(session, settings, alice.account, None, text="hi",
                                         work=WorkMeta(title="No image"))


# ------------------------------------------------------------------ Mastodon clients' hashtags

async def test_hashtags_of_a_plain_post_become_suggested_terms(
    db: Database, settings: Settings, alice: User
) -> None:
    await suggest(db, "software", "Clip Studio", "csp")
    await suggest(db, "medium", "Watercolour", "watercolor")
    await suggest(db, "field", "Architecture")
    await suggest(db, "category", "Architecture")
    status = await post_work(db, settings, alice,
                             text="New one #watercolor #CSP #architecture #notaterm")
    work = await view(db, status.id)
    assert names(work, "medium") == ["Watercolour"]
    assert names(work, "software") == ["Clip Studio"]
    # Ambiguous across kinds: both.
    assert names(work, "field") == ["Architecture"]
    assert names(work, "category") == ["Architecture"]
    assert sum(len(terms) for terms in work.tags.values()) == 4


async def test_every_status_with_images_is_a_work(
    db: Database, settings: Settings, alice: User
) -> None:
    status = await post_work(db, settings, alice, text="no tags at all")
    found = await work_row(db, status.id)
    assert found is not None and found.local and found.listed
    async with db.session() as session:
        text_only = await statuses.create_status(session, settings, alice.account, None,
                                                 text="just words")
    assert await work_row(db, text_only.id) is None


async def test_recognising_hashtags_of_a_remote_note(
    db: Database, settings: Settings, alice: User
) -> None:
    await suggest(db, "medium", "Ink")
    async with db.session() as session:
        remote = Account(username="carol", username_key="carol", domain="remote.example",
                         uri="https://remote.example/users/carol")
        session.add(remote)
        await session.flush()
        note = Status(account_id=remote.id, uri="https://remote.example/notes/1",
                      content="<p>#ink</p>", local=False, published=True)
        session.add(note)
        await session.flush()
        await portfolio.recognise_hashtags(session, note, ["Ink"])
        await session.commit()
        note_id = note.id
    found = await work_row(db, note_id)
    assert found is not None and not found.local and found.listed
    assert names(await view(db, note_id), "medium") == ["Ink"]


# ------------------------------------------------------------------ listed

async def test_a_work_is_listed_once_published_and_its_rows_follow_a_renumbering(
    db: Database, settings: Settings, alice: User
) -> None:
    status = await post_work(db, settings, alice, state="processing",
                             meta=WorkMeta(title="Later", tags={"medium": ["Oil"]}))
    found = await work_row(db, status.id)
    assert found is not None and not found.listed
    assert await tag_rows_listed(db, status.id) == {False}
    async with db.session() as session:
        await session.execute(update(MediaAttachment).values(state="ready"))
        assert await statuses.publish_if_ready(session, status.id)
        await session.commit()
        new_id_ = await statuses.current_id(session, status.id)
    assert new_id_ != status.id
    assert await work_row(db, status.id) is None
    moved = await work_row(db, new_id_)
    assert moved is not None and moved.listed and moved.title == "Later"
    assert await tag_rows_listed(db, new_id_) == {True}


@pytest.mark.parametrize("visibility", ["unlisted", "private", "direct"])
async def test_only_public_works_are_listed(
    db: Database, settings: Settings, alice: User, visibility: str
) -> None:
    status = await post_work(db, settings, alice, visibility=visibility,
                             meta=WorkMeta(tags={"medium": ["Ink"]}))
    found = await work_row(db, status.id)
    assert found is not None and not found.listed
    assert await tag_rows_listed(db, status.id) == {False}


async def test_a_visibility_change_is_followed_by_refresh_listed(
    db: Database, settings: Settings, alice: User
) -> None:
    status = await post_work(db, settings, alice, meta=WorkMeta(tags={"medium": ["Ink"]}))
    async with db.session() as session:
        stored = await session.get(Status, status.id)
        assert stored is not None
        stored.visibility = "private"
        await portfolio.refresh_listed(session, stored)
        await session.commit()
    assert await tag_rows_listed(db, status.id) == {False}


async def test_ai_generated_works_are_labelled_and_never_listed(
    db: Database, settings: Settings, alice: User
) -> None:
    flagged = await post_work(db, settings, alice, meta=WorkMeta(ai_generated=True))
    screened = await post_work(db, settings, alice, ai_provenance="XMP DigitalSourceType "
                                                                  "trainedAlgorithmicMedia")
    for status in (flagged, screened):
        found = await work_row(db, status.id)
        assert found is not None and found.ai_generated and not found.listed
    # The media's provenance cannot be edited away.
    async with db.session() as session:
        await statuses.edit_work(session, alice.account, screened.id,
                                 WorkMeta(ai_generated=False))
    assert (await view(db, screened.id)).ai_generated


async def test_deleting_a_work_deletes_its_rows(
    db: Database, settings: Settings, alice: User
) -> None:
    status = await post_work(db, settings, alice, meta=WorkMeta(tags={"medium": ["Ink"]}))
    async with db.session() as session:
        await statuses.delete_status(session, await statuses.own_status(
            session, alice.account, status.id))
    async with db.session() as session:
        assert await session.get(Work, status.id) is None
        assert await session.scalar(select(func.count()).select_from(WorkTag)) == 0


# ------------------------------------------------------------------ browse

async def browse(db: Database, filters: dict[str, list[str]], **options: Any) -> list[int]:
    async with db.session() as session:
        return [s.id for s in await portfolio.browse(session, None, filters, **options)]


async def test_browse_is_and_across_kinds_and_or_within_one(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    oil_portrait = await post_work(db, settings, alice, meta=WorkMeta(
        tags={"medium": ["Oil"], "category": ["Portrait"]}))
    ink_portrait = await post_work(db, settings, bob, meta=WorkMeta(
        tags={"medium": ["Ink"], "category": ["Portrait"], "software": ["Krita"]}))
    oil_landscape = await post_work(db, settings, alice, meta=WorkMeta(
        tags={"medium": ["oil", "Ink"], "category": ["Landscape"]}))
    hidden = await post_work(db, settings, alice, visibility="unlisted", meta=WorkMeta(
        tags={"medium": ["Oil"], "category": ["Portrait"]}))

    assert await browse(db, {"medium": ["OIL"]}) == [oil_landscape.id, oil_portrait.id]
    assert await browse(db, {"medium": ["oil", "ink"]}) == [
        oil_landscape.id, ink_portrait.id, oil_portrait.id]
    assert await browse(db, {"medium": ["oil"], "category": ["portrait"]}) == [oil_portrait.id]
    assert await browse(db, {"medium": ["oil", "ink"], "category": ["portrait"],
                             "software": ["krita"]}) == [ink_portrait.id]
    assert await browse(db, {"medium": ["oil"], "category": ["nothing-like-it"]}) == []
    assert await browse(db, {}) == [oil_landscape.id, ink_portrait.id, oil_portrait.id]
    assert hidden.id not in await browse(db, {"medium": ["oil"]})
    with pytest.raises(ValidationFailed, match="Unknown portfolio tag kind"):
        await browse(db, {"colour": ["red"]})


async def test_browse_by_an_alias(db: Database, settings: Settings, alice: User) -> None:
    await suggest(db, "medium", "Watercolour", "watercolor")
    status = await post_work(db, settings, alice, meta=WorkMeta(tags={"medium": ["Watercolour"]}))
    assert await browse(db, {"medium": ["watercolor"]}) == [status.id]


async def test_browse_local_or_remote_and_pages(
    db: Database, settings: Settings, alice: User
) -> None:
    local_ids = [(await post_work(db, settings, alice, meta=WorkMeta(
        tags={"medium": ["Ink"]}))).id for _ in range(3)]
    async with db.session() as session:
        remote = Account(username="carol", username_key="carol", domain="remote.example",
                         uri="https://remote.example/users/carol")
        session.add(remote)
        await session.flush()
        note = Status(id=new_id(), account_id=remote.id, uri="https://remote.example/notes/1",
                      local=False, published=True)
        session.add(note)
        await session.flush()
        await portfolio.set_work_metadata(session, note, WorkMeta(tags={"medium": ["ink"]}))
        await session.commit()
        remote_id = note.id
    ink = {"medium": ["ink"]}
    assert await browse(db, ink, local=False) == [remote_id]
    assert await browse(db, ink, local=True) == sorted(local_ids, reverse=True)
    assert await browse(db, {}, local=False) == [remote_id]
    everything = sorted([*local_ids, remote_id], reverse=True)
    assert await browse(db, ink) == everything
    assert await browse(db, ink, limit=2) == everything[:2]
    assert await browse(db, ink, limit=2, max_id=everything[1]) == everything[2:4]
    assert await browse(db, ink, since_id=everything[2]) == everything[:2]
    assert await browse(db, ink, min_id=everything[3], limit=2) == everything[1:3]


async def test_browse_leaves_out_what_the_viewer_blocks_or_mutes(
    db: Database, settings: Settings, alice: User, bob: User, carol: User
) -> None:
    alices = await post_work(db, settings, alice, meta=WorkMeta(tags={"medium": ["Ink"]}))
    bobs = await post_work(db, settings, bob, meta=WorkMeta(tags={"medium": ["Ink"]}))

    async def seen_by(viewer: User) -> list[int]:
        async with db.session() as session:
            account = await session.get(Account, viewer.account_id)
            return [s.id for s in await portfolio.browse(session, account, {"medium": ["ink"]})]

    assert await seen_by(carol) == [bobs.id, alices.id]
    async with db.session() as session:
        session.add(Mute(account_id=carol.account_id, target_account_id=alice.account_id))
        session.add(Block(account_id=bob.account_id, target_account_id=carol.account_id))
        await session.commit()
    assert await seen_by(carol) == []  # muted alice; bob blocks carol
    assert await seen_by(alice) == [bobs.id, alices.id]
    assert await browse(db, {"medium": ["ink"]}) == [bobs.id, alices.id]  # anonymous


# ------------------------------------------------------------------ projects

async def test_projects_hold_the_owners_works_in_order_with_a_cover(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    one = await post_work(db, settings, alice)
    two = await post_work(db, settings, alice, state="processing")  # unpublished is fine
    bobs = await post_work(db, settings, bob)
    async with db.session() as session:
        created = await portfolio.create_project(session, alice.account, title=" Sketchbook ",
                                                 work_ids=[two.id, one.id])
        assert created.project.title == "Sketchbook"
        assert created.work_ids == [two.id, one.id] and created.cover_id == two.id
        with pytest.raises(ValidationFailed, match="not found among your works"):
            await portfolio.set_project_works(session, alice.account, created.project.id,
                                              [one.id, bobs.id])
        with pytest.raises(ValidationFailed, match="cover"):
            await portfolio.update_project(session, alice.account, created.project.id,
                                           cover_id=bobs.id)
        updated = await portfolio.update_project(session, alice.account, created.project.id,
                                                 cover_id=one.id, description="Pages")
        assert updated.cover_id == one.id
        with pytest.raises(NotFound):
            await portfolio.update_project(session, bob.account, created.project.id, title="x")
        second = await portfolio.create_project(session, alice.account, title="Second")
        ordered = await portfolio.reorder_projects(session, alice.account, [second.project.id])
        assert [p.id for p in ordered] == [second.project.id, created.project.id]
        # Others see only the published works (and not an empty project).
        seen = await portfolio.projects_of(session, bob.account, alice.account.id)
        assert [(v.project.id, v.work_ids) for v in seen] == [(created.project.id, [one.id])]
        await portfolio.delete_project(session, alice.account, second.project.id)
        assert len(await portfolio.projects_of(session, alice.account, alice.account.id)) == 1


# ------------------------------------------------------------------ pins

async def test_pins_follow_mastodons_rules(
    db: Database, settings: Settings, alice: User, bob: User
) -> None:
    works = [await post_work(db, settings, alice) for _ in range(6)]
    private = await post_work(db, settings, alice, visibility="private")
    bobs = await post_work(db, settings, bob)
    async with db.session() as session:
        for work in works[:5]:
            await statuses.pin_status(session, alice.account, work.id)
        await statuses.pin_status(session, alice.account, works[0].id)  # idempotent
        with pytest.raises(ServiceError, match="maximum number of posts"):
            await statuses.pin_status(session, alice.account, works[5].id)
        with pytest.raises(ServiceError, match="Someone else's post cannot be pinned"):
            await statuses.pin_status(session, alice.account, bobs.id)
        with pytest.raises(ServiceError, match="public and unlisted"):
            await statuses.pin_status(session, alice.account, private.id)
        assert await portfolio.pinned_ids(session, alice.account.id) == [
            w.id for w in reversed(works[:5])]
        await statuses.unpin_status(session, alice.account, works[4].id)
        await statuses.unpin_status(session, alice.account, works[4].id)  # idempotent
        assert works[4].id not in await portfolio.pinned_ids(session, alice.account.id)
        pinned, page = await portfolio.portfolio(session, bob.account, alice.account, limit=3)
        assert [s.id for s in pinned] == [w.id for w in reversed(works[:4])]
        assert [s.id for s in page] == [works[5].id, works[4].id]  # private: not for bob


# ------------------------------------------------------------------ vocabulary

async def test_the_vocabulary_is_curated_by_kind(db: Database) -> None:
    async with db.session() as session:
        await portfolio.add_suggestion(session, "software", "Aseprite")
        await portfolio.add_suggestion(session, "software", "Krita")
        await portfolio.add_alias(session, "software", "krita", "KritaApp")
        ordered = await portfolio.reorder_suggestions(session, "software", ["Krita", "Aseprite"])
        assert [s.term.name for s in ordered][:2] == ["Krita", "Aseprite"]
        lists = await portfolio.vocabulary(session, "software")
        assert [s.term.name for s in lists["software"]][:2] == ["Krita", "Aseprite"]
        krita = lists["software"][0]
        assert "kritaapp" in krita.aliases and krita.hashtag == "Krita"
        with pytest.raises(ValidationFailed, match="already an alias"):
            await portfolio.add_alias(session, "software", "Aseprite", "kritaapp")
        with pytest.raises(ValidationFailed, match="Unknown portfolio tag kind"):
            await portfolio.add_suggestion(session, "colour", "Red")
        removed = await portfolio.remove_suggestion(session, "software", "KRITA")
        assert not removed.suggested
        with pytest.raises(NotFound):
            await portfolio.remove_suggestion(session, "software", "Krita")
        assert "Krita" not in [s.term.name for s in
                               (await portfolio.vocabulary(session, "software"))["software"]]
        assert await session.scalar(select(func.count()).select_from(PortfolioTagAlias).where(
            PortfolioTagAlias.key == "kritaapp")) == 1


async def test_the_vocabulary_cli(settings: Settings, db: Database,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from server import commands
    from server.cli import build_parser

    async def run(*argv: str) -> str:
        args = build_parser().parse_args(["admin", "vocabulary", *argv])
        assert await commands.vocabulary(settings, args) == 0
        return capsys.readouterr().out

    assert "Tempera" in await run("add", "medium", "Tempera", "--alias", "egg tempera")
    assert "Casein" in await run("add", "medium", "Casein")
    assert "aliases: eggtempera" in await run("alias", "medium", "tempera", "egg tempera")
    ordered = await run("order", "medium", "Casein", "Tempera")
    assert ordered.index("Casein") < ordered.index("Tempera")
    listed = await run("list", "medium")
    assert listed.index("Casein") < listed.index("Tempera") and "#Tempera" in listed
    assert "no longer suggested" in await run("remove", "medium", "Tempera")
    assert "Tempera" not in await run("list", "medium")
    with pytest.raises(commands.CommandError, match="No suggested medium"):
        await run("remove", "medium", "Tempera")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["admin", "vocabulary", "add", "colour", "Red"])
