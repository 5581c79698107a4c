"""conversation_mutes, account_notes: muted threads, private notes on accounts

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('conversation_mutes',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('thread_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_conversation_mutes_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['thread_id'], ['statuses.id'], name=op.f('fk_conversation_mutes_thread_id_statuses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_mutes')),
    sa.UniqueConstraint('account_id', 'thread_id', name=op.f('uq_conversation_mutes_account_id_thread_id'))
    )
    with op.batch_alter_table('conversation_mutes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversation_mutes_thread_id'), ['thread_id'], unique=False)

    op.create_table('account_notes',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('target_account_id', sa.BigInteger(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_notes_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_account_id'], ['accounts.id'], name=op.f('fk_account_notes_target_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_notes')),
    sa.UniqueConstraint('account_id', 'target_account_id', name=op.f('uq_account_notes_account_id_target_account_id'))
    )
    with op.batch_alter_table('account_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_notes_target_account_id'), ['target_account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('account_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_notes_target_account_id'))

    op.drop_table('account_notes')
    with op.batch_alter_table('conversation_mutes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversation_mutes_thread_id'))

    op.drop_table('conversation_mutes')
