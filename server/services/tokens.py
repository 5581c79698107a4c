"""How secrets presented later (access and refresh tokens, authorization codes) are stored:
only as SHA-256 digests, so a copy of the database holds no working token."""

from __future__ import annotations

import hashlib


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
