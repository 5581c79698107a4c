from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256
from sqlalchemy import func, select

from server.db import Database
from server.models import Account, User
from server.services.accounts import create_user, find_local_account, instance_actor
from server.services.errors import ValidationFailed
from server.services.passwords import verify_password
from server.settings import Settings


async def make(db: Database, settings: Settings, **overrides: object) -> User:
    values: dict[str, object] = {
        "username": "carol", "email": "carol@example.com", "password": "long enough pw",
    }
    values.update(overrides)
    async with db.session() as session:
        return await create_user(session, settings, **values)  # type: ignore[arg-type]


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_a_user_gets_an_account_links_and_an_rsa_2048_key_pair(
    db: Database, settings: Settings
) -> None:
    user = await make(db, settings, admin=True)
    account = user.account
    assert account.uri == "https://easel.test/users/carol"
    assert account.url == "https://easel.test/@carol"
    assert account.inbox_url == "https://easel.test/users/carol/inbox"
    assert account.shared_inbox_url == "https://easel.test/inbox"
    assert account.public_key_id == "https://easel.test/users/carol#main-key"
    assert user.admin and user.approved and user.confirmed_at is not None

    private_key = serialization.load_pem_private_key(account.private_key_pem.encode(), None)
    public_key = serialization.load_pem_public_key(account.public_key_pem.encode())
    assert isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size == 2048
    signature = private_key.sign(b"hello", padding.PKCS1v15(), SHA256())
    public_key.verify(signature, b"hello", padding.PKCS1v15(), SHA256())  # type: ignore[union-attr]


async def test_passwords_are_stored_as_argon2id_hashes(db: Database, settings: Settings) -> None:
    user = await make(db, settings)
    assert user.password_hash.startswith("$argon2id$")
    assert "long enough pw" not in user.password_hash
    assert verify_password(user.password_hash, "long enough pw")
    assert not verify_password(user.password_hash, "wrong password")


async def test_emails_are_case_insensitive_and_usernames_keep_their_case(
    db: Database, settings: Settings
) -> None:
    user = await make(db, settings, username="Carol_Art", email="Carol@Example.COM")
    assert user.email == "carol@example.com"
    async with db.session() as session:
        found = await find_local_account(session, "carol_art")
    assert found is not None and found.username == "Carol_Art"


@pytest.mark.parametrize(("username", "message"), [
    ("", "Username can't be blank"),
    ("a" * 31, "Username is too long (maximum is 30 characters)"),
    ("carol!", "Username must contain only letters, numbers and underscores"),
    ("carol smith", "Username must contain only letters, numbers and underscores"),
    (".carol", "Username must contain only letters, numbers and underscores"),
    ("carol.", "Username must contain only letters, numbers and underscores"),
    ("car@ol", "Username must contain only letters, numbers and underscores"),
    ("café", "Username must contain only letters, numbers and underscores"),
    ("admin", "Username is reserved"),
])
async def test_bad_usernames_are_refused_and_nothing_is_written(
    db: Database, settings: Settings, username: str, message: str
) -> None:
    with pytest.raises(ValidationFailed) as error:
        await make(db, settings, username=username)
    assert str(error.value) == f"Validation failed: {message}"
    assert await count(db, User) == 0


async def test_mastodon_style_dots_and_dashes_inside_a_username_are_fine(
    db: Database, settings: Settings
) -> None:
    user = await make(db, settings, username="carol.draws-things_2")
    assert user.account.username == "carol.draws-things_2"


async def test_an_admin_may_use_a_reserved_name(db: Database, settings: Settings) -> None:
    user = await make(db, settings, username="admin", allow_reserved=True)
    assert user.account.username == "admin"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"email": "not-an-email"}, "Email is invalid"),
    ({"email": ""}, "Email can't be blank"),
    ({"password": "short"}, "Password is too short (minimum is 8 characters)"),
])
async def test_bad_email_or_password_is_refused(
    db: Database, settings: Settings, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationFailed) as error:
        await make(db, settings, **overrides)
    assert str(error.value) == f"Validation failed: {message}"
    assert await count(db, Account) == 0


async def test_taken_usernames_and_emails_are_refused_case_insensitively(
    db: Database, settings: Settings
) -> None:
    await make(db, settings)
    with pytest.raises(ValidationFailed, match="Username has already been taken"):
        await make(db, settings, username="CAROL", email="other@example.com")
    with pytest.raises(ValidationFailed, match="Email has already been taken"):
        await make(db, settings, username="carol2", email="CAROL@example.com")
    assert await count(db, User) == 1


async def test_the_instance_actor_is_created_once_and_is_not_a_user(
    db: Database, settings: Settings
) -> None:
    async with db.session() as session:
        first = await instance_actor(session, settings)
        second = await instance_actor(session, settings)
        assert first.id == second.id
        assert first.uri == "https://easel.test/actor"
        assert first.actor_type == "Application"
        assert first.private_key_pem
        assert await find_local_account(session, settings.domain) is None
    # Its username is the domain, so nobody can register as the domain.
    with pytest.raises(ValidationFailed):
        await make(db, settings, username=settings.domain, allow_reserved=True)
