"""grouped notifications and notification policies

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('filtered', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('group_key', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_notifications_account_group', ['account_id', 'group_key'], unique=False)

    op.create_table('notification_policies',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('for_not_following', sa.String(length=16), nullable=False),
    sa.Column('for_not_followers', sa.String(length=16), nullable=False),
    sa.Column('for_new_accounts', sa.String(length=16), nullable=False),
    sa.Column('for_private_mentions', sa.String(length=16), nullable=False),
    sa.Column('for_limited_accounts', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_notification_policies_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_policies')),
    sa.UniqueConstraint('account_id', name=op.f('uq_notification_policies_account_id'))
    )
    op.create_table('notification_requests',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('from_account_id', sa.BigInteger(), nullable=False),
    sa.Column('last_status_id', sa.BigInteger(), nullable=True),
    sa.Column('notifications_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_notification_requests_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['from_account_id'], ['accounts.id'], name=op.f('fk_notification_requests_from_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['last_status_id'], ['statuses.id'], name=op.f('fk_notification_requests_last_status_id_statuses'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_requests')),
    sa.UniqueConstraint('account_id', 'from_account_id', name=op.f('uq_notification_requests_account_id_from_account_id'))
    )
    with op.batch_alter_table('notification_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_requests_from_account_id'), ['from_account_id'], unique=False)

    op.create_table('notification_permissions',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('from_account_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_notification_permissions_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['from_account_id'], ['accounts.id'], name=op.f('fk_notification_permissions_from_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_permissions')),
    sa.UniqueConstraint('account_id', 'from_account_id', name=op.f('uq_notification_permissions_account_id_from_account_id'))
    )
    with op.batch_alter_table('notification_permissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_permissions_from_account_id'), ['from_account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notification_permissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_permissions_from_account_id'))
    op.drop_table('notification_permissions')
    with op.batch_alter_table('notification_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_requests_from_account_id'))
    op.drop_table('notification_requests')
    op.drop_table('notification_policies')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_account_group')
        batch_op.drop_column('group_key')
        batch_op.drop_column('filtered')
