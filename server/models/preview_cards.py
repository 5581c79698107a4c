"""Link preview cards (Mastodon's PreviewCard): one row per linked URL, and which card a
status shows.

A card is what a web page says about itself (OpenGraph, ``<title>``), fetched once by the
``fetch_link_card`` job (:mod:`federation.link_cards`) and shared by every status that
links to that URL. A failed or empty fetch is kept too (``failed``), so the URL is not
fetched again before the card is due for a refresh. Remote HTML is never stored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base

CARD_TYPES = ("link", "photo", "video")


class PreviewCard(Base):
    __tablename__ = "preview_cards"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    # The link as statuses name it (normalised: no fragment); one row per URL.
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    type: Mapped[str] = mapped_column(String(16), default="link")
    title: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    author_name: Mapped[str] = mapped_column(String(255), default="")
    author_url: Mapped[str] = mapped_column(String(2048), default="")
    provider_name: Mapped[str] = mapped_column(String(255), default="")
    provider_url: Mapped[str] = mapped_column(String(2048), default="")
    # The page's image: where it came from, and our small JPEG copy (public storage key).
    image_remote_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    image_key: Mapped[str | None] = mapped_column(String(255), default=None)
    image_description: Mapped[str] = mapped_column(Text, default="")
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    blurhash: Mapped[str | None] = mapped_column(String(64), default=None)
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The last fetch gave nothing to show (refused, an error, not HTML, no title or image).
    failed: Mapped[bool] = mapped_column(Boolean, default=False)


class StatusPreviewCard(Base):
    """The card a status shows (at most one: its first link's), as Mastodon's
    ``preview_cards_statuses``; ``url`` is the link as it was in the status."""

    __tablename__ = "status_preview_cards"

    status_id: Mapped[int] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    preview_card_id: Mapped[int] = mapped_column(
        ForeignKey("preview_cards.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
