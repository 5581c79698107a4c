"""Forgotten passwords: the form mails a link (to a real SMTP server on loopback), the link
leads to a form that sets a new password once; every old token and login ends."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import func, select, update
from starlette.applications import Starlette

from server.db import Database
from server.ids import utcnow
from server.models import EmailToken, OutgoingMail, User
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import authorized, make_token
from tests.server.smtp import Mailbox, deliver_mail, link_in, mail_app, mail_client, mailbox
from tests.server.web.works import csrf_of

__all__ = ["mail_app", "mail_client", "mailbox"]  # fixtures

OLD = "correct horse battery"
NEW = "a brand new password"
TOKEN_FIELD = re.compile(r'name="token" value="([^"]+)"')


async def erin(db: Database, settings: Settings) -> User:
    async with db.session() as session:
        return await create_user(session, settings, username="erin", email="erin@example.com",
                                 password=OLD)


async def ask_for_link(http: httpx.AsyncClient, email: str) -> httpx.Response:
    form = await http.get("/auth/password/new")
    assert form.status_code == 200 and 'action="/auth/password"' in form.text
    return await http.post("/auth/password", data={"email": email, "authenticity_token": csrf_of(form)})


async def sign_in(http: httpx.AsyncClient, password: str) -> httpx.Response:
    form = await http.get("/auth/sign_in")
    return await http.post("/auth/sign_in", data={"login": "erin", "password": password,
                                                  "authenticity_token": csrf_of(form)})


async def test_the_mailed_link_sets_a_new_password_once_and_ends_old_logins(
    mail_app: Starlette, mail_client: httpx.AsyncClient, mailbox: Mailbox, db: Database
) -> None:
    user = await erin(db, mail_app.state.easel.settings)
    old_token = await make_token(db, user)
    assert (await sign_in(mail_client, OLD)).status_code == 303
    assert (await mail_client.get("/studio/account")).status_code == 200

    asked = await ask_for_link(mail_client, "Erin@Example.com")
    assert asked.status_code == 200 and "on its way" in asked.text
    assert await deliver_mail(mail_app) == 1
    message = mailbox.last_to("erin@example.com")
    assert "reset your password" in message["Subject"]
    link = link_in(message, "/auth/password/edit?token=")
    form = await mail_client.get(link)
    assert form.status_code == 200 and form.headers["cache-control"] == "no-store"
    token = TOKEN_FIELD.search(form.text)
    assert token is not None

    mismatch = await mail_client.post("/auth/password/edit", data={
        "token": token.group(1), "password": NEW, "password_confirmation": "something else",
        "authenticity_token": csrf_of(form)})
    assert mismatch.status_code == 422 and "doesn&#39;t match" in mismatch.text
    short = await mail_client.post("/auth/password/edit", data={
        "token": token.group(1), "password": "short", "password_confirmation": "short",
        "authenticity_token": csrf_of(form)})
    assert short.status_code == 422 and "too short" in short.text

    done = await mail_client.post("/auth/password/edit", data={
        "token": token.group(1), "password": NEW, "password_confirmation": NEW,
        "authenticity_token": csrf_of(form)})
    assert done.status_code == 200 and "has been changed" in done.text
    # The old browser login and the old app token are over; the link is used up.
    studio = await mail_client.get("/studio/account")
    assert studio.status_code == 303 and studio.headers["location"].startswith("/auth/sign_in")
    async with authorized(mail_client, old_token) as app:
        assert (await app.get("/api/v1/accounts/verify_credentials")).status_code == 401
    assert (await mail_client.get(link)).status_code == 422
    again = await mail_client.post("/auth/password/edit", data={
        "token": token.group(1), "password": "yet another one", "password_confirmation": "yet another one",
        "authenticity_token": csrf_of(form)})
    assert again.status_code == 422
    assert (await sign_in(mail_client, OLD)).status_code == 422
    assert (await sign_in(mail_client, NEW)).status_code == 303


async def test_an_unknown_address_gets_the_same_answer_and_no_mail(
    mail_app: Starlette, mail_client: httpx.AsyncClient, mailbox: Mailbox, db: Database
) -> None:
    await erin(db, mail_app.state.easel.settings)
    known = await ask_for_link(mail_client, "erin@example.com")
    unknown = await ask_for_link(mail_client, "nobody@example.com")
    blank = await ask_for_link(mail_client, "")
    assert known.status_code == unknown.status_code == blank.status_code == 200
    assert "on its way" in unknown.text and "on its way" in blank.text
    await deliver_mail(mail_app)
    assert [m["To"] for m in mailbox.messages] == ["erin@example.com"]


async def test_a_newer_link_replaces_the_older_and_links_expire(
    mail_app: Starlette, mail_client: httpx.AsyncClient, mailbox: Mailbox, db: Database
) -> None:
    await erin(db, mail_app.state.easel.settings)
    await ask_for_link(mail_client, "erin@example.com")
    await ask_for_link(mail_client, "erin@example.com")
    await deliver_mail(mail_app)
    first, second = (link_in(m, "/auth/password/edit") for m in mailbox.to("erin@example.com"))
    assert (await mail_client.get(first)).status_code == 422
    assert (await mail_client.get(second)).status_code == 200
    async with db.session() as session:
        await session.execute(update(EmailToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    expired = await mail_client.get(second)
    assert expired.status_code == 422 and "/auth/password/new" in expired.text


async def test_the_forms_refuse_without_csrf_and_bad_input_is_no_500(
    mail_app: Starlette, mail_client: httpx.AsyncClient, db: Database
) -> None:
    await erin(db, mail_app.state.easel.settings)
    assert (await mail_client.post("/auth/password", data={"email": "erin@example.com"})).status_code == 403
    assert (await mail_client.post("/auth/password/edit", data={
        "token": "x", "password": NEW, "password_confirmation": NEW})).status_code == 403
    form = await mail_client.get("/auth/password/new")
    for data in ({"email": "x" * 400}, {"email": ["a@b.c", "d@e.f"]}):
        response = await mail_client.post("/auth/password",
                                          data={**data, "authenticity_token": csrf_of(form)})
        assert response.status_code == 200
    for query in ("", "?token=", "?token=" + "y" * 300):
        assert (await mail_client.get("/auth/password/edit" + query)).status_code == 422
    bad = await mail_client.post("/auth/password/edit", data={
        "token": "z" * 300, "password": NEW, "password_confirmation": NEW,
        "authenticity_token": csrf_of(form)})
    assert bad.status_code in (400, 422)
    async with db.session() as session:
        assert await session.scalar(select(func.count(OutgoingMail.id))) == 0


async def test_without_smtp_there_is_no_reset_form(client: httpx.AsyncClient) -> None:
    page = await client.get("/auth/password/new")
    assert page.status_code == 404 and "administrator" in page.text
    sign_in_page = await client.get("/auth/sign_in")
    assert 'href="/auth/password/new"' in sign_in_page.text

