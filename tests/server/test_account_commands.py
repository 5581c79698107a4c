"""``easel admin account …``: each action through the command, its effect in the
database, and clear errors for an unknown account or a lifting that does not apply."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from server.cli import main
from server.db import Database
from server.models import Account, AccountWarning, Status, User
from server.services import statuses
from server.services.accounts import create_user
from server.settings import Settings
from tests.server.test_cli import environment


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in environment(settings).items():
        if name.startswith("EASEL_"):
            monkeypatch.setenv(name, value)
    assert main(["migrate"]) == 0

    async def people() -> None:
        db = Database.from_settings(settings)
        try:
            async with db.session() as session:
                bob = await create_user(session, settings, username="bob", email="bob@example.com",
                                        password="another good password")
                await create_user(session, settings, username="newcomer",
                                  email="new@example.com", password="a password long enough",
                                  approved=False)
                await statuses.create_status(session, settings, bob.account, None, text="hi")
        finally:
            await db.dispose()

    asyncio.run(people())
    return settings


def standing(settings: Settings, username: str) -> tuple[Account | None, User | None, list[str]]:
    async def read() -> tuple[Account | None, User | None, list[str]]:
        db = Database.from_settings(settings)
        try:
            async with db.session() as session:
                account = await session.scalar(select(Account).where(Account.username == username))
                user = await session.scalar(select(User).where(
                    User.account_id == (account.id if account else -1)))
                texts = list(await session.scalars(select(AccountWarning.text).where(
                    AccountWarning.target_account_id == (account.id if account else -1))))
                return account, user, texts
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_moderating_an_account_from_the_command_line(
        cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin", "account", "warn", "bob", "--text", "be kind"]) == 0
    assert main(["admin", "account", "silence", "bob"]) == 0
    account, user, texts = standing(cli_env, "bob")
    assert account is not None and account.silenced_at is not None and texts == ["be kind", ""]
    assert main(["admin", "account", "unsilence", "bob"]) == 0
    assert main(["admin", "account", "disable", "bob"]) == 0
    _, user, _ = standing(cli_env, "bob")
    assert user is not None and user.disabled
    assert main(["admin", "account", "enable", "bob"]) == 0
    assert main(["admin", "account", "suspend", "@bob"]) == 0
    capsys.readouterr()
    assert main(["admin", "account", "list", "--status", "suspended"]) == 0
    assert capsys.readouterr().out.split() == ["bob", "suspended"]
    assert main(["admin", "account", "unsuspend", "bob"]) == 0
    assert main(["admin", "account", "approve", "newcomer"]) == 0
    _, user, _ = standing(cli_env, "newcomer")
    assert user is not None and user.approved

    assert main(["admin", "account", "delete", "bob"]) == 0
    account, user, _ = standing(cli_env, "bob")
    assert account is not None and account.deleted_at is not None and user is None

    async def count_statuses() -> int:
        db = Database.from_settings(cli_env)
        try:
            async with db.session() as session:
                return len(list(await session.scalars(select(Status.id).where(
                    Status.account_id == account.id))))
        finally:
            await db.dispose()

    assert asyncio.run(count_statuses()) == 0


def test_errors_are_clear(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin", "account", "suspend", "nobody"]) == 1
    assert "no account 'nobody'" in capsys.readouterr().err
    assert main(["admin", "account", "unsuspend", "bob"]) == 1
    assert "This action is not allowed" in capsys.readouterr().err
    assert main(["admin", "account", "warn", "bob", "--report", "12345"]) == 1
    assert "Record not found" in capsys.readouterr().err
    _, _, texts = standing(cli_env, "bob")
    assert texts == []
