"""The instance-wide opt-out documents (server/web/robots.py) and the HTTP opt-out headers
(server/web/optout.py), from real responses: robots.txt, ai.txt, tdmrep.json, the AI
policy page, pages, static files, media files."""

from __future__ import annotations

import re
import urllib.robotparser

import httpx
import pytest
from sqlalchemy import update
from starlette.applications import Starlette

from protect import optout_metadata as om
from server.models import Account, User
from server.web import optout
from server.web.robots import ai_crawlers

POLICY = "https://easel.test/about/ai"


def assert_opt_out_headers(response: httpx.Response) -> None:
    assert "noai, noimageai" in response.headers["x-robots-tag"]
    assert response.headers["tdm-reservation"] == "1"
    assert response.headers["tdm-policy"] == POLICY
    assert response.headers["content-usage"] == "train-ai=n"


async def test_robots_txt_turns_ai_crawlers_away_and_lets_search_engines_in(
        client: httpx.AsyncClient) -> None:
    response = await client.get("/robots.txt")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(response.text.splitlines())
    for crawler in ("GPTBot", "ChatGPT-User", "CCBot", "ClaudeBot", "anthropic-ai", "Google-Extended",
                    "Applebot-Extended", "Bytespider", "meta-externalagent", "PerplexityBot", "Amazonbot",
                    "cohere-ai", "Diffbot", "ImagesiftBot", "omgilibot", "Timpibot", "img2dataset"):
        assert f"User-agent: {crawler}\n" in response.text
        for path in ("/", "/@alice", "/@alice/123", "/system/media/x.jpg", "/static/easel.css"):
            assert not parser.can_fetch(crawler, f"https://easel.test{path}"), (crawler, path)
    for engine in ("Googlebot", "Bingbot", "DuckDuckBot", "Applebot", "YandexBot"):
        assert parser.can_fetch(engine, "https://easel.test/@alice")
        assert parser.can_fetch(engine, "https://easel.test/system/media/x.jpg")
        assert not parser.can_fetch(engine, "https://easel.test/api/v1/timelines/public")
        assert not parser.can_fetch(engine, "https://easel.test/admin/reports")
    assert POLICY in response.text


def test_the_crawler_list_is_data_with_its_source() -> None:
    from server.web.robots import CRAWLERS_FILE

    text = CRAWLERS_FILE.read_text()
    assert "https://github.com/ai-robots-txt/ai.robots.txt" in text
    crawlers = ai_crawlers()
    assert len(crawlers) > 100 and len(set(crawlers)) == len(crawlers)
    assert "GPTBot" in crawlers and "Googlebot" not in crawlers and "Applebot" not in crawlers
    assert all(not line.startswith("#") for line in crawlers)


async def test_ai_txt_is_spawnings_format(client: httpx.AsyncClient) -> None:
    response = await client.get("/ai.txt")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert lines[0] == "# Spawning AI" and "User-Agent: *" in lines
    assert "Disallow: *.jpg" in lines and "Disallow: *.webp" in lines and "Disallow: /" in lines
    assert_opt_out_headers(response)


async def test_tdmrep_json_reserves_every_path_with_the_policy(
        app: Starlette, client: httpx.AsyncClient, alice: User, bob: User) -> None:
    response = await client.get("/.well-known/tdmrep.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json() == [{"location": "/*", "tdm-reservation": 1, "tdm-policy": POLICY}]

    async with app.state.easel.db.session() as session:
        await session.execute(update(Account).where(Account.username == "bob")
                              .values(data_mining=om.DMI_ALLOWED))
        await session.commit()
    rules = (await client.get("/.well-known/tdmrep.json")).json()
    assert rules == [{"location": "/@bob", "tdm-reservation": 0},
                     {"location": "/@bob/*", "tdm-reservation": 0},
                     {"location": "/*", "tdm-reservation": 1, "tdm-policy": POLICY}]


async def test_the_policy_page_explains_the_signals(app: Starlette, client: httpx.AsyncClient) -> None:
    response = await client.get("/about/ai")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert_opt_out_headers(response)
    html = response.text
    assert '<meta name="robots" content="noai, noimageai">' in html
    assert '<meta name="tdm-reservation" content="1">' in html
    for words in ("plus:DataMining", "cawg.training-mining", "tdm-reservation", "/robots.txt",
                  "does not accept images", "A missing marker proves nothing", "strip the metadata"):
        assert words in html
    state = app.state.easel
    state.settings = state.settings.with_changes(ai_uploads="label")
    assert "labelled as such" in (await client.get("/about/ai")).text


async def test_pages_static_and_media_files_carry_the_headers(
        client: httpx.AsyncClient, alice: User) -> None:
    page = await client.get("/@alice")
    assert page.status_code == 200
    assert_opt_out_headers(page)
    assert re.search(r'<meta name="robots" content="[^"]*noai, noimageai', page.text)
    assert '<meta name="tdm-reservation" content="1">' in page.text
    static = await client.get("/static/easel.css")
    assert static.status_code == 200
    assert_opt_out_headers(static)
    missing = await client.get("/system/media/nothing-here.jpg")
    assert missing.status_code == 404
    assert_opt_out_headers(missing)


async def test_responses_that_reserve_nothing_get_no_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/instance")
    assert "tdm-reservation" not in response.headers and "tdm-policy" not in response.headers


@pytest.mark.parametrize(("choice", "expected"), [
    (None, {"X-Robots-Tag": "noai, noimageai", "tdm-reservation": "1", "Content-Usage": "train-ai=n"}),
    ("not a value", {"X-Robots-Tag": "noai, noimageai", "tdm-reservation": "1",
                     "Content-Usage": "train-ai=n"}),
    (om.DMI_PROHIBITED, {"X-Robots-Tag": "noai, noimageai", "tdm-reservation": "1",
                         "Content-Usage": "train-ai=n"}),
    (om.DMI_PROHIBITED_GENAIML, {"X-Robots-Tag": "noai, noimageai", "tdm-reservation": "1",
                                 "Content-Usage": "train-genai=n"}),
    (om.DMI_PROHIBITED_EXCEPT_SEARCH, {"X-Robots-Tag": "noai, noimageai", "tdm-reservation": "1",
                                       "Content-Usage": "train-ai=n, search=y"}),
    (om.DMI_ALLOWED, {"tdm-reservation": "0", "Content-Usage": "train-ai=y"}),
    (om.DMI_UNSPECIFIED, {}),
])
def test_per_artist_headers_and_meta(choice: str | None, expected: dict[str, str]) -> None:
    assert optout.opt_out_headers(choice) == expected
    with_policy = optout.opt_out_headers(choice, POLICY)
    if expected.get("tdm-reservation") == "1":
        assert with_policy == {**expected, "tdm-policy": POLICY}
    else:
        assert with_policy == expected
    meta = dict(optout.page_meta(choice))
    assert meta.get("robots") == expected.get("X-Robots-Tag")
    assert meta.get("tdm-reservation") == expected.get("tdm-reservation")


def test_the_instance_defaults() -> None:
    assert optout.OPT_OUT_HEADERS == optout.opt_out_headers(None)
    assert optout.PAGE_META == [("robots", "noai, noimageai"), ("tdm-reservation", "1")]


@pytest.mark.parametrize("choice", [om.DMI_ALLOWED, om.DMI_PROHIBITED_GENAIML, om.DMI_UNSPECIFIED])
async def test_an_artists_page_says_their_own_choice(app: Starlette, client: httpx.AsyncClient,
                                                     alice: User, choice: str) -> None:
    async with app.state.easel.db.session() as session:
        await session.execute(update(Account).where(Account.username == "alice")
                              .values(data_mining=choice))
        await session.commit()
    page = await client.get("/@alice")
    assert page.status_code == 200
    expected = optout.opt_out_headers(choice, POLICY)
    for name in ("tdm-reservation", "tdm-policy", "Content-Usage"):
        assert page.headers.get(name) == expected.get(name), name
    if "X-Robots-Tag" in expected:
        assert expected["X-Robots-Tag"] in page.headers["X-Robots-Tag"]
    else:
        assert "noai" not in page.headers.get("X-Robots-Tag", "")
    for name, content in optout.page_meta(choice, None):
        assert f'<meta name="{name}" content="{content}">' in page.text
