"""Domain blocks, as every federation block asks about them.

An admin blocks a domain with a severity (``suspend``: nothing in, nothing out;
``silence``: kept out of public timelines; ``noop``) and optionally ``reject_media``
(remote media of that domain are neither fetched nor shown). A block on ``example.com``
covers ``a.example.com`` too; a port is part of the domain (``host:port``), and a block
without a port covers every port of that host. When several blocks cover a domain, the
most specific one decides (``noop`` on ``good.example.com`` exempts it from a suspension of
``example.com``) — for one domain (:func:`domain_policy`) as for a whole audience at once
(:func:`all_blocks`).

The inbox refuses a suspended domain's activities before storing them, delivery skips
its inboxes, fetches never go there, and search does not resolve there.

This module only reads; blocks are made by the admin commands
(``server.services.domain_blocks``, which also holds :func:`domain_of`). It never caches across
transactions (a block takes effect on the next request).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import DomainBlock, DomainBlockSeverity
from server.services.domain_blocks import domain_candidates as _candidates
from server.services.domain_blocks import domain_of

__all__ = ["OPEN", "DomainBlocks", "DomainPolicy", "all_blocks", "domain_of", "domain_policy",
           "is_suspended"]


@dataclass(frozen=True)
class DomainPolicy:
    domain: str
    suspended: bool = False
    silenced: bool = False
    reject_media: bool = False


OPEN = DomainPolicy(domain="")


@dataclass(frozen=True)
class _Block:
    severity: str
    reject_media: bool


def _policy_of(domain: str, found: Mapping[str, _Block]) -> DomainPolicy:
    """The policy of ``domain`` under the blocks ``found`` (block domain → block): the most
    specific block covering it decides (a ``noop`` on ``good.example.com`` lifts a
    suspension of ``example.com`` for that subdomain)."""
    for name in _candidates(domain):
        block = found.get(name)
        if block is not None:
            return DomainPolicy(
                domain=domain,
                suspended=block.severity == DomainBlockSeverity.SUSPEND,
                silenced=block.severity == DomainBlockSeverity.SILENCE,
                reject_media=block.reject_media or block.severity == DomainBlockSeverity.SUSPEND,
            )
    return DomainPolicy(domain=domain)


def _blocks(rows: Iterable[tuple[str, str, bool]]) -> dict[str, _Block]:
    return {domain: _Block(severity=str(severity), reject_media=bool(reject_media))
            for domain, severity, reject_media in rows}


_COLUMNS = (DomainBlock.domain, DomainBlock.severity, DomainBlock.reject_media)


async def domain_policy(session: AsyncSession, url_or_domain: str) -> DomainPolicy:
    """The policy for the domain of ``url_or_domain`` (the most specific block wins)."""
    domain = domain_of(url_or_domain)
    if not domain:
        return OPEN
    rows = await session.execute(
        select(*_COLUMNS).where(DomainBlock.domain.in_(_candidates(domain))))
    return _policy_of(domain, _blocks(rows.all()))


async def is_suspended(session: AsyncSession, url_or_domain: str) -> bool:
    return (await domain_policy(session, url_or_domain)).suspended


@dataclass(frozen=True)
class DomainBlocks:
    """Every block at once, for filtering many domains (a whole audience) in memory with
    the same rule as :func:`domain_policy`."""

    found: Mapping[str, _Block]

    def policy(self, url_or_domain: str) -> DomainPolicy:
        domain = domain_of(url_or_domain)
        return _policy_of(domain, self.found) if domain else OPEN

    def suspends(self, url_or_domain: str) -> bool:
        return self.policy(url_or_domain).suspended


async def all_blocks(session: AsyncSession) -> DomainBlocks:
    """Every domain block (delivery filters a whole audience against them at once)."""
    rows = await session.execute(select(*_COLUMNS))
    return DomainBlocks(found=_blocks(rows.all()))
