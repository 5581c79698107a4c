"""Featured hashtags: the tags an account shows on its profile (``/api/v1/featured_tags``,
``/api/v1/accounts/:id/featured_tags``, and the actor's ``featuredTags`` collection), as
Mastodon's ``FeaturedTag``.

Why it exists: artists pin the tags their work lives under. Each featured tag shows how
many of the account's public and unlisted, published posts carry it and the day of the
latest; these are counted when asked for (one grouped query per list), never stored, so
they cannot drift. At most ``limits.MAX_FEATURED_TAGS`` per account; featuring a tag twice
answers the one already featured (as Mastodon). Suggestions are the account's most used
hashtags not featured yet. Featuring and unfeaturing are sent to the followers as
``Add``/``Remove`` of the ``Hashtag``, and a remote account's are received the same way.

What it must never do: count private or direct posts (the list is public), or let one
account remove another's featured tag. Writes commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server import limits
from server.db import insert_ignoring_conflict
from server.ids import new_id, utcnow
from server.models import Account, FeaturedTag, Status, StatusTag, Tag
from server.services.errors import NotFound, ValidationFailed
from server.services.outbox import record_activity
from server.services.tags import check_tag_name, tags_for
from server.services.text import normalize_tag

SUGGESTIONS = 10


@dataclass(frozen=True)
class FeaturedTagView:
    featured: FeaturedTag
    tag: Tag
    statuses_count: int
    last_status_at: datetime | None


def _counted(account_id: int) -> list[ColumnElement[bool]]:
    return [Status.account_id == account_id, Status.published.is_(True),
            Status.visibility.in_(("public", "unlisted")), Status.reblog_of_id.is_(None)]


async def featured_tags(session: AsyncSession, account_id: int) -> list[FeaturedTagView]:
    """The account's featured tags, oldest first (as Mastodon lists them), with counts."""
    rows = (await session.execute(
        select(FeaturedTag, Tag).join(Tag, Tag.id == FeaturedTag.tag_id)
        .where(FeaturedTag.account_id == account_id).order_by(FeaturedTag.id))).all()
    return await _views(session, account_id, [(f, t) for f, t in rows])


async def _views(session: AsyncSession, account_id: int,
                 rows: list[tuple[FeaturedTag, Tag]]) -> list[FeaturedTagView]:
    tag_ids = [tag.id for _, tag in rows]
    counts: dict[int, tuple[int, datetime | None]] = {}
    if tag_ids:
        for tag_id, count, latest in (await session.execute(
                select(StatusTag.tag_id, func.count(), func.max(Status.created_at))
                .join(Status, Status.id == StatusTag.status_id)
                .where(StatusTag.tag_id.in_(tag_ids), *_counted(account_id))
                .group_by(StatusTag.tag_id))).all():
            counts[tag_id] = (int(count), latest)
    return [FeaturedTagView(featured, tag, *counts.get(tag.id, (0, None)))
            for featured, tag in rows]


async def feature_tag(session: AsyncSession, account: Account, raw: str | None) -> FeaturedTagView:
    """Feature the hashtag ``raw`` ("#Ink" or "ink"); the existing one if already featured."""
    if raw is None or not raw.strip().lstrip("#"):
        raise ValidationFailed("Name can't be blank")
    try:
        name = check_tag_name(raw)
    except NotFound:
        raise ValidationFailed("Name is invalid") from None
    [tag] = await tags_for(session, [name])
    featured = await session.scalar(select(FeaturedTag).where(
        FeaturedTag.account_id == account.id, FeaturedTag.tag_id == tag.id))
    if featured is None:
        count = await session.scalar(select(func.count()).select_from(FeaturedTag).where(
            FeaturedTag.account_id == account.id)) or 0
        if count >= limits.MAX_FEATURED_TAGS:
            raise ValidationFailed("You have already featured the maximum number of hashtags")
        try:
            async with session.begin_nested():
                featured = FeaturedTag(account_id=account.id, tag_id=tag.id)
                session.add(featured)
        except IntegrityError:  # featured concurrently: answer that one
            featured = await session.scalar(select(FeaturedTag).where(
                FeaturedTag.account_id == account.id, FeaturedTag.tag_id == tag.id))
            assert featured is not None
        else:
            await _federate(session, account, "Add", tag)
    await session.commit()
    [view] = await _views(session, account.id, [(featured, tag)])
    return view


async def unfeature_tag(session: AsyncSession, account: Account, featured_tag_id: int) -> None:
    removed = (await session.execute(delete(FeaturedTag).where(
        FeaturedTag.id == featured_tag_id, FeaturedTag.account_id == account.id)
        .returning(FeaturedTag.tag_id))).first()
    if removed is None:
        await session.rollback()
        raise NotFound("Record not found")
    tag = await session.get(Tag, removed[0])
    if tag is not None:
        await _federate(session, account, "Remove", tag)
    await session.commit()


async def _federate(session: AsyncSession, account: Account, type_: str, tag: Tag) -> None:
    """``Add``/``Remove`` of the ``Hashtag`` to the followers (as Mastodon sends them)."""
    await record_activity(session, account, type_, object_type="Hashtag", tag=tag.name,
                          display_name=tag.display_name or tag.name)


async def record_remote_featured_tag(session: AsyncSession, account: Account, raw: str, *,
                                     featured: bool) -> bool:
    """A remote account featured (``Add``) or stopped featuring (``Remove``) the hashtag
    ``raw``, in the caller's transaction (not committed); True when that changed anything.
    ValidationFailed for a name that is no hashtag; beyond ``MAX_FEATURED_TAGS`` more are
    not kept."""
    if account.is_local:
        raise ValidationFailed("A local account's tags are its own to feature")
    try:
        name = check_tag_name(raw)
    except NotFound:
        raise ValidationFailed("Name is invalid") from None
    tag_id = await session.scalar(select(Tag.id).where(Tag.name == normalize_tag(name)))
    if not featured:
        if tag_id is None:
            return False
        removed = await session.execute(delete(FeaturedTag).where(
            FeaturedTag.account_id == account.id, FeaturedTag.tag_id == tag_id))
        return bool(getattr(removed, "rowcount", 0))
    count = await session.scalar(select(func.count()).select_from(FeaturedTag).where(
        FeaturedTag.account_id == account.id)) or 0
    if count >= limits.MAX_FEATURED_TAGS:
        return False
    [tag] = await tags_for(session, [name])
    added = await session.execute(insert_ignoring_conflict(
        session, FeaturedTag, {"id": new_id(), "account_id": account.id, "tag_id": tag.id,
                               "created_at": utcnow()}, ["account_id", "tag_id"]))
    return bool(getattr(added, "rowcount", 0))


async def suggested_tags(session: AsyncSession, account: Account) -> list[Tag]:
    """The account's most used hashtags (public and unlisted posts) not featured yet."""
    featured = select(FeaturedTag.tag_id).where(FeaturedTag.account_id == account.id)
    uses = func.count()
    tag_ids = [row[0] for row in (await session.execute(
        select(StatusTag.tag_id, uses).join(Status, Status.id == StatusTag.status_id)
        .where(*_counted(account.id), StatusTag.tag_id.not_in(featured))
        .group_by(StatusTag.tag_id).order_by(uses.desc(), StatusTag.tag_id)
        .limit(SUGGESTIONS))).all()]
    tags = {t.id: t for t in await session.scalars(select(Tag).where(Tag.id.in_(tag_ids)))}
    return [tags[i] for i in tag_ids if i in tags]
