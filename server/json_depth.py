"""How deeply a JSON document nests, measured before it is parsed.

Why it exists: Python's ``json`` parser recurses once per nesting level, and so does
everything that walks the parsed value afterwards (flattening client parameters,
reading an activity's embedded objects). A body of ten thousand ``[`` is a few kilobytes
yet ends in a ``RecursionError`` somewhere deep — at best a 400 by luck, at worst a 500 or
a worker stuck on a document nobody can process. Every JSON body Easel accepts from the
outside (client API bodies, inbox deliveries) is measured here first and refused with a
clear 400 past :data:`MAX_JSON_DEPTH`.

What it must never do: parse the document (it only counts brackets outside strings), or
count a bracket inside a string literal (escaped quotes included).
"""

from __future__ import annotations

import re
from itertools import accumulate

# Mastodon clients send at most a handful of levels (``poll[options][]``,
# ``attributes[0][value]``); ActivityPub documents a dozen at most (an Announce of a
# Create of a Note with a tag list of objects). 64 leaves generous room.
MAX_JSON_DEPTH = 64

# A JSON string literal, escapes included (possessive: linear on any input).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(body: bytes | str) -> int:
    """The deepest nesting of arrays and objects in ``body`` (0 for a scalar).

    Malformed JSON gets a number too (the parser refuses it afterwards)."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(0, max(accumulate(_STEP[b] for b in brackets)))


def too_deep(body: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` nests deeper than ``limit``."""
    # No document nests deeper than it has opening brackets (in strings or not): most
    # bodies have fewer than ``limit`` in all, and counting them is much cheaper.
    if isinstance(body, str):
        opening = body.count("[") + body.count("{")
    else:
        opening = body.count(b"[") + body.count(b"{")
    if opening <= limit:
        return False
    return json_depth(body) > limit


def depth_error(limit: int = MAX_JSON_DEPTH) -> str:
    """The message a refused body gets."""
    return f"The JSON body is nested too deeply (the limit is {limit} levels)"
