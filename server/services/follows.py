"""Following between local accounts: follows, follow requests, and the counters they keep.

Why it exists: ``followers_count``/``following_count`` are denormalised on ``Account`` and
must never drift, however often (or concurrently) a client repeats follow, unfollow,
authorize or reject. So every change here is keyed on a row actually appearing or
disappearing: follows and requests are inserted with ``INSERT … ON CONFLICT DO NOTHING``
and removed with ``DELETE … RETURNING``, and a counter moves only when that statement
touched a row, by one ``UPDATE … SET n = n ± 1`` in the same transaction (never read,
add, write back).

What it must never do: pretend to federate. Following an account on another server needs
a Follow activity and its Accept, which arrive with federation; until then such a follow
is refused with an honest error instead of a local row that no remote server knows of.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Account, Follow, FollowRequest, Notification
from server.services.accounts import find_account, listed_accounts
from server.services.errors import NotFound, ServiceError
from server.services.notifications import notify as add_notification

SELF_FOLLOW_ERROR = "Following your own account is not allowed"
REMOTE_FOLLOW_ERROR = "Following accounts on other servers is not supported yet"
NOT_ALLOWED_ERROR = "This action is not allowed"


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


async def _delete_once(session: AsyncSession, model: type[Follow] | type[FollowRequest],
                       source_id: int, target_id: int) -> tuple[bool, bool] | None:
    """Delete the pair's follow or request; its (show_reblogs, notify) if this call did."""
    row = (await session.execute(
        delete(model).where(_pair(model, source_id, target_id))
        .returning(model.show_reblogs, model.notify)
        .execution_options(synchronize_session=False))).first()
    return (bool(row[0]), bool(row[1])) if row is not None else None


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


async def _authorize(session: AsyncSession, target_id: int, requester_id: int) -> bool:
    """Turn a pending request into a follow (no commit); False if there was none."""
    options = await _delete_once(session, FollowRequest, requester_id, target_id)
    if options is None:
        return False
    await _forget_notification(session, target_id, requester_id, "follow_request")
    reblogs, notify = options
    if await _insert_once(session, Follow, account_id=requester_id, target_account_id=target_id,
                          show_reblogs=reblogs, notify=notify):
        await _move_counters(session, requester_id, target_id, +1)
    return True


# ------------------------------------------------------------------------------ use cases

def _check_followable(source: Account, target: Account) -> None:
    if target.id == source.id:
        raise ServiceError(SELF_FOLLOW_ERROR, 403)
    if not target.is_local:
        # Federation is not there yet: refuse rather than keep a follow no one else knows.
        raise ServiceError(REMOTE_FOLLOW_ERROR, 422)
    if target.actor_type == "Application":  # the instance actor
        raise ServiceError(NOT_ALLOWED_ERROR, 403)


async def follow(session: AsyncSession, source: Account, target_id: int, *,
                 reblogs: bool | None = None, notify: bool | None = None) -> Account:
    """``source`` follows the account ``target_id`` (a request if it is locked); committed.

    Following again, or asking again while a request is pending, only changes the
    ``reblogs``/``notify`` options that are given. Returns the target.
    """
    target = await find_account(session, target_id)
    _check_followable(source, target)
    for model in (Follow, FollowRequest):
        if await _exists(session, model, source.id, target.id):
            await _set_options(session, model, source.id, target.id, reblogs, notify)
            await session.commit()
            return target
    values = {"account_id": source.id, "target_account_id": target.id,
              "show_reblogs": True if reblogs is None else reblogs,
              "notify": False if notify is None else notify}
    if target.locked:
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

    Unfollowing an account one does not follow changes nothing (as in Mastodon).
    """
    target = await find_account(session, target_id)
    if await _delete_once(session, Follow, source.id, target.id) is not None:
        await _move_counters(session, source.id, target.id, -1)
        await _forget_notification(session, target.id, source.id, "follow")
    if await _delete_once(session, FollowRequest, source.id, target.id) is not None:
        await _forget_notification(session, target.id, source.id, "follow_request")
    await session.commit()
    return target


async def authorize_follow_request(session: AsyncSession, target: Account,
                                   requester_id: int) -> Account:
    """``target`` accepts the pending request of ``requester_id``; committed. Returns the
    requester. NotFound if there is no such account or no such request."""
    requester = await find_account(session, requester_id)
    if not await _authorize(session, target.id, requester.id):
        raise NotFound("Record not found")
    await session.commit()
    return requester


async def reject_follow_request(session: AsyncSession, target: Account,
                                requester_id: int) -> Account:
    """``target`` declines the pending request of ``requester_id``; committed. Returns the
    requester. NotFound if there is no such account or no such request."""
    requester = await find_account(session, requester_id)
    if await _delete_once(session, FollowRequest, requester.id, target.id) is None:
        raise NotFound("Record not found")
    await _forget_notification(session, target.id, requester.id, "follow_request")
    await session.commit()
    return requester


async def authorize_all_follow_requests(session: AsyncSession, target_id: int) -> int:
    """Accept every pending request to ``target_id`` (an account that was just unlocked),
    in the caller's transaction (not committed). Returns how many were accepted."""
    requester_ids = list(await session.scalars(
        select(FollowRequest.account_id).where(FollowRequest.target_account_id == target_id)))
    accepted = 0
    for requester_id in requester_ids:
        accepted += await _authorize(session, target_id, requester_id)
    return accepted


async def count_follow_requests(session: AsyncSession, target_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(FollowRequest).where(
        FollowRequest.target_account_id == target_id)) or 0


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
