"""A real SMTP server on loopback (aiosmtpd) for the e-mail tests, and the seams they use:
an app whose mail goes there, the mail queue drained on demand, and the links in a message.

Tests never wait for mail: they drain the ``send_mail`` jobs (the worker's work, done now),
after which every message is in ``Mailbox.messages`` — aiosmtpd stores it before answering
the DATA command that ``smtplib`` waits for.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette

from server.app import AppOptions, create_app
from server.mail import SEND_MAIL_JOB
from server.queue.kinds import kind_named
from server.queue.runner import JobRunner
from server.settings import Settings
from tests.conftest import DOMAIN

LINK_RE = re.compile(r"https?://[^\s]+")
MAIL_FROM = "Easel <notifications@easel.test>"


class Mailbox:
    """What the loopback server received: each message with its envelope recipients."""

    def __init__(self) -> None:
        self.port = 0
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.arrived:
            self.messages.append(message)
            self.recipients.append(list(envelope.rcpt_tos))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, address: str, count: int = 1, timeout: float = 30.0) -> EmailMessage:
        """The latest mail to ``address`` once ``count`` have come, waiting (up to
        ``timeout`` s) for a worker that sends them in the background (a live server's)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.to(address)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail to {address} within {timeout} s")
                self.arrived.wait(left)
        return self.last_to(address)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m, rcpt in zip(self.messages, self.recipients, strict=True) if address in rcpt]

    def last_to(self, address: str) -> EmailMessage:
        found = self.to(address)
        assert found, f"no mail to {address}; got mail to {self.recipients}"
        return found[-1]


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    text: str = part.get_content()
    return text


def link_in(message: EmailMessage, path: str, base: str = f"https://{DOMAIN}") -> str:
    """The link to ``path`` in the message, relative to ``base`` (for the test client)."""
    for link in LINK_RE.findall(body(message)):
        if link.startswith(base + path):
            return str(link[len(base):])
    raise AssertionError(f"no link to {path} in: {body(message)}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port())
    controller.start()
    box.port = int(controller.port)
    try:
        yield box
    finally:
        controller.stop()


def mail_settings(settings: Settings, mailbox: Mailbox, **changes: Any) -> Settings:
    return settings.with_changes(**{"smtp_host": "127.0.0.1", "smtp_port": mailbox.port,
                                    "smtp_security": "none", "smtp_from": MAIL_FROM, **changes})


@pytest.fixture
async def mail_app(settings: Settings, mailbox: Mailbox) -> AsyncIterator[Starlette]:
    """The app with SMTP pointed at the mailbox and open registrations; no background
    workers (tests drain the mail queue with ``deliver_mail``)."""
    application = create_app(mail_settings(settings, mailbox, registrations="open"),
                             options=AppOptions(run_workers=False, run_reconciler=False))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def mail_client(mail_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mail_app)
    async with httpx.AsyncClient(transport=transport, base_url=f"https://{DOMAIN}") as http:
        yield http


async def deliver_mail(app: Starlette) -> int:
    """Send every queued message now, as the worker would; how many jobs ran."""
    state = app.state.easel
    runner = JobRunner(state.db, state.settings, kinds={SEND_MAIL_JOB: kind_named(SEND_MAIL_JOB)})
    ran: int = await runner.run_due(("default",))
    return ran
