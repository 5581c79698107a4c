"""lists, followed tags and markers

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lists',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('replies_policy', sa.String(length=16), nullable=False),
    sa.Column('exclusive', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_lists_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lists'))
    )
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lists_account_id'), ['account_id'], unique=False)

    op.create_table('markers',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('timeline', sa.String(length=16), nullable=False),
    sa.Column('last_read_id', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_markers_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_markers')),
    sa.UniqueConstraint('account_id', 'timeline', name=op.f('uq_markers_account_id_timeline'))
    )
    op.create_table('tag_follows',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('tag_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_tag_follows_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_tag_follows_tag_id_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tag_follows')),
    sa.UniqueConstraint('account_id', 'tag_id', name=op.f('uq_tag_follows_account_id_tag_id'))
    )
    with op.batch_alter_table('tag_follows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tag_follows_tag_id'), ['tag_id'], unique=False)

    op.create_table('list_accounts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('list_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_list_accounts_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['list_id'], ['lists.id'], name=op.f('fk_list_accounts_list_id_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_list_accounts')),
    sa.UniqueConstraint('list_id', 'account_id', name=op.f('uq_list_accounts_list_id_account_id'))
    )
    with op.batch_alter_table('list_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_list_accounts_account_id'), ['account_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('list_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_list_accounts_account_id'))

    op.drop_table('list_accounts')
    with op.batch_alter_table('tag_follows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tag_follows_tag_id'))

    op.drop_table('tag_follows')
    op.drop_table('markers')
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lists_account_id'))

    op.drop_table('lists')
