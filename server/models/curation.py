"""What an account chooses to show on its profile or keep away from itself, beyond
follows, blocks and mutes: featured hashtags, endorsed accounts, dismissed follow
suggestions and blocked domains."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base


class FeaturedTag(Base):
    """A hashtag ``account_id`` features on its profile (Mastodon's ``FeaturedTag``)."""

    __tablename__ = "featured_tags"
    __table_args__ = (UniqueConstraint("account_id", "tag_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Endorsement(Base):
    """``account_id`` endorses (features on its profile) ``target_account_id``, an account
    it follows (Mastodon's ``AccountPin``). It counts only while the follow lasts."""

    __tablename__ = "endorsements"
    __table_args__ = (UniqueConstraint("account_id", "target_account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    target_account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SuggestionDismissal(Base):
    """``account_id`` asked not to be suggested ``target_account_id`` again (Mastodon's
    ``FollowRecommendationMute``)."""

    __tablename__ = "suggestion_dismissals"
    __table_args__ = (UniqueConstraint("account_id", "target_account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    target_account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccountDomainBlock(Base):
    """``account_id`` blocks a whole domain (Mastodon's ``AccountDomainBlock``): that
    domain's accounts are hidden from it as blocked accounts are, and follows between it
    and them end. Private to the account; not federated. ``domain``: lower-case, as
    ``Account.domain`` stores it."""

    __tablename__ = "account_domain_blocks"
    __table_args__ = (UniqueConstraint("account_id", "domain"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
