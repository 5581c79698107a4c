"""The studio's Standing page: the moderators' reasons, appealing them (once, within the
window, even suspended), and deleting one's own account with the password, then
cancelling during the grace period."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from server.db import Database
from server.ids import utcnow
from server.models import Account, AccountWarning, Appeal, User
from server.services import appeals, moderation
from server.settings import Settings
from tests.server.web.works import csrf_of


async def standing_of(db: Database, user: User) -> Account:
    async with db.session() as session:
        account = await session.get(Account, user.account_id)
        assert account is not None
        return account


async def test_the_moderators_reasons_are_shown(
        alice_web: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    page = await alice_web.get("/studio/standing")
    assert page.status_code == 200 and "good standing" in page.text
    async with db.session() as session:
        await moderation.take_action(session, settings, moderator=None,
                                     account_id=alice.account_id, action="silence",
                                     text="Too many <b>ads</b>")
    page = await alice_web.get("/studio/standing")
    assert "Account limited" in page.text and "Too many &lt;b&gt;ads&lt;/b&gt;" in page.text


async def test_deleting_ones_account_needs_the_password_and_can_be_cancelled(
        alice_web: httpx.AsyncClient, db: Database, alice: User) -> None:
    page = await alice_web.get("/studio/standing")
    token = csrf_of(page)
    no_csrf = await alice_web.post("/studio/standing", data={"action": "delete",
                                                             "password": "correct horse battery"})
    assert no_csrf.status_code == 403
    wrong = await alice_web.post("/studio/standing", data={
        "authenticity_token": token, "action": "delete", "password": "a guess"})
    assert wrong.status_code == 422 and "not your password" in wrong.text
    assert (await standing_of(db, alice)).suspended_at is None
    unknown = await alice_web.post("/studio/standing", data={
        "authenticity_token": token, "action": "explode"})
    assert unknown.status_code == 422
    nothing = await alice_web.post("/studio/standing", data={
        "authenticity_token": token, "action": "cancel"})
    assert nothing.status_code == 422 and "no deletion to cancel" in nothing.text

    deleted = await alice_web.post("/studio/standing", data={
        "authenticity_token": token, "action": "delete", "password": "correct horse battery"})
    assert deleted.status_code == 303
    account = await standing_of(db, alice)
    assert account.suspended_at is not None and account.delete_after is not None
    assert (await alice_web.get("/studio")).status_code == 403  # only Standing is reachable
    page = await alice_web.get("/studio/standing")
    assert page.status_code == 200 and "Cancel the deletion" in page.text

    cancelled = await alice_web.post("/studio/standing", data={
        "authenticity_token": csrf_of(page), "action": "cancel"})
    assert cancelled.status_code == 303
    account = await standing_of(db, alice)
    assert account.suspended_at is None and account.delete_after is None
    assert (await alice_web.get("/studio")).status_code == 200


async def test_cancelling_a_deletion_keeps_a_moderators_suspension(
        alice_web: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    async with db.session() as session:
        await moderation.take_action(session, settings, moderator=None,
                                     account_id=alice.account_id, action="suspend",
                                     text="fraud")
    page = await alice_web.get("/studio/standing")
    assert page.status_code == 200 and "suspended by the moderators" in page.text
    deleted = await alice_web.post("/studio/standing", data={
        "authenticity_token": csrf_of(page), "action": "delete",
        "password": "correct horse battery"})
    assert deleted.status_code == 303
    page = await alice_web.get("/studio/standing")
    cancelled = await alice_web.post("/studio/standing", data={
        "authenticity_token": csrf_of(page), "action": "cancel"})
    assert cancelled.status_code == 303
    account = await standing_of(db, alice)
    assert account.delete_after is None and account.suspended_at is not None
    assert (await alice_web.get("/studio")).status_code == 403



# ------------------------------------------------------------------------------ appeals

async def warned(db: Database, settings: Settings, user: User, action: str = "silence",
                 text: str = "Too many ads") -> AccountWarning:
    async with db.session() as session:
        return await moderation.take_action(session, settings, moderator=None,
                                            account_id=user.account_id, action=action, text=text)


async def appeals_of(db: Database, warning: AccountWarning) -> list[Appeal]:
    async with db.session() as session:
        return list(await session.scalars(
            select(Appeal).where(Appeal.account_warning_id == warning.id)))


async def appeal(browser: httpx.AsyncClient, warning_id: object, text: str) -> httpx.Response:
    page = await browser.get("/studio/standing")
    return await browser.post("/studio/standing", data={
        "authenticity_token": csrf_of(page), "action": "appeal",
        "warning_id": str(warning_id), "text": text})


async def test_a_decision_is_appealed_once_with_a_text(
        alice_web: httpx.AsyncClient, db: Database, settings: Settings, alice: User,
        bob: User) -> None:
    warning = await warned(db, settings, alice)
    page = await alice_web.get("/studio/standing")
    assert f'name="warning_id" value="{warning.id}"' in page.text
    assert 'name="text"' in page.text and 'maxlength="2000" required' in page.text

    no_csrf = await alice_web.post("/studio/standing", data={
        "action": "appeal", "warning_id": str(warning.id), "text": "I only post art"})
    assert no_csrf.status_code == 403
    blank = await appeal(alice_web, warning.id, "   ")
    assert blank.status_code == 422 and "Text can&#39;t be blank" in blank.text
    assert 'role="alert"' in blank.text
    too_long = await appeal(alice_web, warning.id, "x" * 2001)
    assert too_long.status_code == 422 and "too long" in too_long.text
    assert "x" * 2001 + "</textarea>" in too_long.text  # what was typed is kept
    assert await appeals_of(db, warning) == []

    bobs = await warned(db, settings, bob)
    for forged in (bobs.id, "nope", ""):  # someone else's warning, or no warning at all
        assert (await appeal(alice_web, forged, "Mine now")).status_code == 404
    assert await appeals_of(db, bobs) == []

    sent = await appeal(alice_web, warning.id, "  I only post <b>my</b> art  ")
    assert sent.status_code == 303 and sent.headers["location"] == "/studio/standing"
    (filed,) = await appeals_of(db, warning)
    assert (filed.text, filed.account_id, filed.state) == ("I only post <b>my</b> art",
                                                            alice.account_id, "pending")
    page = await alice_web.get("/studio/standing")
    assert "Appeal pending" in page.text
    assert f'name="warning_id" value="{warning.id}"' not in page.text  # no second form
    again = await appeal(alice_web, warning.id, "Please")
    assert again.status_code == 422 and "already been appealed" in again.text
    assert len(await appeals_of(db, warning)) == 1


async def test_a_suspended_account_appeals_and_sees_the_outcome(
        alice_web: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    warning = await warned(db, settings, alice, action="suspend", text="fraud")
    assert (await alice_web.get("/studio")).status_code == 403
    page = await alice_web.get("/studio/standing")
    assert page.status_code == 200 and f'name="warning_id" value="{warning.id}"' in page.text
    sent = await appeal(alice_web, warning.id, "It was a misunderstanding")
    assert sent.status_code == 303
    (filed,) = await appeals_of(db, warning)
    assert filed.state == "pending"

    async with db.session() as session:
        await appeals.approve_appeal(session, settings, None, filed.id)
    assert (await standing_of(db, alice)).suspended_at is None
    page = await alice_web.get("/studio/standing")
    assert "Appeal approved — overruled on " + utcnow().strftime("%Y-%m-%d") in page.text
    assert "good standing" in page.text


async def test_a_rejected_appeal_is_shown_as_such(
        alice_web: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    warning = await warned(db, settings, alice)
    assert (await appeal(alice_web, warning.id, "Please")).status_code == 303
    (filed,) = await appeals_of(db, warning)
    async with db.session() as session:
        await appeals.reject_appeal(session, settings, None, filed.id)
    page = await alice_web.get("/studio/standing")
    assert "Appeal rejected" in page.text and "limited by the moderators" in page.text


async def test_past_the_window_a_decision_cannot_be_appealed(
        alice_web: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    old = await warned(db, settings, alice, action="none", text="Be nice")
    async with db.session() as session:
        await session.execute(update(AccountWarning).where(AccountWarning.id == old.id).values(
            created_at=utcnow() - appeals.APPEAL_WINDOW - timedelta(minutes=1)))
        await session.commit()
    page = await alice_web.get("/studio/standing")
    assert f'name="warning_id" value="{old.id}"' not in page.text
    assert "appeals are open for 20 days" in page.text
    forged = await appeal(alice_web, old.id, "Let me")
    assert forged.status_code == 422 and "can no longer be appealed" in forged.text
    assert await appeals_of(db, old) == []


async def test_a_disabled_login_signs_in_to_its_standing_page_only_and_appeals(
        client: httpx.AsyncClient, db: Database, settings: Settings, alice: User) -> None:
    warning = await warned(db, settings, alice, action="disable", text="Spam")
    async with httpx.AsyncClient(transport=client._transport, base_url=client.base_url) as web:
        form = await web.get("/auth/sign_in")
        signed = await web.post("/auth/sign_in", data={
            "authenticity_token": csrf_of(form), "login": "alice",
            "password": "correct horse battery", "next": "/studio"})
        assert signed.status_code == 303 and signed.headers["location"] == "/studio/standing"
        page = await web.get("/studio/standing")
        assert page.status_code == 200 and "Spam" in page.text
        assert (await appeal(web, warning.id, "My account was hacked")).status_code == 303
        studio = await web.get("/studio")  # everywhere else: signed out
        assert studio.status_code in (302, 303) and "/auth/sign_in" in studio.headers["location"]
        registered = (await web.post("/api/v1/apps", json={
            "client_name": "Ivory", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
            "scopes": "read"})).json()
        consent = await web.get("/oauth/authorize", params={
            "client_id": registered["client_id"], "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
            "response_type": "code", "scope": "read"})
        assert 'name="password"' in consent.text  # asked to sign in: no consent, no token
        wrong = await web.post("/auth/sign_in", data={
            "authenticity_token": csrf_of(await web.get("/auth/sign_in")), "login": "alice",
            "password": "not the password"})
        assert wrong.status_code == 422  # the password still decides
    (filed,) = await appeals_of(db, warning)
    async with db.session() as session:
        await appeals.approve_appeal(session, settings, None, filed.id)
        user = await session.get(User, alice.id)
        assert user is not None and user.disabled is False  # enabled again
