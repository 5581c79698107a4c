"""Inbound ``Flag``: another server reports one of our accounts to our moderators.

Why it exists: a remote user's report about a local account arrives as a ``Flag`` by
their server's instance actor (Mastodon, GoToSocial, Misskey all send it so), with the
reported account and statuses as ``object`` and the comment as ``content``. It becomes a
:class:`~server.models.Report` through ``server.services.reports.record_remote_report``:
reporter = the flagging actor, target = the local account named, statuses = the local
statuses named that belong to it. One report per local account named (most Flags name
one); the activity id is the report's ``uri`` (a suffix per further account), so a
redelivered Flag changes nothing.

A domain blocked with ``reject_reports`` (or suspended) has its Flags ignored.

What it must never do: report a remote account (they are their own server's to moderate),
attach a status to an account that did not write it, or fail on a Flag about nobody here
(that is :class:`Ignored`).
"""

from __future__ import annotations

from federation.domains import domain_policy
from federation.inbox.base import Ignored, InboxContext
from server.models import Account, Status
from server.services.reports import (
    local_accounts_by_uri,
    local_statuses_by_uri,
    record_remote_report,
)


def _position(row: Account | Status, ids: tuple[str, ...]) -> int:
    """Where the Flag names ``row`` (by uri or web URL): reports keep the Flag's order."""
    for index, uri in enumerate(ids):
        if uri in (row.uri, row.url):
            return index
    return len(ids)


async def handle(inbox: InboxContext) -> str:
    activity = inbox.activity
    if (await domain_policy(inbox.session, inbox.actor.uri)).reject_reports:
        raise Ignored("reports from this domain are rejected (domain block)")
    ids = activity.object_ids
    targets = sorted(await local_accounts_by_uri(inbox.session, ids),
                     key=lambda account: _position(account, ids))
    if not targets:
        raise Ignored("the Flag names no account on this server")
    statuses = sorted(await local_statuses_by_uri(inbox.session, ids),
                      key=lambda status: _position(status, ids))
    recorded = []
    for index, target in enumerate(targets):
        uri = activity.id if index == 0 else f"{activity.id}#account-{target.id}"
        report = await record_remote_report(
            inbox.session, inbox.actor, target, uri=uri,
            status_ids=[s.id for s in statuses if s.account_id == target.id],
            comment=activity.content)
        if report is not None:
            recorded.append(f"@{target.username} ({len(report.status_ids)} status(es))")
    if not recorded:
        return "report already recorded"
    return "reported " + ", ".join(recorded)
