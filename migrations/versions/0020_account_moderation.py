"""account moderation

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suspended_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('suspension_origin', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('silenced_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sensitized_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delete_after', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_accounts_suspended_at'), ['suspended_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_accounts_silenced_at'), ['silenced_at'], unique=False)

    op.create_table('account_warnings',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=True),
    sa.Column('target_account_id', sa.BigInteger(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('report_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_warnings_account_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_account_warnings_report_id_reports'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['target_account_id'], ['accounts.id'], name=op.f('fk_account_warnings_target_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_warnings'))
    )
    with op.batch_alter_table('account_warnings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_warnings_target_account_id'), ['target_account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('account_warnings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_warnings_target_account_id'))

    op.drop_table('account_warnings')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_silenced_at'))
        batch_op.drop_index(batch_op.f('ix_accounts_suspended_at'))
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('delete_after')
        batch_op.drop_column('sensitized_at')
        batch_op.drop_column('silenced_at')
        batch_op.drop_column('suspension_origin')
        batch_op.drop_column('suspended_at')
