"""status aliases

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('status_aliases',
    sa.Column('old_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('status_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['status_id'], ['statuses.id'], name=op.f('fk_status_aliases_status_id_statuses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('old_id', name=op.f('pk_status_aliases'))
    )
    with op.batch_alter_table('status_aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_status_aliases_status_id'), ['status_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('status_aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_status_aliases_status_id'))

    op.drop_table('status_aliases')
