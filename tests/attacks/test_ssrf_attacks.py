"""Attack suite: server-side request forgery through every URL a remote server hands us.

The attacker names a URL — a signature's keyId (the actor), an attachment (the remote
media cache), a WebFinger handle or the actor it links to, a redirect target, a search
query — that points inside the instance's network: loopback, the cloud metadata service,
a private address, spelled in every way an address can be spelled (decimal, octal and hex
IPv4, ``0.0.0.0``, IPv4-mapped, -compatible, 6to4 and NAT64 IPv6) or hidden behind a DNS
name, a redirect, or a resolver that answers a public address first and a private one
next (DNS rebinding). Each test asserts the refusal (a 4xx, an empty search, a job done
with nothing kept) and that the fake network recorded no request to that place at all.

The address policy itself (every special-purpose range) and pinning are proven in
tests/federation/test_http.py; this module runs the attacks through the endpoints and
jobs that take the URLs, plus the real system resolver's reading of odd spellings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from federation.http import (
    FetchError,
    ForbiddenAddress,
    ForbiddenURL,
    SafeTransport,
    UnresolvableHost,
    fetch_json,
    safe_client,
)
from federation.signatures import CavageSigner
from server.db import Database
from server.models import Account, DomainBlock, Job, JobState, MediaAttachment, Status, User
from server.settings import Settings
from tests.conftest import make_token
from tests.federation.inbox.conftest import (
    PUBLIC_ADDRESS,
    FakeActor,
    deliver,
    http,
    process,
    stored,
)
from tests.federation.test_http import NOTE, FakeDNS, RecordingBackend, http_reply
from tests.federation.test_media_cache import (
    MediaFediverse,
    attachments,
    cache_jobs,
    cached_files,
    note_with,
    receive_note,
)
from tests.protect import images

# Spellings of loopback, private and metadata addresses that are not dotted quads: the
# system resolver (getaddrinfo / inet_aton) reads each as the address it stands for.
ODD_SPELLINGS = [
    "http://2130706433/",            # 127.0.0.1 in decimal
    "http://0177.0.0.1/",            # octal (httpx refuses the URL outright)
    "http://0x7f.0.0.1/",            # hex
    "http://0x7f000001/",            # one hex number
    "http://127.1/",                 # short form
    "http://0/",                     # 0.0.0.0
    "http://0.0.0.0/",
    "http://012.0.0.1/",             # 10.0.0.1 in octal (likewise)
    "http://2852039166/",            # 169.254.169.254 in decimal
    "http://0xa9fea9fe/",            # and in hex
    "http://localhost/",
    "http://LOCALHOST/",
    "http://[::]/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",    # IPv4-mapped
    "http://[::ffff:a00:1]/",        # IPv4-mapped, hex
    "http://[::10.0.0.1]/",          # IPv4-compatible
    "http://[::ffff:0:a00:1]/",      # IPv4-translated
    "http://[2002:a00:1::1]/",       # 6to4 of 10.0.0.1
    "http://[2002:a9fe:a9fe::]/",    # 6to4 of 169.254.169.254
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b::127.0.0.1]/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
]

# Literal addresses an attacker can put in any URL field (no DNS involved).
PRIVATE_LITERALS = [
    "http://127.0.0.1", "http://169.254.169.254", "http://10.0.0.1:6379", "http://0.0.0.0:5432",
    "http://[::1]", "http://[::ffff:10.0.0.1]", "http://[::10.0.0.1]",
    "http://[2002:a00:1::1]", "http://[64:ff9b::a9fe:a9fe]",
]
METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


@dataclass
class AttackersFediverse(MediaFediverse):
    """The inbox tests' fediverse with files (the media cache tests'), plus redirects
    (URL → Location) and WebFinger ((host, acct:…) → actor href)."""

    redirects: dict[str, str] = field(default_factory=dict)
    webfinger: dict[tuple[str, str], str] = field(default_factory=dict)

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url in self.redirects:
            self.requests.append(request)
            return httpx.Response(302, headers={"Location": self.redirects[url]})
        if request.url.path == "/.well-known/webfinger":
            self.requests.append(request)
            resource = request.url.params.get("resource", "")
            href = self.webfinger.get((request.url.host, resource))
            if href is None:
                return httpx.Response(404)
            return httpx.Response(200, json={"subject": resource, "links": [
                {"rel": "self", "type": "application/activity+json", "href": href}]},
                headers={"Content-Type": "application/jrd+json"})
        return super().handler(request)

    def reached(self, host_or_url: str) -> list[str]:
        return [str(r.url) for r in self.requests if host_or_url in str(r.url)]


@pytest.fixture
def fediverse() -> AttackersFediverse:
    return AttackersFediverse()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_changes(remote_media_cache_mb=1)


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where))
                   or 0)


async def search(app: Starlette, db: Database, user: User, query: str) -> dict[str, Any]:
    async with http(app, token=await make_token(db, user)) as client:
        response = await client.get("/api/v2/search", params={"q": query, "resolve": "true"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# ------------------------------------------------------------ the real resolver's reading

class Recorded:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=NOTE, headers={"Content-Type": "application/activity+json"})


@pytest.mark.parametrize("url", ODD_SPELLINGS)
async def test_odd_spellings_of_private_addresses_are_refused_by_the_real_resolver(
        settings: Settings, url: str) -> None:
    recorded = Recorded()
    strict = settings.with_changes(allow_private_addresses=False)
    async with safe_client(strict, transport=httpx.MockTransport(recorded)) as client:
        with pytest.raises(FetchError) as refusal:
            await fetch_json(client, url)
    assert recorded.requests == []
    # Refused for the address it resolves to (no DNS query leaves the machine for these),
    # or as a URL httpx will not parse (leading-zero octal quads).
    # (A machine without "localhost" in /etc/hosts cannot resolve it at all: refused too.)
    refused = ForbiddenAddress | ForbiddenURL | (UnresolvableHost if "localhost" in url.lower()
                                                 else ForbiddenAddress)
    assert isinstance(refusal.value, refused), repr(refusal.value)


async def test_the_transport_refuses_odd_spellings_sent_around_fetch(settings: Settings) -> None:
    recorded = Recorded()
    transport = SafeTransport(httpx.MockTransport(recorded))
    async with httpx.AsyncClient(transport=transport) as client:
        for url in ("http://2130706433:6379/", "http://[::ffff:7f00:1]:5432/"):
            with pytest.raises(ForbiddenAddress):
                await client.post(url, content=b"FLUSHALL\r\n")
    assert recorded.requests == []


# --------------------------------------------------------- DNS rebinding, end to end

async def test_dns_rebinding_across_a_redirect_cannot_reach_the_private_address(
        settings: Settings) -> None:
    """rebind.example answers public, then (for the redirect back to itself) loopback:
    the first connection goes to the public address checked, the second hop is refused
    before any connection."""
    reply = (b"HTTP/1.1 302 Found\r\nLocation: https://rebind.example/notes/2\r\n"
             b"Content-Length: 0\r\n\r\n")
    backend = RecordingBackend([reply, *http_reply(NOTE)])
    dns = FakeDNS(sequences={"rebind.example": [[PUBLIC_ADDRESS], ["127.0.0.1"]]})
    strict = settings.with_changes(allow_private_addresses=False)
    async with safe_client(strict, resolver=dns, network_backend=backend) as client:
        with pytest.raises(ForbiddenAddress):
            await fetch_json(client, "https://rebind.example/notes/1")
    assert backend.connects == [(PUBLIC_ADDRESS, 443)]
    assert dns.calls == [("rebind.example", 443), ("rebind.example", 443)]


async def test_a_host_answering_public_and_private_addresses_at_once_is_refused(
        settings: Settings) -> None:
    backend = RecordingBackend(http_reply(NOTE))
    dns = FakeDNS({"mixed.example": [PUBLIC_ADDRESS, "::ffff:169.254.169.254"]})
    strict = settings.with_changes(allow_private_addresses=False)
    async with safe_client(strict, resolver=dns, network_backend=backend) as client:
        with pytest.raises(ForbiddenAddress):
            await fetch_json(client, "https://mixed.example/notes/1")
    assert backend.connects == []


# ------------------------------------------------------------- actor URLs (the keyId)

@pytest.mark.parametrize("base", [*PRIVATE_LITERALS, "https://private.example"])
async def test_a_key_id_inside_the_network_is_401_and_never_fetched(
        inbox_app: Starlette, app_db: Database, fediverse: AttackersFediverse,
        base: str) -> None:
    eve = fediverse.actor(f"{base}/users/eve", "eve")
    response = await deliver(inbox_app, eve, eve.activity("Follow", "https://easel.test/users/alice"))
    assert response.status_code == 401, response.text
    assert await stored(app_db) == (0, 0)
    assert fediverse.requests == []


async def test_a_public_actor_redirecting_to_the_metadata_service_is_401(
        inbox_app: Starlette, app_db: Database, fediverse: AttackersFediverse,
        remote_carol: FakeActor) -> None:
    fediverse.redirects[remote_carol.uri] = METADATA
    response = await deliver(inbox_app, remote_carol, remote_carol.activity(
        "Follow", "https://easel.test/users/alice"))
    assert response.status_code in (401, 503), response.text
    assert await stored(app_db) == (0, 0)
    assert fediverse.reached("169.254.169.254") == []


async def test_a_key_id_on_a_public_host_whose_owner_is_private_is_never_followed(
        inbox_app: Starlette, app_db: Database, fediverse: AttackersFediverse,
        remote_carol: FakeActor) -> None:
    key_id = "https://remote.example/keys/1"
    fediverse.objects[key_id] = {"id": key_id, "owner": "http://10.0.0.1/users/eve",
                                 "publicKeyPem": remote_carol.public_pem}
    signer = CavageSigner(key_id, remote_carol.private_pem)
    response = await deliver(inbox_app, remote_carol, remote_carol.activity(
        "Follow", "https://easel.test/users/alice"), signer=signer)
    assert response.status_code == 401, response.text
    assert await stored(app_db) == (0, 0)
    assert fediverse.reached("10.0.0.1") == []


# --------------------------------------------------- search: URLs and WebFinger handles

@pytest.mark.parametrize("url", [f"{base}/users/eve" for base in PRIVATE_LITERALS]
                         + ["https://private.example/users/eve", METADATA])
async def test_searching_a_url_inside_the_network_fetches_nothing(
        inbox_app: Starlette, app_db: Database, fediverse: AttackersFediverse,
        alice: User, url: str) -> None:
    fediverse.objects[url] = {"id": url, "type": "Note", "content": "secret"}
    result = await search(inbox_app, app_db, alice, url)
    assert result["accounts"] == [] and result["statuses"] == []
    assert fediverse.requests == []
    assert await count(app_db, Status) == 0


@pytest.mark.parametrize("handle", ["eve@private.example", "eve@127.0.0.1", "eve@[::1]",
                                    "eve@169.254.169.254", "eve@0.0.0.0", "eve@10.0.0.1:6379"])
async def test_a_webfinger_handle_on_a_private_host_is_never_asked(
        inbox_app: Starlette, app_db: Database, fediverse: AttackersFediverse,
        alice: User, handle: str) -> None:
    result = await search(inbox_app, app_db, alice, "@" + handle)
    assert result["accounts"] == []
    assert fediverse.requests == []
    assert await count(app_db, Account, Account.username == "eve") == 0


async def test_a_webfinger_answer_linking_inside_the_network_is_not_followed(
        inbox_app: Starlette, app_db: Database, fediverse: AttackersFediverse,
        alice: User) -> None:
    fediverse.webfinger[("remote.example", "acct:eve@remote.example")] = METADATA
    result = await search(inbox_app, app_db, alice, "@eve@remote.example")
    assert result["accounts"] == []
    assert fediverse.reached("169.254.169.254") == []
    assert await count(app_db, Account, Account.username == "eve") == 0


async def test_control_a_public_handle_and_url_do_resolve(
        inbox_app: Starlette, app_db: Database, fediverse: AttackersFediverse,
        alice: User, remote_carol: FakeActor) -> None:
    # The paths above are the ones a search really takes: the same search for a public
    # handle and URL asks WebFinger and fetches the actor.
    fediverse.webfinger[("remote.example", "acct:carol@remote.example")] = remote_carol.uri
    [found] = (await search(inbox_app, app_db, alice, "@carol@remote.example"))["accounts"]
    assert found["acct"] == "carol@remote.example"
    assert fediverse.reached("/.well-known/webfinger") != []
    assert fediverse.fetched(remote_carol.uri) == 1


# ----------------------------------------------------------- inbox URLs (deliveries)

async def test_a_follower_whose_inbox_is_inside_the_network_is_never_posted_to(
        inbox_app: Starlette, app_db: Database, fediverse: AttackersFediverse,
        alice: User) -> None:
    eve = fediverse.actor("https://remote.example/users/eve", "eve")
    document = eve.document

    def inside() -> dict[str, Any]:
        return document() | {"inbox": "http://[::ffff:10.0.0.1]/inbox",
                             "endpoints": {"sharedInbox": "http://169.254.169.254/inbox"}}

    eve.document = inside  # type: ignore[method-assign]
    response = await deliver(inbox_app, eve, eve.activity("Follow", "https://easel.test/users/alice"))
    assert response.status_code == 202, response.text
    await process(inbox_app)  # the Follow, then the Accept's delivery
    async with app_db.session() as session:
        kinds = dict((await session.execute(select(Job.kind, Job.state))).all())
    assert kinds.get("deliver") in (JobState.DONE, JobState.FAILED), kinds  # given up
    assert [r for r in fediverse.requests if r.method == "POST"] == []
    assert fediverse.reached("10.0.0.1") == [] and fediverse.reached("169.254") == []


# --------------------------------------------------------------- media URLs (the cache)

@pytest.mark.parametrize("base", PRIVATE_LITERALS)
async def test_an_attachment_inside_the_network_is_never_fetched_nor_kept(
        inbox_app: Starlette, fediverse: AttackersFediverse, remote_carol: FakeActor,
        alice: User, base: str) -> None:
    url = f"{base}/a.png"
    fediverse.serve_file(url, images.png(), "image/png")
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, url))

    assert fediverse.fetched(url) == 0
    assert [job.state for job in await cache_jobs(inbox_app)] == [JobState.DONE]  # refused
    assert await cached_files(inbox_app) == []
    [media] = await attachments(inbox_app, alice)
    assert media["url"] == media["remote_url"] == url


async def test_an_attachment_redirecting_inside_the_network_is_not_followed(
        inbox_app: Starlette, fediverse: AttackersFediverse, remote_carol: FakeActor,
        alice: User) -> None:
    url = "https://cdn.remote.example/a.png"
    fediverse.redirects[url] = "http://[::ffff:169.254.169.254]/latest/meta-data/"
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, url))

    assert len(fediverse.reached(url)) == 1  # the one 302, not followed
    assert fediverse.reached("169.254.169.254") == []
    assert [job.state for job in await cache_jobs(inbox_app)] == [JobState.DONE]
    assert await cached_files(inbox_app) == []
    async with inbox_app.state.easel.db.session() as session:
        [row] = list(await session.scalars(select(MediaAttachment)))
    assert row.cache_key is None and row.cache_size == 0



async def test_media_of_a_rejected_domain_spelled_with_a_trailing_dot_are_not_fetched(
        inbox_app: Starlette, app_db: Database, fediverse: AttackersFediverse,
        remote_carol: FakeActor, alice: User) -> None:
    url = "https://cdn.evil.example./a.png"  # the same host as cdn.evil.example
    fediverse.serve_file(url, images.png(), "image/png")
    async with app_db.session() as session:
        session.add(DomainBlock(domain="evil.example", severity="noop", reject_media=True))
        await session.commit()
    await receive_note(inbox_app, remote_carol, note_with(remote_carol, url))

    assert fediverse.reached("evil.example") == []
    assert await cached_files(inbox_app) == []
