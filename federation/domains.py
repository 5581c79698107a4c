"""Domain blocks, as every federation block asks about them.

An admin blocks a domain with a severity (``suspend``: nothing in, nothing out;
``silence``: kept out of public timelines; ``noop``) and optionally ``reject_media``
(remote media of that domain are neither fetched nor shown). A block on ``example.com``
covers ``a.example.com`` too; a port is part of the domain (``host:port``), and a block
without a port covers every port of that host.

The inbox refuses a suspended domain's activities before storing them, delivery skips
its inboxes, fetches never go there, and search does not resolve there.

This module only reads; blocks are made by the admin commands
(``server.services.domain_blocks``, which also holds :func:`domain_of`). It never caches across
transactions (a block takes effect on the next request).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import DomainBlock, DomainBlockSeverity
from server.services.domain_blocks import domain_candidates as _candidates
from server.services.domain_blocks import domain_of

__all__ = ["OPEN", "DomainPolicy", "covered_by", "domain_of", "domain_policy", "is_suspended",
           "suspended_domains"]


@dataclass(frozen=True)
class DomainPolicy:
    domain: str
    suspended: bool = False
    silenced: bool = False
    reject_media: bool = False


OPEN = DomainPolicy(domain="")


def _policy_of(domain: str, blocks: list[DomainBlock]) -> DomainPolicy:
    found = {block.domain: block for block in blocks}
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


async def domain_policy(session: AsyncSession, url_or_domain: str) -> DomainPolicy:
    """The policy for the domain of ``url_or_domain`` (the most specific block wins)."""
    domain = domain_of(url_or_domain)
    if not domain:
        return OPEN
    blocks = list(await session.scalars(
        select(DomainBlock).where(DomainBlock.domain.in_(_candidates(domain)))))
    return _policy_of(domain, blocks)


async def is_suspended(session: AsyncSession, url_or_domain: str) -> bool:
    return (await domain_policy(session, url_or_domain)).suspended


async def suspended_domains(session: AsyncSession) -> list[str]:
    """Every suspended domain (delivery filters a whole audience against it at once)."""
    return list(await session.scalars(
        select(DomainBlock.domain).where(DomainBlock.severity == DomainBlockSeverity.SUSPEND)))


def covered_by(domain: str, blocked: list[str]) -> bool:
    """Whether ``domain`` falls under any of ``blocked`` (as :func:`suspended_domains`)."""
    names = set(_candidates(domain_of(domain)))
    return any(block in names for block in blocked)
