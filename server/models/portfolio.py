"""Portfolios: the metadata that makes a post a work, the tag vocabularies, projects, pins.

A *work* is a status with images. Its portfolio data (title, year, dimensions, description)
is a ``Work`` row keyed by the status; its tags are ``WorkTag`` rows pointing at terms of
five open vocabularies (``PortfolioTag``: fields, mediums, project types, categories,
software). A term is stored once per kind under its normalised key (``"digital painting"``,
``"Digital-Painting"`` and ``#DigitalPainting`` are one term); aliases map other spellings
onto it. Terms the instance suggests are ``suggested`` and ordered by ``position``.

Browsing by tags must be fast over hundreds of thousands of works, so whether a work may be
browsed (``listed``: public, published, not labelled AI-generated) is copied onto its tag
rows and kept in step by the portfolio service.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base

# The vocabularies, in the order pages and documents list them.
TAG_KINDS = ("field", "medium", "project_type", "category", "software")


class PortfolioTag(Base):
    """One term of one vocabulary."""

    __tablename__ = "portfolio_tags"
    __table_args__ = (UniqueConstraint("kind", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    # The normalised form every spelling is looked up by.
    key: Mapped[str] = mapped_column(String(255), index=True)
    # How it is shown: the curated spelling, or the first one seen.
    name: Mapped[str] = mapped_column(String(255))
    # On the instance's suggestion list (admin-curated), in position order.
    suggested: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PortfolioTagAlias(Base):
    """Another spelling of a term (normalised), e.g. ``ps`` → Photoshop."""

    __tablename__ = "portfolio_tag_aliases"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    tag_id: Mapped[int] = mapped_column(
        ForeignKey("portfolio_tags.id", ondelete="CASCADE"), index=True)


class Work(Base):
    """The portfolio data of a status with images (local or remote)."""

    __tablename__ = "works"
    __table_args__ = (
        Index("ix_works_account", "account_id", "status_id"),
        Index("ix_works_listed", "listed", "status_id"),
    )

    status_id: Mapped[int] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    local: Mapped[bool] = mapped_column(Boolean, default=True)
    title: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    year: Mapped[int | None] = mapped_column(Integer, default=None)
    dimensions: Mapped[str] = mapped_column(String(255), default="")
    # Some image was screened as generative-AI output (EASEL_AI_UPLOADS=label) or the
    # remote server said so: shown with a label, never browsable.
    ai_generated: Mapped[bool] = mapped_column(Boolean, default=False)
    # Browsable: public, published, not AI-generated. Copied onto work_tags.
    listed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WorkTag(Base):
    __tablename__ = "work_tags"
    __table_args__ = (Index("ix_work_tags_browse", "tag_id", "listed", "status_id"),)

    status_id: Mapped[int] = mapped_column(
        ForeignKey("works.status_id", ondelete="CASCADE"), primary_key=True,
        autoincrement=False)
    tag_id: Mapped[int] = mapped_column(
        ForeignKey("portfolio_tags.id", ondelete="CASCADE"), primary_key=True,
        autoincrement=False)
    # Order within the work's list of that kind.
    position: Mapped[int] = mapped_column(Integer, default=0)
    listed: Mapped[bool] = mapped_column(Boolean, default=False)


class Project(Base):
    """An artist's ordered group of works, with a cover."""

    __tablename__ = "projects"
    __table_args__ = (Index("ix_projects_account", "account_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    # The work whose first image is the cover; None: the project's first work.
    cover_status_id: Mapped[int | None] = mapped_column(
        ForeignKey("statuses.id", ondelete="SET NULL"), default=None)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProjectWork(Base):
    __tablename__ = "project_works"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    status_id: Mapped[int] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), primary_key=True, autoincrement=False,
        index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class StatusPin(Base):
    """A pinned (featured) status: shown first on the profile, ActivityPub ``featured``."""

    __tablename__ = "status_pins"
    __table_args__ = (UniqueConstraint("account_id", "status_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    status_id: Mapped[int] = mapped_column(
        ForeignKey("statuses.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
