"""The SSRF-safe client: where it connects, what it refuses, and its limits.

No test reaches the real network. Names resolve through ``FakeDNS``; responses come from
``httpx.MockTransport``, from a recording httpcore network backend (which shows the
address a connection really went to), or from a tiny server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import json
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from typing import Any

import anyio
import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from federation.http import (
    ACTIVITY_ACCEPT,
    IMAGE_ACCEPT,
    JRD_ACCEPT,
    ConnectionFailed,
    FetchError,
    FetchTimeout,
    ForbiddenAddress,
    ForbiddenURL,
    MalformedBody,
    PinnedNetworkBackend,
    RemoteStatusError,
    SafeTransport,
    TooLarge,
    TooManyRedirects,
    UnresolvableHost,
    WrongContentType,
    content_type_allowed,
    fetch,
    fetch_bytes,
    fetch_json,
    forbidden_reason,
    lookup_scheme,
    safe_client,
    system_resolver,
)
from server.settings import Settings

SETTINGS = Settings(domain="easel.test", scheme="https", allow_private_addresses=False)
LAB_SETTINGS = SETTINGS.with_changes(allow_private_addresses=True)
PUBLIC_IP = "93.184.215.14"
OTHER_PUBLIC_IP = "93.184.215.15"
NOTE = {"id": "https://social.example/notes/1", "type": "Note", "content": "hello"}

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


class FakeDNS:
    """A resolver: fixed answers per host, or a different answer on each call."""

    def __init__(self, answers: dict[str, list[str]] | None = None,
                 sequences: dict[str, list[list[str]]] | None = None) -> None:
        self.answers = answers or {}
        self.sequences = {host: list(seq) for host, seq in (sequences or {}).items()}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host in self.sequences:
            return self.sequences[host].pop(0)
        if host in self.answers:
            return self.answers[host]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def public_dns(*hosts: str) -> FakeDNS:
    return FakeDNS({host: [PUBLIC_IP] for host in hosts})


def as2(document: Any, status: int = 200, content_type: str = "application/activity+json",
        headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(document).encode(),
                          headers={"Content-Type": content_type, **(headers or {})})


async def streamed(*chunks: bytes) -> AsyncIterator[bytes]:
    """A body httpx has not read yet (bytes content would be read and decoded at once)."""
    for chunk in chunks:
        yield chunk


def redirect(location: str, status: int = 302) -> httpx.Response:
    return httpx.Response(status, headers={"Location": location})


def mock_client(handler: Handler, dns: FakeDNS | None = None,
                settings: Settings = SETTINGS) -> httpx.AsyncClient:
    return safe_client(settings, resolver=dns or public_dns("social.example"),
                       transport=httpx.MockTransport(handler))


class Recorder:
    """A MockTransport handler that records requests and answers from a table by URL."""

    def __init__(self, routes: dict[str, httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.routes.get(str(request.url), httpx.Response(404))


# ------------------------------------------------------------------ the address policy

FORBIDDEN = [
    # IPv4
    "0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.254",
    "127.0.0.1", "127.255.255.254", "169.254.169.254", "172.16.0.1", "172.31.255.255",
    "192.0.0.8", "192.0.2.1", "192.88.99.1", "192.168.1.1", "198.18.0.1", "198.51.100.1",
    "203.0.113.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    # IPv6
    "::", "::1", "fe80::1", "febf::1", "fec0::1", "fc00::1", "fd12:3456:789a::1", "ff02::1",
    "ff0e::1", "2001:db8::1", "100::1", "64:ff9b:1::a00:1", "3fff::1", "5f00::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    # IPv4-mapped, -compatible, -translated, 6to4 and NAT64 wrappers around forbidden IPv4
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:100.64.0.1",
    "::ffff:0.0.0.0", "::127.0.0.1", "::10.1.2.3", "::ffff:0:127.0.0.1",
    "2002:7f00:1::1", "2002:a00:1::", "2002:a9fe:a9fe::1",
    "64:ff9b::127.0.0.1", "64:ff9b::a00:1", "64:ff9b::c0a8:101",
]
ALLOWED = [
    "1.1.1.1", "8.8.8.8", PUBLIC_IP, "100.63.255.255", "100.128.0.1", "172.15.255.255",
    "172.32.0.1", "192.169.0.1", "223.255.255.255",
    "2606:4700:4700::1111", "2a01:4f8::1",
    "::ffff:1.1.1.1", "64:ff9b::1.1.1.1", "2002:101:101::1", "::8.8.8.8",
]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_non_global_addresses_are_forbidden(address: str) -> None:
    assert forbidden_reason(address) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_global_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(address) is None


def test_a_wrapped_ipv4_address_is_named_in_the_reason() -> None:
    assert forbidden_reason("::ffff:127.0.0.1") == "loopback (IPv4 127.0.0.1 inside ::ffff:7f00:1)"
    assert forbidden_reason("64:ff9b::a9fe:a9fe") == (
        "link-local (IPv4 169.254.169.254 inside 64:ff9b::a9fe:a9fe)")


@pytest.mark.parametrize("address", FORBIDDEN)
async def test_a_host_resolving_to_a_forbidden_address_is_refused_before_any_request(address: str) -> None:
    handler = Recorder({})
    async with mock_client(handler, FakeDNS({"social.example": [address]})) as client:
        with pytest.raises(ForbiddenAddress) as caught:
            await fetch_json(client, "https://social.example/notes/1")
    assert caught.value.address == str(__import__("ipaddress").ip_address(address))
    assert handler.requests == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://127.0.0.1:8080/admin", "https://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/", "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/", "http://[fd00::1]:3000/", "http://0.0.0.0:5432/", "http://[64:ff9b::7f00:1]/",
])
async def test_ip_literal_urls_are_checked_without_dns(url: str) -> None:
    dns = FakeDNS()
    handler = Recorder({})
    async with mock_client(handler, dns) as client:
        with pytest.raises(ForbiddenAddress):
            await fetch_json(client, url)
    assert dns.calls == [] and handler.requests == []


async def test_one_forbidden_address_among_public_ones_refuses_the_host() -> None:
    dns = FakeDNS({"social.example": [PUBLIC_IP, "2606:4700:4700::1111", "10.0.0.7"]})
    async with mock_client(Recorder({}), dns) as client:
        with pytest.raises(ForbiddenAddress, match=r"10\.0\.0\.7"):
            await fetch_json(client, "https://social.example/notes/1")


async def test_a_scoped_link_local_answer_is_refused() -> None:
    dns = FakeDNS({"social.example": ["fe80::1%eth0"]})
    async with mock_client(Recorder({}), dns) as client:
        with pytest.raises(ForbiddenAddress, match="link-local"):
            await fetch_json(client, "https://social.example/notes/1")


async def test_allow_private_addresses_lets_loopback_and_private_through() -> None:
    handler = Recorder({
        "http://lab.test:8080/notes/1": as2(NOTE),
        "http://127.0.0.1:8081/notes/2": as2(NOTE),
    })
    dns = FakeDNS({"lab.test": ["127.0.0.1", "::1", "10.0.0.2"]})
    async with mock_client(handler, dns, settings=LAB_SETTINGS) as client:
        assert (await fetch_json(client, "http://lab.test:8080/notes/1"))[1] == NOTE
        assert (await fetch_json(client, "http://127.0.0.1:8081/notes/2"))[1] == NOTE


@pytest.mark.parametrize(("answer", "message"), [
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "cannot resolve"),
    ([], "has no address"),
    (["not-an-address"], "cannot resolve"),
])
async def test_unresolvable_hosts(answer: Any, message: str) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    client = safe_client(SETTINGS, resolver=resolver, transport=httpx.MockTransport(Recorder({})))
    async with client:
        with pytest.raises(UnresolvableHost, match=message):
            await fetch_json(client, "https://social.example/notes/1")


async def test_the_resolver_is_asked_for_the_host_and_the_port_the_url_names() -> None:
    dns = public_dns("social.example")
    handler = Recorder({"https://social.example/a": as2(NOTE), "http://social.example/b": as2(NOTE),
                        "https://social.example:8443/c": as2(NOTE)})
    async with mock_client(handler, dns) as client:
        for url in ("https://social.example/a", "http://social.example/b", "https://social.example:8443/c"):
            await fetch_json(client, url)
    assert dns.calls == [("social.example", 443), ("social.example", 80), ("social.example", 8443)]


async def test_the_system_resolver_reads_numeric_hosts_without_dns() -> None:
    assert await system_resolver("127.0.0.1", 80) == ["127.0.0.1"]


# ------------------------------------------------------------------ URLs


@pytest.mark.parametrize("url", [
    "ftp://social.example/file", "file:///etc/passwd", "gopher://social.example:70/", "social.example/x",
    "/relative/path", "https://user:secret@social.example/", "https:///no-host", "http://social.example:0/",
])
async def test_urls_that_are_never_fetched(url: str) -> None:
    handler = Recorder({})
    async with mock_client(handler) as client:
        with pytest.raises(ForbiddenURL):
            await fetch_json(client, url)
    assert handler.requests == []


async def test_the_transport_refuses_what_the_client_sends_directly() -> None:
    """Code that uses the client without the fetch helpers is still checked."""
    async with mock_client(Recorder({}), FakeDNS({"inbox.example": ["192.168.0.10"]})) as client:
        with pytest.raises(ForbiddenAddress):
            await client.post("https://inbox.example/inbox", content=b"{}")
        with pytest.raises(ForbiddenURL):
            await client.send(httpx.Request("GET", "ftp://inbox.example/"))


def test_lookup_scheme_follows_easel_scheme() -> None:
    assert lookup_scheme(SETTINGS) == "https"
    assert lookup_scheme(SETTINGS.with_changes(scheme="http")) == "http"


# ------------------------------------------------------------------ where the connection goes


class RecordingStream(httpcore.AsyncMockStream):
    def __init__(self, backend: RecordingBackend) -> None:
        super().__init__(list(backend.replies))
        self.backend = backend

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.backend.sent += buffer

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        self.backend.tls_server_names.append(server_hostname)
        return self


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """A socket layer that records what it was asked to connect to, and answers canned bytes."""

    def __init__(self, replies: Sequence[bytes], refuse: Iterable[str] = ()) -> None:
        self.replies = list(replies)
        self.refuse = set(refuse)
        self.connects: list[tuple[str, int]] = []
        self.tls_server_names: list[str | None] = []
        self.sent = b""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host in self.refuse:
            raise httpcore.ConnectError(f"connection to {host} refused")
        return RecordingStream(self)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise AssertionError("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("no sleeping")


def http_reply(document: Any, content_type: str = "application/activity+json") -> list[bytes]:
    body = json.dumps(document).encode()
    return [b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type.encode()
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n", body]


async def test_the_connection_goes_to_the_checked_address_with_host_and_sni_by_name() -> None:
    backend = RecordingBackend(http_reply(NOTE))
    dns = FakeDNS({"social.example": [PUBLIC_IP]})
    async with safe_client(SETTINGS, resolver=dns, network_backend=backend) as client:
        final_url, document = await fetch_json(client, "https://social.example/notes/1")
    assert (final_url, document) == ("https://social.example/notes/1", NOTE)
    assert backend.connects == [(PUBLIC_IP, 443)]
    assert backend.tls_server_names == ["social.example"]
    assert b"\r\nHost: social.example\r\n" in backend.sent
    assert backend.sent.startswith(b"GET /notes/1 HTTP/1.1\r\n")


async def test_dns_rebinding_cannot_swap_in_a_private_address() -> None:
    """The resolver answers public first and private afterwards: one lookup per request,
    the connection goes to the public address, and the next request is refused."""
    backend = RecordingBackend(http_reply(NOTE))
    dns = FakeDNS(sequences={"rebind.example": [[PUBLIC_IP], ["127.0.0.1"], ["127.0.0.1"]]})
    async with safe_client(SETTINGS, resolver=dns, network_backend=backend) as client:
        await fetch_json(client, "https://rebind.example:8443/notes/1")
        assert dns.calls == [("rebind.example", 8443)]
        assert backend.connects == [(PUBLIC_IP, 8443)]
        with pytest.raises(ForbiddenAddress):
            await fetch_json(client, "https://rebind.example:8443/notes/1")
    assert backend.connects == [(PUBLIC_IP, 8443)]
    assert len(dns.calls) == 2


async def test_concurrent_requests_each_connect_to_their_own_checked_address() -> None:
    backend = RecordingBackend(http_reply(NOTE))
    dns = FakeDNS({"a.example": [PUBLIC_IP], "b.example": [OTHER_PUBLIC_IP]})
    async with safe_client(SETTINGS, resolver=dns, network_backend=backend) as client:
        await asyncio.gather(*(fetch_json(client, f"https://{host}/notes/1")
                               for host in ("a.example", "b.example", "a.example", "b.example")))
    assert sorted(set(backend.connects)) == [(PUBLIC_IP, 443), (OTHER_PUBLIC_IP, 443)]
    assert sorted(backend.tls_server_names) == ["a.example", "a.example", "b.example", "b.example"]


async def test_checked_addresses_are_tried_in_order() -> None:
    backend = RecordingBackend(http_reply(NOTE), refuse={"2606:4700:4700::1111"})
    dns = FakeDNS({"social.example": ["2606:4700:4700::1111", PUBLIC_IP]})
    async with safe_client(SETTINGS, resolver=dns, network_backend=backend) as client:
        await fetch_json(client, "http://social.example/notes/1")
    assert backend.connects == [("2606:4700:4700::1111", 80), (PUBLIC_IP, 80)]


async def test_when_no_checked_address_connects_the_fetch_fails() -> None:
    backend = RecordingBackend(http_reply(NOTE), refuse={PUBLIC_IP})
    dns = public_dns("social.example")
    async with safe_client(SETTINGS, resolver=dns, network_backend=backend) as client:
        with pytest.raises(ConnectionFailed, match="refused"):
            await fetch_json(client, "https://social.example/notes/1")


async def test_the_network_backend_refuses_connections_nobody_checked() -> None:
    backend = PinnedNetworkBackend(RecordingBackend([]))
    with pytest.raises(ForbiddenAddress, match="no checked address"):
        await backend.connect_tcp("social.example", 443)
    with pytest.raises(ForbiddenAddress, match="unix socket"):
        await backend.connect_unix_socket("/run/postgresql/.s.PGSQL.5432")


# ------------------------------------------------------------------ redirects


async def test_redirects_are_followed_and_each_hop_is_resolved_and_checked() -> None:
    handler = Recorder({
        "https://social.example/@alice/1": redirect("https://cdn.example/objects/1", 301),
        "https://cdn.example/objects/1": redirect("/objects/1?v=2", 307),
        "https://cdn.example/objects/1?v=2": as2(NOTE),
    })
    dns = public_dns("social.example", "cdn.example")
    async with mock_client(handler, dns) as client:
        final_url, document = await fetch_json(client, "https://social.example/@alice/1")
    assert final_url == "https://cdn.example/objects/1?v=2"
    assert document == NOTE
    assert dns.calls == [("social.example", 443), ("cdn.example", 443), ("cdn.example", 443)]


async def test_a_redirect_to_a_private_host_is_refused() -> None:
    handler = Recorder({"https://social.example/notes/1": redirect("http://internal.example:6379/")})
    dns = FakeDNS({"social.example": [PUBLIC_IP], "internal.example": ["10.0.0.5"]})
    async with mock_client(handler, dns) as client:
        with pytest.raises(ForbiddenAddress, match=r"internal\.example"):
            await fetch_json(client, "https://social.example/notes/1")
    assert [str(r.url) for r in handler.requests] == ["https://social.example/notes/1"]


async def test_a_redirect_to_the_metadata_service_is_refused() -> None:
    handler = Recorder({"https://social.example/notes/1": redirect("http://169.254.169.254/latest/")})
    async with mock_client(handler) as client:
        with pytest.raises(ForbiddenAddress):
            await fetch_json(client, "https://social.example/notes/1")
    assert len(handler.requests) == 1


@pytest.mark.parametrize("location", [
    "file:///etc/passwd", "ftp://social.example/x", "gopher://social.example:11211/_stats",
    "javascript:alert(1)", "https://user:pw@social.example/x", "data:application/json,{}",
])
async def test_a_redirect_to_another_scheme_or_form_is_refused(location: str) -> None:
    handler = Recorder({"https://social.example/notes/1": redirect(location)})
    async with mock_client(handler) as client:
        with pytest.raises(ForbiddenURL):
            await fetch_json(client, "https://social.example/notes/1")
    assert len(handler.requests) == 1


async def test_a_redirect_loop_is_stopped() -> None:
    handler = Recorder({
        "https://social.example/a": redirect("https://social.example/b"),
        "https://social.example/b": redirect("https://social.example/a"),
    })
    async with mock_client(handler) as client:
        with pytest.raises(TooManyRedirects, match="loop"):
            await fetch_json(client, "https://social.example/a")
    assert len(handler.requests) == 2


async def test_at_most_five_redirects_are_followed() -> None:
    def chain(length: int) -> dict[str, httpx.Response]:
        routes = {f"https://social.example/{i}": redirect(f"https://social.example/{i + 1}")
                  for i in range(length)}
        routes[f"https://social.example/{length}"] = as2(NOTE)
        return routes

    five = Recorder(chain(5))
    async with mock_client(five) as client:
        assert (await fetch_json(client, "https://social.example/0"))[0] == "https://social.example/5"
    six = Recorder(chain(6))
    async with mock_client(six) as client:
        with pytest.raises(TooManyRedirects):
            await fetch_json(client, "https://social.example/0")
    assert len(six.requests) == 6


async def test_a_redirect_without_location_is_a_status_error() -> None:
    handler = Recorder({"https://social.example/notes/1": httpx.Response(302)})
    async with mock_client(handler) as client:
        with pytest.raises(RemoteStatusError) as caught:
            await fetch_json(client, "https://social.example/notes/1")
    assert caught.value.status_code == 302


class SigningAuth(httpx.Auth):
    """Stands in for CavageSigner: marks each request it signs."""

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Signature"] = f'keyId="https://easel.test/actor#main-key",host="{request.url.host}"'
        yield request


async def test_auth_signs_every_hop_and_accept_is_sent() -> None:
    handler = Recorder({
        "https://social.example/notes/1": redirect("https://other.example/notes/1"),
        "https://other.example/notes/1": as2(NOTE),
    })
    async with mock_client(handler, public_dns("social.example", "other.example")) as client:
        await fetch_json(client, "https://social.example/notes/1", auth=SigningAuth())
    assert [r.headers["Signature"].endswith(f'host="{r.url.host}"') for r in handler.requests] == [True, True]
    assert {r.headers["Accept"] for r in handler.requests} == {", ".join(ACTIVITY_ACCEPT)}
    assert handler.requests[0].headers["User-Agent"] == "Easel/0.1.0 (+https://easel.test/)"


# ------------------------------------------------------------------ statuses, types, bodies


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 429, 500, 503])
async def test_error_statuses(status: int) -> None:
    handler = Recorder({"https://social.example/notes/1": as2({"error": "no"}, status=status)})
    async with mock_client(handler) as client:
        with pytest.raises(RemoteStatusError) as caught:
            await fetch_json(client, "https://social.example/notes/1")
    assert caught.value.status_code == status
    assert caught.value.url == "https://social.example/notes/1"


@pytest.mark.parametrize("content_type", [
    "application/activity+json",
    "application/activity+json; charset=utf-8",
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
    'application/ld+json;profile="https://www.w3.org/ns/activitystreams"; charset=utf-8',
    'Application/LD+JSON; Profile="https://www.w3.org/ns/activitystreams https://example.org/p"',
    "application/json",
])
async def test_activity_content_types_accepted(content_type: str) -> None:
    handler = Recorder({"https://social.example/notes/1": as2(NOTE, content_type=content_type)})
    async with mock_client(handler) as client:
        assert (await fetch_json(client, "https://social.example/notes/1"))[1] == NOTE


@pytest.mark.parametrize("content_type", [
    "", "text/html; charset=utf-8", "application/ld+json", 'application/ld+json; profile="https://example.org/x"',
    "application/xml", "text/plain", "application/activity+jsonx", "image/png", "json", "/",
])
async def test_other_content_types_are_refused(content_type: str) -> None:
    response = httpx.Response(200, content=json.dumps(NOTE).encode(),
                              headers={"Content-Type": content_type} if content_type else {})
    handler = Recorder({"https://social.example/notes/1": response})
    async with mock_client(handler) as client:
        with pytest.raises(WrongContentType) as caught:
            await fetch_json(client, "https://social.example/notes/1")
    assert caught.value.content_type == content_type


@pytest.mark.parametrize(("content_type", "accept", "allowed"), [
    ("image/png", IMAGE_ACCEPT, True),
    ("image/webp; q=1", IMAGE_ACCEPT, True),
    ("text/html", IMAGE_ACCEPT, False),
    ("imagex/png", IMAGE_ACCEPT, False),
    ("image/", IMAGE_ACCEPT, False),
    ("application/jrd+json; charset=utf-8", JRD_ACCEPT, True),
    ("application/json", JRD_ACCEPT, True),
    ("application/activity+json", JRD_ACCEPT, False),
    ('text/x; a="b;c"; d=e', ('text/x; d=e',), True),
])
def test_content_type_matching(content_type: str, accept: Sequence[str], allowed: bool) -> None:
    assert content_type_allowed(content_type, accept) is allowed


async def test_fetch_bytes_returns_an_image_and_refuses_other_types() -> None:
    png = httpx.Response(200, content=b"\x89PNG...", headers={"Content-Type": "image/png"})
    html = httpx.Response(200, content=b"<html>", headers={"Content-Type": "text/html"})
    handler = Recorder({"https://media.example/a.png": png, "https://media.example/a.html": html})
    async with mock_client(handler, public_dns("media.example")) as client:
        assert await fetch_bytes(client, "https://media.example/a.png") == (b"\x89PNG...", "image/png")
        with pytest.raises(WrongContentType):
            await fetch_bytes(client, "https://media.example/a.html")
    assert handler.requests[0].headers["Accept"] == "image/*"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2, 3]", b'"a string"', b"\xff\xfe\x00", b"[" * 100_000])
async def test_bodies_that_are_not_a_json_object(body: bytes) -> None:
    response = httpx.Response(200, content=body, headers={"Content-Type": "application/activity+json"})
    async with mock_client(Recorder({"https://social.example/notes/1": response})) as client:
        with pytest.raises(MalformedBody):
            await fetch_json(client, "https://social.example/notes/1", max_bytes=200_000)


async def test_a_body_declared_too_large_is_not_read() -> None:
    produced = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal produced
        produced += 1
        yield b"x"

    response = httpx.Response(200, content=body(), headers={
        "Content-Type": "image/png", "Content-Length": str(16 * 1024 * 1024 + 1)})
    async with mock_client(Recorder({"https://social.example/big.png": response})) as client:
        with pytest.raises(TooLarge, match="declares"):
            await fetch_bytes(client, "https://social.example/big.png")
    assert produced == 0


async def test_an_endless_body_is_streamed_and_stopped_at_the_cap() -> None:
    produced = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal produced
        while True:
            produced += 1
            yield b"x" * 1024

    response = httpx.Response(200, content=endless(), headers={"Content-Type": "image/png"})
    async with mock_client(Recorder({"https://social.example/endless.png": response})) as client:
        with pytest.raises(TooLarge, match="more than 10240 bytes"):
            await fetch_bytes(client, "https://social.example/endless.png", max_bytes=10 * 1024)
    assert produced == 11


async def test_the_cap_counts_decompressed_bytes() -> None:
    bomb = gzip.compress(b"{" + b" " * (4 * 1024 * 1024) + b"}")
    assert len(bomb) < 10_000
    response = httpx.Response(200, content=streamed(bomb[:5000], bomb[5000:]), headers={
        "Content-Type": "application/activity+json", "Content-Encoding": "gzip"})
    async with mock_client(Recorder({"https://social.example/notes/1": response})) as client:
        with pytest.raises(TooLarge):
            await fetch_json(client, "https://social.example/notes/1")


async def test_a_body_exactly_at_the_cap_is_read() -> None:
    body = json.dumps({"pad": "x" * 100}).encode()
    response = httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    async with mock_client(Recorder({"https://social.example/n": response})) as client:
        assert (await fetch_json(client, "https://social.example/n", max_bytes=len(body)))[1]["pad"]


async def test_a_broken_gzip_body_is_malformed() -> None:
    response = httpx.Response(200, content=streamed(b"not gzip at all"), headers={
        "Content-Type": "application/activity+json", "Content-Encoding": "gzip"})
    async with mock_client(Recorder({"https://social.example/notes/1": response})) as client:
        with pytest.raises(MalformedBody):
            await fetch_json(client, "https://social.example/notes/1")


# ------------------------------------------------------------------ time


@pytest.mark.parametrize("error", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.PoolTimeout])
async def test_transport_timeouts_are_fetch_timeouts(error: type[httpx.TimeoutException]) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise error("timed out", request=request)

    async with mock_client(handler) as client:
        with pytest.raises(FetchTimeout):
            await fetch_json(client, "https://social.example/notes/1")


async def test_a_timeout_while_reading_the_body_is_a_fetch_timeout() -> None:
    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"id": '
        raise httpx.ReadTimeout("read timed out")

    response = httpx.Response(200, content=stalls(), headers={"Content-Type": "application/activity+json"})
    async with mock_client(Recorder({"https://social.example/notes/1": response})) as client:
        with pytest.raises(FetchTimeout):
            await fetch_json(client, "https://social.example/notes/1")


async def test_the_total_time_cap_stops_a_server_that_never_answers() -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await anyio.Event().wait()
        raise AssertionError("unreachable")

    async with mock_client(never) as client:
        with pytest.raises(FetchTimeout, match=r"more than 0\.05 s"):
            await fetch(client, "https://social.example/notes/1", accept=ACTIVITY_ACCEPT, total_timeout=0.05)


async def test_connection_errors_are_connection_failed() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with mock_client(handler) as client:
        with pytest.raises(ConnectionFailed) as caught:
            await fetch_json(client, "https://social.example/notes/1")
    assert isinstance(caught.value, FetchError)


def test_safe_client_options_for_the_real_transport_only() -> None:
    with pytest.raises(ValueError, match="default transport"):
        safe_client(SETTINGS, transport=httpx.MockTransport(Recorder({})), verify=False)


async def test_safe_transport_defaults_to_the_pinned_network_transport() -> None:
    transport = SafeTransport()
    with pytest.raises(ForbiddenAddress):
        await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/"))
    await transport.aclose()


# ------------------------------------------------------------------ a real loopback server


class LoopbackServer:
    """A one-response-per-connection HTTP/1.1 server on 127.0.0.1 (optionally TLS)."""

    def __init__(self, body: bytes, content_type: str, tls: ssl.SSLContext | None = None) -> None:
        self.body = body
        self.content_type = content_type
        self.tls = tls
        self.requests: list[str] = []
        self.server_names: list[str | None] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.decode("latin-1"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + self.content_type.encode()
                         + b"\r\nContent-Length: " + str(len(self.body)).encode()
                         + b"\r\nConnection: close\r\n\r\n" + self.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass

    async def __aenter__(self) -> LoopbackServer:
        if self.tls is not None:
            self.tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_a_real_loopback_server_is_reached_only_when_private_addresses_are_allowed() -> None:
    async with LoopbackServer(json.dumps(NOTE).encode(), "application/activity+json") as loopback:
        url = f"http://lab.test:{loopback.port}/notes/1"
        dns = FakeDNS({"lab.test": ["127.0.0.1"]})
        async with safe_client(LAB_SETTINGS, resolver=dns) as client:
            assert await fetch_json(client, url) == (url, NOTE)
        assert len(loopback.requests) == 1
        assert loopback.requests[0].startswith("GET /notes/1 HTTP/1.1\r\n")
        assert f"\r\nHost: lab.test:{loopback.port}\r\n" in loopback.requests[0]

        async with safe_client(SETTINGS, resolver=dns) as client:
            with pytest.raises(ForbiddenAddress):
                await fetch_json(client, url)
            with pytest.raises(ForbiddenAddress):
                await fetch_json(client, f"http://127.0.0.1:{loopback.port}/notes/1")
        assert len(loopback.requests) == 1


def _self_signed(host: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


async def test_tls_verifies_the_host_name_while_connecting_to_the_checked_address(tmp_path: Any) -> None:
    cert_pem, key_pem = _self_signed("art.example")
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_tls = ssl.create_default_context(cadata=cert_pem.decode())
    dns = FakeDNS({"art.example": ["127.0.0.1"], "wrong.example": ["127.0.0.1"]})

    body = json.dumps(NOTE).encode()
    async with LoopbackServer(body, "application/activity+json", tls=server_tls) as loopback:
        async with safe_client(LAB_SETTINGS, resolver=dns, verify=client_tls) as client:
            url = f"https://art.example:{loopback.port}/notes/1"
            assert await fetch_json(client, url) == (url, NOTE)
            with pytest.raises(ConnectionFailed, match="certificate"):
                await fetch_json(client, f"https://wrong.example:{loopback.port}/notes/1")
    assert loopback.server_names[0] == "art.example"
    assert loopback.server_names[1] == "wrong.example"
    assert len(loopback.requests) == 1
