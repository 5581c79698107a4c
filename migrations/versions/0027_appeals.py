"""appeals: a person contests a moderator's warning; an approved one overrules it

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('appeals',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('account_warning_id', sa.BigInteger(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('approved_by_account_id', sa.BigInteger(), nullable=True),
    sa.Column('rejected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rejected_by_account_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_appeals_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['account_warning_id'], ['account_warnings.id'], name=op.f('fk_appeals_account_warning_id_account_warnings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['approved_by_account_id'], ['accounts.id'], name=op.f('fk_appeals_approved_by_account_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['rejected_by_account_id'], ['accounts.id'], name=op.f('fk_appeals_rejected_by_account_id_accounts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appeals')),
    sa.UniqueConstraint('account_warning_id', name=op.f('uq_appeals_account_warning_id'))
    )
    with op.batch_alter_table('appeals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appeals_account_id'), ['account_id'], unique=False)

    with op.batch_alter_table('account_warnings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overruled_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('account_warnings', schema=None) as batch_op:
        batch_op.drop_column('overruled_at')

    with op.batch_alter_table('appeals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_appeals_account_id'))

    op.drop_table('appeals')
