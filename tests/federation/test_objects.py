"""Fetching AS2 objects from their origin (federation.objects.fetch_object).

Given fake remote servers, when Easel fetches an object by URL, I expect a signed GET
asking for AS2, the document only when its id is the URL (or, on the same origin, an id
that names itself after one refetch), and a refusal — often without any request — for
other origins, suspended or own domains, private addresses, wrong types and big bodies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from federation.context import FederationContext
from federation.objects import (
    MAX_OBJECT_BYTES,
    ObjectGone,
    ObjectNotFound,
    ObjectRefused,
    ObjectUnavailable,
    fetch_object,
)
from server.db import Database
from server.models import DomainBlock
from server.settings import Settings
from tests.federation.fediverse import AS2, Fediverse

NOTE = "https://mastodon.example/users/carol/statuses/1"
WEB = "https://mastodon.example/@carol/1"


def note(note_id: str = NOTE) -> dict[str, object]:
    return {"id": note_id, "type": "Note", "attributedTo": "https://mastodon.example/users/carol",
            "content": "hi"}


@pytest.fixture
def fediverse() -> Fediverse:
    return Fediverse()


@pytest.fixture
async def fed(settings: Settings, db: Database, fediverse: Fediverse
              ) -> AsyncIterator[FederationContext]:
    context = fediverse.context(settings, db)
    yield context
    await context.close()


async def test_a_document_that_names_itself_is_fetched_with_a_signed_as2_get(
        fed: FederationContext, fediverse: Fediverse) -> None:
    fediverse.serve(NOTE, note())
    assert (await fetch_object(fed, NOTE))["id"] == NOTE
    [request] = fediverse.requests
    assert request.headers["accept"].startswith("application/activity+json")
    assert "application/json" not in request.headers["accept"].replace("activity+json", "")
    assert 'keyId="https://easel.test/actor#main-key"' in request.headers["signature"]


async def test_another_id_on_the_same_origin_is_refetched_once_and_accepted_if_consistent(
        fed: FederationContext, fediverse: Fediverse) -> None:
    fediverse.serve(WEB, note())
    fediverse.serve(NOTE, note())
    assert (await fetch_object(fed, WEB))["id"] == NOTE
    assert fediverse.fetched(WEB) == 1 and fediverse.fetched(NOTE) == 1


async def test_an_id_that_does_not_name_itself_after_the_refetch_is_refused(
        fed: FederationContext, fediverse: Fediverse) -> None:
    fediverse.serve(WEB, note())
    fediverse.serve(NOTE, note("https://mastodon.example/users/carol/statuses/2"))
    with pytest.raises(ObjectRefused) as refused:
        await fetch_object(fed, WEB)
    assert refused.value.reason == "origin_mismatch"


@pytest.mark.parametrize("claimed", [
    "https://evil.example/users/carol/statuses/1",      # another host
    "http://mastodon.example/users/carol/statuses/1",   # another scheme
    "https://mastodon.example:8443/users/carol/statuses/1",  # another port
])
async def test_an_id_on_another_origin_is_refused_without_fetching_it(
        fed: FederationContext, fediverse: Fediverse, claimed: str) -> None:
    fediverse.serve(NOTE, note(claimed))
    with pytest.raises(ObjectRefused) as refused:
        await fetch_object(fed, NOTE)
    assert refused.value.reason == "origin_mismatch"
    assert fediverse.fetched(claimed) == 0


async def test_a_redirect_to_another_host_ends_in_a_refusal(
        fed: FederationContext, fediverse: Fediverse) -> None:
    other = "https://evil.example/notes/1"
    fediverse.routes[NOTE] = httpx.Response(302, headers={"Location": other})
    fediverse.serve(other, note(other))
    with pytest.raises(ObjectRefused):
        await fetch_object(fed, NOTE)


async def test_a_document_served_from_another_host_after_a_redirect_is_refused_even_naming_the_url(
        fed: FederationContext, fediverse: Fediverse) -> None:
    # CVE-2024-23832's shape: the origin redirects, and the other host answers with a
    # document that claims to be the one asked for.
    other = "https://evil.example/notes/1"
    fediverse.routes[NOTE] = httpx.Response(302, headers={"Location": other})
    forged = note(NOTE) | {"content": "forged by evil"}
    fediverse.serve(other, forged)
    with pytest.raises(ObjectRefused) as refused:
        await fetch_object(fed, NOTE)
    assert refused.value.reason == "redirected"
    assert fediverse.fetched(other) == 1


async def test_a_redirect_on_the_same_origin_is_followed(
        fed: FederationContext, fediverse: Fediverse) -> None:
    moved = "https://mastodon.example/users/carol/statuses/1/"
    fediverse.routes[NOTE] = httpx.Response(301, headers={"Location": moved})
    fediverse.serve(moved, note(NOTE))
    assert (await fetch_object(fed, NOTE))["content"] == "hi"


async def test_a_document_without_an_id_is_refused(
        fed: FederationContext, fediverse: Fediverse) -> None:
    fediverse.serve(NOTE, {"type": "Note", "content": "no id"})
    with pytest.raises(ObjectRefused) as refused:
        await fetch_object(fed, NOTE)
    assert refused.value.reason == "no_id"


@pytest.mark.parametrize(("code", "error"), [
    (404, ObjectNotFound), (401, ObjectNotFound), (410, ObjectGone), (500, ObjectUnavailable),
    (503, ObjectUnavailable),
])
async def test_error_statuses_map_to_errors(
        fed: FederationContext, fediverse: Fediverse, code: int, error: type[Exception]) -> None:
    fediverse.status(NOTE, code)
    with pytest.raises(error):
        await fetch_object(fed, NOTE)


async def test_plain_json_html_and_oversized_bodies_are_not_accepted(
        fed: FederationContext, fediverse: Fediverse) -> None:
    fediverse.serve(NOTE, note(), content_type="application/json")
    with pytest.raises(ObjectUnavailable):
        await fetch_object(fed, NOTE)
    fediverse.routes[NOTE] = httpx.Response(200, text="<html></html>",
                                            headers={"Content-Type": "text/html"})
    with pytest.raises(ObjectUnavailable):
        await fetch_object(fed, NOTE)
    big = note() | {"content": "x" * (MAX_OBJECT_BYTES + 1)}
    fediverse.serve(NOTE, big, content_type=AS2)
    with pytest.raises(ObjectUnavailable):
        await fetch_object(fed, NOTE)
    fediverse.routes[NOTE] = httpx.Response(200, text="[1, 2]", headers={"Content-Type": AS2})
    with pytest.raises(ObjectUnavailable):
        await fetch_object(fed, NOTE)


async def test_suspended_and_own_domains_and_bad_urls_are_refused_without_a_request(
        fed: FederationContext, fediverse: Fediverse, db: Database) -> None:
    async with db.session() as session:
        session.add(DomainBlock(domain="mastodon.example", severity="suspend"))
        await session.commit()
    fediverse.serve(NOTE, note())
    for url, reason in ((NOTE, "suspended"),
                        ("https://sub.mastodon.example/notes/1", "suspended"),
                        ("https://easel.test/users/alice/statuses/1", "own_domain"),
                        ("ftp://example.org/x", "bad_url"),
                        ("not a url", "bad_url")):
        with pytest.raises(ObjectRefused) as refused:
            await fetch_object(fed, url)
        assert refused.value.reason == reason
    assert fediverse.requests == []


async def test_a_private_address_is_refused(settings: Settings, db: Database) -> None:
    remote = Fediverse()
    remote.serve(NOTE, note())

    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    strict = settings.with_changes(allow_private_addresses=False)
    context = FederationContext.build(strict, db, transport=httpx.MockTransport(remote.handler),
                                      resolver=loopback)
    try:
        with pytest.raises(ObjectRefused) as refused:
            await fetch_object(context, NOTE)
        assert refused.value.reason == "forbidden_url"
        assert remote.requests == []
    finally:
        await context.close()
