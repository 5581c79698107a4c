"""Self-registration through the client API (POST /api/v1/accounts), per the instance's mode.

``open``: the new user is confirmed and approved and the returned token works at once.
``approval``: the user waits for an admin; the token is returned now and starts working
once they are approved (until then the API answers 403 "pending approval").
``closed``: nobody may register.

A valid invite (``invite_code``, ``server/services/invites.py``) admits its holder in
every mode, approved at once, as Mastodon does; an unknown, expired or used-up code is a
field error (or, when registrations are closed, the closed answer).

IP blocks (``server/services/ip_blocks.py``) on the sign-up's address come first, as
Mastodon's: ``sign_up_block`` (or ``no_access``) refuses it (403) whatever the mode or
invite; ``sign_up_requires_approval`` makes the new user wait for approval even when
registrations are open or an invite admits them.

With SMTP configured (``settings.mail_enabled``) the address must be confirmed: the user
is created unconfirmed and mailed a link (``server/services/confirmations.py``); the token
returned now starts working once the link is followed (until then the API answers 403
"missing a confirmed e-mail address"). Without SMTP an address cannot be confirmed by
mail, so it is taken as given and an open registration is usable at once.

Every field is checked before anything is written, and all errors are reported together,
in Mastodon's ``details`` shape, so an app can mark each field.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.mail import queue_mail
from server.models import Account, OAuthApplication, User
from server.services import confirmations, invites, ip_blocks
from server.services.accounts import create_user, validate_email, validate_password, validate_username
from server.services.email_blocks import email_blocked
from server.services.errors import ServiceError, ValidationFailed
from server.services.notifications import notify_staff_of_sign_up
from server.services.oauth import IssuedToken, issue_token
from server.settings import Settings

# Mastodon's limit on the "why do you want to join?" text (UserInviteRequest).
MAX_REASON_LENGTH = 420
MAX_LOCALE_LENGTH = 16  # users.locale
LOCALE_RE = re.compile(r"\A[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,2}\Z")
FIELD_LABELS = {"username": "Username", "email": "Email", "password": "Password",
                "agreement": "Agreement", "locale": "Locale", "reason": "Reason",
                "invite_code": "Invite code"}
# Mastodon's error codes for registration details, by the end of the description.
ERROR_CODES = (
    ("can't be blank", "ERR_BLANK"),
    ("has already been taken", "ERR_TAKEN"),
    ("is reserved", "ERR_RESERVED"),
    ("uses a disallowed e-mail provider", "ERR_BLOCKED"),
    ("must be accepted", "ERR_ACCEPTED"),
    ("is not included in the list", "ERR_INCLUSION"),
    ("is too long", "ERR_TOO_LONG"),
    ("is too short", "ERR_TOO_SHORT"),
    ("disallowed e-mail provider", "ERR_BLOCKED"),
)


class RegistrationsClosed(ServiceError):
    status_code = 403

    def __init__(self) -> None:
        super().__init__("Registrations are closed", 403)


class SignUpBlocked(ServiceError):
    """An IP block refuses sign-ups from the address (Mastodon answers 403)."""

    def __init__(self) -> None:
        super().__init__("Sign-ups from your network are not allowed", 403)


class RegistrationInvalid(ValidationFailed):
    """A 422 with every field's errors: ``details = {field: [{"error", "description"}]}``."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.details = {
            field: [{"error": error_code(text), "description": text} for text in texts]
            for field, texts in errors.items()
        }
        super().__init__(", ".join(f"{FIELD_LABELS.get(field, field.capitalize())} {text}"
                                   for field, texts in errors.items() for text in texts))


def error_code(description: str) -> str:
    for ending, code in ERROR_CODES:
        if ending in description:
            return code
    return "ERR_INVALID"


def _description(field: str, error: ValidationFailed) -> str:
    """"Validation failed: Username is reserved" → "is reserved"."""
    text = error.message.removeprefix("Validation failed: ")
    label = FIELD_LABELS[field] + " "
    return text[len(label):] if text.startswith(label) else text


async def register(
    session: AsyncSession,
    settings: Settings,
    app: OAuthApplication,
    *,
    username: str,
    email: str,
    password: str,
    agreement: bool,
    locale: str | None,
    reason: str | None,
    invite_code: str | None = None,
    address: str | None = None,
) -> IssuedToken:
    """Create the user per ``settings.registrations`` and a token for ``app`` with the app's
    scopes; RegistrationsClosed, SignUpBlocked or RegistrationInvalid (nothing written)
    otherwise. ``address``: the client's, for IP blocks."""
    user = await create_registration(session, settings, username=username, email=email,
                                     password=password, agreement=agreement, locale=locale,
                                     reason=reason, invite_code=invite_code, address=address)
    return await issue_token(session, app, user, app.scopes.split())


async def create_registration(
    session: AsyncSession,
    settings: Settings,
    *,
    username: str,
    email: str,
    password: str,
    agreement: bool,
    locale: str | None,
    reason: str | None,
    invite_code: str | None = None,
    address: str | None = None,
) -> User:
    """The new user (committed, and mailed a confirmation link when mail is on), per the
    registration mode, the invite and the IP blocks on ``address`` (the client's);
    RegistrationsClosed, SignUpBlocked or RegistrationInvalid (nothing written) otherwise.
    The API and the web sign-up form both come here."""
    ip_severity = await ip_blocks.sign_up_severity(session, address)
    if ip_severity in ("sign_up_block", "no_access"):
        raise SignUpBlocked()
    invite_code = (invite_code or "").strip()
    invited = bool(invite_code) and await invites.find_usable_invite(session, invite_code) is not None
    if settings.registrations == "closed" and not invited:
        raise RegistrationsClosed()
    errors: dict[str, list[str]] = {}
    if invite_code and not invited:
        errors["invite_code"] = ["is invalid"]

    def check(field: str, validate: Callable[[], object]) -> None:
        try:
            validate()
        except ValidationFailed as error:
            errors.setdefault(field, []).append(_description(field, error))

    username = username.strip()
    email = email.strip()
    check("username", lambda: validate_username(username))
    check("email", lambda: validate_email(email))
    if not password:
        errors.setdefault("password", []).append("can't be blank")
    else:
        check("password", lambda: validate_password(password))
    if not agreement:
        errors.setdefault("agreement", []).append("must be accepted")
    locale = (locale or "").strip() or "en"
    if len(locale) > MAX_LOCALE_LENGTH or not LOCALE_RE.match(locale):
        errors.setdefault("locale", []).append("is not included in the list")
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON_LENGTH:
        errors.setdefault("reason", []).append(
            f"is too long (maximum is {MAX_REASON_LENGTH} characters)")
    if "username" not in errors and await session.scalar(select(Account.id).where(
            Account.username_key == username.lower(), Account.domain == "")) is not None:
        errors.setdefault("username", []).append("has already been taken")
    if "email" not in errors and await session.scalar(
            select(User.id).where(User.email == email.lower())) is not None:
        errors.setdefault("email", []).append("has already been taken")
    if "email" not in errors and await email_blocked(session, email):  # H4: canonical e-mail blocks
        errors.setdefault("email", []).append("uses a disallowed e-mail provider")
    if errors:
        raise RegistrationInvalid({field: errors[field] for field in FIELD_LABELS if field in errors})

    invite_id = None
    if invited:  # counted in the transaction create_user commits (or rolls back)
        invite_id = await invites.use_invite(session, invite_code)
        if invite_id is None:  # used up or revoked a moment ago
            await session.rollback()
            if settings.registrations == "closed":
                raise RegistrationsClosed()
            raise RegistrationInvalid({"invite_code": ["is invalid"]})
    try:
        user = await create_user(session, settings, username=username, email=email, password=password,
                                 confirmed=not settings.mail_enabled,
                                 approved=ip_severity is None and (
                                     invite_id is not None or settings.registrations == "open"),
                                 locale=locale.replace("_", "-"), reason=reason)
    except ValidationFailed as error:  # a concurrent registration took the name or e-mail
        raise RegistrationInvalid({"username": [_description("username", error)]}) from None
    if invite_id is not None:
        user.invite_id = invite_id
        await session.commit()
    if user.confirmed_at is not None:  # no mail to confirm: a member (or applicant) now
        await notify_staff_of_sign_up(session, user)
        await session.commit()
    await confirmations.send_confirmation(session, settings, user)
    return user


async def mail_decision(session: AsyncSession, settings: Settings, user: User, *,
                        approved: bool) -> None:
    """Tell a user who waited for approval what the admin decided (queued in the caller's
    transaction; the caller commits). Nothing without SMTP. For the approve/reject actions
    (``server/services/moderation.py``)."""
    if approved:
        text = (f"Hello,\n\nyour account on {settings.title} has been approved. "
                f"Sign in at {settings.base_url}/auth/sign_in\n")
        subject = f"{settings.title}: your account is approved"
    else:
        text = (f"Hello,\n\nyour request to join {settings.title} was not accepted. "
                "No account was kept for this address.\n")
        subject = f"{settings.title}: your request to join"
    await queue_mail(session, settings, to=user.email, subject=subject, text=text)
