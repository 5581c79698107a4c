"""Two Easel instances federating in one process: what one side's people do, the other
side's people see, through the client API only.

Given alice on art.example and bob on paint.example (see ``conftest.py``), each story
does something through one instance's Mastodon API, lets both instances run their queues
until they are quiet (:func:`settle`), and reads the result through the other instance's
API: follows (unlocked, locked, rejected, undone), a post with an image and hashtags,
likes and boosts and their undoing, replies and mentions, followers-only and direct
posts, an edit, a deletion, a profile update, pins and featured tags, reports (``Flag``) both ways, and domain
blocks (suspend, silence).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from server.models import Account, Report
from server.services import domain_blocks
from tests.e2e.conftest import Instance, Network, Person, settle
from tests.protect import images
from tests.protect.conftest import upload

JSON = dict[str, Any]


# ------------------------------------------------------------------------------ helpers

async def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: " \
                                           f"{response.status_code} {response.text}"
    return response.json()


async def resolve_account(person: Person, handle: str) -> JSON:
    """What ``person``'s app gets searching for ``handle`` with resolve: that account."""
    found = await ok(await person.api.get("/api/v2/search", params={
        "q": f"@{handle}", "resolve": "true", "type": "accounts"}))
    matches = [account for account in found["accounts"] if account["acct"] == handle]
    assert matches, f"{handle} not found: {found}"
    account: JSON = matches[0]
    return account


async def resolve_status(person: Person, uri: str) -> JSON:
    """The status at ``uri`` as ``person``'s instance knows it (fetched if need be)."""
    found = await ok(await person.api.get("/api/v2/search", params={
        "q": uri, "resolve": "true", "type": "statuses"}))
    assert len(found["statuses"]) == 1, f"{uri} not found: {found}"
    status: JSON = found["statuses"][0]
    return status


async def relationship(person: Person, account_id: str) -> JSON:
    rows = await ok(await person.api.get("/api/v1/accounts/relationships",
                                         params={"id[]": account_id}))
    row: JSON = rows[0]
    return row


async def follow(person: Person, target: Person, *instances: Instance) -> JSON:
    """``person`` follows ``target`` (found by handle) and the instances settle."""
    account = await resolve_account(person, target.handle)
    await ok(await person.api.post(f"/api/v1/accounts/{account['id']}/follow"))
    await settle(*instances)
    return account


async def me(person: Person) -> JSON:
    account: JSON = await ok(await person.api.get("/api/v1/accounts/verify_credentials"))
    return account


async def notifications(person: Person, type_: str) -> list[JSON]:
    rows: list[JSON] = await ok(await person.api.get("/api/v1/notifications",
                                                     params={"types[]": type_}))
    return rows


async def post(person: Person, **data: Any) -> JSON:
    status: JSON = await ok(await person.api.post("/api/v1/statuses", json=data))
    return status


async def home(person: Person) -> list[JSON]:
    rows: list[JSON] = await ok(await person.api.get("/api/v1/timelines/home"))
    return rows


async def post_with_image(person: Person, *instances: Instance, text: str) -> JSON:
    """``person`` uploads an image (alt text, focal point), waits for its protection as
    the app would, and posts it with ``text``."""
    uploaded = await ok(await upload(person.api, images.jpeg((96, 64)), fields={
        "description": "A red study in oil", "focus": "0.5,-0.25"}), 202)
    await settle(*instances)  # the protect job makes the renditions
    media = await ok(await person.api.get(f"/api/v1/media/{uploaded['id']}"))
    assert media["url"], media
    return await post(person, status=text, media_ids=[uploaded["id"]])


@pytest.fixture
async def alice(art: Instance) -> Person:
    return await art.person("alice")


@pytest.fixture
async def bob(paint: Instance) -> Person:
    return await paint.person("bob")


# ------------------------------------------------------------------------------ follows

async def test_following_an_unlocked_account_is_accepted_and_counted_on_both_sides(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    bob_there = await resolve_account(alice, bob.handle)
    assert bob_there["acct"] == "bob@paint.example" and bob_there["uri"] == bob.uri
    answer = await ok(await alice.api.post(f"/api/v1/accounts/{bob_there['id']}/follow"))
    assert answer["following"] or answer["requested"]
    await settle(art, paint)

    rel = await relationship(alice, bob_there["id"])
    assert (rel["following"], rel["requested"]) == (True, False)
    assert (await me(alice))["following_count"] == 1
    assert (await me(bob))["followers_count"] == 1
    followers = await ok(await bob.api.get(f"/api/v1/accounts/{bob.account_id}/followers"))
    assert [f["acct"] for f in followers] == ["alice@art.example"]
    assert [n["account"]["acct"] for n in await notifications(bob, "follow")] == ["alice@art.example"]


async def test_a_locked_account_approves_one_request_and_rejects_another(
    art: Instance, paint: Instance, alice: Person
) -> None:
    bob = await paint.person("bob", locked=True)
    carol = await art.person("carol")
    bob_for_alice = await resolve_account(alice, bob.handle)
    assert bob_for_alice["locked"] is True
    answer = await ok(await alice.api.post(f"/api/v1/accounts/{bob_for_alice['id']}/follow"))
    assert answer["requested"] is True and answer["following"] is False
    bob_for_carol = await follow(carol, bob, art, paint)

    requests = await ok(await bob.api.get("/api/v1/follow_requests"))
    assert sorted(r["acct"] for r in requests) == ["alice@art.example", "carol@art.example"]
    assert len(await notifications(bob, "follow_request")) == 2
    by_acct = {r["acct"]: r["id"] for r in requests}
    await ok(await bob.api.post(f"/api/v1/follow_requests/{by_acct['alice@art.example']}/authorize"))
    await ok(await bob.api.post(f"/api/v1/follow_requests/{by_acct['carol@art.example']}/reject"))
    await settle(art, paint)

    assert (await relationship(alice, bob_for_alice["id"]))["following"] is True
    carols = await relationship(carol, bob_for_carol["id"])
    assert (carols["following"], carols["requested"]) == (False, False)
    assert (await me(bob))["followers_count"] == 1
    assert (await me(alice))["following_count"] == 1 and (await me(carol))["following_count"] == 0


async def test_unfollowing_is_undone_on_the_other_side(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    bob_there = await follow(alice, bob, art, paint)
    await ok(await alice.api.post(f"/api/v1/accounts/{bob_there['id']}/unfollow"))
    await settle(art, paint)
    assert (await me(bob))["followers_count"] == 0
    assert await ok(await bob.api.get(f"/api/v1/accounts/{bob.account_id}/followers")) == []
    # bob's next post has no one to go to on art.example.
    await post(bob, status="after the unfollow")
    await settle(art, paint)
    assert await home(alice) == []


# ------------------------------------------------------------------------------- posts

async def test_a_post_with_an_image_and_hashtags_arrives_in_a_followers_home(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    await follow(alice, bob, art, paint)
    original = await post_with_image(bob, art, paint, text="New study #Oil #portrait")
    await settle(art, paint)

    timeline = await home(alice)
    assert len(timeline) == 1
    arrived = timeline[0]
    assert arrived["uri"] == original["uri"] and arrived["url"] == original["url"]
    assert arrived["account"]["acct"] == "bob@paint.example"
    assert "New study" in arrived["content"]
    assert sorted(tag["name"].lower() for tag in arrived["tags"]) == ["oil", "portrait"]
    assert sorted(t["name"] for t in arrived["tags"]) == sorted(t["name"] for t in original["tags"])
    assert arrived["visibility"] == "public"
    [media] = arrived["media_attachments"]
    assert media["type"] == "image"
    assert media["url"] == original["media_attachments"][0]["url"]  # referenced, not copied
    assert media["url"].startswith("https://paint.example/")
    assert media["description"] == "A red study in oil"
    assert media["blurhash"] == original["media_attachments"][0]["blurhash"]
    assert media["meta"]["focus"] == {"x": 0.5, "y": -0.25}
    tagged = await ok(await alice.api.get("/api/v1/timelines/tag/oil"))
    assert [s["uri"] for s in tagged] == [original["uri"]]


async def test_likes_and_boosts_notify_and_count_on_the_other_side_and_are_undone(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    await follow(alice, bob, art, paint)
    original = await post(bob, status="Like me #ink")
    await settle(art, paint)
    copy = await resolve_status(alice, original["uri"])

    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/favourite"))
    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/reblog"))
    await settle(art, paint)
    seen = await ok(await bob.api.get(f"/api/v1/statuses/{original['id']}"))
    assert (seen["favourites_count"], seen["reblogs_count"]) == (1, 1)
    favourites = await notifications(bob, "favourite")
    assert [(n["account"]["acct"], n["status"]["id"]) for n in favourites] == [
        ("alice@art.example", original["id"])]
    reblogs = await notifications(bob, "reblog")
    assert [(n["account"]["acct"], n["status"]["id"]) for n in reblogs] == [
        ("alice@art.example", original["id"])]
    liked_by = await ok(await bob.api.get(f"/api/v1/statuses/{original['id']}/favourited_by"))
    assert [a["acct"] for a in liked_by] == ["alice@art.example"]

    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/unfavourite"))
    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/unreblog"))
    await settle(art, paint)
    seen = await ok(await bob.api.get(f"/api/v1/statuses/{original['id']}"))
    assert (seen["favourites_count"], seen["reblogs_count"]) == (0, 0)
    assert await ok(await bob.api.get(f"/api/v1/statuses/{original['id']}/reblogged_by")) == []


async def test_a_boost_reaches_the_boosters_followers_on_another_server(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    carol = await paint.person("carol")
    await follow(carol, alice, art, paint)  # carol (paint) follows alice (art)
    original = await post(bob, status="Worth sharing")
    await settle(art, paint)
    copy = await resolve_status(alice, original["uri"])
    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/reblog"))
    await settle(art, paint)
    [boost] = await home(carol)
    assert boost["account"]["acct"] == "alice@art.example"
    assert boost["reblog"]["uri"] == original["uri"]
    assert boost["reblog"]["account"]["acct"] == "bob"  # bob is local to carol


async def test_a_reply_with_a_mention_shows_in_both_threads(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    await follow(alice, bob, art, paint)
    original = await post(bob, status="What do you think?")
    await settle(art, paint)
    copy = await resolve_status(alice, original["uri"])
    reply = await post(alice, status="@bob@paint.example lovely colours",
                       in_reply_to_id=copy["id"])
    await settle(art, paint)

    there = await ok(await bob.api.get(f"/api/v1/statuses/{original['id']}/context"))
    assert [(s["uri"], s["account"]["acct"]) for s in there["descendants"]] == [
        (reply["uri"], "alice@art.example")]
    mentions = await notifications(bob, "mention")
    assert [n["status"]["uri"] for n in mentions] == [reply["uri"]]
    reply_there = there["descendants"][0]
    assert reply_there["in_reply_to_id"] == original["id"]

    answer = await post(bob, status="@alice@art.example thank you!", in_reply_to_id=reply_there["id"])
    await settle(art, paint)
    here = await ok(await alice.api.get(f"/api/v1/statuses/{reply['id']}/context"))
    assert [s["uri"] for s in here["ancestors"]] == [original["uri"]]
    assert [s["uri"] for s in here["descendants"]] == [answer["uri"]]
    assert [n["status"]["uri"] for n in await notifications(alice, "mention")] == [answer["uri"]]


async def test_followers_only_and_direct_posts_reach_only_their_audience(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    carol = await art.person("carol")  # on art.example too, but follows no one
    await follow(alice, bob, art, paint)
    private = await post(bob, status="for my followers", visibility="private")
    direct = await post(bob, status="@alice@art.example just for you", visibility="direct")
    await settle(art, paint)

    uris = {s["uri"]: s for s in await home(alice)}
    assert uris[private["uri"]]["visibility"] == "private"
    assert uris[direct["uri"]]["visibility"] == "direct"
    assert [n["status"]["uri"] for n in await notifications(alice, "mention")] == [direct["uri"]]
    for status in (private, direct):
        found = await ok(await carol.api.get("/api/v2/search", params={
            "q": status["uri"], "resolve": "true", "type": "statuses"}))
        assert found["statuses"] == []
        copy_id = uris[status["uri"]]["id"]
        assert (await carol.api.get(f"/api/v1/statuses/{copy_id}")).status_code == 404
    assert await home(carol) == []


async def test_an_edit_replaces_the_copy_on_the_other_side(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    """An edit through the client API arrives as an Update: the copy changes, keeps the
    versions in its history, and tells alice, who boosted it."""
    await follow(alice, bob, art, paint)
    original = await post(bob, status="first draft")
    await settle(art, paint)
    copy = await resolve_status(alice, original["uri"])
    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/reblog"))
    await settle(art, paint)
    await ok(await bob.api.put(f"/api/v1/statuses/{original['id']}",
                               json={"status": "final version", "spoiler_text": "spoilers"}))
    await settle(art, paint)
    copy = await resolve_status(alice, original["uri"])
    assert "final version" in copy["content"] and "first draft" not in copy["content"]
    assert copy["spoiler_text"] == "spoilers" and copy["edited_at"] is not None
    versions = await ok(await alice.api.get(f"/api/v1/statuses/{copy['id']}/history"))
    assert [("first draft" in v["content"], v["spoiler_text"]) for v in versions] \
        == [(True, ""), (False, "spoilers")]
    assert [n["status"]["id"] for n in await notifications(alice, "update")] == [copy["id"]]


async def test_a_deleted_post_is_gone_on_the_other_side(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    await follow(alice, bob, art, paint)
    original = await post(bob, status="a mistake")
    await settle(art, paint)
    copy = await resolve_status(alice, original["uri"])
    await ok(await bob.api.delete(f"/api/v1/statuses/{original['id']}"))
    await settle(art, paint)
    assert (await alice.api.get(f"/api/v1/statuses/{copy['id']}")).status_code == 404
    assert await home(alice) == []
    # A late search for it does not bring it back.
    found = await ok(await alice.api.get("/api/v2/search", params={
        "q": original["uri"], "resolve": "true", "type": "statuses"}))
    assert found["statuses"] == []


async def test_a_profile_update_is_visible_remotely(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    bob_there = await follow(alice, bob, art, paint)
    await ok(await bob.api.patch("/api/v1/accounts/update_credentials", data={
        "display_name": "Bob Painter", "note": "Oil & ink"}))
    await settle(art, paint)
    seen = await ok(await alice.api.get(f"/api/v1/accounts/{bob_there['id']}"))
    assert seen["display_name"] == "Bob Painter"
    assert "Oil &amp; ink" in seen["note"]


async def test_pins_and_featured_tags_show_on_the_profile_on_the_other_side(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    bob_there = await follow(alice, bob, art, paint)
    work = await post(bob, status="The harbour at dawn #Gouache")
    await settle(art, paint)
    await ok(await bob.api.post(f"/api/v1/statuses/{work['id']}/pin"))
    featured = await ok(await bob.api.post("/api/v1/featured_tags", data={"name": "Gouache"}))
    await settle(art, paint)
    profile = f"/api/v1/accounts/{bob_there['id']}"
    pinned = await ok(await alice.api.get(f"{profile}/statuses", params={"pinned": "true"}))
    assert [s["uri"] for s in pinned] == [work["uri"]]
    tags = await ok(await alice.api.get(f"{profile}/featured_tags"))
    assert [t["name"] for t in tags] == ["Gouache"]
    assert tags[0]["url"] == "https://paint.example/@bob/tagged/gouache"  # on bob's server

    await ok(await bob.api.post(f"/api/v1/statuses/{work['id']}/unpin"))
    await ok(await bob.api.delete(f"/api/v1/featured_tags/{featured['id']}"))
    await settle(art, paint)
    assert await ok(await alice.api.get(f"{profile}/statuses", params={"pinned": "true"})) == []
    assert await ok(await alice.api.get(f"{profile}/featured_tags")) == []


# ------------------------------------------------------------------------------- reports

async def test_reports_are_forwarded_both_ways_as_flags_by_the_instance_actor(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    await follow(alice, bob, art, paint)
    offending = await post(bob, status="offending")
    await settle(art, paint)
    bob_there = await resolve_account(alice, bob.handle)
    copy = await resolve_status(alice, offending["uri"])
    report = await ok(await alice.api.post("/api/v1/reports", json={
        "account_id": bob_there["id"], "status_ids": [copy["id"]], "comment": "Not okay",
        "category": "spam", "forward": True}))
    assert report["forwarded"] is True
    alice_there = await resolve_account(bob, alice.handle)
    await ok(await bob.api.post("/api/v1/reports", json={
        "account_id": alice_there["id"], "comment": "Harassment", "forward": "true"}))
    await settle(art, paint)

    async with paint.db.session() as session:
        received = await session.scalar(select(Report).where(Report.uri.is_not(None)))
        assert received is not None
        reporter = await session.get(Account, received.account_id)
        assert reporter is not None and reporter.uri == "https://art.example/actor"
        assert received.target_account_id == int(bob.account_id)
        assert (received.status_ids, received.comment) == ([int(offending["id"])], "Not okay")
    async with art.db.session() as session:
        received = await session.scalar(select(Report).where(Report.uri.is_not(None)))
        assert received is not None and received.target_account_id == int(alice.account_id)
        reporter = await session.get(Account, received.account_id)
        assert reporter is not None and reporter.uri == "https://paint.example/actor"
        assert received.comment == "Harassment"


# ------------------------------------------------------------------------- domain blocks

async def test_a_suspended_domain_loses_its_follows_and_is_heard_no_more(
    art: Instance, paint: Instance, network: Network, alice: Person, bob: Person
) -> None:
    await follow(alice, bob, art, paint)
    original = await post(bob, status="before the block")
    await settle(art, paint)
    copy = await resolve_status(alice, original["uri"])
    async with paint.db.session() as session:
        result = await domain_blocks.block_domain(session, "art.example", own_domain=paint.domain)
    assert result.follows_removed == 1
    assert (await me(bob))["followers_count"] == 0

    await ok(await alice.api.post(f"/api/v1/statuses/{copy['id']}/favourite"))
    await settle(art, paint)
    seen = await ok(await bob.api.get(f"/api/v1/statuses/{original['id']}"))
    assert seen["favourites_count"] == 0
    assert await notifications(bob, "favourite") == []
    before = len(network.posted_to("art.example"))
    await post(bob, status="after the block")
    await settle(art, paint)
    assert len(network.posted_to("art.example")) == before  # nothing goes out to art


async def test_a_silenced_domain_stays_out_of_public_timelines_except_for_its_followers(
    art: Instance, paint: Instance, alice: Person, bob: Person
) -> None:
    await follow(alice, bob, art, paint)
    original = await post(bob, status="loud #news")
    await settle(art, paint)
    anonymous = art.client()
    everyone = await ok(await anonymous.get("/api/v1/timelines/public"))
    assert [s["uri"] for s in everyone] == [original["uri"]]

    async with art.db.session() as session:
        await domain_blocks.block_domain(session, "paint.example", own_domain=art.domain,
                                         severity="silence")
    assert await ok(await anonymous.get("/api/v1/timelines/public")) == []
    assert await ok(await anonymous.get("/api/v1/timelines/tag/news")) == []
    followed = await ok(await alice.api.get("/api/v1/timelines/public"))
    assert [s["uri"] for s in followed] == [original["uri"]]
    assert [s["uri"] for s in await home(alice)] == [original["uri"]]
