"""portfolios: works, tag vocabularies, projects, pins; AI opt-out and provenance columns

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('portfolio_tags',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('suggested', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portfolio_tags')),
    sa.UniqueConstraint('kind', 'key', name=op.f('uq_portfolio_tags_kind_key'))
    )
    with op.batch_alter_table('portfolio_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portfolio_tags_key'), ['key'], unique=False)

    op.create_table('portfolio_tag_aliases',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('tag_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tag_id'], ['portfolio_tags.id'], name=op.f('fk_portfolio_tag_aliases_tag_id_portfolio_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('kind', 'key', name=op.f('pk_portfolio_tag_aliases'))
    )
    with op.batch_alter_table('portfolio_tag_aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portfolio_tag_aliases_tag_id'), ['tag_id'], unique=False)

    op.create_table('projects',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('cover_status_id', sa.BigInteger(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_projects_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['cover_status_id'], ['statuses.id'], name=op.f('fk_projects_cover_status_id_statuses'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects'))
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.create_index('ix_projects_account', ['account_id', 'position'], unique=False)

    op.create_table('status_pins',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('status_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_status_pins_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['status_id'], ['statuses.id'], name=op.f('fk_status_pins_status_id_statuses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_pins')),
    sa.UniqueConstraint('account_id', 'status_id', name=op.f('uq_status_pins_account_id_status_id'))
    )
    with op.batch_alter_table('status_pins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_status_pins_status_id'), ['status_id'], unique=False)

    op.create_table('works',
    sa.Column('status_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('local', sa.Boolean(), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=True),
    sa.Column('dimensions', sa.String(length=255), nullable=False),
    sa.Column('ai_generated', sa.Boolean(), nullable=False),
    sa.Column('listed', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_works_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['status_id'], ['statuses.id'], name=op.f('fk_works_status_id_statuses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('status_id', name=op.f('pk_works'))
    )
    with op.batch_alter_table('works', schema=None) as batch_op:
        batch_op.create_index('ix_works_account', ['account_id', 'status_id'], unique=False)
        batch_op.create_index('ix_works_listed', ['listed', 'status_id'], unique=False)

    op.create_table('project_works',
    sa.Column('project_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('status_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_works_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['status_id'], ['statuses.id'], name=op.f('fk_project_works_status_id_statuses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'status_id', name=op.f('pk_project_works'))
    )
    with op.batch_alter_table('project_works', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_works_status_id'), ['status_id'], unique=False)

    op.create_table('work_tags',
    sa.Column('status_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('tag_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('listed', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['status_id'], ['works.status_id'], name=op.f('fk_work_tags_status_id_works'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['portfolio_tags.id'], name=op.f('fk_work_tags_tag_id_portfolio_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('status_id', 'tag_id', name=op.f('pk_work_tags'))
    )
    with op.batch_alter_table('work_tags', schema=None) as batch_op:
        batch_op.create_index('ix_work_tags_browse', ['tag_id', 'listed', 'status_id'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data_mining', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('robots', sa.String(length=255), nullable=True))

    with op.batch_alter_table('media_attachments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ai_provenance', sa.String(length=255), nullable=True))

    with op.batch_alter_table('statuses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('robots', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('data_mining', sa.String(length=128), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('statuses', schema=None) as batch_op:
        batch_op.drop_column('data_mining')
        batch_op.drop_column('robots')

    with op.batch_alter_table('media_attachments', schema=None) as batch_op:
        batch_op.drop_column('ai_provenance')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('robots')
        batch_op.drop_column('data_mining')

    with op.batch_alter_table('work_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_work_tags_browse')

    op.drop_table('work_tags')
    with op.batch_alter_table('project_works', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_works_status_id'))

    op.drop_table('project_works')
    with op.batch_alter_table('works', schema=None) as batch_op:
        batch_op.drop_index('ix_works_listed')
        batch_op.drop_index('ix_works_account')

    op.drop_table('works')
    with op.batch_alter_table('status_pins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_status_pins_status_id'))

    op.drop_table('status_pins')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_index('ix_projects_account')

    op.drop_table('projects')
    with op.batch_alter_table('portfolio_tag_aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portfolio_tag_aliases_tag_id'))

    op.drop_table('portfolio_tag_aliases')
    with op.batch_alter_table('portfolio_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portfolio_tags_key'))

    op.drop_table('portfolio_tags')
