"""``easel admin invite …`` and ``easel admin rules …`` as an admin runs them."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from server.db import Database
from server.models import Invite
from server.settings import Settings
from tests.server.test_cli import easel, environment


async def test_invites_are_created_listed_and_revoked(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    env = environment(settings)
    created = easel(["admin", "invite", "create", "--max-uses", "3", "--expires-in", "7d"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    match = re.fullmatch(rf"https://{re.escape(settings.domain)}/invite/([\w-]+)\n", created.stdout)
    assert match, created.stdout
    code = match.group(1)
    async with db.session() as session:
        invite = await session.scalar(select(Invite).where(Invite.code == code))
    assert invite is not None and invite.max_uses == 3 and invite.expires_at is not None

    listed = easel(["admin", "invite", "list"], env, tmp_path)
    assert listed.returncode == 0 and code in listed.stdout and "active" in listed.stdout
    assert "uses 0/3" in listed.stdout
    revoked = easel(["admin", "invite", "revoke", code], env, tmp_path)
    assert revoked.returncode == 0 and f"revoked {code}" in revoked.stdout
    assert "revoked" in easel(["admin", "invite", "list"], env, tmp_path).stdout

    unknown = easel(["admin", "invite", "revoke", "nope"], env, tmp_path)
    assert unknown.returncode == 1 and "Invite not found" in unknown.stderr
    bad_expiry = easel(["admin", "invite", "create", "--expires-in", "soon"], env, tmp_path)
    assert bad_expiry.returncode == 2 and "not a duration" in bad_expiry.stderr
    bad_uses = easel(["admin", "invite", "create", "--max-uses", "0"], env, tmp_path)
    assert bad_uses.returncode == 1 and "Max uses must be between" in bad_uses.stderr
    assert "Traceback" not in unknown.stderr + bad_expiry.stderr + bad_uses.stderr


def test_rules_are_added_listed_and_removed(settings: Settings, tmp_path: Path) -> None:
    env = environment(settings)
    first = easel(["admin", "rules", "add", "Be kind", "--hint", "No harassment"], env, tmp_path)
    second = easel(["admin", "rules", "add", "Credit other artists"], env, tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    first_id = first.stdout.split()[-1]
    listed = easel(["admin", "rules", "list"], env, tmp_path).stdout
    assert listed.index("1. Be kind — No harassment") < listed.index("2. Credit other artists")
    removed = easel(["admin", "rules", "remove", first_id], env, tmp_path)
    assert removed.returncode == 0
    assert "Be kind" not in easel(["admin", "rules", "list"], env, tmp_path).stdout
    missing = easel(["admin", "rules", "remove", first_id], env, tmp_path)
    assert missing.returncode == 1 and "Rule not found" in missing.stderr
    blank = easel(["admin", "rules", "add", "  "], env, tmp_path)
    assert blank.returncode == 1 and "Text can't be blank" in blank.stderr
