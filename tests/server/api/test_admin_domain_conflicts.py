"""Creating a domain block that an existing block already covers (Mastodon's
``existing_domain_block``).

Given a block on example.com, I expect a new block on a subdomain that is looser in any
respect (Mastodon's ``stricter_than?`` false), or one on example.com itself, to be a 422
whose body is Mastodon's
``{"error": "You have already imposed stricter limits on example.com.",
"existing_domain_block": Admin::DomainBlock}``, storing nothing; a block on a subdomain at
least as strict (a suspension under a silence, reject_media under a plain silence, the same
rules again) is created;
the most specific covering block is the one compared (and named); and the bad-input and
permission checks still hold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from server.db import Database
from server.models import DomainBlock, User
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import authorized, make_token

ADMIN_SCOPES = "read write admin:read admin:write"
BLOCKS = "/api/v1/admin/domain_blocks"


@pytest.fixture
async def admin_api(client: httpx.AsyncClient, db: Database,
                    settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with db.session() as session:
        moderator = await create_user(session, settings, username="moira",
                                      email="moira@example.com",
                                      password="a long enough password", admin=True)
    async with authorized(client, await make_token(db, moderator, ADMIN_SCOPES)) as http:
        yield http


async def domains(db: Database) -> list[str]:
    async with db.session() as session:
        return list(await session.scalars(select(DomainBlock.domain).order_by(DomainBlock.domain)))


async def block(api: httpx.AsyncClient, **body: object) -> dict[str, object]:
    response = await api.post(BLOCKS, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


@pytest.mark.parametrize(("existing", "new"), [
    ({"severity": "suspend"}, {"severity": "silence"}),
    ({"severity": "suspend"}, {"severity": "noop", "reject_media": True}),
    ({"severity": "silence"}, {"severity": "noop"}),
    ({"severity": "silence", "reject_media": True}, {"severity": "silence"}),
    ({"severity": "noop", "reject_reports": True}, {"severity": "noop"}),
])
async def test_a_block_looser_than_the_one_covering_it_is_refused_with_it(
        admin_api: httpx.AsyncClient, db: Database, existing: dict[str, object],
        new: dict[str, object]) -> None:
    parent = await block(admin_api, domain="example.com", **existing)
    refused = await admin_api.post(BLOCKS, json={"domain": "Sub.Example.com", **new})
    assert refused.status_code == 422, refused.text
    assert refused.json() == {
        "error": "You have already imposed stricter limits on example.com.",
        "existing_domain_block": parent}
    assert await domains(db) == ["example.com"]


async def test_the_same_domain_again_is_refused_with_its_block(
        admin_api: httpx.AsyncClient, db: Database) -> None:
    first = await block(admin_api, domain="example.com", severity="silence")
    again = await admin_api.post(BLOCKS, json={"domain": "EXAMPLE.com.", "severity": "suspend"})
    assert again.status_code == 422
    assert again.json()["existing_domain_block"] == first
    assert await domains(db) == ["example.com"]


@pytest.mark.parametrize(("existing", "new"), [
    ({"severity": "silence"}, {"severity": "suspend"}),
    ({"severity": "silence"}, {"severity": "silence", "reject_media": True}),
    ({"severity": "noop"}, {"severity": "silence"}),
    ({"severity": "silence"}, {"severity": "silence"}),
    ({"severity": "suspend"}, {"severity": "suspend"}),
    ({"severity": "noop", "reject_media": True}, {"severity": "noop", "reject_media": True,
                                                  "reject_reports": True}),
])
async def test_a_block_at_least_as_strict_as_the_one_covering_it_is_created(
        admin_api: httpx.AsyncClient, db: Database, existing: dict[str, object],
        new: dict[str, object]) -> None:
    await block(admin_api, domain="example.com", **existing)
    created = await block(admin_api, domain="bad.example.com", **new)
    assert created["domain"] == "bad.example.com"
    assert await domains(db) == ["bad.example.com", "example.com"]


async def test_the_most_specific_covering_block_decides_and_ports_count(
        admin_api: httpx.AsyncClient, db: Database) -> None:
    await block(admin_api, domain="example.com", severity="suspend")
    # An exemption is not stricter than the suspension: refused...
    refused = await admin_api.post(BLOCKS, json={"domain": "good.example.com", "severity": "noop"})
    assert refused.status_code == 422
    assert refused.json()["existing_domain_block"]["domain"] == "example.com"
    # ...and a port of a blocked host is covered by the host's block.
    on_port = await admin_api.post(BLOCKS, json={"domain": "example.com:8443", "severity": "silence"})
    assert on_port.status_code == 422
    await block(admin_api, domain="other.example", severity="noop")
    await block(admin_api, domain="a.other.example", severity="silence")
    # Under a.other.example (silence) a noop is refused, naming the nearer block.
    nearer = await admin_api.post(BLOCKS, json={"domain": "x.a.other.example", "severity": "noop"})
    assert nearer.status_code == 422
    assert nearer.json()["existing_domain_block"]["domain"] == "a.other.example"
    assert await domains(db) == ["a.other.example", "example.com", "other.example"]


async def test_bad_input_and_permissions_still_hold(
        admin_api: httpx.AsyncClient, client: httpx.AsyncClient, db: Database,
        alice: User) -> None:
    await block(admin_api, domain="example.com", severity="silence")
    bad_severity = await admin_api.post(BLOCKS, json={"domain": "a.example.com", "severity": "x"})
    assert bad_severity.status_code == 422 and "existing_domain_block" not in bad_severity.json()
    bad_domain = await admin_api.post(BLOCKS, json={"domain": "not a domain"})
    assert bad_domain.status_code == 422
    assert (await client.post(BLOCKS, json={"domain": "a.example.com"})).status_code == 401
    async with authorized(client, await make_token(db, alice, ADMIN_SCOPES)) as normal:
        refused = await normal.post(BLOCKS, json={"domain": "example.com"})
        assert refused.status_code == 403
        assert "existing_domain_block" not in refused.json()
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(DomainBlock)) == 1
