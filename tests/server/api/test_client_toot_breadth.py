"""toot's CLI for the rest of the client API: polls, scheduled posts, followed and featured
hashtags, lists, pins, bookmarks, mutes and blocks — each through the command toot has for
it, against a live Easel (see test_client_toot.py for how toot is run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from server.models import ScheduledStatus
from tests.server.api.live import LiveServer
from tests.server.api.test_client_toot import last_json, logged_in, server  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def test_toot_posts_a_poll_and_another_user_votes_on_it(server: LiveServer, tmp_path: Path) -> None:  # noqa: F811
    alice, bob = (logged_in(server, tmp_path, name) for name in ("alice", "bob"))
    posted = last_json(alice("post", "Which medium next?", "--poll-option", "Ink",
                             "--poll-option", "Gouache", "--poll-option", "Charcoal",
                             "--poll-expires-in", "1d", "--poll-multiple", "--json"))
    poll = posted["poll"]
    assert [option["title"] for option in poll["options"]] == ["Ink", "Gouache", "Charcoal"]
    assert poll["multiple"] is True and poll["expired"] is False and poll["votes_count"] == 0

    voted = last_json(bob("polls", "vote", poll["id"], "0", "2", "--json"))
    assert voted["voted"] is True and voted["own_votes"] == [0, 2]
    assert [option["votes_count"] for option in voted["options"]] == [1, 0, 1]
    shown = last_json(alice("polls", "show", poll["id"], "--json"))
    assert shown["votes_count"] == 2 and shown["voters_count"] == 1
    assert "Gouache" in bob("polls", "show", poll["id"])


def test_toot_schedules_a_post(server: LiveServer, tmp_path: Path) -> None:  # noqa: F811
    alice = logged_in(server, tmp_path, "alice")
    scheduled = last_json(alice("post", "Opening night at the gallery", "--scheduled-in", "2h",
                                "--json"))
    assert scheduled["params"]["text"] == "Opening night at the gallery"
    assert scheduled["scheduled_at"].endswith("Z")
    assert last_json(alice("timelines", "home", "--json", "--no-pager")) == []  # not posted yet

    async def waiting() -> list[str]:
        async with server.app.state.easel.db.session() as session:
            return [str(row.id) for row in await session.scalars(select(ScheduledStatus))]

    assert server.call(waiting()) == [scheduled["id"]]


def test_toot_follows_and_features_hashtags(server: LiveServer, tmp_path: Path) -> None:  # noqa: F811
    alice, bob = (logged_in(server, tmp_path, name) for name in ("alice", "bob"))
    assert last_json(alice("tags", "follow", "ink", "--json"))["following"] is True
    followed = last_json(alice("tags", "followed", "--json"))
    assert [tag["name"] for tag in followed] == ["ink"]
    bob("post", "Fresh #ink drawing")
    home = last_json(alice("timelines", "home", "--json", "--no-pager"))
    assert ["Fresh" in status["content"] for status in home] == [True]  # via the followed tag
    assert last_json(alice("tags", "unfollow", "ink", "--json"))["following"] is False

    alice("post", "Sketchbook #ink")
    featured = last_json(alice("tags", "feature", "ink", "--json"))
    assert featured["name"] == "ink" and featured["statuses_count"] == "1"
    assert [tag["name"] for tag in last_json(alice("tags", "featured", "--json"))] == ["ink"]
    alice("tags", "unfeature", "ink")
    assert last_json(alice("tags", "featured", "--json")) == []


def test_toot_manages_lists_pins_bookmarks_mutes_and_blocks(
        server: LiveServer, tmp_path: Path) -> None:  # noqa: F811
    alice, bob, _carol = (logged_in(server, tmp_path, name) for name in ("alice", "bob", "carol"))
    alice("follow", "bob")
    created = last_json(alice("lists", "create", "Painters", "--json"))
    assert created["title"] == "Painters"
    alice("lists", "add", "Painters", "bob")
    members = last_json(alice("lists", "accounts", "Painters", "--json"))
    assert [account["username"] for account in members] == ["bob"]
    alice("lists", "remove", "Painters", "bob")
    assert last_json(alice("lists", "accounts", "Painters", "--json")) == []
    alice("lists", "delete", "Painters")
    assert last_json(alice("lists", "list", "--json")) == []

    mine = last_json(alice("post", "Pinned piece", "--json"))
    assert last_json(alice("pin", mine["id"], "--json"))["pinned"] is True
    assert last_json(alice("unpin", mine["id"], "--json"))["pinned"] is False
    theirs = last_json(bob("post", "Worth keeping", "--json"))
    assert last_json(alice("bookmark", theirs["id"], "--json"))["bookmarked"] is True
    assert "Worth keeping" in alice("bookmarks", "--once")

    assert last_json(alice("mute", "carol", "--json"))["muting"] is True
    assert [a["username"] for a in last_json(alice("muted", "--json"))] == ["carol"]
    assert last_json(alice("unmute", "carol", "--json"))["muting"] is False
    assert last_json(alice("block", "carol", "--json"))["blocking"] is True
    assert [a["username"] for a in last_json(alice("blocked", "--json"))] == ["carol"]
    assert last_json(alice("unblock", "carol", "--json"))["blocking"] is False
