"""Sign-ups and IP blocks: ``POST /api/v1/accounts`` and the ``/auth/sign_up`` form.

I expect a ``sign_up_block`` on the client's network to refuse a sign-up with 403 (as
Mastodon's ``forbidden``) whatever the registration mode, an invite included, storing
nothing, and the web form to say so; a ``sign_up_requires_approval`` block to make the new
user wait for approval even when registrations are open or an invite admits them; an
expired block and other addresses to change nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from server.app import AppOptions, create_app
from server.db import Database
from server.ids import utcnow
from server.models import IpBlock, User
from server.services import invites, ip_blocks
from server.settings import Settings
from tests.conftest import DOMAIN, authorized, make_token
from tests.server.web.works import csrf_of

SIGN_UP = {"username": "carol", "email": "carol@example.com", "password": "a fine password",
           "agreement": "true", "locale": "en", "reason": "I paint birds"}
Instance = Callable[[str, str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def instance(settings: Settings) -> Instance:
    """A client from ``address`` for this test's database, ``registrations`` set to a mode."""

    @asynccontextmanager
    async def serve(mode: str, address: str) -> AsyncIterator[httpx.AsyncClient]:
        application = create_app(settings.with_changes(registrations=mode),
                                 options=AppOptions(run_workers=False, run_reconciler=False))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application, client=(address, 40000))
            async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
                yield http

    return serve


async def block(db: Database, ip: str, severity: str) -> None:
    async with db.session() as session:
        await ip_blocks.create_ip_block(session, ip, severity)


async def user_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count(User.id))) or 0)


async def new_user(db: Database) -> User:
    async with db.session() as session:
        user = await session.scalar(select(User).where(User.email == SIGN_UP["email"]))
    assert user is not None
    return user


async def test_a_sign_up_block_refuses_even_an_invite(instance: Instance, db: Database) -> None:
    await block(db, "203.0.113.0/24", "sign_up_block")
    async with db.session() as session:
        invite = await invites.create_invite(session)
    before = await user_count(db)
    for mode in ("open", "approval"):
        async with instance(mode, "203.0.113.50") as http:
            async with authorized(http, await make_token(db, None, "read write")) as app:
                refused = await app.post("/api/v1/accounts", data=SIGN_UP)
                assert refused.status_code == 403, refused.text
                assert refused.json() == {"error": "Sign-ups from your network are not allowed"}
                invited = await app.post("/api/v1/accounts",
                                         data={**SIGN_UP, "invite_code": invite.code})
                assert invited.status_code == 403
            page = await http.get("/auth/sign_up")
            assert page.status_code == 403 and "does not take sign-ups from your network" in page.text
            token = csrf_of(await http.get("/auth/sign_in"))
            posted = await http.post("/auth/sign_up", data={**SIGN_UP, "authenticity_token": token})
            assert posted.status_code == 403
    assert await user_count(db) == before
    async with db.session() as session:
        assert (await invites.find_usable_invite(session, invite.code)) is not None  # not used


async def test_a_no_access_block_also_refuses_sign_ups_before_the_matcher_knows(
        instance: Instance, db: Database) -> None:
    async with instance("open", "2001:db8::7") as http:
        await http.get("/api/v1/instance")  # the matcher has loaded: no blocks
        await block(db, "2001:db8::/32", "no_access")  # as the CLI would: unknown to the matcher
        async with authorized(http, await make_token(db, None, "read write")) as app:
            refused = await app.post("/api/v1/accounts", data=SIGN_UP)
        assert refused.status_code == 403
    assert await user_count(db) == 0


async def test_requires_approval_holds_an_open_sign_up(instance: Instance, db: Database) -> None:
    await block(db, "198.51.100.0/24", "sign_up_requires_approval")
    async with instance("open", "198.51.100.20") as http:
        async with authorized(http, await make_token(db, None, "read write")) as app:
            created = await app.post("/api/v1/accounts", data=SIGN_UP)
            assert created.status_code == 200, created.text
            held = await app.get("/api/v1/accounts/verify_credentials", headers={
                "Authorization": f"Bearer {created.json()['access_token']}"})
            assert held.status_code == 403
    user = await new_user(db)
    assert not user.approved and user.reason == "I paint birds"


async def test_requires_approval_holds_an_invited_web_sign_up(instance: Instance,
                                                              db: Database) -> None:
    await block(db, "198.51.100.0/24", "sign_up_requires_approval")
    async with db.session() as session:
        invite = await invites.create_invite(session)
    async with instance("closed", "198.51.100.20") as http:
        page = await http.get(f"/invite/{invite.code}")
        assert page.status_code == 200
        done = await http.post("/auth/sign_up", data={
            **SIGN_UP, "invite_code": invite.code, "authenticity_token": csrf_of(page)})
        assert done.status_code == 200 and "administrator will review" in done.text
    assert not (await new_user(db)).approved


async def test_expired_blocks_and_other_addresses_change_nothing(instance: Instance,
                                                                 db: Database) -> None:
    await block(db, "198.51.100.0/24", "sign_up_requires_approval")
    await block(db, "203.0.113.0/24", "sign_up_block")
    async with db.session() as session:
        await session.execute(update(IpBlock).where(IpBlock.ip == "203.0.113.0/24").values(
            expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    async with instance("open", "203.0.113.50") as http:
        async with authorized(http, await make_token(db, None, "read write")) as app:
            created = await app.post("/api/v1/accounts", data=SIGN_UP)
            assert created.status_code == 200, created.text
    assert (await new_user(db)).approved
    async with instance("open", "192.0.2.1") as http:
        async with authorized(http, await make_token(db, None, "read write")) as app:
            other = await app.post("/api/v1/accounts", data={
                **SIGN_UP, "username": "dana", "email": "dana@example.com"})
            assert other.status_code == 200, other.text
