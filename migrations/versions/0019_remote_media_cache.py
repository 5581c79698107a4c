"""remote media cache

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('media_attachments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cache_key', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('cache_preview_key', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('cache_size', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cached_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_media_attachments_cached_at'), ['cached_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('media_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_attachments_cached_at'))
        batch_op.drop_column('cached_at')
        batch_op.drop_column('cache_size')
        batch_op.drop_column('cache_preview_key')
        batch_op.drop_column('cache_key')
