"""preview_cards: link preview cards, and the card each status shows

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('preview_cards',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('author_name', sa.String(length=255), nullable=False),
    sa.Column('author_url', sa.String(length=2048), nullable=False),
    sa.Column('provider_name', sa.String(length=255), nullable=False),
    sa.Column('provider_url', sa.String(length=2048), nullable=False),
    sa.Column('image_remote_url', sa.String(length=2048), nullable=True),
    sa.Column('image_key', sa.String(length=255), nullable=True),
    sa.Column('image_description', sa.Text(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('blurhash', sa.String(length=64), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('failed', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_preview_cards')),
    sa.UniqueConstraint('url', name=op.f('uq_preview_cards_url'))
    )
    op.create_table('status_preview_cards',
    sa.Column('status_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('preview_card_id', sa.BigInteger(), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.ForeignKeyConstraint(['preview_card_id'], ['preview_cards.id'], name=op.f('fk_status_preview_cards_preview_card_id_preview_cards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['status_id'], ['statuses.id'], name=op.f('fk_status_preview_cards_status_id_statuses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('status_id', name=op.f('pk_status_preview_cards'))
    )
    with op.batch_alter_table('status_preview_cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_status_preview_cards_preview_card_id'), ['preview_card_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('status_preview_cards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_status_preview_cards_preview_card_id'))

    op.drop_table('status_preview_cards')
    op.drop_table('preview_cards')
