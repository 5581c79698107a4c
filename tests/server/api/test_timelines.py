"""Home, public and hashtag timelines, bookmarks and favourites, through the client API.

Rows are made directly by the small factory below (not by the statuses service), with ids
from increasing times so "newest first" is deterministic. The notifications and search
tests reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from server.db import Database
from server.ids import new_id
from server.models import (
    Account,
    Bookmark,
    Favourite,
    Follow,
    MediaAttachment,
    MediaState,
    Mention,
    Notification,
    Status,
    StatusTag,
    Tag,
    User,
)
from server.services.accounts import create_user
from server.settings import Settings
from server.storage import new_key
from tests.conftest import authorized, make_token

BASE = "https://easel.test"


class Factory:
    """Rows for tests, each created a second after the previous one."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.clock = datetime(2025, 1, 1, tzinfo=UTC)

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    async def add(self, *rows: Any) -> None:
        async with self.db.session() as session:
            session.add_all(rows)
            await session.commit()

    async def user(self, username: str, **changes: Any) -> User:
        async with self.db.session() as session:
            user = await create_user(session, self.settings, username=username,
                                     email=f"{username}@example.com", password="a good long password")
        if changes:
            async with self.db.session() as session:
                account = await session.get(Account, user.account_id)
                assert account is not None
                for key, value in changes.items():
                    setattr(account, key, value)
                await session.commit()
                user.account = account
        return user

    async def remote_account(self, username: str, domain: str = "remote.example") -> Account:
        account = Account(username=username, username_key=username.lower(), domain=domain,
                          uri=f"https://{domain}/users/{username}",
                          url=f"https://{domain}/@{username}")
        await self.add(account)
        return account

    async def status(
        self, author: Account, text: str = "", *, visibility: str = "public",
        published: bool = True, reply_to: Status | None = None, reblog_of: Status | None = None,
        tags: Sequence[str] = (), media: int = 0, mentions: Sequence[Account] = (),
    ) -> Status:
        at = self.tick()
        status_id = new_id(at)
        if author.is_local:
            uri = f"{BASE}/users/{author.username}/statuses/{status_id}"
            url = f"{BASE}/@{author.username}/{status_id}"
        else:
            uri = f"https://{author.domain}/users/{author.username}/statuses/{status_id}"
            url = f"https://{author.domain}/@{author.username}/{status_id}"
        status = Status(
            id=status_id, account_id=author.id, uri=uri, url=url, text=text,
            content=f"<p>{text}</p>" if text else "", visibility=visibility,
            published=published, published_at=at if published else None, created_at=at,
            local=author.is_local,
            in_reply_to_id=reply_to.id if reply_to else None,
            in_reply_to_account_id=reply_to.account_id if reply_to else None,
            reblog_of_id=reblog_of.id if reblog_of else None,
        )
        async with self.db.session() as session:
            session.add(status)
            await session.flush()
            for name in tags:
                tag = await session.scalar(select(Tag).where(Tag.name == name.lower()))
                if tag is None:
                    tag = Tag(id=new_id(at), name=name.lower(), display_name=name)
                    session.add(tag)
                    await session.flush()
                session.add(StatusTag(status_id=status.id, tag_id=tag.id))
            for _ in range(media):
                session.add(MediaAttachment(id=new_id(at), account_id=author.id,
                                            status_id=status.id, state=MediaState.READY.value,
                                            file_key=new_key("media", "webp"),
                                            thumb_key=new_key("media", "webp")))
            for account in mentions:
                session.add(Mention(id=new_id(at), status_id=status.id, account_id=account.id))
            await session.commit()
        return status

    async def tag(self, name: str) -> Tag:
        tag = Tag(id=new_id(self.tick()), name=name.lower(), display_name=name)
        await self.add(tag)
        return tag

    async def follow(self, follower: Account, target: Account, *, show_reblogs: bool = True) -> None:
        await self.add(Follow(id=new_id(self.tick()), account_id=follower.id,
                              target_account_id=target.id, show_reblogs=show_reblogs))

    async def favourite(self, account: Account, status: Status) -> Favourite:
        row = Favourite(id=new_id(self.tick()), account_id=account.id, status_id=status.id)
        await self.add(row)
        return row

    async def bookmark(self, account: Account, status: Status) -> Bookmark:
        row = Bookmark(id=new_id(self.tick()), account_id=account.id, status_id=status.id)
        await self.add(row)
        return row

    async def notification(self, recipient: Account, type_: str, sender: Account,
                           status: Status | None = None) -> Notification:
        at = self.tick()
        row = Notification(id=new_id(at), account_id=recipient.id, type=type_,
                           from_account_id=sender.id, status_id=status.id if status else None,
                           created_at=at)
        await self.add(row)
        return row


@pytest.fixture
def make(db: Database, settings: Settings) -> Factory:
    return Factory(db, settings)


@pytest.fixture
async def carol(make: Factory) -> User:
    return await make.user("carol", display_name="Carol Painter")


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [entity["id"] for entity in response.json()]


def links(response: httpx.Response) -> dict[str, str]:
    """``{"next": url, "prev": url}`` from a Link header (and checks next comes first)."""
    header = response.headers.get("link")
    if header is None:
        return {}
    found: dict[str, str] = {}
    for part in header.split(","):
        url, _, rel = part.partition(";")
        found[rel.strip().removeprefix('rel="').removesuffix('"')] = url.strip().strip("<>")
    assert list(found) == ["next", "prev"]
    return found


async def scoped_client(client: httpx.AsyncClient, db: Database, user: User | None,
                        scopes: str) -> httpx.AsyncClient:
    return authorized(client, await make_token(db, user, scopes))


async def follow_links(api: httpx.AsyncClient, first: httpx.Response, rel: str) -> list[list[str]]:
    """Pages reached from ``first`` by following its ``rel`` links until an empty page."""
    pages = [ids(first)]
    response = first
    while True:
        url = links(response).get(rel)
        if url is None:
            return pages
        assert url.startswith(BASE)
        response = await api.get(url.removeprefix(BASE))
        page = ids(response)
        if not page:
            assert "link" not in response.headers
            return pages
        pages.append(page)


# --------------------------------------------------------------------------- home


async def test_home_shows_own_and_followed_statuses_newest_first(
    make: Factory, alice_api: httpx.AsyncClient, alice: User, bob: User, carol: User
) -> None:
    a, b, c = alice.account, bob.account, carol.account
    await make.follow(a, b)
    own = await make.status(a, "mine")
    followed = await make.status(b, "bob's")
    await make.status(c, "carol is not followed")
    followed_private = await make.status(b, "bob for followers", visibility="private")
    followed_unlisted = await make.status(b, "bob quietly", visibility="unlisted")
    own_draft = await make.status(a, "waiting for media", published=False)
    await make.status(b, "bob's draft", published=False)

    response = await alice_api.get("/api/v1/timelines/home")
    assert ids(response) == [str(s.id) for s in
                             (own_draft, followed_unlisted, followed_private, followed, own)]
    assert response.json()[0]["account"]["username"] == "alice"


async def test_home_follows_mastodons_reply_rules(
    make: Factory, alice_api: httpx.AsyncClient, alice: User, bob: User, carol: User
) -> None:
    a, b, c = alice.account, bob.account, carol.account
    dave = (await make.user("dave")).account
    await make.follow(a, b)
    await make.follow(a, dave)
    carols = await make.status(c, "carol, whom alice does not follow")
    daves = await make.status(dave, "dave, whom alice follows")
    alices = await make.status(a, "alice")
    bobs = await make.status(b, "bob starts a thread")
    to_stranger = await make.status(b, "bob answers carol", reply_to=carols)
    to_followed = await make.status(b, "bob answers dave", reply_to=daves)
    to_viewer = await make.status(b, "bob answers alice", reply_to=alices)
    self_reply = await make.status(b, "bob continues his thread", reply_to=bobs)
    own_reply = await make.status(a, "alice answers carol", reply_to=carols)

    shown = ids(await alice_api.get("/api/v1/timelines/home"))
    assert str(to_stranger.id) not in shown
    for status in (to_followed, to_viewer, self_reply, own_reply, bobs, daves, alices):
        assert str(status.id) in shown
    assert str(carols.id) not in shown


async def test_home_includes_boosts_unless_the_follow_hides_them(
    make: Factory, alice_api: httpx.AsyncClient, alice: User, bob: User, carol: User
) -> None:
    a, b, c = alice.account, bob.account, carol.account
    dave = (await make.user("dave")).account
    await make.follow(a, b)
    await make.follow(a, dave, show_reblogs=False)
    original = await make.status(c, "carol's painting")
    bob_boost = await make.status(b, reblog_of=original)
    dave_boost = await make.status(dave, reblog_of=original)
    dave_own = await make.status(dave, "dave's own work")

    response = await alice_api.get("/api/v1/timelines/home")
    assert ids(response) == [str(dave_own.id), str(bob_boost.id)]
    boost = response.json()[1]
    assert boost["reblog"]["id"] == str(original.id)
    assert boost["reblog"]["account"]["username"] == "carol"
    assert str(dave_boost.id) not in ids(response)


async def test_home_hides_a_boost_whose_original_the_viewer_cannot_see(
    make: Factory, alice_api: httpx.AsyncClient, alice: User, bob: User, carol: User
) -> None:
    await make.follow(alice.account, bob.account)
    hidden = await make.status(carol.account, "carol for her followers", visibility="private")
    await make.status(bob.account, reblog_of=hidden)
    draft = await make.status(carol.account, "carol's draft", published=False)
    await make.status(bob.account, reblog_of=draft)
    assert ids(await alice_api.get("/api/v1/timelines/home")) == []


async def test_home_shows_direct_statuses_only_to_those_mentioned(
    make: Factory, alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User,
    bob: User, carol: User,
) -> None:
    a, b, c = alice.account, bob.account, carol.account
    await make.follow(a, c)
    await make.follow(b, c)
    to_alice = await make.status(c, "@alice a secret", visibility="direct", mentions=[a])
    to_bob = await make.status(c, "@bob another", visibility="direct", mentions=[b])
    mentioned_private = await make.status(c, "@alice for followers", visibility="private",
                                          mentions=[a])

    assert ids(await alice_api.get("/api/v1/timelines/home")) == [
        str(mentioned_private.id), str(to_alice.id)]
    assert ids(await bob_api.get("/api/v1/timelines/home")) == [
        str(mentioned_private.id), str(to_bob.id)]


async def test_home_is_only_for_a_signed_in_user_with_the_scope(
    client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    assert (await client.get("/api/v1/timelines/home")).status_code == 401
    async with await scoped_client(client, db, alice, "read:accounts") as narrow:
        response = await narrow.get("/api/v1/timelines/home")
        assert response.status_code == 403
        assert response.json() == {"error": "This action is outside the authorized scopes"}
    async with await scoped_client(client, db, alice, "read:statuses") as granular:
        assert (await granular.get("/api/v1/timelines/home")).status_code == 200
    async with await scoped_client(client, db, None, "read") as app_only:
        assert (await app_only.get("/api/v1/timelines/home")).status_code == 422


async def test_home_pages_by_status_id_and_links_next_then_prev(
    make: Factory, alice_api: httpx.AsyncClient, alice: User
) -> None:
    statuses = [await make.status(alice.account, f"number {n}") for n in range(5)]
    newest_first = [str(s.id) for s in reversed(statuses)]

    first = await alice_api.get("/api/v1/timelines/home", params={"limit": "2"})
    assert ids(first) == newest_first[:2]
    assert links(first)["next"] == (f"{BASE}/api/v1/timelines/home?limit=2"
                                    f"&max_id={newest_first[1]}")
    pages = await follow_links(alice_api, first, "next")
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]

    # prev from the oldest page walks back up, each page newest first.
    last = await alice_api.get("/api/v1/timelines/home",
                               params={"limit": "2", "max_id": newest_first[3]})
    assert ids(last) == newest_first[4:]
    assert await follow_links(alice_api, last, "prev") == [
        newest_first[4:], newest_first[2:4], newest_first[:2]]

    since = await alice_api.get("/api/v1/timelines/home",
                                params={"since_id": newest_first[3], "limit": "2"})
    assert ids(since) == newest_first[:2]  # the newest above the point
    min_page = await alice_api.get("/api/v1/timelines/home",
                                   params={"min_id": newest_first[3], "limit": "2"})
    assert ids(min_page) == newest_first[1:3]  # the ones just above the point
    between = await alice_api.get("/api/v1/timelines/home",
                                  params={"max_id": newest_first[0], "since_id": newest_first[3]})
    assert ids(between) == newest_first[1:3]


async def test_a_token_in_the_query_is_not_written_into_the_links(
    make: Factory, client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    for n in range(3):
        await make.status(alice.account, f"post {n}")
    token = await make_token(db, alice)
    page = await client.get("/api/v1/timelines/home",
                            params={"limit": "2", "access_token": token, "local": "true"})
    assert page.status_code == 200 and len(ids(page)) == 2
    assert token not in page.headers["link"]
    assert links(page)["next"].startswith(f"{BASE}/api/v1/timelines/home?local=true&limit=2&max_id=")


async def test_timeline_parameters_never_fail_badly(
    make: Factory, alice_api: httpx.AsyncClient, alice: User
) -> None:
    for n in range(3):
        await make.status(alice.account, f"post {n}")
    bad_limit = await alice_api.get("/api/v1/timelines/home", params={"limit": "lots"})
    assert bad_limit.status_code == 422
    assert bad_limit.json() == {"error": "Validation failed: limit must be a number"}
    # Unreadable cursors are ignored, as Mastodon does; limits are clamped.
    odd = await alice_api.get("/api/v1/timelines/home",
                              params={"max_id": "abc", "since_id": "9" * 40, "limit": "0"})
    assert len(ids(odd)) == 1
    many = await alice_api.get("/api/v1/timelines/home", params={"limit": "1000"})
    assert len(ids(many)) == 3
    assert "limit=40" in links(many)["next"]
    bad_flag = await alice_api.get("/api/v1/timelines/public", params={"local": "maybe"})
    assert bad_flag.status_code == 422


# --------------------------------------------------------------------------- public


async def test_public_timeline_lists_public_originals_only(
    make: Factory, client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    a, b = alice.account, bob.account
    public = await make.status(a, "public work")
    await make.status(a, "unlisted", visibility="unlisted")
    await make.status(a, "followers", visibility="private")
    await make.status(a, "direct", visibility="direct", mentions=[b])
    await make.status(a, "draft", published=False)
    await make.status(b, reblog_of=public)
    await make.status(b, "a reply to alice", reply_to=public)
    thread = await make.status(a, "alice continues", reply_to=public)

    assert ids(await client.get("/api/v1/timelines/public")) == [str(thread.id), str(public.id)]


async def test_public_timeline_filters_local_remote_and_media(
    make: Factory, client: httpx.AsyncClient, alice: User
) -> None:
    remote = await make.remote_account("zoe")
    local_text = await make.status(alice.account, "words")
    local_image = await make.status(alice.account, "an image", media=2)
    remote_text = await make.status(remote, "remote words")
    remote_image = await make.status(remote, "remote image", media=1)

    async def public(**params: str) -> list[str]:
        return ids(await client.get("/api/v1/timelines/public", params=params))

    assert await public() == [str(s.id) for s in
                              (remote_image, remote_text, local_image, local_text)]
    assert await public(local="true") == [str(local_image.id), str(local_text.id)]
    assert await public(remote="true") == [str(remote_image.id), str(remote_text.id)]
    assert await public(only_media="true") == [str(remote_image.id), str(local_image.id)]
    assert await public(only_media="1", local="1") == [str(local_image.id)]
    assert await public(local="false") == await public()


async def test_public_timeline_accepts_a_viewer_and_checks_its_scope(
    make: Factory, client: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    status = await make.status(alice.account, "hello")
    await make.favourite(bob.account, status)
    async with await scoped_client(client, db, bob, "read:statuses") as viewer:
        response = await viewer.get("/api/v1/timelines/public")
        assert ids(response) == [str(status.id)]
        assert response.json()[0]["favourited"] is True
    async with await scoped_client(client, db, bob, "write") as narrow:
        assert (await narrow.get("/api/v1/timelines/public")).status_code == 403
    bad = await client.get("/api/v1/timelines/public",
                           headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401


# ------------------------------------------------------------------------------ tags


async def test_tag_timeline_matches_normalised_names_and_public_statuses(
    make: Factory, client: httpx.AsyncClient, alice: User, bob: User
) -> None:
    tagged = await make.status(alice.account, "#Ink sketch", tags=["ink"])
    reply = await make.status(bob.account, "nice #ink", tags=["ink"], reply_to=tagged)
    await make.status(alice.account, "#ink quietly", tags=["ink"], visibility="unlisted")
    await make.status(alice.account, "#ink draft", tags=["ink"], published=False)
    await make.status(alice.account, "#oil", tags=["oil"])
    await make.status(bob.account, reblog_of=tagged)

    expected = [str(reply.id), str(tagged.id)]
    assert ids(await client.get("/api/v1/timelines/tag/ink")) == expected
    assert ids(await client.get("/api/v1/timelines/tag/INK")) == expected
    assert ids(await client.get("/api/v1/timelines/tag/%EF%BC%A9nk")) == expected  # fullwidth Ｉ
    assert ids(await client.get("/api/v1/timelines/tag/nothing")) == []


async def test_tag_timeline_any_all_none(
    make: Factory, client: httpx.AsyncClient, alice: User
) -> None:
    a = alice.account
    ink = await make.status(a, "ink", tags=["ink"])
    ink_paper = await make.status(a, "ink on paper", tags=["ink", "paper"])
    ink_paper_wip = await make.status(a, "wip", tags=["ink", "paper", "wip"])
    oil = await make.status(a, "oil", tags=["oil"])
    oil_paper = await make.status(a, "oil on paper", tags=["oil", "paper"], media=1)

    async def tag(name: str, **params: Any) -> list[str]:
        return ids(await client.get(f"/api/v1/timelines/tag/{name}", params=params))

    assert await tag("ink", **{"any[]": ["oil"]}) == [
        str(s.id) for s in (oil_paper, oil, ink_paper_wip, ink_paper, ink)]
    assert await tag("ink", **{"all[]": ["Paper"]}) == [str(ink_paper_wip.id), str(ink_paper.id)]
    assert await tag("ink", **{"all[]": ["paper"], "none[]": ["wip"]}) == [str(ink_paper.id)]
    assert await tag("ink", **{"none[]": ["paper", "unknown"]}) == [str(ink.id)]
    assert await tag("ink", **{"all[]": ["unknown"]}) == []
    assert await tag("ink", **{"any[]": ["oil"], "only_media": "true"}) == [str(oil_paper.id)]
    assert await tag("ink", remote="true") == []
    assert await tag("ink", local="true") == [str(s.id) for s in (ink_paper_wip, ink_paper, ink)]


async def test_tag_timeline_pages_with_links(
    make: Factory, client: httpx.AsyncClient, alice: User
) -> None:
    statuses = [await make.status(alice.account, f"#ink {n}", tags=["ink"]) for n in range(3)]
    first = await client.get("/api/v1/timelines/tag/ink", params={"limit": "2"})
    pages = await follow_links(client, first, "next")
    assert pages == [[str(statuses[2].id), str(statuses[1].id)], [str(statuses[0].id)]]


# ------------------------------------------------------------------ bookmarks, favourites


@pytest.mark.parametrize("kind", ["bookmarks", "favourites"])
async def test_saved_lists_are_ordered_by_when_saved_and_paged_by_that(
    make: Factory, alice_api: httpx.AsyncClient, alice: User, bob: User, kind: str
) -> None:
    save = make.bookmark if kind == "bookmarks" else make.favourite
    first, second, third = [await make.status(bob.account, f"work {n}") for n in range(3)]
    saved = [await save(alice.account, s) for s in (second, first, third)]
    await save(bob.account, first)  # bob's own list does not show up in alice's

    response = await alice_api.get(f"/api/v1/{kind}", params={"limit": "2"})
    assert ids(response) == [str(third.id), str(first.id)]
    assert links(response)["next"] == f"{BASE}/api/v1/{kind}?limit=2&max_id={saved[1].id}"
    assert links(response)["prev"] == f"{BASE}/api/v1/{kind}?limit=2&min_id={saved[2].id}"
    pages = await follow_links(alice_api, response, "next")
    assert pages == [[str(third.id), str(first.id)], [str(second.id)]]
    flag = "bookmarked" if kind == "bookmarks" else "favourited"
    assert all(entity[flag] for entity in response.json())


@pytest.mark.parametrize("kind", ["bookmarks", "favourites"])
async def test_saved_lists_leave_out_what_the_viewer_can_no_longer_see(
    make: Factory, db: Database, alice_api: httpx.AsyncClient, alice: User, bob: User, kind: str
) -> None:
    save = make.bookmark if kind == "bookmarks" else make.favourite
    await make.follow(alice.account, bob.account)
    private = await make.status(bob.account, "followers only", visibility="private")
    public = await make.status(bob.account, "public")
    await save(alice.account, private)
    await save(alice.account, public)
    assert ids(await alice_api.get(f"/api/v1/{kind}")) == [str(public.id), str(private.id)]
    async with db.session() as session:
        follow = await session.scalar(select(Follow))
        await session.delete(follow)
        await session.commit()
    assert ids(await alice_api.get(f"/api/v1/{kind}")) == [str(public.id)]


@pytest.mark.parametrize(("kind", "scope", "other"), [
    ("bookmarks", "read:bookmarks", "read:favourites"),
    ("favourites", "read:favourites", "read:bookmarks"),
])
async def test_saved_lists_need_their_scope(
    client: httpx.AsyncClient, db: Database, alice: User, kind: str, scope: str, other: str
) -> None:
    assert (await client.get(f"/api/v1/{kind}")).status_code == 401
    async with await scoped_client(client, db, alice, other) as wrong:
        assert (await wrong.get(f"/api/v1/{kind}")).status_code == 403
    async with await scoped_client(client, db, alice, scope) as right:
        response = await right.get(f"/api/v1/{kind}")
        assert response.status_code == 200 and response.json() == []
        assert "link" not in response.headers


async def test_a_non_ascii_tag_pages_with_working_links(
    make: Factory, client: httpx.AsyncClient, alice: User
) -> None:
    older = await make.status(alice.account, "#水彩 one", tags=["水彩"])
    newer = await make.status(alice.account, "#水彩 two", tags=["水彩"])
    first = await client.get("/api/v1/timelines/tag/水彩", params={"limit": "1"})
    assert links(first)["next"].startswith(f"{BASE}/api/v1/timelines/tag/%E6%B0%B4%E5%BD%A9?")
    assert await follow_links(client, first, "next") == [[str(newer.id)], [str(older.id)]]


async def test_public_timelines_are_cached_until_a_status_changes(
    settings: Settings, alice: User, db: Database
) -> None:
    """More in test_timelines_shared_pages.py (signed-in viewers on the shared pages)."""
    from server.app import AppOptions, create_app
    from tests.conftest import authorized, make_token

    app = create_app(settings.with_changes(public_cache_seconds=60), options=AppOptions(run_workers=False))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="https://easel.test") as anonymous:
            async with authorized(anonymous, await make_token(db, alice)) as alice_api:
                assert (await anonymous.get("/api/v1/timelines/public")).json() == []
                posted = (await alice_api.post("/api/v1/statuses", json={"status": "fresh"})).json()
                # A published status empties the cache: every reader sees it now …
                assert [s["id"] for s in (await anonymous.get(
                    "/api/v1/timelines/public")).json()] == [posted["id"]]
                assert [s["id"] for s in (await alice_api.get(
                    "/api/v1/timelines/public")).json()] == [posted["id"]]
                # … while a change no status event announces waits out the cache's lifetime.
                async with db.session() as session:
                    await session.execute(update(Status).where(Status.id == int(posted["id"]))
                                          .values(replies_count=7))
                    await session.commit()
                assert (await anonymous.get("/api/v1/timelines/public")).json()[0][
                    "replies_count"] == 0
                assert (await anonymous.get("/api/v1/timelines/public?limit=5")).json()[0][
                    "replies_count"] == 7


async def test_the_prebuilt_home_statement_is_each_viewers_own_and_follows_changes(
    make: Factory, client: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    """The home statement is built once per process and run with the viewer, the time and
    the cursors bound (``timelines.PREBUILT``): two viewers get their own pages from it,
    a mute counts until its end (the bound time, compared as stored on either database),
    and a domain silence made after it was built applies at once (a new statement)."""
    from server.models import DomainBlock, Mute, TagFollow
    from server.services import timelines

    timelines.PREBUILT.statements.clear()
    carol = await make.user("dana")
    painter = await make.remote_account("painter", "paint.example")
    await make.follow(alice.account, bob.account)
    await make.follow(carol.account, painter)
    tag = await make.tag("ink")
    await make.add(TagFollow(account_id=alice.account_id, tag_id=tag.id))
    by_bob = await make.status(bob.account, "bob's")
    by_painter = await make.status(painter, "painted #ink", tags=["ink"])
    async with authorized(client, await make_token(db, alice)) as as_alice:
        assert ids(await as_alice.get("/api/v1/timelines/home")) == [str(by_painter.id), str(by_bob.id)]
        async with authorized(client, await make_token(db, carol)) as as_carol:
            assert ids(await as_carol.get("/api/v1/timelines/home")) == [str(by_painter.id)]
        assert len(timelines.PREBUILT.statements) == 1  # one statement served both

        now = datetime.now(UTC)
        await make.add(Mute(account_id=alice.account_id, target_account_id=bob.account_id,
                            expires_at=now - timedelta(minutes=1)))
        assert str(by_bob.id) in ids(await as_alice.get("/api/v1/timelines/home"))  # mute over
        async with db.session() as session:
            await session.execute(update(Mute).values(expires_at=now + timedelta(hours=1)))
            await session.commit()
        assert ids(await as_alice.get("/api/v1/timelines/home")) == [str(by_painter.id)]

        # A followed tag brings posts from silenced domains no more; followed accounts stay.
        await make.add(DomainBlock(domain="paint.example", severity="silence"))
        assert ids(await as_alice.get("/api/v1/timelines/home")) == []
        async with authorized(client, await make_token(db, carol)) as as_carol:
            assert ids(await as_carol.get("/api/v1/timelines/home")) == [str(by_painter.id)]
        assert len(timelines.PREBUILT.statements) == 2
