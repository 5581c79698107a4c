"""inbox_items.signature_digest: a captured delivery replayed is known by its signature

Revision ID: 0034
Revises: 0033
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox_items') as batch:
        batch.add_column(sa.Column('signature_digest', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbox_items') as batch:
        batch.drop_column('signature_digest')
