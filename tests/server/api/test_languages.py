"""Languages through the client API, as Mastodon clients send them: every language Mastodon
offers is taken and answered in Mastodon's form; an unknown language falls back to the
poster's default (or none) instead of failing the post; only what is not a language tag at
all is a 422."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.models import Status, User


async def post(api: httpx.AsyncClient, **data: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/statuses", data=data)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def set_default_language(db: Database, user: User, language: str | None) -> None:
    async with db.session() as session:
        await session.execute(update(User).where(User.id == user.id).values(default_language=language))
        await session.commit()


async def default_language(db: Database, user: User) -> str | None:
    async with db.session() as session:
        return await session.scalar(select(User.default_language).where(User.id == user.id))


async def status_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Status)) or 0)


@pytest.mark.parametrize(("sent", "answered"), [
    ("ast", "ast"), ("ckb", "ckb"), ("kab", "kab"), ("tok", "tok"), ("zgh", "zgh"),
    ("zh-tw", "zh-TW"), ("zh-HK", "zh-HK"), ("yue", "zh-YUE"), ("EN", "en"),
    ("pt-BR", "pt"), ("en_GB", "en"),
])
async def test_a_post_takes_every_language_mastodon_offers(
    alice_api: httpx.AsyncClient, sent: str, answered: str
) -> None:
    status = await post(alice_api, status="hello", language=sent)
    assert status["language"] == answered
    fetched = (await alice_api.get(f"/api/v1/statuses/{status['id']}")).json()
    assert fetched["language"] == answered


async def test_an_unknown_language_falls_back_to_the_default_then_to_none(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    # Mastodon does not list Filipino: the post is made, in the poster's default language.
    await set_default_language(db, alice, "de")
    assert (await post(alice_api, status="kumusta", language="fil"))["language"] == "de"
    assert (await post(alice_api, status="hi", language="xx-YZ"))["language"] == "de"
    await set_default_language(db, alice, None)
    assert (await post(alice_api, status="kumusta", language="fil"))["language"] is None


@pytest.mark.parametrize("sent", ["12", "<script>", "x" * 40, "english"])
async def test_what_is_not_a_language_is_a_422_and_writes_nothing(
    alice_api: httpx.AsyncClient, db: Database, sent: str
) -> None:
    before = await status_count(db)
    response = await alice_api.post("/api/v1/statuses", data={"status": "hi", "language": sent})
    assert response.status_code == 422
    assert response.json() == {"error": "Validation failed: Language is not a valid language code"}
    assert await status_count(db) == before


async def test_an_edit_normalises_and_keeps_the_language_for_an_unknown_one(
    alice_api: httpx.AsyncClient
) -> None:
    status = await post(alice_api, status="first", language="ast")
    path = f"/api/v1/statuses/{status['id']}"
    edited = await alice_api.put(path, data={"status": "second", "language": "zh-tw"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["language"] == "zh-TW"
    # As Mastodon: an unknown language keeps the status's own.
    edited = await alice_api.put(path, data={"status": "third", "language": "fil"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["language"] == "zh-TW"
    refused = await alice_api.put(path, data={"status": "fourth", "language": "<b>"})
    assert refused.status_code == 422
    assert refused.json() == {"error": "Validation failed: Language is not a valid language code"}


async def test_the_default_language_takes_mastodons_languages(
    alice_api: httpx.AsyncClient, db: Database, alice: User
) -> None:
    path = "/api/v1/accounts/update_credentials"
    for sent, stored in (("ast", "ast"), ("zh-tw", "zh-TW"), ("pt-BR", "pt"), ("TOK", "tok")):
        response = await alice_api.patch(path, data={"source[language]": sent})
        assert response.status_code == 200, response.text
        assert response.json()["source"]["language"] == stored
        assert await default_language(db, alice) == stored
    assert (await post(alice_api, status="toki"))["language"] == "tok"  # the default is used

    # An unknown language leaves the default as it was; the rest of the update is made.
    response = await alice_api.patch(path, data={"source[language]": "fil", "display_name": "Al"})
    assert response.status_code == 200, response.text
    assert response.json()["source"]["language"] == "tok"
    assert response.json()["display_name"] == "Al"

    refused = await alice_api.patch(path, data={"source[language]": "<script>"})
    assert refused.status_code == 422
    assert refused.json() == {"error": "Validation failed: Default language is not included in the list"}
    assert await default_language(db, alice) == "tok"
