"""Remote HTML made safe to store and show: an allowlist, as Mastodon keeps it.

Other servers send HTML in ``content``, ``summary`` and profile fields. Before any of it
is stored or shown it goes through :func:`sanitize_html`, which keeps only the markup a
microblog post needs — paragraphs, line breaks, links, mention and hashtag spans,
emphasis, lists, quotes and code — and drops everything else: scripts and styles with
their content, frames, images, forms, event handlers, ``style`` attributes, and any link
that is not ``http``, ``https`` or ``mailto`` (so no ``javascript:`` or ``data:``, and no
relative links, which mean nothing outside their origin). Links open in a new tab with
``rel="nofollow noopener noreferrer"``, whatever the sender wrote.

:func:`html_to_text` gives the plain text of (sanitised) HTML for search, notifications
and fields that are plain text by nature (display names, content warnings, alt text).

This module must never let an attribute or a URL scheme through that is not listed
here, and never pass unsanitised remote HTML to a caller.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

ALLOWED_TAGS = frozenset({
    "p", "br", "span", "a", "del", "s", "pre", "code", "em", "strong", "b", "i", "u",
    "ul", "ol", "li", "blockquote",
})
# Removed together with everything inside them (the rest are unwrapped: tag gone, text kept).
DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "iframe", "template", "noscript", "object", "embed", "svg", "math",
    "textarea", "title", "select", "frameset", "frame", "applet",
})
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": set(),  # no attribute on every tag (ammonia's default would allow lang and title)
    "a": {"href", "translate"},
    "span": {"translate"},
    "ol": {"start", "reversed"},
    "li": {"value"},
}
# Microformats and Mastodon's own link classes; any other class is removed.
ALLOWED_CLASSES: dict[str, set[str]] = {
    "a": {"u-url", "mention", "hashtag", "status-link"},
    "span": {"h-card", "mention", "hashtag", "ellipsis", "invisible", "u-url"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener noreferrer"

_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(DROPPED_WITH_CONTENT),
    attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    allowed_classes={tag: set(names) for tag, names in ALLOWED_CLASSES.items()},
    link_rel=LINK_REL,
    url_schemes=set(URL_SCHEMES),
    url_relative="deny",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    strip_comments=True,
)


def sanitize_html(html: str) -> str:
    """``html`` with everything outside the allowlist removed. Not a string: ``""``."""
    if not isinstance(html, str) or not html:
        return ""
    return _CLEANER.clean(html)


_BLOCK_TAGS = frozenset({"p", "blockquote", "pre", "ul", "ol", "div", "h1", "h2", "h3", "h4",
                         "h5", "h6", "table", "tr", "section", "article"})
_SKIPPED = DROPPED_WITH_CONTENT


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0

    def _newlines(self, count: int) -> None:
        # Never more than ``count`` newlines in a row, and none at the very start.
        text = "".join(self.parts)
        if not text.strip():
            return
        trailing = len(text) - len(text.rstrip("\n"))
        if trailing < count:
            self.parts.append("\n" * (count - trailing))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skip_depth += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self._newlines(1)
        elif tag in _BLOCK_TAGS:
            self._newlines(2)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self._newlines(2)

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.parts.append(data)


_SPACES = re.compile(r"[ \t\r\f\v]+")


def html_to_text(html: str) -> str:
    """The readable text of ``html``: paragraphs separated by a blank line, ``<br>`` as a
    newline, entities decoded, markup gone (link text stays, link targets do not)."""
    if not isinstance(html, str) or not html:
        return ""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(collector.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
