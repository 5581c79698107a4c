"""What federation keeps in the database: activities sent and received, deliveries, the
health of other servers, domain blocks, tombstones and reports.

Background work is a row here plus a ``jobs`` row naming it (``ref`` = this row's id):
``federate`` (an :class:`Activity` to resolve into deliveries), ``deliver`` (one
:class:`Delivery`) and ``process_inbox`` (one :class:`InboxItem`). Their states, attempts
and next-try times live on the job; these rows hold what the job is about.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base


class Activity(Base):
    """An activity a local actor performed, recorded by the service that made the change.

    ``payload`` is the intent, captured at the time of the change (ids, and whatever a
    later job can no longer read from the database: the audience of a deleted status).
    ``document`` is the JSON sent, built once by the ``federate`` job so every retry of
    every delivery sends the same bytes' content.
    """

    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    object_uri: Mapped[str] = mapped_column(String(2048), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    document: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """One activity to one inbox; its ``deliver`` job holds state, attempts and backoff."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("activity_id", "inbox_url"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    inbox_url: Mapped[str] = mapped_column(String(2048))
    domain: Mapped[str] = mapped_column(String(255), index=True)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class InboxOutcome(enum.StrEnum):
    PENDING = "pending"        # accepted, not processed yet
    PROCESSED = "processed"    # a handler changed something (or found it already done)
    IGNORED = "ignored"        # recorded and ignored (unknown type, nothing to do); see note
    REJECTED = "rejected"      # refused on processing (origin rule, blocked, invalid); see note


class InboxItem(Base):
    """An activity received at an inbox, signature checked, stored before the 202."""

    __tablename__ = "inbox_items"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    # The activity's id (or a key derived from it: forwarded and redelivered items):
    # unique; whether a delivery with a stored id is a replay is the intake's replay rule
    # (federation.inbox.intake).
    activity_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    activity_type: Mapped[str] = mapped_column(String(64), default="")
    actor_uri: Mapped[str] = mapped_column(String(2048), default="")
    # The key owner (the verified signer's actor uri); differs from actor_uri when forwarded.
    signer_uri: Mapped[str] = mapped_column(String(2048), default="")
    forwarded: Mapped[bool] = mapped_column(Boolean, default=False)
    # The local account whose personal inbox received it; None for the shared inbox.
    recipient_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    body: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outcome: Mapped[str] = mapped_column(String(16), default=InboxOutcome.PENDING.value)
    note: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(default=None)
    # SHA-256 of the delivery's signature headers: the same request replayed carries the
    # same, a new delivery of a reused id another (the intake's replay rule).
    signature_digest: Mapped[str | None] = mapped_column(String(64), default=None)


class DomainBlockSeverity(enum.StrEnum):
    SILENCE = "silence"   # kept out of public timelines; follows still work
    SUSPEND = "suspend"   # nothing in, nothing out
    NOOP = "noop"         # only the media rule below applies


class DomainBlock(Base):
    __tablename__ = "domain_blocks"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    # Lower-case host[:port]; a block on "example.com" covers its subdomains too.
    domain: Mapped[str] = mapped_column(String(255), unique=True)
    severity: Mapped[str] = mapped_column(String(16), default=DomainBlockSeverity.SUSPEND.value)
    reject_media: Mapped[bool] = mapped_column(Boolean, default=False)
    public_comment: Mapped[str] = mapped_column(Text, default="")
    private_comment: Mapped[str] = mapped_column(Text, default="")
    # Flags (remote reports) from the domain are dropped.
    reject_reports: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The public list shows the domain with some letters starred out.
    obfuscate: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DomainAllow(Base):
    """A domain this server federates with in allowlist mode (EASEL_FEDERATION_MODE);
    in open mode the table is kept but asks nothing."""

    __tablename__ = "domain_allows"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    domain: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CanonicalEmailBlock(Base):
    """An e-mail address nobody may register with, stored only as the SHA-256 of its
    canonical form (server.services.email_blocks)."""

    __tablename__ = "canonical_email_blocks"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    canonical_email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Instance(Base):
    """Delivery health per remote domain: failures since the last success."""

    __tablename__ = "instances"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime | None] = mapped_column(default=None)
    last_failure_at: Mapped[datetime | None] = mapped_column(default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Tombstone(Base):
    """The uri of a deleted object: ours answer 410 with a Tombstone; a remote one is
    never recreated by a late or replayed Create."""

    __tablename__ = "tombstones"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Report(Base):
    """A report about an account (and some of its statuses), from a local user or
    received as a ``Flag`` from another server (``account_id`` then its instance actor)."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    uri: Mapped[str | None] = mapped_column(String(2048), unique=True, default=None)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    target_account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    status_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    comment: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32), default="other")
    # The instance rules it cites (``instance_rules`` ids; a "violation" report's only).
    # Not a foreign key: a rule removed later stays cited here, listed no more.
    rule_ids: Mapped[list[int] | None] = mapped_column(JSON, default=None)
    forwarded: Mapped[bool] = mapped_column(Boolean, default=False)
    action_taken_at: Mapped[datetime | None] = mapped_column(default=None)
    # Moderation: who handles it, who resolved it, when it last changed.
    assigned_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    action_taken_by_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None)
    updated_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportNote(Base):
    """A moderator's note on a report (kept with it, never sent anywhere)."""

    __tablename__ = "report_notes"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
