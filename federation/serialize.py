"""Database models → ActivityStreams JSON. Easel's own terms travel in an inline context.

Documents reference only the ActivityStreams and security context URLs; everything else
is defined inline, so no reader ever has to fetch a context from us or anyone else.
"""

from __future__ import annotations

from typing import Any

from federation.content_types import AS2_CONTEXT, SECURITY_CONTEXT
from server.models import Account
from server.urls import Urls

EASEL_NS = "https://easel.social/ns#"

INLINE_CONTEXT: dict[str, Any] = {
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "toot": "http://joinmastodon.org/ns#",
    "featured": {"@id": "toot:featured", "@type": "@id"},
    "discoverable": "toot:discoverable",
    "indexable": "toot:indexable",
    "easel": EASEL_NS,
}

ACTOR_CONTEXT: list[Any] = [AS2_CONTEXT, SECURITY_CONTEXT, INLINE_CONTEXT]


def account_to_actor(account: Account, urls: Urls) -> dict[str, Any]:
    """A local account as its actor document (Person, or Application for the instance)."""
    actor: dict[str, Any] = {
        "@context": ACTOR_CONTEXT,
        "id": account.uri,
        "type": account.actor_type,
        "preferredUsername": account.username,
        "name": account.display_name or account.username,
        "summary": account.note,
        "url": account.url,
        "inbox": account.inbox_url,
        "outbox": account.outbox_url,
        "manuallyApprovesFollowers": account.locked,
        "discoverable": account.discoverable,
        "indexable": account.indexable,
        "published": account.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endpoints": {"sharedInbox": account.shared_inbox_url},
        "icon": {"type": "Image", "mediaType": "image/png", "url": urls.default_avatar},
        "publicKey": {
            "id": account.public_key_id,
            "owner": account.uri,
            "publicKeyPem": account.public_key_pem,
        },
    }
    for key, value in (
        ("followers", account.followers_url),
        ("following", account.following_url),
        ("featured", account.featured_url),
    ):
        if value:
            actor[key] = value
    return actor
