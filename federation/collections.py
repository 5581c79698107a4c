"""The ActivityPub collections and objects a local actor links to, built from the database.

An actor document names an ``outbox``, ``followers``, ``following`` and ``featured``
collection, and every Note it federates has an id that must answer a GET. This module is
the one place that reads those from the database and hands them to the converters in
:mod:`federation.serialize`: it chooses the rows (only what an anonymous viewer may see,
``visibility.visible_to(None)``), pages them newest first by id with a ``max_id`` cursor
as Mastodon does, and loads everything a page of Notes needs (mentions, hashtags, media,
replied-to and boosted statuses, portfolio data) in one query per kind, never one per
status. ``featured`` is the account's pins (``StatusPin``), newest pin first, as full
Notes, as Mastodon serves it. ``featuredTags`` is the account's featured hashtags.

It never does HTTP (no requests, no responses, no signature checks: ``federation.routes``
does those), never writes, and never returns a private, direct or unpublished status, nor
a boost whose original an anonymous viewer may not see. Serving private objects to an
authorised signed fetcher is future work and will take a viewer instead of ``None``.

**Withheld.** Under authorized fetch a signer the account blocks, or whose domain it
blocks (:func:`blocks_reader`, Mastodon's ``AccountStatusesFilter#blocked?``), reads
every collection as empty: :func:`withheld_collection` for the paged ones (outbox,
followers, following: ``totalItems`` 0, pages without items), ``withheld=True`` for
``featured`` and ``featuredTags`` (Mastodon's ``for_signed_account``). Its statuses
answer 404 (``federation.routes``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from federation.polls import polls_of, question_fields
from federation.serialize import (
    Document,
    announce_activity,
    create_activity,
    featured_tag_document,
    ordered_collection,
    ordered_collection_page,
    status_to_note,
)
from server.models import (
    Account,
    AccountDomainBlock,
    Block,
    MediaAttachment,
    Mention,
    Poll,
    Status,
    StatusPin,
    StatusTag,
    Tag,
)
from server.services.featured_tags import featured_tags
from server.services.follows import followers_query, following_query
from server.services.portfolio import WorkView, work_metadata
from server.services.timelines import original_visible_to
from server.services.visibility import visible_to
from server.storage import Storage
from server.urls import Urls

OUTBOX_PAGE_SIZE = 20
# Mastodon's FollowerAccountsController::PAGE_SIZE.
FOLLOWS_PAGE_SIZE = 10
# Pins shown in ``featured`` (Mastodon allows 5 per account; the collection has no pages).
FEATURED_LIMIT = 40


# ------------------------------------------------------------------------ what is shown

def _outbox_filter(account: Account) -> ColumnElement[bool]:
    """The account's statuses and boosts an anonymous viewer may see (for a boost, its
    original too)."""
    return and_(Status.account_id == account.id, visible_to(None), original_visible_to(None))


def page_url(collection_id: str, max_id: int | None = None) -> str:
    """``…?page=true``, or ``…?page=true&max_id=N`` for the page of items older than N."""
    url = f"{collection_id}?page=true"
    return url if max_id is None else f"{url}&max_id={max_id}"


def outbox_id(account: Account, urls: Urls) -> str:
    return account.outbox_url or urls.outbox(account.username)


def followers_id(account: Account, urls: Urls) -> str:
    return account.followers_url or urls.followers(account.username)


def following_id(account: Account, urls: Urls) -> str:
    return account.following_url or urls.following(account.username)


def featured_id(account: Account, urls: Urls) -> str:
    return account.featured_url or urls.featured(account.username)


# ----------------------------------------------------------------- withheld from a reader

async def blocks_reader(session: AsyncSession, account: Account, reader: Account) -> bool:
    """Whether ``account`` blocks ``reader`` (a signed fetch's signer), or ``reader``'s
    domain (a user's domain block, exact as Mastodon's ``domain_blocking?``)."""
    if reader.id == account.id:
        return False
    blocks = [exists().where(Block.account_id == account.id,
                             Block.target_account_id == reader.id)]
    if reader.domain:
        blocks.append(exists().where(AccountDomainBlock.account_id == account.id,
                                     AccountDomainBlock.domain == reader.domain))
    return bool(await session.scalar(select(or_(*blocks))))


def withheld_collection(collection_id: str, *, page: bool, max_id: int | None = None
                        ) -> Document:
    """A paged collection as a reader its owner blocks sees it: empty."""
    if page:
        return ordered_collection_page(page_url(collection_id, max_id), collection_id, [])
    return ordered_collection(collection_id, 0, page_url(collection_id))


# ------------------------------------------------------------------------------ notes

@dataclass
class _NoteParts:
    """Everything :func:`status_to_note` needs beyond the status, for a batch of statuses."""

    media: dict[int, list[MediaAttachment]] = field(default_factory=lambda: defaultdict(list))
    mentions: dict[int, list[Account]] = field(default_factory=lambda: defaultdict(list))
    tags: dict[int, list[Tag]] = field(default_factory=lambda: defaultdict(list))
    parent_uris: dict[int, str] = field(default_factory=dict)
    works: dict[int, WorkView] = field(default_factory=dict)
    polls: dict[int, Poll] = field(default_factory=dict)


async def _note_parts(session: AsyncSession, statuses: Sequence[Status]) -> _NoteParts:
    parts = _NoteParts()
    ids = [status.id for status in statuses]
    if not ids:
        return parts
    for item in await session.scalars(
            select(MediaAttachment).where(MediaAttachment.status_id.in_(ids))
            .order_by(MediaAttachment.id)):
        assert item.status_id is not None
        parts.media[item.status_id].append(item)
    for status_id, account in (await session.execute(
            select(Mention.status_id, Account).join(Account, Account.id == Mention.account_id)
            .where(Mention.status_id.in_(ids)).order_by(Mention.id))).all():
        parts.mentions[status_id].append(account)
    for status_id, tag in (await session.execute(
            select(StatusTag.status_id, Tag).join(Tag, Tag.id == StatusTag.tag_id)
            .where(StatusTag.status_id.in_(ids)).order_by(Tag.name))).all():
        parts.tags[status_id].append(tag)
    parent_ids = {status.in_reply_to_id for status in statuses if status.in_reply_to_id}
    if parent_ids:
        parts.parent_uris = {row.id: row.uri for row in (await session.execute(
            select(Status.id, Status.uri).where(Status.id.in_(parent_ids)))).all()}
    parts.works = dict(await work_metadata(session, ids))
    parts.polls = await polls_of(session, ids)
    return parts


def _note(status: Status, author: Account, parts: _NoteParts, urls: Urls,
          storage: Storage) -> Document:
    parent = parts.parent_uris.get(status.in_reply_to_id) if status.in_reply_to_id else None
    note = status_to_note(status, author, parts.media.get(status.id, []),
                          parts.mentions.get(status.id, []), parts.tags.get(status.id, []),
                          urls, storage, parent, work=parts.works.get(status.id))
    poll = parts.polls.get(status.id)
    if poll is not None:  # a poll's status is a Question
        note.update(question_fields(poll))
    return note


async def _originals(session: AsyncSession, boosts: Sequence[Status]) -> dict[int, tuple[str, str]]:
    """Boosted status id → (its uri, its author's uri)."""
    ids = {boost.reblog_of_id for boost in boosts if boost.reblog_of_id is not None}
    if not ids:
        return {}
    author = aliased(Account)
    rows = await session.execute(
        select(Status.id, Status.uri, author.uri).join(author, author.id == Status.account_id)
        .where(Status.id.in_(ids)))
    return {row[0]: (row[1], row[2]) for row in rows.all()}


async def activities_for(session: AsyncSession, account: Account, statuses: Sequence[Status],
                         urls: Urls, storage: Storage) -> list[Document]:
    """``account``'s statuses as outbox items, in the order given: ``Create(Note)`` for a
    status, ``Announce`` for a boost (a boost whose original is gone is left out)."""
    notes = [status for status in statuses if status.reblog_of_id is None]
    boosts = [status for status in statuses if status.reblog_of_id is not None]
    parts = await _note_parts(session, notes)
    originals = await _originals(session, boosts)
    items = []
    for status in statuses:
        if status.reblog_of_id is None:
            items.append(create_activity(_note(status, account, parts, urls, storage)))
        elif status.reblog_of_id in originals:
            original_uri, original_author_uri = originals[status.reblog_of_id]
            items.append(announce_activity(status, account, original_uri, original_author_uri,
                                           urls))
    return items


async def shared_status(session: AsyncSession, account: Account, status_id: int) -> Status | None:
    """``account``'s local status (or boost) ``status_id`` if anyone may see it, else None."""
    return await session.scalar(select(Status).where(
        Status.id == status_id, Status.local.is_(True), _outbox_filter(account)))


async def status_note(session: AsyncSession, account: Account, status: Status, urls: Urls,
                      storage: Storage) -> Document:
    """The ``Note`` of a status :func:`shared_status` returned (not a boost)."""
    return _note(status, account, await _note_parts(session, [status]), urls, storage)


async def status_activity(session: AsyncSession, account: Account, status: Status, urls: Urls,
                          storage: Storage) -> Document | None:
    """The ``Create`` of a status, or the ``Announce`` of a boost; None if the boost's
    original is gone."""
    items = await activities_for(session, account, [status], urls, storage)
    return items[0] if items else None


# ------------------------------------------------------------------------------ outbox

async def outbox_collection(session: AsyncSession, account: Account, urls: Urls) -> Document:
    """The outbox: how many statuses and boosts anyone may see, and a link to page one."""
    total = await session.scalar(
        select(func.count()).select_from(Status).where(_outbox_filter(account))) or 0
    collection = outbox_id(account, urls)
    return ordered_collection(collection, total, page_url(collection))


async def outbox_page(session: AsyncSession, account: Account, urls: Urls, storage: Storage,
                      *, max_id: int | None = None,
                      limit: int = OUTBOX_PAGE_SIZE) -> Document:
    """A page of the outbox, newest first: ``Create``/``Announce`` of the statuses older
    than ``max_id`` (all, without), with ``next`` when there may be more."""
    query = select(Status).where(_outbox_filter(account))
    if max_id is not None:
        query = query.where(Status.id < max_id)
    statuses = list(await session.scalars(query.order_by(Status.id.desc()).limit(limit)))
    items = await activities_for(session, account, statuses, urls, storage)
    collection = outbox_id(account, urls)
    next_url = page_url(collection, statuses[-1].id) if len(statuses) == limit else None
    return ordered_collection_page(page_url(collection, max_id), collection, items, next=next_url)


# ----------------------------------------------------------------- followers, following

async def _follows_page(session: AsyncSession, collection: str, query: Select[int, Account],
                        max_id: int | None, limit: int) -> Document:
    first_column = query.selected_columns[0]
    if max_id is not None:
        query = query.where(first_column < max_id)
    rows = (await session.execute(query.order_by(first_column.desc()).limit(limit))).all()
    next_url = page_url(collection, rows[-1][0]) if len(rows) == limit else None
    return ordered_collection_page(page_url(collection, max_id), collection,
                                   [account.uri for _, account in rows], next=next_url)


def followers_collection(account: Account, urls: Urls) -> Document:
    """Followers: ``totalItems`` is ``Account.followers_count``, as Mastodon shows it."""
    collection = followers_id(account, urls)
    return ordered_collection(collection, account.followers_count or 0, page_url(collection))


async def followers_page(session: AsyncSession, account: Account, urls: Urls, *,
                         max_id: int | None = None, limit: int = FOLLOWS_PAGE_SIZE) -> Document:
    """Follower actor ids, newest follow first, paged by ``Follow.id``."""
    return await _follows_page(session, followers_id(account, urls),
                               followers_query(account.id), max_id, limit)


def following_collection(account: Account, urls: Urls) -> Document:
    collection = following_id(account, urls)
    return ordered_collection(collection, account.following_count or 0, page_url(collection))


async def following_page(session: AsyncSession, account: Account, urls: Urls, *,
                         max_id: int | None = None, limit: int = FOLLOWS_PAGE_SIZE) -> Document:
    """Followed actor ids, newest follow first, paged by ``Follow.id``."""
    return await _follows_page(session, following_id(account, urls),
                               following_query(account.id), max_id, limit)


# ------------------------------------------------------------------------------ featured

async def featured_collection(session: AsyncSession, account: Account, urls: Urls,
                              storage: Storage, *, withheld: bool = False) -> Document:
    """Pinned statuses, newest pin first, as full Notes (Mastodon embeds them so a
    profile shows its pins without one fetch each): only those anyone may see (public or
    unlisted, published; never a boost). None when ``withheld``."""
    statuses = [] if withheld else list(await session.scalars(
        select(Status).join(StatusPin, StatusPin.status_id == Status.id)
        .where(StatusPin.account_id == account.id, Status.reblog_of_id.is_(None),
               _outbox_filter(account))
        .order_by(StatusPin.created_at.desc(), StatusPin.id.desc()).limit(FEATURED_LIMIT)))
    parts = await _note_parts(session, statuses)
    collection = ordered_collection(featured_id(account, urls), len(statuses))
    collection["orderedItems"] = [
        _embedded_note(_note(status, account, parts, urls, storage)) for status in statuses]
    return collection


async def featured_tags_collection(session: AsyncSession, account: Account, urls: Urls, *,
                                   withheld: bool = False) -> Document:
    """The account's featured hashtags (``featuredTags``), as Mastodon serves them: an
    unordered ``Collection`` of ``Hashtag`` objects, oldest first, no pages. None when
    ``withheld``."""
    tags = [] if withheld else [view.tag for view in await featured_tags(session, account.id)]
    collection = ordered_collection(urls.featured_tags(account.username), len(tags))
    collection["type"] = "Collection"
    collection["items"] = [featured_tag_document(tag, account, urls) for tag in tags]
    return collection


def _embedded_note(note: Document) -> Document:
    note.pop("@context", None)
    return note
