"""one boost per account and status

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('statuses', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_statuses_account_id_reblog_of_id'), ['account_id', 'reblog_of_id'])



def downgrade() -> None:
    with op.batch_alter_table('statuses', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_statuses_account_id_reblog_of_id'), type_='unique')

