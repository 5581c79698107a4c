"""The HTTP half of "not for AI training": the headers every served image and page carries.

One definition, used by pages, media files, static files and originals, so a new signal
is added in one place:

- ``X-Robots-Tag: noai, noimageai`` (the directives DeviantArt introduced, read by
  dataset builders such as img2dataset);
- ``tdm-reservation: 1`` (W3C TDMRep: text-and-data-mining rights are reserved, the EU
  DSM directive's machine-readable opt-out) and ``tdm-policy``, the instance's AI policy
  page (:class:`TdmPolicy` adds it to every response that reserves, since only the app
  knows its own URL);
- ``Content-Usage: train-ai=n`` (the IETF AI-preferences vocabulary).

Per artist (their PLUS DataMining choice, ``accounts.data_mining``),
:func:`opt_out_headers` gives the matching signals: generative-only training forbidden
says ``train-genai=n``; "except search engine indexing" adds ``search=y``; "allowed" says
``tdm-reservation: 0`` and ``train-ai=y`` with no ``noai``; "unspecified" says nothing.
Pages about one artist use theirs; media files, static files and originals carry the
instance's (:data:`OPT_OUT_HEADERS`): a file's response cannot look its artist up cheaply,
and the file itself carries the artist's choice in its XMP and C2PA manifest.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protect.optout_metadata import (
    DMI_ALLOWED,
    DMI_PROHIBITED_EXCEPT_SEARCH,
    DMI_PROHIBITED_GENAIML,
    DMI_UNSPECIFIED,
    effective_value,
)

NO_AI = "noai, noimageai"
#: Every signal of the instance default (DMI-PROHIBITED-AIMLTRAINING), ``tdm-policy`` aside.
OPT_OUT_HEADERS = {"X-Robots-Tag": NO_AI, "tdm-reservation": "1", "Content-Usage": "train-ai=n"}
#: The ``<meta>`` tags of every page (name, content).
PAGE_META: list[tuple[str, str]] = [("robots", NO_AI), ("tdm-reservation", "1")]


def opt_out_headers(data_mining: str | None, policy_url: str | None = None) -> dict[str, str]:
    """The opt-out headers of one artist's page, from their ``data_mining`` choice (None:
    the instance default). ``tdm-policy`` is included when ``policy_url`` is given (else
    :class:`TdmPolicy` adds it)."""
    value = effective_value(data_mining)
    if value == DMI_UNSPECIFIED:
        return {}
    if value == DMI_ALLOWED:
        return {"tdm-reservation": "0", "Content-Usage": "train-ai=y"}
    headers = dict(OPT_OUT_HEADERS)
    if value == DMI_PROHIBITED_GENAIML:
        headers["Content-Usage"] = "train-genai=n"
    elif value == DMI_PROHIBITED_EXCEPT_SEARCH:
        headers["Content-Usage"] = "train-ai=n, search=y"
    if policy_url:
        headers["tdm-policy"] = policy_url
    return headers


def page_meta(data_mining: str | None, policy_url: str | None = None) -> list[tuple[str, str]]:
    """The ``<meta>`` tags of one artist's page, matching :func:`opt_out_headers`."""
    headers = opt_out_headers(data_mining, policy_url)
    meta: list[tuple[str, str]] = []
    if "X-Robots-Tag" in headers:
        meta.append(("robots", headers["X-Robots-Tag"]))
    if "tdm-reservation" in headers:
        meta.append(("tdm-reservation", headers["tdm-reservation"]))
    if "tdm-policy" in headers:
        meta.append(("tdm-policy", headers["tdm-policy"]))
    return meta


class OptOutHeaders:
    """Wrap an ASGI app (e.g. StaticFiles) so every response carries the opt-out headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(OPT_OUT_HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TdmPolicy:
    """Middleware: every response that reserves TDM rights (``tdm-reservation: 1``) names
    the instance's policy (``tdm-policy``), unless it already does."""

    def __init__(self, app: ASGIApp, policy_url: str) -> None:
        self.app = app
        self.policy_url = policy_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("tdm-reservation") == "1" and "tdm-policy" not in headers:
                    headers["tdm-policy"] = self.policy_url
            await send(message)

        await self.app(scope, receive, send_with_policy)
