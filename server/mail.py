"""Outgoing e-mail: queued in the request's transaction, sent over SMTP by a job.

Why it exists: confirmation links, password resets and address changes go out by mail,
and a slow or unreachable SMTP server must never hold up (or fail) the request that asked
for the mail. :func:`queue_mail` writes the message and its ``send_mail`` job in the
caller's transaction; the job sends it with the standard library's ``smtplib`` in a thread
and retries with backoff when the server refuses or is down.

It must never send anything while ``EASEL_SMTP_HOST`` is unset (``queue_mail`` is then a
no-op), never keep a sent message (its links carry secrets), and never log a message's
text.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import OutgoingMail
from server.queue.jobs import enqueue
from server.queue.kinds import job_kind
from server.settings import Settings

if TYPE_CHECKING:
    from server.queue.runner import JobContext

log = logging.getLogger(__name__)

SEND_MAIL_JOB = "send_mail"
SMTP_TIMEOUT_SECONDS = 30
MAX_SUBJECT_LENGTH = 255


async def queue_mail(session: AsyncSession, settings: Settings, *, to: str, subject: str,
                     text: str) -> None:
    """Queue a plain-text message to ``to`` in the caller's transaction (the caller
    commits); nothing at all when no SMTP server is configured."""
    if not settings.mail_enabled:
        return
    message = OutgoingMail(to=to, subject=" ".join(subject.split())[:MAX_SUBJECT_LENGTH],
                           text=text)
    session.add(message)
    await session.flush()
    await enqueue(session, send_mail, str(message.id))


def build_message(settings: Settings, mail: OutgoingMail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=settings.domain.split(":")[0])
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text)
    return message


def deliver(settings: Settings, message: EmailMessage) -> None:
    """Hand ``message`` to the configured SMTP server (blocking; run in a thread)."""
    host, port = settings.smtp_host, settings.smtp_port
    smtp: smtplib.SMTP
    if settings.smtp_security == "tls":
        smtp = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT_SECONDS,
                                context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS)
    with smtp:
        if settings.smtp_security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)


@job_kind(SEND_MAIL_JOB, queue="default", max_attempts=8, time_limit=timedelta(minutes=2),
          retry_base=timedelta(minutes=1))
async def send_mail(ctx: JobContext) -> None:
    mail = await ctx.session.scalar(select(OutgoingMail).where(OutgoingMail.id == int(ctx.job.ref)))
    if mail is None:  # sent already
        return
    if not ctx.settings.mail_enabled:
        log.warning("mail %s: EASEL_SMTP_HOST is no longer set; dropping it", mail.id)
    else:
        await asyncio.to_thread(deliver, ctx.settings, build_message(ctx.settings, mail))
    await ctx.session.execute(delete(OutgoingMail).where(OutgoingMail.id == mail.id))
