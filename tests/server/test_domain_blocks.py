"""Domain blocks as an admin makes them: ``easel admin domain-block add|remove|list``, and
what a block does at once.

Given local accounts following (and followed by) accounts of other servers, when the
admin suspends one of those servers I expect the follows both ways to be gone with their
counters, while a silence or a block of another server leaves them; bad input (an invalid
domain, an unknown severity, our own domain) is refused with a message, an exit code, and
nothing stored.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from server.cli import main
from server.db import Database
from server.models import Account, DomainBlock, Follow, FollowRequest, User
from server.services import domain_blocks, moderation
from server.services.errors import NotFound, ValidationFailed
from server.settings import Settings
from tests.server.api.test_timelines import Factory

# ------------------------------------------------------------------------------ domains

@pytest.mark.parametrize(("raw", "expected"), [
    ("example.com", "example.com"),
    ("  Example.COM. ", "example.com"),
    ("example.com:8443", "example.com:8443"),
    ("https://Mastodon.Example/@someone", "mastodon.example"),
    ("http://127.0.0.1:8081/users/bob", "127.0.0.1:8081"),
    ("*.spam.example", "spam.example"),
    ("bücher.example", "xn--bcher-kva.example"),
])
def test_an_admins_domain_is_normalised(raw: str, expected: str) -> None:
    assert domain_blocks.normalize_domain(raw) == expected


@pytest.mark.parametrize("raw", [
    "", "   ", "not a domain", "exa mple.com", "-bad.example", "bad-.example", "a..example",
    "example.com:0", "example.com:99999", "example.com:port", "example.com/path",
    "x" * 64 + ".example", "https://", "@user@example.com", "[::1]:80",
])
def test_anything_else_is_not_a_domain(raw: str) -> None:
    with pytest.raises(ValidationFailed, match="Domain is invalid"):
        domain_blocks.normalize_domain(raw)


def test_a_block_covers_subdomains_and_ports_but_a_port_only_itself() -> None:
    assert domain_blocks.covers("example.com", "example.com")
    assert domain_blocks.covers("example.com", "a.b.example.com:8443")
    assert not domain_blocks.covers("example.com", "notexample.com")
    assert domain_blocks.covers("example.com:8443", "example.com:8443")
    assert not domain_blocks.covers("example.com:8443", "example.com:8444")
    assert not domain_blocks.covers("example.com:8443", "a.example.com:8443")
    assert domain_blocks.domain_of("https://A.Example:8443/x") == "a.example:8443"
    assert domain_blocks.domain_of("https://[bad") == ""


# ----------------------------------------------------------------------- the service

async def _counts(db: Database, *accounts: Account) -> list[tuple[int, int]]:
    async with db.session() as session:
        rows = []
        for account in accounts:
            fresh = await session.get(Account, account.id)
            assert fresh is not None
            rows.append((fresh.followers_count, fresh.following_count))
        return rows


async def _follows(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Follow)) or 0)


async def follow_counted(db: Database, make: Factory, follower: Account, target: Account) -> None:
    """A follow with its counters, as the follows service leaves them."""
    await make.follow(follower, target)
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == follower.id)
                              .values(following_count=Account.following_count + 1))
        await session.execute(update(Account).where(Account.id == target.id)
                              .values(followers_count=Account.followers_count + 1))
        await session.commit()


@pytest.fixture
def make(db: Database, settings: Settings) -> Factory:
    return Factory(db, settings)


async def test_suspending_a_domain_removes_follows_both_ways_with_their_counters(
    db: Database, make: Factory, alice: User, bob: User
) -> None:
    alice_account, bob_account = alice.account, bob.account
    spammer = await make.remote_account("spammer", "spam.example")
    sub = await make.remote_account("minion", "sub.spam.example:8443")
    friend = await make.remote_account("friend", "friendly.example")
    for follower, target in [(alice_account, spammer), (spammer, alice_account), (sub, bob_account),
                             (alice_account, friend), (friend, bob_account), (alice_account, bob_account)]:
        await follow_counted(db, make, follower, target)
    async with db.session() as session:
        session.add(FollowRequest(account_id=bob_account.id, target_account_id=spammer.id))
        await session.commit()
    assert await _counts(db, alice_account, bob_account) == [(1, 3), (3, 0)]

    async with db.session() as session:
        result = await domain_blocks.block_domain(session, "Spam.Example", own_domain="easel.test")
    assert result.created and result.block.domain == "spam.example"
    assert result.block.severity == "suspend"
    assert (result.follows_removed, result.requests_removed) == (3, 1)
    assert await _follows(db) == 3  # alice→friend, friend→bob, alice→bob remain
    assert await _counts(db, alice_account, bob_account) == [(0, 2), (2, 0)]
    assert await _counts(db, spammer, sub) == [(0, 0), (0, 0)]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(FollowRequest)) == 0


async def test_a_silence_or_a_noop_keeps_follows_and_a_more_specific_block_is_spared(
    db: Database, make: Factory, alice: User
) -> None:
    quiet = await make.remote_account("quiet", "loud.example")
    spared = await make.remote_account("spared", "good.bad.example")
    doomed = await make.remote_account("doomed", "bad.example")
    for target in (quiet, spared, doomed):
        await make.follow(alice.account, target)
    async with db.session() as session:
        silence = await domain_blocks.block_domain(session, "loud.example", own_domain="easel.test",
                                                   severity="silence")
        noop = await domain_blocks.block_domain(session, "good.bad.example", own_domain="easel.test",
                                                severity="noop", reject_media=True)
        suspend = await domain_blocks.block_domain(session, "bad.example", own_domain="easel.test")
    assert silence.follows_removed == 0 and noop.follows_removed == 0
    assert suspend.follows_removed == 1  # good.bad.example has its own, milder block
    async with db.session() as session:
        targets = set(await session.scalars(select(Follow.target_account_id)))
    assert targets == {quiet.id, spared.id}


async def test_a_suspension_suspends_the_domains_accounts_until_it_is_lifted(
    db: Database, make: Factory, settings: Settings
) -> None:
    # As Mastodon's BlockDomainService: every read path then hides them by the one rule.
    doomed = await make.remote_account("doomed", "bad.example")
    deep = await make.remote_account("deep", "art.bad.example:8443")
    spared = await make.remote_account("spared", "good.bad.example")
    other = await make.remote_account("other", "fine.example")
    moderated = await make.remote_account("moderated", "bad.example")
    async with db.session() as session:
        await moderation.take_action(session, settings, moderator=None,
                                     account_id=moderated.id, action="suspend")

    async def origins() -> list[str | None]:
        async with db.session() as session:
            return [(await session.get(Account, a.id, populate_existing=True)).suspension_origin
                    for a in (doomed, deep, spared, other, moderated)]

    async with db.session() as session:
        await domain_blocks.block_domain(session, "good.bad.example", own_domain="easel.test",
                                         severity="noop")
        result = await domain_blocks.block_domain(session, "bad.example", own_domain="easel.test")
    assert await origins() == ["domain", "domain", None, None, "local"]
    async with db.session() as session:  # our moderators' suspension outlives the domain's
        await moderation.take_action(session, settings, moderator=None,
                                     account_id=doomed.id, action="suspend")
        await domain_blocks.update_domain_block(session, result.block.id,
                                                own_domain="easel.test", severity="silence")
    assert await origins() == ["local", None, None, None, "local"]
    async with db.session() as session:
        await domain_blocks.block_domain(session, "bad.example", own_domain="easel.test")
    assert await origins() == ["local", "domain", None, None, "local"]
    async with db.session() as session:
        await domain_blocks.unblock_domain(session, "bad.example")
    assert await origins() == ["local", None, None, None, "local"]


async def test_adding_again_changes_the_block_and_keeps_comments_unless_given(db: Database) -> None:
    async with db.session() as session:
        first = await domain_blocks.block_domain(
            session, "example.org", own_domain="easel.test", severity="silence",
            public_comment="spam waves", private_comment="ticket 12")
        again = await domain_blocks.block_domain(
            session, "EXAMPLE.org", own_domain="easel.test", severity="noop", reject_media=True,
            public_comment="only media now")
    assert first.created and not again.created
    async with db.session() as session:
        blocks = await domain_blocks.list_domain_blocks(session)
    assert [(b.domain, b.severity, b.reject_media, b.public_comment, b.private_comment)
            for b in blocks] == [("example.org", "noop", True, "only media now", "ticket 12")]


async def test_bad_blocks_are_refused_and_store_nothing(db: Database) -> None:
    async with db.session() as session:
        with pytest.raises(ValidationFailed, match="Domain is invalid"):
            await domain_blocks.block_domain(session, "no such thing", own_domain="easel.test")
        with pytest.raises(ValidationFailed, match="Severity 'ban' is not one of"):
            await domain_blocks.block_domain(session, "x.example", own_domain="easel.test",
                                             severity="ban")
        with pytest.raises(ValidationFailed, match="covers this server's own domain"):
            await domain_blocks.block_domain(session, "Easel.Test", own_domain="easel.test")
        with pytest.raises(ValidationFailed, match="covers this server's own domain"):
            await domain_blocks.block_domain(session, "test", own_domain="easel.test")
        with pytest.raises(ValidationFailed, match="too long"):
            await domain_blocks.block_domain(session, "x.example", own_domain="easel.test",
                                             public_comment="x" * 5001)
        with pytest.raises(NotFound, match=r"No domain block for x\.example"):
            await domain_blocks.unblock_domain(session, "x.example")
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(DomainBlock)) == 0


# --------------------------------------------------------------------------- the command

def test_the_admin_blocks_lists_and_unblocks_from_the_command_line(
    easel_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["admin", "domain-block", "list"]) == 0
    assert "no domain blocks" in capsys.readouterr().out

    assert main(["admin", "domain-block", "add", "Spam.Example", "--public-comment", "spam"]) == 0
    assert "blocked spam.example: suspend" in capsys.readouterr().out
    assert main(["admin", "domain-block", "add", "loud.example:8443", "--severity", "silence",
                 "--reject-media", "--private-comment", "noisy"]) == 0
    assert "blocked loud.example:8443: silence, media rejected" in capsys.readouterr().out
    assert main(["admin", "domain-block", "add", "spam.example", "--severity", "noop"]) == 0
    assert "updated the block on spam.example: noop" in capsys.readouterr().out

    assert main(["admin", "domain-block", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["loud.example:8443", "silence", "reject-media"], ["spam.example", "noop", "-"]]
    assert "private: noisy" in lines[0] and "public: spam" in lines[1]

    assert main(["admin", "domain-block", "remove", "SPAM.example"]) == 0
    assert "unblocked spam.example (was noop)" in capsys.readouterr().out
    assert main(["admin", "domain-block", "list"]) == 0
    assert "spam.example" not in capsys.readouterr().out


def test_bad_input_on_the_command_line_is_refused_with_a_message_and_an_exit_code(
    easel_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["admin", "domain-block", "add", "not a domain"]) == 1
    assert "easel: Validation failed: Domain is invalid: 'not a domain'" in capsys.readouterr().err
    assert main(["admin", "domain-block", "add", easel_env.domain]) == 1
    assert "covers this server's own domain" in capsys.readouterr().err
    assert main(["admin", "domain-block", "remove", "never.example"]) == 1
    assert "easel: No domain block for never.example" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["admin", "domain-block", "add", "x.example", "--severity", "ban"])
    assert exited.value.code == 2
    assert "invalid choice: 'ban'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["admin", "domain-block"])
    assert exited.value.code == 2
    assert main(["admin", "domain-block", "list"]) == 0
    assert "no domain blocks" in capsys.readouterr().out
