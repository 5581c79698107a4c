"""The one error type services raise for a request that cannot be carried out.

It carries a message safe to show a client and the HTTP status Mastodon would answer
with; the API's exception handler turns it into ``{"error": ...}``.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

Row = TypeVar("Row")


class ServiceError(Exception):
    status_code = 422

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class NotFound(ServiceError):
    status_code = 404


class ValidationFailed(ServiceError):
    """Mastodon's "Validation failed: …" 422."""

    def __init__(self, details: str) -> None:
        super().__init__(f"Validation failed: {details}", 422)


async def get_or_404(session: AsyncSession, model: type[Row], row_id: int,
                     message: str = "Record not found") -> Row:
    """The ``model`` row ``row_id``, or NotFound (Mastodon's 404 "Record not found")."""
    row = await session.get(model, row_id)
    if row is None:
        raise NotFound(message)
    return row
