"""moderation warning notifications

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account_warning_id', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_notifications_account_warning_id'),
                              ['account_warning_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_notifications_account_warning_id_account_warnings'),
            'account_warnings', ['account_warning_id'], ['id'], ondelete='CASCADE')


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_notifications_account_warning_id_account_warnings'),
            type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_notifications_account_warning_id'))
        batch_op.drop_column('account_warning_id')
