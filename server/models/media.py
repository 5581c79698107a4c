"""Media attachments: an upload's private original, its public renditions and state."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base


class MediaState(enum.StrEnum):
    PROCESSING = "processing"  # stored, waiting for (or in) the protect pipeline
    READY = "ready"            # renditions exist; may be served and published
    FAILED = "failed"          # the pipeline gave up; the author decides what happens


class ProtectionState(enum.StrEnum):
    PENDING = "pending"
    PROTECTED = "protected"      # perturbed against the configured encoders
    UNPROTECTED = "unprotected"  # published without perturbation (no model, or the author chose)
    FAILED = "failed"


class MediaAttachment(Base):
    __tablename__ = "media_attachments"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    status_id: Mapped[int | None] = mapped_column(
        ForeignKey("statuses.id", ondelete="SET NULL"), index=True, default=None)
    # Mastodon's attachment type: image, gifv, video, audio, unknown.
    type: Mapped[str] = mapped_column(String(16), default="image")
    # attachment, avatar or header.
    purpose: Mapped[str] = mapped_column(String(16), default="attachment")
    state: Mapped[str] = mapped_column(String(16), default=MediaState.PROCESSING.value)
    protection: Mapped[str] = mapped_column(String(16), default=ProtectionState.PENDING.value)
    # Storage keys. The original is private: only its owner may fetch it.
    original_key: Mapped[str | None] = mapped_column(String(255), default=None)
    original_content_type: Mapped[str] = mapped_column(String(64), default="")
    original_size: Mapped[int] = mapped_column(Integer, default=0)
    file_key: Mapped[str | None] = mapped_column(String(255), default=None)
    small_key: Mapped[str | None] = mapped_column(String(255), default=None)
    thumb_key: Mapped[str | None] = mapped_column(String(255), default=None)
    # Mastodon's meta: {"original": {...}, "small": {...}, "focus": {...}}.
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    blurhash: Mapped[str | None] = mapped_column(String(128), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    focus_x: Mapped[float] = mapped_column(Float, default=0.0)
    focus_y: Mapped[float] = mapped_column(Float, default=0.0)
    # For media of remote statuses: where it came from.
    remote_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    processing_error: Mapped[str | None] = mapped_column(Text, default=None)
    # Generative-AI provenance found when the upload was screened (the marker, e.g.
    # "XMP DigitalSourceType trainedAlgorithmicMedia"), kept when the instance labels
    # or allows such uploads; None: no marker found (which proves nothing).
    ai_provenance: Mapped[str | None] = mapped_column(String(255), default=None)
    # The remote media cache (federation.media_cache): a copy of a remote attachment kept
    # in our storage under ``cache/`` and served from /system/ while it is there; None:
    # not cached (never fetched, refused, or evicted by prune), the remote URL is shown.
    cache_key: Mapped[str | None] = mapped_column(String(255), default=None)
    cache_preview_key: Mapped[str | None] = mapped_column(String(255), default=None)
    cache_size: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cached_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
