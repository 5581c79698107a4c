"""account imports

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account_imports',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('overwrite', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('total_items', sa.Integer(), nullable=False),
    sa.Column('imported_items', sa.Integer(), nullable=False),
    sa.Column('failed_items', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_imports_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_imports'))
    )
    with op.batch_alter_table('account_imports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_imports_account_id'), ['account_id'], unique=False)

    op.create_table('account_import_rows',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('import_id', sa.BigInteger(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('resolved_id', sa.BigInteger(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['account_imports.id'], name=op.f('fk_account_import_rows_import_id_account_imports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_import_rows'))
    )
    with op.batch_alter_table('account_import_rows', schema=None) as batch_op:
        batch_op.create_index('ix_account_import_rows_import_id_state', ['import_id', 'state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('account_import_rows', schema=None) as batch_op:
        batch_op.drop_index('ix_account_import_rows_import_id_state')

    op.drop_table('account_import_rows')
    with op.batch_alter_table('account_imports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_imports_account_id'))

    op.drop_table('account_imports')
