"""Creating and finding local accounts, and the instance actor."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import Account, User
from server.services.errors import ValidationFailed
from server.services.keys import generate_key_pair
from server.services.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, hash_password
from server.settings import Settings
from server.urls import Urls

# Mastodon's Account::USERNAME_RE and local length limit.
USERNAME_RE = re.compile(r"\A[a-z0-9_]+([a-z0-9_.-]+[a-z0-9_]+)?\Z", re.IGNORECASE)
MAX_USERNAME_LENGTH = 30
# Mastodon's reserved names, refused for self-registration (an admin may still use them).
RESERVED_USERNAMES = frozenset(
    {"admin", "support", "help", "root", "webmaster", "administrator", "mod", "moderator"}
)
EMAIL_RE = re.compile(r"\A[^@\s]+@[^@\s]+\.[^@\s]+\Z")


def validate_username(username: str, *, allow_reserved: bool = False) -> str:
    if not username:
        raise ValidationFailed("Username can't be blank")
    if len(username) > MAX_USERNAME_LENGTH:
        raise ValidationFailed(
            f"Username is too long (maximum is {MAX_USERNAME_LENGTH} characters)"
        )
    if not USERNAME_RE.match(username):
        raise ValidationFailed("Username must contain only letters, numbers and underscores")
    if not allow_reserved and username.lower() in RESERVED_USERNAMES:
        raise ValidationFailed("Username is reserved")
    return username


def validate_email(email: str) -> str:
    email = email.strip().lower()
    if not email:
        raise ValidationFailed("Email can't be blank")
    if len(email) > 320 or not EMAIL_RE.match(email):
        raise ValidationFailed("Email is invalid")
    return email


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Password is too short (minimum is {MIN_PASSWORD_LENGTH} characters)"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Password is too long (maximum is {MAX_PASSWORD_LENGTH} characters)"
        )
    return password


def local_account(settings: Settings, username: str, *, actor_type: str = "Person") -> Account:
    """A new local Account row with its links and a fresh RSA key pair (not yet added)."""
    urls = Urls(settings)
    uri = urls.actor(username)
    private_pem, public_pem = generate_key_pair()
    return Account(
        username=username,
        username_key=username.lower(),
        domain="",
        actor_type=actor_type,
        uri=uri,
        url=urls.profile(username),
        inbox_url=urls.inbox(username),
        outbox_url=urls.outbox(username),
        shared_inbox_url=urls.shared_inbox,
        followers_url=urls.followers(username),
        following_url=urls.following(username),
        featured_url=urls.featured(username),
        public_key_id=urls.key_id(uri),
        public_key_pem=public_pem,
        private_key_pem=private_pem,
    )


async def find_local_account(session: AsyncSession, username: str) -> Account | None:
    return await session.scalar(
        select(Account).where(
            Account.username_key == username.lower(),
            Account.domain == "",
            Account.actor_type != "Application",
        )
    )


async def create_user(
    session: AsyncSession,
    settings: Settings,
    *,
    username: str,
    email: str,
    password: str,
    admin: bool = False,
    confirmed: bool = True,
    approved: bool = True,
    allow_reserved: bool = False,
) -> User:
    """Create a local account and its login, committed; raise ValidationFailed on bad input."""
    validate_username(username, allow_reserved=allow_reserved)
    email = validate_email(email)
    validate_password(password)
    taken = await session.scalar(
        select(Account.id).where(Account.username_key == username.lower(), Account.domain == "")
    )
    if taken is not None:
        raise ValidationFailed("Username has already been taken")
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ValidationFailed("Email has already been taken")

    account = local_account(settings, username)
    user = User(
        account=account,
        email=email,
        password_hash=hash_password(password),
        confirmed_at=utcnow() if confirmed else None,
        approved=approved,
        admin=admin,
    )
    session.add_all([account, user])
    try:
        await session.commit()
    except IntegrityError:  # a concurrent registration took the name or email first
        await session.rollback()
        raise ValidationFailed("Username or email has already been taken") from None
    return user


async def instance_actor(session: AsyncSession, settings: Settings) -> Account:
    """The instance's own actor (for signed fetches), created on first use.

    Like Mastodon's, its username is the domain, which no user can take because the
    row exists from the first migration run on.
    """
    urls = Urls(settings)
    actor = await session.scalar(select(Account).where(Account.uri == urls.instance_actor))
    if actor is not None:
        return actor
    actor = local_account(settings, settings.domain, actor_type="Application")
    actor.uri = urls.instance_actor
    actor.url = f"{urls.base}/about"
    actor.inbox_url = urls.instance_actor + "/inbox"
    actor.outbox_url = urls.instance_actor + "/outbox"
    actor.followers_url = actor.following_url = actor.featured_url = ""
    actor.public_key_id = urls.key_id(urls.instance_actor)
    actor.locked = True
    actor.discoverable = False
    session.add(actor)
    try:
        await session.commit()
    except IntegrityError:  # another process created it first
        await session.rollback()
        existing = await session.scalar(select(Account).where(Account.uri == urls.instance_actor))
        if existing is None:
            raise
        return existing
    return actor
