"""The delivery client's connection pool (``federation.http.KeepAlivePool``): connections
kept per origin and reused, its limits, and what it must not reuse.

Requests go through the real transport (``safe_client(..., keep_alive_by_origin=True)``) to
small keep-alive HTTP/1.1 servers on 127.0.0.1, which count the connections they accept.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpcore
import httpx
import pytest

from federation.http import ForbiddenAddress, KeepAlivePool, PinnedHTTPTransport, safe_client
from server.settings import Settings

LAB = Settings(domain="easel.test", scheme="https", allow_private_addresses=True)
STRICT = LAB.with_changes(allow_private_addresses=False)
LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=10)


class KeepAliveServer:
    """Answers every request on a connection with 202 (or ``body``), keeping it open unless
    ``close_after`` responses were sent on it; counts connections and requests."""

    def __init__(self, *, body: bytes = b"", close_after: int | None = None,
                 hold: asyncio.Event | None = None) -> None:
        self.body = body
        self.close_after = close_after
        self.hold = hold  # when given, each answer waits until it is set
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self.writers.append(writer)
        served = 0
        try:
            while self.close_after is None or served < self.close_after:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                self.requests += 1
                if self.hold is not None:
                    await self.hold.wait()
                served += 1
                last = self.close_after is not None and served >= self.close_after
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: "
                             + str(len(self.body)).encode()
                             + (b"\r\nConnection: close" if last else b"") + b"\r\n\r\n"
                             + self.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    def drop_connections(self) -> None:
        """Close every connection from the server side (as an idle timeout would)."""
        for writer in self.writers:
            writer.close()

    async def __aenter__(self) -> KeepAliveServer:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.drop_connections()
        self.server.close()
        await self.server.wait_closed()


@asynccontextmanager
async def delivery_client(limits: httpx.Limits = LIMITS,
                          settings: Settings = LAB) -> AsyncIterator[httpx.AsyncClient]:
    client = safe_client(settings, limits=limits, keep_alive_by_origin=True)
    async with client:
        yield client


def pool_of(client: httpx.AsyncClient) -> KeepAlivePool:
    inner = client._transport._inner  # type: ignore[attr-defined]
    assert isinstance(inner, PinnedHTTPTransport)
    pool = inner._pool
    assert isinstance(pool, KeepAlivePool)
    return pool


async def post(client: httpx.AsyncClient, url: str) -> int:
    response = await client.post(url, content=b'{"type":"Create"}')
    return response.status_code


async def test_requests_to_one_origin_reuse_one_connection() -> None:
    async with KeepAliveServer() as server, delivery_client() as client:
        for i in range(5):
            assert await post(client, f"http://127.0.0.1:{server.port}/users/u{i}/inbox") == 202
        assert (server.requests, server.connections) == (5, 1)
        assert (pool_of(client).connections, pool_of(client).idle_connections) == (1, 1)


async def test_each_origin_gets_its_own_connections() -> None:
    async with KeepAliveServer() as a, KeepAliveServer() as b, delivery_client() as client:
        for _ in range(3):
            for server in (a, b):
                assert await post(client, f"http://127.0.0.1:{server.port}/inbox") == 202
        assert (a.connections, b.connections) == (1, 1)
        assert (a.requests, b.requests) == (3, 3)


async def test_concurrent_requests_never_open_more_than_max_connections() -> None:
    limits = httpx.Limits(max_connections=3, max_keepalive_connections=3)
    async with KeepAliveServer() as server, delivery_client(limits) as client:
        codes = await asyncio.gather(*(post(client, f"http://127.0.0.1:{server.port}/i{n}")
                                       for n in range(30)))
        assert codes == [202] * 30
        assert server.requests == 30
        assert server.most_open <= 3
        assert server.connections <= 3
        assert pool_of(client).connections <= 3


async def test_a_full_pool_closes_an_idle_connection_of_another_origin() -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with KeepAliveServer() as a, KeepAliveServer() as b, delivery_client(limits) as client:
        assert await post(client, f"http://127.0.0.1:{a.port}/inbox") == 202
        assert await post(client, f"http://127.0.0.1:{b.port}/inbox") == 202
        assert await post(client, f"http://127.0.0.1:{a.port}/inbox") == 202
        assert (a.connections, b.connections) == (2, 1)
        assert pool_of(client).connections == 1


async def test_a_request_waits_for_a_busy_pool_up_to_its_pool_timeout() -> None:
    hold = asyncio.Event()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with KeepAliveServer(hold=hold) as server, delivery_client(limits) as client:
        first = asyncio.ensure_future(post(client, f"http://127.0.0.1:{server.port}/a"))
        while server.requests == 0:
            await asyncio.sleep(0.01)
        with pytest.raises(httpx.PoolTimeout):
            await client.post(f"http://127.0.0.1:{server.port}/b", content=b"{}",
                              timeout=httpx.Timeout(5.0, pool=0.3))
        hold.set()
        assert await first == 202
        # Freed: the next request gets the kept connection.
        assert await post(client, f"http://127.0.0.1:{server.port}/c") == 202
        assert server.connections == 1


async def test_a_waiting_request_gets_the_connection_when_it_is_freed() -> None:
    hold = asyncio.Event()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with KeepAliveServer(hold=hold) as server, delivery_client(limits) as client:
        requests = [asyncio.ensure_future(post(client, f"http://127.0.0.1:{server.port}/{n}"))
                    for n in range(3)]
        while server.requests == 0:
            await asyncio.sleep(0.01)
        hold.set()
        assert await asyncio.gather(*requests) == [202, 202, 202]
        assert server.connections == 1


async def test_a_connection_the_server_closes_is_not_reused() -> None:
    async with KeepAliveServer(close_after=1) as server, delivery_client() as client:
        for _ in range(3):
            assert await post(client, f"http://127.0.0.1:{server.port}/inbox") == 202
        assert server.connections == 3
        assert pool_of(client).idle_connections == 0


async def test_an_idle_connection_dropped_by_the_server_is_replaced() -> None:
    async with KeepAliveServer() as server, delivery_client() as client:
        assert await post(client, f"http://127.0.0.1:{server.port}/inbox") == 202
        server.drop_connections()
        await asyncio.sleep(0.05)
        assert await post(client, f"http://127.0.0.1:{server.port}/inbox") == 202
        assert server.connections == 2


async def test_idle_connections_expire() -> None:
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=10,
                          keepalive_expiry=0.05)
    async with KeepAliveServer() as server, delivery_client(limits) as client:
        assert await post(client, f"http://127.0.0.1:{server.port}/inbox") == 202
        await asyncio.sleep(0.1)
        assert await post(client, f"http://127.0.0.1:{server.port}/inbox") == 202
        assert server.connections == 2
        assert pool_of(client).connections == 1  # the expired one was closed


async def test_no_more_idle_connections_are_kept_than_the_keepalive_limit() -> None:
    hold = asyncio.Event()
    limits = httpx.Limits(max_connections=5, max_keepalive_connections=2)
    async with KeepAliveServer(hold=hold) as server, delivery_client(limits) as client:
        requests = [asyncio.ensure_future(post(client, f"http://127.0.0.1:{server.port}/{n}"))
                    for n in range(5)]
        while server.requests < 5:
            await asyncio.sleep(0.01)
        hold.set()
        assert await asyncio.gather(*requests) == [202] * 5
        assert (pool_of(client).connections, pool_of(client).idle_connections) == (2, 2)


async def test_a_connection_left_mid_answer_is_closed_not_reused() -> None:
    async with KeepAliveServer(body=b"x" * 100_000) as server, delivery_client() as client:
        url = f"http://127.0.0.1:{server.port}/inbox"
        async with client.stream("POST", url, content=b"{}") as response:
            async for _ in response.aiter_bytes():
                break  # read a first chunk only, as a delivery reads at most 16 KiB
        assert pool_of(client).connections == 0
        response = await client.post(url, content=b"{}")
        assert response.status_code == 202 and len(response.content) == 100_000
        assert server.connections == 2


async def test_a_failed_connection_frees_its_place() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with KeepAliveServer() as server, delivery_client(limits) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/inbox", content=b"{}")
        assert pool_of(client).connections == 0
        assert await post(client, f"http://127.0.0.1:{server.port}/inbox") == 202


async def test_cancelled_requests_free_their_places() -> None:
    hold = asyncio.Event()
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with KeepAliveServer(hold=hold) as server, delivery_client(limits) as client:
        requests = [asyncio.ensure_future(post(client, f"http://127.0.0.1:{server.port}/{n}"))
                    for n in range(4)]
        while server.requests < 2:
            await asyncio.sleep(0.01)
        for request in requests:
            request.cancel()
        await asyncio.gather(*requests, return_exceptions=True)
        assert pool_of(client).connections == 0
        hold.set()
        assert await post(client, f"http://127.0.0.1:{server.port}/after") == 202


async def test_the_address_checks_still_apply() -> None:
    async with KeepAliveServer() as server, delivery_client(settings=STRICT) as client:
        with pytest.raises(ForbiddenAddress):
            await client.post(f"http://127.0.0.1:{server.port}/inbox", content=b"{}")
        assert server.connections == 0


async def test_the_pool_connects_only_to_pinned_addresses() -> None:
    """Bypassing SafeTransport (no pins), the pool's connections are refused."""
    transport = PinnedHTTPTransport(keep_alive_by_origin=True)
    with pytest.raises(ForbiddenAddress, match="no checked address"):
        await transport.handle_async_request(httpx.Request("POST", "http://127.0.0.1:9/inbox",
                                                           content=b"{}"))
    await transport.aclose()


async def test_a_closed_pool_closes_its_connections() -> None:
    async with KeepAliveServer() as server:
        async with delivery_client() as client:
            assert await post(client, f"http://127.0.0.1:{server.port}/inbox") == 202
            pool = pool_of(client)
        assert pool.connections == 0
        for _ in range(50):
            if server.open == 0:
                break
            await asyncio.sleep(0.01)
        assert server.open == 0


# ------------------------------------------------------------------ coalesced writes


class OneReplyStream(httpcore.AsyncNetworkStream):
    """Records each write; answers 202 once the request was written."""

    def __init__(self, writes: list[bytes]) -> None:
        self.writes = writes
        self.answered = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self.answered:
            return b""
        self.answered = True
        return b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.writes.append(buffer)

    async def aclose(self) -> None:
        pass

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        self.writes.append(b"<tls>")
        return self


class OneReplyBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        return OneReplyStream(self.writes)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("no sleeping")


async def lab_dns(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_request_head_and_body_are_sent_in_one_write(scheme: str) -> None:
    backend = OneReplyBackend()
    body = b'{"type":"Create","id":"https://easel.test/a/1"}'
    async with safe_client(LAB, resolver=lab_dns, network_backend=backend,
                           keep_alive_by_origin=True) as client:
        response = await client.post(f"{scheme}://social.example/inbox", content=body)
    assert response.status_code == 202
    writes = [w for w in backend.writes if w != b"<tls>"]
    assert len(writes) == 1
    assert writes[0].startswith(b"POST /inbox HTTP/1.1\r\n") and writes[0].endswith(body)
    assert (backend.writes[0] == b"<tls>") == (scheme == "https")  # nothing held across TLS


async def test_a_large_body_is_not_held_whole() -> None:
    backend = OneReplyBackend()
    body = b"x" * 300_000
    async with safe_client(LAB, resolver=lab_dns, network_backend=backend,
                           keep_alive_by_origin=True) as client:
        response = await client.post("http://social.example/inbox", content=body)
    assert response.status_code == 202
    assert b"".join(backend.writes).endswith(body)
    assert max(len(w) for w in backend.writes) < len(body) + 1024
