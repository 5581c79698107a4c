"""A real Easel server on a loopback port, for the client-library tests.

Mastodon.py and toot are synchronous and speak real HTTP, so they cannot use the ASGI
test client: ``live_server`` runs the app under uvicorn in a background thread (its own
event loop, lifespan on) and says where it listens. Uploaded media wait for the
``protect`` queue, which the in-process app does not run; ``LiveServer.run_protect``
runs it on the server's loop, as a protection worker would. Helpers here also drive the
OAuth login and consent pages like a browser, to get authorization codes.
"""

from __future__ import annotations

import asyncio
import html
import re
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import uvicorn
from starlette.applications import Starlette

from server.app import AppOptions, create_app
from server.services.accounts import create_user
from server.settings import Settings

T = TypeVar("T")

START_TIMEOUT = 30.0
CALL_TIMEOUT = 60.0
OOB = "urn:ietf:wg:oauth:2.0:oob"
CSRF_RE = re.compile(r'name="authenticity_token" value="([^"]+)"')
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
CODE_RE = re.compile(r'<input class="code" readonly size="50" value="([^"]+)"')


@dataclass
class LiveServer:
    app: Starlette
    settings: Settings
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self.app.state.easel.queue.loop
        assert loop is not None and not loop.is_closed(), "the server's loop is not running"
        return loop

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        """Run ``coroutine`` on the server's event loop (where its database engine lives)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def create_user(self, username: str, password: str) -> None:
        """A confirmed, approved user ``username`` with the address ``username@example.com``."""

        async def create() -> None:
            async with self.app.state.easel.db.session() as session:
                await create_user(session, self.settings, username=username,
                                  email=f"{username}@example.com", password=password)

        self.call(create())

    def run_protect(self) -> int:
        """Run every due job of the ``protect`` queue; return how many ran."""
        ran: int = self.call(self.app.state.easel.runner.run_due(["protect"]))
        return ran


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """Serve Easel over HTTP on a free loopback port, with open registrations, until exit."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    live_settings = settings.with_changes(domain=f"127.0.0.1:{port}", scheme="http", registrations="open")
    app = create_app(live_settings, options=AppOptions(worker_threads=2))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as error:  # reported by the waiting thread
            failure.append(error)

    thread = threading.Thread(target=serve, name=f"easel-live-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if failure or not thread.is_alive():
                raise RuntimeError(f"the live server did not start: {failure!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the live server did not start within {START_TIMEOUT} s")
            thread.join(0.01)
        yield LiveServer(app=app, settings=live_settings, port=port)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        sock.close()
        assert not thread.is_alive(), "the live server did not stop"
    if failure:
        raise RuntimeError("the live server failed") from failure[0]


# ------------------------------------------------------------------ the OAuth pages, as a browser

def hidden_fields(page: httpx.Response) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in HIDDEN_RE.findall(page.text)}


def authorization_code(browser: httpx.Client, authorize_url: str, login: str, password: str) -> str:
    """Open ``authorize_url`` (an oob request) in ``browser``, log in, authorize, and read the
    code off the page, as a person would."""
    page = browser.get(authorize_url, follow_redirects=True)
    assert page.status_code == 200 and 'name="password"' in page.text, page.text
    assert CSRF_RE.search(page.text), page.text
    logged_in = browser.post("/oauth/authorize/login", follow_redirects=True,
                             data={**hidden_fields(page), "login": login, "password": password})
    assert logged_in.status_code == 200 and 'value="authorize"' in logged_in.text, logged_in.text
    shown = browser.post("/oauth/authorize", data={**hidden_fields(logged_in), "decision": "authorize"})
    assert shown.status_code == 200, shown.text
    match = CODE_RE.search(shown.text)
    assert match, shown.text
    return html.unescape(match.group(1))


def authorize_url(base_url: str, client_id: str, scope: str, **extra: str) -> str:
    query = {"client_id": client_id, "redirect_uri": OOB, "response_type": "code", "scope": scope, **extra}
    return f"{base_url}/oauth/authorize?{urlencode(query)}"
