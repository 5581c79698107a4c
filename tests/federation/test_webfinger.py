"""WebFinger: handle -> actor URL, ports kept, the scheme rule, and every rejection path."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from federation.http import (
    ForbiddenAddress,
    RemoteStatusError,
    TooLarge,
    WrongContentType,
    safe_client,
)
from federation.webfinger import (
    Handle,
    HandleNotFound,
    InvalidHandle,
    MalformedJRD,
    NoSelfLink,
    SubjectMismatch,
    WebFingerError,
    parse_handle,
    resolve_handle,
    webfinger,
    webfinger_url,
)
from server.settings import Settings

SETTINGS = Settings(domain="easel.test", scheme="https")
PUBLIC_IP = "93.184.215.14"
ALICE = "https://social.example/users/alice"
ALICE_KEY = ("social.example", "acct:alice@social.example")


def jrd(subject: str | None = "acct:alice@social.example", href: str = ALICE,
        link_type: str = "application/activity+json", **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "aliases": [href, "https://social.example/@alice"],
        "links": [
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
             "href": "https://social.example/@alice"},
            {"rel": "self", "type": link_type, "href": href},
            {"rel": "http://ostatus.org/schema/1.0/subscribe",
             "template": "https://social.example/authorize_interaction?uri={uri}"},
        ],
    }
    if subject is not None:
        document["subject"] = subject
    document.update(extra)
    return document


def reply(document: Any, status: int = 200,
          content_type: str = "application/jrd+json; charset=utf-8") -> httpx.Response:
    return httpx.Response(status, content=json.dumps(document).encode(),
                          headers={"Content-Type": content_type})


class Remote:
    """Fake remote hosts: answers by (host, resource); records every request."""

    def __init__(self, answers: dict[tuple[str, str], httpx.Response]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.url.path == "/.well-known/webfinger"
        key = (request.url.netloc.decode(), request.url.params["resource"])
        return self.answers.get(key, httpx.Response(404, json={"error": "not found"}))


def client_for(remote: Remote, settings: Settings = SETTINGS, addresses: dict[str, str] | None = None
               ) -> httpx.AsyncClient:
    table = addresses or {}

    async def resolver(host: str, port: int) -> list[str]:
        return [table.get(host, PUBLIC_IP)]

    return safe_client(settings, resolver=resolver, transport=httpx.MockTransport(remote))


# ------------------------------------------------------------------ handles


@pytest.mark.parametrize(("text", "username", "host"), [
    ("alice@social.example", "alice", "social.example"),
    ("@alice@social.example", "alice", "social.example"),
    ("acct:alice@social.example", "alice", "social.example"),
    ("ACCT:Alice@Social.Example", "Alice", "social.example"),
    ("  alice@social.example:8443 ", "alice", "social.example:8443"),
    ("dora@localhost:8443", "dora", "localhost:8443"),
    ("a.b-c_d~@xn--bcher-kva.example", "a.b-c_d~", "xn--bcher-kva.example"),
    ("alice@bücher.example", "alice", "xn--bcher-kva.example"),
])
def test_handles_are_parsed(text: str, username: str, host: str) -> None:
    assert parse_handle(text) == Handle(username=username, host=host)


@pytest.mark.parametrize("text", [
    "", "alice", "@alice", "alice@", "@social.example", "alice@@social.example", "a@b@social.example",
    "al ice@social.example", "alice@social.example/path", "alice@social.example?x=1",
    "alice@social.example#x", "alice@social.example:0", "alice@social.example:99999",
    "alice@social.example:port", "alice@-bad-.example", "alice@social..example", "alice@[::1]",
    "https://social.example/users/alice", "alice/x@social.example", "a" * 256 + "@social.example",
])
def test_invalid_handles_are_refused(text: str) -> None:
    with pytest.raises(InvalidHandle):
        parse_handle(text)


async def test_an_invalid_handle_is_refused_before_any_request() -> None:
    remote = Remote({})
    async with client_for(remote) as client:
        with pytest.raises(InvalidHandle):
            await resolve_handle(client, "alice@social.example/../admin", settings=SETTINGS)
    assert remote.requests == []


def test_the_webfinger_url_keeps_the_port_and_follows_the_scheme_rule() -> None:
    handle = parse_handle("alice@social.example:8443")
    assert webfinger_url(handle, SETTINGS) == (
        "https://social.example:8443/.well-known/webfinger?resource=acct%3Aalice%40social.example%3A8443")
    assert webfinger_url(handle, SETTINGS.with_changes(scheme="http")).startswith(
        "http://social.example:8443/.well-known/webfinger?")


# ------------------------------------------------------------------ round trips


async def test_a_handle_resolves_to_its_actor() -> None:
    remote = Remote({("social.example", "acct:alice@social.example"): reply(jrd())})
    async with client_for(remote) as client:
        assert await resolve_handle(client, "@alice@social.example", settings=SETTINGS) == ALICE
    [request] = remote.requests
    assert request.url.scheme == "https"
    assert request.headers["Accept"] == "application/jrd+json, application/json"


async def test_a_handle_with_a_port_keeps_it_in_the_host_and_the_resource() -> None:
    actor = "https://social.example:8443/users/alice"
    remote = Remote({("social.example:8443", "acct:alice@social.example:8443"):
                     reply(jrd("acct:alice@social.example:8443", href=actor))})
    async with client_for(remote) as client:
        result = await webfinger(client, "alice@social.example:8443", settings=SETTINGS)
    assert result.actor_url == actor
    assert str(result.subject) == "alice@social.example:8443"
    assert remote.requests[0].url.port == 8443


async def test_with_easel_scheme_http_lookups_use_http() -> None:
    remote = Remote({("lab.test:8081", "acct:alice@lab.test:8081"):
                     reply(jrd("acct:alice@lab.test:8081", href="http://lab.test:8081/users/alice"))})
    lab = SETTINGS.with_changes(scheme="http", allow_private_addresses=True)
    async with client_for(remote, lab, {"lab.test": "127.0.0.1"}) as client:
        assert await resolve_handle(client, "alice@lab.test:8081", settings=lab) == "http://lab.test:8081/users/alice"
    assert str(remote.requests[0].url).startswith("http://lab.test:8081/.well-known/webfinger?")


async def test_a_round_trip_against_easels_own_webfinger_with_a_port(
    app_with_port: httpx.AsyncClient,
) -> None:
    """Easel's own endpoint (domain localhost:8443, user dora) answers Easel's lookup."""
    lab = SETTINGS.with_changes(allow_private_addresses=True)

    async def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("localhost", 8443)
        return ["127.0.0.1"]

    transport = app_with_port._transport
    async with safe_client(lab, resolver=resolver, transport=transport) as client:
        result = await webfinger(client, "dora@localhost:8443", settings=lab)
    assert str(result.subject) == "dora@localhost:8443"
    assert result.actor_url == "https://localhost:8443/users/dora"


@pytest.mark.parametrize("link_type", [
    "application/activity+json",
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
    "application/ld+json;profile=https://www.w3.org/ns/activitystreams",
])
async def test_self_link_types(link_type: str) -> None:
    remote = Remote({("social.example", "acct:alice@social.example"): reply(jrd(link_type=link_type))})
    async with client_for(remote) as client:
        assert await resolve_handle(client, "alice@social.example", settings=SETTINGS) == ALICE


@pytest.mark.parametrize("content_type", ["application/jrd+json", "application/json; charset=utf-8"])
async def test_jrd_and_json_content_types_are_accepted(content_type: str) -> None:
    remote = Remote({ALICE_KEY: reply(jrd(), content_type=content_type)})
    async with client_for(remote) as client:
        assert await resolve_handle(client, "alice@social.example", settings=SETTINGS) == ALICE


async def test_the_subject_is_compared_case_insensitively_and_may_be_absent() -> None:
    remote = Remote({
        ("social.example", "acct:alice@social.example"): reply(jrd("acct:Alice@SOCIAL.example")),
        ("social.example", "acct:bob@social.example"): reply(jrd(None, href="https://social.example/users/bob")),
    })
    async with client_for(remote) as client:
        result = await webfinger(client, "alice@social.example", settings=SETTINGS)
        assert result.subject.username == "Alice"
        assert await resolve_handle(client, "bob@social.example", settings=SETTINGS) == (
            "https://social.example/users/bob")


async def test_a_url_subject_is_accepted_when_the_aliases_name_the_handle() -> None:
    listed = jrd(ALICE, aliases=[ALICE, "acct:alice@social.example"])
    unlisted = jrd("https://social.example/users/carol", href="https://social.example/users/carol")
    remote = Remote({
        ("social.example", "acct:alice@social.example"): reply(listed),
        ("social.example", "acct:carol@social.example"): reply(unlisted),
    })
    async with client_for(remote) as client:
        assert await resolve_handle(client, "alice@social.example", settings=SETTINGS) == ALICE
        with pytest.raises(SubjectMismatch):
            await resolve_handle(client, "carol@social.example", settings=SETTINGS)


async def test_a_subject_on_another_host_is_confirmed_there() -> None:
    """Mastodon's WEB_DOMAIN/LOCAL_DOMAIN split: ask the subject's host once more."""
    canonical = "https://social.example/users/alice"
    remote = Remote({
        ("social.example", "acct:alice@social.example"): reply(jrd("acct:alice@example.org", href=canonical)),
        ("example.org", "acct:alice@example.org"): reply(jrd("acct:alice@example.org", href=canonical)),
    })
    async with client_for(remote) as client:
        result = await webfinger(client, "alice@social.example", settings=SETTINGS)
    assert str(result.subject) == "alice@example.org"
    assert result.actor_url == canonical
    assert [r.url.host for r in remote.requests] == ["social.example", "example.org"]


@pytest.mark.parametrize("second_subject", ["acct:mallory@example.org", "acct:alice@elsewhere.example"])
async def test_a_subject_on_another_host_that_does_not_confirm_is_refused(second_subject: str) -> None:
    remote = Remote({
        ("evil.example", "acct:alice@evil.example"): reply(jrd("acct:alice@example.org")),
        ("example.org", "acct:alice@example.org"): reply(jrd(second_subject)),
    })
    async with client_for(remote) as client:
        with pytest.raises(SubjectMismatch):
            await resolve_handle(client, "alice@evil.example", settings=SETTINGS)
    assert len(remote.requests) == 2


async def test_a_subject_on_another_host_that_does_not_know_it_is_not_found() -> None:
    remote = Remote({("evil.example", "acct:alice@evil.example"): reply(jrd("acct:alice@example.org"))})
    async with client_for(remote) as client:
        with pytest.raises(HandleNotFound):
            await resolve_handle(client, "alice@evil.example", settings=SETTINGS)


# ------------------------------------------------------------------ rejections


@pytest.mark.parametrize("status", [404, 410])
async def test_unknown_accounts_are_not_found(status: int) -> None:
    remote = Remote({("social.example", "acct:ghost@social.example"): reply({}, status=status)})
    async with client_for(remote) as client:
        with pytest.raises(HandleNotFound) as caught:
            await resolve_handle(client, "ghost@social.example", settings=SETTINGS)
    assert caught.value.status_code == status


async def test_other_error_statuses_are_passed_on() -> None:
    remote = Remote({("social.example", "acct:alice@social.example"): reply({"error": "x"}, status=500)})
    async with client_for(remote) as client:
        with pytest.raises(RemoteStatusError) as caught:
            await resolve_handle(client, "alice@social.example", settings=SETTINGS)
    assert caught.value.status_code == 500
    assert not isinstance(caught.value, WebFingerError)


@pytest.mark.parametrize("body", [
    b"<html>not json</html>", b"[]", b'"acct:alice@social.example"',
    json.dumps({"subject": 42, "links": []}).encode(),
    json.dumps({"subject": "acct:alice@social.example", "links": {"rel": "self"}}).encode(),
    json.dumps({"subject": "acct:alice@social.example", "aliases": "x", "links": []}).encode(),
    json.dumps(jrd("acct:not a handle")).encode(),
])
async def test_malformed_jrd(body: bytes) -> None:
    response = httpx.Response(200, content=body, headers={"Content-Type": "application/jrd+json"})
    remote = Remote({("social.example", "acct:alice@social.example"): response})
    async with client_for(remote) as client:
        with pytest.raises(MalformedJRD):
            await resolve_handle(client, "alice@social.example", settings=SETTINGS)


@pytest.mark.parametrize("links", [
    [],
    [{"rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": ALICE}],
    [{"rel": "self", "type": "text/html", "href": ALICE}],
    [{"rel": "self", "href": ALICE}],
    [{"rel": "self", "type": "application/ld+json", "href": ALICE}],
    [{"rel": "self", "type": 'application/ld+json; profile="https://example.org/other"', "href": ALICE}],
    [{"rel": "self", "type": "application/activity+json"}],
    [{"rel": "self", "type": "application/activity+json", "href": "javascript:alert(1)"}],
    [{"rel": "self", "type": "application/activity+json", "href": "/users/alice"}],
    [{"rel": "self", "type": "application/activity+json", "href": ["https://social.example/users/alice"]}],
    ["self", None, 3],
])
async def test_no_usable_self_link(links: list[Any]) -> None:
    document = {"subject": "acct:alice@social.example", "links": links}
    remote = Remote({("social.example", "acct:alice@social.example"): reply(document)})
    async with client_for(remote) as client:
        with pytest.raises(NoSelfLink):
            await resolve_handle(client, "alice@social.example", settings=SETTINGS)


async def test_a_jrd_without_links_has_no_self_link() -> None:
    remote = Remote({("social.example", "acct:alice@social.example"):
                     reply({"subject": "acct:alice@social.example"})})
    async with client_for(remote) as client:
        with pytest.raises(NoSelfLink):
            await resolve_handle(client, "alice@social.example", settings=SETTINGS)


async def test_the_first_usable_self_link_wins() -> None:
    document = jrd()
    document["links"].insert(0, {"rel": "self", "type": "text/html", "href": "https://social.example/@alice"})
    document["links"].append({"rel": "self", "type": "application/activity+json",
                              "href": "https://social.example/users/other"})
    remote = Remote({("social.example", "acct:alice@social.example"): reply(document)})
    async with client_for(remote) as client:
        assert await resolve_handle(client, "alice@social.example", settings=SETTINGS) == ALICE


async def test_a_wrong_content_type_is_refused() -> None:
    remote = Remote({("social.example", "acct:alice@social.example"): reply(jrd(), content_type="text/html")})
    async with client_for(remote) as client:
        with pytest.raises(WrongContentType):
            await resolve_handle(client, "alice@social.example", settings=SETTINGS)


async def test_an_oversized_jrd_is_refused() -> None:
    remote = Remote({("social.example", "acct:alice@social.example"): reply(jrd(padding="x" * 300_000))})
    async with client_for(remote) as client:
        with pytest.raises(TooLarge):
            await resolve_handle(client, "alice@social.example", settings=SETTINGS)


async def test_a_handle_on_a_private_host_is_refused() -> None:
    remote = Remote({("intranet.example", "acct:alice@intranet.example"): reply(jrd())})
    async with client_for(remote, addresses={"intranet.example": "10.1.2.3"}) as client:
        with pytest.raises(ForbiddenAddress):
            await resolve_handle(client, "alice@intranet.example", settings=SETTINGS)
    assert remote.requests == []
