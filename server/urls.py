"""Where local things live: every id and link Easel publishes is built here.

ActivityPub ids are permanent, so these paths never change once an instance federates.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from server.settings import Settings

if TYPE_CHECKING:
    from server.models import Account
    from server.storage import Storage

INSTANCE_ACTOR_PATH = "/actor"


class Urls:
    def __init__(self, settings: Settings) -> None:
        self.base = settings.base_url
        self.domain = settings.domain

    def actor(self, username: str) -> str:
        return f"{self.base}/users/{quote(username)}"

    def profile(self, username: str) -> str:
        return f"{self.base}/@{quote(username)}"

    def inbox(self, username: str) -> str:
        return self.actor(username) + "/inbox"

    def outbox(self, username: str) -> str:
        return self.actor(username) + "/outbox"

    def followers(self, username: str) -> str:
        return self.actor(username) + "/followers"

    def following(self, username: str) -> str:
        return self.actor(username) + "/following"

    def featured(self, username: str) -> str:
        return self.actor(username) + "/collections/featured"

    def featured_tags(self, username: str) -> str:
        return self.actor(username) + "/collections/tags"

    def tagged(self, username: str, tag: str) -> str:
        """A profile's posts with a hashtag (Mastodon's ``/@name/tagged/tag``)."""
        return f"{self.profile(username)}/tagged/{quote(tag)}"

    def key_id(self, actor_uri: str) -> str:
        return actor_uri + "#main-key"

    def static(self, name: str) -> str:
        return f"{self.base}/static/{name}"

    @property
    def default_avatar(self) -> str:
        return self.static("avatar.png")

    @property
    def default_header(self) -> str:
        return self.static("header.png")

    def avatar_of(self, account: Account, storage: Storage) -> str:
        """An account's avatar as shown: our copy (uploaded, or cached from its server),
        else its server's, else the default."""
        if account.avatar_key:
            return storage.public_url(account.avatar_key)
        return account.avatar_remote_url or self.default_avatar

    @property
    def shared_inbox(self) -> str:
        return f"{self.base}/inbox"

    @property
    def instance_actor(self) -> str:
        return self.base + INSTANCE_ACTOR_PATH


_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,63}")
_HOST = re.compile(r"[a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\]")


def source_of(uri: str) -> str | None:
    """A CSP source expression that allows exactly ``uri``'s origin: ``https://host:port``
    for web URIs, ``scheme:`` for an app's custom scheme (``myapp://callback``); None for
    anything that cannot be written safely into the header (or a URN such as OAuth's oob,
    which redirects nowhere)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not _SCHEME.fullmatch(scheme) or scheme == "urn":
        return None
    if scheme not in ("http", "https"):
        return f"{scheme}:"
    try:
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None
    if not _HOST.fullmatch(host if ":" not in host else f"[{host}]"):
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")
