"""Hashtags a user follows: public posts with them join the user's home timeline, as in
Mastodon 4 (``POST /api/v1/tags/:name/follow``). Following a tag nobody has used yet
creates it. Writes commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import insert_ignoring_conflict
from server.ids import new_id, utcnow
from server.models import Account, Tag, TagFollow
from server.services.errors import NotFound, ServiceError
from server.services.text import normalize_tag

MAX_TAG_LENGTH = 255
MAX_FOLLOWED_TAGS = 1000


def check_tag_name(raw: str) -> str:
    """A hashtag as a client sends it ("#Ink", "ink") → its display spelling; Mastodon's
    rule: word characters and ``_``, at least one that is not a digit."""
    name = raw.strip().lstrip("#")
    if not name or len(name) > MAX_TAG_LENGTH or not all(c.isalnum() or c in "_·" for c in name) \
            or name.replace("_", "").isdigit():
        raise NotFound("Record not found")
    return name


async def find_tag(session: AsyncSession, raw: str) -> Tag | None:
    return await session.scalar(select(Tag).where(Tag.name == normalize_tag(check_tag_name(raw))))


async def tag_named(session: AsyncSession, raw: str) -> Tag:
    """The hashtag ``raw`` names: its row, or — nobody has used it yet — an unsaved one
    (as Mastodon's ``Tag.new``), so a client can show it and offer to follow it. A name
    that is no hashtag is NotFound."""
    found = await find_tag(session, raw)
    if found is not None:
        return found
    name = check_tag_name(raw)
    return Tag(name=normalize_tag(name), display_name=name)


async def tags_for(session: AsyncSession, names: Sequence[str]) -> list[Tag]:
    """Tag rows for these hashtags (display spellings), created if new. Concurrent posts
    may create the same tag: the insert ignores the conflict and the row is read back."""
    wanted: dict[str, str] = {}
    for name in names:
        wanted.setdefault(normalize_tag(name), name)
    if not wanted:
        return []
    existing = {t.name for t in await session.scalars(select(Tag).where(Tag.name.in_(wanted)))}
    for name, display in wanted.items():
        if name not in existing:
            await session.execute(insert_ignoring_conflict(
                session, Tag, {"id": new_id(), "name": name, "display_name": display,
                               "created_at": utcnow()}, ["name"]))
    return list(await session.scalars(select(Tag).where(Tag.name.in_(wanted))))


async def find_or_create_tag(session: AsyncSession, raw: str) -> Tag:
    [tag] = await tags_for(session, [check_tag_name(raw)])
    return tag


async def is_following(session: AsyncSession, account: Account | None, tag: Tag) -> bool:
    if account is None:
        return False
    return await session.scalar(select(TagFollow.id).where(
        TagFollow.account_id == account.id, TagFollow.tag_id == tag.id)) is not None


async def follow_tag(session: AsyncSession, account: Account, raw: str) -> Tag:
    tag = await find_or_create_tag(session, raw)
    if not await is_following(session, account, tag):
        count = len(list(await session.scalars(select(TagFollow.id).where(
            TagFollow.account_id == account.id))))
        if count >= MAX_FOLLOWED_TAGS:
            raise ServiceError(f"Validation failed: You can follow at most {MAX_FOLLOWED_TAGS} "
                               "hashtags", 422)
        try:
            async with session.begin_nested():
                session.add(TagFollow(account_id=account.id, tag_id=tag.id))
        except IntegrityError:
            pass  # followed concurrently
    await session.commit()
    return tag


async def unfollow_tag(session: AsyncSession, account: Account, raw: str) -> Tag:
    tag = await tag_named(session, raw)
    if tag.id is None:  # nobody used it: nobody follows it
        return tag
    await session.execute(delete(TagFollow).where(TagFollow.account_id == account.id,
                                                  TagFollow.tag_id == tag.id))
    await session.commit()
    return tag


def followed_tags_query(account_id: int) -> Select[int, Tag]:
    """(TagFollow.id, Tag) rows of the tags ``account_id`` follows, paged by the follow."""
    return (select(TagFollow.id, Tag).join(Tag, Tag.id == TagFollow.tag_id)
            .where(TagFollow.account_id == account_id))


def followed_tag_ids(account_id: int | ColumnElement[Any]) -> Select[int]:
    return select(TagFollow.tag_id).where(TagFollow.account_id == account_id)
