"""The admin API for domain blocks, domain allows and canonical e-mail blocks, and the
public list of blocked domains.

Given an admin, I expect Mastodon's ``Admin::DomainBlock`` for a created block (digest =
SHA-256 of the domain), the block to take effect for subdomains and ports at once, update
and delete to work, and a duplicate, invalid or own domain, a bad severity or an overlong
comment to be a 422 storing nothing. Domain allows and canonical e-mail blocks likewise;
a blocked address (in any dotted or +tagged spelling) cannot register. The public list
follows ``EASEL_SHOW_DOMAIN_BLOCKS`` and obfuscates where asked. Normal users get 403 on
every admin endpoint, no token 401. The CSV export reads back in with the same blocks,
and a CSV with a bad line imports nothing. Mastodon.py's admin domain calls work.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from mastodon import Mastodon
from sqlalchemy import func, select

from server.app import AppOptions, create_app
from server.cli import main
from server.db import Database
from server.models import CanonicalEmailBlock, DomainAllow, DomainBlock, User
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import DOMAIN, authorized, make_token
from tests.server.api.live import live_server

ADMIN_SCOPES = "read write admin:read admin:write"
PASSWORD = "a long enough password"
ADMIN_ENDPOINTS = [
    ("GET", "/api/v1/admin/domain_blocks"), ("POST", "/api/v1/admin/domain_blocks"),
    ("GET", "/api/v1/admin/domain_blocks/1"), ("PUT", "/api/v1/admin/domain_blocks/1"),
    ("DELETE", "/api/v1/admin/domain_blocks/1"),
    ("GET", "/api/v1/admin/domain_allows"), ("POST", "/api/v1/admin/domain_allows"),
    ("GET", "/api/v1/admin/domain_allows/1"), ("DELETE", "/api/v1/admin/domain_allows/1"),
    ("GET", "/api/v1/admin/canonical_email_blocks"),
    ("POST", "/api/v1/admin/canonical_email_blocks"),
    ("POST", "/api/v1/admin/canonical_email_blocks/test"),
    ("GET", "/api/v1/admin/canonical_email_blocks/1"),
    ("DELETE", "/api/v1/admin/canonical_email_blocks/1"),
]


@pytest.fixture
async def moderator(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="moira", email="moira@example.com",
                                 password=PASSWORD, admin=True)


@pytest.fixture
async def admin_api(client: httpx.AsyncClient, db: Database,
                    moderator: User) -> AsyncIterator[httpx.AsyncClient]:
    async with authorized(client, await make_token(db, moderator, ADMIN_SCOPES)) as http:
        yield http


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --------------------------------------------------------------------- domain blocks

async def test_create_show_update_and_delete_a_domain_block(admin_api: httpx.AsyncClient) -> None:
    created = await admin_api.post("/api/v1/admin/domain_blocks", json={
        "domain": "Spam.Example:8443", "severity": "suspend", "reject_reports": True,
        "public_comment": "spam", "private_comment": "see report 12", "obfuscate": True})
    assert created.status_code == 200, created.text
    block = created.json()
    assert block == {
        "id": block["id"], "domain": "spam.example:8443",
        "digest": hashlib.sha256(b"spam.example:8443").hexdigest(),
        "created_at": block["created_at"], "severity": "suspend", "reject_media": False,
        "reject_reports": True, "private_comment": "see report 12", "public_comment": "spam",
        "obfuscate": True}
    url = f"/api/v1/admin/domain_blocks/{block['id']}"
    assert (await admin_api.get(url)).json() == block
    assert [b["id"] for b in (await admin_api.get("/api/v1/admin/domain_blocks")).json()] == [block["id"]]

    updated = (await admin_api.put(url, json={"severity": "silence", "reject_media": True})).json()
    assert (updated["severity"], updated["reject_media"], updated["reject_reports"],
            updated["public_comment"]) == ("silence", True, True, "spam")

    assert (await admin_api.delete(url)).json() == {}
    assert (await admin_api.get(url)).status_code == 404
    assert (await admin_api.delete(url)).status_code == 404


@pytest.mark.parametrize("body", [
    {}, {"domain": ""}, {"domain": "not a domain"}, {"domain": DOMAIN},
    {"domain": "x.example", "severity": "ban"},
    {"domain": "x.example", "public_comment": "x" * 5001},
    {"domain": "x.example", "reject_media": "perhaps"},
])
async def test_bad_domain_blocks_are_refused_and_store_nothing(
        admin_api: httpx.AsyncClient, db: Database, body: dict[str, str]) -> None:
    response = await admin_api.post("/api/v1/admin/domain_blocks", json=body)
    assert response.status_code in (400, 422), response.text
    assert "error" in response.json()
    assert await count(db, DomainBlock) == 0


async def test_a_second_block_on_a_domain_and_bad_updates_are_refused(
        admin_api: httpx.AsyncClient, db: Database) -> None:
    first = (await admin_api.post("/api/v1/admin/domain_blocks",
                                  json={"domain": "dup.example"})).json()
    assert first["severity"] == "silence"  # Mastodon's default
    again = await admin_api.post("/api/v1/admin/domain_blocks", json={"domain": "DUP.example"})
    assert again.status_code == 422, again.text
    assert again.json()["existing_domain_block"]["id"] == first["id"]
    bad = await admin_api.put(f"/api/v1/admin/domain_blocks/{first['id']}", json={"severity": "x"})
    assert bad.status_code == 422
    async with db.session() as session:
        [block] = list(await session.scalars(select(DomainBlock)))
        assert block.severity == "silence"


# --------------------------------------------------------------------- domain allows

async def test_domain_allows(admin_api: httpx.AsyncClient, db: Database) -> None:
    created = await admin_api.post("/api/v1/admin/domain_allows", json={"domain": "Friends.Example"})
    assert created.status_code == 200
    allow = created.json()
    assert allow["domain"] == "friends.example" and allow["created_at"]
    # Mastodon answers an existing allow as it is.
    assert (await admin_api.post("/api/v1/admin/domain_allows",
                                 json={"domain": "friends.example"})).json() == allow
    url = f"/api/v1/admin/domain_allows/{allow['id']}"
    assert (await admin_api.get(url)).json() == allow
    assert (await admin_api.get("/api/v1/admin/domain_allows")).json() == [allow]
    bad = await admin_api.post("/api/v1/admin/domain_allows", json={"domain": "no way"})
    assert bad.status_code == 422
    assert (await admin_api.post("/api/v1/admin/domain_allows", json={})).status_code in (400, 422)
    assert (await admin_api.delete(url)).json() == {}
    assert (await admin_api.delete(url)).status_code == 404
    assert await count(db, DomainAllow) == 0


# ------------------------------------------------------------ canonical e-mail blocks

async def test_canonical_email_blocks_and_registration(
        admin_api: httpx.AsyncClient, client: httpx.AsyncClient, db: Database) -> None:
    canonical = hashlib.sha256(b"jdoe@example.net").hexdigest()
    created = await admin_api.post("/api/v1/admin/canonical_email_blocks",
                                   json={"email": "J.Doe+spam@Example.net"})
    assert created.status_code == 200, created.text
    block = created.json()
    assert block == {"id": block["id"], "canonical_email_hash": canonical}
    assert (await admin_api.post("/api/v1/admin/canonical_email_blocks/test",
                                 json={"email": "jdoe+other@example.net"})).json() == [block]
    assert (await admin_api.post("/api/v1/admin/canonical_email_blocks/test",
                                 json={"email": "someone@example.net"})).json() == []

    async with authorized(client, await make_token(db, None, "read write")) as app_api:
        refused = await app_api.post("/api/v1/accounts", data={
            "username": "jdoe", "email": "j.doe@example.net", "password": PASSWORD,
            "agreement": "true", "locale": "en"})
    assert refused.status_code == 422
    assert refused.json()["details"]["email"][0]["error"] == "ERR_BLOCKED"

    for body in ({}, {"email": "nobody"}, {"canonical_email_hash": "abc"},
                 {"canonical_email_hash": canonical}, {"email": "jdoe@example.net"}):
        bad = await admin_api.post("/api/v1/admin/canonical_email_blocks", json=body)
        assert bad.status_code == 422, body
    by_hash = await admin_api.post("/api/v1/admin/canonical_email_blocks",
                                   json={"canonical_email_hash": "A" * 64})
    assert by_hash.json()["canonical_email_hash"] == "a" * 64
    assert len((await admin_api.get("/api/v1/admin/canonical_email_blocks")).json()) == 2
    url = f"/api/v1/admin/canonical_email_blocks/{block['id']}"
    assert (await admin_api.get(url)).json() == block
    assert (await admin_api.delete(url)).json() == {}
    assert (await admin_api.get(url)).status_code == 404
    assert await count(db, CanonicalEmailBlock) == 1


# ------------------------------------------------------------------------ permissions

async def test_normal_users_get_403_and_no_token_401(
        client: httpx.AsyncClient, alice_api: httpx.AsyncClient, db: Database, alice: User,
        moderator: User) -> None:
    async with authorized(client, await make_token(db, alice, ADMIN_SCOPES)) as scoped, \
            authorized(client, await make_token(db, moderator, "read write")) as unscoped:
        for method, path in ADMIN_ENDPOINTS:
            body = {"domain": "x.example", "email": "x@example.com"}
            kwargs = {"json": body} if method in ("POST", "PUT") else {}
            assert (await alice_api.request(method, path, **kwargs)).status_code == 403, path
            assert (await scoped.request(method, path, **kwargs)).status_code == 403, path
            assert (await unscoped.request(method, path, **kwargs)).status_code == 403, path
            assert (await client.request(method, path, **kwargs)).status_code == 401, path
    for model in (DomainBlock, DomainAllow, CanonicalEmailBlock):
        assert await count(db, model) == 0


# ------------------------------------------------------------------- the public list

async def test_the_public_list_follows_the_setting(
        settings: Settings, db: Database, alice: User) -> None:
    async with db.session() as session:
        session.add_all([
            DomainBlock(domain="bad.example", severity="suspend", public_comment="spam"),
            DomainBlock(domain="example.com", severity="silence", obfuscate=True,
                        private_comment="secret"),
            DomainBlock(domain="media.example", severity="noop", reject_media=True)])
        await session.commit()
    token = await make_token(db, alice)
    answers = {}
    for mode in ("disabled", "users", "all"):
        application = create_app(settings.with_changes(show_domain_blocks=mode),
                                 options=AppOptions(run_workers=False))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
                anonymous = await http.get("/api/v1/instance/domain_blocks")
                signed_in = await http.get("/api/v1/instance/domain_blocks",
                                           headers={"Authorization": f"Bearer {token}"})
        answers[mode] = (anonymous.status_code, signed_in.status_code, signed_in.json())
    assert answers["disabled"][:2] == (404, 404)
    assert answers["users"][:2] == (401, 200)
    assert answers["all"][:2] == (200, 200)
    assert answers["all"][2] == [
        {"domain": "bad.example", "digest": hashlib.sha256(b"bad.example").hexdigest(),
         "severity": "suspend", "comment": "spam"},
        {"domain": "exa****.*om", "digest": hashlib.sha256(b"example.com").hexdigest(),
         "severity": "silence", "comment": None},
    ]


# ------------------------------------------------------------------------- CSV import

MASTODON_CSV = """#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate
spam.example,suspend,false,true,"Spam, lots",false
loud.example:8443,silence,true,false,,true
pics.example,noop,true,false,,false
"""


def test_csv_import_and_export_round_trip(easel_env: Settings, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "blocks.csv"
    source.write_text(MASTODON_CSV)
    assert main(["admin", "domain-block", "import", str(source)]) == 0
    assert "imported 3 domain block(s): 3 new, 0 updated" in capsys.readouterr().out
    assert main(["admin", "domain-block", "import", str(source)]) == 0
    assert "3 updated" in capsys.readouterr().out
    exported = tmp_path / "out.csv"
    assert main(["admin", "domain-block", "export", str(exported)]) == 0
    lines = exported.read_text().splitlines()
    assert lines[0] == "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate"
    assert sorted(lines[1:]) == [
        "loud.example:8443,silence,true,false,,true",
        "pics.example,noop,true,false,,false",
        'spam.example,suspend,false,true,"Spam, lots",false',
    ]

    plain = tmp_path / "plain.txt"
    plain.write_text("one.example\nTwo.Example\n")
    assert main(["admin", "domain-block", "import", str(plain)]) == 0
    capsys.readouterr()
    assert main(["admin", "domain-block", "list"]) == 0
    listed = capsys.readouterr().out
    assert "one.example  suspend" in listed and "two.example  suspend" in listed


def test_a_csv_with_a_bad_line_imports_nothing(easel_env: Settings, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("#domain,#severity\nfine.example,suspend\nnot a domain,silence\n")
    assert main(["admin", "domain-block", "import", str(source)]) == 1
    assert "line 3: Domain is invalid" in capsys.readouterr().err
    source.write_text("#domain,#severity\nfine.example,ban\n")
    assert main(["admin", "domain-block", "import", str(source)]) == 1
    assert "line 2: Severity 'ban'" in capsys.readouterr().err
    assert main(["admin", "domain-block", "import", str(tmp_path / "missing.csv")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["admin", "domain-block", "list"]) == 0
    assert "no domain blocks" in capsys.readouterr().out


def test_domain_allow_and_email_block_commands(easel_env: Settings,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin", "domain-allow", "add", "Friends.Example"]) == 0
    assert "allowed friends.example" in capsys.readouterr().out
    assert main(["admin", "domain-allow", "list"]) == 0
    assert "friends.example" in capsys.readouterr().out
    assert main(["admin", "domain-allow", "remove", "friends.example"]) == 0
    assert main(["admin", "domain-allow", "remove", "friends.example"]) == 1
    assert "is not allowed" in capsys.readouterr().err
    assert main(["admin", "email-block", "add", "J.Doe+x@example.net"]) == 0
    assert "blocked jdoe@example.net" in capsys.readouterr().out
    assert main(["admin", "email-block", "add", "jdoe@example.net"]) == 1
    assert "already been taken" in capsys.readouterr().err
    assert main(["admin", "email-block", "remove", "jdoe@example.net"]) == 0
    assert main(["admin", "email-block", "list"]) == 0


# ------------------------------------------------------------------------- Mastodon.py

def test_mastodon_py_admin_domain_calls(settings: Settings) -> None:
    with live_server(settings) as server:
        async def seed() -> str:
            state = server.app.state.easel
            async with state.db.session() as session:
                mod = await create_user(session, server.settings, username="moira",
                                        email="moira@example.com", password=PASSWORD, admin=True)
            return await make_token(state.db, mod, ADMIN_SCOPES)

        api = Mastodon(access_token=server.call(seed()), api_base_url=server.base_url,
                       version_check_mode="none", request_timeout=30)
        block = api.admin_create_domain_block("spam.example", severity="suspend",
                                              public_comment="spam", obfuscate=True)
        assert block.domain == "spam.example" and block.obfuscate is True
        assert [b.domain for b in api.admin_domain_blocks()] == ["spam.example"]
        changed = api.admin_update_domain_block(block, severity="silence")
        assert changed.severity == "silence"
        api.admin_delete_domain_block(block)
        assert api.admin_domain_blocks() == []
        allow = api.admin_create_domain_allow("friends.example")
        assert [a.domain for a in api.admin_domain_allows()] == ["friends.example"]
        api.admin_delete_domain_allow(allow)
        email_block = api.admin_create_canonical_email_block(email="a.b+c@example.org")
        assert [b.id for b in api.admin_test_canonical_email_block("ab@example.org")] == [email_block.id]
        api.admin_delete_canonical_email_block(email_block)
        assert api.admin_canonical_email_blocks() == []


# ---------------------------------------------------------------------------- settings

def test_the_federation_mode_and_public_list_settings() -> None:
    from server.settings import SettingsError, load_settings

    default = load_settings(environ={}, dotenv=None)
    assert (default.federation_mode, default.show_domain_blocks) == ("open", "disabled")
    chosen = load_settings(environ={"EASEL_FEDERATION_MODE": "Allowlist",
                                    "EASEL_SHOW_DOMAIN_BLOCKS": "users"}, dotenv=None)
    assert (chosen.federation_mode, chosen.show_domain_blocks) == ("allowlist", "users")
    assert not chosen.extra
    with pytest.raises(SettingsError, match="EASEL_FEDERATION_MODE='closed' must be one of: open, allowlist"):
        load_settings(environ={"EASEL_FEDERATION_MODE": "closed"}, dotenv=None)
    with pytest.raises(SettingsError, match="EASEL_SHOW_DOMAIN_BLOCKS"):
        load_settings(environ={"EASEL_SHOW_DOMAIN_BLOCKS": "everyone"}, dotenv=None)
