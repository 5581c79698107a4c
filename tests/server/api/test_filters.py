"""Filters through the client API: v2 CRUD with keywords and statuses, v1 phrases, and how
filters apply — ``filtered`` results with "warn", statuses left out with "hide" in every
timeline, notifications and threads, by context, whole words, expiry — plus bad input on
every write and Mastodon.py's filter methods."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from mastodon import Mastodon
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import utcnow
from server.models import Filter, FilterKeyword, User
from server.settings import Settings
from tests.server.api.live import OOB, LiveServer, live_server


async def post(api: httpx.AsyncClient, text: str, **extra: str) -> str:
    response = await api.post("/api/v1/statuses", data={"status": text, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def statuses(api: httpx.AsyncClient, path: str) -> dict[str, dict[str, Any]]:
    response = await api.get(path)
    assert response.status_code == 200, response.text
    return {s["id"]: s for s in response.json()}


async def new_filter(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await api.post("/api/v2/filters", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# ------------------------------------------------------------------ v2 CRUD

async def test_a_filter_is_made_with_keywords_changed_and_deleted(alice_api: httpx.AsyncClient) -> None:
    created = await new_filter(
        alice_api, title=" Spoilers ", context=["home", "public"], filter_action="hide",
        expires_in=3600, keywords_attributes=[{"keyword": "finale", "whole_word": True},
                                              {"keyword": "ending", "whole_word": False}])
    assert created["title"] == "Spoilers" and created["context"] == ["home", "public"]
    assert created["filter_action"] == "hide" and created["expires_at"].endswith("Z")
    assert [(k["keyword"], k["whole_word"]) for k in created["keywords"]] == [
        ("finale", True), ("ending", False)]
    assert created["statuses"] == []
    filter_id = created["id"]
    finale, ending = (k["id"] for k in created["keywords"])

    listed = (await alice_api.get("/api/v2/filters")).json()
    assert [f["id"] for f in listed] == [filter_id]
    assert (await alice_api.get(f"/api/v2/filters/{filter_id}")).json() == created

    changed = await alice_api.put(f"/api/v2/filters/{filter_id}", json={
        "title": "Plot", "context": ["thread"], "filter_action": "warn", "expires_in": "",
        "keywords_attributes": [{"id": finale, "keyword": "season finale"},
                                {"id": ending, "_destroy": True},
                                {"keyword": "twist"}]})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["title"], body["context"], body["filter_action"], body["expires_at"]) == (
        "Plot", ["thread"], "warn", None)
    assert [(k["keyword"], k["whole_word"]) for k in body["keywords"]] == [
        ("season finale", True), ("twist", True)]

    # An empty (or null) keywords list changes no keyword, as in Mastodon.
    for nothing in ([], None):
        same = await alice_api.put(f"/api/v2/filters/{filter_id}", json={
            "title": "Plot", "keywords_attributes": nothing})
        assert same.status_code == 200, same.text
        assert [k["keyword"] for k in same.json()["keywords"]] == ["season finale", "twist"]
    bare = await alice_api.post("/api/v2/filters", json={
        "title": "Empty", "context": ["home"], "keywords_attributes": []})
    assert bare.status_code == 200 and bare.json()["keywords"] == []
    await alice_api.delete(f"/api/v2/filters/{bare.json()['id']}")

    # A form works as well as JSON.
    form = await alice_api.put(f"/api/v2/filters/{filter_id}", data={
        "context[]": ["home", "notifications"], "keywords_attributes[][keyword]": "cliffhanger"})
    assert form.status_code == 200 and form.json()["context"] == ["home", "notifications"]
    assert "cliffhanger" in [k["keyword"] for k in form.json()["keywords"]]

    deleted = await alice_api.delete(f"/api/v2/filters/{filter_id}")
    assert deleted.status_code == 200 and deleted.json() == {}
    assert (await alice_api.get("/api/v2/filters")).json() == []
    assert (await alice_api.get(f"/api/v2/filters/{filter_id}")).status_code == 404


async def test_keywords_and_statuses_of_a_filter_have_their_own_endpoints(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient) -> None:
    filter_id = (await new_filter(alice_api, title="Noise", context=["home"]))["id"]
    added = await alice_api.post(f"/api/v2/filters/{filter_id}/keywords",
                                 data={"keyword": "crypto", "whole_word": "false"})
    assert added.status_code == 200
    keyword = added.json()
    assert (keyword["keyword"], keyword["whole_word"]) == ("crypto", False)
    assert (await alice_api.get(f"/api/v2/filters/{filter_id}/keywords")).json() == [keyword]
    assert (await alice_api.get(f"/api/v2/filters/keywords/{keyword['id']}")).json() == keyword
    renamed = await alice_api.put(f"/api/v2/filters/keywords/{keyword['id']}",
                                  json={"keyword": "nft", "whole_word": True})
    assert renamed.json() == {"id": keyword["id"], "keyword": "nft", "whole_word": True}
    assert (await alice_api.delete(f"/api/v2/filters/keywords/{keyword['id']}")).json() == {}
    assert (await alice_api.get(f"/api/v2/filters/{filter_id}/keywords")).json() == []

    bobs = await post(bob_api, "a post alice does not want to see again")
    rule = await alice_api.post(f"/api/v2/filters/{filter_id}/statuses", data={"status_id": bobs})
    assert rule.status_code == 200 and rule.json()["status_id"] == bobs
    rule_id = rule.json()["id"]
    assert (await alice_api.get(f"/api/v2/filters/{filter_id}/statuses")).json() == [rule.json()]
    assert (await alice_api.get(f"/api/v2/filters/statuses/{rule_id}")).json() == rule.json()
    assert (await alice_api.get(f"/api/v2/filters/{filter_id}")).json()["statuses"] == [rule.json()]
    twice = await alice_api.post(f"/api/v2/filters/{filter_id}/statuses", data={"status_id": bobs})
    assert twice.status_code == 422 and "already been taken" in twice.json()["error"]
    assert (await alice_api.delete(f"/api/v2/filters/statuses/{rule_id}")).json() == {}
    assert (await alice_api.get(f"/api/v2/filters/statuses/{rule_id}")).status_code == 404


async def test_bad_filter_requests_are_refused_and_nothing_is_half_written(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database) -> None:
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"context": ["home"]}, "Title can't be blank"),
        ({"title": "  ", "context": ["home"]}, "Title can't be blank"),
        ({"title": "x" * 256, "context": ["home"]}, "Title is too long"),
        ({"title": "t"}, "Context can't be blank"),
        ({"title": "t", "context": ["home", "everywhere"]}, "invalid context"),
        ({"title": "t", "context": ["home"], "filter_action": "explode"}, "Filter action"),
        ({"title": "t", "context": ["home"], "expires_in": "soon"}, "expires_in must be a number"),
        ({"title": "t", "context": ["home"], "expires_in": -5}, "greater than 0"),
        ({"title": "t", "context": ["home"], "expires_in": 10 ** 15}, "too far"),
        ({"title": "t", "context": ["home"], "keywords_attributes": [{"keyword": " "}]},
         "Keywords keyword can't be blank"),
        ({"title": "t", "context": ["home"], "keywords_attributes": [{"keyword": "k" * 256}]},
         "too long"),
        ({"title": "t", "context": ["home"], "keywords_attributes": "word"}, "list of objects"),
        ({"title": "t", "context": ["home"], "keywords_attributes": [{"keyword": "a",
                                                                    "whole_word": "maybe"}]},
         "whole_word must be true or false"),
        ({"title": {"a": 1}, "context": ["home"]}, "Title can't be blank"),
    ]
    for body, message in refusals:
        response = await alice_api.post("/api/v2/filters", json=body)
        assert response.status_code == 422, (body, response.text)
        assert message in response.json()["error"], (body, response.json())
    assert await count(db, Filter) == 0 and await count(db, FilterKeyword) == 0

    mine = await new_filter(alice_api, title="Mine", context=["home"],
                            keywords_attributes=[{"keyword": "kept"}])
    theirs = await new_filter(bob_api, title="Theirs", context=["home"],
                              keywords_attributes=[{"keyword": "bobs"}])
    their_keyword = theirs["keywords"][0]["id"]
    # Another account's filter, keyword or id that is no number: not found, never changed.
    for method, path in [("GET", f"/api/v2/filters/{theirs['id']}"),
                         ("PUT", f"/api/v2/filters/{theirs['id']}"),
                         ("DELETE", f"/api/v2/filters/{theirs['id']}"),
                         ("GET", f"/api/v2/filters/{theirs['id']}/keywords"),
                         ("POST", f"/api/v2/filters/{theirs['id']}/keywords"),
                         ("GET", f"/api/v2/filters/keywords/{their_keyword}"),
                         ("PUT", f"/api/v2/filters/keywords/{their_keyword}"),
                         ("DELETE", f"/api/v2/filters/keywords/{their_keyword}"),
                         ("GET", f"/api/v2/filters/{theirs['id']}/statuses"),
                         ("POST", f"/api/v2/filters/{theirs['id']}/statuses"),
                         ("GET", "/api/v2/filters/statuses/123"),
                         ("DELETE", "/api/v2/filters/statuses/123"),
                         ("GET", "/api/v2/filters/abc"),
                         ("GET", f"/api/v1/filters/{their_keyword}"),
                         ("PUT", f"/api/v1/filters/{their_keyword}"),
                         ("DELETE", f"/api/v1/filters/{their_keyword}")]:
        response = await alice_api.request(method, path, json={"title": "stolen"})
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"error": "Record not found"}
    assert (await bob_api.get(f"/api/v2/filters/{theirs['id']}")).json() == theirs

    # A refused update leaves the filter as it was, whatever came before the bad part.
    path = f"/api/v2/filters/{mine['id']}"
    updates: list[tuple[dict[str, Any], int]] = [
        ({"title": "New", "keywords_attributes": [{"id": their_keyword, "_destroy": True}]}, 404),
        ({"title": "New", "keywords_attributes": [{"id": "x1"}]}, 404),
        ({"title": "New", "context": []}, 422),
        ({"title": "New", "context": ["home"], "filter_action": "both"}, 422),
        ({"title": "New", "keywords_attributes": [{"keyword": "ok"}, {"keyword": ""}]}, 422)]
    for change, status in updates:
        response = await alice_api.put(path, json=change)
        assert response.status_code == status, (change, response.text)
    assert (await alice_api.get(path)).json() == mine
    assert (await bob_api.get(f"/api/v2/filters/{theirs['id']}")).json() == theirs

    keywords = f"/api/v2/filters/{mine['id']}/keywords"
    assert (await alice_api.post(keywords, data={"keyword": ""})).status_code == 422
    assert (await alice_api.post(keywords, data={"keyword": "a", "whole_word": "perhaps"})
            ).status_code == 422
    assert (await alice_api.put(f"/api/v2/filters/keywords/{mine['keywords'][0]['id']}",
                                data={"keyword": " "})).status_code == 422
    rules = f"/api/v2/filters/{mine['id']}/statuses"
    for status_id, message in [("", "Status must exist"), ("nope", "Status must exist"),
                               ("99999999", "Status must exist")]:
        response = await alice_api.post(rules, data={"status_id": status_id})
        assert response.status_code == 422 and message in response.json()["error"]
    secret = await post(bob_api, "only for bob's followers", visibility="private")
    hidden = await alice_api.post(rules, data={"status_id": secret})
    assert hidden.status_code == 422 and "Status is invalid" in hidden.json()["error"]
    assert (await alice_api.get(path)).json() == mine

    # Filters need a user with the filters scopes.
    assert (await alice_api.get("/api/v2/filters", headers={"Authorization": ""})).status_code == 401


# ------------------------------------------------------------------ applying filters

async def test_warn_filters_mark_statuses_and_hide_filters_remove_them_in_each_context(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, alice: User, bob: User) -> None:
    await alice_api.post(f"/api/v1/accounts/{bob.account_id}/follow")
    warned = await new_filter(alice_api, title="Weather", context=["home", "public", "account"],
                              keywords_attributes=[{"keyword": "rain"}])
    await new_filter(alice_api, title="Never", context=["home", "public", "thread", "account",
                                                        "notifications"],
                     filter_action="hide", keywords_attributes=[{"keyword": "#Spoiler"}])
    rainy = await post(bob_api, "Rain again, #Watercolour weather")
    rainbow = await post(bob_api, "a rainbow #Watercolour")  # whole word: not "rain"
    spoiled = await post(bob_api, "the end #Spoiler #Watercolour")
    boost = (await bob_api.post(f"/api/v1/statuses/{rainy}/reblog")).json()["id"]

    for path in ("/api/v1/timelines/home", "/api/v1/timelines/public",
                 "/api/v1/timelines/tag/watercolour", f"/api/v1/accounts/{bob.account_id}/statuses"):
        seen = await statuses(alice_api, path)
        assert spoiled not in seen, path
        assert seen[rainbow]["filtered"] == [], path
        result = seen[rainy]["filtered"]
        assert result == [{"filter": {"id": warned["id"], "title": "Weather",
                                      "context": ["home", "public", "account"],
                                      "expires_at": None, "filter_action": "warn"},
                           "keyword_matches": ["rain"], "status_matches": None}], path
    home = await statuses(alice_api, "/api/v1/timelines/home")
    assert home[boost]["filtered"] == home[boost]["reblog"]["filtered"] == home[rainy]["filtered"]

    # Paging goes on past a hidden status (the Link header follows the page as read).
    page = await alice_api.get("/api/v1/timelines/home", params={"limit": "1", "max_id": boost})
    assert page.json() == [] or page.json()[0]["id"] != spoiled
    assert "max_id=" + spoiled in page.headers["link"]

    # Other people, and alice's own posts, are not filtered for her.
    assert spoiled in await statuses(bob_api, "/api/v1/timelines/home")
    own = await post(alice_api, "my own #Spoiler about rain")
    mine = await statuses(alice_api, "/api/v1/timelines/home")
    assert own in mine and mine[own]["filtered"] == []
    # Without a context the status itself is shown as asked for.
    assert (await alice_api.get(f"/api/v1/statuses/{spoiled}")).status_code == 200

    # Threads (context "thread") and notifications (context "notifications").
    reply = await post(bob_api, "@alice more #spoiler talk", in_reply_to_id=rainy)
    calm = await post(bob_api, "@alice nothing to see", in_reply_to_id=rainy)
    thread = (await alice_api.get(f"/api/v1/statuses/{rainy}/context")).json()
    assert [s["id"] for s in thread["descendants"]] == [calm]
    assert all(s["filtered"] == [] for s in thread["descendants"])  # "Weather" has no thread
    upward = (await alice_api.get(f"/api/v1/statuses/{calm}/context")).json()
    assert [s["id"] for s in upward["ancestors"]] == [rainy]
    mentions = [n["status"]["id"] for n in (await alice_api.get("/api/v1/notifications")).json()
                if n["type"] == "mention"]
    assert mentions == [calm]
    assert reply not in mentions


async def test_whole_word_matching_is_mastodons(alice_api: httpx.AsyncClient,
                                               bob_api: httpx.AsyncClient) -> None:
    cases = [("cat", True, "Cat!", True), ("cat", True, "concatenate", False),
             ("cat", False, "concatenate", True), ("c++", True, "I write C++ daily", True),
             ("#art", True, "lovely #Art here", True), ("#art", True, "#artist here", False),
             ("été", True, "un bel Été", True), ("new york", True, "in New  York", False),
             ("new york", True, "in new york city", True)]
    for keyword, whole_word, text, expected in cases:
        created = await new_filter(alice_api, title=keyword, context=["public"],
                                   keywords_attributes=[{"keyword": keyword,
                                                         "whole_word": whole_word}])
        status_id = await post(bob_api, text)
        seen = await statuses(alice_api, "/api/v1/timelines/public")
        assert bool(seen[status_id]["filtered"]) is expected, (keyword, whole_word, text)
        await alice_api.delete(f"/api/v2/filters/{created['id']}")


async def test_spoilers_and_image_descriptions_match_too(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient) -> None:
    await new_filter(alice_api, title="Gore", context=["public"],
                     keywords_attributes=[{"keyword": "gore"}])
    warned = await post(bob_api, "look", spoiler_text="gore warning")
    assert (await statuses(alice_api, "/api/v1/timelines/public"))[warned]["filtered"]


async def test_a_status_filter_matches_the_status_and_its_boosts(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, carol_api: httpx.AsyncClient,
        bob: User, carol: User) -> None:
    await alice_api.post(f"/api/v1/accounts/{carol.account_id}/follow")
    bobs = await post(bob_api, "an ordinary post")
    boost = (await carol_api.post(f"/api/v1/statuses/{bobs}/reblog")).json()["id"]
    filter_id = (await new_filter(alice_api, title="That one", context=["home"]))["id"]
    await alice_api.post(f"/api/v2/filters/{filter_id}/statuses", data={"status_id": bobs})
    home = await statuses(alice_api, "/api/v1/timelines/home")
    assert home[boost]["filtered"][0]["status_matches"] == [bobs]
    assert home[boost]["filtered"][0]["keyword_matches"] is None
    await alice_api.put(f"/api/v2/filters/{filter_id}", data={"filter_action": "hide"})
    assert boost not in await statuses(alice_api, "/api/v1/timelines/home")


async def test_an_expired_filter_stays_listed_but_matches_nothing(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient, db: Database) -> None:
    created = await new_filter(alice_api, title="For now", context=["public"],
                               filter_action="hide", expires_in=600,
                               keywords_attributes=[{"keyword": "launch"}])
    launch = await post(bob_api, "launch day")
    assert launch not in await statuses(alice_api, "/api/v1/timelines/public")
    async with db.session() as session:
        await session.execute(update(Filter).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    seen = await statuses(alice_api, "/api/v1/timelines/public")
    assert launch in seen and seen[launch]["filtered"] == []
    assert [f["id"] for f in (await alice_api.get("/api/v2/filters")).json()] == [created["id"]]


# ------------------------------------------------------------------ v1

async def test_v1_filters_are_keywords_of_v2_filters(
        alice_api: httpx.AsyncClient, bob_api: httpx.AsyncClient) -> None:
    created = await alice_api.post("/api/v1/filters", data={
        "phrase": "Brexit", "context[]": ["home", "public"], "irreversible": "true",
        "whole_word": "false", "expires_in": "3600"})
    assert created.status_code == 200, created.text
    v1 = created.json()
    assert (v1["phrase"], v1["context"], v1["irreversible"], v1["whole_word"]) == (
        "Brexit", ["home", "public"], True, False)
    assert v1["expires_at"] is not None
    assert (await alice_api.get("/api/v1/filters")).json() == [v1]
    assert (await alice_api.get(f"/api/v1/filters/{v1['id']}")).json() == v1
    v2 = (await alice_api.get("/api/v2/filters")).json()
    assert [(f["title"], f["filter_action"], [k["id"] for k in f["keywords"]]) for f in v2] == [
        ("Brexit", "hide", [v1["id"]])]

    brexiteer = await post(bob_api, "brexiteers unite")  # whole_word false: matches
    assert brexiteer not in await statuses(alice_api, "/api/v1/timelines/public")

    changed = await alice_api.put(f"/api/v1/filters/{v1['id']}", data={
        "phrase": "Referendum", "irreversible": "false", "whole_word": "true"})
    assert changed.status_code == 200
    assert (changed.json()["phrase"], changed.json()["irreversible"]) == ("Referendum", False)

    # A filter with several keywords cannot be changed as a whole from v1.
    await alice_api.post(f"/api/v2/filters/{v2[0]['id']}/keywords", data={"keyword": "vote"})
    refused = await alice_api.put(f"/api/v1/filters/{v1['id']}", data={"context[]": "thread"})
    assert refused.status_code == 422 and "more than one filter keyword" in refused.json()["error"]
    assert len((await alice_api.get("/api/v1/filters")).json()) == 2
    # ... but its keyword can.
    assert (await alice_api.put(f"/api/v1/filters/{v1['id']}", data={"phrase": "poll"})
            ).json()["phrase"] == "poll"

    for body, message in [({"context[]": "home"}, "Phrase can't be blank"),
                          ({"phrase": "x"}, "Context can't be blank"),
                          ({"phrase": "x", "context[]": "nowhere"}, "invalid context"),
                          ({"phrase": "x", "context[]": "home", "irreversible": "sometimes"},
                           "irreversible must be true or false"),
                          ({"phrase": "x", "context[]": "home", "expires_in": "1.5"},
                           "must be a number")]:
        response = await alice_api.post("/api/v1/filters", data=body)
        assert response.status_code == 422 and message in response.json()["error"], body
    assert len((await alice_api.get("/api/v1/filters")).json()) == 2

    for keyword in (await alice_api.get("/api/v1/filters")).json():
        assert (await alice_api.delete(f"/api/v1/filters/{keyword['id']}")).json() == {}
    # The last keyword takes its filter with it.
    assert (await alice_api.get("/api/v2/filters")).json() == []


# ------------------------------------------------------------------ Mastodon.py

@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings) as live:
        yield live


@pytest.mark.parametrize("check_mode", ["none", "created"])
def test_mastodon_py_manages_filters_and_sees_them_applied(server: LiveServer, check_mode: str) -> None:
    def register(username: str) -> Mastodon:
        client_id, client_secret = Mastodon.create_app(
            "Easel tests (filters)", scopes=["read", "write", "follow"], redirect_uris=OOB,
            api_base_url=server.base_url)
        api = Mastodon(client_id=client_id, client_secret=client_secret,
                       api_base_url=server.base_url, version_check_mode=check_mode,
                       ratelimit_method="throw", request_timeout=30)
        api.create_account(username, "a long enough password", f"{username}@example.com",
                           agreement=True, scopes=["read", "write", "follow"])
        return api

    alice, bob = register("alice"), register("bob")
    alice.account_follow(bob.me())
    created = alice.create_filter_v2("Birds", ["home", "public"], "warn",
                                     keywords_attributes=[{"keyword": "heron", "whole_word": True}])
    assert created.title == "Birds" and [k.keyword for k in created.keywords] == ["heron"]
    assert [f.id for f in alice.filters_v2()] == [created.id]
    assert alice.filter_v2(created).context == ["home", "public"]
    keyword = alice.add_filter_keyword_v2(created, "egret", whole_word=False)
    assert [k.keyword for k in alice.filter_keywords_v2(created)] == ["heron", "egret"]
    heron = bob.status_post("a grey heron")
    quiet = bob.status_post("nothing here")
    rule = alice.add_filter_status_v2(created, quiet)
    assert alice.filter_status_v2(rule).status_id == quiet.id
    assert [r.id for r in alice.filter_statuses_v2(created)] == [rule.id]
    home = {s.id: s for s in alice.timeline_home()}
    assert home[heron.id].filtered[0].filter.title == "Birds"
    assert home[heron.id].filtered[0].keyword_matches == ["heron"]
    assert home[quiet.id].filtered[0].status_matches == [quiet.id]
    alice.delete_filter_status_v2(rule)
    alice.delete_filter_keyword_v2(keyword)
    hidden = alice.update_filter_v2(created, filter_action="hide")
    assert hidden.filter_action == "hide"
    assert heron.id not in [s.id for s in alice.timeline_home()]
    alice.delete_filter_v2(created)
    assert alice.filters_v2() == []

    v1 = alice.filter_create("heron", ["home"], irreversible=False, whole_word=True)
    assert v1.phrase == "heron" and v1.context == ["home"]
    assert [f.id for f in alice.filters()] == [v1.id]
    assert alice.filter_update(v1, phrase="egret").phrase == "egret"
    assert alice.filter(v1).phrase == "egret"
    alice.filter_delete(v1)
    assert alice.filters() == []
