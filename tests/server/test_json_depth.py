"""``too_deep`` counts opening brackets first and measures only bodies with more than the
limit: its answer must be the full measure's on every body."""

from __future__ import annotations

import json
import random

from server.json_depth import MAX_JSON_DEPTH, json_depth, too_deep


def test_too_deep_agrees_with_the_depth_on_every_kind_of_body() -> None:
    bodies: list[bytes | str] = [
        b"", b"{}", b'"[[[["', "[" * MAX_JSON_DEPTH, "[" * (MAX_JSON_DEPTH + 1),
        "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "[" * MAX_JSON_DEPTH,  # many, shallow
        json.dumps({"a": "[" * 500}),  # brackets only in a string
        json.dumps({"a": "[{" * 100, "b": [[[1]]]}).encode(),
        '"\\"' + "[" * 100 + '"',  # an escaped quote does not end the string
        ("[" * 70 + "]" * 70).encode(),
    ]
    generator = random.Random(4)
    for _ in range(200):
        bodies.append("".join(generator.choice('[]{}"\\a') for _ in range(generator.randint(0, 300))))
    for body in bodies:
        for limit in (0, 3, MAX_JSON_DEPTH):
            assert too_deep(body, limit) == (json_depth(body) > limit), (body, limit)


def test_a_body_with_many_brackets_in_strings_is_measured_not_refused() -> None:
    body = json.dumps({"content": "[" * (MAX_JSON_DEPTH * 4), "tag": [{"name": "#ink"}]})
    assert not too_deep(body)
    assert not too_deep(body.encode())
    assert too_deep("[" * (MAX_JSON_DEPTH + 1))
