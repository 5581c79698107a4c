"""The web sign-up (with the rules, through an invite link) and the studio's account page:
change the e-mail address (confirmed by the mailed link first) and the password."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from starlette.applications import Starlette

from server.app import AppOptions, create_app
from server.db import Database
from server.models import OAuthToken, User
from server.services import invites, rules
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import DOMAIN, authorized, make_token
from tests.server.smtp import Mailbox, body, deliver_mail, link_in, mail_app, mail_client, mailbox
from tests.server.web.works import csrf_of

__all__ = ["mail_app", "mail_client", "mailbox"]  # fixtures

PASSWORD = "correct horse battery"
FORM = {"username": "fern", "email": "fern@example.com", "password": "a fine password",
        "agreement": "1"}


async def fern(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="fern", email="fern@example.com",
                                 password=PASSWORD)


async def sign_in(http: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    form = await http.get("/auth/sign_in")
    return await http.post("/auth/sign_in", data={"login": login, "password": password,
                                                  "authenticity_token": csrf_of(form)})


async def user_count(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count(User.id))) or 0


# ------------------------------------------------------------------------------ sign-up

async def test_sign_up_shows_the_rules_and_needs_the_agreement_then_the_link(
    mail_app: Starlette, mail_client: httpx.AsyncClient, mailbox: Mailbox, db: Database
) -> None:
    async with db.session() as session:
        await rules.add_rule(session, "Post only your own work", "Credit collaborators")
    page = await mail_client.get("/auth/sign_up")
    assert page.status_code == 200
    assert "Post only your own work" in page.text and "Credit collaborators" in page.text
    assert page.headers["cache-control"] == "no-store"
    before = await user_count(db)
    refused = await mail_client.post("/auth/sign_up", data={
        **FORM, "agreement": "", "authenticity_token": csrf_of(page)})
    assert refused.status_code == 422 and "Agreement must be accepted" in refused.text
    assert 'value="fern"' in refused.text  # kept for the next try
    no_csrf = await mail_client.post("/auth/sign_up", data=FORM)
    assert no_csrf.status_code == 403
    assert await user_count(db) == before

    done = await mail_client.post("/auth/sign_up", data={**FORM, "authenticity_token": csrf_of(page)})
    assert done.status_code == 200 and "Check your e-mail" in done.text
    assert (await sign_in(mail_client, "fern", FORM["password"])).status_code == 403
    await deliver_mail(mail_app)
    confirmed = await mail_client.get(link_in(mailbox.last_to("fern@example.com"), "/auth/confirm"))
    assert confirmed.status_code == 200
    assert (await sign_in(mail_client, "fern", FORM["password"])).status_code == 303


async def test_closed_registrations_admit_only_through_an_invite_link(
    settings: Settings, db: Database
) -> None:
    async with db.session() as session:
        invite = await invites.create_invite(session, max_uses=1)
    application = create_app(settings.with_changes(registrations="closed"),
                             options=AppOptions(run_workers=False, run_reconciler=False))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
            closed = await http.get("/auth/sign_up")
            assert closed.status_code == 403 and "closed" in closed.text
            unknown = await http.get("/invite/nope")
            assert unknown.status_code == 403 and "no longer valid" in unknown.text
            page = await http.get(f"/invite/{invite.code}")
            assert page.status_code == 200 and f'value="{invite.code}"' in page.text
            welcome = await http.post("/auth/sign_up", data={
                **FORM, "invite_code": invite.code, "authenticity_token": csrf_of(page)})
            # No SMTP: confirmed at once; the invite skips approval: signed in, to the studio.
            assert welcome.status_code == 303 and welcome.headers["location"] == "/studio"
            assert (await http.get("/studio/account")).status_code == 200
            used_up = await http.get(f"/invite/{invite.code}")
            assert used_up.status_code == 403
            http.cookies.clear()
            again = await http.get("/auth/sign_in")  # any form: the CSRF token is per browser
            refused = await http.post("/auth/sign_up", data={
                **FORM, "username": "gale", "email": "gale@example.com", "invite_code": invite.code,
                "authenticity_token": csrf_of(again)})
            assert refused.status_code == 403
    async with db.session() as session:
        assert await session.scalar(select(func.count(User.id)).where(User.email == "gale@example.com")) == 0


async def test_approval_sign_up_asks_why_and_waits(client: httpx.AsyncClient, db: Database) -> None:
    page = await client.get("/auth/sign_up")
    assert page.status_code == 200 and 'name="reason"' in page.text
    response = await client.post("/auth/sign_up", data={
        **FORM, "reason": "I draw ferns", "authenticity_token": csrf_of(page)})
    assert response.status_code == 200 and "administrator will review" in response.text
    async with db.session() as session:
        user = await session.scalar(select(User).where(User.email == "fern@example.com"))
    assert user is not None and user.reason == "I draw ferns" and not user.approved


# ------------------------------------------------------------------------------ studio

async def test_changing_the_address_waits_for_the_new_address_to_confirm(
    mail_app: Starlette, mail_client: httpx.AsyncClient, mailbox: Mailbox, db: Database
) -> None:
    await fern(db, mail_app.state.easel.settings)
    assert (await sign_in(mail_client, "fern", PASSWORD)).status_code == 303
    page = await mail_client.get("/studio/account")
    assert page.status_code == 200 and "fern@example.com" in page.text
    token = csrf_of(page)
    wrong = await mail_client.post("/studio/account/email", data={
        "email": "new@example.com", "current_password": "not it", "authenticity_token": token})
    assert wrong.status_code == 422 and "Current password is invalid" in wrong.text
    bad = await mail_client.post("/studio/account/email", data={
        "email": "nope", "current_password": PASSWORD, "authenticity_token": token})
    assert bad.status_code == 422 and "Email is invalid" in bad.text
    no_csrf = await mail_client.post("/studio/account/email", data={
        "email": "new@example.com", "current_password": PASSWORD})
    assert no_csrf.status_code == 403

    asked = await mail_client.post("/studio/account/email", data={
        "email": "New@Example.com", "current_password": PASSWORD, "authenticity_token": token})
    assert asked.status_code == 200 and "new@example.com" in asked.text
    async with db.session() as session:
        user = await session.scalar(select(User).where(User.email == "fern@example.com"))
        assert user is not None and user.unconfirmed_email == "new@example.com"
    await deliver_mail(mail_app)
    assert "new@example.com" in body(mailbox.last_to("fern@example.com"))  # the old address is told
    link = link_in(mailbox.last_to("new@example.com"), "/auth/confirm")
    assert (await mail_client.get(link)).status_code == 200
    async with db.session() as session:
        user = await session.scalar(select(User).where(User.email == "new@example.com"))
        assert user is not None and user.unconfirmed_email is None
    mail_client.cookies.clear()
    assert (await sign_in(mail_client, "new@example.com", PASSWORD)).status_code == 303


async def test_an_address_taken_meanwhile_is_not_switched_to(
    mail_app: Starlette, mail_client: httpx.AsyncClient, mailbox: Mailbox, db: Database
) -> None:
    settings = mail_app.state.easel.settings
    await fern(db, settings)
    await sign_in(mail_client, "fern", PASSWORD)
    page = await mail_client.get("/studio/account")
    await mail_client.post("/studio/account/email", data={
        "email": "new@example.com", "current_password": PASSWORD, "authenticity_token": csrf_of(page)})
    async with db.session() as session:
        await create_user(session, settings, username="gale", email="new@example.com", password=PASSWORD)
    await deliver_mail(mail_app)
    response = await mail_client.get(link_in(mailbox.last_to("new@example.com"), "/auth/confirm"))
    assert response.status_code == 422 and "taken" in response.text
    async with db.session() as session:
        assert await session.scalar(select(User.id).where(User.email == "fern@example.com")) is not None


async def test_without_smtp_the_address_changes_at_once(
    client: httpx.AsyncClient, db: Database, settings: Settings, alice: User
) -> None:
    await sign_in(client, "alice", PASSWORD)
    page = await client.get("/studio/account")
    response = await client.post("/studio/account/email", data={
        "email": "alice@art.example", "current_password": PASSWORD, "authenticity_token": csrf_of(page)})
    assert response.status_code == 200 and "now alice@art.example" in response.text
    taken = await client.post("/studio/account/email", data={
        "email": "alice@art.example", "current_password": PASSWORD, "authenticity_token": csrf_of(page)})
    assert taken.status_code == 422 and "same as the current one" in taken.text


async def test_changing_the_password_needs_the_current_one_and_ends_other_access(
    client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    token = await make_token(db, alice)
    await sign_in(client, "alice", PASSWORD)
    other = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
    async with other:
        await sign_in(other, "alice", PASSWORD)
        assert (await other.get("/studio/account")).status_code == 200
        page = await client.get("/studio/account")
        form = {"current_password": PASSWORD, "password": "new and long enough",
                "password_confirmation": "new and long enough", "authenticity_token": csrf_of(page)}
        for changes, text in (({"current_password": "wrong"}, "Current password is invalid"),
                              ({"password_confirmation": "different"}, "doesn&#39;t match"),
                              ({"password": "short", "password_confirmation": "short"}, "too short")):
            refused = await client.post("/studio/account/password", data={**form, **changes})
            assert refused.status_code == 422 and text in refused.text, text
        async with authorized(client, token) as app:
            assert (await app.get("/api/v1/accounts/verify_credentials")).status_code == 200
        changed = await client.post("/studio/account/password", data=form)
        assert changed.status_code == 200 and "has been changed" in changed.text
        assert (await client.get("/studio/account")).status_code == 200  # this browser stays in
        assert (await other.get("/studio/account")).status_code == 303  # the other is out
        async with authorized(client, token) as app:
            assert (await app.get("/api/v1/accounts/verify_credentials")).status_code == 401
    async with db.session() as session:
        assert await session.scalar(select(func.count(OAuthToken.id)).where(
            OAuthToken.user_id == alice.id, OAuthToken.revoked_at.is_(None))) == 0


async def test_the_confirmation_link_can_be_sent_again_from_the_sign_in_page(
    mail_app: Starlette, mail_client: httpx.AsyncClient, mailbox: Mailbox, db: Database
) -> None:
    page = await mail_client.get("/auth/sign_up")
    await mail_client.post("/auth/sign_up", data={**FORM, "authenticity_token": csrf_of(page)})
    refused = await sign_in(mail_client, "fern", FORM["password"])
    assert refused.status_code == 403 and 'href="/auth/confirmation/new"' in refused.text
    form = await mail_client.get("/auth/confirmation/new")
    assert form.status_code == 200
    for address in ("FERN@example.com", "nobody@example.com", ""):
        answer = await mail_client.post("/auth/confirmation", data={
            "email": address, "authenticity_token": csrf_of(form)})
        assert answer.status_code == 200 and "on its way" in answer.text
    no_csrf = await mail_client.post("/auth/confirmation", data={"email": "fern@example.com"})
    assert no_csrf.status_code == 403
    await deliver_mail(mail_app)
    assert [m["To"] for m in mailbox.messages] == ["fern@example.com", "fern@example.com"]
    first, second = (link_in(m, "/auth/confirm") for m in mailbox.messages)
    assert (await mail_client.get(first)).status_code == 422
    assert (await mail_client.get(second)).status_code == 200
    # Confirmed: asking again sends nothing.
    await mail_client.post("/auth/confirmation", data={
        "email": "fern@example.com", "authenticity_token": csrf_of(form)})
    await deliver_mail(mail_app)
    assert len(mailbox.messages) == 2


async def test_without_smtp_there_is_nothing_to_confirm(client: httpx.AsyncClient) -> None:
    assert (await client.get("/auth/confirmation/new")).status_code == 404
