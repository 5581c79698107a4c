"""The ``web_push`` job: one notification to one Web Push subscription, encrypted and
VAPID-signed (``server.services.web_push``), POSTed through the SSRF-safe delivery client.

The job's ref is ``<notification id>:<subscription id>``. Nothing is sent when either is
gone, the subscription's token is revoked (the subscription is then deleted), the alert is
off or the policy refuses the sender. The push service's answer decides the rest: 2xx
done; 404 or 410 (the subscription expired) deletes the subscription; 429 and 5xx raise,
so the queue retries with backoff; any other 4xx drops this delivery.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.http import FetchError, ForbiddenAddress, ForbiddenURL
from server.models import Account, Notification, OAuthToken, PushSubscription, Status, User
from server.queue.kinds import job_kind
from server.queue.runner import JobContext
from server.services.filters import plain_text
from server.services.web_push import (
    MAX_PAYLOAD_BYTES,
    WEB_PUSH_JOB,
    open_token,
    policy_allows,
    push_request,
)
from server.settings import Settings
from server.storage import Storage
from server.urls import Urls

log = logging.getLogger(__name__)

BODY_CHARACTERS = 140
# Mastodon's notification_mailer / web push titles (en).
TITLES = {
    "mention": "You were mentioned by {name}",
    "status": "{name} just posted",
    "reblog": "{name} boosted your post",
    "follow": "{name} is now following you",
    "follow_request": "New follow request: {name}",
    "favourite": "{name} favorited your post",
    "poll": "A poll has ended",
    "update": "{name} edited a post",
    "admin.sign_up": "{name} signed up",
    "admin.report": "New report from {name}",
}


class PushServiceBusy(Exception):
    """429 or 5xx from the push service: try again later."""


def _truncate(text: str, limit: int = BODY_CHARACTERS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


async def build_payload(session: AsyncSession, settings: Settings, storage: Storage,
                        subscription: PushSubscription, notification: Notification) -> dict[str, Any]:
    """Mastodon's ``Web::NotificationSerializer``: what the app's service worker shows."""
    sender = await session.get(Account, notification.from_account_id)
    user = await session.scalar(select(User).where(User.account_id == notification.account_id))
    name = (sender.display_name or sender.username) if sender is not None else ""
    body = ""
    if notification.status_id is not None:
        status = await session.get(Status, notification.status_id)
        if status is not None:
            body = status.spoiler_text or plain_text(status.content)
    elif sender is not None and notification.type in ("follow", "follow_request", "admin.sign_up"):
        body = plain_text(sender.note or "")
    return {
        "access_token": open_token(settings, subscription.access_token),
        "preferred_locale": user.locale if user is not None else "en",
        "notification_id": str(notification.id),
        "notification_type": notification.type,
        "icon": Urls(settings).avatar_of(sender, storage) if sender is not None else "",
        "title": TITLES.get(notification.type, "{name}").format(name=name),
        "body": _truncate(body),
    }


def _encode(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    while len(data) > MAX_PAYLOAD_BYTES and payload["body"]:  # room for one record
        payload = {**payload, "body": _truncate(payload["body"], len(payload["body"]) // 2)}
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return data


async def send(session: AsyncSession, settings: Settings, storage: Storage,
               client: httpx.AsyncClient, notification_id: int, subscription_id: int) -> str:
    """Push one notification to one subscription; what happened (for logs and tests)."""
    subscription = await session.get(PushSubscription, subscription_id)
    notification = await session.get(Notification, notification_id)
    if subscription is None or notification is None or notification.filtered:
        return "gone"
    token = await session.get(OAuthToken, subscription.token_id)
    if token is None or token.revoked_at is not None:
        await session.execute(delete(PushSubscription).where(PushSubscription.id == subscription.id))
        await session.commit()
        return "revoked"
    if notification.type not in subscription.alert_names():
        return "alert off"
    if not await policy_allows(session, subscription, notification):
        return "policy"
    payload = await build_payload(session, settings, storage, subscription, notification)
    urgency = "high" if notification.type in ("mention", "follow_request") else "normal"
    request = push_request(settings, subscription, _encode(payload), urgency=urgency)
    endpoint = subscription.endpoint
    await session.rollback()  # hold no transaction while waiting on the push service
    try:
        response = await client.post(endpoint, content=request.body, headers=request.headers)
    except (FetchError, httpx.HTTPError) as exc:
        if isinstance(exc, ForbiddenURL | ForbiddenAddress):
            log.info("web push to %s refused: %s", endpoint, exc)
            return "refused"
        raise PushServiceBusy(f"{endpoint}: {exc}") from exc
    status = response.status_code
    if 200 <= status < 300:
        return "sent"
    if status in (404, 410):
        await session.execute(delete(PushSubscription).where(PushSubscription.id == subscription_id))
        await session.commit()
        return "expired"
    if status == 429 or status >= 500:
        raise PushServiceBusy(f"{endpoint} answered {status}")
    log.info("web push to %s dropped: the push service answered %s", endpoint, status)
    return "dropped"


@job_kind(WEB_PUSH_JOB, queue="federation", max_attempts=5, time_limit=timedelta(minutes=1),
          retry_base=timedelta(seconds=30))
async def web_push(ctx: JobContext) -> None:
    from federation.context import federation_context  # the context imports the actor code

    notification_id, _, subscription_id = ctx.job.ref.partition(":")
    context = federation_context(ctx.settings, ctx.db)
    await send(ctx.session, ctx.settings, context.storage, context.delivery_client,
               int(notification_id), int(subscription_id))
