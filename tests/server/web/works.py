"""Works for page tests, written straight to the database: a status with ready media
(public renditions, sizes, blurhash) and portfolio metadata, local or remote."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from server.db import Database
from server.ids import new_id, utcnow
from server.models import Account, MediaAttachment, MediaState, Status, StatusTag, Tag
from server.services.portfolio import WorkMeta, add_suggestion, set_work_metadata
from server.settings import Settings

BLURHASH = "LEHV6nWB2yk8pyo0adR*.7kCMdnj"
CSRF_RE = re.compile(r'name="authenticity_token" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    match = CSRF_RE.search(page.text)
    assert match, page.text
    return match.group(1)


@dataclass
class Image:
    description: str = "A heron in ink"
    width: int = 1600
    height: int = 1200
    blurhash: str | None = BLURHASH


@dataclass
class NewWork:
    text: str = "A new piece #inktober"
    title: str = ""
    description: str = ""
    year: int | None = None
    dimensions: str = ""
    tags: dict[str, list[str]] = field(default_factory=dict)
    images: list[Image] = field(default_factory=lambda: [Image()])
    visibility: str = "public"
    published: bool = True
    sensitive: bool = False
    spoiler_text: str = ""
    ai_generated: bool = False
    robots: str | None = None
    data_mining: str | None = None


async def suggest(db: Database, kind: str, name: str, aliases: list[str] | None = None) -> None:
    """Put a term on the suggestion list (the migration seeds some; PostgreSQL test runs
    truncate them)."""
    async with db.session() as session:
        await add_suggestion(session, kind, name, aliases or [])


async def remote_account(db: Database, username: str = "rita", domain: str = "remote.example", *,
                         robots: str | None = None, data_mining: str | None = None) -> Account:
    async with db.session() as session:
        account = Account(
            id=new_id(), username=username, username_key=username.lower(), domain=domain,
            display_name=username.title(), note="<p>Remote painter</p>",
            uri=f"https://{domain}/users/{username}", url=f"https://{domain}/@{username}",
            inbox_url=f"https://{domain}/users/{username}/inbox",
            avatar_remote_url=f"https://cdn.{domain}/avatars/{username}.png",
            robots=robots, data_mining=data_mining)
        session.add(account)
        await session.commit()
        return account


async def add_work(db: Database, settings: Settings, account: Account, work: NewWork | None = None) -> Status:
    """A status of ``account`` with ``work``'s images and metadata."""
    work = work or NewWork()
    async with db.session() as session:
        status_id = new_id()
        local = account.is_local
        if local:
            uri = f"{settings.base_url}/users/{account.username}/statuses/{status_id}"
            url = f"{settings.base_url}/@{account.username}/{status_id}"
        else:
            uri = f"https://{account.domain}/users/{account.username}/statuses/{status_id}"
            url = f"https://{account.domain}/@{account.username}/{status_id}"
        tags = re.findall(r"#(\w+)", work.text)
        content = "<p>" + re.sub(
            r"#(\w+)", lambda m: f'<a href="{settings.base_url}/tags/{m.group(1).lower()}" '
            f'class="mention hashtag" rel="tag">#<span>{m.group(1)}</span></a>', work.text) + "</p>"
        status = Status(
            id=status_id, account_id=account.id, uri=uri, url=url, text=work.text if local else "",
            content=content, visibility=work.visibility, sensitive=work.sensitive,
            spoiler_text=work.spoiler_text, local=local, published=work.published,
            published_at=utcnow() if work.published else None, robots=work.robots,
            data_mining=work.data_mining)
        session.add(status)
        await session.flush()
        first_media_id = new_id()  # ids in the images' order (the order pages show)
        for number, image in enumerate(work.images):
            small_w = 400
            small_h = round(400 * image.height / image.width)
            media = MediaAttachment(
                id=first_media_id + number, account_id=account.id, status_id=status.id, type="image",
                state=MediaState.READY.value, protection="protected",
                description=image.description, blurhash=image.blurhash,
                meta={"original": {"width": image.width, "height": image.height},
                      "small": {"width": small_w, "height": small_h},
                      "protection": {"secret": "never shown"}})
            if local:
                media.original_key = f"originals/secret_original_{status_id}_{number}.png"
                media.file_key = f"media/full_{status_id}_{number}.jpg"
                media.small_key = f"media/small_{status_id}_{number}.jpg"
            else:
                media.remote_url = f"https://cdn.{account.domain}/media/{status_id}-{number}.jpg"
            session.add(media)
        await session.flush()
        if work.images:
            await set_work_metadata(session, status, WorkMeta(
                title=work.title, description=work.description, year=work.year,
                dimensions=work.dimensions, tags=work.tags, ai_generated=work.ai_generated))
        if not local:  # a remote note's own hashtags, as federation stores them
            for name in tags:
                tag = await session.scalar(select(Tag).where(Tag.name == name.lower()))
                if tag is None:
                    tag = Tag(id=new_id(), name=name.lower(), display_name=name)
                    session.add(tag)
                    await session.flush()
                if await session.get(StatusTag, (status.id, tag.id)) is None:
                    session.add(StatusTag(status_id=status.id, tag_id=tag.id))
        await session.commit()
        return status
