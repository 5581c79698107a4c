"""How long reading a linked page's head takes, for ordinary and hostile pages.

    .venv/bin/python bench/link_cards.py

The ``fetch_link_card`` job reads at most 1 MiB of a page and parses its head in a
thread (``federation.link_cards.parse_page``). A thread cannot be stopped by the job's
time limit, so a page built to be slow must not be: the head is read with linear scans.
(``html.parser``, used before, took 1.4 s on 16 KiB of ``<a `` repeated, 22 s on 64 KiB:
quadratic.) Prints the best of three times per 1 MiB page and its ratio to the target:
every page, ordinary or hostile, read in under 0.5 s of CPU.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from federation.link_cards import MAX_HTML_BYTES, parse_page

HEAD = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Herons</title>'
        '<meta property="og:title" content="Herons at dawn">'
        '<meta property="og:image" content="/heron.jpg"><script>var x = 1;</script></head>')


TARGET = 0.5  # seconds


def fill(unit: str) -> str:
    return unit * (MAX_HTML_BYTES // len(unit))


PAGES = {
    "ordinary (head + 1 MiB body)": HEAD + "<body>" + fill("<p>Some <b>text</b> here.</p>\n"),
    "ordinary (1 MiB inline script)": HEAD[:-7] + "<script>" + fill("var a = '<b>';") + "</script></head>",
    '"<a " repeated': fill("<a "),
    '"</" repeated': fill("</"),
    '"<?" repeated': fill("<?"),
    '"<meta " repeated': fill("<meta "),
    '"<title>" repeated': fill("<title>"),
    '"<!--x-->" repeated': fill("<!--x-->"),
    '"<script" repeated': fill("<script"),
    "a 1 MiB attribute of <": '<meta property="og:title" content="' + fill("<"),
    "unclosed quotes": "<meta " + fill("a=\" b=' "),
}


def timed(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        parse_page(text, "https://news.example/page")
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    worst = 0.0
    print(f"{'page':34} {'size':>9} {'seconds':>8} {'of target':>9}")
    for name, text in PAGES.items():
        seconds = timed(text)
        worst = max(worst, seconds)
        print(f"{name:34} {len(text) / 1024:7.0f} KiB {seconds:8.4f} {seconds / TARGET:9.3f}")
    print(f"worst {worst:.4f} s: {worst / TARGET:.3f} of the {TARGET} s target")


if __name__ == "__main__":
    main()
