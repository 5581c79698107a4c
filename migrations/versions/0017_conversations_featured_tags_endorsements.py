"""conversations featured tags endorsements suggestion dismissals and user domain blocks

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account_domain_blocks',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_domain_blocks_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_domain_blocks')),
    sa.UniqueConstraint('account_id', 'domain', name=op.f('uq_account_domain_blocks_account_id_domain'))
    )
    with op.batch_alter_table('account_domain_blocks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_domain_blocks_domain'), ['domain'], unique=False)

    op.create_table('conversations',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('thread_id', sa.BigInteger(), nullable=False),
    sa.Column('participants', sa.Text(), nullable=False),
    sa.Column('participants_key', sa.String(length=64), nullable=False),
    sa.Column('unread', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_conversations_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversations')),
    sa.UniqueConstraint('account_id', 'thread_id', 'participants_key', name=op.f('uq_conversations_account_id_thread_id_participants_key'))
    )
    op.create_table('conversation_statuses',
    sa.Column('conversation_id', sa.BigInteger(), nullable=False),
    sa.Column('status_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_conversation_statuses_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['status_id'], ['statuses.id'], name=op.f('fk_conversation_statuses_status_id_statuses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', 'status_id', name=op.f('pk_conversation_statuses'))
    )
    with op.batch_alter_table('conversation_statuses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversation_statuses_status_id'), ['status_id'], unique=False)

    op.create_table('endorsements',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('target_account_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_endorsements_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_account_id'], ['accounts.id'], name=op.f('fk_endorsements_target_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_endorsements')),
    sa.UniqueConstraint('account_id', 'target_account_id', name=op.f('uq_endorsements_account_id_target_account_id'))
    )
    with op.batch_alter_table('endorsements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_endorsements_target_account_id'), ['target_account_id'], unique=False)

    op.create_table('featured_tags',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('tag_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_featured_tags_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_featured_tags_tag_id_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_featured_tags')),
    sa.UniqueConstraint('account_id', 'tag_id', name=op.f('uq_featured_tags_account_id_tag_id'))
    )
    with op.batch_alter_table('featured_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_featured_tags_tag_id'), ['tag_id'], unique=False)

    op.create_table('suggestion_dismissals',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('target_account_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_suggestion_dismissals_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_account_id'], ['accounts.id'], name=op.f('fk_suggestion_dismissals_target_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suggestion_dismissals')),
    sa.UniqueConstraint('account_id', 'target_account_id', name=op.f('uq_suggestion_dismissals_account_id_target_account_id'))
    )
    with op.batch_alter_table('suggestion_dismissals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suggestion_dismissals_target_account_id'), ['target_account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('suggestion_dismissals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suggestion_dismissals_target_account_id'))

    op.drop_table('suggestion_dismissals')
    with op.batch_alter_table('featured_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_featured_tags_tag_id'))

    op.drop_table('featured_tags')
    with op.batch_alter_table('endorsements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_endorsements_target_account_id'))

    op.drop_table('endorsements')
    with op.batch_alter_table('conversation_statuses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversation_statuses_status_id'))

    op.drop_table('conversation_statuses')
    op.drop_table('conversations')
    with op.batch_alter_table('account_domain_blocks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_domain_blocks_domain'))

    op.drop_table('account_domain_blocks')
