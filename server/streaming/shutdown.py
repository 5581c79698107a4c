"""Serving with uvicorn so that open streams end when the server is told to stop.

Why it exists: uvicorn's graceful shutdown waits for every response to finish, and an SSE
stream never does by itself, so one open client would hold ``easel serve`` up until it
was killed. On SIGTERM/SIGINT the bus ends every open stream (SSE responses complete,
WebSockets close), then uvicorn shuts down as usual; clients reconnect elsewhere.

What it must never do: touch the streams from the signal handler itself (it only asks the
event loop to).
"""

from __future__ import annotations

from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette


class StreamEndingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        streams = self.app.state.easel.streams
        if streams is not None:
            streams.end_streams_soon()
        super().handle_exit(sig, frame)


def serve(app: Starlette, **options: Any) -> None:
    """``uvicorn.run(app, **options)``, ending open streams at shutdown."""
    StreamEndingServer(uvicorn.Config(app, **options), app).run()
