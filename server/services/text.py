"""Turning what people type into safe HTML.

Everything is escaped first; only the markup produced here (paragraphs, line breaks,
links) ever reaches the HTML. Statuses add mentions and hashtags on top of this.
"""

from __future__ import annotations

import html
import re

URL_RE = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!?)]}'\""


def _link(url: str) -> str:
    trail = ""
    while url and url[-1] in _TRAILING_PUNCTUATION:
        # Keep a closing bracket that closes one opened inside the URL.
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        trail = url[-1] + trail
        url = url[:-1]
    scheme, _, rest = url.partition("://")
    shown = rest if len(rest) <= 40 else rest[:40] + "…"
    href = html.escape(url, quote=True)
    return (f'<a href="{href}" rel="nofollow noopener noreferrer" target="_blank">'
            f'<span class="invisible">{html.escape(scheme)}://</span>'
            f'<span class="ellipsis">{html.escape(shown)}</span></a>{html.escape(trail)}')


def linkify_line(line: str) -> str:
    """Escape one line of plain text, turning URLs into links."""
    out: list[str] = []
    position = 0
    for match in URL_RE.finditer(line):
        out.append(html.escape(line[position:match.start()], quote=False))
        out.append(_link(match.group(0)))
        position = match.end()
    out.append(html.escape(line[position:], quote=False))
    return "".join(out)


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
