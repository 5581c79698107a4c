"""Timestamps out of datetime's range, at the inbox door.

``parse_activity`` runs on every POST before the signature is checked, so a ``published``
that cannot be moved to UTC (``0001-01-01T00:00:00+01:00``) must not raise: I expect an
unsigned one refused with 401 like any unsigned POST, a signed one accepted with 202 and
processed with the timestamp dropped, and nothing answered with a 500.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from server.db import Database
from server.models import InboxOutcome, Status, User
from tests.federation.inbox.conftest import (
    ALICE,
    AS2,
    PUBLIC,
    FakeActor,
    deliver,
    http,
    item_for,
    process,
)

OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("published", OUT_OF_RANGE)
async def test_an_unsigned_post_with_an_overflowing_published_is_401_not_500(
        inbox_app: Starlette, published: str) -> None:
    body = {"id": "https://a.example/x", "type": "Like", "actor": "https://a.example/u",
            "object": "https://b.example/n", "published": published}
    async with http(inbox_app) as client:
        response = await client.post("/inbox", content=json.dumps(body),
                                     headers={"Content-Type": AS2})
    assert response.status_code == 401


@pytest.mark.parametrize("published", OUT_OF_RANGE)
async def test_a_signed_create_with_an_overflowing_published_is_stored_as_of_now(
        inbox_app: Starlette, app_db: Database, alice: User, remote_carol: FakeActor,
        published: str) -> None:
    note = {"id": remote_carol.uri + "/statuses/1", "type": "Note",
            "attributedTo": remote_carol.uri, "to": [PUBLIC], "cc": [ALICE],
            "tag": [{"type": "Mention", "href": ALICE}], "content": "hi @alice",
            "published": published, "updated": published}
    create = remote_carol.activity("Create", note, published=published)
    before = datetime.now(UTC).replace(microsecond=0)
    response = await deliver(inbox_app, remote_carol, create)
    assert response.status_code == 202, response.text
    await process(inbox_app)
    item = await item_for(app_db, create["id"])
    assert item is not None
    assert item.outcome == InboxOutcome.PROCESSED, item.note
    async with app_db.session() as session:
        status = await session.scalar(select(Status).where(Status.uri == note["id"]))
    assert status is not None
    created = status.created_at.replace(tzinfo=UTC) if status.created_at.tzinfo is None \
        else status.created_at
    assert before <= created <= datetime.now(UTC)
    assert status.id >> 16 == int(created.timestamp() * 1000)
