"""The public pages: home, browse, portfolio, work, tag — what they show, what they hide,
their OpenGraph tags, content negotiation and bad input."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from sqlalchemy import select, update

from server.db import Database
from server.models import (
    Account,
    MediaAttachment,
    MediaState,
    PreviewCard,
    Project,
    ProjectWork,
    Status,
    StatusPin,
    StatusPreviewCard,
    User,
)
from server.services.statuses import create_status, current_id, publish_if_ready
from server.settings import Settings
from tests.server.web.works import BLURHASH, Image, NewWork, add_work, remote_account, suggest

AP = "application/activity+json"
DMI_AI = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"


async def account_of(db: Database, user: User) -> Account:
    async with db.session() as session:
        account = await session.get(Account, user.account_id)
        assert account is not None
        return account


def meta(page: httpx.Response, prop: str) -> str | None:
    match = re.search(rf'<meta (?:property|name)="{re.escape(prop)}" content="([^"]*)">', page.text)
    return html.unescape(match.group(1)) if match else None


def work_links(page: httpx.Response) -> list[str]:
    return re.findall(r'<a class="card-link" href="(/@[^"]+)"', page.text)


@pytest.fixture
async def heron(db: Database, settings: Settings, alice: User) -> int:
    await suggest(db, "medium", "Watercolour", ["watercolor"])
    status = await add_work(db, settings, await account_of(db, alice), NewWork(
        text="Morning by the river #inktober", title="Heron at dawn",
        description="Brush and ink on paper.", year=2024, dimensions="30 × 40 cm",
        tags={"field": ["Illustration"], "medium": ["Ink", "Watercolor"], "software": []},
        images=[Image("A grey heron standing in reeds", 1600, 1200),
                Image("Detail of the heron's head", 1200, 1600)]))
    return status.id


# --------------------------------------------------------------------------- work page

async def test_work_page_shows_images_metadata_and_links(client: httpx.AsyncClient, heron: int) -> None:
    page = await client.get(f"/@alice/{heron}")
    assert page.status_code == 200
    text = page.text
    assert "<h1>Heron at dawn</h1>" in text
    assert "Brush and ink on paper." in text and "2024" in text and "30 × 40 cm" in text
    # Every portfolio term links to its filtered browse page; hashtags to tag pages.
    assert 'href="/works?medium=Ink"' in text and 'href="/works?medium=Watercolour"' in text
    assert 'href="/works?field=Illustration"' in text
    assert 'href="/tags/inktober"' in text
    # All images large, with alt text, sizes, srcset (small and full), lazy, async, w/h.
    images = re.findall(r'<img class="image"[^>]*>', text)
    assert len(images) == 2
    for tag, alt in zip(images, ["A grey heron standing in reeds", "Detail of the heron&#39;s head"],
                        strict=True):
        assert f'alt="{alt}"' in tag
        assert re.search(r'srcset="https://easel.test/system/media/small_\d+_\d\.jpg 400w, '
                         r'https://easel.test/system/media/full_\d+_\d\.jpg (1600|1200)w"', tag)
        assert 'sizes="' in tag and 'decoding="async"' in tag
        assert re.search(r'width="\d+" height="\d+"', tag)
    assert 'loading="lazy"' in images[1]
    assert 'width="1200" height="1600"' in images[1]
    # Blurhash placeholders are tiny PNG data: URIs, no inline style.
    placeholders = re.findall(r'<img class="placeholder" src="(data:image/png;base64,[^"]+)" alt="" '
                              r'aria-hidden="true">', text)
    assert len(placeholders) == 2
    # Never the original, never a word about protection.
    assert "secret_original" not in text and "originals/" not in text
    assert "never shown" not in text
    for word in ("protected", "protection", "perturb", "glaze", "cloak"):
        assert word not in text.lower(), word


async def test_work_page_opengraph(client: httpx.AsyncClient, heron: int) -> None:
    page = await client.get(f"/@alice/{heron}")
    assert meta(page, "og:title") == "Heron at dawn — alice"
    assert meta(page, "og:description") == "Brush and ink on paper."
    assert meta(page, "og:type") == "article"
    assert meta(page, "og:url") == f"https://easel.test/@alice/{heron}"
    image = meta(page, "og:image")
    assert image is not None and re.fullmatch(r"https://easel.test/system/media/small_\d+_0\.jpg", image)
    assert meta(page, "og:image:width") == "400" and meta(page, "og:image:height") == "300"
    assert meta(page, "og:image:alt") == "A grey heron standing in reeds"
    assert meta(page, "twitter:card") == "summary_large_image"
    assert (f'<link rel="alternate" type="application/activity+json" '
            f'href="https://easel.test/users/alice/statuses/{heron}">') in page.text


async def test_work_content_negotiation(client: httpx.AsyncClient, heron: int) -> None:
    for accept in (AP, 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'):
        response = await client.get(f"/@alice/{heron}", headers={"Accept": accept})
        assert response.status_code == 302
        assert response.headers["location"] == f"https://easel.test/users/alice/statuses/{heron}"
        assert "Accept" in response.headers["vary"]
    page = await client.get(f"/@alice/{heron}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Accept" in page.headers["vary"]


@pytest.mark.parametrize("change", [
    {"visibility": "private"}, {"visibility": "direct"}, {"published": False}])
async def test_works_nobody_may_see_are_404(client: httpx.AsyncClient, db: Database, settings: Settings,
                                           alice: User, change: dict[str, object]) -> None:
    status = await add_work(db, settings, await account_of(db, alice), NewWork(title="Secret", **change))  # type: ignore[arg-type]
    page = await client.get(f"/@alice/{status.id}")
    assert page.status_code == 404 and "Secret" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    negotiated = await client.get(f"/@alice/{status.id}", headers={"Accept": AP})
    assert negotiated.status_code == 404
    for path in ("/", "/@alice", "/works", "/tags/inktober"):
        assert "Secret" not in (await client.get(path)).text, path


async def test_unlisted_work_has_a_page_but_is_not_listed(client: httpx.AsyncClient, db: Database,
                                                          settings: Settings, alice: User) -> None:
    status = await add_work(db, settings, await account_of(db, alice),
                            NewWork(title="Quiet one", visibility="unlisted"))
    assert "Quiet one" in (await client.get(f"/@alice/{status.id}")).text
    assert "Quiet one" not in (await client.get("/")).text
    assert "Quiet one" not in (await client.get("/works")).text


async def test_work_under_another_name_is_404(client: httpx.AsyncClient, bob: User, heron: int) -> None:
    assert (await client.get(f"/@bob/{heron}")).status_code == 404
    assert (await client.get(f"/@nobody/{heron}")).status_code == 404


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "1e5", "99999999999999999999999",
                                 "9223372036854775808", "１２３", "%20", "12abc"])
async def test_bad_ids_are_404_not_500(client: httpx.AsyncClient, alice: User, bad: str) -> None:
    page = await client.get(f"/@alice/{bad}")
    assert page.status_code == 404
    assert (await client.get(f"/@alice/{bad}", headers={"Accept": AP})).status_code == 404
    assert (await client.get(f"/?max_id={bad}")).status_code == 200
    assert (await client.get(f"/@alice?max_id={bad}")).status_code == 200
    assert (await client.get(f"/works?max_id={bad}")).status_code == 200
    assert (await client.get(f"/@alice?project={bad}")).status_code == 404


async def test_sensitive_work_is_behind_a_click_without_javascript(
        client: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    status = await add_work(db, settings, await account_of(db, alice), NewWork(
        title="Study", sensitive=True, spoiler_text="Nudity", tags={"field": ["Fine Art"]}))
    page = await client.get(f"/@alice/{status.id}")
    assert page.status_code == 200
    match = re.search(r'<details class="sensitive">\s*<summary>Nudity — show image</summary>(.*?)</details>',
                      page.text, re.S)
    assert match and '<img class="image"' in match.group(1)
    assert page.text.count('<img class="image"') == 1  # only inside the details
    assert meta(page, "og:image") is None and meta(page, "og:description") == "Nudity"
    assert meta(page, "twitter:card") == "summary"
    # In grids, a sensitive work shows only its blurred placeholder and its warning.
    home = await client.get("/")
    card = re.search(rf'<a class="card-link" href="/@alice/{status.id}">(.*?)</a>', home.text, re.S)
    assert card and '<img class="image"' not in card.group(1) and "Nudity" in card.group(1)


async def test_ai_generated_label(client: httpx.AsyncClient, db: Database, settings: Settings,
                                  alice: User) -> None:
    status = await add_work(db, settings, await account_of(db, alice),
                            NewWork(title="Made with a model", ai_generated=True))
    page = await client.get(f"/@alice/{status.id}")
    assert 'class="label-ai"' in page.text and "AI-generated" in page.text
    # Labelled works are kept out of browsing.
    assert "Made with a model" not in (await client.get("/")).text
    assert "Made with a model" not in (await client.get("/works")).text


async def test_remote_work_page_and_its_opt_out(client: httpx.AsyncClient, db: Database,
                                                settings: Settings) -> None:
    rita = await remote_account(db, robots="noai, noimageai", data_mining=DMI_AI)
    status = await add_work(db, settings, rita, NewWork(
        text="Harbour at night #nocturne", title="Harbour", tags={"medium": ["Oil"]}))
    page = await client.get(f"/@rita@remote.example/{status.id}")
    assert page.status_code == 200
    assert "<h1>Harbour</h1>" in page.text and 'href="/works?medium=Oil"' in page.text
    assert "not for AI or machine-learning training" in page.text
    assert "<code>noai, noimageai</code>" in page.text
    # The remote image is shown from its server, which the CSP allows for this page only.
    assert f'src="https://cdn.remote.example/media/{status.id}-0.jpg"' in page.text
    assert "img-src 'self' data: https://cdn.remote.example;" in page.headers["content-security-policy"]
    assert meta(page, "og:image") == f"https://cdn.remote.example/media/{status.id}-0.jpg"
    negotiated = await client.get(f"/@rita@remote.example/{status.id}", headers={"Accept": AP})
    assert negotiated.status_code == 302 and negotiated.headers["location"] == status.uri
    # The work's own statement wins over the actor's.
    other = await add_work(db, settings, rita, NewWork(title="Allowed", robots="all",
                                                       data_mining="http://ns.useplus.org/ldf/vocab/DMI-ALLOWED"))
    allowed = await client.get(f"/@rita@remote.example/{other.id}")
    assert "data mining allowed" in allowed.text and "<code>all</code>" in allowed.text
    # A remote artist without a statement shows none.
    quiet = await remote_account(db, "quinn")
    silent = await add_work(db, settings, quiet, NewWork(title="Quiet"))
    assert 'class="optout"' not in (await client.get(f"/@quinn@remote.example/{silent.id}")).text


async def add_link_card(db: Database, status_id: int, url: str = "https://blog.example/heron") -> None:
    """The card ``federation.link_cards`` would have fetched for the status's first link."""
    async with db.session() as session:
        card = PreviewCard(url=url, title="Notes on the heron", description="A long read",
                           provider_name="Blog")
        session.add(card)
        await session.flush()
        session.add(StatusPreviewCard(status_id=status_id, preview_card_id=card.id, url=url))
        await session.commit()


def folded(page: httpx.Response) -> str:
    """Everything inside the page's content-warning folds (``<details>``)."""
    return "".join(re.findall(r"<details class=\"sensitive\">(.*?)</details>", page.text, re.S))


@pytest.mark.parametrize("images", [[Image()], []], ids=["with-images", "text-only"])
async def test_a_content_warning_folds_the_text_and_the_link_card_too(
        client: httpx.AsyncClient, db: Database, settings: Settings, alice: User,
        images: list[Image]) -> None:
    status = await add_work(db, settings, await account_of(db, alice), NewWork(
        text="SECRET-BODY https://blog.example/heron", title="Study", sensitive=True,
        spoiler_text="Gore", images=images))
    await add_link_card(db, status.id)
    page = await client.get(f"/@alice/{status.id}")
    assert page.status_code == 200
    inside = folded(page)
    assert "SECRET-BODY" in inside and "Notes on the heron" in inside
    assert page.text.count("SECRET-BODY") == 1 and page.text.count("Notes on the heron") == 1
    assert "SECRET-BODY" not in (meta(page, "og:description") or "")
    if images:  # the images have their own fold; the text's says what it opens
        assert "<summary>Gore — show image</summary>" in page.text
        assert "<summary>Gore — show text</summary>" in page.text
        assert page.text.count('<img class="image"') == 1 and '<img class="image"' in inside


async def test_a_content_warning_without_the_sensitive_flag_folds_everything(
        client: httpx.AsyncClient, db: Database, settings: Settings) -> None:
    # Other servers send a warning without marking the media sensitive: it still folds.
    rita = await remote_account(db)
    status = await add_work(db, settings, rita, NewWork(text="SECRET-BODY", title="Harbour",
                                                        spoiler_text="Spoilers"))
    page = await client.get(f"/@rita@remote.example/{status.id}")
    inside = folded(page)
    assert "SECRET-BODY" in inside and '<img class="image"' in inside
    assert page.text.count("SECRET-BODY") == 1 and page.text.count('<img class="image"') == 1
    assert meta(page, "og:image") is None and meta(page, "og:description") == "Spoilers"
    # Its card in the artist's grid shows the warning over a blurred placeholder.
    portfolio = await client.get("/@rita@remote.example")
    card = re.search(rf'<a class="card-link" href="/@rita@remote.example/{status.id}">(.*?)</a>',
                     portfolio.text, re.S)
    assert card and "Spoilers" in card.group(1) and '<img class="image"' not in card.group(1)


async def test_a_works_alt_text_is_read_once_and_its_text_has_its_language(
        client: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    status = await add_work(db, settings, await account_of(db, alice), NewWork(
        text="Un héron à l'aube", title="Héron", images=[Image("Un héron gris")]))
    async with db.session() as session:
        row = await session.get(Status, status.id)
        assert row is not None
        row.language = "fr"
        await session.commit()
    page = await client.get(f"/@alice/{status.id}")
    # The alt is the image's name; the caption showing it is hidden from screen readers.
    assert 'alt="Un héron gris"' in page.text
    assert '<figcaption aria-hidden="true">Un héron gris</figcaption>' in page.text
    assert '<div class="content" lang="fr">' in page.text


async def test_a_works_first_id_is_a_permanent_redirect_to_its_page(
        client: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    # Posted while its image was processing, the status is published under a new id.
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        media = MediaAttachment(account_id=account.id, state=MediaState.PROCESSING.value)
        session.add(media)
        await session.commit()
        status = await create_status(session, settings, account, None, text="A new heron",
                                     media_ids=[media.id])
        first_id = status.id
    async with db.session() as session:
        await session.execute(update(MediaAttachment).values(state=MediaState.READY.value))
        assert await publish_if_ready(session, first_id)
        await session.commit()
        published = await current_id(session, first_id)
    assert published != first_id
    assert (await client.get(f"/@alice/{published}")).status_code == 200
    moved = await client.get(f"/@alice/{first_id}")
    assert moved.status_code == 301 and moved.headers["location"] == f"/@alice/{published}"
    assert "content-security-policy" in moved.headers
    # Only under its own author's name, and not for a work nobody may see any more.
    assert (await client.get(f"/@bob/{first_id}")).status_code == 404
    async with db.session() as session:
        await session.execute(update(Status).where(Status.id == published)
                              .values(visibility="private"))
        await session.commit()
    assert (await client.get(f"/@alice/{first_id}")).status_code == 404


async def test_remote_video_and_audio_are_links_to_their_origin(
        client: httpx.AsyncClient, db: Database, settings: Settings) -> None:
    rita = await remote_account(db)
    status = await add_work(db, settings, rita, NewWork(text="My animation #inktober", images=[]))
    async with db.session() as session:
        for kind, url in (("video", "https://cdn.remote.example/clip.mp4"),
                          ("gifv", "https://cdn.remote.example/loop.mp4"),
                          ("audio", "https://cdn.remote.example/song.mp3"),
                          ("unknown", "https://cdn.remote.example/file.bin")):
            session.add(MediaAttachment(account_id=rita.id, status_id=status.id, type=kind,
                                        state=MediaState.READY.value, remote_url=url,
                                        description=f"The {kind}" if kind != "unknown" else ""))
        await session.commit()
    page = await client.get(f"/@rita@remote.example/{status.id}")
    links = re.search(r'<ul class="attachment-links">(.*?)</ul>', page.text, re.S)
    assert links, page.text
    assert re.findall(r'<li>(\w+): <a href="([^"]+)"[^>]*>([^<]+)</a></li>', links.group(1)) == [
        ("Video", "https://cdn.remote.example/clip.mp4", "The video"),
        ("Video", "https://cdn.remote.example/loop.mp4", "The gifv"),  # an MP4, not an <img>
        ("Audio", "https://cdn.remote.example/song.mp3", "The audio"),
        ("Attachment", "https://cdn.remote.example/file.bin", "https://cdn.remote.example/file.bin")]
    assert '<img class="image"' not in page.text
    # The card says there is more than its text.
    tag = await client.get("/tags/inktober")
    assert '<span class="badge">4 attachments</span>' in tag.text


# ------------------------------------------------------------------------------ home

async def test_home_lists_recent_local_works_newest_first_and_pages(
        client: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    account = await account_of(db, alice)
    await suggest(db, "medium", "Gouache")
    ids = [(await add_work(db, settings, account, NewWork(title=f"Work {n}"))).id for n in range(30)]
    rita = await remote_account(db)
    await add_work(db, settings, rita, NewWork(title="From afar"))
    page = await client.get("/")
    assert page.status_code == 200
    links = work_links(page)
    assert links == [f"/@alice/{i}" for i in reversed(ids)][:24]
    assert "From afar" not in page.text  # the home page is this server's works
    next_url = re.search(r'<a href="([^"]+)" rel="next">', page.text)
    assert next_url
    second = await client.get(html.unescape(next_url.group(1)))
    assert work_links(second) == [f"/@alice/{i}" for i in reversed(ids)][24:]
    assert 'rel="next"' not in second.text
    # Tag filter links from the suggested vocabulary.
    assert '<a class="chip" href="/works?medium=Gouache">Gouache</a>' in page.text
    assert meta(page, "og:type") == "website" and meta(page, "og:image")


async def test_home_leaves_out_text_posts_and_boosts(client: httpx.AsyncClient, db: Database,
                                                     settings: Settings, alice: User) -> None:
    await add_work(db, settings, await account_of(db, alice), NewWork(text="Just words", images=[]))
    page = await client.get("/")
    assert "Just words" not in page.text and "No works yet." in page.text


# ---------------------------------------------------------------------------- browse

async def test_browse_filters_and_across_kinds_or_within(
        client: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    account = await account_of(db, alice)
    ink_illus = await add_work(db, settings, account, NewWork(
        title="Ink illustration", tags={"field": ["Illustration"], "medium": ["Ink"]}))
    oil_illus = await add_work(db, settings, account, NewWork(
        title="Oil illustration", tags={"field": ["Illustration"], "medium": ["Oil"]}))
    ink_comic = await add_work(db, settings, account, NewWork(
        title="Ink comic", tags={"field": ["Comics"], "medium": ["Ink"]}))
    await suggest(db, "field", "Illustration")
    rita = await remote_account(db)
    remote_ink = await add_work(db, settings, rita, NewWork(
        title="Remote ink", tags={"field": ["Illustration"], "medium": ["ink"]}))

    async def found(query: str) -> set[int]:
        page = await client.get("/works?" + query)
        assert page.status_code == 200, page.text
        return {int(link.rsplit("/", 1)[1]) for link in work_links(page)}

    assert await found("medium=Ink") == {ink_illus.id, ink_comic.id, remote_ink.id}
    assert await found("medium=ink&field=illustration") == {ink_illus.id, remote_ink.id}
    assert await found("medium=Ink&medium=Oil&field=Illustration") == {
        ink_illus.id, oil_illus.id, remote_ink.id}
    assert await found("medium=Ink&local=true") == {ink_illus.id, ink_comic.id}
    assert await found("medium=Ink&remote=true") == {remote_ink.id}
    assert await found("medium=Nothing") == set()
    assert await found("") == {ink_illus.id, oil_illus.id, ink_comic.id, remote_ink.id}
    page = await client.get("/works?medium=Ink&field=Illustration")
    assert "<h1>Illustration · Ink</h1>" in page.text
    # The chosen terms are marked, and each chip toggles itself.
    assert '<a class="chip" href="/works?medium=Ink" aria-current="true">Illustration</a>' in page.text


async def test_browse_bad_filters_are_4xx(client: httpx.AsyncClient) -> None:
    many = "&".join(f"medium=m{n}" for n in range(30))
    page = await client.get("/works?" + many)
    assert page.status_code == 422 and 'role="alert"' in page.text
    assert (await client.get("/works?medium=" + "x" * 5000)).status_code == 200
    assert (await client.get("/works?unknown=1&medium=")).status_code == 200


# ------------------------------------------------------------------------- portfolio

async def test_portfolio_page(client: httpx.AsyncClient, db: Database, settings: Settings,
                              alice: User) -> None:
    account = await account_of(db, alice)
    async with db.session() as session:
        row = await session.get(Account, account.id)
        assert row is not None
        row.display_name = "Alice Liddell"
        row.note = "I draw herons."
        row.fields = [{"name": "Shop", "value": "https://shop.example/alice"}]
        await session.commit()
    first = await add_work(db, settings, account, NewWork(title="First"))
    pinned = await add_work(db, settings, account, NewWork(title="Pinned one"))
    third = await add_work(db, settings, account, NewWork(title="Third"))
    async with db.session() as session:
        session.add(StatusPin(account_id=account.id, status_id=pinned.id))
        project = Project(account_id=account.id, title="Birds", cover_status_id=third.id)
        session.add(project)
        await session.flush()
        session.add_all([ProjectWork(project_id=project.id, status_id=first.id, position=1),
                         ProjectWork(project_id=project.id, status_id=third.id, position=0)])
        await session.commit()
        project_id = project.id
    page = await client.get("/@alice")
    assert page.status_code == 200
    text = page.text
    assert "<h1>Alice Liddell</h1>" in text and "@alice@easel.test" in text
    assert "I draw herons." in text
    assert 'href="https://shop.example/alice"' in text
    featured = text.index('id="featured-heading"')
    projects = text.index('id="projects-heading"')
    works = text.index('id="works-heading"')
    assert featured < projects < works
    assert text.index(f"/@alice/{pinned.id}") < projects
    # Pinned works are not repeated in the grid.
    assert text.count(f'href="/@alice/{pinned.id}"') == 1
    assert f'href="/@alice?project={project_id}"' in text and "Birds" in text and "2 works" in text
    assert meta(page, "og:type") == "profile"
    assert meta(page, "og:title") == "Alice Liddell (@alice@easel.test)"
    assert meta(page, "og:description") == "I draw herons."
    assert ('<link rel="alternate" type="application/activity+json" '
            'href="https://easel.test/users/alice">') in text
    in_project = await client.get(f"/@alice?project={project_id}")
    assert work_links(in_project) == [f"/@alice/{third.id}", f"/@alice/{first.id}"]
    assert (await client.get("/@alice?project=12345")).status_code == 404


async def test_the_handle_a_profile_shows_finds_it(client: httpx.AsyncClient, db: Database,
                                                   settings: Settings, alice: User) -> None:
    status = await add_work(db, settings, await account_of(db, alice), NewWork(title="Mine"))
    for handle in ("alice@easel.test", "ALICE@Easel.Test", "@alice@easel.test"):
        page = await client.get(f"/@{handle}")
        assert page.status_code == 200 and "@alice@easel.test" in page.text, handle
        assert (await client.get(f"/@{handle}/{status.id}")).status_code == 200, handle
    assert (await client.get("/@alice@elsewhere.example")).status_code == 404


async def test_later_portfolio_pages_have_no_projects_and_say_when_works_run_out(
        client: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    account = await account_of(db, alice)
    oldest = await add_work(db, settings, account, NewWork(title="Oldest"))
    newest = await add_work(db, settings, account, NewWork(title="Newest"))
    async with db.session() as session:
        project = Project(account_id=account.id, title="Birds", cover_status_id=newest.id)
        session.add(project)
        await session.flush()
        session.add(ProjectWork(project_id=project.id, status_id=newest.id, position=0))
        await session.commit()
    first = await client.get("/@alice")
    assert 'id="projects-heading"' in first.text and "No works yet." not in first.text
    later = await client.get(f"/@alice?max_id={newest.id}")
    assert later.status_code == 200
    assert 'id="projects-heading"' not in later.text and "Birds" not in later.text
    assert work_links(later) == [f"/@alice/{oldest.id}"]
    past_the_end = await client.get(f"/@alice?max_id={oldest.id}")
    assert "No more works." in past_the_end.text and "No works yet." not in past_the_end.text
    assert "No more works." in (await client.get(f"/?max_id={oldest.id}")).text


async def test_portfolio_content_negotiation_and_unknown_names(client: httpx.AsyncClient,
                                                               alice: User) -> None:
    negotiated = await client.get("/@alice", headers={"Accept": AP})
    assert negotiated.status_code == 302
    assert negotiated.headers["location"] == "https://easel.test/users/alice"
    for name in ("nobody", "alice@elsewhere.example", "@", "a" * 600):
        assert (await client.get(f"/@{name}")).status_code == 404, name


async def test_remote_portfolio(client: httpx.AsyncClient, db: Database, settings: Settings) -> None:
    rita = await remote_account(db, robots="noai", data_mining=DMI_AI)
    status = await add_work(db, settings, rita, NewWork(title="Remote work"))
    page = await client.get("/@rita@remote.example")
    assert page.status_code == 200 and f"/@rita@remote.example/{status.id}" in page.text
    assert "Remote painter" in page.text
    assert "not for AI or machine-learning training" in page.text
    assert "https://cdn.remote.example" in page.headers["content-security-policy"]


# ------------------------------------------------------------------------------- tags

async def test_tag_page_local_and_remote_and_terms(client: httpx.AsyncClient, db: Database,
                                                   settings: Settings, alice: User) -> None:
    local = await add_work(db, settings, await account_of(db, alice), NewWork(
        text="Evening #nocturne", title="Evening", tags={"medium": ["Oil"]}))
    rita = await remote_account(db)
    remote = await add_work(db, settings, rita, NewWork(text="Night harbour #Nocturne",
                                                        title="Harbour"))
    text_post = await add_work(db, settings, rita, NewWork(text="No image #nocturne", images=[]))
    page = await client.get("/tags/nocturne")
    assert page.status_code == 200
    links = work_links(page)
    assert f"/@alice/{local.id}" in links and f"/@rita@remote.example/{remote.id}" in links
    assert f"/@rita@remote.example/{text_post.id}" in links and "No image" in page.text
    assert meta(page, "og:title") == "#nocturne — Easel"
    # A portfolio term's name: its works, and a link to browse them.
    oil = await client.get("/tags/oil")
    assert f"/@alice/{local.id}" in work_links(oil)
    assert 'href="/works?medium=Oil"' in oil.text
    assert (await client.get("/tags/nothing-here")).status_code == 200
    assert (await client.get("/tags/" + "x" * 300)).status_code == 404


async def test_cards_show_a_warning_instead_of_the_text_and_text_without_links(
        client: httpx.AsyncClient, db: Database, settings: Settings) -> None:
    rita = await remote_account(db)
    warned = await add_work(db, settings, rita, NewWork(
        text="SECRET-BODY #inktober", images=[], sensitive=True, spoiler_text="Spoilers ahead"))
    linked = await add_work(db, settings, rita, NewWork(
        text="See my #inktober piece &amp; more", images=[]))
    page = await client.get("/tags/inktober")
    cards = dict(re.findall(r'<a class="card-link" href="/@rita@remote.example/(\d+)">(.*?)</a>\s*</li>',
                            page.text, re.S))
    assert set(cards) == {str(warned.id), str(linked.id)}
    assert "SECRET-BODY" not in page.text
    assert "Spoilers ahead" in cards[str(warned.id)]
    # The text is plain (a hashtag's link would nest in the card's own and split it).
    assert "<a " not in cards[str(linked.id)]
    assert '<p class="card-text">See my #inktober piece &amp; more</p>' in cards[str(linked.id)]


# -------------------------------------------------------------------- HEAD and caching

async def test_head_and_cache_headers(client: httpx.AsyncClient, heron: int) -> None:
    for path in ("/", "/works", "/@alice", f"/@alice/{heron}", "/tags/ink", "/auth/sign_in"):
        response = await client.head(path)
        assert response.status_code == 200, path
        assert response.content == b""
    anonymous = await client.get(f"/@alice/{heron}")
    assert anonymous.headers["cache-control"].startswith("public")
    assert "set-cookie" not in anonymous.headers  # no form, no CSRF cookie
    assert "Cookie" in anonymous.headers["vary"]


async def test_unknown_urls_get_the_html_not_found_page(client: httpx.AsyncClient) -> None:
    for path in ("/nonexistent", "/@", "/no/such/page"):
        page = await client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html"), path
        assert "<h1>Not found</h1>" in page.text and "There is nothing to see here." in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-robots-tag"] == "noai, noimageai"
        assert page.headers["cache-control"] == "no-store"
    # Whatever the client asks for, outside the API.
    assert (await client.get("/nonexistent")).headers["content-type"].startswith("text/html")
    # The API, ActivityPub paths and JSON clients keep their JSON answer.
    for path, accept in (("/api/v1/nonexistent", "text/html"), ("/api/v2/nonexistent", "*/*"),
                         ("/users/nobody", "text/html"), ("/nonexistent", AP),
                         ("/nonexistent", "application/json")):
        answer = await client.get(path, headers={"Accept": accept})
        assert answer.status_code == 404, path
        assert answer.json() == {"error": "Record not found"}, (path, accept)


async def test_pages_query_in_batches(client: httpx.AsyncClient, db: Database, settings: Settings,
                                      alice: User) -> None:
    """The number of queries a page makes does not grow with the works on it."""
    from sqlalchemy import event

    account = await account_of(db, alice)
    for n in range(3):
        await add_work(db, settings, account, NewWork(title=f"W{n}", tags={"medium": ["Ink"]}))
    counts: list[int] = []
    count = 0

    def before(*_: object) -> None:
        nonlocal count
        count += 1

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        for path in ("/", "/works?medium=Ink", "/@alice", "/tags/ink"):
            count = 0
            await client.get(path)
            counts.append(count)
        for n in range(10):
            await add_work(db, settings, account, NewWork(title=f"X{n}", tags={"medium": ["Ink"]}))
        for index, path in enumerate(("/", "/works?medium=Ink", "/@alice", "/tags/ink")):
            count = 0
            await client.get(path)
            assert count == counts[index], path
    finally:
        event.remove(engine, "before_cursor_execute", before)
    async with db.session() as session:
        assert (await session.scalars(select(Account.id))).first() is not None
    assert BLURHASH


# --------------------------------------------------------------------------- opt-out

async def test_opt_out_headers_and_meta(client: httpx.AsyncClient, db: Database, settings: Settings,
                                        alice: User, bob: User, heron: int) -> None:
    page = await client.get(f"/@alice/{heron}")
    assert page.headers["x-robots-tag"] == "noai, noimageai"
    assert page.headers["tdm-reservation"] == "1"
    assert page.headers["content-usage"] == "train-ai=n"
    assert page.headers["tdm-policy"].startswith("https://easel.test/")
    assert '<meta name="robots" content="noai, noimageai">' in page.text
    assert '<meta name="tdm-reservation" content="1">' in page.text
    # An artist who chose otherwise gets their own signals on their pages.
    async with db.session() as session:
        account = await session.get(Account, bob.account_id)
        assert account is not None
        account.data_mining = "http://ns.useplus.org/ldf/vocab/DMI-ALLOWED"
        await session.commit()
    bobs = await add_work(db, settings, account, NewWork(title="Free to use"))
    for path in ("/@bob", f"/@bob/{bobs.id}"):
        allowed = await client.get(path)
        assert allowed.headers["tdm-reservation"] == "0", path
        assert "x-robots-tag" not in allowed.headers
        assert '<meta name="tdm-reservation" content="0">' in allowed.text
        assert 'content="noai, noimageai"' not in allowed.text
    # Pages about many artists carry the instance's signals.
    assert (await client.get("/")).headers["x-robots-tag"] == "noai, noimageai"


async def test_suspended_domains_have_no_pages_here(client: httpx.AsyncClient, db: Database,
                                                    settings: Settings) -> None:
    from server.models import DomainBlock

    rita = await remote_account(db, domain="art.bad.example")
    status = await add_work(db, settings, rita, NewWork(title="Blocked"))
    assert (await client.get("/@rita@art.bad.example")).status_code == 200
    async with db.session() as session:
        session.add(DomainBlock(domain="bad.example", severity="suspend"))
        await session.commit()
    assert (await client.get("/@rita@art.bad.example")).status_code == 404
    assert (await client.get(f"/@rita@art.bad.example/{status.id}")).status_code == 404
    async with db.session() as session:  # a more specific silence is an exception
        session.add(DomainBlock(domain="art.bad.example", severity="silence"))
        await session.commit()
    assert (await client.get("/@rita@art.bad.example")).status_code == 200


async def test_a_remote_profile_field_name_is_text_on_the_page_and_in_the_api(
        client: httpx.AsyncClient, alice_api: httpx.AsyncClient, db: Database) -> None:
    # federation.parse stores remote field names as plain text (entities decoded): a name
    # that spells markup must come out escaped, never as markup.
    rita = await remote_account(db)
    async with db.session() as session:
        stored = await session.get(Account, rita.id)
        assert stored is not None
        stored.fields = [{"name": "<img src=x onerror=alert(1)>", "value": "<p>ok</p>"}]
        await session.commit()
    page = await client.get("/@rita@remote.example")
    assert page.status_code == 200
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    entity = (await alice_api.get(f"/api/v1/accounts/{rita.id}")).json()
    assert entity["fields"][0]["name"] == "&lt;img src=x onerror=alert(1)&gt;"
