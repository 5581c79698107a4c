"""The instance's signing key, and values signed with it (login cookies, CSRF tokens).

The key comes from ``EASEL_SECRET_KEY`` or, when that is unset, from a random key created
once in ``EASEL_DATA_DIR/secret_key`` (mode 0600), so a one-command instance keeps its
logins across restarts without configuration. Several web processes on different
machines must share one key: set ``EASEL_SECRET_KEY`` there.

Signed values are ``payload.timestamp.signature`` with an HMAC-SHA256 over a *purpose*,
the payload and the time, so a value signed for one purpose (a CSRF token) is never
accepted for another (a login). This module never logs or returns the key itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
import threading
import time
from pathlib import Path

from server.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret_key"
KEY_BYTES = 32

_cache: dict[str, bytes] = {}
_lock = threading.Lock()


def _read_or_create_key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: of two processes starting at once, one creates the key and the other reads it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s is readable by other users (mode %o); it should be 0600", path, mode)
        text = path.read_text(encoding="ascii").strip()
        if len(text) < KEY_BYTES:
            raise RuntimeError(f"{path} holds no usable key; delete it to have a new one made") from None
        return text.encode("ascii")
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(KEY_BYTES) + "\n")
    return path.read_text(encoding="ascii").strip().encode("ascii")


def secret_key(settings: Settings) -> bytes:
    """The instance's signing key (read or created once per process)."""
    if settings.secret_key:
        return settings.secret_key.encode("utf-8")
    path = (settings.data_dir / KEY_FILE_NAME).resolve()
    cache_key = str(path)
    with _lock:
        key = _cache.get(cache_key)
        if key is None:
            key = _read_or_create_key_file(path)
            _cache[cache_key] = key
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signature(key: bytes, purpose: str, message: str) -> str:
    mac = hmac.new(key, f"{purpose}\x00{message}".encode(), hashlib.sha256)
    return _b64(mac.digest())


def sign(key: bytes, purpose: str, payload: str, *, now: float | None = None) -> str:
    """``payload`` (URL-safe text without dots) signed for ``purpose``, with the time."""
    if "." in payload:
        raise ValueError("signed payloads may not contain '.'")
    issued = str(int(now if now is not None else time.time()))
    message = f"{payload}.{issued}"
    return f"{message}.{_signature(key, purpose, message)}"


def unsign(key: bytes, purpose: str, value: str, *, max_age: float, now: float | None = None) -> str | None:
    """The payload of a value :func:`sign` made for ``purpose`` at most ``max_age`` s ago, or None."""
    parts = value.split(".")
    if len(parts) != 3:
        return None
    payload, issued, signature = parts
    expected = _signature(key, purpose, f"{payload}.{issued}")
    if not hmac.compare_digest(signature.encode("ascii", "replace"), expected.encode("ascii")):
        return None
    if not issued.isdigit():
        return None
    age = (now if now is not None else time.time()) - int(issued)
    if age < -60 or age > max_age:  # a minute of clock skew between processes
        return None
    return payload


def keyed_digest(key: bytes, purpose: str, value: str) -> str:
    """A keyed, purpose-bound digest of ``value`` (e.g. a CSRF token for a cookie's value)."""
    return _signature(key, purpose, value)
