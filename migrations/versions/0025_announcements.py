"""announcements: admins' notices, who read them and the emoji reactions to them

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('announcements',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('published', sa.Boolean(), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('all_day', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_announcements'))
    )
    op.create_table('announcement_reactions',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('announcement_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_announcement_reactions_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['announcement_id'], ['announcements.id'], name=op.f('fk_announcement_reactions_announcement_id_announcements'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_announcement_reactions')),
    sa.UniqueConstraint('announcement_id', 'account_id', 'name', name=op.f('uq_announcement_reactions_announcement_id_account_id_name'))
    )
    with op.batch_alter_table('announcement_reactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_announcement_reactions_account_id'), ['account_id'], unique=False)

    op.create_table('announcement_reads',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('announcement_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_announcement_reads_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['announcement_id'], ['announcements.id'], name=op.f('fk_announcement_reads_announcement_id_announcements'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_announcement_reads')),
    sa.UniqueConstraint('announcement_id', 'account_id', name=op.f('uq_announcement_reads_announcement_id_account_id'))
    )
    with op.batch_alter_table('announcement_reads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_announcement_reads_account_id'), ['account_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('announcement_reads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_announcement_reads_account_id'))

    op.drop_table('announcement_reads')
    with op.batch_alter_table('announcement_reactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_announcement_reactions_account_id'))

    op.drop_table('announcement_reactions')
    op.drop_table('announcements')
