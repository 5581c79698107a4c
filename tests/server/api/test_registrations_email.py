"""Sign-up through the API with mail on: the address is confirmed by following the link
that a real SMTP server on loopback received; resending it; invites; instance rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from starlette.applications import Starlette

from server.app import AppOptions, create_app
from server.db import Database
from server.ids import utcnow
from server.models import Invite, OAuthToken, OutgoingMail, User
from server.services import invites, rules
from server.settings import Settings
from tests.conftest import DOMAIN, authorized, make_token
from tests.server.smtp import Mailbox, deliver_mail, link_in, mail_app, mail_client, mailbox

__all__ = ["mail_app", "mail_client", "mailbox"]  # fixtures

SIGN_UP = {"username": "carol", "email": "carol@example.com", "password": "a fine password",
           "agreement": True, "locale": "en", "reason": "I paint birds"}
UNCONFIRMED = {"error": "Your login is missing a confirmed e-mail address"}


async def sign_up(http: httpx.AsyncClient, db: Database, **changes: Any) -> httpx.Response:
    async with authorized(http, await make_token(db, None, "read write follow")) as api:
        return await api.post("/api/v1/accounts", json={**SIGN_UP, **changes})


async def counts(db: Database) -> tuple[int, int, int]:
    async with db.session() as session:
        return (await session.scalar(select(func.count(User.id))) or 0,
                await session.scalar(select(func.count(OAuthToken.id))) or 0,
                await session.scalar(select(func.count(OutgoingMail.id))) or 0)


async def test_the_token_works_once_the_mailed_link_is_followed(
    mail_app: Starlette, mail_client: httpx.AsyncClient, mailbox: Mailbox, db: Database
) -> None:
    response = await sign_up(mail_client, db)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    async with authorized(mail_client, token) as carol:
        waiting = await carol.get("/api/v1/accounts/verify_credentials")
        assert waiting.status_code == 403 and waiting.json() == UNCONFIRMED
        assert (await carol.get("/api/v1/emails/check_confirmation")).json() is False
        assert await deliver_mail(mail_app) == 1
        link = link_in(mailbox.last_to("carol@example.com"), "/auth/confirm?token=")
        confirmed = await mail_client.get(link)
        assert confirmed.status_code == 200 and "confirmed" in confirmed.text
        me = await carol.get("/api/v1/accounts/verify_credentials")
        assert me.status_code == 200 and me.json()["username"] == "carol"
        assert (await carol.get("/api/v1/emails/check_confirmation")).json() is True
    again = await mail_client.get(link)  # single use
    assert again.status_code == 422


async def test_resending_replaces_the_link_and_can_correct_the_address(
    mail_app: Starlette, mail_client: httpx.AsyncClient, mailbox: Mailbox, db: Database
) -> None:
    token = (await sign_up(mail_client, db)).json()["access_token"]
    await deliver_mail(mail_app)
    first = link_in(mailbox.last_to("carol@example.com"), "/auth/confirm")
    async with authorized(mail_client, token) as carol:
        bad = await carol.post("/api/v1/emails/confirmations", json={"email": "not an address"})
        assert bad.status_code == 422 and "error" in bad.json()
        resent = await carol.post("/api/v1/emails/confirmations", json={"email": "carol@art.example"})
        assert resent.status_code == 200 and resent.json() == {}
        await deliver_mail(mail_app)
        second = link_in(mailbox.last_to("carol@art.example"), "/auth/confirm")
        assert (await mail_client.get(first)).status_code == 422  # replaced
        assert (await mail_client.get(second)).status_code == 200
        done = await carol.post("/api/v1/emails/confirmations")
        assert done.status_code == 403
        assert done.json() == {"error": "This method is only available while the e-mail is awaiting "
                                        "confirmation"}
    async with db.session() as session:
        user = await session.scalar(select(User).where(User.email == "carol@art.example"))
        assert user is not None and user.confirmed_at is not None


async def test_the_confirmation_endpoints_need_a_user_token(
    mail_client: httpx.AsyncClient, db: Database
) -> None:
    assert (await mail_client.post("/api/v1/emails/confirmations")).status_code == 401
    async with authorized(mail_client, "not-a-token") as nobody:
        assert (await nobody.post("/api/v1/emails/confirmations")).status_code == 401
    async with authorized(mail_client, await make_token(db, None, "write")) as app_only:
        assert (await app_only.post("/api/v1/emails/confirmations")).status_code == 422
    token = (await sign_up(mail_client, db)).json()["access_token"]
    async with db.session() as session:
        await session.execute(update(OAuthToken).where(OAuthToken.user_id.is_not(None))
                              .values(scopes="read"))
        await session.commit()
    async with authorized(mail_client, token) as narrow:
        assert (await narrow.post("/api/v1/emails/confirmations")).status_code == 403


async def test_a_bad_link_is_refused(mail_client: httpx.AsyncClient) -> None:
    for query in ("", "?token=", "?token=nope", "?token=" + "x" * 500):
        response = await mail_client.get("/auth/confirm" + query)
        assert response.status_code == 422, query


async def test_an_expired_link_is_refused(
    mail_app: Starlette, mail_client: httpx.AsyncClient, mailbox: Mailbox, db: Database
) -> None:
    from server.models import EmailToken

    await sign_up(mail_client, db)
    await deliver_mail(mail_app)
    link = link_in(mailbox.last_to("carol@example.com"), "/auth/confirm")
    async with db.session() as session:
        await session.execute(update(EmailToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    assert (await mail_client.get(link)).status_code == 422


async def test_approval_mode_waits_for_the_admin_after_confirming(
    settings: Settings, mailbox: Mailbox, db: Database
) -> None:
    from tests.server.smtp import mail_settings

    application = create_app(mail_settings(settings, mailbox, registrations="approval"),
                             options=AppOptions(run_workers=False, run_reconciler=False))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
            token = (await sign_up(http, db)).json()["access_token"]
            await deliver_mail(application)
            page = await http.get(link_in(mailbox.last_to("carol@example.com"), "/auth/confirm"))
            assert page.status_code == 200 and "administrator will review" in page.text
            async with authorized(http, token) as carol:
                waiting = await carol.get("/api/v1/accounts/verify_credentials")
    assert waiting.status_code == 403
    assert waiting.json() == {"error": "Your login is currently pending approval"}


async def test_without_smtp_an_open_registration_is_usable_at_once(
    settings: Settings, db: Database
) -> None:
    application = create_app(settings.with_changes(registrations="open"),
                             options=AppOptions(run_workers=False, run_reconciler=False))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
            token = (await sign_up(http, db)).json()["access_token"]
            async with authorized(http, token) as carol:
                assert (await carol.get("/api/v1/accounts/verify_credentials")).status_code == 200
                assert (await carol.post("/api/v1/emails/confirmations")).status_code == 403
    assert (await counts(db))[2] == 0


# ----------------------------------------------------------------------------- invites

async def serve(settings: Settings, mode: str) -> tuple[Starlette, Any]:
    application = create_app(settings.with_changes(registrations=mode),
                             options=AppOptions(run_workers=False, run_reconciler=False))
    return application, application.router.lifespan_context(application)


async def make_invite(db: Database, **options: Any) -> Invite:
    async with db.session() as session:
        return await invites.create_invite(session, **options)


async def test_a_valid_invite_admits_when_closed_and_skips_approval(
    settings: Settings, db: Database
) -> None:
    invite = await make_invite(db, max_uses=2)
    for mode, username in (("closed", "carol"), ("approval", "dave")):
        application, lifespan = await serve(settings, mode)
        async with lifespan:
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
                response = await sign_up(http, db, username=username, email=f"{username}@example.com",
                                         invite_code=invite.code)
                assert response.status_code == 200, response.text
                async with authorized(http, response.json()["access_token"]) as member:
                    assert (await member.get("/api/v1/accounts/verify_credentials")).status_code == 200
    async with db.session() as session:
        used = await session.get(Invite, invite.id)
        assert used is not None and used.uses == 2
        carol = await session.scalar(select(User).where(User.email == "carol@example.com"))
        assert carol is not None and carol.invite_id == invite.id and carol.approved


async def test_a_used_up_expired_revoked_or_unknown_invite_is_refused(
    settings: Settings, db: Database
) -> None:
    used_up = await make_invite(db, max_uses=1)
    expired = await make_invite(db, expires_in=timedelta(hours=1))
    revoked = await make_invite(db)
    async with db.session() as session:
        await session.execute(update(Invite).where(Invite.id == used_up.id).values(uses=1))
        await session.execute(update(Invite).where(Invite.id == expired.id)
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
        await invites.revoke_invite(session, revoked.code)
    application, lifespan = await serve(settings, "closed")
    async with lifespan:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
            before = await counts(db)
            for code in (used_up.code, expired.code, revoked.code, "unknown", "x" * 64):
                response = await sign_up(http, db, invite_code=code)
                assert response.status_code == 403, code
                assert response.json() == {"error": "Registrations are closed"}
            too_long = await sign_up(http, db, invite_code="x" * 65)
            assert too_long.status_code == 422
            assert await counts(db) == (before[0], before[1] + 6, before[2])  # only the app tokens
    application, lifespan = await serve(settings, "approval")
    async with lifespan:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
            response = await sign_up(http, db, invite_code=used_up.code)
    assert response.status_code == 422
    assert response.json()["details"]["invite_code"] == [
        {"error": "ERR_INVALID", "description": "is invalid"}]
    async with db.session() as session:
        assert (await session.get(Invite, used_up.id)).uses == 1  # type: ignore[union-attr]


async def test_a_failed_registration_does_not_use_the_invite(
    settings: Settings, db: Database, alice: User
) -> None:
    invite = await make_invite(db, max_uses=1)
    application, lifespan = await serve(settings, "closed")
    async with lifespan:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
            taken = await sign_up(http, db, username="alice", invite_code=invite.code)
            assert taken.status_code == 422
            ok = await sign_up(http, db, invite_code=invite.code)
            assert ok.status_code == 200, ok.text


# ------------------------------------------------------------------------------- rules

async def test_rules_are_listed_in_v1_v2_and_their_own_endpoint(
    client: httpx.AsyncClient, db: Database
) -> None:
    assert (await client.get("/api/v1/instance/rules")).json() == []
    async with db.session() as session:
        first = await rules.add_rule(session, "Be kind", "No harassment")
        second = await rules.add_rule(session, "Credit other artists")
    expected = [{"id": str(first.id), "text": "Be kind", "hint": "No harassment"},
                {"id": str(second.id), "text": "Credit other artists", "hint": ""}]
    assert (await client.get("/api/v1/instance/rules")).json() == expected
    assert (await client.get("/api/v2/instance")).json()["rules"] == expected
    assert (await client.get("/api/v1/instance")).json()["rules"] == expected
