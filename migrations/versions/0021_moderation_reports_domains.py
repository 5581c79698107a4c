"""moderation reports domains

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('domain_blocks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reject_reports', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('obfuscate', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assigned_account_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('action_taken_by_account_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_reports_assigned_account_id_accounts'), 'accounts', ['assigned_account_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_reports_action_taken_by_account_id_accounts'), 'accounts', ['action_taken_by_account_id'], ['id'], ondelete='SET NULL')

    op.create_table('report_notes',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('report_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_report_notes_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_report_notes_report_id_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_notes'))
    )
    with op.batch_alter_table('report_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_notes_report_id'), ['report_id'], unique=False)

    op.create_table('domain_allows',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_allows')),
    sa.UniqueConstraint('domain', name=op.f('uq_domain_allows_domain'))
    )
    op.create_table('canonical_email_blocks',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('canonical_email_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_canonical_email_blocks')),
    sa.UniqueConstraint('canonical_email_hash', name=op.f('uq_canonical_email_blocks_canonical_email_hash'))
    )


def downgrade() -> None:
    op.drop_table('canonical_email_blocks')
    op.drop_table('domain_allows')
    with op.batch_alter_table('report_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_notes_report_id'))

    op.drop_table('report_notes')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_reports_action_taken_by_account_id_accounts'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_reports_assigned_account_id_accounts'), type_='foreignkey')
        batch_op.drop_column('updated_at')
        batch_op.drop_column('action_taken_by_account_id')
        batch_op.drop_column('assigned_account_id')

    with op.batch_alter_table('domain_blocks', schema=None) as batch_op:
        batch_op.drop_column('obfuscate')
        batch_op.drop_column('reject_reports')
