"""Moderators' actions on accounts, and the end of an account: warn, mark sensitive,
disable, silence, suspend (and their lifting), approve or reject a sign-up, and delete.

Why it exists: one place decides what each action does to an account's standing, leaves
the warning the affected person reads (``AccountWarning``), resolves the report it
answers, and schedules the purge of a deleted account's data. The effects themselves are
read elsewhere from the standing columns: ``suspended_at`` makes tokens useless
(``server.api.auth``), statuses invisible (``server.services.visibility``) and the actor
a bare document; ``silenced_at`` keeps statuses out of public timelines for
non-followers (``server.services.timelines``). Suspending a *remote* account also removes
its follows with local accounts both ways (nothing is sent), and the inbox rejects its
activities (``federation.inbox.processing``). A warned local user is told by mail and by a
``moderation_warning`` notification (when the moderator asks for the notification).

Deletion follows Mastodon: the account is suspended at once; its data are purged by the
``purge_account`` job when ``delete_after`` comes (at once for a moderator's deletion,
after ``EASEL_ACCOUNT_DELETION_GRACE_DAYS`` for the person's own, which they may cancel
until then). The purge sends ``Delete`` of the actor to every known inbox (through the
outbox) and keeps the row, so its username and uri are never reused.

What it must never do: import ``federation`` (activities are recorded in the outbox),
act on the instance actor, or purge an account whose deletion was cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import (
    Account,
    AccountNote,
    AccountWarning,
    ConversationMute,
    Favourite,
    OAuthToken,
    Report,
    Status,
    User,
)
from server.queue.jobs import enqueue
from server.queue.kinds import job_kind
from server.services import follows, statuses, user_ips
from server.services.domain_blocks import DOMAIN_SUSPENSION
from server.services.errors import NotFound, ServiceError, ValidationFailed
from server.services.notifications import notify_moderation_warning
from server.services.outbox import record_activity
from server.services.passwords import verify_password
from server.settings import Settings

if TYPE_CHECKING:
    from server.queue.runner import JobContext

log = logging.getLogger(__name__)

# The Admin API's action types (POST /api/v1/admin/accounts/:id/action).
ACTION_TYPES = ("none", "sensitive", "disable", "silence", "suspend")
# v2 ``status`` filter values (v1 has one boolean parameter for each).
ACCOUNT_STATES = ("active", "pending", "disabled", "silenced", "suspended")
PURGE_JOB = "purge_account"
MAX_WARNING_TEXT = 5000
NOT_ALLOWED = "This action is not allowed"


def is_suspended(account: Account) -> bool:
    return account.suspended_at is not None


# ------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class AccountFilter:
    """What the admin account lists filter on (v1 and v2 parameters map onto it)."""

    origin: str | None = None           # "local" / "remote"
    state: str | None = None            # one of ACCOUNT_STATES
    by_domain: str | None = None
    username: str | None = None
    display_name: str | None = None
    email: str | None = None
    staff: bool = False
    sensitized: bool = False
    ip: str | None = None               # an address or a CIDR network the login was used from


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")


def accounts_query(wanted: AccountFilter) -> Select[Any]:
    """``(Account, User | None)`` rows matching ``wanted``; never the instance actor or a
    purged account. ValidationFailed when ``wanted.ip`` is not an address or network."""
    query: Select[Any] = (
        select(Account, User).outerjoin(User, User.account_id == Account.id)  # type: ignore[assignment]
        .where(Account.actor_type != "Application", Account.deleted_at.is_(None)))
    if wanted.origin == "local":
        query = query.where(Account.domain == "")
    elif wanted.origin == "remote":
        query = query.where(Account.domain != "")
    if wanted.by_domain:
        query = query.where(func.lower(Account.domain) == wanted.by_domain.strip().lower())
    if wanted.username:
        query = query.where(_contains(Account.username, wanted.username))
    if wanted.display_name:
        query = query.where(_contains(Account.display_name, wanted.display_name))
    if wanted.email:
        query = query.where(_contains(User.email, wanted.email))
    if wanted.staff:
        query = query.where(User.admin.is_(True))
    if wanted.sensitized:
        query = query.where(Account.sensitized_at.is_not(None))
    if wanted.ip:
        query = query.where(User.id.in_(user_ips.users_in(wanted.ip)))
    state = wanted.state
    if state == "active":
        query = query.where(Account.suspended_at.is_(None), or_(
            User.id.is_(None), and_(User.approved.is_(True), User.disabled.is_(False))))
    elif state == "pending":
        query = query.where(User.approved.is_(False), Account.suspended_at.is_(None))
    elif state == "disabled":
        query = query.where(User.disabled.is_(True))
    elif state == "silenced":
        query = query.where(Account.silenced_at.is_not(None))
    elif state == "suspended":
        query = query.where(Account.suspended_at.is_not(None))
    return query


async def account_with_user(session: AsyncSession, account_id: int) -> tuple[Account, User | None]:
    """The account (not the instance actor, not purged) and its login, or NotFound."""
    row = (await session.execute(
        select(Account, User).outerjoin(User, User.account_id == Account.id)
        .where(Account.id == account_id, Account.actor_type != "Application",
               Account.deleted_at.is_(None)))).first()
    if row is None:
        raise NotFound("Record not found")
    return row[0], row[1]


async def warnings_for(session: AsyncSession, account: Account,
                       limit: int = 40) -> Sequence[AccountWarning]:
    """The warnings ``account`` received, newest first: what the person is shown."""
    return list(await session.scalars(
        select(AccountWarning).where(AccountWarning.target_account_id == account.id)
        .order_by(AccountWarning.id.desc()).limit(limit)))


# ------------------------------------------------------------------------- actions

async def take_action(session: AsyncSession, settings: Settings, *, moderator: Account | None,
                      account_id: int, action: str, text: str = "",
                      report_id: int | None = None, notify_by_email: bool = True) -> AccountWarning:
    """Carry out a moderator's ``action`` on an account, leave the warning, resolve the
    report it answers (or, for any action but ``none``, every open report on the
    account), and commit. Mastodon's Admin::AccountAction."""
    if action not in ACTION_TYPES:
        raise ValidationFailed("Type is not included in the list")
    if len(text) > MAX_WARNING_TEXT:
        raise ValidationFailed(f"Text is too long (maximum is {MAX_WARNING_TEXT} characters)")
    account, user = await account_with_user(session, account_id)
    report: Report | None = None
    if report_id is not None:
        report = await session.scalar(select(Report).where(
            Report.id == report_id, Report.target_account_id == account.id))
        if report is None:
            raise NotFound("Record not found")
    now = utcnow()
    if action == "sensitive":
        account.sensitized_at = account.sensitized_at or now
    elif action == "disable":
        if user is not None:  # a remote account has no login to disable (Mastodon: no-op)
            user.disabled = True
    elif action == "silence":
        account.silenced_at = account.silenced_at or now
    elif action == "suspend":
        await _suspend(session, account, now)
    warning = AccountWarning(account_id=moderator.id if moderator else None,
                             target_account_id=account.id, action=action, text=text,
                             report_id=report_id)
    session.add(warning)
    reports = select(Report.id).where(Report.id == report_id) if report is not None else (
        select(Report.id).where(Report.target_account_id == account.id,
                                Report.action_taken_at.is_(None)) if action != "none" else None)
    if reports is not None:
        await session.execute(update(Report).where(Report.id.in_(reports)).values(
            action_taken_at=now, action_taken_by_account_id=moderator.id if moderator else None,
            updated_at=now).execution_options(synchronize_session=False))
    if notify_by_email and user is not None and account.is_local:
        await _mail_warning(session, settings, user, action, text)
        await session.flush()  # the warning's id, for the notification
        await notify_moderation_warning(session, account, warning.id)
    await session.commit()
    return warning


async def _mail_warning(session: AsyncSession, settings: Settings, user: User, action: str,
                        text: str) -> None:
    from server.mail import queue_mail  # server.mail is a job module: load it on use

    what = {"none": "a warning", "sensitive": "your media marked as sensitive",
            "disable": "your login disabled", "silence": "your account limited",
            "suspend": "your account suspended"}[action]
    body = f"The moderators of {settings.title} have taken an action on your account: {what}."
    if text:
        body += f"\n\nTheir reason:\n\n{text}"
    await queue_mail(session, settings, to=user.email,
                     subject=f"{settings.title}: a moderation action on your account", text=body)


async def _suspend(session: AsyncSession, account: Account, now: Any, *,
                   origin: str = "local") -> None:
    """Suspend (``origin``: "local" for a moderator, "deletion" for the person's own
    deletion, which its cancelling lifts); an existing suspension is kept as it is."""
    if not account.is_local and origin == "local" \
            and account.suspension_origin in ("remote", DOMAIN_SUSPENSION):
        # Suspended by its own server, or with its domain, already: ours now too, which
        # that server's lifting (``federation.actors``) or the domain's unblocking does
        # not undo.
        account.suspension_origin = "local"
        await _cut_local_follows(session, account)
        return
    if account.suspended_at is not None:
        return
    account.suspended_at, account.suspension_origin = now, origin
    if not account.is_local:
        await _cut_local_follows(session, account)
        return
    # Followers' servers hear of it as Mastodon tells them: an Update of the actor, whose
    # document now says "suspended" (and nothing else of the profile).
    await record_activity(session, account, "Update", object_uri=account.uri,
                          object_type="Person")


async def _cut_local_follows(session: AsyncSession, account: Account) -> None:
    """A remote account our moderators suspend no longer follows local accounts, nor they
    it (requests too; its server hears nothing, as with a suspended domain): it must not
    keep receiving what local accounts post for their followers. Not restored by lifting."""
    await follows.sever_all(session, account, local_only=True)


async def lift(session: AsyncSession, account_id: int, what: str) -> tuple[Account, User | None]:
    """Undo a standing: ``unsilence``, ``unsuspend``, ``unsensitive`` or ``enable``;
    committed. Lifting what is not in place is Mastodon's 403."""
    account, user = await account_with_user(session, account_id)
    if not await _lift(session, account, user, what):
        raise ServiceError(NOT_ALLOWED, 403)
    await session.commit()
    return account, user


async def _lift(session: AsyncSession, account: Account, user: User | None, what: str) -> bool:
    """Undo one standing (not committed); False when it is not in place."""
    if what == "unsilence":
        if account.silenced_at is None:
            return False
        account.silenced_at = None
    elif what == "unsensitive":
        if account.sensitized_at is None:
            return False
        account.sensitized_at = None
    elif what == "enable":
        if user is None or not user.disabled:
            return False
        user.disabled = False
    elif what == "unsuspend":
        if account.suspended_at is None:
            return False
        account.suspended_at = account.suspension_origin = None
        account.delete_after = None  # a deletion waiting for its grace is cancelled too
        await record_activity(session, account, "Update", object_uri=account.uri,
                              object_type="Person")
    else:
        raise ValueError(what)
    return True


# What undoes each action (an approved appeal): "none" and "delete" leave nothing to undo.
UNDOING = {"sensitive": "unsensitive", "disable": "enable", "silence": "unsilence",
           "suspend": "unsuspend"}


async def overrule(session: AsyncSession, warning: AccountWarning) -> None:
    """Undo what ``warning``'s action did, where it is still in place, and mark the
    warning overruled (an appeal approved); not committed."""
    what = UNDOING.get(warning.action)
    if what is not None:
        try:
            account, user = await account_with_user(session, warning.target_account_id)
        except NotFound:  # purged meanwhile: nothing left to undo
            pass
        else:
            await _lift(session, account, user, what)
    warning.overruled_at = utcnow()


async def approve(session: AsyncSession, settings: Settings,
                  account_id: int) -> tuple[Account, User | None]:
    """Approve a pending sign-up (403 when it is not pending); the person is told by mail
    when SMTP is configured. Committed."""
    from server.services.registrations import mail_decision

    account, user = await account_with_user(session, account_id)
    if user is None or user.approved:
        raise ServiceError(NOT_ALLOWED, 403)
    user.approved = True
    await mail_decision(session, settings, user, approved=True)
    await session.commit()
    return account, user


async def reject(session: AsyncSession, settings: Settings, account_id: int) -> Account:
    """Reject a pending sign-up: the login and its account are deleted (nothing of it ever
    federated), and the person is told by mail when SMTP is configured; committed. 403 when
    it is not pending."""
    from server.services.registrations import mail_decision

    account, user = await account_with_user(session, account_id)
    if user is None or user.approved:
        raise ServiceError(NOT_ALLOWED, 403)
    await mail_decision(session, settings, user, approved=False)
    await session.delete(user)
    await session.flush()
    await session.delete(account)
    await session.commit()
    return account


# ------------------------------------------------------------------------- deletion

async def remove_what_it_did(session: AsyncSession, account: Account) -> tuple[int, int, int]:
    """Cut every follow of ``account``, undo its favourites and delete its statuses (boosts
    first: their originals may be among its own), keeping others' counters right — for a
    purged local account and a remote one its server deleted; its muted threads and the
    notes by or about it go too. Commits along the way (the services do). (relations,
    favourites, statuses) removed."""
    relations = await follows.sever_all(session, account)
    await session.commit()
    liked = list(await session.scalars(
        select(Favourite.status_id).where(Favourite.account_id == account.id)))
    for status_id in liked:
        await statuses.unfavourite(session, account, status_id)
    own = list(await session.scalars(select(Status).where(Status.account_id == account.id)
                                     .order_by(Status.reblog_of_id.is_(None), Status.id.desc())))
    for status in own:
        await statuses.delete_status(session, status)
    # Its private marks (threads it muted, its notes on accounts) and notes about it.
    await session.execute(delete(ConversationMute).where(ConversationMute.account_id == account.id))
    await session.execute(delete(AccountNote).where(or_(
        AccountNote.account_id == account.id, AccountNote.target_account_id == account.id)))
    await session.commit()
    return relations, len(liked), len(own)


async def delete_by_moderator(session: AsyncSession, account_id: int) -> tuple[Account, User | None]:
    """Mastodon's ``DELETE /api/v1/admin/accounts/:id``: only a suspended account's data
    may be deleted (403 otherwise); the purge is queued at once. Committed."""
    account, user = await account_with_user(session, account_id)
    if account.suspended_at is None:
        raise ServiceError(NOT_ALLOWED, 403)
    await schedule_purge(session, account, timedelta(0))
    await session.commit()
    return account, user


async def request_deletion(session: AsyncSession, settings: Settings, user: User,
                           password: str) -> Account:
    """The person deletes their own account: with their password, the account is
    suspended at once (tokens revoked) and purged after the grace period unless they
    cancel. Committed."""
    if not verify_password(user.password_hash, password):
        raise ServiceError("The password is not right", 403)
    account = await session.get(Account, user.account_id)
    if account is None:
        raise NotFound("Record not found")
    await _suspend(session, account, utcnow(), origin="deletion")
    await session.execute(update(OAuthToken).where(
        OAuthToken.user_id == user.id, OAuthToken.revoked_at.is_(None)).values(
        revoked_at=utcnow()).execution_options(synchronize_session=False))
    await schedule_purge(session, account, timedelta(days=settings.account_deletion_grace_days))
    await session.commit()
    return account


async def cancel_deletion(session: AsyncSession, user: User) -> Account:
    """Cancel one's own deletion during the grace period: the suspension it made is
    lifted (a moderator's stays). 403 when there is none to cancel. Committed."""
    account = await session.get(Account, user.account_id)
    if account is None or account.delete_after is None or account.deleted_at is not None:
        raise ServiceError(NOT_ALLOWED, 403)
    account.delete_after = None
    if account.suspension_origin == "deletion":
        account.suspended_at = account.suspension_origin = None
        await record_activity(session, account, "Update", object_uri=account.uri,
                              object_type="Person")
    await session.commit()
    return account


async def schedule_purge(session: AsyncSession, account: Account, grace: timedelta) -> None:
    from server.queue.kinds import kind_named

    account.delete_after = utcnow() + grace
    await session.flush()
    # One job per request (``<id>@<time>``): a deletion cancelled and asked again is a new
    # job, and the old one, if still waiting, finds nothing due when it runs.
    await enqueue(session, kind_named(PURGE_JOB),
                  f"{account.id}@{int(account.delete_after.timestamp() * 1_000_000)}", delay=grace)


async def purge(session: AsyncSession, account_id: int, *, now: datetime | None = None) -> bool:
    """Purge a local account whose ``delete_after`` has come by ``now``: ``Delete`` of the
    actor to every known inbox, then its follows, favourites, statuses, login and profile
    go; the row stays as a marker (``deleted_at``). Idempotent; False when nothing was due
    (never asked, cancelled, or asked again for later)."""
    account = await session.get(Account, account_id)
    if (account is None or account.deleted_at is not None or account.delete_after is None
            or account.delete_after > (now or utcnow()) or account.actor_type == "Application"):
        return False
    if account.is_local:
        await record_activity(session, account, "Delete", object_uri=account.uri,
                              object_type="Person")
        await session.commit()
    relations, liked, own = await remove_what_it_did(session, account)
    await session.execute(delete(User).where(User.account_id == account_id)
                          .execution_options(synchronize_session=False))
    account = await session.get(Account, account_id, populate_existing=True)
    assert account is not None
    account.display_name = ""
    account.note = ""
    account.fields = []
    account.avatar_key = account.header_key = None
    account.avatar_remote_url = account.header_remote_url = None
    account.suspended_at = account.suspended_at or utcnow()
    account.deleted_at = utcnow()
    await session.commit()
    log.info("account %s purged (%d relations, %d favourites, %d statuses)",
             account_id, relations, liked, own)
    return True


@job_kind(PURGE_JOB, queue="default", max_attempts=5, retry_base=timedelta(minutes=5))
async def purge_account_job(context: JobContext) -> None:
    """Purge the account named by the ref when its deletion is due (a cancelled or
    rescheduled deletion leaves it alone)."""
    account_id, _, _stamp = context.job.ref.partition("@")
    if not account_id.isdigit():
        log.warning("%s: malformed ref %r", PURGE_JOB, context.job.ref)
        return
    # The job's due time is the clock: a deletion asked again for later is not yet due.
    await purge(context.session, int(account_id), now=max(utcnow(), context.job.next_try_at))
