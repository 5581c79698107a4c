"""``/api/v1/announcements``: the admins' notices, as Mastodon apps read them.

Given announcements an admin published (one with a period, one with hashtags and a link),
a draft and one whose period has ended, I expect a signed-in person to see the published,
current ones oldest first as Mastodon's ``Announcement``, to mark one read (for them
only), and to react with one Unicode emoji each (counted, ``me`` for their own, at most
eight different ones, taken back once); anyone without a user's token, or with the wrong
scope, is refused; drafts, ended and unknown announcements are 404 to every action.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from mastodon import Mastodon
from sqlalchemy import func, select

from server.db import Database
from server.ids import utcnow
from server.models import Announcement, AnnouncementReaction, User
from server.services import announcements
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.api.live import live_server


@pytest.fixture
async def published(db: Database) -> dict[str, Announcement]:
    now = utcnow()
    async with db.session() as session:
        return {
            "meetup": await announcements.create_announcement(
                session, "Open studio on Saturday", starts_at=now + timedelta(days=2),
                ends_at=now + timedelta(days=2, hours=4)),
            "news": await announcements.create_announcement(
                session, "New: #Gouache and #ink tags.\n\nDetails at https://art.example/news"),
            "draft": await announcements.create_announcement(
                session, "Not ready yet", publish=False),
            "ended": await announcements.create_announcement(
                session, "Maintenance last week", starts_at=now - timedelta(days=8),
                ends_at=now - timedelta(days=7), all_day=True),
        }


async def listed(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/announcements")
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def reactions_of(rows: list[dict[str, Any]], announcement: Announcement) -> list[dict[str, Any]]:
    [row] = [r for r in rows if r["id"] == str(announcement.id)]
    found: list[dict[str, Any]] = row["reactions"]
    return found


def reaction_url(announcement: Announcement, name: str) -> str:
    return f"/api/v1/announcements/{announcement.id}/reactions/{quote(name)}"


async def test_the_current_published_announcements_as_mastodon_entities(
        alice_api: httpx.AsyncClient, published: dict[str, Announcement]) -> None:
    rows = await listed(alice_api)
    # oldest first by what they announce, then publication: news (now) before the meetup
    assert [r["id"] for r in rows] == [str(published["news"].id), str(published["meetup"].id)]
    news, meetup = rows
    assert set(news) == {"id", "content", "starts_at", "ends_at", "all_day", "published_at",
                         "updated_at", "read", "mentions", "statuses", "tags", "emojis",
                         "reactions"}
    assert news["content"].startswith(
        '<p>New: <a href="https://easel.test/tags/gouache" class="mention hashtag" rel="tag">'
        '#<span>Gouache</span></a> and ')
    assert '</p><p>Details at <a href="https://art.example/news" rel="nofollow' in news["content"]
    assert [t["name"] for t in news["tags"]] == ["Gouache", "ink"]
    assert news["tags"][0]["url"].endswith("/tags/gouache")
    assert news["read"] is False and news["reactions"] == [] and news["all_day"] is False
    assert news["starts_at"] is None and news["ends_at"] is None
    assert news["published_at"].endswith("Z")
    assert meetup["starts_at"].endswith("Z") and meetup["ends_at"] > meetup["starts_at"]


async def test_mentioned_accounts_and_linked_statuses_are_looked_up(
        alice_api: httpx.AsyncClient, db: Database, settings: Settings, alice: User,
        bob: User) -> None:
    """As Mastodon: the accounts mentioned that this server knows (linked in the content;
    unknown and suspended ones stay text) and the local statuses linked that anyone may
    see (a private one, or another server's URL, is not listed)."""
    from server.models import Account, Status
    from tests.server.api.test_timelines import Factory

    make = Factory(db, settings)
    public = await make.status(bob.account, "open studio")
    private = await make.status(bob.account, "followers only", visibility="private")
    remote = await make.remote_account("painter", "paint.example")
    gone = await make.user("gone")
    async with db.session() as session:
        suspended = await session.get(Account, gone.account_id)
        assert suspended is not None
        suspended.suspended_at = utcnow()
        await session.commit()
        await announcements.create_announcement(
            session, f"Thanks @bob (@bob@easel.test) and @Painter@paint.example (not @nobody, "
                     f"not @gone, not the server @easel.test@easel.test)! "
                     f"See {public.url} and {private.url} and https://other.example/@bob/1")
    [row] = await listed(alice_api)
    assert [(m["username"], m["acct"]) for m in row["mentions"]] == [
        ("bob", "bob"), ("painter", "painter@paint.example")]
    assert row["mentions"][0]["id"] == str(bob.account_id)
    assert [s["id"] for s in row["statuses"]] == [str(public.id)]
    assert row["statuses"][0]["url"] == public.url
    assert 'class="u-url mention">@<span>bob</span></a>' in row["content"]
    assert f'href="{remote.url}"' in row["content"]
    assert "@nobody" in row["content"] and "@gone" in row["content"]
    assert isinstance(private, Status)


async def test_the_text_is_escaped_not_interpreted(
        alice_api: httpx.AsyncClient, db: Database) -> None:
    async with db.session() as session:
        await announcements.create_announcement(session, "<script>alert(1)</script> & <b>hi</b>")
    [row] = await listed(alice_api)
    assert row["content"] == "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;hi&lt;/b&gt;</p>"


async def test_listing_needs_a_users_token_with_read(
        client: httpx.AsyncClient, db: Database, alice: User,
        published: dict[str, Announcement]) -> None:
    assert (await client.get("/api/v1/announcements")).status_code == 401
    async with authorized(client, await make_token(db, None, "read")) as app_only:
        answer = await app_only.get("/api/v1/announcements")
        assert answer.status_code == 422 and "error" in answer.json()
    async with authorized(client, await make_token(db, alice, "profile")) as narrow:
        assert (await narrow.get("/api/v1/announcements")).status_code == 403
    async with authorized(client, await make_token(db, alice, "read")) as reader:
        assert len(await listed(reader)) == 2


async def test_dismissing_marks_it_read_for_that_person_only(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, client: httpx.AsyncClient,
        db: Database, alice: User, published: dict[str, Announcement]) -> None:
    news = published["news"]
    answer = await alice_api.post(f"/api/v1/announcements/{news.id}/dismiss")
    assert (answer.status_code, answer.json()) == (200, {})
    again = await alice_api.post(f"/api/v1/announcements/{news.id}/dismiss")
    assert again.status_code == 200
    assert [r["read"] for r in await listed(alice_api)] == [True, False]
    assert [r["read"] for r in await listed(bob_api)] == [False, False]
    for hidden in ("draft", "ended"):
        refused = await alice_api.post(f"/api/v1/announcements/{published[hidden].id}/dismiss")
        assert refused.status_code == 404 and refused.json() == {"error": "Record not found"}
    for bad in ("123456", "nope"):
        assert (await alice_api.post(f"/api/v1/announcements/{bad}/dismiss")).status_code == 404
    async with authorized(client, await make_token(db, alice, "read")) as reader:
        refused = await reader.post(f"/api/v1/announcements/{news.id}/dismiss")
        assert refused.status_code == 403


async def test_reactions_are_counted_shown_as_own_and_taken_back(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
        published: dict[str, Announcement]) -> None:
    news = published["news"]
    for api, name in ((alice_api, "👍"), (bob_api, "👍"), (bob_api, "👩🏽‍🎨"), (alice_api, "👍")):
        answer = await api.put(reaction_url(news, name))
        assert (answer.status_code, answer.json()) == (200, {}), answer.text
    assert reactions_of(await listed(alice_api), news) == [
        {"name": "👍", "count": 2, "me": True}, {"name": "👩🏽‍🎨", "count": 1, "me": False}]
    assert [r["me"] for r in reactions_of(await listed(bob_api), news)] == [True, True]

    answer = await alice_api.delete(reaction_url(news, "👍"))
    assert (answer.status_code, answer.json()) == (200, {})
    assert reactions_of(await listed(alice_api), news)[0] == {"name": "👍", "count": 1, "me": False}
    gone = await alice_api.delete(reaction_url(news, "👍"))  # not hers any more
    assert gone.status_code == 404 and gone.json() == {"error": "Record not found"}
    draft = await alice_api.put(reaction_url(published["draft"], "👍"))
    assert draft.status_code == 404


@pytest.mark.parametrize("name", ["a", "👍👍", "🇫", "\u200d", "👍\u200d", ":blobcat:", "x" * 40,
                                  "1", "©x"])
async def test_a_reaction_must_be_one_emoji(
        alice_api: httpx.AsyncClient, db: Database, published: dict[str, Announcement],
        name: str) -> None:
    answer = await alice_api.put(reaction_url(published["news"], name))
    assert answer.status_code == 422
    assert answer.json() == {"error": "Validation failed: Name is not a recognized emoji"}
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(AnnouncementReaction)) == 0


async def test_at_most_eight_different_reactions(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient,
        published: dict[str, Announcement]) -> None:
    news = published["news"]
    scotland = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    eight = ["👍", "❤️", "🎨", "🖌️", "🇫🇷", "1️⃣", "🏳️‍🌈", scotland]
    for name in eight:
        assert (await alice_api.put(reaction_url(news, name))).status_code == 200, name
    ninth = await alice_api.put(reaction_url(news, "✨"))
    assert ninth.status_code == 422
    assert ninth.json() == {"error": "Validation failed: Limit of different reactions reached"}
    assert (await bob_api.put(reaction_url(news, "🎨"))).status_code == 200  # one already there
    assert [r["name"] for r in reactions_of(await listed(bob_api), news)] == eight


async def test_reacting_needs_write_favourites(
        client: httpx.AsyncClient, db: Database, alice: User,
        published: dict[str, Announcement]) -> None:
    async with authorized(client, await make_token(db, alice, "read write:accounts")) as narrow:
        answer = await narrow.put(reaction_url(published["news"], "👍"))
        assert answer.status_code == 403


def test_mastodon_py_reads_dismisses_and_reacts(settings: Settings) -> None:
    with live_server(settings) as server:
        async def seed() -> tuple[str, str]:
            state = server.app.state.easel
            async with state.db.session() as session:
                alice = await create_user(session, server.settings, username="alice",
                                          email="alice@example.com", password="a long password")
                notice = await announcements.create_announcement(session, "Welcome, artists")
            return str(notice.id), await make_token(state.db, alice)

        notice_id, token = server.call(seed())
        api = Mastodon(access_token=token, api_base_url=server.base_url,
                       version_check_mode="none", request_timeout=30)
        [notice] = api.announcements()
        assert str(notice.id) == notice_id and notice.read is False
        assert "Welcome, artists" in notice.content
        api.announcement_dismiss(notice_id)
        api.announcement_reaction_create(notice_id, "🎨")
        [notice] = api.announcements()
        assert notice.read is True
        assert [(r.name, r.count, r.me) for r in notice.reactions] == [("🎨", 1, True)]
        api.announcement_reaction_delete(notice_id, "🎨")
        assert api.announcements()[0].reactions == []
