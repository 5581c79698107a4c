"""Domain blocks, as every federation block asks about them.

An admin blocks a domain with a severity (``suspend``: nothing in, nothing out;
``silence``: kept out of public timelines; ``noop``) and optionally ``reject_media``
(remote media of that domain are neither fetched nor shown — attachments, avatars and
headers; what was stored before the block is cleared by ``federation.media_cache``'s
``clear_domain_media`` job). A block on ``example.com``
covers ``a.example.com`` too; a port is part of the domain (``host:port``), and a block
without a port covers every port of that host. When several blocks cover a domain, the
most specific one decides (``noop`` on ``good.example.com`` exempts it from a suspension of
``example.com``) — for one domain (:func:`domain_policy`) as for a whole audience at once
(:func:`all_blocks`).

The inbox refuses a suspended domain's activities before storing them, delivery skips
its inboxes, fetches never go there, and search does not resolve there. ``reject_reports``
drops the domain's ``Flag``s.

In allowlist federation mode (``EASEL_FEDERATION_MODE=allowlist``, which the database's
sessions carry in ``session.info["federation_mode"]``) every domain that no
``domain_allows`` row covers (the allowed domain or a subdomain of it) is treated as
suspended, so the same checks refuse it both ways; a block still applies to an allowed
domain.

This module only reads; blocks are made by the admin commands
(``server.services.domain_blocks``, which also holds :func:`domain_of`). It never caches across
transactions (a block takes effect on the next request).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import DomainAllow, DomainBlock, DomainBlockSeverity
from server.services.domain_blocks import domain_candidates as _candidates
from server.services.domain_blocks import domain_of

__all__ = ["OPEN", "DomainBlocks", "DomainPolicy", "all_blocks", "allowlist_mode", "domain_of",
           "domain_policy", "is_suspended"]


@dataclass(frozen=True)
class DomainPolicy:
    domain: str
    suspended: bool = False
    silenced: bool = False
    reject_media: bool = False
    reject_reports: bool = False


OPEN = DomainPolicy(domain="")


@dataclass(frozen=True)
class _Block:
    severity: str
    reject_media: bool
    reject_reports: bool = False


def _policy_of(domain: str, found: Mapping[str, _Block]) -> DomainPolicy:
    """The policy of ``domain`` under the blocks ``found`` (block domain → block): the most
    specific block covering it decides (a ``noop`` on ``good.example.com`` lifts a
    suspension of ``example.com`` for that subdomain)."""
    for name in _candidates(domain):
        block = found.get(name)
        if block is not None:
            suspended = block.severity == DomainBlockSeverity.SUSPEND
            return DomainPolicy(
                domain=domain,
                suspended=suspended,
                silenced=block.severity == DomainBlockSeverity.SILENCE,
                reject_media=block.reject_media or suspended,
                reject_reports=block.reject_reports or suspended,
            )
    return DomainPolicy(domain=domain)


def _not_allowed(domain: str) -> DomainPolicy:
    return DomainPolicy(domain=domain, suspended=True, reject_media=True, reject_reports=True)


def _blocks(rows: Iterable[tuple[str, str, bool, bool]]) -> dict[str, _Block]:
    return {domain: _Block(severity=str(severity), reject_media=bool(reject_media),
                           reject_reports=bool(reject_reports))
            for domain, severity, reject_media, reject_reports in rows}


_COLUMNS = (DomainBlock.domain, DomainBlock.severity, DomainBlock.reject_media,
            DomainBlock.reject_reports)


def allowlist_mode(session: AsyncSession) -> bool:
    """Whether this database's server federates only with allowed domains."""
    return session.info.get("federation_mode") == "allowlist"


def _own(session: AsyncSession, domain: str) -> bool:
    return domain == str(session.info.get("own_domain", "")).lower()


async def domain_policy(session: AsyncSession, url_or_domain: str) -> DomainPolicy:
    """The policy for the domain of ``url_or_domain`` (the most specific block wins; in
    allowlist mode a domain no allow covers is suspended)."""
    domain = domain_of(url_or_domain)
    if not domain:
        return OPEN
    candidates = _candidates(domain)
    if allowlist_mode(session) and not _own(session, domain) and await session.scalar(
            select(DomainAllow.id).where(DomainAllow.domain.in_(candidates)).limit(1)) is None:
        return _not_allowed(domain)
    rows = await session.execute(
        select(*_COLUMNS).where(DomainBlock.domain.in_(candidates)))
    return _policy_of(domain, _blocks(rows.all()))


async def is_suspended(session: AsyncSession, url_or_domain: str) -> bool:
    return (await domain_policy(session, url_or_domain)).suspended


@dataclass(frozen=True)
class DomainBlocks:
    """Every block at once, for filtering many domains (a whole audience) in memory with
    the same rule as :func:`domain_policy`."""

    found: Mapping[str, _Block]
    # In allowlist mode: the allowed domains (and this server's own); None in open mode.
    allowed: frozenset[str] | None = None

    def policy(self, url_or_domain: str) -> DomainPolicy:
        domain = domain_of(url_or_domain)
        if not domain:
            return OPEN
        if self.allowed is not None and not self.allowed.intersection(_candidates(domain)):
            return _not_allowed(domain)
        return _policy_of(domain, self.found)

    def suspends(self, url_or_domain: str) -> bool:
        return self.policy(url_or_domain).suspended


async def all_blocks(session: AsyncSession) -> DomainBlocks:
    """Every domain block (delivery filters a whole audience against them at once)."""
    rows = await session.execute(select(*_COLUMNS))
    allowed: frozenset[str] | None = None
    if allowlist_mode(session):
        own = str(session.info.get("own_domain", "")).lower()
        allowed = frozenset([*await session.scalars(select(DomainAllow.domain)), own])
    return DomainBlocks(found=_blocks(rows.all()), allowed=allowed)
