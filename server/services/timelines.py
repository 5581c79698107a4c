"""The lists a viewer reads: home, public and hashtag timelines, notifications, bookmarks
and favourites.

Each function builds one query that already applies ``visibility.visible_to`` (so a page is
never short because rows were dropped after the fact) and hands it to the caller's page
(``server.api.pagination.Page``, passed in as a ``Paging`` so services never import the API
layer). Membership rules follow Mastodon 4.2 (``FeedManager#filter_from_home``,
``PublicFeed``, ``TagFeed``, ``Notification.browserable``). This module only reads: it
never writes, except ``clear_notifications``/``dismiss_notification``, which commit.

Remote statuses pass through the same queries (``Status.local`` tells them apart). Domain
blocks apply to the public and hashtag timelines: accounts of silenced (and suspended)
domains are left out, except for a viewer who follows them
(``server.services.domain_blocks``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, TypeVarTuple, cast

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    inspect,
    literal_column,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.sql.util import ClauseAdapter

from server.db import bound_list, json_lists, list_value
from server.ids import utcnow
from server.models import (
    NOTIFICATION_TYPES,
    Account,
    AccountDomainBlock,
    Block,
    Bookmark,
    Favourite,
    Filter,
    Follow,
    Marker,
    MediaAttachment,
    Mute,
    Notification,
    Status,
    StatusPin,
    StatusTag,
    Tag,
)
from server.services.blocks import active_mute, hidden_accounts, muted_senders
from server.services.domain_blocks import Hiding, hidden_from_public_timelines, read_hiding
from server.services.errors import NotFound
from server.services.lists import exclusive_members, own_list
from server.services.lists import members as list_members
from server.services.tags import followed_tag_ids
from server.services.text import normalize_tag
from server.services.thread_mutes import muted_among_query
from server.services.visibility import BOUND_VIEWER, Viewer, not_suspended_author, visible_to
from server.sqlite_driver import INLINE

T = TypeVar("T")
Columns = TypeVarTuple("Columns")

# Mastodon's TagFeed::LIMIT_PER_MODE: at most this many extra tags in any[], all[], none[].
TAGS_PER_MODE = 4


class Paging(Protocol):
    """What a service needs from a page (``server.api.pagination.Page`` is one)."""

    def apply(self, query: Select[Any], column: InstrumentedAttribute[int]) -> Select[Any]: ...

    def arrange(self, rows: Sequence[T]) -> list[T]: ...


class Cursors(Paging, Protocol):
    """A page whose cursors a prebuilt statement binds (``server.api.pagination.Page``)."""

    @property
    def max_id(self) -> int | None: ...

    @property
    def since_id(self) -> int | None: ...

    @property
    def min_id(self) -> int | None: ...

    @property
    def limit(self) -> int: ...


def tag_name(raw: str) -> str:
    """What a client sends as a hashtag ("Ink", "#ink", "ｉｎｋ") as ``Tag.name``."""
    return normalize_tag(raw.strip().lstrip("#"))


# ------------------------------------------------------------------------ shared clauses

def original_visible_to(viewer: Viewer | None) -> ColumnElement[bool]:
    """A boost is shown only if its original is visible too (an original that went private
    or unpublished must not leak through an older boost). Correlated, the original looked
    up by its key for each boost: an ``IN`` over every visible status made PostgreSQL
    build that whole set for each query (a second per home page at 100,000 statuses)."""
    original = aliased(Status)
    seen = ClauseAdapter(inspect(original).selectable).traverse(visible_to(viewer))
    return or_(Status.reblog_of_id.is_(None),
               exists().where(original.id == Status.reblog_of_id, seen))


def is_reply() -> ColumnElement[bool]:
    """A reply, known parent or not (a remote reply whose parent could not be fetched
    has only ``in_reply_to_uri``)."""
    return or_(Status.in_reply_to_id.is_not(None), Status.in_reply_to_account_id.is_not(None),
               Status.in_reply_to_uri.is_not(None))


def has_media() -> ColumnElement[bool]:
    return exists().where(MediaAttachment.status_id == Status.id)


def where_local_or_remote(query: Select[Any], *, local: bool, remote: bool) -> Select[Any]:
    if local:
        query = query.where(Status.local.is_(True))
    if remote:
        query = query.where(Status.local.is_(False))
    return query


async def without_silenced(session: AsyncSession, query: Select[*Columns],
                           viewer: Viewer | None) -> Select[*Columns]:
    """Leave out statuses by accounts of silenced or suspended domains, unless ``viewer``
    follows their author (Mastodon's silence: out of public timelines, not out of sight).
    ``query`` may select any columns of ``Status`` (the trends count them)."""
    return _without_silenced(query, viewer, await read_hiding(session))


def _without_silenced(query: Select[*Columns], viewer: Viewer | None,
                      hiding: Hiding) -> Select[*Columns]:
    hidden = hiding.clause()
    # Accounts silenced by our moderators too (``server.services.moderation``).
    hidden = (Account.silenced_at.is_not(None) if hidden is None
              else or_(hidden, Account.silenced_at.is_not(None)))
    allowed: ColumnElement[bool] = Status.account_id.not_in(select(Account.id).where(hidden))
    if viewer is not None:
        followed = select(Follow.target_account_id).where(Follow.account_id == viewer.id)
        allowed = or_(allowed, Status.account_id.in_(followed))
    return query.where(allowed)


def not_hidden_from(viewer: Viewer | None, *,
                    now: datetime | ColumnElement[Any] | None = None) -> ColumnElement[bool]:
    """Statuses (and boosts of statuses) by accounts ``viewer`` blocks, is blocked by or
    mutes are left out of its timelines (``server.services.blocks``); mutes as of ``now``."""
    if viewer is None:
        return true()
    hidden = hidden_accounts(viewer.id, now=now)
    original = aliased(Status)
    boosted_hidden = exists().where(original.id == Status.reblog_of_id,
                                    original.account_id.in_(hidden))
    return and_(Status.account_id.not_in(hidden), not_(boosted_hidden))


async def _statuses(session: AsyncSession, query: Select[Any], page: Paging) -> list[Status]:
    rows = list(await session.scalars(page.apply(query, Status.id)))
    return page.arrange(rows)


# ------------------------------------------------------------------------ prebuilt statements

class PrebuiltStatements:
    """Timeline statements built once per process and run with bound values.

    Building a timeline's statement costs several times what running it does: SQLAlchemy
    constructs every clause object and then walks them all for the compiled-statement
    cache key (measured: 3.7 ms of the home timeline's 4.3 ms of CPU, against 0.6 ms to
    run a prebuilt one). So the statement is built for a bound viewer
    (``visibility.BOUND_VIEWER``), a bound ``now`` and bound page cursors, and kept under
    what still shapes it: the domain blocks as read (their domains are in it) and which
    cursors the page has. A change of the blocks makes a new key; the oldest statements
    go past ``limit``.
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self.statements: OrderedDict[Hashable, Select[Any]] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], Select[Any]]) -> Select[Any]:
        statement = self.statements.get(key)
        if statement is None:
            statement = self.statements[key] = build()
            while len(self.statements) > self.limit:
                self.statements.popitem(last=False)
        else:
            self.statements.move_to_end(key)
        return statement


PREBUILT = PrebuiltStatements()


def _page_shape(page: Cursors) -> tuple[bool, bool, bool]:
    return page.max_id is not None, page.since_id is not None, page.min_id is not None


def _paged(query: Select[Any], column: InstrumentedAttribute[int], page: Cursors) -> Select[Any]:
    """``page.apply`` with the cursors and the limit as bound parameters (see
    ``_run_prebuilt``): the same statement serves every page of its shape."""
    if page.max_id is not None:
        query = query.where(column < bindparam("max_id", type_=BigInteger))
    if page.since_id is not None:
        query = query.where(column > bindparam("since_id", type_=BigInteger))
    if page.min_id is not None:
        query = query.where(column > bindparam("min_id", type_=BigInteger)).order_by(column.asc())
    else:
        query = query.order_by(column.desc())
    return query.limit(bindparam("limit", type_=Integer))


async def _run_prebuilt(session: AsyncSession, statement: Select[Any], viewer: Account,
                        page: Cursors, **bound: Any) -> list[Any]:
    values: dict[str, Any] = {"viewer": viewer.id, "now": utcnow(), "limit": page.limit, **bound}
    for name in ("max_id", "since_id", "min_id"):
        if (cursor := getattr(page, name)) is not None:
            values[name] = cursor
    rows = list(await session.scalars(statement, values))
    return page.arrange(rows)


# ------------------------------------------------------------------------------ timelines

async def home_timeline(session: AsyncSession, viewer: Account, page: Cursors) -> list[Status]:
    """The viewer's own statuses and those of the accounts they follow, newest first.

    As Mastodon: boosts by a followed account unless that follow has ``show_reblogs``
    false; replies only when they answer the viewer, the author themself (threads), or an
    account the viewer follows. The viewer's own statuses are never filtered (unpublished
    ones included: they are the author's to see). Members of the viewer's exclusive lists
    are left out (they are read in their list); public posts with a hashtag the viewer
    follows are in. The statement is built once (``PREBUILT``) and run with the viewer.
    """
    hiding = await read_hiding(session)
    statement = PREBUILT.get(("home", hiding, _page_shape(page)),
                             lambda: _paged(_home_query(hiding), Status.id, page))
    return await _run_prebuilt(session, statement, viewer, page)


def _home_query(hiding: Hiding) -> Select[Any]:
    viewer = BOUND_VIEWER
    now: BindParameter[Any] = bindparam("now")  # typed by what it is compared with
    followed = select(Follow.target_account_id).where(Follow.account_id == viewer.id)
    hiding_reblogs = select(Follow.target_account_id).where(
        Follow.account_id == viewer.id, Follow.show_reblogs.is_(False))
    reply_allowed = or_(
        not_(is_reply()),
        Status.in_reply_to_account_id == viewer.id,
        Status.in_reply_to_account_id == Status.account_id,
        Status.in_reply_to_account_id.in_(followed),
    )
    boost_allowed = or_(Status.reblog_of_id.is_(None), Status.account_id.not_in(hiding_reblogs))
    # Public posts with a hashtag the viewer follows (never boosts), as Mastodon 4.
    with_followed_tag = and_(
        Status.visibility == "public", Status.reblog_of_id.is_(None),
        exists().where(StatusTag.status_id == Status.id,
                       StatusTag.tag_id.in_(followed_tag_ids(viewer.id))))
    query = select(Status).where(
        or_(Status.account_id == viewer.id,
            and_(Status.account_id.in_(followed),
                 Status.account_id.not_in(exclusive_members(viewer.id))),
            with_followed_tag),
        visible_to(viewer),
        original_visible_to(viewer),
        or_(Status.account_id == viewer.id, and_(reply_allowed, boost_allowed)),
        not_hidden_from(viewer, now=now),
    )
    # Posts a followed hashtag brings in obey domain silences as the hashtag timeline does
    # (followed accounts' posts pass anyway).
    return _without_silenced(query, viewer, hiding)


async def list_timeline(session: AsyncSession, viewer: Account, list_id: int,
                        page: Cursors) -> list[Status]:
    """Posts and boosts by the list's members (those the owner still follows), with the
    replies its ``replies_policy`` allows: to anyone the owner follows (or the owner),
    to members only, or none; self-replies (threads) always, except with ``none``.
    Prebuilt per policy (``PREBUILT``), run with the viewer and the list bound."""
    found = await own_list(session, viewer, list_id)
    statement = PREBUILT.get(("list", found.replies_policy, _page_shape(page)),
                             lambda: _paged(_list_query(found.replies_policy), Status.id, page))
    return await _run_prebuilt(session, statement, viewer, page, list=found.id)


def _list_query(replies_policy: str) -> Select[Any]:
    viewer = BOUND_VIEWER
    now: BindParameter[Any] = bindparam("now")
    members = list_members(bindparam("list", type_=BigInteger), viewer.id)
    followed = select(Follow.target_account_id).where(Follow.account_id == viewer.id)
    hiding_reblogs = select(Follow.target_account_id).where(
        Follow.account_id == viewer.id, Follow.show_reblogs.is_(False))
    if replies_policy == "none":
        reply_allowed: ColumnElement[bool] = not_(is_reply())
    elif replies_policy == "list":
        reply_allowed = or_(not_(is_reply()), Status.in_reply_to_account_id == Status.account_id,
                            Status.in_reply_to_account_id.in_(members))
    else:
        reply_allowed = or_(not_(is_reply()), Status.in_reply_to_account_id == Status.account_id,
                            Status.in_reply_to_account_id == viewer.id,
                            Status.in_reply_to_account_id.in_(followed))
    boost_allowed = or_(Status.reblog_of_id.is_(None), Status.account_id.not_in(hiding_reblogs))
    return select(Status).where(
        Status.account_id.in_(members), visible_to(viewer), original_visible_to(viewer),
        reply_allowed, boost_allowed, not_hidden_from(viewer, now=now))


def _public_statuses() -> Select[Any]:
    """Published ``public`` statuses (not unlisted, never boosts: boosts carry no tags and
    Mastodon leaves them out of public timelines)."""
    return select(Status).where(
        Status.published.is_(True), Status.visibility == "public", Status.reblog_of_id.is_(None),
        not_suspended_author())


async def public_timeline(
    session: AsyncSession, page: Paging, *, local: bool = False, remote: bool = False,
    only_media: bool = False, viewer: Account | None = None,
) -> list[Status]:
    """Mastodon's public timeline: public statuses, no boosts, and no replies except an
    author's replies to themself (``Status.without_replies``); silenced domains only for
    ``viewer``'s follows."""
    query = _public_statuses().where(or_(
        not_(is_reply()), Status.in_reply_to_account_id == Status.account_id))
    query = where_local_or_remote(query, local=local, remote=remote)
    if only_media:
        query = query.where(has_media())
    # Local accounts are silenced only by our moderators; the same rule keeps them out.
    query = await without_silenced(session, query, viewer)
    return await _statuses(session, query.where(not_hidden_from(viewer)), page)


async def tag_timeline(
    session: AsyncSession, page: Paging, tag: str, *, any_: Sequence[str] = (),
    all_: Sequence[str] = (), none: Sequence[str] = (), local: bool = False,
    remote: bool = False, only_media: bool = False, viewer: Account | None = None,
) -> list[Status]:
    """Public statuses tagged ``tag`` or any of ``any_``, with every tag of ``all_`` and
    none of ``none`` (Mastodon's TagFeed; replies included; silenced domains only for
    ``viewer``'s follows). Names are normalised here."""
    names = {tag_name(n) for n in (tag, *any_[:TAGS_PER_MODE])} - {""}
    wanted_all = {tag_name(n) for n in all_[:TAGS_PER_MODE]} - {""}
    unwanted = {tag_name(n) for n in none[:TAGS_PER_MODE]} - {""}
    main = tag_name(tag)
    looked_up = names | wanted_all | unwanted
    ids = {name: tag_id for tag_id, name in (await session.execute(
        select(Tag.id, Tag.name).where(Tag.name.in_(looked_up)))).all()} if looked_up else {}
    if main not in ids or any(name not in ids for name in wanted_all):
        return []

    def tagged(tag_ids: Sequence[int]) -> ColumnElement[bool]:
        return exists().where(StatusTag.status_id == Status.id, StatusTag.tag_id.in_(tag_ids))

    query = _public_statuses().where(tagged([ids[n] for n in names if n in ids]))
    for name in wanted_all:
        query = query.where(tagged([ids[name]]))
    unwanted_ids = [ids[n] for n in unwanted if n in ids]
    if unwanted_ids:
        query = query.where(not_(tagged(unwanted_ids)))
    query = where_local_or_remote(query, local=local, remote=remote)
    if only_media:
        query = query.where(has_media())
    # Local accounts are silenced only by our moderators; the same rule keeps them out.
    query = await without_silenced(session, query, viewer)
    return await _statuses(session, query.where(not_hidden_from(viewer)), page)


# ---------------------------------------------------- a signed-in viewer's shared page

@dataclass(frozen=True)
class ViewerMarks:
    """A viewer's own marks on the statuses of a page: what it favourited, boosted,
    bookmarked and pinned."""

    favourited: frozenset[int]
    reblogged: frozenset[int]
    bookmarked: frozenset[int]
    pinned: frozenset[int]


class SharedPageMarks:
    """Whether a signed-in viewer sees a public or hashtag timeline page exactly as an
    anonymous reader does, and if so its marks on it, in one query.

    The public and hashtag timelines differ between viewers in only two ways: statuses by
    accounts the viewer blocks, is blocked by, mutes or whose domain it blocks are left out
    (``not_hidden_from``), and accounts silenced here (or on a silenced domain) are left in
    for a viewer who follows them (``without_silenced``). A viewer's filters may hide or
    mark statuses too, and a thread it muted marks them ``muted``. So a page built for
    everyone serves a viewer for whom none of that applies — no page author hidden from
    it, no follow of a silenced account, no active filter, no status of the page in a
    thread it muted — with its favourited/reblogged/bookmarked/pinned flags laid over; any
    other viewer gets ``None`` and the page built for it alone. The statement is made once per
    shared page (it carries the instance's domain silences as they were then); each
    viewer's check runs it with bound values.
    """

    def __init__(self, statement: CompoundSelect, *, json_lists: bool) -> None:
        self.statement = statement
        self.json_lists = json_lists  # SQLite: the id lists are bound as one JSON array each

    @classmethod
    async def prepare(cls, session: AsyncSession) -> SharedPageMarks:
        hidden = await hidden_from_public_timelines(session)
        silenced = (Account.silenced_at.is_not(None) if hidden is None
                    else or_(hidden, Account.silenced_at.is_not(None)))
        viewer: BindParameter[Any] = bindparam("viewer")
        now: BindParameter[Any] = bindparam("now")
        # Each list is one bound value, not an expanding IN (…) of one per item
        # (``server.db.bound_list``: rewriting the statement and its 100-odd parameters on
        # every run cost ten times what SQLite takes to answer it).
        as_json = json_lists(session)
        ids = bound_list("ids", BigInteger, json_lists=as_json)
        authors = bound_list("authors", BigInteger, json_lists=as_json)
        domains = bound_list("domains", String, json_lists=as_json)

        muted_threads = muted_among_query(ids, viewer).subquery()

        def kind(letter: str) -> Any:
            return literal_column(f"'{letter}'").label("kind")

        return cls(union_all(
            select(kind("f"), Favourite.status_id).where(
                Favourite.account_id == viewer, ids(Favourite.status_id)),
            select(kind("b"), Bookmark.status_id).where(
                Bookmark.account_id == viewer, ids(Bookmark.status_id)),
            select(kind("r"), Status.reblog_of_id).where(
                Status.account_id == viewer, ids(Status.reblog_of_id)),
            select(kind("p"), StatusPin.status_id).where(
                StatusPin.account_id == viewer, ids(StatusPin.status_id)),
            # "h": anything that makes the viewer's page differ (ids are not used).
            select(kind("h"), Block.id).where(
                Block.account_id == viewer, authors(Block.target_account_id)),
            select(kind("h"), Block.id).where(
                Block.target_account_id == viewer, authors(Block.account_id)),
            select(kind("h"), Mute.id).where(
                Mute.account_id == viewer, authors(Mute.target_account_id), active_mute(now)),
            select(kind("h"), AccountDomainBlock.id).where(
                AccountDomainBlock.account_id == viewer, domains(AccountDomainBlock.domain)),
            select(kind("h"), Filter.id).where(
                Filter.account_id == viewer,
                or_(Filter.expires_at.is_(None), Filter.expires_at > now)),
            select(kind("h"), Follow.id).join(Account, Account.id == Follow.target_account_id)
            .where(Follow.account_id == viewer, silenced),
            # A status of the page in a thread the viewer muted (its "muted" differs).
            select(kind("h"), muted_threads.c.start_id),
        ), json_lists=as_json)

    async def of(
        self, session: AsyncSession, viewer: Account, status_ids: Sequence[int],
        author_ids: Sequence[int], domains: Sequence[str], *, now: datetime | None = None,
    ) -> ViewerMarks | None:
        """The viewer's marks on the page, or None when the page is not the viewer's."""
        found: dict[str, set[int]] = {"f": set(), "b": set(), "r": set(), "p": set()}
        lists: dict[str, list[Any]] = {"ids": list(status_ids), "authors": list(set(author_ids)),
                                       "domains": list(set(domains))}
        values: dict[str, Any] = {name: list_value(items, json_lists=self.json_lists)
                                  for name, items in lists.items()}
        values.update(viewer=viewer.id, now=now or utcnow())
        for letter, value in (await session.execute(
                self.statement, values, execution_options=INLINE)).all():
            if letter == "h":
                return None
            found[letter].add(value)
        return ViewerMarks(favourited=frozenset(found["f"]), reblogged=frozenset(found["r"]),
                           bookmarked=frozenset(found["b"]), pinned=frozenset(found["p"]))


# -------------------------------------------------------------------- bookmarks, favourites

async def _saved(
    session: AsyncSession, query: Select[Any, Status], cursor: InstrumentedAttribute[int],
    page: Paging,
) -> list[tuple[int, Status]]:
    # Page.apply is typed for one-column selects; the row shape is (cursor, Status).
    result = await session.execute(page.apply(cast(Select[Any], query), cursor))
    return page.arrange([(int(row[0]), row[1]) for row in result.all()])


async def bookmarked_statuses(
    session: AsyncSession, viewer: Account, page: Paging
) -> list[tuple[int, Status]]:
    """(bookmark id, status), most recently bookmarked first; the bookmark id is the cursor."""
    query = (select(Bookmark.id, Status).join(Status, Status.id == Bookmark.status_id)
             .where(Bookmark.account_id == viewer.id, visible_to(viewer)))
    return await _saved(session, query, Bookmark.id, page)


async def favourited_statuses(
    session: AsyncSession, viewer: Account, page: Paging
) -> list[tuple[int, Status]]:
    """(favourite id, status), most recently favourited first; the favourite id is the cursor."""
    query = (select(Favourite.id, Status).join(Status, Status.id == Favourite.status_id)
             .where(Favourite.account_id == viewer.id, visible_to(viewer)))
    return await _saved(session, query, Favourite.id, page)


# -------------------------------------------------------------------------- notifications

def _own_visible_notifications(viewer: Viewer, *,
                                now: datetime | ColumnElement[Any] | None = None) -> Select[Any]:
    """The viewer's notifications, less those about a status they can no longer see and
    those from accounts blocked either way, muted with their notifications, or suspended
    (``server.services.moderation``: back when the suspension is lifted)."""
    seen = select(Status.id).where(visible_to(viewer))
    return select(Notification).where(
        Notification.account_id == viewer.id,
        or_(Notification.status_id.is_(None), Notification.status_id.in_(seen)),
        Notification.from_account_id.not_in(muted_senders(viewer.id, now=now)),
        Notification.from_account_id.not_in(
            select(Account.id).where(Account.suspended_at.is_not(None))),
    )


def browserable_notifications(
    viewer: Account, *, types: Sequence[str] = (), exclude_types: Sequence[str] = (),
    from_account_id: int | None = None, from_nobody: bool = False,
    include_filtered: bool = False,
) -> Select[Any]:
    """As Mastodon's ``Notification.browserable``: ``types`` narrows to the known types
    listed (only unknown ones: nothing), ``exclude_types`` removes, ``from_account_id``
    keeps one sender (``from_nobody``: a sender id that cannot exist, so nothing); the
    ones the viewer's policy filtered only with ``include_filtered``."""
    return _browserable(viewer, _wanted_types(types, exclude_types), from_account_id,
                        from_nobody=from_nobody, include_filtered=include_filtered)


def _wanted_types(types: Sequence[str], exclude_types: Sequence[str]) -> tuple[str, ...]:
    wanted = [t for t in NOTIFICATION_TYPES if t in types] if types else list(NOTIFICATION_TYPES)
    return tuple(t for t in wanted if t not in exclude_types)


def _browserable(viewer: Viewer, wanted: tuple[str, ...] | Callable[[Any], ColumnElement[bool]],
                 from_account_id: Any, *, from_nobody: bool, include_filtered: bool,
                 now: datetime | ColumnElement[Any] | None = None) -> Select[Any]:
    """``wanted``: the types, or (prebuilt) the condition on the type that a bound list is."""
    query = _own_visible_notifications(viewer, now=now)
    if not include_filtered:
        query = query.where(Notification.filtered.is_(False))
    if callable(wanted):
        query = query.where(wanted(Notification.type))
    elif len(wanted) != len(NOTIFICATION_TYPES):
        query = query.where(Notification.type.in_(wanted) if wanted else false())
    if from_nobody:
        query = query.where(false())
    elif from_account_id is not None:
        query = query.where(Notification.from_account_id == from_account_id)
    return query


async def list_notifications(
    session: AsyncSession, viewer: Account, page: Cursors, *, types: Sequence[str] = (),
    exclude_types: Sequence[str] = (), from_account_id: int | None = None,
    from_nobody: bool = False, include_filtered: bool = False,
) -> list[Notification]:
    """A page of ``browserable_notifications``, newest first; prebuilt (``PREBUILT``) per
    filter shape, run with the viewer, the sender and the wanted types bound (any
    ``types[]``/``exclude_types[]`` combination is one statement)."""
    wanted = _wanted_types(types, exclude_types)
    sender = from_account_id is not None
    some = 0 < len(wanted) < len(NOTIFICATION_TYPES)
    as_json = json_lists(session)
    which = "some" if some else "all" if wanted else "none"
    key = ("notifications", which, as_json, sender, from_nobody, include_filtered,
           _page_shape(page))
    statement = PREBUILT.get(key, lambda: _paged(_browserable(
        BOUND_VIEWER, bound_list("types", String, json_lists=as_json) if some else wanted,
        bindparam("sender", type_=BigInteger) if sender else None,
        from_nobody=from_nobody, include_filtered=include_filtered, now=bindparam("now")),
        Notification.id, page))
    bound: dict[str, Any] = {"sender": from_account_id} if sender else {}
    if some:
        bound["types"] = list_value(wanted, json_lists=as_json)
    return await _run_prebuilt(session, statement, viewer, page, **bound)


async def count_unread_notifications(
    session: AsyncSession, viewer: Account, query: Select[Any], limit: int,
) -> int:
    """Mastodon's v1 ``unread_count``: notifications of ``query`` newer than the viewer's
    notifications marker, counted up to ``limit``."""
    marker = await session.scalar(select(Marker.last_read_id).where(
        Marker.account_id == viewer.id, Marker.timeline == "notifications"))
    if marker is not None:
        query = query.where(Notification.id > marker)
    capped = query.with_only_columns(Notification.id).order_by(None).limit(limit).subquery()
    return int(await session.scalar(select(func.count()).select_from(capped)) or 0)


async def get_notification(session: AsyncSession, viewer: Account, notification_id: int) -> Notification:
    """One of the viewer's notifications; NotFound for anyone else's (or a hidden one)."""
    found = await session.scalar(
        _own_visible_notifications(viewer).where(Notification.id == notification_id))
    if found is None:
        raise NotFound("Record not found")
    return found


async def dismiss_notification(session: AsyncSession, viewer: Account, notification_id: int) -> None:
    """Delete one of the viewer's notifications (committed); NotFound for anyone else's."""
    found = await session.scalar(select(true()).where(
        Notification.id == notification_id, Notification.account_id == viewer.id))
    if not found:
        raise NotFound("Record not found")
    await session.execute(delete(Notification).where(
        Notification.id == notification_id, Notification.account_id == viewer.id))
    await session.commit()


async def clear_notifications(session: AsyncSession, viewer: Account) -> None:
    """Delete all of the viewer's notifications (committed)."""
    await session.execute(delete(Notification).where(Notification.account_id == viewer.id))
    await session.commit()
