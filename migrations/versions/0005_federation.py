"""federation

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('domain_blocks',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('reject_media', sa.Boolean(), nullable=False),
    sa.Column('public_comment', sa.Text(), nullable=False),
    sa.Column('private_comment', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_blocks')),
    sa.UniqueConstraint('domain', name=op.f('uq_domain_blocks_domain'))
    )
    op.create_table('instances',
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('first_failure_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('domain', name=op.f('pk_instances'))
    )
    op.create_table('activities',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('uri', sa.String(length=2048), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('object_uri', sa.String(length=2048), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_activities_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activities')),
    sa.UniqueConstraint('uri', name=op.f('uq_activities_uri'))
    )
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activities_account_id'), ['account_id'], unique=False)

    op.create_table('inbox_items',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('activity_uri', sa.String(length=2048), nullable=False),
    sa.Column('activity_type', sa.String(length=64), nullable=False),
    sa.Column('actor_uri', sa.String(length=2048), nullable=False),
    sa.Column('signer_uri', sa.String(length=2048), nullable=False),
    sa.Column('forwarded', sa.Boolean(), nullable=False),
    sa.Column('recipient_id', sa.BigInteger(), nullable=True),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['recipient_id'], ['accounts.id'], name=op.f('fk_inbox_items_recipient_id_accounts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_items')),
    sa.UniqueConstraint('activity_uri', name=op.f('uq_inbox_items_activity_uri'))
    )
    op.create_table('reports',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('uri', sa.String(length=2048), nullable=True),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('target_account_id', sa.BigInteger(), nullable=False),
    sa.Column('status_ids', sa.JSON(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('forwarded', sa.Boolean(), nullable=False),
    sa.Column('action_taken_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_reports_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_account_id'], ['accounts.id'], name=op.f('fk_reports_target_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
    sa.UniqueConstraint('uri', name=op.f('uq_reports_uri'))
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reports_target_account_id'), ['target_account_id'], unique=False)

    op.create_table('tombstones',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('uri', sa.String(length=2048), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_tombstones_account_id_accounts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tombstones')),
    sa.UniqueConstraint('uri', name=op.f('uq_tombstones_uri'))
    )
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('activity_id', sa.BigInteger(), nullable=False),
    sa.Column('inbox_url', sa.String(length=2048), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_deliveries_activity_id_activities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('activity_id', 'inbox_url', name=op.f('uq_deliveries_activity_id_inbox_url'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_domain'), ['domain'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('moved_to_account_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('also_known_as', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.create_foreign_key(batch_op.f('fk_accounts_moved_to_account_id_accounts'), 'accounts', ['moved_to_account_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('statuses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('in_reply_to_uri', sa.String(length=2048), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('statuses', schema=None) as batch_op:
        batch_op.drop_column('in_reply_to_uri')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_accounts_moved_to_account_id_accounts'), type_='foreignkey')
        batch_op.drop_column('also_known_as')
        batch_op.drop_column('moved_to_account_id')

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_domain'))

    op.drop_table('deliveries')
    op.drop_table('tombstones')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reports_target_account_id'))

    op.drop_table('reports')
    op.drop_table('inbox_items')
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_activities_account_id'))

    op.drop_table('activities')
    op.drop_table('instances')
    op.drop_table('domain_blocks')
