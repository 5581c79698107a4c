"""Reading positions (Mastodon's markers): where a user stopped reading their home and
notifications timelines, so another app can continue there. Each save bumps ``version``.
Writes commit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import MARKER_TIMELINES, Account, Marker


async def get_markers(session: AsyncSession, account: Account,
                      timelines: Sequence[str]) -> list[Marker]:
    """The account's markers of ``timelines`` (unknown names ignored, as Mastodon does)."""
    wanted = [t for t in dict.fromkeys(timelines) if t in MARKER_TIMELINES]
    if not wanted:
        return []
    return list(await session.scalars(select(Marker).where(
        Marker.account_id == account.id, Marker.timeline.in_(wanted)).order_by(Marker.timeline)))


async def save_markers(session: AsyncSession, account: Account,
                       positions: Mapping[str, int]) -> list[Marker]:
    """Set ``timeline → last_read_id`` (known timelines only); returns the markers saved."""
    saved = []
    for timeline, last_read_id in positions.items():
        if timeline not in MARKER_TIMELINES:
            continue
        marker = await session.scalar(select(Marker).where(
            Marker.account_id == account.id, Marker.timeline == timeline))
        if marker is None:
            try:
                async with session.begin_nested():
                    marker = Marker(account_id=account.id, timeline=timeline,
                                    last_read_id=last_read_id, version=0, updated_at=utcnow())
                    session.add(marker)
            except IntegrityError:  # saved concurrently: update that one
                marker = await session.scalar(select(Marker).where(
                    Marker.account_id == account.id, Marker.timeline == timeline))
                assert marker is not None
            else:
                saved.append(marker)
                continue
        # One atomic UPDATE: two apps saving at once each bump the version.
        await session.execute(update(Marker).where(Marker.id == marker.id).values(
            last_read_id=last_read_id, version=Marker.version + 1, updated_at=utcnow()))
        await session.refresh(marker)
        saved.append(marker)
    await session.commit()
    return saved
