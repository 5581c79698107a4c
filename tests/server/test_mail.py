"""Outgoing mail: queued with the request's transaction, sent by the ``send_mail`` job to a
real SMTP server on loopback, retried when the server is down, never sent without SMTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from server.db import Database
from server.ids import utcnow
from server.mail import SEND_MAIL_JOB, queue_mail
from server.models import Job, JobState, OutgoingMail
from server.queue.kinds import kind_named
from server.queue.runner import JobRunner
from server.settings import Settings, SettingsError, load_settings
from tests.server.smtp import MAIL_FROM, Mailbox, body, deliver_mail, mail_app, mail_settings, mailbox

__all__ = ["mail_app", "mailbox"]  # fixtures


async def test_a_queued_message_is_sent_by_the_job_and_then_forgotten(
    mail_app: Starlette, mailbox: Mailbox
) -> None:
    state = mail_app.state.easel
    async with state.db.session() as session:
        await queue_mail(session, state.settings, to="ann@example.com", subject="Hello\n there",
                         text="A line with a link: https://easel.test/x\n")
        await session.commit()
    assert mailbox.messages == []  # nothing leaves inside the request
    assert await deliver_mail(mail_app) == 1
    message = mailbox.last_to("ann@example.com")
    assert message["From"] == MAIL_FROM and message["To"] == "ann@example.com"
    assert message["Subject"] == "Hello there"  # no header injection through a newline
    assert message["Message-ID"] and message["Date"]
    assert "https://easel.test/x" in body(message)
    async with state.db.session() as session:
        assert await session.scalar(select(func.count(OutgoingMail.id))) == 0
        job = await session.scalar(select(Job).where(Job.kind == SEND_MAIL_JOB))
        assert job is not None and job.state == JobState.DONE


async def test_without_smtp_nothing_is_queued(db: Database, settings: Settings) -> None:
    assert not settings.mail_enabled
    async with db.session() as session:
        await queue_mail(session, settings, to="ann@example.com", subject="Hi", text="text")
        await session.commit()
        assert await session.scalar(select(func.count(OutgoingMail.id))) == 0
        assert await session.scalar(select(func.count(Job.id)).where(Job.kind == SEND_MAIL_JOB)) == 0


async def test_an_unreachable_server_is_retried_later_and_the_message_kept(
    db: Database, settings: Settings, mailbox: Mailbox
) -> None:
    down = mail_settings(settings, mailbox).with_changes(smtp_port=_closed_port())
    await send_one(db, down, "ann@example.com")
    async with db.session() as session:
        job = await session.scalar(select(Job).where(Job.kind == SEND_MAIL_JOB))
        assert job is not None and job.state == JobState.QUEUED and job.attempts == 1
        assert job.last_error
        assert await session.scalar(select(func.count(OutgoingMail.id))) == 1
    # Once the server is back, the retry delivers it.
    back = JobRunner(db, mail_settings(settings, mailbox), kinds={SEND_MAIL_JOB: kind_named(SEND_MAIL_JOB)},
                     clock=lambda: job.next_try_at)
    assert await back.run_due(("default",)) == 1
    assert len(mailbox.to("ann@example.com")) == 1


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: connections are refused


async def send_one(db: Database, settings: Settings, to: str, *,
                   clock: Callable[[], datetime] | None = None) -> None:
    """Queue a message to ``to`` and run the mail job once, as a worker would (at ``clock``)."""
    async with db.session() as session:
        await queue_mail(session, settings, to=to, subject="Hi", text="text")
        await session.commit()
    await run_mail_job(db, settings, clock=clock)


async def run_mail_job(db: Database, settings: Settings, *,
                       clock: Callable[[], datetime] | None = None) -> None:
    runner = JobRunner(db, settings, kinds={SEND_MAIL_JOB: kind_named(SEND_MAIL_JOB)},
                       **({"clock": clock} if clock is not None else {}))
    assert await runner.run_due(("default",)) == 1


def test_smtp_settings_are_read_and_checked(tmp_path: Path) -> None:
    settings = load_settings({"EASEL_SMTP_HOST": "mail.example", "EASEL_SMTP_PORT": "465",
                              "EASEL_SMTP_SECURITY": "TLS", "EASEL_SMTP_USER": "easel",
                              "EASEL_SMTP_PASSWORD": "secret", "EASEL_DOMAIN": "art.example"}, None)
    assert settings.mail_enabled and settings.smtp_port == 465 and settings.smtp_security == "tls"
    assert settings.smtp_from == "notifications@art.example"
    assert "secret" not in repr(settings)
    assert not load_settings({}, None).mail_enabled
    for name, value, text in (("EASEL_SMTP_PORT", "70000", "port number"),
                              ("EASEL_SMTP_PORT", "x", "whole number"),
                              ("EASEL_SMTP_SECURITY", "ssl", "none, starttls, tls"),
                              ("EASEL_SMTP_FROM", "no address", "e-mail address")):
        with pytest.raises(SettingsError, match=text):
            load_settings({"EASEL_SMTP_HOST": "mail.example", name: value}, None)


async def test_the_approval_decision_is_mailed(mail_app: Starlette, mailbox: Mailbox) -> None:
    from server.services.accounts import create_user
    from server.services.registrations import mail_decision

    state = mail_app.state.easel
    async with state.db.session() as session:
        user = await create_user(session, state.settings, username="ivy", email="ivy@example.com",
                                 password="a fine password", approved=False)
        await mail_decision(session, state.settings, user, approved=True)
        await session.commit()
    await deliver_mail(mail_app)
    message = mailbox.last_to("ivy@example.com")
    assert "approved" in message["Subject"] and "/auth/sign_in" in body(message)


async def test_smtp_login_and_a_refused_starttls(db: Database, settings: Settings) -> None:
    """With EASEL_SMTP_USER the job logs in; a server without STARTTLS is never sent to in
    the clear when starttls is asked for (the attempt fails and is retried)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    logins: list[tuple[bytes, bytes]] = []

    def authenticate(server: object, session: object, envelope: object, mechanism: str,
                     auth_data: object) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret")

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=_closed_port(), authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        box.port = int(controller.port)
        with_login = mail_settings(settings, box, smtp_user="easel", smtp_password="s3cret")
        await send_one(db, with_login, "ann@example.com")
        assert logins == [(b"easel", b"s3cret")] and len(box.to("ann@example.com")) == 1

        starttls = mail_settings(settings, box, smtp_security="starttls")
        await send_one(db, starttls, "bea@example.com")
        assert box.to("bea@example.com") == []
        async with db.session() as session:
            failed = await session.scalar(select(Job).where(Job.kind == SEND_MAIL_JOB,
                                                            Job.state == JobState.QUEUED))
            assert failed is not None and "STARTTLS" in (failed.last_error or "")
    finally:
        controller.stop()


def _certificate(directory: Path) -> Path:
    """A self-signed certificate (and its key, in the same PEM file) for 127.0.0.1."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.easel.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    path = directory / "smtp.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return path


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_mail_goes_encrypted_and_a_certificate_nobody_vouches_for_is_refused(
        settings: Settings, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        security: str) -> None:
    """A real TLS server on loopback: STARTTLS (the server refuses mail and logins before
    it) or TLS from the first byte. Its certificate is ours, so first it is refused as any
    unknown one is (the job retries, the mail kept); then, with the certificate in the
    trust store, the login and the message go over TLS."""
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    certificate = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificate)
    logins: list[bytes] = []

    def authenticate(server: object, session: object, envelope: object, mechanism: str,
                     auth_data: object) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append(auth_data.login)
        return AuthResult(success=auth_data.password == b"s3cret")

    box = Mailbox()
    # (aiosmtpd counts only STARTTLS as TLS for auth_require_tls: a TLS-wrapped server
    # would refuse AUTH; every byte of that connection is encrypted anyway)
    tls_options: dict[str, object] = (
        {"tls_context": server_tls, "require_starttls": True, "auth_require_tls": True}
        if security == "starttls" else {"ssl_context": server_tls, "auth_require_tls": False})
    controller = Controller(box, hostname="127.0.0.1", port=_closed_port(),
                            authenticator=authenticate, **tls_options)
    controller.start()
    try:
        box.port = int(controller.port)
        secured = mail_settings(settings, box, smtp_security=security, smtp_user="easel",
                                smtp_password="s3cret")
        await send_one(db, secured, "ann@example.com")
        async with db.session() as session:
            job = await session.scalar(select(Job).where(Job.kind == SEND_MAIL_JOB))
            assert job is not None and job.state == JobState.QUEUED  # to be retried
            assert "CERTIFICATE_VERIFY_FAILED" in (job.last_error or "")
            assert await session.scalar(select(func.count(OutgoingMail.id))) == 1
        assert box.messages == [] and logins == []

        trusting = ssl.create_default_context
        monkeypatch.setattr("server.mail.ssl.create_default_context",
                            lambda *args, **kwargs: trusting(cafile=str(certificate)))
        await run_mail_job(db, secured, clock=lambda: utcnow() + timedelta(hours=1))  # past its retry
        assert logins == [b"easel"] and len(box.to("ann@example.com")) == 1
        async with db.session() as session:
            assert await session.scalar(select(func.count(OutgoingMail.id))) == 0
    finally:
        controller.stop()
