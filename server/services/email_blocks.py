"""Canonical e-mail blocks: addresses nobody may register with again.

Why it exists: a banned person signs up again as ``J.Doe+2@Example.com`` for
``jdoe@example.com``. As Mastodon's ``CanonicalEmailBlock``, an address is reduced to a
canonical form (lower case; in the local part, dots removed and everything from the first
``+`` dropped) and only the SHA-256 hex digest of that form is stored, so the block list
names nobody. Registration asks :func:`email_blocked`; the admin API
(``/api/v1/admin/canonical_email_blocks``) manages the list.

What it must never do: store an address in the clear, or refuse an address whose canonical
form differs from a blocked one.
"""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import CanonicalEmailBlock
from server.services.errors import ServiceError, ValidationFailed, get_or_404

_HASH_RE = re.compile(r"\A[0-9a-f]{64}\Z")


def canonical_email(email: str) -> str:
    """``J.Doe+art@Example.COM`` → ``jdoe@example.com`` (Mastodon's
    ``email_to_canonical_email``)."""
    local, _, domain = email.strip().lower().partition("@")
    local = local.replace(".", "").split("+", 1)[0]
    return f"{local}@{domain}"


def canonical_email_hash(email: str) -> str:
    return hashlib.sha256(canonical_email(email).encode()).hexdigest()


async def email_blocked(session: AsyncSession, email: str) -> bool:
    """Whether ``email``'s canonical form is blocked (registration refuses it)."""
    digest = canonical_email_hash(email)
    found = await session.scalar(select(CanonicalEmailBlock.id).where(
        CanonicalEmailBlock.canonical_email_hash == digest))
    return found is not None


async def matching_blocks(session: AsyncSession, email: str) -> list[CanonicalEmailBlock]:
    """The blocks ``email`` matches (``/canonical_email_blocks/test``): none or one."""
    digest = canonical_email_hash(email)
    return list(await session.scalars(select(CanonicalEmailBlock).where(
        CanonicalEmailBlock.canonical_email_hash == digest)))


async def block_email(session: AsyncSession, *, email: str | None = None,
                      digest: str | None = None) -> CanonicalEmailBlock:
    """Block an address given in the clear (hashed here) or as its canonical hash;
    committed. ValidationFailed for neither, a malformed address or hash, or one already
    blocked."""
    if email:
        if "@" not in email or not email.strip().split("@", 1)[1]:
            raise ValidationFailed("Email is invalid")
        value = canonical_email_hash(email)
    elif digest:
        value = digest.strip().lower()
        if not _HASH_RE.match(value):
            raise ValidationFailed("Canonical email hash must be 64 hexadecimal characters")
    else:
        raise ValidationFailed("Canonical email hash can't be blank")
    if await session.scalar(select(CanonicalEmailBlock.id).where(
            CanonicalEmailBlock.canonical_email_hash == value)) is not None:
        raise ValidationFailed("Canonical email hash has already been taken")
    block = CanonicalEmailBlock(canonical_email_hash=value)
    session.add(block)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise ServiceError("Validation failed: Canonical email hash has already been taken", 422) from None
    return block


async def list_email_blocks(session: AsyncSession) -> list[CanonicalEmailBlock]:
    return list(await session.scalars(select(CanonicalEmailBlock).order_by(CanonicalEmailBlock.id)))


async def get_email_block(session: AsyncSession, block_id: int) -> CanonicalEmailBlock:
    return await get_or_404(session, CanonicalEmailBlock, block_id)


async def remove_email_block(session: AsyncSession, block_id: int) -> None:
    block = await get_email_block(session, block_id)
    await session.delete(block)
    await session.commit()
