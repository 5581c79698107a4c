"""OAuth scopes as Mastodon defines them: top-level, granular, and how they imply each other."""

from __future__ import annotations

READ_SCOPES = (
    "read:accounts", "read:blocks", "read:bookmarks", "read:favourites", "read:filters",
    "read:follows", "read:lists", "read:mutes", "read:notifications", "read:search",
    "read:statuses",
)
WRITE_SCOPES = (
    "write:accounts", "write:blocks", "write:bookmarks", "write:conversations",
    "write:favourites", "write:filters", "write:follows", "write:lists", "write:media",
    "write:mutes", "write:notifications", "write:reports", "write:statuses",
)
FOLLOW_SCOPES = (
    "read:blocks", "write:blocks", "read:follows", "write:follows", "read:mutes", "write:mutes",
)
ADMIN_SCOPES = (
    "admin:read", "admin:write",
    "admin:read:accounts", "admin:read:reports", "admin:read:domain_allows",
    "admin:read:domain_blocks", "admin:read:ip_blocks", "admin:read:email_domain_blocks",
    "admin:read:canonical_email_blocks",
    "admin:write:accounts", "admin:write:reports", "admin:write:domain_allows",
    "admin:write:domain_blocks", "admin:write:ip_blocks", "admin:write:email_domain_blocks",
    "admin:write:canonical_email_blocks",
)
TOP_LEVEL = ("read", "write", "follow", "push", "profile")
ALL_SCOPES = frozenset((*TOP_LEVEL, *READ_SCOPES, *WRITE_SCOPES, *ADMIN_SCOPES))


class ScopeError(ValueError):
    pass


def parse_scopes(raw: str | None, default: str = "read") -> list[str]:
    """Split a space- (or comma- or plus-) separated scope string; unknown scopes are an error."""
    text = (raw or "").replace(",", " ").replace("+", " ").strip() or default
    scopes: list[str] = []
    for scope in text.split():
        if scope not in ALL_SCOPES:
            raise ScopeError(f"unknown scope: {scope}")
        if scope not in scopes:
            scopes.append(scope)
    return scopes


def grants(granted: list[str] | set[str], required: str) -> bool:
    """Does a token with ``granted`` scopes allow an action that needs ``required``?"""
    if required in granted:
        return True
    if ":" in required:
        head, _, rest = required.partition(":")
        if head in ("read", "write") and head in granted:
            return True
        if head in ("read", "write") and required in FOLLOW_SCOPES and "follow" in granted:
            return True
        if head == "admin":
            action, _, _resource = rest.partition(":")
            return f"admin:{action}" in granted
    if required == "profile":  # verify_credentials: any read:accounts token also may
        return "read" in granted or "read:accounts" in granted
    return False


def subset(requested: list[str], allowed: list[str]) -> bool:
    """Is every requested scope within what the app registered (``read`` covers ``read:x``)?"""
    return all(grants(allowed, scope) for scope in requested)
