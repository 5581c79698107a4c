"""Plain text to safe HTML: escaping, links, hashtags, mentions and length counting."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from server.models import Account
from server.services.text import (
    countable_length,
    extract_hashtags,
    extract_mentions,
    linkify_line,
    normalize_tag,
    plain_to_html,
    render_status,
)

BASE = "https://easel.test"


def account(username: str, domain: str = "", url: str | None = None) -> Account:
    profile = url if url is not None else (
        f"{BASE}/@{username}" if not domain else f"https://{domain}/@{username}")
    return Account(username=username, username_key=username.lower(), domain=domain,
                   uri=profile, url=profile)


ALICE = account("alice")


class TagCollector(HTMLParser):
    """Every start tag and attribute the HTML contains, to check nothing foreign slipped in."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def markup(html_text: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = TagCollector()
    parser.feed(html_text)
    parser.close()
    return parser.tags


ALLOWED_TAGS = {"p", "br", "a", "span"}
ALLOWED_ATTRIBUTES = {"href", "rel", "target", "class", "translate"}


def assert_only_our_markup(html_text: str) -> None:
    for tag, attributes in markup(html_text):
        assert tag in ALLOWED_TAGS, html_text
        assert set(attributes) <= ALLOWED_ATTRIBUTES, html_text
        href = attributes.get("href")
        if href is not None:
            assert href.startswith(("https://", "http://")), html_text


# ------------------------------------------------------------------------- plain text

def test_plain_text_keeps_paragraphs_line_breaks_and_links() -> None:
    assert plain_to_html("one\ntwo\n\nthree") == "<p>one<br>two</p><p>three</p>"
    assert plain_to_html("  \n ") == ""
    line = linkify_line("see https://example.com/a. ok")
    assert line.startswith('see <a href="https://example.com/a" rel="nofollow noopener noreferrer"')
    assert line.endswith("</a>. ok")


def test_a_url_keeps_a_bracket_it_opened() -> None:
    line = linkify_line("(https://en.wikipedia.org/wiki/Foo_(bar))")
    assert 'href="https://en.wikipedia.org/wiki/Foo_(bar)"' in line
    assert line.endswith("</a>)")


# ----------------------------------------------------------------------------- XSS

XSS_ATTEMPTS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "javascript:alert(1)",
    "<a href=\"javascript:alert(1)\">x</a>",
    'https://example.com/"onmouseover="alert(1)',
    "https://example.com/'><script>alert(1)</script>",
    "https://example.com/<b>x</b>",
    "#tag<script>alert(1)</script>",
    '#tag"onclick="alert(1)',
    "@alice<img src=x onerror=alert(1)>",
    '@alice"onclick=alert(1)',
    "@alice@easel.test\"><script>",
    "&lt;script&gt; &amp; &#x3C;",
    "<p>nested</p><br>",
    "`backticks` ${template} {{mustache}}",
    "\u202eevil\u202c and \u0000 null",
]


@pytest.mark.parametrize("attempt", XSS_ATTEMPTS)
def test_nothing_typed_becomes_markup(attempt: str) -> None:
    rendered = render_status(attempt, [ALICE], BASE)
    assert_only_our_markup(rendered)
    assert "<script" not in rendered and "<img" not in rendered and "<svg" not in rendered
    assert not re.search(r"<[^>]*\son\w+=", rendered)


def test_special_characters_are_escaped_once() -> None:
    assert render_status("a < b & c > d", [], BASE) == "<p>a &lt; b &amp; c &gt; d</p>"
    assert render_status("&amp;", [], BASE) == "<p>&amp;amp;</p>"


def test_an_account_url_that_is_not_http_is_not_linked() -> None:
    shady = account("mallory", "evil.example", url="javascript:alert(1)")
    rendered = render_status("hi @mallory@evil.example", [shady], BASE)
    assert rendered == "<p>hi @mallory@evil.example</p>"


def test_an_account_url_with_quotes_stays_inside_its_attribute() -> None:
    odd = account("odd", "remote.example", url='https://remote.example/@odd"onclick="x')
    rendered = render_status("@odd@remote.example", [odd], BASE)
    assert_only_our_markup(rendered)
    assert "&quot;onclick=&quot;x" in rendered


# -------------------------------------------------------------------------- hashtags

def test_hashtags_are_linked_with_mastodons_markup() -> None:
    rendered = render_status("New work #Ink", [], BASE)
    assert rendered == ('<p>New work <a href="https://easel.test/tags/ink" '
                        'class="mention hashtag" rel="tag">#<span>Ink</span></a></p>')


@pytest.mark.parametrize(("text", "tags"), [
    ("#art #Art #ART", ["art"]),
    ("#1st #2024 #_1 #12", ["1st", "_1"]),
    ("#café #日本語 #हिन्दी", ["café", "日本語", "हिन्दी"]),
    ("#ハッシュ・タグ・", ["ハッシュ・タグ"]),
    ("full-width ＃タグ", ["タグ"]),
    ("end of sentence #tag.", ["tag"]),
    ("(#paren)", ["paren"]),
    ("x#not a=#not /#not )#not", []),
    ("# alone, ## double", []),
    ("https://example.com/#fragment and https://example.com/path#x", []),
    ("#tag\u00b7", ["tag"]),
    ("#" + "a" * 101, []),
])
def test_hashtags_follow_mastodons_rules(text: str, tags: list[str]) -> None:
    assert extract_hashtags(text) == tags


def test_hashtags_keep_the_first_spelling_and_normalise_by_nfkc_and_case() -> None:
    assert extract_hashtags("#DigitalArt then #digitalart") == ["DigitalArt"]
    assert normalize_tag("DigitalArt") == "digitalart"
    assert normalize_tag("ｆｕｌｌ") == "full"  # full-width letters (NFKC)
    assert extract_hashtags("#ｆｕｌｌ #full") == ["ｆｕｌｌ"]


def test_a_hashtag_inside_a_url_stays_part_of_the_link() -> None:
    rendered = render_status("https://example.com/#tag", [], BASE)
    assert "mention hashtag" not in rendered
    assert 'href="https://example.com/#tag"' in rendered


# -------------------------------------------------------------------------- mentions

def test_mentions_are_extracted_once_with_their_domains() -> None:
    text = "@alice hi @Bob@Remote.Example and @alice again, mail me at me@example.com"
    assert extract_mentions(text) == [("alice", None), ("Bob", "remote.example")]


@pytest.mark.parametrize(("text", "mentions"), [
    ("@a.b-c_d.", [("a.b-c_d", None)]),
    ("(@alice)", [("alice", None)]),
    ("x@alice =@alice /@alice", []),
    ("@alice@localhost:8080", [("alice", "localhost:8080")]),
    ("https://example.com/@alice", []),
    ("@", []),
    ("@\u212aelvin", []),  # the Kelvin sign is not ASCII "K"
])
def test_mentions_follow_mastodons_rules(text: str, mentions: list[tuple[str, str | None]]) -> None:
    assert extract_mentions(text) == mentions


def test_known_accounts_are_linked_and_unknown_ones_stay_text() -> None:
    rendered = render_status("@alice @nobody @alice@easel.test @ALICE", [ALICE], BASE)
    link = ('<span class="h-card" translate="no"><a href="https://easel.test/@alice" '
            'class="u-url mention">@<span>alice</span></a></span>')
    assert rendered == f"<p>{link} @nobody {link} {link}</p>"


def test_a_remote_mention_links_only_the_account_on_that_domain() -> None:
    remote_alice = account("alice", "remote.example")
    rendered = render_status("@alice@remote.example @alice@other.example", [remote_alice], BASE)
    assert 'href="https://remote.example/@alice"' in rendered
    assert rendered.endswith(" @alice@other.example</p>")
    # A local @alice is not the remote one.
    assert "u-url" not in render_status("@alice@remote.example", [ALICE], BASE)


def test_mentions_and_hashtags_mix_with_links_and_lines() -> None:
    rendered = render_status("@alice look:\nhttps://example.com #ink\n\nbye", [ALICE], BASE)
    assert rendered.count("<p>") == 2 and "<br>" in rendered
    assert_only_our_markup(rendered)
    assert [t for t, _ in markup(rendered)].count("a") == 3


# ----------------------------------------------------------------------------- length

def test_urls_count_as_a_fixed_length() -> None:
    assert countable_length("https://example.com/" + "x" * 200, 23) == 23
    assert countable_length("see https://example.com.", 23) == 4 + 23 + 1


def test_remote_mentions_count_only_the_username() -> None:
    assert countable_length("@bob@a-very-long-domain.example hi", 23) == len("@bob hi")


def test_characters_are_counted_as_people_see_them() -> None:
    assert countable_length("é", 23) == 1  # e + combining acute
    assert countable_length("👍🏽", 23) == 1  # skin tone modifier
    assert countable_length("🇫🇷🇩🇪", 23) == 2  # two flags
    assert countable_length("👩‍👩‍👧", 23) == 1  # ZWJ family
    assert countable_length("日本語", 23) == 3
