"""scheduled statuses

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scheduled_statuses',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('application_id', sa.BigInteger(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_scheduled_statuses_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['application_id'], ['oauth_applications.id'], name=op.f('fk_scheduled_statuses_application_id_oauth_applications'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scheduled_statuses'))
    )
    with op.batch_alter_table('scheduled_statuses', schema=None) as batch_op:
        batch_op.create_index('ix_scheduled_statuses_account_id_scheduled_at', ['account_id', 'scheduled_at'], unique=False)

    op.create_table('scheduled_status_media',
    sa.Column('media_attachment_id', sa.BigInteger(), nullable=False),
    sa.Column('scheduled_status_id', sa.BigInteger(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['media_attachment_id'], ['media_attachments.id'], name=op.f('fk_scheduled_status_media_media_attachment_id_media_attachments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['scheduled_status_id'], ['scheduled_statuses.id'], name=op.f('fk_scheduled_status_media_scheduled_status_id_scheduled_statuses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('media_attachment_id', name=op.f('pk_scheduled_status_media'))
    )
    with op.batch_alter_table('scheduled_status_media', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scheduled_status_media_scheduled_status_id'), ['scheduled_status_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('scheduled_status_media', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scheduled_status_media_scheduled_status_id'))

    op.drop_table('scheduled_status_media')
    with op.batch_alter_table('scheduled_statuses', schema=None) as batch_op:
        batch_op.drop_index('ix_scheduled_statuses_account_id_scheduled_at')

    op.drop_table('scheduled_statuses')
