"""``IpBlockMiddleware``: a ``no_access`` IP block refuses every request from its network.

I expect a request from a blocked address (IPv4 or IPv6 network) to be refused with 403 —
``{"error"}`` for the API and ActivityPub, a line of text for a page, the request id and
CORS headers still on it, a WebSocket closed before it opens — except the health checks;
other addresses, and the weaker severities, to pass; the block made through this process
to apply at once and its removal likewise; and with no blocks, the per-request cost to be
a few hundred nanoseconds (asserted generously, to catch an accidental query or parse).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from server.app import AppOptions, create_app
from server.services import ip_blocks
from server.settings import Settings
from tests.conftest import DOMAIN

From = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings, options=AppOptions(run_workers=False, run_reconciler=False))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def from_address(served: Starlette) -> From:
    @asynccontextmanager
    async def client(address: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=served, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
            yield http

    return client


async def add_block(application: Starlette, ip: str, severity: str) -> int:
    state = application.state.easel
    async with state.db.session() as session:
        block = await ip_blocks.create_ip_block(session, ip, severity, matcher=state.ip_blocks)
    return block.id


async def test_a_blocked_network_is_refused_everywhere_but_health(
        served: Starlette, from_address: From, alice: Any) -> None:
    await add_block(served, "203.0.113.0/24", "no_access")
    await add_block(served, "2001:db8:bad::/48", "no_access")
    for address in ("203.0.113.77", "2001:db8:bad:1::5"):
        async with from_address(address) as http:
            api = await http.get("/api/v1/instance", headers={"Origin": "https://app.example"})
            assert api.status_code == 403
            assert api.json() == {"error": "Access from your network is not allowed"}
            assert api.headers["x-request-id"]
            assert api.headers["access-control-allow-origin"] == "*"
            actor = await http.get("/users/alice", headers={"Accept": "application/activity+json"})
            assert actor.status_code == 403 and "error" in actor.json()
            inbox = await http.post("/inbox", content=b"{}",
                                    headers={"Content-Type": "application/activity+json"})
            assert inbox.status_code == 403
            page = await http.get("/@alice", headers={"Accept": "text/html"})
            assert page.status_code == 403
            assert page.headers["content-type"].startswith("text/plain")
            assert page.text == "Access from your network is not allowed"
            assert (await http.get("/health")).status_code == 200
            # the metrics answer as they would anyway (off here: 404), never the block's 403
            assert (await http.get("/metrics")).status_code != 403
            assert (await http.get("/healthy-looking")).status_code == 403  # only /health
    for address in ("203.0.114.1", "2001:db8:bad0::1", "127.0.0.1"):
        async with from_address(address) as http:
            assert (await http.get("/api/v1/instance")).status_code == 200, address
            assert (await http.get("/users/alice", headers={
                "Accept": "application/activity+json"})).status_code == 200


async def test_weaker_severities_let_requests_through_and_changes_apply_at_once(
        served: Starlette, from_address: From) -> None:
    block_id = await add_block(served, "198.51.100.0/24", "sign_up_block")
    await add_block(served, "198.51.0.0/16", "sign_up_requires_approval")
    async with from_address("198.51.100.5") as http:
        assert (await http.get("/api/v1/instance")).status_code == 200
        state = served.state.easel
        async with state.db.session() as session:
            await ip_blocks.update_ip_block(session, block_id, severity="no_access",
                                            matcher=state.ip_blocks)
        assert (await http.get("/api/v1/instance")).status_code == 403
        async with state.db.session() as session:
            await ip_blocks.remove_ip_block(session, block_id, matcher=state.ip_blocks)
        assert (await http.get("/api/v1/instance")).status_code == 200


async def test_a_blocked_websocket_is_closed_before_it_opens(served: Starlette) -> None:
    """The app as the server calls it: a WebSocket from a blocked network gets a close
    (1008) in answer to its connect, and nothing else; one from elsewhere is let through."""
    await add_block(served, "203.0.113.0/24", "no_access")

    async def attempt(address: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": "/api/v1/streaming", "raw_path": b"/api/v1/streaming",
                 "query_string": b"stream=public", "headers": [(b"host", DOMAIN.encode())],
                 "client": (address, 5000), "server": ("127.0.0.1", 443), "scheme": "wss",
                 "root_path": "", "subprotocols": [], "asgi": {"version": "3.0"}}
        await served(scope, receive, send)
        return sent

    blocked = await attempt("203.0.113.9")
    assert blocked == [{"type": "websocket.close", "code": 1008,
                        "reason": "Access from your network is not allowed"}]
    allowed = await attempt("198.51.100.9")
    assert allowed and allowed[0]["type"] == "websocket.accept"
