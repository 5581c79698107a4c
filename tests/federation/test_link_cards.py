"""Link preview cards (federation.link_cards), from a published status to its entity's card.

Given a status whose first link is a page on a real HTTP server on 127.0.0.1 (every test
host name resolves there), when the federation queue runs, I expect the page fetched once
through the safe client, its OpenGraph details kept as one ``preview_cards`` row per URL,
its picture stored as a small JPEG under ``cards/`` and shown from /system/, and the
status entity's ``card`` to say so — and nothing fetched, or no card, whenever a rule says
no: a mention or hashtag link, not HTML, a page without title or image, a private
address, a suspended domain, media rejected, the setting off.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import select, update
from starlette.applications import Starlette

from federation.context import FederationContext, install_federation_context
from federation.link_cards import MAX_HTML_BYTES, page_charset, parse_page
from federation.notes import store_note
from protect.prune import referenced_keys
from server.api.entities import EntityContext, status_to_entity
from server.app import AppOptions, create_app
from server.db import Database
from server.ids import utcnow
from server.models import Account, DomainBlock, Job, PreviewCard, Status, StatusPreviewCard, User
from server.services.link_cards import first_link
from server.settings import Settings
from tests.conftest import DOMAIN, make_token
from tests.protect import images

# ------------------------------------------------------------------ the web on loopback

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class PageServer:
    """A tiny HTTP/1.1 server: path → answer (status, headers, body); records every
    request as (host, path)."""

    routes: dict[str, Answer | Callable[[], Answer]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"

    def page(self, path: str, html: str, *, content_type: str = "text/html; charset=utf-8") -> None:
        self.routes[path] = (200, {"Content-Type": content_type}, html.encode("utf-8"))

    def file(self, path: str, data: bytes, content_type: str) -> None:
        self.routes[path] = (200, {"Content-Type": content_type}, data)

    def redirect(self, path: str, location: str) -> None:
        self.routes[path] = (302, {"Location": location}, b"")

    def paths(self) -> list[str]:
        return [path for _, path in self.requests]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            path = lines[0].split(" ")[1]
            host = next((line.split(":", 1)[1].strip() for line in lines[1:]
                         if line.lower().startswith("host:")), "")
            self.requests.append((host.rsplit(":", 1)[0], path))
            answer = self.routes.get(path, (404, {"Content-Type": "text/plain"}, b"not here"))
            status, headers, body = answer() if callable(answer) else answer
            head_out = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            head_out += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            writer.write(head_out.encode("latin-1") + b"\r\n" + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client stopped reading (a page cut at its cap)
        finally:
            writer.close()


@pytest.fixture
async def web() -> AsyncIterator[PageServer]:
    pages = PageServer()
    pages.server = await asyncio.start_server(pages.handle, "127.0.0.1", 0)
    pages.port = pages.server.sockets[0].getsockname()[1]
    try:
        yield pages
    finally:
        pages.server.close()


async def loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def install_client(app: Starlette, settings: Settings) -> FederationContext:
    """The app's federation context over the real network, every name on loopback."""
    context = FederationContext.build(settings, app.state.easel.db, resolver=loopback)
    install_federation_context(context)
    return context


async def started(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings, options=AppOptions(run_workers=False,
                                                          run_reconciler=False))
    async with application.router.lifespan_context(application):
        context = install_client(application, settings)
        try:
            yield application
        finally:
            await application.state.easel.runner.run_due(["federation"])  # nothing left behind
            await context.close()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    async for application in started(settings):
        yield application


@pytest.fixture
async def token(db: Database, alice: User) -> str:
    return await make_token(db, alice)


def api(app: Starlette, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"https://{DOMAIN}",
                             headers={"Authorization": f"Bearer {token}"})


async def post(app: Starlette, token: str, text: str) -> str:
    async with api(app, token) as client:
        response = await client.post("/api/v1/statuses", json={"status": text})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def card_of(app: Starlette, token: str, status_id: str) -> dict[str, Any] | None:
    async with api(app, token) as client:
        response = await client.get(f"/api/v1/statuses/{status_id}")
    assert response.status_code == 200, response.text
    card: dict[str, Any] | None = response.json()["card"]
    return card


async def run_jobs(app: Starlette) -> int:
    ran: int = await app.state.easel.runner.run_due(["federation"])
    return ran


async def age_cards(app: Starlette, age: timedelta) -> None:
    """Every card fetched ``age`` ago."""
    async with app.state.easel.db.session() as session:
        await session.execute(update(PreviewCard).values(fetched_at=utcnow() - age))
        await session.commit()


async def card_row(app: Starlette, url: str) -> PreviewCard | None:
    async with app.state.easel.db.session() as session:
        card: PreviewCard | None = await session.scalar(select(PreviewCard).where(PreviewCard.url == url))
        return card


ARTICLE = """<!doctype html><html lang="en"><head>
<meta charset="utf-8">
<title>Fallback title</title>
<meta property="og:title" content="Herons &amp; <b>reeds</b>">
<meta property="og:description" content="A  study of
 herons &lt;i&gt;in ink&lt;/i&gt;.">
<meta property="og:image" content="/pictures/heron.png">
<meta property="og:image:alt" content="A grey heron">
<meta property="og:site_name" content="Ink Weekly">
<meta name="author" content="Mo Painter">
<meta property="article:published_time" content="2026-10-01T12:00:00Z">
<script>document.title = "<meta property='og:title' content='not this'>";</script>
</head><body><p>Body</p></body></html>"""


def serve_article(web: PageServer, path: str = "/article", *, image_path: str = "/pictures/heron.png",
                  html: str = ARTICLE) -> str:
    web.page(path, html)
    web.file(image_path, images.png((800, 600)), "image/png")
    return web.url("news.example", path)


# ------------------------------------------------------------------ the happy path


async def test_a_link_gets_a_card_with_title_description_and_a_stored_picture(
        app: Starlette, web: PageServer, token: str, settings: Settings) -> None:
    url = serve_article(web)
    status_id = await post(app, token, f"New work, and a review: {url}")
    assert await card_of(app, token, status_id) is None  # until the job has run

    await run_jobs(app)

    card = await card_of(app, token, status_id)
    assert card is not None
    assert card["url"] == url
    assert card["title"] == "Herons & reeds"
    assert card["description"] == "A study of herons in ink."
    assert card["provider_name"] == "Ink Weekly"
    assert card["author_name"] == "Mo Painter"
    assert card["language"] == "en"
    assert card["published_at"] == "2026-10-01T12:00:00.000Z"
    assert card["type"] == "link"
    assert card["html"] == "" and card["embed_url"] == "" and card["authors"] == [
        {"name": "Mo Painter", "url": "", "account": None}]
    assert card["image_description"] == "A grey heron"
    assert (card["width"], card["height"]) == (400, 300)
    assert card["blurhash"]
    assert card["image"].startswith(f"https://{DOMAIN}/system/cards/")
    assert card["image"].endswith(".jpg")
    assert web.paths() == ["/article", "/pictures/heron.png"]

    # The picture is ours, a JPEG of 400 px, served from /system/ and known to prune.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=f"https://{DOMAIN}") as client:
        picture = await client.get(card["image"].removeprefix(f"https://{DOMAIN}"))
    assert picture.status_code == 200
    assert picture.headers["content-type"] == "image/jpeg"
    row = await card_row(app, url)
    assert row is not None and row.image_key is not None
    async with app.state.easel.db.session() as session:
        assert (row.image_key, False) in await referenced_keys(session)
    stored = app.state.easel.storage.path(row.image_key)
    with Image.open(stored) as image:
        assert image.format == "JPEG" and image.size == (400, 300)

    # Timelines show it too (the batched path), and with EASEL_LINK_CARDS off nobody does.
    async with api(app, token) as client:
        timeline = (await client.get("/api/v1/timelines/home")).json()
    assert [s["card"]["title"] for s in timeline if s["id"] == status_id] == ["Herons & reeds"]
    async with app.state.easel.db.session() as session:
        status = await session.get(Status, int(status_id))
        assert status is not None
        off = EntityContext(app.state.easel.urls, app.state.easel.storage, link_cards=False)
        assert (await status_to_entity(session, status, off, None))["card"] is None


async def work_page(app: Starlette, status_id: str) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=f"https://{DOMAIN}") as client:
        page = await client.get(f"/@alice/{status_id}")
    assert page.status_code == 200
    return page.text


async def test_the_work_page_shows_the_card_as_a_link_out(
        app: Starlette, web: PageServer, token: str, settings: Settings) -> None:
    url = serve_article(web)
    status_id = await post(app, token, f"A review: {url}")
    async with api(app, token) as client:
        hidden = await client.post("/api/v1/statuses", json={
            "status": f"Spoilers: {url}", "spoiler_text": "the ending", "sensitive": True})
    missing = await post(app, token, f"Gone: {web.url('news.example', '/gone')}")
    await run_jobs(app)

    page = await work_page(app, status_id)
    card = re.search(r'<a class="link-card" href="([^"]+)" rel="nofollow noopener noreferrer">'
                     r'(.*?)</a>', page, re.S)
    assert card is not None and card.group(1) == url
    inside = card.group(2)
    picture = re.search(r'<img src="([^"]+)" alt="A grey heron" width="400" height="300"', inside)
    assert picture is not None and picture.group(1).startswith(f"https://{DOMAIN}/system/cards/")
    # The page's text is escaped, never markup.
    assert "<strong>Herons &amp; reeds</strong>" in inside
    assert "A study of herons in ink." in inside and "Ink Weekly" in inside

    # Behind a content warning the card is inside the warning, without its picture.
    spoiler = await work_page(app, hidden.json()["id"])
    details = re.search(r'<details class="sensitive">.*?</details>', spoiler, re.S)
    assert details is not None and 'class="link-card"' in details.group(0)
    assert "/system/cards/" not in spoiler
    # A long description is cut on the page (the API gives it whole).
    async with app.state.easel.db.session() as session:
        await session.execute(update(PreviewCard).where(PreviewCard.url == url)
                              .values(description="ink " * 200))
        await session.commit()
    cut = re.search(r'<span class="link-card-description">([^<]*)</span>',
                    await work_page(app, status_id))
    assert cut is not None and len(cut.group(1)) == 300 and cut.group(1).endswith("ink…")
    # A link whose page gave nothing shows no card; nor does any page with EASEL_LINK_CARDS off.
    assert 'class="link-card"' not in await work_page(app, missing)
    app.state.easel.settings = settings.with_changes(link_cards=False)
    assert 'class="link-card"' not in await work_page(app, status_id)


async def test_a_redirect_is_followed_and_the_card_kept_under_the_link(
        app: Starlette, web: PageServer, token: str) -> None:
    target = serve_article(web)
    web.redirect("/short", target)
    short = web.url("short.example", "/short")
    status_id = await post(app, token, f"See {short}")
    await run_jobs(app)

    card = await card_of(app, token, status_id)
    assert card is not None and card["url"] == short and card["title"] == "Herons & reeds"
    assert web.requests[:2] == [("short.example", "/short"), ("news.example", "/article")]


async def test_a_card_fetched_within_two_weeks_is_reused(
        app: Starlette, web: PageServer, token: str) -> None:
    url = serve_article(web)
    first = await post(app, token, f"One {url}")
    second = await post(app, token, f"Two {url}")
    await run_jobs(app)
    assert (await card_of(app, token, first)) == (await card_of(app, token, second))
    assert web.paths().count("/article") == 1

    # Older than two weeks: fetched again for the next status that links there.
    await age_cards(app, timedelta(days=15))
    third = await post(app, token, f"Three {url}")
    await run_jobs(app)
    assert web.paths().count("/article") == 2
    assert (await card_of(app, token, third) or {}).get("title") == "Herons & reeds"


async def test_an_edit_that_changes_the_link_changes_the_card(
        app: Starlette, web: PageServer, token: str) -> None:
    first_url = serve_article(web)
    web.page("/other", "<html><head><title>Another page</title></head></html>")
    other_url = web.url("news.example", "/other")
    status_id = await post(app, token, f"Look {first_url}")
    await run_jobs(app)
    assert (await card_of(app, token, status_id) or {}).get("title") == "Herons & reeds"

    async with api(app, token) as client:
        edited = await client.put(f"/api/v1/statuses/{status_id}", json={"status": f"No, {other_url}"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["card"] is None  # the old card went with the old link
    await run_jobs(app)
    card = await card_of(app, token, status_id)
    assert card is not None and card["title"] == "Another page" and card["image"] is None

    # An edit that keeps the first link keeps the card, and fetches nothing.
    requests = len(web.requests)
    async with api(app, token) as client:
        await client.put(f"/api/v1/statuses/{status_id}", json={"status": f"Yes: {other_url} !"})
    await run_jobs(app)
    assert len(web.requests) == requests
    assert (await card_of(app, token, status_id) or {}).get("title") == "Another page"


# ------------------------------------------------------------------ links that get no card


async def test_mentions_hashtags_and_own_links_are_not_the_cards_link(
        app: Starlette, web: PageServer, token: str, settings: Settings) -> None:
    url = serve_article(web)
    mention = web.url("people.example", "/@zoe")
    hashtag = web.url("people.example", "/tags/ink")
    content = (f'<p><span class="h-card"><a href="{mention}" class="u-url mention">@zoe</a></span> '
               f'<a href="{hashtag}" class="mention hashtag" rel="tag">#ink</a> '
               f'<a href="https://{DOMAIN}/@alice/1">mine</a> <a href="{url}#part">the review</a></p>')
    assert first_link(content, local_domain=DOMAIN) == url

    # A remote status with such content: only the review is fetched.
    async with app.state.easel.db.session() as session:
        carol = Account(username="carol", username_key="carol", domain="remote.example",
                        uri="https://remote.example/users/carol",
                        inbox_url="https://remote.example/users/carol/inbox")
        session.add(carol)
        await session.flush()
        fed = install_client(app, settings)
        note = {"id": "https://remote.example/notes/1", "type": "Note",
                "attributedTo": carol.uri, "content": content,
                "to": ["https://www.w3.org/ns/activitystreams#Public"],
                "published": "2026-11-01T10:00:00Z"}
        status = await store_note(fed, session, note, author=carol)
        await session.commit()
        status_id = str(status.id)
    await run_jobs(app)
    card = await card_of(app, token, status_id)
    assert card is not None and card["title"] == "Herons & reeds"
    assert "/@zoe" not in web.paths() and "/tags/ink" not in web.paths()

    # Its author edits the link: the new page's card replaces it.
    web.page("/second", "<html><head><title>Second thoughts</title></head></html>")
    edited = {**note, "content": f'<p><a href="{web.url("news.example", "/second")}">now</a></p>',
              "updated": "2026-11-02T10:00:00Z"}
    async with app.state.easel.db.session() as session:
        carol_again = await session.get(Account, carol.id)
        assert carol_again is not None
        await store_note(fed, session, edited, author=carol_again)
        await session.commit()
    await run_jobs(app)
    assert (await card_of(app, token, status_id) or {}).get("title") == "Second thoughts"


async def test_a_status_whose_only_links_are_mentions_queues_nothing(
        app: Starlette, web: PageServer, token: str, db: Database, bob: User) -> None:
    status_id = await post(app, token, "@bob #ink hello")
    await run_jobs(app)
    assert await card_of(app, token, status_id) is None
    async with app.state.easel.db.session() as session:
        assert await session.scalar(select(Job.id).where(Job.kind == "fetch_link_card")) is None
    assert web.requests == []


@pytest.mark.parametrize("answer", ["json", "no title or image", "server error"])
async def test_a_page_that_gives_nothing_makes_no_card_and_is_not_asked_again(
        app: Starlette, web: PageServer, token: str, answer: str) -> None:
    if answer == "json":
        web.page("/page", '{"title": "not a page"}', content_type="application/json")
    elif answer == "no title or image":
        web.page("/page", "<html><head><meta name='description' content='words'></head></html>")
    else:
        web.routes["/page"] = (500, {"Content-Type": "text/html"}, b"<title>oops</title>")
    url = web.url("news.example", "/page")
    first = await post(app, token, f"Look {url}")
    await run_jobs(app)
    assert await card_of(app, token, first) is None
    row = await card_row(app, url)
    assert row is not None and row.failed

    second = await post(app, token, f"Again {url}")
    await run_jobs(app)
    assert await card_of(app, token, second) is None
    assert web.paths() == ["/page"]  # the failure is remembered, not retried


async def test_an_oversize_page_is_read_up_to_its_cap(
        app: Starlette, web: PageServer, token: str) -> None:
    head = "<html><head><title>A long page</title>"
    tail = '<meta property="og:image" content="/pictures/heron.png"></head></html>'
    web.page("/long", head + " " * (2 * MAX_HTML_BYTES) + tail)
    web.file("/pictures/heron.png", images.png(), "image/png")
    status_id = await post(app, token, f"Long read {web.url('news.example', '/long')}")
    await run_jobs(app)
    card = await card_of(app, token, status_id)
    # What follows the first MiB was never read: the title is there, the picture is not.
    assert card is not None and card["title"] == "A long page" and card["image"] is None
    assert web.paths() == ["/long"]


async def test_a_private_address_is_refused_unless_allowed(
        app: Starlette, web: PageServer, token: str, settings: Settings) -> None:
    context = install_client(app, settings.with_changes(allow_private_addresses=False))
    try:
        url = serve_article(web)
        status_id = await post(app, token, f"Internal {url}")
        await run_jobs(app)
    finally:
        await context.close()
    assert web.requests == []
    assert await card_of(app, token, status_id) is None
    row = await card_row(app, url)
    assert row is not None and row.failed


async def test_bad_bytes_as_the_image_leave_the_card_without_one(
        app: Starlette, web: PageServer, token: str) -> None:
    url = serve_article(web)
    web.file("/pictures/heron.png", b"\x89PNG\r\n\x1a\nnot really a picture" * 10, "image/png")
    status_id = await post(app, token, f"Broken picture {url}")
    await run_jobs(app)
    card = await card_of(app, token, status_id)
    assert card is not None and card["title"] == "Herons & reeds"
    assert card["image"] is None and card["width"] == 0 and card["blurhash"] is None
    assert "/pictures/heron.png" in web.paths()
    assert list(app.state.easel.storage.public_root.glob("cards/**/*.jpg")) == []


async def test_domain_blocks_reject_the_picture_or_the_whole_card(
        app: Starlette, web: PageServer, token: str) -> None:
    async with app.state.easel.db.session() as session:
        session.add(DomainBlock(domain="media.example", severity="noop", reject_media=True))
        session.add(DomainBlock(domain="evil.example", severity="suspend"))
        await session.commit()
    web.page("/with-picture", ARTICLE.replace(
        "/pictures/heron.png", web.url("media.example", "/pictures/heron.png")))
    web.file("/pictures/heron.png", images.png(), "image/png")
    rejected = await post(app, token, f"Picture elsewhere {web.url('news.example', '/with-picture')}")
    suspended = await post(app, token, f"Bad place {web.url('evil.example', '/article')}")
    await run_jobs(app)

    card = await card_of(app, token, rejected)
    assert card is not None and card["title"] == "Herons & reeds" and card["image"] is None
    assert await card_of(app, token, suspended) is None
    assert web.paths() == ["/with-picture"]  # neither the picture nor the suspended page


async def test_with_the_setting_off_nothing_is_fetched(
        settings: Settings, web: PageServer, db: Database, alice: User) -> None:
    async for app in started(settings.with_changes(link_cards=False)):
        token = await make_token(db, alice)
        url = serve_article(web)
        status_id = await post(app, token, f"Quiet {url}")
        await run_jobs(app)
        assert await card_of(app, token, status_id) is None
        async with app.state.easel.db.session() as session:
            assert await session.scalar(select(StatusPreviewCard.status_id)) is None
    assert web.requests == []


# ------------------------------------------------------------------ parsing


def test_the_page_charset_comes_from_the_header_or_the_page() -> None:
    latin = "<html><head><meta charset='iso-8859-1'><title>Caf\xe9</title></head></html>"
    data = latin.encode("latin-1")
    assert page_charset("text/html", data) == "iso8859-1"
    assert page_charset("text/html; charset=UTF-8", b"") == "utf-8"
    assert page_charset("text/html; charset=nonsense", b"") == "utf-8"
    assert parse_page(data.decode(page_charset("text/html", data)), "https://x.example/").title == "Café"


def test_parsing_takes_fallbacks_and_keeps_only_web_urls() -> None:
    details = parse_page(
        "<html lang='pt_BR'><head><title> Só  o título </title>"
        "<meta name='twitter:description' content='Twitter words'>"
        "<meta property='og:image' content='javascript:alert(1)'>"
        "<meta property='og:type' content='image'>"
        "<meta property='article:author' content='https://x.example/me'></head></html>",
        "https://x.example/a/b")
    assert details.title == "Só o título"
    assert details.description == "Twitter words"
    assert details.image_url is None and details.type == "link"
    assert details.language == "pt"
    assert details.author_url == "https://x.example/me" and details.author_name == ""
    relative = parse_page("<meta property='og:image' content='../p.png'>", "https://x.example/a/b")
    assert relative.image_url == "https://x.example/p.png"
    assert parse_page("<title>" + "t" * 400 + "</title>", "https://x.example/").title.endswith("…")


async def test_a_card_is_one_row_per_url(app: Starlette, web: PageServer, token: str) -> None:
    url = serve_article(web)
    await post(app, token, f"A {url}")
    await post(app, token, f"B {url}")
    await run_jobs(app)
    async with app.state.easel.db.session() as session:
        assert len(list(await session.scalars(select(PreviewCard)))) == 1
        assert len(list(await session.scalars(select(StatusPreviewCard)))) == 2


# ------------------------------------------------------------------ the review's cases

async def test_a_failed_refresh_keeps_the_card_statuses_show(
        app: Starlette, web: PageServer, token: str) -> None:
    url = serve_article(web)
    first = await post(app, token, f"One {url}")
    await run_jobs(app)
    shown = await card_of(app, token, first)
    assert shown is not None and shown["title"] == "Herons & reeds" and shown["image"]
    # Two weeks on, the page says nothing any more: the card stays as it was.
    web.page("/article", "<html><head></head><body>gone quiet</body></html>")
    await age_cards(app, timedelta(days=15))
    second = await post(app, token, f"Two {url}")
    await run_jobs(app)
    assert web.paths().count("/article") == 2
    assert await card_of(app, token, first) == shown == await card_of(app, token, second)
    card = await card_row(app, url)
    assert card is not None and not card.failed and card.fetched_at > utcnow() - timedelta(minutes=1)


async def test_a_card_of_an_older_link_is_replaced(
        app: Starlette, web: PageServer, token: str) -> None:
    """An edit that commits while the status's first job is attaching the old link's card
    leaves that card; the edit's own job replaces it."""
    old_url = serve_article(web)
    web.page("/other", "<html><head><title>Another page</title></head></html>")
    new_url = web.url("news.example", "/other")
    status_id = await post(app, token, f"Look {old_url}")
    await run_jobs(app)
    async with app.state.easel.db.session() as session:  # edited behind the job's back
        status = await session.get(Status, int(status_id))
        assert status is not None
        status.content = f'<p>Look <a href="{new_url}">{new_url}</a></p>'
        await session.commit()
    from federation.link_cards import card_for_status

    context = app.state.easel
    async with context.db.session() as session:
        fed = install_client(app, context.settings)
        try:
            card = await card_for_status(session, context.settings, context.storage, fed.client,
                                         int(status_id))
        finally:
            await fed.close()
    assert card is not None and card.url == new_url
    assert (await card_of(app, token, status_id) or {}).get("title") == "Another page"


@pytest.mark.parametrize("charset", ["zlib", "base64", "rot13", "idna", "no-such-thing"])
async def test_a_charset_that_is_no_text_encoding_reads_the_page_as_utf8(
        app: Starlette, web: PageServer, token: str, charset: str) -> None:
    web.page("/odd", "<html><head><title>Odd but fine</title></head></html>",
             content_type=f"text/html; charset={charset}")
    status_id = await post(app, token, f"See {web.url('news.example', '/odd')}")
    await run_jobs(app)
    assert (await card_of(app, token, status_id) or {}).get("title") == "Odd but fine"


def test_the_head_is_read_by_linear_scans_whatever_the_markup() -> None:
    """Quoted values may hold < and >; comments, scripts and styles are skipped; an
    unfinished tag ends the reading; nothing after <body is read; repeated unfinished
    markup (which makes html.parser quadratic) yields nothing and ends (the timings are
    bench/link_cards.py's)."""
    page = ("<!doctype html><HTML LANG='fr'><head><!-- <meta property='og:title' content='no'> -->"
            "<style>meta{}</style><script>'<meta property=\"og:title\" content=\"no\">'</script>"
            "<meta property=\"og:title\" content=\"a > b &amp; <i>c</i>\">"
            "<meta name=description content=plain>"
            "<title>Ignored: og:title wins</title></head>"
            "<body><meta property='og:image' content='/late.png'></body>")
    details = parse_page(page, "https://news.example/x")
    assert (details.title, details.description, details.image_url, details.language) == (
        "a > b & c", "plain", None, "fr")
    broken = ("<head><meta property='og:title' content='first'>"
              "<meta <meta property='og:site_name' content='x'>")
    assert parse_page(broken, "https://news.example/").title == "first"
    assert parse_page(broken, "https://news.example/").provider_name == ""
    for hostile in ("<a " * 100_000, "</" * 100_000, "<meta " * 50_000, "<title>" * 50_000,
                    "<!--" * 50_000, "<script" * 50_000, "<meta content='" + "<" * 300_000):
        assert parse_page(hostile, "https://news.example/").title == ""
