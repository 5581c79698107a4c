"""The instance-wide "not for AI training" documents: ``/robots.txt``, ``/ai.txt``,
``/.well-known/tdmrep.json`` and the AI policy page ``/about/ai``.

- ``/robots.txt`` disallows every AI crawler of ``ai_crawlers.txt`` (the ai.robots.txt
  community list, kept as data with its source) from the whole site, and lets every other
  crawler — search engines — in, except for the API, sign-in, studio and admin pages.
- ``/ai.txt`` is Spawning's format: no AI dataset use of anything here, image files named.
- ``/.well-known/tdmrep.json`` is W3C TDMRep: text-and-data-mining rights are reserved on
  every path, with the policy page as ``tdm-policy``; the pages of an artist who allows
  AI training (``DMI-ALLOWED``) come first, unreserved (rules are read in order).
- ``/about/ai`` says in words what all the signals mean; ``tdm-policy`` and every file's
  ``xmpRights:WebStatement`` point at it.

robots.txt and ai.txt are the instance's: an artist's own choice shows in their files'
metadata, their pages' headers and tdmrep.json.
"""

from __future__ import annotations

import functools
from pathlib import Path

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from protect.optout_metadata import DATA_MINING_CHOICES, DMI_ALLOWED, POLICY_PATH, policy_url
from server.models import Account
from server.services.accounts import listed_accounts
from server.state import easel
from server.web.optout import OPT_OUT_HEADERS
from server.web.session import render

CRAWLERS_FILE = Path(__file__).parent / "ai_crawlers.txt"
#: Paths no crawler needs (search engines included).
PRIVATE_PATHS = ("/api/", "/oauth/", "/auth/", "/studio", "/admin")
#: The file types ai.txt names (Spawning's generator lists them).
IMAGE_TYPES = ("jpg", "jpeg", "png", "webp", "gif", "avif", "bmp", "tif", "tiff", "svg", "heic")
CACHE = "public, max-age=3600"


@functools.cache
def ai_crawlers() -> tuple[str, ...]:
    """The user agents of ``ai_crawlers.txt``, in its order."""
    lines = CRAWLERS_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def robots_txt(base_url: str) -> str:
    lines = [f"# robots.txt of {base_url}: the works here are not for AI training.",
             f"# The instance's AI policy: {base_url}{POLICY_PATH}", ""]
    lines += [f"User-agent: {agent}" for agent in ai_crawlers()]
    lines += ["Disallow: /", "", "User-agent: *"]
    lines += [f"Disallow: {path}" for path in PRIVATE_PATHS]
    lines += ["Allow: /", ""]
    return "\n".join(lines)


def ai_txt(base_url: str) -> str:
    lines = ["# Spawning AI", "# Prevent datasets from using the following file types",
             f"# The instance's AI policy: {base_url}{POLICY_PATH}", "", "User-Agent: *"]
    lines += [f"Disallow: *.{extension}" for extension in IMAGE_TYPES]
    lines += ["Disallow: /", ""]
    return "\n".join(lines)


async def robots(request: Request) -> Response:
    state = easel(request)
    return PlainTextResponse(robots_txt(state.urls.base), headers={"Cache-Control": CACHE})


async def ai(request: Request) -> Response:
    state = easel(request)
    return PlainTextResponse(ai_txt(state.urls.base),
                             headers={"Cache-Control": CACHE, **OPT_OUT_HEADERS})


async def tdmrep(request: Request) -> Response:
    state = easel(request)
    async with state.db.session() as session:
        allowing = (await session.scalars(
            select(Account.username).where(Account.domain == "",
                                           Account.data_mining == DMI_ALLOWED, listed_accounts())
            .order_by(Account.username))).all()
    rules: list[dict[str, object]] = []
    for username in allowing:
        rules += [{"location": f"/@{username}", "tdm-reservation": 0},
                  {"location": f"/@{username}/*", "tdm-reservation": 0}]
    rules.append({"location": "/*", "tdm-reservation": 1, "tdm-policy": policy_url(state.settings)})
    return JSONResponse(rules, headers={"Cache-Control": "public, max-age=300"})


async def policy_page(request: Request) -> Response:
    state = easel(request)
    return render(request, state, "ai_policy.html", {
        "ai_uploads": state.settings.ai_uploads,
        "crawlers": ai_crawlers(),
        "choices": DATA_MINING_CHOICES,
        "policy_url": policy_url(state.settings),
    })


routes: list[BaseRoute] = [
    Route("/robots.txt", robots, methods=["GET", "HEAD"]),
    Route("/ai.txt", ai, methods=["GET", "HEAD"]),
    Route("/.well-known/tdmrep.json", tdmrep, methods=["GET", "HEAD"]),
    Route(POLICY_PATH, policy_page, methods=["GET", "HEAD"]),
]
