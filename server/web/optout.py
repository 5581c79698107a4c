"""The HTTP half of "not for AI training": the headers every served image and page carries.

One definition, used by pages, media files, static files and originals, so a new signal
(TDM reservation, content-usage) is added in one place.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NO_AI = "noai, noimageai"
OPT_OUT_HEADERS = {"X-Robots-Tag": NO_AI}


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
