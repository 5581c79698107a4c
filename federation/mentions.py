"""Remote mentions in a post being written: ``@user@host`` handles Easel does not know yet
are looked up (WebFinger, then the actor) before the status is created.

Why it exists: ``server.services.statuses`` links a mention only to an account it already
has (``_mentioned_accounts``: ``username_key`` + ``domain``), and services never reach
the network. So the API calls :func:`resolve_unknown_mentions` first; the accounts it
stores are then found by the service like any known account, and the post links and
addresses them.

Bounded on purpose, because it runs inside a client's POST: at most
:data:`MAX_LOOKUPS` unknown handles per post, all looked up at once, all within
:data:`LOOKUP_TIMEOUT` seconds; a handle that fails (unknown, unreachable, refused, too
slow, a suspended domain) is skipped and stays plain text, as Mastodon leaves it.

What it must never do: fail or delay a post beyond that bound, look up this server's own
handles, or write anything but the remote account rows the actor fetcher stores.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import and_, or_, select

from federation.actors import ActorError
from federation.context import FederationContext
from federation.domains import all_blocks
from federation.http import FetchError
from federation.webfinger import Handle, InvalidHandle, parse_handle
from server.models import Account
from server.services.text import extract_mentions, local_domain_of, mention_key

log = logging.getLogger(__name__)

MAX_LOOKUPS = 10
LOOKUP_TIMEOUT = 8.0  # seconds for all of one post's lookups together


async def unknown_remote_handles(fed: FederationContext, text: str) -> list[Handle]:
    """The ``@user@host`` mentions of ``text`` on other servers that no stored account
    matches, at most :data:`MAX_LOOKUPS`, suspended domains left out."""
    local_domain = local_domain_of(fed.settings.base_url)
    wanted: dict[tuple[str, str], Handle] = {}
    for username, domain in extract_mentions(text or ""):
        key = mention_key(username, domain, local_domain)
        if not key[1] or key in wanted:
            continue
        try:
            wanted[key] = parse_handle(f"{username}@{key[1]}")
        except InvalidHandle:
            continue
    if not wanted:
        return []
    async with fed.db.session() as session:
        rows = await session.execute(select(Account.username_key, Account.domain).where(
            or_(*(and_(Account.username_key == u, Account.domain == d) for u, d in wanted))))
        known = {(username, domain) for username, domain in rows}
        blocks = await all_blocks(session)
    handles = [handle for key, handle in wanted.items()
               if key not in known and not blocks.suspends(handle.host)]
    return handles[:MAX_LOOKUPS]


async def _lookup(fed: FederationContext, handle: Handle) -> Account | None:
    try:
        return await fed.fetcher.resolve_handle(handle)
    except (ActorError, FetchError) as exc:
        log.info("mention %s not resolved: %s", handle, exc)
        return None


async def resolve_unknown_mentions(fed: FederationContext, text: str | None) -> list[Account]:
    """Look up the unknown remote handles mentioned in ``text``; the accounts stored.
    Never raises for a lookup's failure and never takes longer than LOOKUP_TIMEOUT."""
    if not text or "@" not in text:
        return []
    handles = await unknown_remote_handles(fed, text)
    if not handles:
        return []
    tasks = [asyncio.ensure_future(_lookup(fed, handle)) for handle in handles]
    done, pending = await asyncio.wait(tasks, timeout=LOOKUP_TIMEOUT)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
        log.info("mentions: %d lookups took more than %s s", len(pending), LOOKUP_TIMEOUT)
    found: list[Account] = []
    for task in done:
        if task.cancelled() or task.exception() is not None:
            continue
        account = task.result()
        if account is not None:
            found.append(account)
    return found
