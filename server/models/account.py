"""Actors, local and remote: one row per fediverse account Easel knows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.ids import new_id, utcnow
from server.models.base import Base


class Account(Base):
    __tablename__ = "accounts"
    # One account per (username, domain), case-insensitively: username_key is the
    # lower-cased username. domain is "" for local accounts (NULL would escape the index).
    __table_args__ = (UniqueConstraint("username_key", "domain"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(255))
    username_key: Mapped[str] = mapped_column(String(255))
    domain: Mapped[str] = mapped_column(String(255), default="", index=True)
    # Person for people, Application for the instance actor, Service for bots.
    actor_type: Mapped[str] = mapped_column(String(32), default="Person")
    display_name: Mapped[str] = mapped_column(String(255), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048), default="")
    inbox_url: Mapped[str] = mapped_column(String(2048), default="")
    outbox_url: Mapped[str] = mapped_column(String(2048), default="")
    shared_inbox_url: Mapped[str] = mapped_column(String(2048), default="")
    followers_url: Mapped[str] = mapped_column(String(2048), default="")
    following_url: Mapped[str] = mapped_column(String(2048), default="")
    featured_url: Mapped[str] = mapped_column(String(2048), default="")
    public_key_id: Mapped[str] = mapped_column(String(2048), default="")
    public_key_pem: Mapped[str] = mapped_column(Text, default="")
    # Only local actors have one; it never leaves the server.
    private_key_pem: Mapped[str | None] = mapped_column(Text, default=None)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    discoverable: Mapped[bool] = mapped_column(Boolean, default=True)
    indexable: Mapped[bool] = mapped_column(Boolean, default=False)
    bot: Mapped[bool] = mapped_column(Boolean, default=False)
    # Storage keys of the processed (public) avatar and header; None: the default image.
    avatar_key: Mapped[str | None] = mapped_column(String(255), default=None)
    header_key: Mapped[str | None] = mapped_column(String(255), default=None)
    avatar_remote_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    header_remote_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    # Profile metadata: [{"name": ..., "value": ..., "verified_at": ...}], at most 4.
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Counters kept by the services that change them.
    statuses_count: Mapped[int] = mapped_column(Integer, default=0)
    followers_count: Mapped[int] = mapped_column(Integer, default=0)
    following_count: Mapped[int] = mapped_column(Integer, default=0)
    last_status_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set when the account has moved (an inbound Move, or a local migration).
    moved_to_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    # The actor's alsoKnownAs: the uris it says are also its own (a Move needs it).
    also_known_as: Mapped[list[str]] = mapped_column(JSON, default=list)
    # AI opt-out. Local: the IPTC PLUS DataMining value the artist chose (the full
    # http://ns.useplus.org/ldf/vocab/DMI-… URI); None means the instance default,
    # DMI-PROHIBITED-AIMLTRAINING. Remote: what the actor stated, None when it said nothing.
    data_mining: Mapped[str | None] = mapped_column(String(128), default=None)
    # Remote only: the actor's FEP-5e53 xRobotsTag as stated (e.g. "noai, noimageai").
    robots: Mapped[str | None] = mapped_column(String(255), default=None)
    # Moderation (server.services.moderation): set while the action stands.
    suspended_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # "local" (our moderators), "deletion" (the person's own, while it waits) or "remote"
    # (its own server said so).
    suspension_origin: Mapped[str | None] = mapped_column(String(8), default=None)
    silenced_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    sensitized_at: Mapped[datetime | None] = mapped_column(default=None)
    # Deletion: due time of the purge while a deletion waits out its grace period, and
    # when the purge ran (the row stays, so the username and uri are never reused).
    delete_after: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    user: Mapped[User | None] = relationship(back_populates="account", uselist=False)

    @property
    def is_local(self) -> bool:
        return self.domain == ""

    def acct(self) -> str:
        return self.username if self.is_local else f"{self.username}@{self.domain}"


from server.models.user import User  # noqa: E402
