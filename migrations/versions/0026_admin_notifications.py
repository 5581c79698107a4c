"""admin notifications: an admin.report notification names its report

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('report_id', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_notifications_report_id'), ['report_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_notifications_report_id_reports'), 'reports',
                                    ['report_id'], ['id'], ondelete='CASCADE')


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_notifications_report_id_reports'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_notifications_report_id'))
        batch_op.drop_column('report_id')
