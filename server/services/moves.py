"""Moving an account: aliases to arrive, and a Move to leave.

Why it exists: an artist changing servers keeps their followers. Arriving on Easel from
elsewhere, they first name their old account as an alias (``alsoKnownAs``, sent to other
servers with an ``Update``), so the old server's ``Move`` is believed. Leaving Easel, they
name the new account, which must already list this one as an alias; then this account is
marked as moved, a ``Move`` goes to every follower's server (:mod:`federation.moves`), and
followers on this server follow the new account and leave the old one at once — as
Mastodon does. Finding the new account (WebFinger) is the caller's: services never fetch.

What it must never do: move an account to one that has not agreed (listed it as an
alias), to itself, or move anyone else's followers.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Account, Follow
from server.services import follows
from server.services.errors import ServiceError
from server.services.outbox import record_activity

MAX_ALIASES = 10


def _alias(raw: str) -> str:
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or " " in value or len(value) > 2048:
        raise ServiceError(f"{value[:100]!r} is not an account's address (https://…)", 422)
    return value


async def set_aliases(session: AsyncSession, account: Account, raw: Sequence[str]) -> list[str]:
    """Replace ``account``'s aliases (the accounts it says are also its own: its old ones);
    committed, with an ``Update`` so other servers see them."""
    aliases = list(dict.fromkeys(_alias(value) for value in raw if value.strip()))
    if len(aliases) > MAX_ALIASES:
        raise ServiceError(f"At most {MAX_ALIASES} aliases", 422)
    if account.uri in aliases:
        raise ServiceError("An account cannot be its own alias", 422)
    if aliases != list(account.also_known_as or []):
        account.also_known_as = aliases
        await record_activity(session, account, "Update", object_uri=account.uri,
                              object_type="Person")
    await session.commit()
    return aliases


async def move_to(session: AsyncSession, account: Account, target: Account) -> int:
    """Move local ``account`` to ``target`` (already looked up); committed. Returns how many
    local followers were moved along."""
    if not account.is_local:
        raise ServiceError("Only a local account can move", 422)
    if target.id == account.id:
        raise ServiceError("That is this account", 422)
    if target.moved_to_account_id is not None:
        raise ServiceError(f"{target.acct()} has itself moved away", 422)
    if account.uri not in (target.also_known_as or []):
        raise ServiceError(
            f"{target.acct()} does not list this account as an alias yet: on its server, add "
            f"{account.uri} to its aliases (\u201calso known as\u201d), then try again", 422)
    account.moved_to_account_id = target.id
    await record_activity(session, account, "Move", object_uri=account.uri,
                          object_type="Person", target_id=target.id)
    # Servers that ignore Move still see movedTo on the actor.
    await record_activity(session, account, "Update", object_uri=account.uri, object_type="Person")
    await session.commit()
    local_followers = list(await session.scalars(
        select(Account).join(Follow, Follow.account_id == Account.id)
        .where(Follow.target_account_id == account.id, Account.domain == "")))
    moved = 0
    for follower in local_followers:
        if follower.id == target.id:
            continue
        try:
            await follows.follow(session, follower, target.id)
            await follows.unfollow(session, follower, account.id)
            moved += 1
        except ServiceError:
            await session.rollback()  # e.g. the follower blocks the new account: left as is
    return moved
