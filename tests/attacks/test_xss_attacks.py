"""XSS payloads in every text field, remote and local, rendered by the API and the pages.

The rendered HTML (the pages, and the HTML fields of API entities: content, note, field
values) is parsed with ``html.parser`` and must hold no executable markup: no script,
iframe, object, embed, style or svg element, no ``on*`` attribute, no ``javascript:``,
``vbscript:`` or ``data:`` URL (entity-encoded spellings included — the parser decodes
them). Plain-text fields (display names, CW, alt text, poll options) may keep the payload
as text: they must come back verbatim-as-text in the API, and escaped on the pages. Every
page also carries the Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from federation.context import FederationContext
from federation.notes import store_note
from server.db import Database
from server.models import Account, User
from server.settings import Settings
from tests.federation.fediverse import PUBLIC, Fediverse, actor_doc
from tests.server.web.works import Image, NewWork, add_work

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '"><svg onload=alert(1)>',
    "<iframe src=javascript:alert(2)></iframe>",
    '<a href="&#106;avascript:alert(3)">y</a>',
    "<style>@import 'https://evil.example/x.css'</style>",
    '<a href="data:text/html,<script>alert(4)</script>">z</a>',
    "<object data=javascript:alert(5)></object><embed src=javascript:alert(6)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(7)>",
]
ALL = " ".join(PAYLOADS)
SHORT = "<img src=x onerror=alert(1)>"  # fits a 30-character display name
DANGEROUS_TAGS = {"script", "iframe", "object", "embed", "style", "svg", "math", "base",
                  "form", "frame", "frameset", "applet", "meta", "link"}
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "srcset"}
EVIL = "https://evil.example/users/mallory"


class ExecutableMarkup(HTMLParser):
    """Collects every piece of markup a browser could run."""

    def __init__(self, *, page: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page  # whole pages may have <meta>, <link> and an external <script src>
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        allowed = {"meta", "link"} if self.page else set()
        if tag in DANGEROUS_TAGS - allowed:
            if not (self.page and tag == "script" and dict(attrs).get("src", "").startswith("/")):
                self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            if name in URL_ATTRS and value:
                compact = "".join(value.split()).lower()
                if compact.startswith(("javascript:", "vbscript:", "data:text", "data:image/svg")):
                    self.found.append(f"<{tag} {name}={value[:40]}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def executable(html: str, *, page: bool = False) -> list[str]:
    parser = ExecutableMarkup(page=page)
    parser.feed(html)
    parser.close()
    return parser.found


def check_page(response: httpx.Response) -> None:
    assert response.status_code == 200, (str(response.url), response.status_code)
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src" in policy or "default-src" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[-1].split(";")[0]
    assert executable(response.text, page=True) == [], response.url


def html_fields(entity: Any) -> list[str]:
    """The HTML-valued fields of a Mastodon entity, anywhere inside it."""
    found: list[str] = []
    if isinstance(entity, dict):
        for key, value in entity.items():
            if key == "source":  # the author's own plain text, never rendered as HTML
                continue
            if key in ("content", "note") and isinstance(value, str):
                found.append(value)
            elif key == "fields" and isinstance(value, list):
                found.extend(str(f.get("value", "")) for f in value)
            else:
                found.extend(html_fields(value))
    elif isinstance(entity, list):
        for item in entity:
            found.extend(html_fields(item))
    return found


def check_entity(entity: Any) -> None:
    fields = html_fields(entity)
    assert fields
    for html in fields:
        assert executable(html) == [], html


@pytest.fixture
def fediverse() -> Fediverse:
    return Fediverse()


@pytest.fixture
async def fed(settings: Settings, db: Database, fediverse: Fediverse
              ) -> AsyncIterator[FederationContext]:
    context = fediverse.context(settings, db)
    yield context
    await context.close()


def test_the_checker_catches_every_payload() -> None:
    for payload in PAYLOADS:
        assert executable(payload), payload
    assert executable("<p>plain <a href=\"https://ok.example\">link</a></p>") == []


# ------------------------------------------------------------------------- remote

async def test_payloads_in_every_remote_field_never_reach_html(
        fed: FederationContext, fediverse: Fediverse, db: Database,
        alice_api: httpx.AsyncClient) -> None:
    actor = actor_doc(EVIL, "mallory")
    actor.update({
        "name": SHORT + ALL, "summary": ALL,
        "attachment": [{"type": "PropertyValue", "name": payload, "value": payload}
                       for payload in PAYLOADS[:4]],
        "tag": [{"type": "Emoji", "name": ":x<script>:", "id": "https://evil.example/e/1",
                 "icon": {"type": "Image", "url": "javascript:alert(1)"}}],
    })
    fediverse.serve(EVIL, actor)
    note = {
        "id": "https://evil.example/notes/1", "type": "Question", "attributedTo": EVIL,
        "to": [PUBLIC], "published": "2024-06-01T00:00:00Z",
        "content": f"<p>{ALL}</p>", "summary": ALL, "sensitive": True,
        "oneOf": [{"type": "Note", "name": payload, "replies": {"totalItems": 0}}
                  for payload in PAYLOADS[:4]],
        "endTime": "2099-01-01T00:00:00Z",
        "tag": [{"type": "Hashtag", "name": "#<script>alert(1)</script>",
                 "href": "javascript:alert(1)"},
                {"type": "Emoji", "name": ":y<img/onerror=alert(1)>:", "id": "https://evil.example/e/2",
                 "icon": {"type": "Image", "url": "https://evil.example/e.png"}}],
        "attachment": [{"type": "Document", "mediaType": "image/png",
                        "url": "https://evil.example/media/1.png", "name": ALL}],
    }
    author = await fed.fetcher.fetch_actor(EVIL)
    async with db.session() as session:
        status = await store_note(fed, session, note, author=author)
        await session.commit()
        status_id, account_id = status.id, author.id
    entity = (await alice_api.get(f"/api/v1/statuses/{status_id}")).json()
    check_entity(entity)
    assert "<script" not in entity["content"] and "onerror" not in entity["content"]
    for tag in entity["tags"]:
        assert "<" not in tag["name"] and not tag["url"].startswith("javascript")
    for emoji in entity["emojis"] + entity["account"]["emojis"]:
        assert emoji["url"].startswith("https://") and "<" not in emoji["shortcode"]
    account = (await alice_api.get(f"/api/v1/accounts/{account_id}")).json()
    check_entity(account)
    assert "<script" not in account["note"]
    # Text fields stay text: the client escapes them; they are never turned into markup.
    if entity["poll"] is not None:
        assert all(isinstance(option["title"], str) for option in entity["poll"]["options"])
    for path in ("/", "/works", "/tags/art"):
        page = await alice_api.get(path)
        if page.status_code == 200:
            check_page(page)


# -------------------------------------------------------------------------- local

async def test_payloads_in_every_local_field_never_reach_html(
        alice_api: httpx.AsyncClient, db: Database, settings: Settings, alice: User,
        client: httpx.AsyncClient) -> None:
    profile = await alice_api.patch("/api/v1/accounts/update_credentials", data={
        "display_name": SHORT, "note": PAYLOADS[0] + PAYLOADS[2] + PAYLOADS[5],
        "fields_attributes[0][name]": PAYLOADS[1][:255],
        "fields_attributes[0][value]": PAYLOADS[2],
        "fields_attributes[1][name]": "site", "fields_attributes[1][value]": PAYLOADS[3],
    })
    assert profile.status_code == 200, profile.text
    check_entity(profile.json())
    posted = await alice_api.post("/api/v1/statuses", json={
        "status": PAYLOADS[0] + " #art " + PAYLOADS[2][:60], "spoiler_text": PAYLOADS[1],
        "poll": {"options": [SHORT, "<script>x</script>"], "expires_in": 3600}})
    assert posted.status_code == 200, posted.text
    check_entity(posted.json())
    project = await alice_api.post("/api/v1/easel/projects", json={
        "title": PAYLOADS[3], "description": ALL})
    assert project.status_code == 200, project.text
    async with db.session() as session:
        account = await session.scalar(select(Account).where(Account.id == alice.account_id))
    assert account is not None
    work = await add_work(db, settings, account, NewWork(
        text=f"{PAYLOADS[0]} #inktober", title=PAYLOADS[1], description=ALL,
        dimensions=PAYLOADS[3][:60], spoiler_text="",
        images=[Image(description=ALL)]))
    placed = await alice_api.put(f"/api/v1/easel/projects/{project.json()['id']}/works",
                                 json={"work_ids": [str(work.id)]})
    assert placed.status_code == 200, placed.text
    pages = ["/", "/works", "/@alice", f"/@alice/{work.id}", "/tags/inktober", "/tags/art",
             f"/@alice?project={project.json()['id']}"]
    for path in pages:
        check_page(await client.get(path))
    # The payload is on the page as text (escaped), not dropped silently.
    work_page = (await client.get(f"/@alice/{work.id}")).text
    assert "&lt;img src=x onerror=alert(1)&gt;" in work_page or "&lt;img" in work_page
