"""``easel admin appeal …``: listing the appeals of moderators' decisions, approving one
(the action undone, the warning overruled) or rejecting it (the decision stands), with
clear errors for an unknown id or moderator and an appeal decided already."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.cli import main
from server.db import Database
from server.models import Account, AccountWarning, Appeal
from server.services import appeals, moderation
from server.services.accounts import create_user, find_local_account
from server.settings import Settings
from tests.server.test_cli import environment

LONG = "I only ever posted my own paintings, and the ad was for my own exhibition " * 3


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in environment(settings).items():
        if name.startswith("EASEL_"):
            monkeypatch.setenv(name, value)
    assert main(["migrate"]) == 0
    return settings


def run(settings: Settings, work: Any) -> Any:
    async def go() -> Any:
        db = Database.from_settings(settings)
        try:
            async with db.session() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(go())


@pytest.fixture
def appealed(cli_env: Settings) -> dict[str, int]:
    """bob, silenced and then warned, appeals both; moira is a moderator."""
    async def people(session: Any) -> dict[str, int]:
        await create_user(session, cli_env, username="moira", email="moira@example.com",
                          password="the moderator's password", admin=True)
        bob = await create_user(session, cli_env, username="bob", email="bob@example.com",
                                password="another good password")
        account = await session.get(Account, bob.account_id)
        silence = await moderation.take_action(session, cli_env, moderator=None,
                                               account_id=bob.account_id, action="silence",
                                               text="Ads")
        warn = await moderation.take_action(session, cli_env, moderator=None,
                                            account_id=bob.account_id, action="none",
                                            text="Be kind")
        first = await appeals.file_appeal(session, account, silence.id, LONG + "\nsecond line")
        second = await appeals.file_appeal(session, account, warn.id, "Sorry\nit won't happen")
        return {"bob": bob.account_id, "silence": silence.id, "first": first.id,
                "second": second.id}

    return run(cli_env, people)  # type: ignore[no-any-return]


def fetch(settings: Settings, model: Any, row_id: int) -> Any:
    return run(settings, lambda session: session.get(model, row_id))


def test_appeals_are_listed_approved_and_rejected(
        cli_env: Settings, appealed: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["admin", "appeal", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # oldest first
    first, second = lines
    assert first.startswith(f"{appealed['first']}  pending ")
    assert " bob " in first and " silence 20" in first
    text = first.split("  ")[-1]
    assert text.startswith("I only ever posted") and text.endswith("…") and len(text) <= 72
    assert second.startswith(f"{appealed['second']}  pending ") and " none " in second
    assert second.endswith("  Sorry…")  # the first line only

    assert main(["admin", "appeal", "approve", str(appealed["first"]), "--by", "moira"]) == 0
    out = capsys.readouterr().out
    assert f"appeal {appealed['first']} by bob of silence" in out and "approved" in out
    assert fetch(cli_env, Account, appealed["bob"]).silenced_at is None
    assert fetch(cli_env, AccountWarning, appealed["silence"]).overruled_at is not None
    decided = fetch(cli_env, Appeal, appealed["first"])
    moira = run(cli_env, lambda session: find_local_account(session, "moira"))
    assert decided.state == "approved" and decided.approved_by_account_id == moira.id

    assert main(["admin", "appeal", "reject", str(appealed["second"])]) == 0
    assert "rejected: the decision stands" in capsys.readouterr().out
    rejected = fetch(cli_env, Appeal, appealed["second"])
    assert rejected.state == "rejected" and rejected.rejected_by_account_id is None

    assert main(["admin", "appeal", "list"]) == 0
    assert capsys.readouterr().out == "no pending appeals\n"
    assert main(["admin", "appeal", "list", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()  # newest first
    assert [line.split()[:2] for line in lines] == [[str(appealed["second"]), "rejected"],
                                                    [str(appealed["first"]), "approved"]]


def test_errors_are_clear(cli_env: Settings, appealed: dict[str, int],
                          capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["admin", "appeal", "approve", "12345"]) == 1
    assert capsys.readouterr().err.endswith("easel: no appeal 12345\n")  # (after any warnings)
    assert main(["admin", "appeal", "reject", str(appealed["first"]), "--by", "nobody"]) == 1
    assert "no local account @nobody" in capsys.readouterr().err
    assert fetch(cli_env, Appeal, appealed["first"]).state == "pending"

    assert main(["admin", "appeal", "reject", str(appealed["first"])]) == 0
    capsys.readouterr()
    for decision in ("approve", "reject"):
        assert main(["admin", "appeal", decision, str(appealed["first"])]) == 1
        assert capsys.readouterr().err.endswith("easel: This appeal has already been decided\n")
    assert fetch(cli_env, Account, appealed["bob"]).silenced_at is not None

    for bad in ("nope", "99999999999999999999999"):
        with pytest.raises(SystemExit) as exited:
            main(["admin", "appeal", "approve", bad])
        assert exited.value.code == 2
        assert "not an id" in capsys.readouterr().err


def test_no_appeals(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["admin", "appeal", "list", "--all"]) == 0
    assert capsys.readouterr().out == "no appeals\n"
