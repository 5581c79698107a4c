"""``easel admin ip-block add|list|remove|prune`` as an admin runs them.

I expect ``add`` to store the block (normalised, with its comment and expiry) and say that
running processes apply it within their reload interval, ``list`` to show every block
(expired ones marked), ``remove`` to take an id or the network, ``prune`` to delete the
expired ones; a bad network, a missing or unknown severity, a bad expiry, the same network
twice and an unknown block to fail with a message (exit status 1, or argparse's 2).
Warnings on stderr (an unknown ``EASEL_`` setting in CI) are tolerated.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from server.cli import main
from server.db import Database
from server.ids import utcnow
from server.models import IpBlock
from server.settings import Settings


def blocks(settings: Settings) -> list[IpBlock]:
    async def read() -> list[IpBlock]:
        db = Database.from_settings(settings)
        try:
            async with db.session() as session:
                return list(await session.scalars(select(IpBlock).order_by(IpBlock.id)))
        finally:
            await db.dispose()

    return asyncio.run(read())


def expire_all(settings: Settings) -> None:
    async def expire() -> None:
        db = Database.from_settings(settings)
        try:
            async with db.session() as session:
                await session.execute(update(IpBlock).values(
                    expires_at=utcnow() - timedelta(seconds=1)))
                await session.commit()
        finally:
            await db.dispose()

    asyncio.run(expire())


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["admin", "ip-block", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_add_list_remove_and_prune(easel_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "add", "192.0.2.9/24", "--severity", "no_access",
                         "--comment", "spam wave", "--expires-in", "7d")
    assert status == 0 and "blocked 192.0.2.0/24 (no_access)" in out and "within 10 s" in out
    status, out, _ = run(capsys, "add", "2001:db8::1", "--severity", "sign_up_block",
                         "--expires-in", "3600")
    assert status == 0 and "blocked 2001:db8::1/128 (sign_up_block)" in out
    assert run(capsys, "add", "198.51.100.0/24", "--severity", "sign_up_requires_approval")[0] == 0
    first, second, third = blocks(easel_env)
    assert (first.comment, third.expires_at) == ("spam wave", None)
    assert first.expires_at is not None and second.expires_at is not None
    assert timedelta(days=6, hours=23) < first.expires_at - utcnow() <= timedelta(days=7)
    assert timedelta(minutes=59) < second.expires_at - utcnow() <= timedelta(hours=1)

    status, out, _ = run(capsys, "list")
    lines = out.splitlines()
    assert status == 0 and len(lines) == 3
    assert lines[0].startswith(f"{third.id}  198.51.100.0/24") and "no expiry" in lines[0]
    assert "192.0.2.0/24" in lines[2] and "active" in lines[2] and "spam wave" in lines[2]

    assert run(capsys, "remove", "2001:db8::1")[0] == 0  # by network
    status, out, _ = run(capsys, "remove", str(third.id))  # by id
    assert status == 0 and "unblocked 198.51.100.0/24" in out
    expire_all(easel_env)
    assert "expired" in run(capsys, "list")[1]
    assert "removed 1 expired block(s)" in run(capsys, "prune")[1]
    assert "no IP blocks" in run(capsys, "list")[1]


def test_bad_commands_fail_with_a_message(easel_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "add", "not-an-ip", "--severity", "no_access")
    assert status == 1 and "is not an IP address or network" in err
    assert run(capsys, "add", "192.0.2.1", "--severity", "no_access")[0] == 0
    status, _, err = run(capsys, "add", "192.0.2.1/32", "--severity", "sign_up_block")
    assert status == 1 and "Ip has already been taken" in err
    status, _, err = run(capsys, "remove", "203.0.113.0/24")
    assert status == 1 and "No IP block for 203.0.113.0/24" in err
    status, _, err = run(capsys, "remove", "12345")
    assert status == 1 and "Record not found" in err
    status, _, err = run(capsys, "remove", "nonsense")
    assert status == 1 and "is not an IP address" in err
    for args in (["add", "192.0.2.2"], ["add", "192.0.2.2", "--severity", "ban"],
                 ["add", "192.0.2.2", "--severity", "no_access", "--expires-in", "soon"],
                 ["add", "192.0.2.2", "--severity", "no_access", "--expires-in", "0"]):
        with pytest.raises(SystemExit) as exited:
            run(capsys, *args)
        assert exited.value.code == 2, args
    capsys.readouterr()
    assert len(blocks(easel_env)) == 1
