"""A remote note's language (its ``contentMap`` key) is never a reason to refuse it: a
language Mastodon lists is stored in Mastodon's form, another well-formed tag as sent (as
Mastodon keeps it), and anything else as no language."""

from __future__ import annotations

import httpx
import pytest

from federation.context import FederationContext
from server.db import Database
from tests.federation.fediverse import corpus_note
from tests.federation.test_notes import store


@pytest.mark.parametrize(("key", "stored"), [
    ("ast", "ast"), ("zh-tw", "zh-TW"), ("pt-BR", "pt"), ("yue", "zh-YUE"),
    ("fil", "fil"), ("gsw-ch", "gsw-CH"), ("und", None),
])
async def test_a_remote_note_keeps_its_language(
        fed: FederationContext, db: Database, client: httpx.AsyncClient, key: str,
        stored: str | None) -> None:
    note = corpus_note("minimal_create_note.json")
    del note["content"]
    note["contentMap"] = {key: "<p>hello</p>"}
    status = await store(fed, db, note)
    assert status.language == stored
    entity = (await client.get(f"/api/v1/statuses/{status.id}")).json()
    assert entity["language"] == stored and entity["content"] == "<p>hello</p>"


async def test_a_note_whose_language_is_not_a_tag_is_stored_without_one(
        fed: FederationContext, db: Database) -> None:
    note = corpus_note("minimal_create_note.json")
    note["contentMap"] = {"<script>": "hello", "english": "hello"}
    status = await store(fed, db, note)
    assert status.language is None and status.content == "hello from a very small server"
