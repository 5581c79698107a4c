"""domain suspensions suspend their accounts: mark those already stored

Since this revision a domain suspension suspends the stored accounts it covers
(``accounts.suspension_origin`` "domain", ``server.services.domain_blocks.
sync_domain_suspensions``), so every read path hides them by the one rule for suspended
accounts. Suspensions made before it are applied here to the accounts stored then: the
most specific block covering an account's domain decides, as ``deciding_block`` does.
Downgrading lifts exactly these suspensions.

Revision ID: 0033
Revises: 0032
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None

_CHUNK = 500


def _candidates(domain: str) -> list[str]:
    """The block domains that could cover ``domain`` (host[:port]), most specific first
    (``server.services.domain_blocks.domain_candidates`` as of this revision)."""
    host, _, port = domain.partition(":")
    names = [domain] if port else []
    labels = host.split(".")
    names += [".".join(labels[i:]) for i in range(len(labels)) if labels[i:]]
    return names


def upgrade() -> None:
    bind = op.get_bind()
    severity: dict[str, str] = dict(bind.execute(sa.text("SELECT domain, severity FROM domain_blocks")).all())
    if "suspend" not in severity.values():
        return
    suspended = []
    for account_id, domain in bind.execute(sa.text(
            "SELECT id, domain FROM accounts WHERE domain != '' AND suspended_at IS NULL")):
        deciding = next((severity[c] for c in _candidates(domain) if c in severity), None)
        if deciding == "suspend":
            suspended.append(account_id)
    now = datetime.now(UTC)  # stored as the models store it: naive UTC on SQLite
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    for start in range(0, len(suspended), _CHUNK):
        bind.execute(sa.text(
            "UPDATE accounts SET suspended_at = :now, suspension_origin = 'domain' "
            "WHERE id IN :ids AND suspended_at IS NULL").bindparams(
                sa.bindparam("ids", expanding=True)),
            {"now": now, "ids": suspended[start:start + _CHUNK]})


def downgrade() -> None:
    op.execute("UPDATE accounts SET suspended_at = NULL, suspension_origin = NULL "
               "WHERE suspension_origin = 'domain'")
