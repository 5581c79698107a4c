"""Web Push subscriptions (Mastodon's ``Web::PushSubscription``): one per access token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.ids import new_id, utcnow
from server.models.base import Base

PUSH_ALERTS = ("mention", "status", "reblog", "follow", "follow_request", "favourite", "poll",
               "update", "admin.sign_up", "admin.report")
PUSH_POLICIES = ("all", "followed", "follower", "none")


class PushSubscription(Base):
    """Where the push service of the app holding ``token_id`` takes notifications for
    ``account_id``: ``endpoint``, the browser's/app's ECDH key ``key_p256dh`` and auth
    secret ``key_auth`` (base64url, unpadded). ``standard``: RFC 8291 ``aes128gcm``, else
    the legacy ``aesgcm``. ``alerts``: the enabled alert names, space-separated.
    ``access_token``: the token itself, sealed with a key derived from the instance secret
    (the payload carries it, as Mastodon's does; tokens are otherwise kept as digests)."""

    __tablename__ = "web_push_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True, default=new_id)
    token_id: Mapped[int] = mapped_column(ForeignKey("oauth_tokens.id", ondelete="CASCADE"),
                                          unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"),
                                            index=True)
    endpoint: Mapped[str] = mapped_column(Text)
    key_p256dh: Mapped[str] = mapped_column(String(128))
    key_auth: Mapped[str] = mapped_column(String(64))
    standard: Mapped[bool] = mapped_column(Boolean, default=False)
    alerts: Mapped[str] = mapped_column(String(512), default="")
    policy: Mapped[str] = mapped_column(String(16), default="all")
    access_token: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def alert_names(self) -> set[str]:
        return set(self.alerts.split())
