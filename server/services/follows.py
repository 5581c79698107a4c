"""Following: follows, follow requests, and the counters they keep, locally and across servers.

Why it exists: ``followers_count``/``following_count`` are denormalised on ``Account`` and
must never drift, however often (or concurrently) a client repeats follow, unfollow,
authorize or reject. So every change here is keyed on a row actually appearing or
disappearing: follows and requests are inserted with ``INSERT … ON CONFLICT DO NOTHING``
and removed with ``DELETE … RETURNING``, and a counter moves only when that statement
touched a row, by one ``UPDATE … SET n = n ± 1`` in the same transaction (never read,
add, write back).

Across servers: following a remote account makes a follow *request* (its uri the id of
the Follow activity recorded for federation) that becomes a follow only when the remote
account's ``Accept`` arrives (:func:`accept_follow`); until then the relationship shows
``requested``. Unfollowing it records an ``Undo`` of that Follow. A remote account's Follow
of a local one (:func:`remote_follow`) is accepted at once or becomes a request, and every
answer to a remote requester (authorize, reject) is recorded as an ``Accept``/``Reject``
naming the remote Follow's id, as is the removal of a remote follower
(:func:`remove_from_followers`: a ``Reject`` of its established Follow). The functions the
inbox handlers call (:func:`remote_follow`, :func:`accept_follow`, :func:`reject_follow`,
:func:`remove_follow`, :func:`sever`) work in the caller's transaction and never commit:
the inbox job commits them with its outcome.

What it must never do: show a remote follow as established before its Accept, or record
an activity for a remote actor (``record_activity`` does nothing for those).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, case, delete, func, select, union, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import new_id
from server.models import Account, Follow, FollowRequest, Notification
from server.services.accounts import find_account, listed_accounts
from server.services.blocks import blocked_either_way, hidden_accounts
from server.services.domain_blocks import read_hiding
from server.services.errors import NotFound, ServiceError
from server.services.notifications import notify as add_notification
from server.services.outbox import record_activity

SELF_FOLLOW_ERROR = "Following your own account is not allowed"
NOT_ALLOWED_ERROR = "This action is not allowed"

# What remote_follow did.
FOLLOWED = "followed"
REQUESTED = "requested"
ALREADY = "already"
REJECTED = "rejected"


# ----------------------------------------------------------------------- building blocks

async def _insert_once(session: AsyncSession, model: type[Follow] | type[FollowRequest],
                       **values: Any) -> bool:
    """Insert a follow or request unless one exists for the pair; True if this call did."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (insert(model).values(**values)
                 .on_conflict_do_nothing(index_elements=["account_id", "target_account_id"])
                 .returning(model.id))
    return (await session.execute(statement)).first() is not None


def _pair(model: type[Follow] | type[FollowRequest], source_id: int,
          target_id: int) -> ColumnElement[bool]:
    return (model.account_id == source_id) & (model.target_account_id == target_id)


class Removed(NamedTuple):
    """What a deleted follow or request carried."""

    show_reblogs: bool
    notify: bool
    uri: str | None


async def _delete_once(session: AsyncSession, model: type[Follow] | type[FollowRequest],
                       source_id: int, target_id: int) -> Removed | None:
    """Delete the pair's follow or request; what it carried if this call did."""
    row = (await session.execute(
        delete(model).where(_pair(model, source_id, target_id))
        .returning(model.show_reblogs, model.notify, model.uri)
        .execution_options(synchronize_session=False))).first()
    return Removed(bool(row[0]), bool(row[1]), row[2]) if row is not None else None


async def _move_counters(session: AsyncSession, source_id: int, target_id: int, delta: int) -> None:
    """following_count of the follower and followers_count of the followed, by ``delta``."""
    def moved(column: Any) -> Any:
        if delta > 0:
            return column + delta
        return case((column + delta < 0, 0), else_=column + delta)

    await session.execute(update(Account).where(Account.id == source_id)
                          .values(following_count=moved(Account.following_count))
                          .execution_options(synchronize_session=False))
    await session.execute(update(Account).where(Account.id == target_id)
                          .values(followers_count=moved(Account.followers_count))
                          .execution_options(synchronize_session=False))


async def _set_options(session: AsyncSession, model: type[Follow] | type[FollowRequest],
                       source_id: int, target_id: int, reblogs: bool | None,
                       notify: bool | None) -> None:
    values: dict[str, bool] = {}
    if reblogs is not None:
        values["show_reblogs"] = reblogs
    if notify is not None:
        values["notify"] = notify
    if values:
        await session.execute(update(model).where(_pair(model, source_id, target_id))
                              .values(**values).execution_options(synchronize_session=False))


async def _forget_notification(session: AsyncSession, recipient_id: int, sender_id: int,
                               type_: str) -> None:
    """A follow's or request's notification goes with it (as Mastodon's does)."""
    await session.execute(delete(Notification).where(
        Notification.account_id == recipient_id, Notification.from_account_id == sender_id,
        Notification.type == type_, Notification.status_id.is_(None),
    ).execution_options(synchronize_session=False))


async def _exists(session: AsyncSession, model: type[Follow] | type[FollowRequest],
                  source_id: int, target_id: int) -> bool:
    return await session.scalar(select(model.id).where(_pair(model, source_id, target_id))) is not None


async def _answer(session: AsyncSession, target: Account, requester: Account, type_: str,
                  follow_uri: str | None) -> None:
    """Record ``target``'s Accept or Reject of ``requester``'s Follow ``follow_uri`` (only
    when ``target`` is local and ``requester`` remote: local pairs need no message)."""
    if requester.is_local or not follow_uri:
        return
    await record_activity(session, target, type_, object_uri=follow_uri, object_type="Follow",
                          requester_id=requester.id, follow_uri=follow_uri)


async def _authorize(session: AsyncSession, target: Account, requester: Account) -> bool:
    """Turn a pending request into a follow (no commit); False if there was none. A local
    account accepting a remote requester records the Accept."""
    removed = await _delete_once(session, FollowRequest, requester.id, target.id)
    if removed is None:
        return False
    await _forget_notification(session, target.id, requester.id, "follow_request")
    if await _insert_once(session, Follow, account_id=requester.id, target_account_id=target.id,
                          show_reblogs=removed.show_reblogs, notify=removed.notify,
                          uri=removed.uri):
        await _move_counters(session, requester.id, target.id, +1)
    await _answer(session, target, requester, "Accept", removed.uri)
    return True


async def _unfollow_pair(session: AsyncSession, source_id: int, target_id: int) -> list[Removed]:
    """Remove the pair's follow (counters down) and request, with their notifications."""
    removed = []
    follow_row = await _delete_once(session, Follow, source_id, target_id)
    if follow_row is not None:
        await _move_counters(session, source_id, target_id, -1)
        await _forget_notification(session, target_id, source_id, "follow")
        removed.append(follow_row)
    request_row = await _delete_once(session, FollowRequest, source_id, target_id)
    if request_row is not None:
        await _forget_notification(session, target_id, source_id, "follow_request")
        removed.append(request_row)
    return removed


def follow_activity_uri(source: Account, request_id: int) -> str:
    """The id of a local account's Follow of a remote one."""
    return f"{source.uri}#follows/{request_id}"


# ------------------------------------------------------------------------------ use cases

def _check_followable(source: Account, target: Account) -> None:
    if target.id == source.id:
        raise ServiceError(SELF_FOLLOW_ERROR, 403)
    if target.actor_type == "Application":  # the instance actor
        raise ServiceError(NOT_ALLOWED_ERROR, 403)
    if target.suspended_at is not None:  # Mastodon's following_not_possible?: 404
        raise NotFound("Record not found")


async def follow(session: AsyncSession, source: Account, target_id: int, *,
                 reblogs: bool | None = None, notify: bool | None = None) -> Account:
    """``source`` follows the account ``target_id`` (a request if it is locked); committed.

    A remote account is always asked (a request, and a Follow recorded for federation);
    its Accept turns the request into a follow. Following again, or asking again while a
    request is pending, only changes the ``reblogs``/``notify`` options that are given.
    Returns the target.
    """
    target = await find_account(session, target_id)
    _check_followable(source, target)
    if await blocked_either_way(session, source.id, target.id):
        raise ServiceError(NOT_ALLOWED_ERROR, 403)
    for model in (Follow, FollowRequest):
        if await _exists(session, model, source.id, target.id):
            await _set_options(session, model, source.id, target.id, reblogs, notify)
            await session.commit()
            return target
    values = {"account_id": source.id, "target_account_id": target.id,
              "show_reblogs": True if reblogs is None else reblogs,
              "notify": False if notify is None else notify}
    if not target.is_local:
        request_id = new_id()
        uri = follow_activity_uri(source, request_id)
        if await _insert_once(session, FollowRequest, id=request_id, uri=uri, **values):
            await record_activity(session, source, "Follow", object_uri=target.uri, uri=uri,
                                  object_type="Person", target_id=target.id)
        else:  # a concurrent call asked first
            await _set_options(session, FollowRequest, source.id, target.id, reblogs, notify)
    elif target.locked:
        if await _insert_once(session, FollowRequest, **values):
            await add_notification(session, target, "follow_request", source)
        else:  # a concurrent call asked first
            await _set_options(session, FollowRequest, source.id, target.id, reblogs, notify)
    elif await _insert_once(session, Follow, **values):
        await _move_counters(session, source.id, target.id, +1)
        await add_notification(session, target, "follow", source)
    else:  # a concurrent call followed first
        await _set_options(session, Follow, source.id, target.id, reblogs, notify)
    await session.commit()
    return target


async def unfollow(session: AsyncSession, source: Account, target_id: int) -> Account:
    """Stop following ``target_id``, or withdraw a pending request; committed. Returns the target.

    Unfollowing an account one does not follow changes nothing (as in Mastodon). Leaving
    a remote account records the Undo of the Follow that was sent.
    """
    target = await find_account(session, target_id)
    await leave(session, source, target)
    await session.commit()
    return target


async def leave(session: AsyncSession, source: Account, target: Account) -> None:
    """``source`` stops following (or asking to follow) ``target``; for a remote target the
    Undo of each Follow sent is recorded. Not committed."""
    removed = await _unfollow_pair(session, source.id, target.id)
    if not target.is_local:
        for uri in dict.fromkeys(row.uri for row in removed if row.uri):
            await record_activity(session, source, "Undo", object_uri=uri, uri=f"{uri}/undo",
                                  object_type="Follow", target_id=target.id, follow_uri=uri)


async def authorize_follow_request(session: AsyncSession, target: Account,
                                   requester_id: int) -> Account:
    """``target`` accepts the pending request of ``requester_id``; committed. Returns the
    requester. NotFound if there is no such account or no such request."""
    requester = await find_account(session, requester_id)
    if not await _authorize(session, target, requester):
        raise NotFound("Record not found")
    await session.commit()
    return requester


async def reject_follow_request(session: AsyncSession, target: Account,
                                requester_id: int) -> Account:
    """``target`` declines the pending request of ``requester_id``; committed. Returns the
    requester. NotFound if there is no such account or no such request."""
    requester = await find_account(session, requester_id)
    removed = await _delete_once(session, FollowRequest, requester.id, target.id)
    if removed is None:
        raise NotFound("Record not found")
    await _forget_notification(session, target.id, requester.id, "follow_request")
    await _answer(session, target, requester, "Reject", removed.uri)
    await session.commit()
    return requester


async def remove_from_followers(session: AsyncSession, account: Account,
                                follower_id: int) -> Account:
    """``follower_id`` no longer follows ``account`` (Mastodon's ``remove_from_followers``);
    committed. Returns the follower.

    Only an established follow is removed (a pending request stays, to authorize or reject);
    counters move once and its ``follow`` notification goes with it. A remote follower's
    server is sent a ``Reject`` of its Follow, as Mastodon's ``RemoveFromFollowersService``
    does, so it stops counting itself a follower. Nothing to remove (or ``account``
    itself) changes nothing. NotFound if there is no such account.
    """
    follower = await find_account(session, follower_id)
    removed = await _delete_once(session, Follow, follower.id, account.id)
    if removed is not None:
        await _move_counters(session, follower.id, account.id, -1)
        await _forget_notification(session, account.id, follower.id, "follow")
        await _answer(session, account, follower, "Reject", removed.uri)
    await session.commit()
    return follower


async def authorize_all_follow_requests(session: AsyncSession, target_id: int) -> int:
    """Accept every pending request to ``target_id`` (an account that was just unlocked),
    in the caller's transaction (not committed). Returns how many were accepted."""
    target = await session.get(Account, target_id)
    if target is None:
        return 0
    requesters = list(await session.scalars(
        select(Account).join(FollowRequest, FollowRequest.account_id == Account.id)
        .where(FollowRequest.target_account_id == target_id)))
    accepted = 0
    for requester in requesters:
        accepted += await _authorize(session, target, requester)
    return accepted


async def count_follow_requests(session: AsyncSession, target_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(FollowRequest).where(
        FollowRequest.target_account_id == target_id)) or 0


# ------------------------------------------------------------- inbound (other servers)
# Called by the inbox handlers, in the inbox job's transaction: none of these commits.

async def remote_follow(session: AsyncSession, source: Account, target: Account, *,
                        uri: str) -> str:
    """Remote ``source`` asks to follow local ``target`` with the Follow ``uri``.

    Unlocked: followed, notified (``follow``) and an Accept recorded — ``"followed"``.
    Locked: a request keeping ``uri``, notified (``follow_request``) — ``"requested"``.
    Already following: the Accept is sent again (the remote side may have lost it) —
    ``"already"``. The instance actor, a remote target or a local source: a Reject is
    recorded where it can be — ``"rejected"``. Not committed.
    """
    if source.is_local or not target.is_local or target.actor_type == "Application" \
            or await blocked_either_way(session, source.id, target.id):
        await _answer(session, target, source, "Reject", uri)  # nothing if target is remote
        return REJECTED
    if await _exists(session, Follow, source.id, target.id):
        await session.execute(update(Follow).where(_pair(Follow, source.id, target.id))
                              .values(uri=uri).execution_options(synchronize_session=False))
        await _answer(session, target, source, "Accept", uri)
        return ALREADY
    if target.locked:
        if await _insert_once(session, FollowRequest, account_id=source.id,
                              target_account_id=target.id, uri=uri):
            await add_notification(session, target, "follow_request", source)
        else:  # asked again: the newest Follow is the one to answer
            await session.execute(update(FollowRequest)
                                  .where(_pair(FollowRequest, source.id, target.id))
                                  .values(uri=uri).execution_options(synchronize_session=False))
        return REQUESTED
    if await _insert_once(session, Follow, account_id=source.id, target_account_id=target.id,
                          uri=uri):
        await _move_counters(session, source.id, target.id, +1)
        await add_notification(session, target, "follow", source)
    await _answer(session, target, source, "Accept", uri)
    return FOLLOWED


async def accept_follow(session: AsyncSession, source: Account, target: Account) -> bool:
    """Remote ``target`` accepted local ``source``'s follow request: it becomes a follow
    (counters move). False when there was no request. Not committed."""
    return await _authorize(session, target, source)


async def reject_follow(session: AsyncSession, source: Account, target: Account) -> bool:
    """Remote ``target`` rejected local ``source``: the request (or an established follow:
    a Reject after an Accept ends it) is removed. False when there was none. Not committed."""
    return bool(await _unfollow_pair(session, source.id, target.id))


async def remove_follow(session: AsyncSession, source: Account, target: Account) -> bool:
    """Remote ``source`` undid its Follow of local ``target``: the follow and any pending
    request go, with their notifications. False when there was none. Not committed."""
    return bool(await _unfollow_pair(session, source.id, target.id))


async def sever(session: AsyncSession, a: Account, b: Account) -> None:
    """``a`` and ``b`` no longer follow (or ask to follow) each other, either way (an
    inbound Block). Nothing is sent. Not committed."""
    await _unfollow_pair(session, a.id, b.id)
    await _unfollow_pair(session, b.id, a.id)


async def sever_all(session: AsyncSession, account: Account, *, local_only: bool = False) -> int:
    """``account`` no longer follows (or asks to follow) anyone, nor anyone it — or, with
    ``local_only``, no local account — each counter kept right (a deleted or suspended
    account). Nothing is sent. Not committed. The number of accounts it was related to."""
    related = list(await session.scalars(union(
        select(Follow.target_account_id).where(Follow.account_id == account.id),
        select(Follow.account_id).where(Follow.target_account_id == account.id),
        select(FollowRequest.target_account_id).where(FollowRequest.account_id == account.id),
        select(FollowRequest.account_id).where(FollowRequest.target_account_id == account.id),
    )))
    for other_id in related:
        other = await session.get(Account, other_id)
        if other is not None and (other.is_local or not local_only):
            await sever(session, account, other)
    return len(related)


# --------------------------------------------------------------------------------- lists

# Queries for the paginated lists; the API pages them by the relation's id (the first
# column), as Mastodon does, so the Link header's cursors are follow ids, not account ids.

def followers_query(account_id: int) -> Select[int, Account]:
    """(Follow.id, follower Account) rows of ``account_id``'s followers."""
    return (select(Follow.id, Account).join(Account, Account.id == Follow.account_id)
            .where(Follow.target_account_id == account_id, listed_accounts()))


def following_query(account_id: int) -> Select[int, Account]:
    """(Follow.id, followed Account) rows of the accounts ``account_id`` follows."""
    return (select(Follow.id, Account).join(Account, Account.id == Follow.target_account_id)
            .where(Follow.account_id == account_id, listed_accounts()))


def follow_requests_query(account_id: int) -> Select[int, Account]:
    """(FollowRequest.id, requesting Account) rows of requests pending for ``account_id``."""
    return (select(FollowRequest.id, Account).join(Account, Account.id == FollowRequest.account_id)
            .where(FollowRequest.target_account_id == account_id))


async def familiar_followers(session: AsyncSession, viewer: Account,
                             account_ids: list[int]) -> list[tuple[int, list[Account]]]:
    """For each of ``account_ids`` (in that order, each once): the accounts ``viewer``
    follows that follow it, most recent follow first (Mastodon's familiar followers).

    Ids of unknown, unlisted or suspended accounts (their own or their domain's) are left
    out, as Mastodon's ``without_suspended``. The followers shown are listed, not
    suspended, and not hidden from ``viewer`` (blocked either way, muted, on a domain it
    blocks: :func:`server.services.blocks.hidden_accounts`). The domain blocks read, then
    two queries.
    """
    if not account_ids:
        return []
    suspended_domains = (await read_hiding(session)).clause(only_suspended=True)

    def shown() -> ColumnElement[bool]:
        clause = listed_accounts() & Account.suspended_at.is_(None)
        return clause if suspended_domains is None else clause & ~suspended_domains

    targets = set(await session.scalars(
        select(Account.id).where(Account.id.in_(set(account_ids)), shown())))
    found: dict[int, list[Account]] = {target_id: [] for target_id in targets}
    if targets:
        followed_by_viewer = select(Follow.target_account_id).where(Follow.account_id == viewer.id)
        rows = await session.execute(
            select(Follow.target_account_id, Account)
            .join(Account, Account.id == Follow.account_id)
            .where(Follow.target_account_id.in_(targets),
                   Follow.account_id.in_(followed_by_viewer),
                   Account.id.not_in(hidden_accounts(viewer.id)), shown())
            .order_by(Follow.id.desc()))
        for target_id, follower in rows:
            found[target_id].append(follower)
    return [(account_id, found[account_id])
            for account_id in dict.fromkeys(account_ids) if account_id in found]
