"""ActorFetcher against a fake fediverse (httpx.MockTransport behind the safe client).

Given remote servers that serve actor documents modelled on the corpus (Mastodon's and
GoToSocial's Person), when Easel fetches, caches and looks keys up, I expect the rows,
the signed requests and the refusals DESIGN.md's origin rules call for.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from federation.actors import (
    ActorFetcher,
    ActorGone,
    ActorNotFound,
    ActorRefused,
    ActorUnavailable,
)
from federation.http import safe_client
from federation.signatures import verify_request
from server.db import Database
from server.models import Account, DomainBlock
from server.services.accounts import instance_actor
from server.settings import Settings

CORPUS = Path(__file__).parent / "corpus"
AS2 = "application/activity+json; charset=utf-8"
CAROL = "https://mastodon.example/users/carol"
CAROL_KEY = CAROL + "#main-key"
ERIN = "https://gts.example/users/erin"
ERIN_KEY = ERIN + "/main-key"
PEM_A = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
PEM_B = "-----BEGIN PUBLIC KEY-----\nBBBB\n-----END PUBLIC KEY-----\n"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / name).read_text())
    return data


def mastodon_carol() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(load("mastodon_update_person.json")["object"])
    doc["@context"] = ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"]
    return doc


def gotosocial_erin(base: str = ERIN) -> dict[str, Any]:
    doc = load("gotosocial_person.json")
    if base != ERIN:
        doc = json.loads(json.dumps(doc).replace(ERIN, base))
    return doc


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Remote:
    """The fake fediverse: URL → response, every request recorded and its signature checked."""

    clock: FakeClock
    public_pem: str = ""
    routes: dict[str, Callable[[httpx.Request], httpx.Response] | httpx.Response] = field(
        default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)

    def serve(self, url: str, doc: dict[str, Any], content_type: str = AS2) -> None:
        self.routes[url] = httpx.Response(200, json=doc, headers={"Content-Type": content_type})

    def status(self, url: str, code: int) -> None:
        self.routes[url] = httpx.Response(code, text="nope")

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if "signature" in request.headers:
            async def lookup(key_id: str) -> str | None:
                return self.public_pem

            verified = await verify_request(
                method=request.method, target=request.url.raw_path.decode(),
                headers=request.headers, body=request.content, key_lookup=lookup,
                clock=self.clock)
            self.verified.append(verified.key_id)
        url = str(request.url)
        route = self.routes.get(url)
        if route is None:
            return httpx.Response(404)
        if callable(route):
            return route(request)
        return httpx.Response(route.status_code, content=route.content, headers=route.headers)

    def fetched(self, url: str) -> int:
        return sum(1 for r in self.requests if str(r.url) == url)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def remote(db: Database, settings: Settings, clock: FakeClock) -> Remote:
    async with db.session() as session:
        actor = await instance_actor(session, settings)
    return Remote(clock=clock, public_pem=actor.public_key_pem)


@pytest.fixture
async def fetcher(db: Database, settings: Settings, remote: Remote,
                  clock: FakeClock) -> AsyncIterator[ActorFetcher]:
    async def resolver(host: str, port: int) -> list[str]:
        return ["203.0.113.7"]

    client = safe_client(settings, resolver=resolver, transport=httpx.MockTransport(remote.handler))
    async with client:
        yield ActorFetcher(db, settings, client, clock=clock)


async def rows(db: Database) -> list[Account]:
    async with db.session() as session:
        return list(await session.scalars(select(Account).where(Account.domain != "")))


# ----------------------------------------------------------------------- fetch_actor

async def test_first_fetch_stores_the_actor_with_its_key_and_urls(
        fetcher: ActorFetcher, remote: Remote, db: Database, settings: Settings) -> None:
    remote.serve(CAROL, mastodon_carol())
    account = await fetcher.fetch_actor(CAROL)
    assert (account.username, account.username_key, account.domain) == (
        "carol", "carol", "mastodon.example")
    assert account.uri == CAROL
    assert account.url == "https://mastodon.example/@carol"
    assert account.inbox_url == CAROL + "/inbox"
    assert account.outbox_url == CAROL + "/outbox"
    assert account.shared_inbox_url == "https://mastodon.example/inbox"
    assert account.followers_url == CAROL + "/followers"
    assert account.following_url == CAROL + "/following"
    assert account.featured_url == CAROL + "/collections/featured"
    assert account.public_key_id == CAROL_KEY
    assert "BEGIN PUBLIC KEY" in account.public_key_pem
    assert account.locked and account.discoverable and not account.indexable and not account.bot
    assert account.display_name.startswith("Carol Ink")
    assert account.note == "<p>Illustrator. Herons, mostly.</p>"
    assert account.avatar_remote_url and account.avatar_remote_url.endswith("avatar.png")
    assert account.header_remote_url and account.header_remote_url.endswith("header.jpg")
    assert [f["name"] for f in account.fields] == ["Shop", "Pronouns"]
    assert account.updated_at == fetcher.clock()
    stored = await rows(db)
    assert [a.uri for a in stored] == [CAROL]
    assert stored[0].private_key_pem is None


async def test_the_get_is_signed_by_the_instance_actor_and_asks_for_as2(
        fetcher: ActorFetcher, remote: Remote, settings: Settings, db: Database) -> None:
    remote.serve(CAROL, mastodon_carol())
    await fetcher.fetch_actor(CAROL)
    (request,) = remote.requests
    assert request.method == "GET"
    assert "application/activity+json" in request.headers["accept"]
    async with db.session() as session:
        actor = await instance_actor(session, settings)
    assert remote.verified == [actor.public_key_id]  # verify_request passed in the mock
    assert "signature" in request.headers


async def test_a_cache_hit_within_max_age_makes_no_request(
        fetcher: ActorFetcher, remote: Remote, clock: FakeClock) -> None:
    remote.serve(CAROL, mastodon_carol())
    first = await fetcher.fetch_actor(CAROL)
    clock.now += timedelta(hours=23)
    second = await fetcher.fetch_actor(CAROL)
    assert second.id == first.id
    assert remote.fetched(CAROL) == 1


async def test_after_max_age_the_actor_is_refetched_and_updated(
        fetcher: ActorFetcher, remote: Remote, clock: FakeClock, db: Database) -> None:
    remote.serve(CAROL, mastodon_carol())
    first = await fetcher.fetch_actor(CAROL)
    changed = mastodon_carol()
    changed["name"] = "Carol Renamed"
    changed["summary"] = "<p>new</p><script>alert(1)</script>"
    remote.serve(CAROL, changed)
    clock.now += timedelta(days=1, seconds=1)
    second = await fetcher.fetch_actor(CAROL)
    assert remote.fetched(CAROL) == 2
    assert second.id == first.id
    assert second.display_name == "Carol Renamed"
    assert "script" not in second.note
    assert second.updated_at == clock.now
    assert len(await rows(db)) == 1


async def test_refresh_true_fetches_even_when_fresh(fetcher: ActorFetcher, remote: Remote) -> None:
    remote.serve(CAROL, mastodon_carol())
    await fetcher.fetch_actor(CAROL)
    await fetcher.fetch_actor(CAROL, refresh=True)
    assert remote.fetched(CAROL) == 2


async def test_an_id_differing_on_the_same_host_is_refetched_once_and_accepted(
        fetcher: ActorFetcher, remote: Remote) -> None:
    remote.serve("https://mastodon.example/@carol", mastodon_carol())
    remote.serve(CAROL, mastodon_carol())
    account = await fetcher.fetch_actor("https://mastodon.example/@carol")
    assert account.uri == CAROL
    assert [str(r.url) for r in remote.requests] == ["https://mastodon.example/@carol", CAROL]


async def test_an_id_whose_own_document_disagrees_is_refused(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    remote.serve("https://mastodon.example/@carol", mastodon_carol())
    other = mastodon_carol()
    other["id"] = "https://mastodon.example/users/someone-else"
    remote.serve(CAROL, other)
    with pytest.raises(ActorRefused) as caught:
        await fetcher.fetch_actor("https://mastodon.example/@carol")
    assert caught.value.reason == "origin_mismatch"
    assert len(remote.requests) == 2  # one refetch, no more
    assert await rows(db) == []


async def test_an_id_on_another_host_is_refused_without_refetching(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    forged = mastodon_carol()
    forged["id"] = "https://victim.example/users/carol"
    remote.serve(CAROL, forged)
    with pytest.raises(ActorRefused) as caught:
        await fetcher.fetch_actor(CAROL)
    assert caught.value.reason == "origin_mismatch"
    assert len(remote.requests) == 1
    assert await rows(db) == []


async def test_a_redirect_to_another_host_ends_in_a_refusal(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    remote.routes[CAROL] = httpx.Response(302, headers={"Location": "https://evil.example/carol"})
    evil = mastodon_carol()
    evil["id"] = "https://evil.example/carol"
    remote.serve("https://evil.example/carol", evil)
    with pytest.raises(ActorRefused):
        await fetcher.fetch_actor(CAROL)
    assert await rows(db) == []


async def test_an_actor_served_from_another_host_after_a_redirect_is_refused_even_naming_the_url(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    # CVE-2024-23832's shape: evil.example answers for carol's URL with carol's id.
    remote.routes[CAROL] = httpx.Response(302, headers={"Location": "https://evil.example/carol"})
    remote.serve("https://evil.example/carol", mastodon_carol())
    with pytest.raises(ActorRefused) as caught:
        await fetcher.fetch_actor(CAROL)
    assert caught.value.reason == "redirected"
    assert remote.fetched("https://evil.example/carol") == 1
    assert await rows(db) == []


async def test_a_redirect_elsewhere_cannot_replace_a_cached_actors_key(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    remote.serve(CAROL, mastodon_carol())
    original = await fetcher.key_for(CAROL_KEY)
    forged = mastodon_carol()
    forged["publicKey"]["publicKeyPem"] = PEM_B
    remote.routes[CAROL] = httpx.Response(302, headers={"Location": "https://evil.example/carol"})
    remote.serve("https://evil.example/carol", forged)
    assert await fetcher.refresh_key(CAROL_KEY) is None
    (account,) = await rows(db)
    assert account.public_key_pem == original


async def test_a_redirect_on_the_same_origin_is_followed(
        fetcher: ActorFetcher, remote: Remote) -> None:
    remote.routes[CAROL] = httpx.Response(301, headers={"Location": CAROL + "/"})
    remote.serve(CAROL + "/", mastodon_carol())
    assert (await fetcher.fetch_actor(CAROL)).uri == CAROL


@pytest.mark.parametrize(("code", "error"), [
    (410, ActorGone), (404, ActorNotFound), (500, ActorUnavailable), (503, ActorUnavailable),
    (401, ActorUnavailable)])
async def test_status_codes_map_to_errors(fetcher: ActorFetcher, remote: Remote, db: Database,
                                          code: int, error: type[Exception]) -> None:
    remote.status(CAROL, code)
    with pytest.raises(error) as caught:
        await fetcher.fetch_actor(CAROL)
    assert caught.value.uri == CAROL  # type: ignore[attr-defined]
    assert await rows(db) == []


async def test_a_timeout_is_unavailable(fetcher: ActorFetcher, remote: Remote) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    remote.routes[CAROL] = timeout
    with pytest.raises(ActorUnavailable):
        await fetcher.fetch_actor(CAROL)


async def test_plain_json_and_html_are_not_actor_documents(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    remote.serve(CAROL, mastodon_carol(), content_type="application/json")
    with pytest.raises(ActorUnavailable):
        await fetcher.fetch_actor(CAROL)
    remote.routes[CAROL] = httpx.Response(200, text="<html>", headers={"Content-Type": "text/html"})
    with pytest.raises(ActorUnavailable):
        await fetcher.fetch_actor(CAROL)
    assert await rows(db) == []


async def test_ld_json_with_the_as2_profile_is_accepted(fetcher: ActorFetcher, remote: Remote) -> None:
    remote.serve(CAROL, mastodon_carol(),
                 content_type='application/ld+json; profile="https://www.w3.org/ns/activitystreams"')
    assert (await fetcher.fetch_actor(CAROL)).uri == CAROL


@pytest.mark.parametrize("breakage", [
    {"type": "Note"}, {"preferredUsername": None}, {"preferredUsername": "a b"}, {"inbox": None},
    {"inbox": "javascript:alert(1)"}])
async def test_a_malformed_actor_is_refused_and_nothing_stored(
        fetcher: ActorFetcher, remote: Remote, db: Database, breakage: dict[str, Any]) -> None:
    doc = mastodon_carol()
    doc.update(breakage)
    remote.serve(CAROL, doc)
    with pytest.raises(ActorRefused) as caught:
        await fetcher.fetch_actor(CAROL)
    assert caught.value.reason == "invalid_actor"
    assert await rows(db) == []


async def test_a_body_that_is_not_json_is_unavailable(fetcher: ActorFetcher, remote: Remote) -> None:
    remote.routes[CAROL] = httpx.Response(200, text="{not json", headers={"Content-Type": AS2})
    with pytest.raises(ActorUnavailable):
        await fetcher.fetch_actor(CAROL)


async def test_actors_on_our_own_domain_are_refused_without_a_request(
        fetcher: ActorFetcher, remote: Remote, settings: Settings) -> None:
    with pytest.raises(ActorRefused) as caught:
        await fetcher.fetch_actor(f"https://{settings.domain}/users/alice")
    assert caught.value.reason == "own_domain"
    assert remote.requests == []


async def test_a_remote_id_pointing_at_our_domain_is_refused(
        fetcher: ActorFetcher, remote: Remote, settings: Settings, db: Database) -> None:
    forged = mastodon_carol()
    forged["id"] = f"https://{settings.domain}/users/alice"
    remote.serve(CAROL, forged)
    with pytest.raises(ActorRefused):
        await fetcher.fetch_actor(CAROL)
    assert await rows(db) == []


async def test_not_a_url_is_refused(fetcher: ActorFetcher) -> None:
    with pytest.raises(ActorRefused):
        await fetcher.fetch_actor("ftp://mastodon.example/users/carol")


async def test_a_key_on_another_origin_is_not_stored(
        fetcher: ActorFetcher, remote: Remote) -> None:
    doc = mastodon_carol()
    doc["publicKey"]["id"] = "https://other.example/users/bob#main-key"
    remote.serve(CAROL, doc)
    account = await fetcher.fetch_actor(CAROL)
    assert account.public_key_id == "" and account.public_key_pem == ""


async def test_gotosocial_person_is_stored(fetcher: ActorFetcher, remote: Remote) -> None:
    remote.serve(ERIN, gotosocial_erin())
    account = await fetcher.fetch_actor(ERIN)
    assert (account.username, account.domain, account.public_key_id) == ("erin", "gts.example", ERIN_KEY)
    assert account.locked and not account.discoverable
    assert account.shared_inbox_url == ""
    assert account.fields == [{"name": "should you follow me?", "value": "maybe!", "verified_at": None}]


# ------------------------------------------------------------------ handle conflicts

async def test_a_new_uri_takes_over_a_handle_whose_old_uri_is_gone(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    remote.serve(CAROL, mastodon_carol())
    old = await fetcher.fetch_actor(CAROL)
    new_uri = "https://mastodon.example/users/carol2"
    doc = json.loads(json.dumps(mastodon_carol()).replace(CAROL, new_uri))
    remote.serve(new_uri, doc)
    remote.status(CAROL, 410)
    account = await fetcher.fetch_actor(new_uri)
    assert account.id == old.id and account.uri == new_uri
    assert [a.uri for a in await rows(db)] == [new_uri]


async def test_a_new_uri_claiming_a_handle_still_served_is_refused(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    remote.serve(CAROL, mastodon_carol())
    await fetcher.fetch_actor(CAROL)
    new_uri = "https://mastodon.example/users/carol2"
    remote.serve(new_uri, json.loads(json.dumps(mastodon_carol()).replace(CAROL, new_uri)))
    with pytest.raises(ActorRefused) as caught:
        await fetcher.fetch_actor(new_uri)
    assert caught.value.reason == "handle_taken"
    assert [a.uri for a in await rows(db)] == [CAROL]


# ------------------------------------------------------------------------------ keys

async def test_key_for_an_unknown_key_fetches_its_actor(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    remote.serve(CAROL, mastodon_carol())
    pem = await fetcher.key_for(CAROL_KEY)
    assert pem is not None and "BEGIN PUBLIC KEY" in pem
    assert remote.fetched(CAROL) == 1
    assert await fetcher.key_for(CAROL_KEY) == pem  # cached now
    assert remote.fetched(CAROL) == 1
    assert [a.uri for a in await rows(db)] == [CAROL]


async def test_key_owner_is_the_stored_account_of_a_key(
        fetcher: ActorFetcher, remote: Remote, db: Database, settings: Settings) -> None:
    assert await fetcher.key_owner(CAROL_KEY) is None  # not stored yet
    remote.serve(CAROL, mastodon_carol())
    assert await fetcher.key_for(CAROL_KEY) is not None
    owner = await fetcher.key_owner(CAROL_KEY)
    assert owner is not None and owner.uri == CAROL
    async with db.session() as session:
        ours = await instance_actor(session, settings)
    local = await fetcher.key_owner(ours.public_key_id)
    assert local is not None and local.id == ours.id
    assert await fetcher.key_owner("not a url") is None


async def test_key_for_a_gotosocial_path_key_follows_the_stub_to_the_actor(
        fetcher: ActorFetcher, remote: Remote) -> None:
    erin = gotosocial_erin()
    stub = {k: erin[k] for k in ("@context", "id", "type", "preferredUsername", "publicKey")}
    remote.serve(ERIN_KEY, stub)
    remote.serve(ERIN, erin)
    pem = await fetcher.key_for(ERIN_KEY)
    assert pem == erin["publicKey"]["publicKeyPem"]
    assert [str(r.url) for r in remote.requests] == [ERIN_KEY, ERIN]


async def test_key_for_a_bare_key_document_fetches_its_owner(
        fetcher: ActorFetcher, remote: Remote) -> None:
    erin = gotosocial_erin()
    key = dict(erin["publicKey"], type="Key")
    remote.serve(ERIN_KEY, key)
    remote.serve(ERIN, erin)
    assert await fetcher.key_for(ERIN_KEY) == erin["publicKey"]["publicKeyPem"]


async def test_key_for_a_bare_key_naming_an_owner_elsewhere_is_none(
        fetcher: ActorFetcher, remote: Remote) -> None:
    erin = gotosocial_erin()
    remote.serve(ERIN_KEY, dict(erin["publicKey"], owner="https://evil.example/users/erin"))
    assert await fetcher.key_for(ERIN_KEY) is None


async def test_key_for_a_key_whose_owner_differs_is_none(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    doc = mastodon_carol()
    doc["publicKey"]["owner"] = "https://mastodon.example/users/mallory"
    remote.serve(CAROL, doc)
    assert await fetcher.key_for(CAROL_KEY) is None
    (account,) = await rows(db)
    assert account.public_key_id == ""


async def test_key_for_a_key_the_actor_does_not_list_is_none(
        fetcher: ActorFetcher, remote: Remote) -> None:
    remote.serve(CAROL, mastodon_carol())
    assert await fetcher.key_for(CAROL + "#other-key") is None


@pytest.mark.parametrize("code", [404, 410, 500])
async def test_key_for_an_actor_that_cannot_be_fetched(
        fetcher: ActorFetcher, remote: Remote, code: int) -> None:
    remote.status(CAROL, code)
    if code == 404:
        assert await fetcher.key_for(CAROL_KEY) is None
    else:
        with pytest.raises(ActorGone if code == 410 else ActorUnavailable):
            await fetcher.key_for(CAROL_KEY)


async def test_key_for_a_malformed_key_id_is_none(fetcher: ActorFetcher, remote: Remote) -> None:
    assert await fetcher.key_for("not a url") is None
    assert remote.requests == []


async def test_key_for_a_local_key_reads_the_database_and_never_fetches(
        fetcher: ActorFetcher, remote: Remote, db: Database, settings: Settings) -> None:
    async with db.session() as session:
        actor = await instance_actor(session, settings)
    assert await fetcher.key_for(actor.public_key_id) == actor.public_key_pem
    assert await fetcher.key_for(f"https://{settings.domain}/users/nobody#main-key") is None
    assert remote.requests == []


async def test_refresh_key_picks_up_a_rotated_key(
        fetcher: ActorFetcher, remote: Remote) -> None:
    doc = mastodon_carol()
    doc["publicKey"]["publicKeyPem"] = PEM_A
    remote.serve(CAROL, doc)
    assert await fetcher.key_for(CAROL_KEY) == PEM_A
    rotated = mastodon_carol()
    rotated["publicKey"]["publicKeyPem"] = PEM_B
    remote.serve(CAROL, rotated)
    assert await fetcher.key_for(CAROL_KEY) == PEM_A  # cached
    assert await fetcher.refresh_key(CAROL_KEY) == PEM_B
    assert remote.fetched(CAROL) == 2
    assert await fetcher.key_for(CAROL_KEY) == PEM_B


async def test_key_for_works_as_verify_requests_key_lookup(
        fetcher: ActorFetcher, remote: Remote, clock: FakeClock) -> None:
    from federation.signatures import CavageSigner
    from server.services.keys import generate_key_pair

    private_pem, public_pem = generate_key_pair()
    doc = mastodon_carol()
    doc["publicKey"]["publicKeyPem"] = public_pem
    remote.serve(CAROL, doc)
    request = httpx.Request("POST", "https://easel.test/inbox", content=b"{}")
    CavageSigner(CAROL_KEY, private_pem, clock=clock).sign(request)
    verified = await verify_request(method="POST", target="/inbox", headers=request.headers,
                                    body=b"{}", key_lookup=fetcher.key_for, clock=clock)
    assert verified.key_id == CAROL_KEY


# --------------------------------------------------------------------------- handles

def jrd(subject: str, actor: str) -> dict[str, Any]:
    return {"subject": subject, "links": [
        {"rel": "self", "type": "application/activity+json", "href": actor}]}


async def test_resolve_handle_round_trip_with_a_port(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    base = "https://gts.example:8443/users/erin"
    remote.serve("https://gts.example:8443/.well-known/webfinger?resource=acct%3Aerin%40gts.example%3A8443",
                 jrd("acct:erin@gts.example:8443", base), content_type="application/jrd+json")
    remote.serve(base, gotosocial_erin(base))
    account = await fetcher.resolve_handle("@erin@gts.example:8443")
    assert (account.uri, account.domain, account.acct()) == (base, "gts.example:8443",
                                                             "erin@gts.example:8443")
    assert account.public_key_id == base + "/main-key"
    # Fresh: the handle resolves from the database now.
    count = len(remote.requests)
    assert (await fetcher.resolve_handle("erin@gts.example:8443")).id == account.id
    assert len(remote.requests) == count


def wf_url(user: str, host: str) -> str:
    return str(httpx.URL(f"https://{host}/.well-known/webfinger",
                         params={"resource": f"acct:{user}@{host}"}))


async def test_resolve_handle_accepts_a_web_domain_split_confirmed_by_the_actors_host(
        fetcher: ActorFetcher, remote: Remote) -> None:
    actor = "https://social.example/users/ann"
    doc = json.loads(json.dumps(gotosocial_erin()).replace(ERIN, actor).replace('"erin"', '"ann"'))
    remote.serve(wf_url("ann", "example.org"), jrd("acct:ann@example.org", actor),
                 content_type="application/jrd+json")
    remote.serve(wf_url("ann", "social.example"), jrd("acct:ann@social.example", actor),
                 content_type="application/jrd+json")
    remote.serve(actor, doc)
    account = await fetcher.resolve_handle("ann@example.org")
    assert (account.uri, account.domain) == (actor, "social.example")


async def test_resolve_handle_refuses_an_actor_whose_host_does_not_confirm(
        fetcher: ActorFetcher, remote: Remote) -> None:
    # example.org claims the handle ann@example.org is CAROL; mastodon.example says its
    # carol is someone else.
    remote.serve(wf_url("ann", "example.org"), jrd("acct:ann@example.org", CAROL),
                 content_type="application/jrd+json")
    remote.serve(CAROL, mastodon_carol())
    remote.serve(wf_url("carol", "mastodon.example"),
                 jrd("acct:carol@mastodon.example", "https://mastodon.example/users/other"),
                 content_type="application/jrd+json")
    with pytest.raises(ActorRefused) as caught:
        await fetcher.resolve_handle("ann@example.org")
    assert caught.value.reason == "handle_not_confirmed"


async def test_resolve_handle_errors(fetcher: ActorFetcher, remote: Remote,
                                     settings: Settings) -> None:
    with pytest.raises(ActorRefused):
        await fetcher.resolve_handle("not a handle")
    with pytest.raises(ActorRefused):
        await fetcher.resolve_handle(f"alice@{settings.domain}")
    with pytest.raises(ActorNotFound):
        await fetcher.resolve_handle("nobody@mastodon.example")
    remote.status(wf_url("carol", "mastodon.example"), 502)
    with pytest.raises(ActorUnavailable):
        await fetcher.resolve_handle("carol@mastodon.example")
    remote.serve(wf_url("carol", "mastodon.example"), {"subject": "acct:carol@mastodon.example"},
                 content_type="application/jrd+json")
    with pytest.raises(ActorRefused):
        await fetcher.resolve_handle("carol@mastodon.example")


async def test_the_signer_factory_can_be_injected(db: Database, settings: Settings,
                                                  remote: Remote, clock: FakeClock) -> None:
    calls = 0

    class NoAuth(httpx.Auth):
        pass

    async def factory() -> httpx.Auth:
        nonlocal calls
        calls += 1
        return NoAuth()

    remote.serve(CAROL, mastodon_carol())
    remote.serve(ERIN, gotosocial_erin())
    async with httpx.AsyncClient(transport=httpx.MockTransport(remote.handler)) as client:
        fetcher = ActorFetcher(db, settings, client, signer_factory=factory, clock=clock)
        await fetcher.fetch_actor(CAROL)
        await fetcher.fetch_actor(ERIN)
    assert calls == 1
    assert remote.verified == []
    assert sorted(a.uri for a in await rows(db)) == sorted([CAROL, ERIN])


# ------------------------------------------------------------------ suspended domains

async def suspend(db: Database, domain: str, severity: str = "suspend") -> None:
    async with db.session() as session:
        session.add(DomainBlock(domain=domain, severity=severity))
        await session.commit()


async def test_an_actor_on_a_suspended_domain_is_never_fetched(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    remote.serve(CAROL, mastodon_carol())
    await suspend(db, "mastodon.example")
    with pytest.raises(ActorRefused) as caught:
        await fetcher.fetch_actor(CAROL)
    assert caught.value.reason == "suspended"
    assert await fetcher.key_for(CAROL_KEY) is None
    assert await fetcher.refresh_key(CAROL_KEY) is None
    assert remote.requests == []
    assert await rows(db) == []


async def test_a_suspended_parent_domain_covers_subdomains_unless_a_more_specific_block_allows(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    await suspend(db, "example")
    with pytest.raises(ActorRefused):
        await fetcher.fetch_actor(ERIN)  # gts.example
    await suspend(db, "gts.example", severity="noop")
    remote.serve(ERIN, gotosocial_erin())
    assert (await fetcher.fetch_actor(ERIN)).uri == ERIN


async def test_a_cached_actor_is_still_answered_after_its_domain_is_suspended(
        fetcher: ActorFetcher, remote: Remote, db: Database, clock: FakeClock) -> None:
    remote.serve(CAROL, mastodon_carol())
    account = await fetcher.fetch_actor(CAROL)
    await suspend(db, "mastodon.example")
    assert (await fetcher.fetch_actor(CAROL)).id == account.id  # no network: the row
    # ... but never its key: no signature from a suspended domain verifies.
    assert await fetcher.key_for(CAROL_KEY) is None
    assert await fetcher.refresh_key(CAROL_KEY) is None
    clock.now += timedelta(days=2)  # stale: a refetch would go out, and is refused
    with pytest.raises(ActorRefused):
        await fetcher.fetch_actor(CAROL)
    assert remote.fetched(CAROL) == 1


async def test_resolve_handle_never_asks_a_suspended_host(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    remote.serve(wf_url("carol", "mastodon.example"), jrd("acct:carol@mastodon.example", CAROL),
                 content_type="application/jrd+json")
    remote.serve(CAROL, mastodon_carol())
    await suspend(db, "mastodon.example")
    with pytest.raises(ActorRefused) as caught:
        await fetcher.resolve_handle("carol@mastodon.example")
    assert caught.value.reason == "suspended"
    assert remote.requests == []


async def test_resolve_handle_refuses_an_actor_on_a_suspended_domain_named_by_webfinger(
        fetcher: ActorFetcher, remote: Remote, db: Database) -> None:
    remote.serve(wf_url("ann", "example.org"), jrd("acct:ann@example.org", CAROL),
                 content_type="application/jrd+json")
    remote.serve(CAROL, mastodon_carol())
    await suspend(db, "mastodon.example")
    with pytest.raises(ActorRefused) as caught:
        await fetcher.resolve_handle("ann@example.org")
    assert caught.value.reason == "suspended"
    assert [str(r.url) for r in remote.requests] == [wf_url("ann", "example.org")]
    assert await rows(db) == []
