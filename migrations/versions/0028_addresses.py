"""addresses: where logins were used from, and IP blocks

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ip_blocks',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('first_key', sa.String(length=32), nullable=False),
    sa.Column('last_key', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=32), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ip_blocks')),
    sa.UniqueConstraint('ip', name=op.f('uq_ip_blocks_ip'))
    )
    with op.batch_alter_table('ip_blocks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ip_blocks_first_key'), ['first_key'], unique=False)

    op.create_table('user_ips',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('ip_key', sa.String(length=32), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_ips_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_ips')),
    sa.UniqueConstraint('user_id', 'ip_key', name=op.f('uq_user_ips_user_id_ip_key'))
    )
    with op.batch_alter_table('user_ips', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_ips_ip_key'), ['ip_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_user_ips_used_at'), ['used_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('user_ips', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_ips_used_at'))
        batch_op.drop_index(batch_op.f('ix_user_ips_ip_key'))

    op.drop_table('user_ips')
    with op.batch_alter_table('ip_blocks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ip_blocks_first_key'))

    op.drop_table('ip_blocks')
