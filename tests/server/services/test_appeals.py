"""``server.services.appeals``: a person contests a moderator's warning, once, in time.

I expect an appeal of one's own warning to be kept pending with its text; a blank or
overlong text, someone else's warning, a second appeal and one past the 20-day window to
be refused storing nothing; approval to undo exactly what the warning's action did (when
it is still in place) and mark the warning overruled, rejection to leave it standing, the
person to be mailed either way when mail is on, and no appeal to be decided twice.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from server.db import Database
from server.ids import utcnow
from server.models import Account, AccountWarning, Appeal, OutgoingMail, User
from server.services import appeals, moderation
from server.services.errors import NotFound, ServiceError, ValidationFailed
from server.settings import Settings


async def warned(db: Database, settings: Settings, user: User, action: str) -> AccountWarning:
    async with db.session() as session:
        return await moderation.take_action(session, settings, moderator=None,
                                            account_id=user.account_id, action=action,
                                            text="Please credit the original artist")


async def account_of(db: Database, user: User) -> Account:
    async with db.session() as session:
        account = await session.get(Account, user.account_id)
        assert account is not None
        return account


async def appeal_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Appeal)) or 0)


async def test_an_appeal_is_kept_pending_and_shows_on_the_warning(
        db: Database, settings: Settings, alice: User) -> None:
    warning = await warned(db, settings, alice, "silence")
    async with db.session() as session:
        appeal = await appeals.file_appeal(session, await account_of(db, alice), warning.id,
                                           "  It was my own work, here is the sketch.  ")
        assert (appeal.state, appeal.text) == ("pending", "It was my own work, here is the sketch.")
        assert (await appeals.appeals_of(session, [warning.id]))[warning.id].id == appeal.id
        [(listed, of)] = await appeals.list_appeals(session)
        assert (listed.id, of.id) == (appeal.id, warning.id)


@pytest.mark.parametrize(("text", "message"), [
    ("   ", "Validation failed: Text can't be blank"),
    ("x" * 2001, "Validation failed: Text is too long (maximum is 2000 characters)"),
])
async def test_bad_text_is_refused(db: Database, settings: Settings, alice: User, text: str,
                                   message: str) -> None:
    warning = await warned(db, settings, alice, "none")
    with pytest.raises(ValidationFailed) as refused:
        async with db.session() as session:
            await appeals.file_appeal(session, await account_of(db, alice), warning.id, text)
    assert refused.value.message == message and await appeal_count(db) == 0


async def test_only_ones_own_warning_once_and_in_time(
        db: Database, settings: Settings, alice: User, bob: User) -> None:
    warning = await warned(db, settings, alice, "sensitive")
    with pytest.raises(NotFound):
        async with db.session() as session:
            await appeals.file_appeal(session, await account_of(db, bob), warning.id, "not mine")
    async with db.session() as session:
        await appeals.file_appeal(session, await account_of(db, alice), warning.id, "first")
    with pytest.raises(ValidationFailed, match="already been appealed"):
        async with db.session() as session:
            await appeals.file_appeal(session, await account_of(db, alice), warning.id, "again")
    old = await warned(db, settings, alice, "none")
    async with db.session() as session:
        await session.execute(update(AccountWarning).where(AccountWarning.id == old.id).values(
            created_at=utcnow() - timedelta(days=20, minutes=1)))
        await session.commit()
    with pytest.raises(ValidationFailed, match="can no longer be appealed"):
        async with db.session() as session:
            await appeals.file_appeal(session, await account_of(db, alice), old.id, "late")
    assert await appeal_count(db) == 1


@pytest.mark.parametrize("action", ["silence", "suspend", "sensitive", "disable"])
async def test_approval_undoes_the_action_and_overrules_the_warning(
        db: Database, settings: Settings, alice: User, bob: User, action: str) -> None:
    warning = await warned(db, settings, alice, action)
    moderator = await account_of(db, bob)
    async with db.session() as session:
        appeal = await appeals.file_appeal(session, await account_of(db, alice), warning.id, "why")
        decided = await appeals.approve_appeal(session, settings, moderator, appeal.id)
        assert decided.state == "approved" and decided.approved_by_account_id == moderator.id
    async with db.session() as session:
        account = await session.get(Account, alice.account_id)
        user = await session.get(User, alice.id)
        overruled = await session.get(AccountWarning, warning.id)
        assert account is not None and user is not None and overruled is not None
        assert (account.silenced_at, account.suspended_at, account.sensitized_at) == (None,) * 3
        assert user.disabled is False and overruled.overruled_at is not None
    with pytest.raises(ServiceError, match="already been decided"):
        async with db.session() as session:
            await appeals.reject_appeal(session, settings, moderator, appeal.id)


async def test_approval_leaves_alone_what_was_lifted_already(
        db: Database, settings: Settings, alice: User) -> None:
    warning = await warned(db, settings, alice, "silence")
    async with db.session() as session:
        await moderation.lift(session, alice.account_id, "unsilence")
        appeal = await appeals.file_appeal(session, await account_of(db, alice), warning.id, "why")
        await appeals.approve_appeal(session, settings, None, appeal.id)  # nothing to undo
        assert (await session.get(AccountWarning, warning.id)).overruled_at is not None  # type: ignore[union-attr]


async def test_rejection_leaves_the_decision_standing_and_the_person_is_mailed(
        db: Database, settings: Settings, alice: User) -> None:
    mailing = settings.with_changes(smtp_host="127.0.0.1", smtp_port=2525)
    assert mailing.mail_enabled
    warning = await warned(db, settings, alice, "silence")
    async with db.session() as session:
        appeal = await appeals.file_appeal(session, await account_of(db, alice), warning.id, "why")
        decided = await appeals.reject_appeal(session, mailing, None, appeal.id)
        assert decided.state == "rejected"
        account = await session.get(Account, alice.account_id)
        assert account is not None and account.silenced_at is not None
        [mail] = list(await session.scalars(select(OutgoingMail)))
        assert mail.to == "alice@example.com" and "rejected" in mail.subject
        assert "it stands" in mail.text
    with pytest.raises(NotFound):
        async with db.session() as session:
            await appeals.approve_appeal(session, settings, None, 123456)


async def test_an_appeal_of_a_purged_account_can_still_be_decided(
        db: Database, settings: Settings, alice: User) -> None:
    warning = await warned(db, settings, alice, "suspend")
    async with db.session() as session:
        appeal = await appeals.file_appeal(session, await account_of(db, alice), warning.id, "why")
        account = await session.get(Account, alice.account_id)
        assert account is not None
        account.delete_after = utcnow()
        await session.commit()
        assert await moderation.purge(session, alice.account_id)  # purged: the row a marker
        decided = await appeals.approve_appeal(session, settings.with_changes(
            smtp_host="127.0.0.1", smtp_port=2525), None, appeal.id)
        assert decided.state == "approved"  # nothing to undo, nobody to mail
        assert list(await session.scalars(select(OutgoingMail))) == []
        assert await appeals.list_appeals(session) == []


async def test_a_moderator_cannot_decide_their_own_appeal(
        db: Database, settings: Settings, alice: User, bob: User) -> None:
    warning = await warned(db, settings, alice, "silence")
    own = await account_of(db, alice)
    async with db.session() as session:
        appeal = await appeals.file_appeal(session, own, warning.id, "why")
        for decide in (appeals.approve_appeal, appeals.reject_appeal):
            with pytest.raises(ServiceError, match="for another moderator") as refused:
                await decide(session, settings, own, appeal.id)
            assert refused.value.status_code == 403
        assert (await session.get(Appeal, appeal.id)).state == "pending"  # type: ignore[union-attr]
        decided = await appeals.reject_appeal(session, settings, await account_of(db, bob),
                                              appeal.id)
        assert decided.state == "rejected"


async def test_pending_decided_and_all_are_listed_apart(
        db: Database, settings: Settings, alice: User) -> None:
    first = await warned(db, settings, alice, "none")
    second = await warned(db, settings, alice, "sensitive")
    async with db.session() as session:
        own = await account_of(db, alice)
        one = await appeals.file_appeal(session, own, first.id, "one")
        two = await appeals.file_appeal(session, own, second.id, "two")
        await appeals.reject_appeal(session, settings, None, one.id)
        ids = {which: [a.id for a, _ in await appeals.list_appeals(session, which)]
               for which in ("pending", "decided", "all")}
    assert ids == {"pending": [two.id], "decided": [one.id], "all": [two.id, one.id]}
