"""The studio's Standing page: the moderators' reasons, and deleting one's own account
with the password, then cancelling during the grace period."""

from __future__ import annotations

import httpx

from server.db import Database
from server.models import Account, User
from server.services import moderation
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

