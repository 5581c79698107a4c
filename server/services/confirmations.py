"""E-mail links and credentials: confirming an address, resetting a forgotten password,
and changing one's address or password.

Why it exists: with SMTP configured (``settings.mail_enabled``) an address is only trusted
once its owner followed the link mailed to it — at sign-up and when changing address (the
new one is kept as ``unconfirmed_email`` and only replaces the old one when confirmed).
A forgotten password is replaced through a mailed link. Every link's secret is stored only
as its SHA-256 digest (``EmailToken``), is single-use, expires, and a newer link of the
same kind replaces the older ones. A new password revokes every OAuth token of the user
and, because the web session is bound to the password hash, every browser login too.

It must never tell a stranger whether an address has an account (the reset request
answers the same either way), never change an address before it is confirmed while mail
is on, and never accept a password change without the current password.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.mail import queue_mail
from server.models import EmailToken, OAuthToken, User
from server.services.accounts import validate_email, validate_password
from server.services.errors import ServiceError, ValidationFailed
from server.services.notifications import notify_staff_of_sign_up
from server.services.passwords import hash_password, verify_password
from server.services.tokens import token_digest
from server.settings import Settings

CONFIRM_EMAIL = "confirm_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose, not a password)
# Mastodon's (Devise's) windows: confirm within two days, reset within six hours.
LIFETIMES = {CONFIRM_EMAIL: timedelta(days=2), RESET_PASSWORD: timedelta(hours=6)}
CONFIRM_PATH = "/auth/confirm"
RESET_PATH = "/auth/password/edit"
MAX_TOKEN_LENGTH = 128


class InvalidLink(ServiceError):
    """A link's token is unknown, used or expired."""

    def __init__(self, message: str = "This link is invalid or has expired") -> None:
        super().__init__(message, 422)


class NotAwaitingConfirmation(ServiceError):
    def __init__(self) -> None:
        super().__init__("This method is only available while the e-mail is awaiting confirmation", 403)


class WrongPassword(ValidationFailed):
    def __init__(self) -> None:
        super().__init__("Current password is invalid")


async def _issue(session: AsyncSession, user: User, purpose: str, email: str) -> str:
    """A new link token for ``user`` (the plaintext, for the mail); earlier ones of the same
    purpose are deleted, so they stop working and a user has at most one of each."""
    now = utcnow()
    await session.execute(delete(EmailToken).where(
        EmailToken.user_id == user.id, EmailToken.purpose == purpose))
    token = secrets.token_urlsafe(32)
    session.add(EmailToken(user_id=user.id, purpose=purpose, token_digest=token_digest(token),
                           email=email, expires_at=now + LIFETIMES[purpose]))
    await session.flush()
    return token


async def _valid_token(session: AsyncSession, purpose: str, token: str | None) -> EmailToken | None:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    found: EmailToken | None = await session.scalar(select(EmailToken).where(
        EmailToken.token_digest == token_digest(token), EmailToken.purpose == purpose,
        EmailToken.used_at.is_(None), EmailToken.expires_at > utcnow()))
    return found


async def _email_taken(session: AsyncSession, email: str, but: User) -> bool:
    return await session.scalar(
        select(User.id).where(User.email == email, User.id != but.id)) is not None


async def revoke_access(session: AsyncSession, user: User) -> None:
    """End every OAuth token of ``user`` (in the caller's transaction)."""
    await session.execute(update(OAuthToken).where(
        OAuthToken.user_id == user.id, OAuthToken.revoked_at.is_(None)).values(revoked_at=utcnow()))


# ----------------------------------------------------------------------- confirmation

async def send_confirmation(session: AsyncSession, settings: Settings, user: User) -> None:
    """Mail a confirmation link to the address awaiting confirmation (the new one during
    an address change, else the sign-up address); committed. Nothing without SMTP."""
    if not settings.mail_enabled:
        return
    email = user.unconfirmed_email or user.email
    token = await _issue(session, user, CONFIRM_EMAIL, email)
    link = f"{settings.base_url}{CONFIRM_PATH}?token={token}"
    await queue_mail(session, settings, to=email, subject=f"{settings.title}: confirm your e-mail address",
                     text=(f"Hello,\n\nplease confirm {email} for your account on {settings.title} "
                           f"by opening this link:\n\n{link}\n\n"
                           "The link works once, for two days. If you did not ask for this, "
                           "ignore this message.\n"))
    await session.commit()


async def resend_confirmation(session: AsyncSession, settings: Settings, user: User,
                              email: str | None = None) -> None:
    """POST /api/v1/emails/confirmations: mail the link again, to ``email`` when given (the
    sign-up address is corrected first); NotAwaitingConfirmation when nothing waits."""
    if user.confirmed_at is not None and user.unconfirmed_email is None:
        raise NotAwaitingConfirmation()
    if email is not None and email.strip():
        address = validate_email(email)
        if await _email_taken(session, address, user):
            raise ValidationFailed("Email has already been taken")
        if user.confirmed_at is None:
            user.email = address
        else:
            user.unconfirmed_email = address
        await session.flush()
    await send_confirmation(session, settings, user)


async def resend_confirmation_to(session: AsyncSession, settings: Settings, email: str) -> None:
    """The web form's resend: a new link if ``email`` is a sign-up address still waiting
    for confirmation; the same answer (nothing) otherwise, so it reveals no account."""
    address = email.strip().lower()
    if not settings.mail_enabled or not address or len(address) > 320:
        return
    user = await session.scalar(select(User).where(User.email == address))
    if user is None or user.disabled or user.confirmed_at is not None:
        return
    await send_confirmation(session, settings, user)


async def confirm_email(session: AsyncSession, token: str | None) -> User:
    """Follow a confirmation link: the address is confirmed (and, for an address change,
    becomes the user's address); committed. InvalidLink otherwise."""
    found = await _valid_token(session, CONFIRM_EMAIL, token)
    if found is None:
        raise InvalidLink()
    user = await session.get(User, found.user_id)
    if user is None:
        raise InvalidLink()
    found.used_at = utcnow()
    if found.email != user.email:
        if found.email != user.unconfirmed_email:  # superseded by a later change
            raise InvalidLink()
        if await _email_taken(session, found.email, user):
            await session.commit()
            raise InvalidLink("This e-mail address has been taken by another account meanwhile")
        user.email = found.email
    user.unconfirmed_email = None
    if user.confirmed_at is None:  # a sign-up confirmed: the admins are told of it
        user.confirmed_at = utcnow()
        await notify_staff_of_sign_up(session, user)
    await session.commit()
    return user



# ---------------------------------------------------------------------- password reset

async def request_password_reset(session: AsyncSession, settings: Settings, email: str) -> None:
    """Mail a reset link to ``email`` if it belongs to a user who may log in; the same
    answer (nothing) either way, so the form reveals no account."""
    address = email.strip().lower()
    if not settings.mail_enabled or not address or len(address) > 320:
        return
    user = await session.scalar(select(User).where(User.email == address))
    if user is None or user.disabled:
        return
    token = await _issue(session, user, RESET_PASSWORD, address)
    link = f"{settings.base_url}{RESET_PATH}?token={token}"
    await queue_mail(session, settings, to=address, subject=f"{settings.title}: reset your password",
                     text=(f"Hello,\n\nsomeone asked to reset the password of your account on "
                           f"{settings.title}. To choose a new password, open this link:\n\n"
                           f"{link}\n\nThe link works once, for six hours. If it was not you, "
                           "ignore this message: your password stays as it is.\n"))
    await session.commit()


async def reset_token_valid(session: AsyncSession, token: str | None) -> bool:
    return await _valid_token(session, RESET_PASSWORD, token) is not None


async def reset_password(session: AsyncSession, token: str | None, password: str,
                         confirmation: str) -> User:
    """Follow a reset link: set the new password, revoke every token and login;
    committed. InvalidLink or ValidationFailed (nothing changed) otherwise."""
    found = await _valid_token(session, RESET_PASSWORD, token)
    if found is None:
        raise InvalidLink()
    validate_password(password)
    if password != confirmation:
        raise ValidationFailed("Password confirmation doesn't match Password")
    user = await session.get(User, found.user_id)
    if user is None:
        raise InvalidLink()
    found.used_at = utcnow()
    user.password_hash = await asyncio.to_thread(hash_password, password)
    await revoke_access(session, user)
    await session.commit()
    return user


# ------------------------------------------------------------------- self-service changes

async def _check_current(user: User, current_password: str) -> None:
    if not current_password or not await asyncio.to_thread(
            verify_password, user.password_hash, current_password):
        raise WrongPassword()


async def change_password(session: AsyncSession, user: User, *, current_password: str,
                          password: str, confirmation: str) -> None:
    """Set a new password (the current one required); every OAuth token is revoked and
    other browsers are logged out; committed."""
    await _check_current(user, current_password)
    validate_password(password)
    if password != confirmation:
        raise ValidationFailed("Password confirmation doesn't match Password")
    user.password_hash = await asyncio.to_thread(hash_password, password)
    await revoke_access(session, user)
    await session.commit()


async def change_email(session: AsyncSession, settings: Settings, user: User, *,
                       current_password: str, email: str) -> bool:
    """Ask to change the address (the current password required). With mail on, the new
    address waits for its confirmation link (True: a link was sent) and the old one is told;
    without mail it changes at once (False). Committed."""
    await _check_current(user, current_password)
    address = validate_email(email)
    if address == user.email:
        raise ValidationFailed("Email is the same as the current one")
    if await _email_taken(session, address, user):
        raise ValidationFailed("Email has already been taken")
    if not settings.mail_enabled:
        user.email = address
        user.unconfirmed_email = None
        await session.commit()
        return False
    user.unconfirmed_email = address
    await queue_mail(session, settings, to=user.email,
                     subject=f"{settings.title}: your e-mail address is changing",
                     text=(f"Hello,\n\nyour account on {settings.title} asked to change its "
                           f"e-mail address to {address}. It changes once that address is "
                           "confirmed. If this was not you, change your password now.\n"))
    await send_confirmation(session, settings, user)
    return True
