"""The ``Flag`` Easel sends when a user forwards a report about a remote account.

Why it exists: ``server.services.reports`` records a ``Flag`` activity (by the instance
actor, ``object_type`` "Account", ``payload["report_id"]``); the ``federate`` job asks the
builder registered here for the document and where to send it. As Mastodon's: the actor
is the instance actor (the reporter stays anonymous), ``object`` is the reported account
followed by the reported statuses, ``content`` the comment; it goes to the target's
server only, its shared inbox when it has one.

What it must never do: name the reporter, send a Flag about a local account, or send one
anywhere but the reported account's own server.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.context import FederationContext
from federation.outbox import Outgoing, builds
from federation.serialize import flag_activity
from server.models import Account, Activity, Report, Status


@builds("Flag", "Account")
async def build_flag(fed: FederationContext, session: AsyncSession, activity: Activity) -> Outgoing | None:
    """The Flag for the report ``activity.payload["report_id"]``; None when the report or
    its target is gone, or the target is local."""
    report_id = activity.payload.get("report_id")
    report = await session.get(Report, report_id) if isinstance(report_id, int) else None
    if report is None:
        return None
    target = await session.get(Account, report.target_account_id)
    actor = await session.get(Account, activity.account_id)
    if target is None or target.is_local or actor is None:
        return None
    wanted = list(report.status_ids or [])
    uris = dict((await session.execute(select(Status.id, Status.uri).where(
        Status.id.in_(wanted), Status.account_id == target.id))).all()) if wanted else {}
    status_uris = [uris[status_id] for status_id in wanted if status_id in uris]
    document = flag_activity(activity.uri, actor.uri, target.uri, status_uris, report.comment)
    inbox = target.shared_inbox_url or target.inbox_url
    if inbox:
        return Outgoing(document=document, inboxes=[inbox])
    return Outgoing(document=document, recipients=[target])
