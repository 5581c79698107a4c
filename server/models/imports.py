"""Account imports: a CSV an artist brought from another server, and its rows.

The rows are the truth: the ``process_import`` job works through the pending ones in order,
committing each (a crash or restart resumes where it stopped), then marks the import done.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base

IMPORT_TYPES = ("following", "blocking", "muting", "domain_blocking", "bookmarks", "lists")


class AccountImport(Base):
    __tablename__ = "account_imports"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    # Overwrite: what the file does not name is undone at the end (unfollowed, unblocked …);
    # merge (False): only added to.
    overwrite: Mapped[bool] = mapped_column(Boolean, default=False)
    # queued → running → done (or failed, when the job gave up).
    state: Mapped[str] = mapped_column(String(16), default="queued")
    total_items: Mapped[int] = mapped_column(Integer, default=0)
    imported_items: Mapped[int] = mapped_column(Integer, default=0)
    failed_items: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class AccountImportRow(Base):
    __tablename__ = "account_import_rows"
    __table_args__ = (Index("ix_account_import_rows_import_id_state", "import_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    import_id: Mapped[int] = mapped_column(ForeignKey("account_imports.id", ondelete="CASCADE"))
    # The row as parsed: {"acct": …, "show_reblogs": …} / {"uri": …} / {"domain": …} /
    # {"list": …, "acct": …}.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # pending → done or failed (with why).
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # What the row resolved to (an account or status id): overwrite keeps these.
    resolved_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
