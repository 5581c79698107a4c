from __future__ import annotations

import pytest

from federation.sanitize import html_to_text, sanitize_html

REL = 'target="_blank" rel="nofollow noopener noreferrer"'


def test_mastodon_markup_survives() -> None:
    html = ('<p>hi <span class="h-card" translate="no"><a href="https://m.example/@bob" '
            'class="u-url mention">@<span>bob</span></a></span> '
            '<a href="https://m.example/tags/art" class="mention hashtag" rel="tag">#<span>art</span></a>'
            '<br>line <a href="https://x.example/a"><span class="invisible">https://</span>'
            '<span class="ellipsis">x.example/a</span></a></p>')
    assert sanitize_html(html) == (
        '<p>hi <span class="h-card" translate="no"><a href="https://m.example/@bob" '
        f'class="u-url mention" {REL}>@<span>bob</span></a></span> '
        f'<a href="https://m.example/tags/art" class="mention hashtag" {REL}>#<span>art</span></a>'
        f'<br>line <a href="https://x.example/a" {REL}><span class="invisible">https://</span>'
        '<span class="ellipsis">x.example/a</span></a></p>')


def test_formatting_lists_quotes_and_code_survive() -> None:
    html = ('<p><em>e</em> <strong>s</strong> <b>b</b> <i>i</i> <u>u</u> <del>d</del></p>'
            '<ul><li>one</li></ul><ol start="3"><li>three</li></ol>'
            '<blockquote>q</blockquote><pre><code>x = 1</code></pre>')
    assert sanitize_html(html) == html


@pytest.mark.parametrize(("html", "expected"), [
    ("<script>alert(1)</script>ok", "ok"),
    ("<style>p{display:none}</style>ok", "ok"),
    ('<iframe src="https://evil.example"></iframe>ok', "ok"),
    ('<img src="x" onerror="alert(1)">ok', "ok"),
    ('<svg><script>alert(1)</script></svg>ok', "ok"),
    ('<p onclick="alert(1)" style="color:red" id="x">ok</p>', "<p>ok</p>"),
    ('<a href="javascript:alert(1)">x</a>', f"<a {REL}>x</a>"),
    ('<a href="JaVaScRiPt:alert(1)">x</a>', f"<a {REL}>x</a>"),
    ('<a href="java&#x09;script:alert(1)">x</a>', f"<a {REL}>x</a>"),
    ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', f"<a {REL}>x</a>"),
    ('<a href="vbscript:msgbox(1)">x</a>', f"<a {REL}>x</a>"),
    ('<a href="/relative">x</a>', f"<a {REL}>x</a>"),
    ('<a href="mailto:a@b.example">x</a>', f'<a href="mailto:a@b.example" {REL}>x</a>'),
    ('<a href="https://ok.example" rel="me opener" target="_self">x</a>',
     f'<a href="https://ok.example" {REL}>x</a>'),
    ('<span class="h-card evil hidden">x</span>', '<span class="h-card">x</span>'),
    ('<p title="t" lang="en" dir="rtl">x</p>', "<p>x</p>"),
    ("<form><input value=x><button>go</button></form>", "go"),
    ("<div><h1>Title</h1></div>", "Title"),
    ("<!-- secret -->ok", "ok"),
    ('<object data="x.swf"></object><embed src="x.swf">ok', "ok"),
    ('<math><mi xlink:href="javascript:alert(1)">x</mi></math>ok', "ok"),
    ("<p>unclosed <b>bold", "<p>unclosed <b>bold</b></p>"),
])
def test_everything_else_is_removed(html: str, expected: str) -> None:
    assert sanitize_html(html) == expected


@pytest.mark.parametrize("value", [None, 42, ["<p>x</p>"], {"a": 1}, ""])
def test_non_strings_give_nothing(value: object) -> None:
    assert sanitize_html(value) == ""  # type: ignore[arg-type]
    assert html_to_text(value) == ""  # type: ignore[arg-type]


def test_html_to_text_keeps_paragraphs_and_line_breaks() -> None:
    html = ('<p>Hello <a href="https://x.example"><span class="invisible">https://</span>'
            '<span class="ellipsis">x.example</span></a> &amp; you</p><p>line one<br>line two</p>')
    assert html_to_text(html) == "Hello https://x.example & you\n\nline one\nline two"


def test_html_to_text_drops_scripts_and_lists_items_on_lines() -> None:
    assert html_to_text("<script>alert(1)</script><ul><li>a</li><li>b</li></ul>") == "a\nb"
    assert html_to_text("  plain   text  ") == "plain text"
