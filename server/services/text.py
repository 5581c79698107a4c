"""Turning what people type into safe HTML.

Everything is escaped first; only the markup produced here (paragraphs, line breaks,
links, mention and hashtag links) ever reaches the HTML. Statuses add mentions and
hashtags on top of plain text, found with (roughly) Mastodon's rules: never inside a URL,
never glued to the word before them. This module must never pass a byte of user input
into markup unescaped, and never link anything but ``http(s)`` URLs.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from server.models import Account

URL_RE = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!?)]}'\""

# Mastodon's Account::MENTION_RE: ``@user`` or ``@user@domain`` (a port is allowed so that
# ``@name@localhost:8080`` reaches local accounts on instances with a port in their domain).
MENTION_RE = re.compile(
    r"@(?P<username>[A-Za-z0-9_]+(?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)"
    r"(?:@(?P<domain>[\w.-]*\w(?::[0-9]{1,5})?))?"
)
# Mastodon's hashtag separators: allowed inside a tag, never at its end.
_TAG_SEPARATORS = "\u00b7\u30fb\u200c"
MAX_TAG_LENGTH = 100
_TAG_SIGNS = "#\uff03"  # "#" and the full-width "＃"


def _trim_url(url: str) -> tuple[str, str]:
    """Split trailing punctuation off a matched URL: (url, trailing text)."""
    trail = ""
    while url and url[-1] in _TRAILING_PUNCTUATION:
        # Keep a closing bracket that closes one opened inside the URL.
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        trail = url[-1] + trail
        url = url[:-1]
    return url, trail


def _link(url: str) -> str:
    url, trail = _trim_url(url)
    scheme, _, rest = url.partition("://")
    shown = rest if len(rest) <= 40 else rest[:40] + "…"
    href = html.escape(url, quote=True)
    return (f'<a href="{href}" rel="nofollow noopener noreferrer" target="_blank">'
            f'<span class="invisible">{html.escape(scheme)}://</span>'
            f'<span class="ellipsis">{html.escape(shown)}</span></a>{html.escape(trail)}')


def _escape_text(text: str) -> str:
    return html.escape(text, quote=False)


def _render_urls(line: str, render_text: Callable[[str], str]) -> str:
    """Links for the URLs of ``line``; everything between them goes through ``render_text``."""
    out: list[str] = []
    position = 0
    for match in URL_RE.finditer(line):
        url, _trail = _trim_url(match.group(0))
        out.append(render_text(line[position:match.start()]))
        out.append(_link(url))
        # The trailing punctuation is rendered as text, with what follows it.
        position = match.start() + len(url)
    out.append(render_text(line[position:]))
    return "".join(out)


def linkify_line(line: str) -> str:
    """Escape one line of plain text, turning URLs into links."""
    return _render_urls(line, _escape_text)


def plain_to_html(text: str, line_renderer=linkify_line) -> str:  # type: ignore[no-untyped-def]
    """Paragraphs on blank lines, ``<br>`` on single newlines, every line escaped."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        return ""
    paragraphs = re.split(r"\n\s*\n", text)
    return "".join(
        "<p>" + "<br>".join(line_renderer(line) for line in paragraph.split("\n")) + "</p>"
        for paragraph in paragraphs
    )


# ------------------------------------------------------------------ mentions and hashtags

def _is_word(char: str) -> bool:
    """Ruby's ``[[:word:]]``: letters, marks, digits and connector punctuation."""
    return char.isalnum() or char == "_" or unicodedata.category(char)[0] == "M" \
        or unicodedata.category(char) == "Pc"


def normalize_tag(name: str) -> str:
    """The form a hashtag is stored and looked up by (``Tag.name``): NFKC, lower case."""
    return unicodedata.normalize("NFKC", name).lower()


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    kind: str  # "mention" or "hashtag"
    value: str  # the tag as written, or the username
    domain: str | None = None


def _hashtag_at(text: str, start: int) -> _Token | None:
    """The hashtag whose sign is at ``text[start]``, by Mastodon's rules, or None."""
    if start > 0 and (text[start - 1] in "=/)" or _is_word(text[start - 1])):
        return None
    end = start + 1
    while end < len(text) and (_is_word(text[end]) or text[end] in _TAG_SEPARATORS):
        end += 1
    name = text[start + 1:end]
    if not name or not _is_word(name[0]):
        return None
    name = name.rstrip(_TAG_SEPARATORS)
    # A tag needs something besides digits: "#1" is not a tag, "#1st" and "#_1" are.
    if not any(c.isalpha() or c == "_" or c in _TAG_SEPARATORS
               or unicodedata.category(c)[0] == "M" for c in name):
        return None
    if len(name) > MAX_TAG_LENGTH or len(normalize_tag(name)) > MAX_TAG_LENGTH:
        return None
    return _Token(start, start + 1 + len(name), "hashtag", name)


def _mention_at(text: str, start: int) -> _Token | None:
    if start > 0 and (text[start - 1] in "=/" or _is_word(text[start - 1])):
        return None
    match = MENTION_RE.match(text, start)
    if match is None:
        return None
    domain = match.group("domain")
    return _Token(start, match.end(), "mention", match.group("username"),
                  domain.lower() if domain else None)


def _tokens(segment: str) -> list[_Token]:
    """Mentions and hashtags in a piece of text that holds no URL."""
    found: list[_Token] = []
    position = 0
    while position < len(segment):
        char = segment[position]
        token = None
        if char in _TAG_SIGNS:
            token = _hashtag_at(segment, position)
        elif char == "@":
            token = _mention_at(segment, position)
        if token is not None:
            found.append(token)
            position = token.end
        else:
            position += 1
    return found


def _segments_without_urls(text: str) -> list[str]:
    pieces: list[str] = []
    position = 0
    for match in URL_RE.finditer(text):
        url, _trail = _trim_url(match.group(0))
        pieces.append(text[position:match.start()])
        position = match.start() + len(url)
    pieces.append(text[position:])
    return pieces


def extract_urls(text: str) -> list[str]:
    """The URLs of ``text`` as they would be linked (trailing punctuation left out), in
    order, without repeats."""
    found: list[str] = []
    for match in URL_RE.finditer(text):
        url, _trail = _trim_url(match.group(0))
        if url not in found:
            found.append(url)
    return found


def _all_tokens(text: str) -> list[_Token]:
    return [token for segment in _segments_without_urls(text) for token in _tokens(segment)]


def extract_hashtags(text: str) -> list[str]:
    """Hashtags of ``text`` in order, as first spelled, one per normalised name
    (``normalize_tag`` gives the ``Tag.name`` of each)."""
    seen: set[str] = set()
    result = []
    for token in _all_tokens(text):
        if token.kind == "hashtag" and normalize_tag(token.value) not in seen:
            seen.add(normalize_tag(token.value))
            result.append(token.value)
    return result


def extract_mentions(text: str) -> list[tuple[str, str | None]]:
    """``(username, domain or None)`` for each ``@user`` / ``@user@domain`` in ``text``,
    in order, without repeats (case-insensitively); domains are lower-cased."""
    seen: set[tuple[str, str | None]] = set()
    result = []
    for token in _all_tokens(text):
        if token.kind != "mention":
            continue
        key = (token.value.lower(), token.domain)
        if key not in seen:
            seen.add(key)
            result.append((token.value, token.domain))
    return result


def local_domain_of(base_url: str) -> str:
    return urlsplit(base_url).netloc.lower()


def mention_key(username: str, domain: str | None, local_domain: str) -> tuple[str, str]:
    """``(username_key, Account.domain)`` for a mention: "" is the local domain."""
    domain = (domain or "").lower()
    if domain == local_domain.lower():
        domain = ""
    return username.lower(), domain


def _safe_href(url: str) -> str | None:
    return url if url.lower().startswith(("https://", "http://")) else None


def render_status(text: str, mentioned_accounts: Iterable[Account], base_url: str) -> str:
    """A status's HTML: escaped text with links for URLs, hashtags and mentions of known
    accounts (unknown ones stay text), in Mastodon's markup."""
    local_domain = local_domain_of(base_url)
    accounts = {(a.username_key, a.domain.lower()): a for a in mentioned_accounts}

    def mention_html(token: _Token, written: str) -> str:
        account = accounts.get(mention_key(token.value, token.domain, local_domain))
        href = _safe_href(account.url or account.uri) if account is not None else None
        if account is None or href is None:
            return _escape_text(written)
        return (f'<span class="h-card" translate="no"><a href="{html.escape(href, quote=True)}" '
                f'class="u-url mention">@<span>{_escape_text(account.username)}</span></a></span>')

    def hashtag_html(token: _Token) -> str:
        href = f"{base_url}/tags/{normalize_tag(token.value)}"
        return (f'<a href="{html.escape(href, quote=True)}" class="mention hashtag" rel="tag">'
                f'#<span>{_escape_text(token.value)}</span></a>')

    def render_text(segment: str) -> str:
        out: list[str] = []
        position = 0
        for token in _tokens(segment):
            out.append(_escape_text(segment[position:token.start]))
            written = segment[token.start:token.end]
            out.append(mention_html(token, written) if token.kind == "mention"
                       else hashtag_html(token))
            position = token.end
        out.append(_escape_text(segment[position:]))
        return "".join(out)

    return plain_to_html(text, lambda line: _render_urls(line, render_text))


# ------------------------------------------------------------------------- length

_ZWJ = "\u200d"


def _grapheme_count(text: str) -> int:
    """Roughly the number of user-perceived characters (grapheme clusters): combining marks,
    variation selectors, skin-tone modifiers and ZWJ sequences join the character before
    them, and a pair of regional indicators (a flag) is one."""
    count = 0
    joined = False
    regional_pending = False
    for char in text:
        point = ord(char)
        if joined:
            joined = False
            continue
        if char == _ZWJ:
            joined = True
            continue
        if (unicodedata.category(char)[0] == "M" or 0xFE00 <= point <= 0xFE0F
                or 0x1F3FB <= point <= 0x1F3FF or 0xE0020 <= point <= 0xE007F):
            continue
        if 0x1F1E6 <= point <= 0x1F1FF:
            if regional_pending:
                regional_pending = False
                continue
            regional_pending = True
        else:
            regional_pending = False
        count += 1
    return count


def countable_length(text: str, url_length: int) -> int:
    """A status text's length as Mastodon counts it: every URL counts ``url_length``, a
    mention of a remote account counts only its ``@username``, characters are graphemes."""
    text = text.replace("\r\n", "\n")
    length = 0
    for index, segment in enumerate(_segments_without_urls(text)):
        if index > 0:
            length += url_length
        position = 0
        for token in _tokens(segment):
            if token.kind == "mention":
                length += _grapheme_count(segment[position:token.start]) + 1 + len(token.value)
                position = token.end
        length += _grapheme_count(segment[position:])
    return length
