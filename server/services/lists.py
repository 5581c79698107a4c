"""Lists: a user's named groups of the accounts they follow, each with its own timeline.

As Mastodon: only followed accounts can be added (a member one stops following drops out of
the list's timeline and membership); ``replies_policy`` says which replies the list's
timeline shows (``followed``: to anyone the owner follows, ``list``: to members, ``none``);
an ``exclusive`` list's members leave the owner's home timeline. Lists are private to their
owner: another user's list is "not found". Writes commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import REPLIES_POLICIES, Account, Follow, List, ListAccount
from server.services.errors import NotFound, ServiceError

MAX_TITLE = 255
MAX_LISTS = 50
MAX_MEMBERS = 500


def check_title(title: str | None) -> str:
    title = (title or "").strip()
    if not title:
        raise ServiceError("Validation failed: Title can't be blank", 422)
    if len(title) > MAX_TITLE:
        raise ServiceError(f"Validation failed: Title is too long (maximum is {MAX_TITLE} "
                           "characters)", 422)
    return title


def check_policy(policy: str | None) -> str | None:
    if policy is not None and policy not in REPLIES_POLICIES:
        raise ServiceError("Validation failed: Replies policy is not included in the list "
                           f"({', '.join(REPLIES_POLICIES)})", 422)
    return policy


async def own_list(session: AsyncSession, account: Account, list_id: int) -> List:
    found = await session.scalar(select(List).where(List.id == list_id,
                                                    List.account_id == account.id))
    if found is None:
        raise NotFound("Record not found")
    return found


async def lists_of(session: AsyncSession, account: Account) -> list[List]:
    return list(await session.scalars(select(List).where(List.account_id == account.id)
                                      .order_by(List.title, List.id)))


async def create_list(session: AsyncSession, account: Account, *, title: str | None,
                      replies_policy: str | None = None, exclusive: bool | None = None) -> List:
    title = check_title(title)
    policy = check_policy(replies_policy) or "list"
    if len(await lists_of(session, account)) >= MAX_LISTS:
        raise ServiceError(f"Validation failed: You cannot have more than {MAX_LISTS} lists", 422)
    created = List(account_id=account.id, title=title, replies_policy=policy,
                   exclusive=bool(exclusive))
    session.add(created)
    await session.commit()
    return created


async def update_list(session: AsyncSession, account: Account, list_id: int, *,
                      title: str | None = None, replies_policy: str | None = None,
                      exclusive: bool | None = None) -> List:
    found = await own_list(session, account, list_id)
    if title is not None:
        found.title = check_title(title)
    if (policy := check_policy(replies_policy)) is not None:
        found.replies_policy = policy
    if exclusive is not None:
        found.exclusive = exclusive
    await session.commit()
    return found


async def delete_list(session: AsyncSession, account: Account, list_id: int) -> None:
    found = await own_list(session, account, list_id)
    await session.execute(delete(List).where(List.id == found.id))
    await session.commit()


def _followed_by_owner(owner_id: int | ColumnElement[Any]) -> Select[int]:
    return select(Follow.target_account_id).where(Follow.account_id == owner_id)


def members(list_id: int | ColumnElement[Any], owner_id: int | ColumnElement[Any]) -> Select[int]:
    """The ids of a list's members that its owner still follows."""
    return select(ListAccount.account_id).where(
        ListAccount.list_id == list_id, ListAccount.account_id.in_(_followed_by_owner(owner_id)))


def members_query(found: List) -> Select[int, Account]:
    """(ListAccount.id, Account) rows of a list's members (paged by the membership's id)."""
    return (select(ListAccount.id, Account).join(Account, Account.id == ListAccount.account_id)
            .where(ListAccount.list_id == found.id,
                   ListAccount.account_id.in_(_followed_by_owner(found.account_id))))


async def add_accounts(session: AsyncSession, account: Account, list_id: int,
                       account_ids: Sequence[int]) -> None:
    found = await own_list(session, account, list_id)
    if not account_ids:
        raise ServiceError("Validation failed: account_ids is missing", 422)
    wanted = list(dict.fromkeys(account_ids))
    followed = set(await session.scalars(select(Follow.target_account_id).where(
        Follow.account_id == account.id, Follow.target_account_id.in_(wanted))))
    known = set(await session.scalars(select(Account.id).where(Account.id.in_(wanted))))
    if missing := [i for i in wanted if i not in known]:
        raise NotFound(f"Record not found: account {missing[0]}")
    if not_followed := [i for i in wanted if i not in followed]:
        raise ServiceError(f"Validation failed: You can only add accounts you follow "
                           f"(account {not_followed[0]})", 422)
    present = set(await session.scalars(select(ListAccount.account_id).where(
        ListAccount.list_id == found.id, ListAccount.account_id.in_(wanted))))
    count = len(list(await session.scalars(select(ListAccount.id).where(
        ListAccount.list_id == found.id))))
    new = [i for i in wanted if i not in present]
    if count + len(new) > MAX_MEMBERS:
        raise ServiceError(f"Validation failed: A list holds at most {MAX_MEMBERS} accounts", 422)
    for account_id in new:
        try:
            async with session.begin_nested():
                session.add(ListAccount(list_id=found.id, account_id=account_id))
        except IntegrityError:
            pass  # added concurrently
    await session.commit()


async def remove_accounts(session: AsyncSession, account: Account, list_id: int,
                          account_ids: Sequence[int]) -> None:
    found = await own_list(session, account, list_id)
    if account_ids:
        await session.execute(delete(ListAccount).where(
            ListAccount.list_id == found.id, ListAccount.account_id.in_(list(account_ids))))
    await session.commit()


async def lists_with(session: AsyncSession, account: Account, member_id: int) -> list[List]:
    """``account``'s lists that ``member_id`` is in (``GET /api/v1/accounts/:id/lists``)."""
    return list(await session.scalars(select(List).where(
        List.account_id == account.id,
        exists().where(ListAccount.list_id == List.id, ListAccount.account_id == member_id),
    ).order_by(List.title, List.id)))


def exclusive_members(owner_id: int | ColumnElement[Any]) -> Select[int]:
    """Accounts in any of ``owner_id``'s exclusive lists: out of its home timeline."""
    return select(ListAccount.account_id).join(List, List.id == ListAccount.list_id).where(
        and_(List.account_id == owner_id, List.exclusive.is_(True)))
