"""The only way Easel talks to other servers: an SSRF-safe outbound HTTP client.

Every URL a remote server hands us (actor ids, inboxes, key ids, attachment URLs,
redirect targets, WebFinger links) is attacker-controlled. Fetched naively, such a URL
reaches the instance's own database port, the cloud metadata service at 169.254.169.254
or anything else on the private network. This module exists so that cannot happen:

* :class:`SafeTransport` (an ``httpx.AsyncBaseTransport``) resolves each request's host
  **once**, refuses the request unless every address is globally reachable (see
  :func:`forbidden_reason`; IPv4-mapped, -compatible, -translated, 6to4 and NAT64 IPv6
  forms are unwrapped and their IPv4 address checked), and pins the checked addresses for
  the connection. It connects only to the port the URL names (default 443/80).
* :class:`PinnedHTTPTransport` is the real network path: a connection pool (httpcore's, or
  for the delivery client :class:`KeepAlivePool`, which keeps connections per origin) whose
  network backend (:class:`PinnedNetworkBackend`) connects to the pinned addresses only —
  there is no second DNS lookup, so DNS rebinding cannot swap in a private address. The
  URL is left alone, so the ``Host`` header, TLS SNI and certificate verification all use
  the original host name, and pooled connections are keyed by that name. A connection
  attempt with no pinned address (anything that bypassed :class:`SafeTransport`) is
  refused.
* :func:`fetch` (and :func:`fetch_json`, :func:`fetch_bytes` on top of it) follows redirects
  by hand — at most :data:`MAX_REDIRECTS`, http/https only, each hop going through the
  transport again, so resolved and checked again — caps the body (streamed; reading stops
  at the cap) and the total time, and accepts only the content types the caller names.

``EASEL_ALLOW_PRIVATE_ADDRESSES`` (``settings.allow_private_addresses``) turns the address
check off, for local test networks only. With ``EASEL_SCHEME=http`` (labs and tests)
lookups Easel builds itself (WebFinger) use http: :func:`lookup_scheme`.

This module must never: connect to an address it has not checked, resolve a host twice
for one request, follow a redirect inside httpx, read a body past its cap, trust
``HTTP_PROXY``/``.netrc`` from the environment, or touch the network at import. It does no
signing: callers pass an ``httpx.Auth`` (``federation.signatures.CavageSigner``) as
``auth``, which is applied to every hop.

Exception hierarchy (all carry ``url``, the URL being fetched when it happened)::

    FetchError
    ├── ForbiddenURL        not fetchable as written: scheme other than http/https
    │                       (initial URL or redirect), no host, a host ending in a dot
    │                       (another spelling that domain blocks would not match),
    │                       credentials, bad port
    ├── UnresolvableHost    DNS gave no usable address
    ├── ForbiddenAddress    the host is, or resolves to, a non-global address (.address)
    ├── FetchTimeout        connect/read timeout, or the total time cap was reached
    ├── ConnectionFailed    refused, reset, TLS failure, protocol error
    ├── TooManyRedirects    more than max_redirects hops, or a redirect loop
    ├── RemoteStatusError   final response not 2xx (.status_code)
    ├── WrongContentType    Content-Type missing or not among those accepted (.content_type)
    ├── TooLarge            body (declared or streamed, after decompression) over the cap
    └── MalformedBody       undecodable body, or JSON that is not an object

:class:`SafeTransport` itself raises ``ForbiddenURL``, ``UnresolvableHost`` and
``ForbiddenAddress`` straight through ``httpx.AsyncClient``; code that uses the client
directly (``client.post`` for delivery) should catch both ``FetchError`` and
``httpx.HTTPError``. The fetch helpers raise only ``FetchError`` subclasses.
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import math
import socket
import ssl
import sys
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
import httpx

import server
from federation.content_types import ACTIVITY_JSON, LD_JSON_AS2
from server.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str | IPAddress]]]
"""``async (host, port) -> addresses``: the one DNS lookup a request gets."""

# Per-call content types.
ACTIVITY_ACCEPT: tuple[str, ...] = (ACTIVITY_JSON, LD_JSON_AS2, "application/json")
JRD_ACCEPT: tuple[str, ...] = ("application/jrd+json", "application/json")
XRD_ACCEPT: tuple[str, ...] = ("application/xrd+xml", "application/xml", "text/xml")
IMAGE_ACCEPT: tuple[str, ...] = ("image/*",)

# Limits. Mastodon caps JSON documents at 1 MB and remote images at 16 MB.
DEFAULT_MAX_JSON_BYTES = 1024 * 1024
DEFAULT_MAX_MEDIA_BYTES = 16 * 1024 * 1024
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_TOTAL_TIMEOUT = 30.0
MAX_REDIRECTS = 5
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


# ------------------------------------------------------------------ exceptions


class FetchError(Exception):
    """A remote resource could not be fetched safely; ``url`` is the URL at fault."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class ForbiddenURL(FetchError):
    """The URL (or a redirect target) is not one Easel fetches: scheme, host, port, credentials."""


class UnresolvableHost(FetchError):
    """The host name did not resolve to any usable address."""


class ForbiddenAddress(FetchError):
    """The host is, or resolves to, an address that is not globally reachable."""

    def __init__(self, message: str, *, url: str | None = None, address: str | None = None) -> None:
        super().__init__(message, url=url)
        self.address = address


class FetchTimeout(FetchError):
    """Connecting or reading took too long, or the whole fetch passed its time cap."""


class ConnectionFailed(FetchError):
    """The connection failed: refused, reset, TLS verification, HTTP protocol error."""


class TooManyRedirects(FetchError):
    """More redirects than allowed, or a redirect back to a URL already visited."""


class RemoteStatusError(FetchError):
    """The final response had a status other than 2xx."""

    def __init__(self, message: str, *, url: str | None = None, status_code: int) -> None:
        super().__init__(message, url=url)
        self.status_code = status_code


class WrongContentType(FetchError):
    """The response's Content-Type is missing or not one this call accepts."""

    def __init__(self, message: str, *, url: str | None = None, content_type: str = "") -> None:
        super().__init__(message, url=url)
        self.content_type = content_type


class TooLarge(FetchError):
    """The body is larger than this call's cap (declared, or found while streaming)."""


class MalformedBody(FetchError):
    """The body could not be decoded (bad compression, not JSON, not a JSON object)."""


# ------------------------------------------------------------------ address policy

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# IANA special-purpose registries, spelled out so the policy does not depend on the
# Python patch release's ``is_global`` tables (which are also consulted, as a backstop).
_FORBIDDEN_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified ('this network')"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared address space (CGNAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "IETF protocol assignments"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),  # includes the broadcast address 255.255.255.255
)
_FORBIDDEN_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64"),
    (_V6("100::/64"), "discard-only"),
    (_V6("2001::/23"), "IETF protocol assignments (Teredo, benchmarking, ORCHID)"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("5f00::/16"), "segment routing (SRv6) SIDs"),
    (_V6("fc00::/7"), "unique local (ULA)"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)
_NAT64_WELL_KNOWN = _V6("64:ff9b::/96")
_IPV4_COMPATIBLE = _V6("::/96")
_IPV4_TRANSLATED = _V6("::ffff:0:0:0/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, where it is a wrapper around one."""
    if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return address.ipv4_mapped
    if address.sixtofour is not None:  # 2002:AABB:CCDD::/48
        return address.sixtofour
    if address in _NAT64_WELL_KNOWN or address in _IPV4_COMPATIBLE or address in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: str | IPAddress) -> str | None:
    """Why ``address`` must not be connected to, or None when it is globally reachable."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv4Address):
        for network, reason in _FORBIDDEN_V4:
            if ip in network:
                return reason
        return None if ip.is_global else "not globally reachable"
    for network6, reason in _FORBIDDEN_V6:
        if ip in network6:
            return reason
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        inner = forbidden_reason(embedded)
        return None if inner is None else f"{inner} (IPv4 {embedded} inside {ip})"
    return None if ip.is_global else "not globally reachable"


async def system_resolver(host: str, port: int) -> list[str]:
    """The default resolver: the system's getaddrinfo (in a worker thread), TCP only."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def lookup_scheme(settings: Settings) -> str:
    """The scheme for URLs Easel builds for other hosts: https, or http in labs and tests."""
    return "http" if settings.scheme == "http" else "https"


# ------------------------------------------------------------------ pinning

# (host, port) -> the checked addresses, for the request being sent in this task.
_PINNED: contextvars.ContextVar[Mapping[tuple[str, int], tuple[str, ...]]] = contextvars.ContextVar(
    "easel_pinned_addresses"
)


@contextmanager
def _pinned(host: str, port: int, addresses: tuple[str, ...]) -> Iterator[None]:
    token = _PINNED.set({**_PINNED.get({}), (host, port): addresses})
    try:
        yield
    finally:
        _PINNED.reset(token)


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to the addresses SafeTransport checked.

    ``connect_tcp`` gets the URL's host name from httpcore and connects to the address(es)
    pinned for (host, port) instead, in order; there is no DNS lookup here. TLS, which
    httpcore starts on the returned stream, still uses the host name for SNI and
    certificate verification. Unix sockets are refused.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = _PINNED.get({}).get((host.lower(), port))
        if not addresses:
            raise ForbiddenAddress(
                f"refusing to connect to {host}:{port}: no checked address (requests must go "
                "through SafeTransport)"
            )
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ForbiddenAddress("refusing to connect to a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


_HTTPCORE_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    # Most specific first.
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """Re-raise httpcore's exceptions as httpx's, as httpx's own transport does."""
    try:
        yield
    except Exception as exc:
        for source, target in _HTTPCORE_ERRORS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _PinnedResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: typing.AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            with _httpx_errors():
                await aclose()


class _CoalescedWrites(httpcore.AsyncNetworkStream):
    """A network stream that sends what is written in one piece when the answer is read.

    httpcore writes a request's head and its body separately: two sends, two packets, two
    wake-ups of the receiver per delivery. A client's HTTP/1.1 exchange always reads the
    answer after writing the request, so holding the writes until then (or until
    ``COALESCE_BYTES`` are held) changes nothing on the wire but the packet boundaries.
    """

    COALESCE_BYTES = 64 * 1024

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._timeout: float | None = None

    async def _flush(self) -> None:
        if self._held:
            data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
            self._held, self._held_bytes = [], 0
            await self._inner.write(data, timeout=self._timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 - httpcore's interface
        if buffer:
            self._held.append(buffer)
            self._held_bytes += len(buffer)
            self._timeout = timeout
            if self._held_bytes >= self.COALESCE_BYTES:
                await self._flush()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 - httpcore's interface
        await self._flush()
        return await self._inner.read(max_bytes, timeout=timeout)

    async def aclose(self) -> None:
        self._held, self._held_bytes = [], 0
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        await self._flush()
        return _CoalescedWrites(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CoalescingBackend(httpcore.AsyncNetworkBackend):
    """``inner``'s TCP connections, with :class:`_CoalescedWrites`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _CoalescedWrites(await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address,
            socket_options=socket_options))

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout=timeout,
                                                     socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


OriginKey = tuple[bytes, bytes, int]


class KeepAlivePool:
    """HTTP/1.1 keep-alive connections kept by origin: the delivery client's pool.

    Why not httpcore's pool: on every request it scans all its connections several times
    (once quadratically) and polls the socket of each idle one, so with a few dozen
    connections its bookkeeping costs more than the request itself — on a delivery burst
    to many inboxes on the same hosts, most of the time went there. Here a request takes
    the most recently idle connection of its own origin (one liveness check: the keep-alive
    time and whether the server closed it) or opens a new one.

    The limits mean what httpx's mean: at most ``max_connections`` open (connecting, busy
    or idle; when full, the least recently used idle connection is closed for the new
    one, and without any the request waits up to its pool timeout, then
    ``httpcore.PoolTimeout``), at most ``max_keepalive_connections`` kept idle, each for at
    most ``keepalive_expiry`` seconds. Connections are httpcore's own
    (``AsyncHTTPConnection``, HTTP/1.1 only) over ``network_backend``, so they connect
    exactly as httpcore's pool would: to the pinned addresses, TLS by host name. A
    connection that failed or was left mid-answer is closed, never reused.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        network_backend: httpcore.AsyncNetworkBackend,
        max_connections: int | None = None,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float | None = None,
    ) -> None:
        self._ssl_context = ssl_context
        self._network_backend = network_backend
        self._max_connections = max_connections if max_connections is not None else sys.maxsize
        self._max_keepalive = min(
            max_keepalive_connections if max_keepalive_connections is not None else sys.maxsize,
            self._max_connections,
        )
        self._keepalive_expiry = keepalive_expiry
        # Idle connections by origin, most recently idle last; and all of them in the order
        # they became idle (least recently used first), with the time they may be kept to.
        self._idle: dict[OriginKey, list[httpcore.AsyncHTTPConnection]] = {}
        self._idle_order: dict[httpcore.AsyncHTTPConnection, tuple[OriginKey, float]] = {}
        self._open: set[httpcore.AsyncHTTPConnection] = set()
        self._waiters: list[anyio.Event] = []
        self._closed = False

    @property
    def connections(self) -> int:
        """Connections open now (busy or idle)."""
        return len(self._open)

    @property
    def idle_connections(self) -> int:
        return len(self._idle_order)

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        origin = request.url.origin
        key: OriginKey = (origin.scheme, origin.host, origin.port)
        timeout = request.extensions.get("timeout", {}).get("pool")
        while True:
            connection = await self._acquire(key, origin, timeout)
            try:
                response = await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:
                await self._discard(connection)  # closed meanwhile: take another
                continue
            except BaseException:
                await self._discard(connection)
                raise
            return httpcore.Response(
                status=response.status,
                headers=response.headers,
                content=_PooledStream(response.stream, self, connection, key),
                extensions=response.extensions,
            )

    async def _acquire(self, key: OriginKey, origin: httpcore.Origin,
                       pool_timeout: float | None) -> httpcore.AsyncHTTPConnection:
        deadline = time.monotonic() + pool_timeout if pool_timeout is not None else None
        while True:
            if self._closed:
                raise RuntimeError("the connection pool is closed")
            await self._close_expired()
            while key in self._idle:
                connection = self._idle[key][-1]
                self._forget_idle(connection)
                if connection.is_available() and not connection.has_expired():
                    return connection
                await self._discard(connection)
            if len(self._open) >= self._max_connections and self._idle_order:
                oldest = next(iter(self._idle_order))  # the least recently used
                self._forget_idle(oldest)
                await self._discard(oldest)
            if len(self._open) < self._max_connections:
                connection = httpcore.AsyncHTTPConnection(
                    origin=origin, ssl_context=self._ssl_context,
                    keepalive_expiry=self._keepalive_expiry, http1=True, http2=False,
                    network_backend=self._network_backend,
                )
                self._open.add(connection)
                return connection
            # Full, every connection busy: wait for one to be freed or kept.
            waiter = anyio.Event()
            self._waiters.append(waiter)
            try:
                with anyio.move_on_after(
                        deadline - time.monotonic() if deadline is not None else math.inf):
                    await waiter.wait()
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if not waiter.is_set():
                raise httpcore.PoolTimeout(
                    f"no connection to {origin} free within {pool_timeout} s")

    def _forget_idle(self, connection: httpcore.AsyncHTTPConnection) -> None:
        """Take an idle connection out of the idle lists."""
        key, _ = self._idle_order.pop(connection)
        idle = self._idle[key]
        idle.remove(connection)
        if not idle:
            del self._idle[key]  # no empty list kept per host ever seen

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set()

    async def _close_expired(self) -> None:
        """Close idle connections past their keep-alive time (the oldest idle come first)."""
        now = time.monotonic()
        while self._idle_order:
            connection, (_, until) = next(iter(self._idle_order.items()))
            if until > now:
                return
            self._forget_idle(connection)
            await self._discard(connection)

    async def _release(self, connection: httpcore.AsyncHTTPConnection, key: OriginKey) -> None:
        """A response is closed: keep its connection for the next request, or close it."""
        if (self._closed or connection.is_closed() or not connection.is_idle()
                or self._max_keepalive <= 0 or connection not in self._open):
            await self._discard(connection)
            return
        until = (time.monotonic() + self._keepalive_expiry if self._keepalive_expiry is not None
                 else float("inf"))
        self._idle.setdefault(key, []).append(connection)
        self._idle_order[connection] = (key, until)
        # The bookkeeping is done before any await, so concurrent releases cannot overshoot.
        surplus = []
        while len(self._idle_order) > self._max_keepalive:
            oldest = next(iter(self._idle_order))
            self._forget_idle(oldest)
            surplus.append(oldest)
        self._wake()
        for oldest in surplus:
            await self._discard(oldest)

    async def _discard(self, connection: httpcore.AsyncHTTPConnection) -> None:
        """Close ``connection`` and free its place (safe to call twice)."""
        if connection in self._open:
            self._open.discard(connection)
            self._wake()
        with anyio.CancelScope(shield=True):
            await connection.aclose()

    async def aclose(self) -> None:
        self._closed = True
        connections = list(self._open)
        self._open.clear()
        self._idle.clear()
        self._idle_order.clear()
        self._wake()
        with anyio.CancelScope(shield=True):
            for connection in connections:
                await connection.aclose()


class _PooledStream:
    """A response body from :class:`KeepAlivePool`: closing it hands the connection back."""

    def __init__(self, stream: typing.Iterable[bytes] | typing.AsyncIterable[bytes],
                 pool: KeepAlivePool, connection: httpcore.AsyncHTTPConnection,
                 key: OriginKey) -> None:
        self._stream = stream
        self._pool = pool
        self._connection = connection
        self._key = key
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert isinstance(self._stream, typing.AsyncIterable)
        try:
            async for part in self._stream:
                yield part
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            aclose = getattr(self._stream, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
        finally:
            await self._pool._release(self._connection, self._key)


class PinnedHTTPTransport(httpx.AsyncBaseTransport):
    """The real network transport: a connection pool over :class:`PinnedNetworkBackend`.

    Used only underneath :class:`SafeTransport`, which sets the pins; on its own it refuses
    every connection. HTTP/1.1 only. The pool is httpcore's, or with ``keep_alive_by_origin``
    a :class:`KeepAlivePool` (the delivery client: many requests to the same hosts).
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        keep_alive_by_origin: bool = False,
    ) -> None:
        ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(
            verify=verify, trust_env=False
        )
        self._pool: KeepAlivePool | httpcore.AsyncConnectionPool
        if keep_alive_by_origin:
            self._pool = KeepAlivePool(
                ssl_context=ssl_context,
                network_backend=_CoalescingBackend(PinnedNetworkBackend(network_backend)),
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
            )
            return
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=PinnedNetworkBackend(network_backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, typing.AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_PinnedResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


# ------------------------------------------------------------------ the safe transport


def _url_host_port(url: httpx.URL) -> tuple[str, int]:
    """The (host, port) a request will connect to; ForbiddenURL where it must not."""
    text = str(url)
    if url.scheme not in DEFAULT_PORTS:
        raise ForbiddenURL(f"refusing to fetch a {url.scheme or 'scheme-less'} URL: {text}", url=text)
    if url.userinfo:
        raise ForbiddenURL(f"refusing to fetch a URL with credentials: {url.copy_with(userinfo=b'')}",
                           url=text)
    host = url.raw_host.decode("ascii").lower()
    if not host:
        raise ForbiddenURL(f"refusing to fetch a URL without a host: {text}", url=text)
    if host.endswith("."):
        # evil.example. is evil.example (an absolute DNS name), but domain blocks and
        # origin checks compare names: fetching it would walk around a block.
        raise ForbiddenURL(f"refusing to fetch a host name ending in a dot: {text}", url=text)
    port = url.port if url.port is not None else DEFAULT_PORTS[url.scheme]
    if not 0 < port < 65536:
        raise ForbiddenURL(f"refusing to fetch a URL with port {port}: {text}", url=text)
    return host, port


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class SafeTransport(httpx.AsyncBaseTransport):
    """Checks where each request goes, then hands it to ``inner`` pinned to what it checked.

    For each request: the scheme must be http or https, the host is resolved once with
    ``resolver`` (an IP literal is taken as is), and every address must pass
    :func:`forbidden_reason` unless ``allow_private_addresses``; a host that publishes even
    one forbidden address is refused. The checked addresses are pinned for the duration of
    ``inner.handle_async_request``, which is where :class:`PinnedHTTPTransport` connects.
    With another ``inner`` (``httpx.MockTransport``, ``httpx.ASGITransport`` in tests) the
    checks still run; the pin simply goes unused.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        resolver: Resolver | None = None,
        allow_private_addresses: bool = False,
    ) -> None:
        self._inner = inner if inner is not None else PinnedHTTPTransport()
        self._resolver = resolver if resolver is not None else system_resolver
        self._allow_private = allow_private_addresses

    async def checked_addresses(self, url: httpx.URL) -> tuple[str, ...]:
        """Resolve ``url``'s host once and check every address; the addresses to connect to."""
        host, port = _url_host_port(url)
        text = str(url)
        literal = _literal_address(host)
        if literal is not None:
            found: list[IPAddress] = [literal]
        else:
            try:
                answers = await self._resolver(host, port)
                found = [
                    ipaddress.ip_address(str(answer).split("%", 1)[0]) if isinstance(answer, str)
                    else answer
                    for answer in answers
                ]
            except (OSError, ValueError) as exc:
                raise UnresolvableHost(f"cannot resolve {host}: {exc}", url=text) from exc
            if not found:
                raise UnresolvableHost(f"{host} has no address", url=text)
        if not self._allow_private:
            for address in found:
                reason = forbidden_reason(address)
                if reason is not None:
                    shown = host if literal is not None else f"{host} (resolves to {address})"
                    raise ForbiddenAddress(f"refusing to connect to {shown}: {reason} address",
                                           url=text, address=str(address))
        return tuple(dict.fromkeys(str(address) for address in found))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        addresses = await self.checked_addresses(request.url)
        host, port = _url_host_port(request.url)
        with _pinned(host, port, addresses):
            return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def safe_client(
    settings: Settings,
    *,
    resolver: Resolver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
    verify: ssl.SSLContext | bool = True,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    limits: httpx.Limits = DEFAULT_LIMITS,
    user_agent: str | None = None,
    keep_alive_by_origin: bool = False,
) -> httpx.AsyncClient:
    """The client every outbound federation request goes through.

    ``resolver`` replaces the system DNS lookup; ``transport`` replaces the real network
    underneath the checks (tests: ``httpx.MockTransport``, ``httpx.ASGITransport``);
    ``network_backend`` replaces only the socket layer of the real transport (tests that
    record where connections go); ``verify`` is httpx's (a bool or an ``ssl.SSLContext``).
    The client never follows redirects itself (use :func:`fetch`), ignores proxy and netrc
    settings in the environment, and asks only for gzip/deflate compression.
    ``keep_alive_by_origin`` gives the real transport a :class:`KeepAlivePool` (the
    delivery client).
    """
    if transport is not None and (network_backend is not None or verify is not True):
        raise ValueError("network_backend and verify apply to the default transport only")
    inner = transport if transport is not None else PinnedHTTPTransport(
        verify=verify, limits=limits, network_backend=network_backend,
        keep_alive_by_origin=keep_alive_by_origin,
    )
    agent = user_agent or f"Easel/{server.__version__} (+{settings.base_url}/)"
    return httpx.AsyncClient(
        transport=SafeTransport(inner, resolver=resolver,
                                allow_private_addresses=settings.allow_private_addresses),
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": agent, "Accept-Encoding": "gzip, deflate"},
    )


# ------------------------------------------------------------------ content types


def _parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; k=v; k2="v;2"`` -> ("type/subtype", {"k": "v", "k2": "v;2"})."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, raw = part.partition("=")
        if sep and name.strip():
            params[name.strip().lower()] = raw.strip().strip('"')
    return parts[0].strip().lower(), params


def content_type_allowed(content_type: str, accept: Sequence[str]) -> bool:
    """Whether a response's Content-Type matches one of ``accept``.

    An entry matches when the media type is equal (``type/*`` matches any subtype) and each
    of the entry's parameters is present in the response with the same value (``profile``:
    among the response's space-separated profiles). Other response parameters (charset) do
    not matter.
    """
    media_type, params = _parse_media_type(content_type)
    main, slash, sub = media_type.partition("/")
    if not slash or not main or not sub:
        return False
    for entry in accept:
        wanted, wanted_params = _parse_media_type(entry)
        if wanted.endswith("/*"):
            if main != wanted[:-2]:
                continue
        elif media_type != wanted:
            continue
        for name, value in wanted_params.items():
            have = params.get(name)
            if have is None:
                break
            if name == "profile":
                if value not in have.split():
                    break
            elif have.lower() != value.lower():
                break
        else:
            return True
    return False


# ------------------------------------------------------------------ fetching


@dataclass(frozen=True)
class FetchedResponse:
    """A fetched body, read in full within its cap."""

    url: str  # the final URL, after redirects
    status_code: int
    content_type: str
    headers: httpx.Headers
    content: bytes


def _absolute_http_url(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ForbiddenURL(f"not a valid URL: {url!r}", url=str(url)) from exc
    _url_host_port(parsed)
    return parsed


async def _read_capped(response: httpx.Response, max_bytes: int, url: str, *,
                       truncate: bool = False) -> bytes:
    declared = response.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"{url} declares {declared} bytes, over the limit of {max_bytes}", url=url)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            if truncate:  # the first max_bytes, and reading stops here
                chunks.append(chunk[:len(chunk) - (size - max_bytes)])
                break
            raise TooLarge(f"{url} sent more than {max_bytes} bytes", url=url)
        chunks.append(chunk)
    return b"".join(chunks)


async def _fetch(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    *,
    accept: Sequence[str],
    auth: httpx.Auth | None,
    max_bytes: int,
    max_redirects: int,
    truncate: bool = False,
) -> FetchedResponse:
    current = _absolute_http_url(url)
    visited: set[str] = set()
    headers = {"Accept": ", ".join(accept)}
    for hop in range(max_redirects + 1):
        text = str(current)
        visited.add(text)
        request = client.build_request("GET", current, headers=headers)
        response = await client.send(
            request,
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            follow_redirects=False,
            stream=True,
        )
        try:
            location = response.headers.get("location")
            if response.status_code in REDIRECT_STATUSES and location:
                if hop == max_redirects:
                    raise TooManyRedirects(f"more than {max_redirects} redirects, the last from {text}",
                                           url=text)
                try:
                    target = current.join(location)
                except httpx.InvalidURL as exc:
                    raise ForbiddenURL(f"{text} redirects to an invalid URL {location!r}",
                                       url=text) from exc
                if target.scheme not in DEFAULT_PORTS:
                    raise ForbiddenURL(f"{text} redirects to a {target.scheme or 'scheme-less'} URL",
                                       url=str(target))
                _url_host_port(target)
                target = target.copy_with(fragment=None)
                if str(target) in visited:
                    raise TooManyRedirects(f"redirect loop: {text} -> {target}", url=text)
                current = target
                continue
            if not 200 <= response.status_code < 300:
                raise RemoteStatusError(f"{text} answered {response.status_code}", url=text,
                                        status_code=response.status_code)
            content_type = response.headers.get("content-type", "")
            if not content_type_allowed(content_type, accept):
                raise WrongContentType(
                    f"{text} sent {content_type or 'no Content-Type'}; expected one of: "
                    f"{', '.join(accept)}", url=text, content_type=content_type,
                )
            content = await _read_capped(response, max_bytes, text, truncate=truncate)
            return FetchedResponse(url=text, status_code=response.status_code,
                                   content_type=content_type, headers=response.headers,
                                   content=content)
        finally:
            await response.aclose()
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


async def fetch(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    *,
    accept: Sequence[str],
    auth: httpx.Auth | None = None,
    max_bytes: int = DEFAULT_MAX_JSON_BYTES,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
    max_redirects: int = MAX_REDIRECTS,
    truncate: bool = False,
) -> FetchedResponse:
    """GET ``url`` safely: redirects checked hop by hop, body and time capped, type checked.

    ``auth`` (e.g. a ``CavageSigner``) signs every hop; without it the client's own auth,
    if any, applies. With ``truncate`` a body over ``max_bytes`` is cut there (reading
    stops) instead of refused (a web page's head is at its start). Raises only
    :class:`FetchError` subclasses.
    """
    shown = str(url)
    try:
        with anyio.fail_after(total_timeout):
            return await _fetch(client, url, accept=accept, auth=auth, max_bytes=max_bytes,
                                max_redirects=max_redirects, truncate=truncate)
    except TimeoutError as exc:
        raise FetchTimeout(f"fetching {shown} took more than {total_timeout:g} s", url=shown) from exc
    except httpx.TimeoutException as exc:
        raise FetchTimeout(f"fetching {shown} timed out: {exc!r}", url=shown) from exc
    except httpx.DecodingError as exc:
        raise MalformedBody(f"{shown} sent a body that cannot be decoded: {exc}", url=shown) from exc
    except httpx.InvalidURL as exc:
        raise ForbiddenURL(f"not a valid URL: {exc}", url=shown) from exc
    except httpx.HTTPError as exc:
        raise ConnectionFailed(f"fetching {shown} failed: {exc!r}", url=shown) from exc


async def fetch_json(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    *,
    accept: Sequence[str] = ACTIVITY_ACCEPT,
    auth: httpx.Auth | None = None,
    max_bytes: int = DEFAULT_MAX_JSON_BYTES,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
) -> tuple[str, dict[str, Any]]:
    """Fetch a JSON object (an AS2 document by default): ``(final_url, document)``."""
    fetched = await fetch(client, url, accept=accept, auth=auth, max_bytes=max_bytes,
                          total_timeout=total_timeout)
    try:
        document = json.loads(fetched.content)
    except (ValueError, RecursionError) as exc:
        raise MalformedBody(f"{fetched.url} did not send valid JSON: {exc}", url=fetched.url) from exc
    if not isinstance(document, dict):
        raise MalformedBody(f"{fetched.url} sent JSON that is not an object", url=fetched.url)
    return fetched.url, document


async def fetch_bytes(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    *,
    accept: Sequence[str] = IMAGE_ACCEPT,
    auth: httpx.Auth | None = None,
    max_bytes: int = DEFAULT_MAX_MEDIA_BYTES,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
) -> tuple[bytes, str]:
    """Fetch a binary resource (an image by default): ``(content, content_type)``."""
    fetched = await fetch(client, url, accept=accept, auth=auth, max_bytes=max_bytes,
                          total_timeout=total_timeout)
    return fetched.content, fetched.content_type
