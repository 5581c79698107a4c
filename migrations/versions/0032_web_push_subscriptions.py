"""web_push_subscriptions: Mastodon's Web Push API, one subscription per access token

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('web_push_subscriptions',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('token_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('endpoint', sa.Text(), nullable=False),
    sa.Column('key_p256dh', sa.String(length=128), nullable=False),
    sa.Column('key_auth', sa.String(length=64), nullable=False),
    sa.Column('standard', sa.Boolean(), nullable=False),
    sa.Column('alerts', sa.String(length=512), nullable=False),
    sa.Column('policy', sa.String(length=16), nullable=False),
    sa.Column('access_token', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_web_push_subscriptions_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['token_id'], ['oauth_tokens.id'], name=op.f('fk_web_push_subscriptions_token_id_oauth_tokens'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_push_subscriptions')),
    sa.UniqueConstraint('token_id', name=op.f('uq_web_push_subscriptions_token_id'))
    )
    with op.batch_alter_table('web_push_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_push_subscriptions_account_id'), ['account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('web_push_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_push_subscriptions_account_id'))

    op.drop_table('web_push_subscriptions')
