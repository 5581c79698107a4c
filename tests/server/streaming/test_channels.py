"""Where a deleted status's ``delete`` goes (``channels.deletion_reaches``), as Mastodon's
RemoveStatusService sends it.

Given ``status.deleted`` messages with their routing facts, I expect the public and
hashtag streams to get only a published public status's (not a boost's, and by locality),
its author's streams every one of theirs, other signed-in streams a public or unlisted
one's, a private one's only for followers (decided by a query: None) and mentioned
accounts, a direct one's only for those it mentioned, an unpublished one's only for its
author, and a message without facts only its author.
"""

from __future__ import annotations

from typing import Any

import pytest

from server.streaming.channels import Channel, deletion_reaches, may_carry

AUTHOR, MENTIONED, OTHER = 1, 2, 3
PUBLIC_STREAMS = [Channel("public"), Channel("public:media"), Channel("hashtag", tag="ink")]


def deleted(visibility: str | None, **facts: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"kind": "status.deleted", "status_id": 99, "account_id": AUTHOR}
    if visibility is not None:
        message.update(visibility=visibility, published=True, local=True, reblog=False,
                       mentioned_ids=[MENTIONED])
    message.update(facts)
    return message


@pytest.mark.parametrize("visibility", ["unlisted", "private", "direct"])
def test_only_a_public_status_deletion_reaches_the_public_streams(visibility: str) -> None:
    for channel in PUBLIC_STREAMS:
        for viewer in (None, AUTHOR, MENTIONED, OTHER):
            assert deletion_reaches(channel, viewer, deleted(visibility)) is False
            assert may_carry(channel, viewer, deleted(visibility)) is False
            assert deletion_reaches(channel, viewer, deleted("public")) is True


def test_public_streams_by_locality_and_never_a_boost_or_an_unpublished_status() -> None:
    local, remote = deleted("public"), deleted("public", local=False)
    assert deletion_reaches(Channel("public:local"), None, local) is True
    assert deletion_reaches(Channel("public:local"), None, remote) is False
    assert deletion_reaches(Channel("public:remote"), None, remote) is True
    assert deletion_reaches(Channel("public:remote:media"), None, local) is False
    assert deletion_reaches(Channel("hashtag:local", tag="ink"), None, remote) is False
    assert deletion_reaches(Channel("public"), None, deleted("public", reblog=True)) is False
    assert deletion_reaches(Channel("public"), None, deleted("public", published=False)) is False


@pytest.mark.parametrize("name", ["user", "list"])
def test_home_and_list_streams_by_who_could_see_it(name: str) -> None:
    channel = Channel(name, list_id=5) if name == "list" else Channel(name)
    for visibility in ("public", "unlisted", "private", "direct"):
        assert deletion_reaches(channel, AUTHOR, deleted(visibility)) is True
        assert deletion_reaches(channel, AUTHOR, deleted(visibility, published=False)) is True
        assert deletion_reaches(channel, OTHER, deleted(visibility, published=False)) is False
        assert deletion_reaches(channel, None, deleted(visibility)) is False
    for visibility in ("public", "unlisted"):
        assert deletion_reaches(channel, OTHER, deleted(visibility)) is True
    assert deletion_reaches(channel, MENTIONED, deleted("private")) is True
    assert deletion_reaches(channel, OTHER, deleted("private")) is None  # a follower?
    assert may_carry(channel, OTHER, deleted("private")) is True  # … asked when rendering
    assert deletion_reaches(channel, MENTIONED, deleted("direct")) is True
    assert deletion_reaches(channel, OTHER, deleted("direct")) is False
    assert may_carry(channel, OTHER, deleted("direct")) is False


def test_without_its_facts_a_deletion_reaches_only_its_author() -> None:
    bare = deleted(None)
    assert deletion_reaches(Channel("user"), AUTHOR, bare) is True
    assert deletion_reaches(Channel("user"), OTHER, bare) is False
    for channel in PUBLIC_STREAMS:
        assert deletion_reaches(channel, None, bare) is False


def test_other_channels_never_carry_a_deletion() -> None:
    for name in ("user:notification", "direct"):
        assert deletion_reaches(Channel(name), AUTHOR, deleted("direct")) is False
