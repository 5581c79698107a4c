"""Blocks and mutes: what one account keeps away from itself.

As Mastodon:

* **Blocking** ends the follows (and requests) between the two, either way, and keeps them
  apart: neither may follow the other, the blocked account does not see the blocker's
  posts, the blocker does not see the blocked account's posts or notifications. A block
  of a remote account is sent to it (``Block``, and ``Undo`` when lifted); Easel stores no
  record of remote accounts' blocks (``federation/inbox/block.py`` only severs follows).
* **Blocking a domain** (``/api/v1/domain_blocks``, Mastodon's ``AccountDomainBlock``) is
  private to the blocker and never federated: that domain's accounts are hidden as blocked
  accounts are (timelines, notifications, suggestions), neither side may follow the
  other, and the follows between the blocker and them end (ours of theirs sending an
  Undo, theirs of ours a Reject, as Mastodon's ``BlockDomainFromAccountService``).
* **Muting** is private to the muter and never federated: the muted account's posts
  (and boosts of them) leave the muter's timelines, and with ``notifications`` its
  notifications too, for ``duration`` seconds or for good. The muted account can still
  follow and see the muter.

Read paths ask :func:`hidden_accounts` (a subquery of account ids to leave out for a
viewer); :func:`notification_blocked` decides at creation time. Writes commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, exists, or_, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import new_id, utcnow
from server.models import Account, AccountDomainBlock, Block, Follow, FollowRequest, Mute
from server.services.accounts import find_account
from server.services.domain_blocks import normalize_domain
from server.services.errors import ServiceError
from server.services.outbox import activity_uri, record_activity

NOT_ALLOWED_ERROR = "This action is not allowed"
# Mastodon accepts any number of seconds; a mute longer than this is a mistake.
MAX_MUTE_SECONDS = 100 * 365 * 24 * 3600


def active_mute(now: datetime | ColumnElement[Any]) -> ColumnElement[bool]:
    """A mute in force at ``now`` (a time, or a bound parameter for one)."""
    return or_(Mute.expires_at.is_(None), Mute.expires_at > now)


def _domain_blocked_accounts(viewer_id: int | ColumnElement[Any]) -> Select[Any]:
    """The ids of the accounts on the domains ``viewer_id`` blocks."""
    return select(Account.id).join(AccountDomainBlock, AccountDomainBlock.domain == Account.domain) \
        .where(AccountDomainBlock.account_id == viewer_id)


def hidden_accounts(viewer_id: int | ColumnElement[Any], *,
                    now: datetime | ColumnElement[Any] | None = None) -> Select[Any]:
    """The ids of accounts whose posts ``viewer_id`` should not see in timelines: those it
    blocks, those that block it, those on domains it blocks, and those it mutes (while the
    mute lasts). Either may be a bound parameter (a prebuilt statement)."""
    now = utcnow() if now is None else now
    return select(union(
        select(Block.target_account_id).where(Block.account_id == viewer_id),
        select(Block.account_id).where(Block.target_account_id == viewer_id),
        _domain_blocked_accounts(viewer_id),
        select(Mute.target_account_id).where(Mute.account_id == viewer_id, active_mute(now)),
    ).subquery().c[0])


def muted_senders(viewer_id: int | ColumnElement[Any], *,
                  now: datetime | ColumnElement[Any] | None = None) -> Select[Any]:
    """The ids of accounts whose notifications ``viewer_id`` should not see: blocks either
    way, blocked domains, and mutes that hide notifications (while they last). Either may
    be a bound parameter (a prebuilt statement)."""
    now = utcnow() if now is None else now
    return select(union(
        select(Block.target_account_id).where(Block.account_id == viewer_id),
        select(Block.account_id).where(Block.target_account_id == viewer_id),
        _domain_blocked_accounts(viewer_id),
        select(Mute.target_account_id).where(Mute.account_id == viewer_id, active_mute(now),
                                             Mute.hide_notifications.is_(True)),
    ).subquery().c[0])


def blocked_by_author(viewer_id: int | ColumnElement[Any], author_id: Any) -> ColumnElement[bool]:
    """SQL: the author (``author_id``, a column or value) blocks ``viewer_id``."""
    return exists().where(Block.account_id == author_id, Block.target_account_id == viewer_id)


async def blocked_either_way(session: AsyncSession, a_id: int, b_id: int) -> bool:
    """Either account blocks the other, or the other's domain."""
    found = await session.scalar(select(Block.id).where(or_(
        and_(Block.account_id == a_id, Block.target_account_id == b_id),
        and_(Block.account_id == b_id, Block.target_account_id == a_id))).limit(1))
    if found is not None:
        return True
    found = await session.scalar(
        select(AccountDomainBlock.id).join(Account, Account.domain == AccountDomainBlock.domain)
        .where(or_(and_(AccountDomainBlock.account_id == a_id, Account.id == b_id),
                   and_(AccountDomainBlock.account_id == b_id, Account.id == a_id))).limit(1))
    return found is not None


async def notification_blocked(session: AsyncSession, recipient_id: int, sender_id: int) -> bool:
    """Whether ``recipient_id`` refuses notifications from ``sender_id``: a block either
    way, or a mute that hides notifications."""
    if await blocked_either_way(session, recipient_id, sender_id):
        return True
    found = await session.scalar(select(Mute.id).where(
        Mute.account_id == recipient_id, Mute.target_account_id == sender_id,
        Mute.hide_notifications.is_(True), active_mute(utcnow())).limit(1))
    return found is not None


def block_activity_uri(account: Account, block_id: int) -> str:
    return activity_uri(account, "Block", block_id)


async def _target(session: AsyncSession, account: Account, target_id: int) -> Account:
    target = await find_account(session, target_id)
    if target.id == account.id or target.actor_type == "Application":
        raise ServiceError(NOT_ALLOWED_ERROR, 403)
    return target


async def block(session: AsyncSession, account: Account, target_id: int) -> Account:
    """``account`` blocks ``target_id``; follows either way end. Idempotent. Returns the target."""
    target = await _target(session, account, target_id)
    existing = await session.scalar(select(Block).where(
        Block.account_id == account.id, Block.target_account_id == target.id))
    if existing is None:
        block_id = new_id()
        uri = block_activity_uri(account, block_id) if not target.is_local else None
        try:
            async with session.begin_nested():
                session.add(Block(id=block_id, account_id=account.id,
                                  target_account_id=target.id, uri=uri))
        except IntegrityError:  # blocked concurrently: that request does the rest
            await session.commit()
            return target
        from server.services.follows import leave, sever  # follows asks this module first

        # Our follow of a remote account is undone explicitly (as Mastodon's BlockService):
        # not every server reads a Block as the end of the follow.
        await leave(session, account, target)
        await sever(session, account, target)
        if uri is not None:
            await record_activity(session, account, "Block", object_uri=target.uri, uri=uri,
                                  object_type="Person", target_id=target.id)
    await session.commit()
    return target


async def unblock(session: AsyncSession, account: Account, target_id: int) -> Account:
    """Lift ``account``'s block of ``target_id`` (nothing happens when there is none)."""
    target = await find_account(session, target_id)
    existing = await session.scalar(select(Block).where(
        Block.account_id == account.id, Block.target_account_id == target.id))
    if existing is not None:
        await session.execute(delete(Block).where(Block.id == existing.id))
        if existing.uri and not target.is_local:
            await record_activity(session, account, "Undo", object_uri=existing.uri,
                                  uri=f"{existing.uri}/undo", object_type="Block",
                                  target_id=target.id, block_uri=existing.uri)
    await session.commit()
    return target


def mute_duration(raw: int | None) -> int:
    """Seconds of a mute (0 or None: until unmuted); Mastodon's validation."""
    if raw is None:
        return 0
    if raw < 0 or raw > MAX_MUTE_SECONDS:
        raise ServiceError("Validation failed: Duration must be a number of seconds from 0 "
                           f"to {MAX_MUTE_SECONDS}", 422)
    return raw


async def mute(session: AsyncSession, account: Account, target_id: int, *,
               notifications: bool = True, duration: int = 0) -> Account:
    """``account`` mutes ``target_id`` (again: the options and expiry are replaced)."""
    target = await _target(session, account, target_id)
    expires = utcnow() + timedelta(seconds=duration) if duration else None
    existing = await session.scalar(select(Mute).where(
        Mute.account_id == account.id, Mute.target_account_id == target.id))
    if existing is None:
        try:
            async with session.begin_nested():
                session.add(Mute(account_id=account.id, target_account_id=target.id,
                                 hide_notifications=notifications, expires_at=expires))
        except IntegrityError:  # muted concurrently: this request's options win
            existing = await session.scalar(select(Mute).where(
                Mute.account_id == account.id, Mute.target_account_id == target.id))
    if existing is not None:
        existing.hide_notifications = notifications
        existing.expires_at = expires
    await session.commit()
    return target


async def unmute(session: AsyncSession, account: Account, target_id: int) -> Account:
    target = await find_account(session, target_id)
    await session.execute(delete(Mute).where(Mute.account_id == account.id,
                                             Mute.target_account_id == target.id))
    await session.commit()
    return target


# --------------------------------------------------------------------------------- lists

def blocks_query(account_id: int) -> Select[int, Account]:
    """(Block.id, blocked Account) rows of ``account_id``'s blocks."""
    return (select(Block.id, Account).join(Account, Account.id == Block.target_account_id)
            .where(Block.account_id == account_id))


def mutes_query(account_id: int) -> Select[int, Account]:
    """(Mute.id, muted Account) rows of ``account_id``'s mutes that have not expired."""
    return (select(Mute.id, Account).join(Account, Account.id == Mute.target_account_id)
            .where(Mute.account_id == account_id, active_mute(utcnow())))


async def mute_expiries(session: AsyncSession, account_id: int,
                        target_ids: list[int]) -> dict[int, datetime | None]:
    rows = await session.execute(select(Mute.target_account_id, Mute.expires_at).where(
        Mute.account_id == account_id, Mute.target_account_id.in_(target_ids)))
    return {target: expires for target, expires in rows.all()}


async def relationship_flags(session: AsyncSession, viewer_id: int,
                             ids: list[int]) -> dict[int, dict[str, bool]]:
    """``blocking``, ``blocked_by``, ``muting``, ``muting_notifications`` and
    ``domain_blocking`` per account id."""
    blocking = set(await session.scalars(select(Block.target_account_id).where(
        Block.account_id == viewer_id, Block.target_account_id.in_(ids))))
    blocked_by = set(await session.scalars(select(Block.account_id).where(
        Block.target_account_id == viewer_id, Block.account_id.in_(ids))))
    mutes = {m.target_account_id: m for m in await session.scalars(select(Mute).where(
        Mute.account_id == viewer_id, Mute.target_account_id.in_(ids), active_mute(utcnow())))}
    domain_blocking = set(await session.scalars(
        _domain_blocked_accounts(viewer_id).where(Account.id.in_(ids))))
    return {i: {"blocking": i in blocking, "blocked_by": i in blocked_by, "muting": i in mutes,
                "muting_notifications": i in mutes and mutes[i].hide_notifications,
                "domain_blocking": i in domain_blocking}
            for i in ids}


# ------------------------------------------------------------------------ domain blocks

async def block_domain(session: AsyncSession, account: Account, raw: str | None) -> str:
    """``account`` blocks the domain ``raw`` (idempotent); the follows between it and that
    domain's accounts end, either way. Returns the stored domain."""
    if raw is None or not raw.strip():
        raise ServiceError("Validation failed: Domain can't be blank", 422)
    domain = normalize_domain(raw)
    from server.services.follows import leave, sever  # follows asks this module first

    existing = await session.scalar(select(AccountDomainBlock.id).where(
        AccountDomainBlock.account_id == account.id, AccountDomainBlock.domain == domain))
    if existing is None:
        try:
            async with session.begin_nested():
                session.add(AccountDomainBlock(account_id=account.id, domain=domain))
        except IntegrityError:  # blocked concurrently: that request does the rest
            await session.commit()
            return domain
    on_domain = select(Account.id).where(Account.domain == domain)
    followed_ids = {target_id for model in (Follow, FollowRequest)
                    for target_id in await session.scalars(select(model.target_account_id).where(
                        model.account_id == account.id, model.target_account_id.in_(on_domain)))}
    for target in list(await session.scalars(select(Account).where(Account.id.in_(followed_ids)))):
        await leave(session, account, target)
    follower_ids = {source_id for model in (Follow, FollowRequest)
                    for source_id in await session.scalars(select(model.account_id).where(
                        model.target_account_id == account.id, model.account_id.in_(on_domain)))}
    theirs = await session.scalars(select(Account).where(Account.id.in_(follower_ids)))
    for follower in list(theirs):
        follow_uris = [uri for model in (Follow, FollowRequest) for uri in await session.scalars(
            select(model.uri).where(model.account_id == follower.id,
                                    model.target_account_id == account.id)) if uri]
        await sever(session, account, follower)
        for uri in dict.fromkeys(follow_uris):  # the remote side learns its follow ended
            await record_activity(session, account, "Reject", object_uri=uri,
                                  object_type="Follow", requester_id=follower.id, follow_uri=uri)
    await session.commit()
    return domain


async def unblock_domain(session: AsyncSession, account: Account, raw: str | None) -> None:
    """Lift ``account``'s block of the domain ``raw`` (nothing happens when there is none)."""
    if raw is None or not raw.strip():
        raise ServiceError("Validation failed: Domain can't be blank", 422)
    domain = normalize_domain(raw)
    await session.execute(delete(AccountDomainBlock).where(
        AccountDomainBlock.account_id == account.id, AccountDomainBlock.domain == domain))
    await session.commit()


def domain_blocks_query(account_id: int) -> Select[int, str]:
    """(AccountDomainBlock.id, domain) rows of ``account_id``'s blocked domains."""
    return select(AccountDomainBlock.id, AccountDomainBlock.domain).where(
        AccountDomainBlock.account_id == account_id)
