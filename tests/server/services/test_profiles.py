"""Profile updates: validation, all-or-nothing writes, and the image files they replace."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from server.db import Database
from server.models import Account, User
from server.services.errors import ValidationFailed
from server.services.profiles import ProfileChanges, ProfileField, update_profile, validate
from server.settings import Settings
from server.storage import LocalStorage


@pytest.fixture
def storage(settings: Settings) -> LocalStorage:
    return LocalStorage(settings.data_dir / "media", settings.base_url)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), "purple").save(out, "PNG")
    return out.getvalue()


def stored_files(storage: LocalStorage) -> list[str]:
    return [str(p) for p in storage.public_root.rglob("*") if p.is_file()] \
        if storage.public_root.exists() else []


async def rows(db: Database, user: User) -> tuple[Account, User]:
    async with db.session() as session:
        account = await session.get(Account, user.account_id)
        login = await session.get(User, user.id)
        assert account is not None and login is not None
        return account, login


def test_validation_normalises_and_names_every_problem() -> None:
    changes = validate(ProfileChanges(display_name="  Al  ", privacy=" Private", language="DE",
                                      fields=[ProfileField(" a ", " b ")]))
    assert (changes.display_name, changes.privacy, changes.language) == ("Al", "private", "de")
    assert changes.fields == [ProfileField("a", "b")]
    # A URL counts 23 characters, however long it is.
    validate(ProfileChanges(note="see https://example.com/" + "x" * 600))
    with pytest.raises(ValidationFailed) as failed:
        validate(ProfileChanges(display_name="x" * 31, note="n" * 501, language="xx!",
                                fields=[ProfileField("n", "v" * 256)] * 5, avatar=b""))
    assert failed.value.message == (
        "Validation failed: Display name is too long (maximum is 30 characters), "
        "Note is too long (maximum is 500 characters), "
        "Fields is too long (maximum is 4 characters), "
        "Field value is too long (maximum is 255 characters), "
        "Default language is not included in the list, Avatar can't be blank")


async def test_a_field_keeps_its_verification_while_its_value_stays(
    db: Database, storage: LocalStorage, alice: User
) -> None:
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        account.fields = [{"name": "Site", "value": "https://a.example",
                           "verified_at": "2026-01-01T00:00:00.000Z"}]
        await session.commit()
    async with db.session() as session:
        account, _ = await update_profile(session, storage, alice.account_id, alice.id, ProfileChanges(
            fields=[ProfileField("Website", "https://a.example"), ProfileField("Shop", "https://b.example")]))
    assert account.fields == [
        {"name": "Website", "value": "https://a.example", "verified_at": "2026-01-01T00:00:00.000Z"},
        {"name": "Shop", "value": "https://b.example", "verified_at": None},
    ]


async def test_a_failed_commit_leaves_no_rows_and_no_files(
    db: Database, storage: LocalStorage, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.session() as session:
        async def broken_commit() -> None:
            raise RuntimeError("database went away")

        monkeypatch.setattr(session, "commit", broken_commit)
        with pytest.raises(RuntimeError):
            await update_profile(session, storage, alice.account_id, alice.id,
                                 ProfileChanges(display_name="New", avatar=png(), privacy="private"))
    account, login = await rows(db, alice)
    assert (account.display_name, account.avatar_key, login.default_privacy) == ("", None, "public")
    assert stored_files(storage) == []


async def test_a_bad_header_removes_the_avatar_already_stored(
    db: Database, storage: LocalStorage, alice: User
) -> None:
    async with db.session() as session:
        with pytest.raises(ValidationFailed):
            await update_profile(session, storage, alice.account_id, alice.id,
                                 ProfileChanges(avatar=png(), header=b"\x89PNG but not really"))
    assert stored_files(storage) == []
    account, _ = await rows(db, alice)
    assert account.avatar_key is None


async def test_a_new_avatar_deletes_the_old_file_after_the_commit(
    db: Database, storage: LocalStorage, alice: User
) -> None:
    keys: list[Any] = []
    for _ in range(2):
        async with db.session() as session:
            account, _ = await update_profile(session, storage, alice.account_id, alice.id,
                                              ProfileChanges(avatar=png()))
            keys.append(account.avatar_key)
    assert keys[0] != keys[1]
    assert not await storage.exists(keys[0]) and await storage.exists(keys[1])
    assert len(stored_files(storage)) == 1
