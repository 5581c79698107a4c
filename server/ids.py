"""Snowflake-style ids: numeric, sortable by creation time, as Mastodon clients expect.

An id is the creation time in milliseconds shifted left 16 bits, plus 16 random bits, so
ids from several processes rarely collide and always sort by time. Within one process, ids
made now never repeat: each is above the one before (a burst of rows in one millisecond —
a fan-out, a bulk insert — would otherwise meet the birthday bound of 16 random bits).
Remote objects get ids from their ``published`` time, which keeps timelines in the order
the fediverse wrote them.
"""

from __future__ import annotations

import re
import secrets
import threading
from datetime import UTC, datetime

_last_id = 0
_last_id_lock = threading.Lock()


def new_id(at: datetime | None = None) -> int:
    """An id for a row made now (increasing within this process), or at ``at``."""
    moment = at or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    millis = int(moment.timestamp() * 1000)
    candidate = (millis << 16) | secrets.randbits(16)
    if at is not None:
        return candidate
    global _last_id
    with _last_id_lock:
        if candidate <= _last_id:
            candidate = _last_id + 1
        _last_id = candidate
    return candidate


def id_floor(at: datetime) -> int:
    """The smallest id a row created at ``at`` can have (for time-based pagination)."""
    return int(at.timestamp() * 1000) << 16


MAX_ID = 2**63 - 1
_ID_RE = re.compile(r"\A[0-9]{1,19}\Z")


def parse_id(raw: str | None) -> int | None:
    """An id a client sent (ASCII digits, within a 64-bit column), or None."""
    if raw is None:
        return None
    raw = raw.strip()
    if not _ID_RE.match(raw):
        return None
    value = int(raw)
    return value if value <= MAX_ID else None


def utcnow() -> datetime:
    return datetime.now(UTC)


def row_id(value: str) -> int:
    """A row id given on the command line (argparse's ``type``): a bad one is argparse's
    error, never a traceback or a value past the database's integers."""
    import argparse

    found = parse_id(value)
    if found is None:
        raise argparse.ArgumentTypeError(f"not an id: {value!r}")
    return found
