"""Reports: a user tells the moderators about an account (and some of its statuses).

Why it exists: ``POST /api/v1/reports`` and an inbound ``Flag`` both end in a
:class:`~server.models.Report` row, by the rules Mastodon 4.2 applies (``ReportService``):
the statuses must be the target's and visible to the reporter, a local comment is at most
1,000 characters, the category is one of four; the instance rules it cites (``rule_ids``)
must exist, and citing any makes it a "violation" report. The admins are told of a report
(``admin.report``) unless its account already has an open one. A report about a remote
account may be forwarded to its server: that is a ``Flag`` by the instance actor (so the
reporter stays anonymous), recorded here with :func:`server.services.outbox.record_activity`
and sent by federation after the commit.

Moderators then handle reports here too (the admin API and ``easel admin reports`` are
thin over it): assign one to themselves or unassign it, resolve (``action_taken_at`` and who
took it) or reopen it, change its category and the rules it cites, and keep notes on it
(``report_notes``).

What it must never do: import ``federation``, forward a report about a local account, name
the reporter in anything that leaves the server, or store anything for invalid input.
Who may handle reports (admins) is the caller's check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import Account, InstanceRule, Report, ReportNote, Status, StatusAlias
from server.services.accounts import find_account, instance_actor
from server.services.errors import NotFound, ValidationFailed, get_or_404
from server.services.notifications import notify_staff
from server.services.outbox import record_activity
from server.services.visibility import visible_to
from server.settings import Settings

CATEGORIES = ("spam", "legal", "violation", "other")
DEFAULT_CATEGORY = "other"
VIOLATION = "violation"  # the category of a report that cites rules
MAX_COMMENT_LENGTH = 1000  # Mastodon's Report validation, for local reports
MAX_STATUSES = 100         # statuses one report may name
MAX_RULES = 100            # rules one report may cite


async def _current_ids(session: AsyncSession, status_ids: Sequence[int]) -> list[int]:
    """Ids as they are now (a status published after its media were ready was renumbered;
    its old id still names it), in order, each once."""
    aliases = dict((await session.execute(
        select(StatusAlias.old_id, StatusAlias.status_id)
        .where(StatusAlias.old_id.in_(set(status_ids))))).all()) if status_ids else {}
    result: list[int] = []
    for status_id in status_ids:
        current = aliases.get(status_id, status_id)
        if current not in result:
            result.append(current)
    return result


async def _reported_statuses(session: AsyncSession, reporter: Account, target: Account,
                             status_ids: Sequence[int]) -> list[int]:
    """The target's statuses among ``status_ids`` that the reporter may see; NotFound if
    any is not (as Mastodon's ``find``)."""
    ids = await _current_ids(session, status_ids)
    if not ids:
        return []
    found = set(await session.scalars(select(Status.id).where(
        Status.id.in_(ids), Status.account_id == target.id, visible_to(reporter))))
    if len(found) != len(ids):
        raise NotFound("Record not found")
    return ids


async def _rules(session: AsyncSession, rule_ids: Sequence[int]) -> list[int] | None:
    """``rule_ids`` once each, in order, all of them rules of this instance (else
    ValidationFailed, as Mastodon); None for none."""
    ids = list(dict.fromkeys(rule_ids))
    if not ids:
        return None
    found = set(await session.scalars(select(InstanceRule.id).where(InstanceRule.id.in_(ids))))
    if len(found) != len(ids):
        raise ValidationFailed("Rule ids do not reference valid rules")
    return ids


def _category(category: str | None) -> str:
    if category is None or not category.strip():
        return DEFAULT_CATEGORY
    value = category.strip().lower()
    if value not in CATEGORIES:
        raise ValidationFailed(f"Category must be one of {', '.join(CATEGORIES)}")
    return value


async def create_report(
    session: AsyncSession, settings: Settings, reporter: Account, target_id: int, *,
    status_ids: Sequence[int] = (), comment: str = "", category: str | None = None,
    rule_ids: Sequence[int] = (), forward: bool = False,
) -> Report:
    """``reporter`` reports the account ``target_id``; committed.

    NotFound when the account (or a status) is unknown or not visible; ValidationFailed for
    a report about oneself, an overlong comment, an unknown category, too many statuses or
    a rule that is not one of this instance's. Citing rules makes the category
    "violation", whatever was asked (as Mastodon).
    With ``forward`` and a remote target, a ``Flag`` by the instance actor goes to the
    target's server (``forwarded`` says so).
    """
    target = await find_account(session, target_id)
    if target.id == reporter.id:
        raise ValidationFailed("You cannot report yourself")
    if len(comment) > MAX_COMMENT_LENGTH:
        raise ValidationFailed(f"Comment is too long (maximum is {MAX_COMMENT_LENGTH} characters)")
    if len(status_ids) > MAX_STATUSES:
        raise ValidationFailed(f"A report may name at most {MAX_STATUSES} statuses")
    chosen_category = _category(category)
    if len(rule_ids) > MAX_RULES:
        raise ValidationFailed(f"A report may cite at most {MAX_RULES} rules")
    rules = await _rules(session, rule_ids)
    if rules is not None:
        chosen_category = VIOLATION
    statuses = await _reported_statuses(session, reporter, target, status_ids)
    forwarded = bool(forward) and not target.is_local
    report = Report(account_id=reporter.id, target_account_id=target.id, status_ids=statuses,
                    comment=comment, category=chosen_category, rule_ids=rules,
                    forwarded=forwarded)
    session.add(report)
    await session.flush()
    await _tell_moderators(session, report, reporter)
    if forwarded:
        actor = await instance_actor(session, settings)
        await record_activity(session, actor, "Flag", object_uri=target.uri,
                              object_type="Account", report_id=report.id)
    await session.commit()
    return report


async def record_remote_report(
    session: AsyncSession, reporter: Account, target: Account, *, uri: str,
    status_ids: Sequence[int] = (), comment: str = "",
) -> Report | None:
    """A report received from another server (a ``Flag``), about local ``target``, by
    remote ``reporter`` (usually its instance actor), in the caller's transaction (not
    committed). ``uri`` (the activity's id) is unique: a report already recorded under it
    returns None. ``status_ids`` are kept only when they are ``target``'s."""
    if await session.scalar(select(Report.id).where(Report.uri == uri)) is not None:
        return None
    ids = list(dict.fromkeys(status_ids))
    owned = set(await session.scalars(select(Status.id).where(
        Status.id.in_(ids), Status.account_id == target.id))) if ids else set()
    report = Report(uri=uri, account_id=reporter.id, target_account_id=target.id,
                    status_ids=[i for i in ids if i in owned], comment=comment,
                    category=DEFAULT_CATEGORY, forwarded=False)
    session.add(report)
    await session.flush()
    await _tell_moderators(session, report, reporter)
    return report


async def _tell_moderators(session: AsyncSession, report: Report, reporter: Account) -> None:
    """An ``admin.report`` notification to the admins, unless the account already has an
    open report (as Mastodon: one pile of reports is one thing to look at)."""
    sibling = await session.scalar(select(Report.id).where(
        Report.target_account_id == report.target_account_id, Report.id != report.id,
        Report.action_taken_at.is_(None)).limit(1))
    if sibling is None:
        await notify_staff(session, "admin.report", reporter, report_id=report.id)


async def local_statuses_by_uri(session: AsyncSession, uris: Sequence[str]) -> list[Status]:
    """The local statuses whose uri or web URL is among ``uris`` (a Flag names either)."""
    if not uris:
        return []
    return list(await session.scalars(select(Status).where(
        Status.local.is_(True), or_(Status.uri.in_(uris), Status.url.in_(uris)))))


async def local_accounts_by_uri(session: AsyncSession, uris: Sequence[str]) -> list[Account]:
    """The local people (not the instance actor) whose uri or profile URL is among ``uris``."""
    if not uris:
        return []
    return list(await session.scalars(select(Account).where(
        Account.domain == "", Account.actor_type != "Application",
        or_(Account.uri.in_(uris), Account.url.in_(uris)))))


# ----------------------------------------------------------------------- moderation

MAX_NOTE_LENGTH = 500  # Mastodon's ReportNote limit


def reports_query(*, resolved: bool | None = None, account_id: int | None = None,
                  target_account_id: int | None = None) -> Select[Any]:
    """Reports for the admin list: unresolved only with ``resolved=False`` (Mastodon's
    default), resolved only with True, both with None; by reporter or target."""
    query = select(Report)
    if resolved is True:
        query = query.where(Report.action_taken_at.is_not(None))
    elif resolved is False:
        query = query.where(Report.action_taken_at.is_(None))
    if account_id is not None:
        query = query.where(Report.account_id == account_id)
    if target_account_id is not None:
        query = query.where(Report.target_account_id == target_account_id)
    return query


async def get_report(session: AsyncSession, report_id: int) -> Report:
    return await get_or_404(session, Report, report_id)


async def _changed(session: AsyncSession, report: Report) -> Report:
    report.updated_at = utcnow()
    await session.commit()
    return report


async def assign_report(session: AsyncSession, report_id: int, moderator: Account | None) -> Report:
    """Assign the report to ``moderator`` (None: unassign); committed."""
    report = await get_report(session, report_id)
    report.assigned_account_id = moderator.id if moderator is not None else None
    return await _changed(session, report)


async def resolve_report(session: AsyncSession, report_id: int, moderator: Account) -> Report:
    """Mark the report handled by ``moderator`` (resolving twice keeps the first time)."""
    report = await get_report(session, report_id)
    if report.action_taken_at is None:
        report.action_taken_at = utcnow()
        report.action_taken_by_account_id = moderator.id
    return await _changed(session, report)


async def reopen_report(session: AsyncSession, report_id: int) -> Report:
    report = await get_report(session, report_id)
    report.action_taken_at = None
    report.action_taken_by_account_id = None
    return await _changed(session, report)


async def update_report(session: AsyncSession, report_id: int, *, category: str | None = None,
                        rule_ids: Sequence[int] | None = None) -> Report:
    """Change the report's category and the rules it cites (what Mastodon lets moderators
    change); committed. Rules make it a "violation" report; another category drops
    them (they mean something only for a violation: both at once is refused, as
    Mastodon); ``rule_ids=[]`` drops them too."""
    report = await get_report(session, report_id)
    if category is not None:
        report.category = _category(category)
        if report.category != VIOLATION:
            if rule_ids:  # as Mastodon: rules belong to a violation only
                raise ValidationFailed("Rule ids must be blank unless the category is violation")
            report.rule_ids = None
    if rule_ids is not None:
        if len(rule_ids) > MAX_RULES:
            raise ValidationFailed(f"A report may cite at most {MAX_RULES} rules")
        report.rule_ids = await _rules(session, rule_ids)
        if report.rule_ids is not None:
            report.category = VIOLATION
    return await _changed(session, report)


async def add_report_note(session: AsyncSession, report_id: int, moderator: Account,
                          content: str, *, resolve: bool = False) -> ReportNote:
    """A moderator's note on the report (and, with ``resolve``, resolve it); committed."""
    text = content.strip()
    if not text:
        raise ValidationFailed("Content can't be blank")
    if len(text) > MAX_NOTE_LENGTH:
        raise ValidationFailed(f"Content is too long (maximum is {MAX_NOTE_LENGTH} characters)")
    report = await get_report(session, report_id)
    note = ReportNote(report_id=report.id, account_id=moderator.id, content=text)
    session.add(note)
    if resolve and report.action_taken_at is None:
        report.action_taken_at = utcnow()
        report.action_taken_by_account_id = moderator.id
    report.updated_at = utcnow()
    await session.commit()
    return note


async def cited_rules(session: AsyncSession, report: Report) -> list[InstanceRule]:
    """The instance rules ``report`` cites that still exist, in the order cited."""
    if not report.rule_ids:
        return []
    found = {rule.id: rule for rule in await session.scalars(
        select(InstanceRule).where(InstanceRule.id.in_(report.rule_ids)))}
    return [found[i] for i in report.rule_ids if i in found]


async def report_notes(session: AsyncSession, report_id: int) -> list[ReportNote]:
    await get_report(session, report_id)
    return list(await session.scalars(select(ReportNote).where(ReportNote.report_id == report_id)
                                      .order_by(ReportNote.id)))
