"""Creating and finding local accounts, and the instance actor."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, false, func, not_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server.ids import utcnow
from server.models import Account, Follow, MediaAttachment, Status, StatusTag, Tag, User
from server.services.errors import NotFound, ValidationFailed
from server.services.keys import generate_key_pair
from server.services.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, hash_password
from server.services.text import normalize_tag
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
    """A local account anyone may see (approved, confirmed, not disabled), by username."""
    return await session.scalar(
        select(Account).where(
            Account.username_key == username.lower(),
            Account.domain == "",
            listed_accounts(),
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
    locale: str = "en",
    reason: str = "",
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
        locale=locale,
        reason=reason,
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


# ------------------------------------------------------- reading accounts (client API)

def listed_accounts() -> ColumnElement[bool]:
    """A WHERE clause on ``Account``: the accounts the API shows anyone.

    Remote accounts, and local ones whose login is confirmed and approved (as Mastodon's
    ``without_unapproved``); never the instance actor, which is no one's profile.
    """
    ready_login = exists().where(User.account_id == Account.id, User.approved.is_(True),
                                 User.confirmed_at.is_not(None), User.disabled.is_(False))
    return and_(Account.actor_type != "Application", or_(Account.domain != "", ready_login))


async def find_account(session: AsyncSession, account_id: int) -> Account:
    """The listed account with this id, or NotFound ("Record not found")."""
    account = await session.scalar(select(Account).where(Account.id == account_id,
                                                         listed_accounts()))
    if account is None:
        raise NotFound("Record not found")
    return account


async def find_accounts(session: AsyncSession, account_ids: list[int]) -> list[Account]:
    """The listed accounts among ``account_ids``, in that order, each once; unknown ids
    are left out."""
    if not account_ids:
        return []
    found = {a.id: a for a in await session.scalars(
        select(Account).where(Account.id.in_(set(account_ids)), listed_accounts()))}
    ordered: dict[int, Account] = {}
    for account_id in account_ids:
        if account_id in found:
            ordered.setdefault(account_id, found[account_id])
    return list(ordered.values())


def profile_relations(owner: Account, query: Select[int, Account]) -> Select[int, Account]:
    """``owner``'s followers or following as its profile lists them, from
    ``follows.followers_query`` or ``following_query`` ((relation id, Account) rows):
    suspended accounts left out (Mastodon's ``without_suspended``), and nobody at all while
    ``owner`` is suspended, whose profile is shown bare (``api.entities``; Mastodon's
    ``hide_results?``). The follows themselves are kept, for a suspension can be lifted."""
    if owner.suspended_at is not None:
        return query.where(false())
    return query.where(Account.suspended_at.is_(None))


def _split_acct(acct: str, local_domain: str) -> tuple[str, str | None]:
    """``@name@host`` → (name, domain): "" for this server, None when no domain is given."""
    text = acct.strip()
    if text.lower().startswith("acct:"):
        text = text[5:]
    text = text.lstrip("@")
    username, _, domain = text.partition("@")
    if not domain:
        return username, None
    domain = domain.strip().lower()
    return username, "" if domain == local_domain.lower() else domain


async def lookup_account(session: AsyncSession, acct: str, *, local_domain: str) -> Account:
    """The account named ``acct`` ("alice", "@alice", "alice@<our domain>", or a remote
    one Easel already knows); never asks another server. NotFound otherwise."""
    username, domain = _split_acct(acct, local_domain)
    if not username:
        raise NotFound("Record not found")
    account = await session.scalar(select(Account).where(
        Account.username_key == username.lower(), Account.domain == (domain or ""),
        listed_accounts()))
    if account is None:
        raise NotFound("Record not found")
    return account


async def search_accounts(
    session: AsyncSession, q: str, *, viewer: Account | None, limit: int = 40, offset: int = 0,
    following: bool = False, local_domain: str = "",
) -> list[Account]:
    """Accounts Easel knows whose username (or display name, or a word of it) starts with
    ``q``; ``q`` may be ``@name@domain`` (our own domain, passed as ``local_domain``,
    means local). ``following`` keeps only accounts ``viewer`` follows. Exact username
    matches come first, then the most followed. Never asks another server (no ``resolve``).
    """
    username, domain = _split_acct(q, local_domain)
    username = username.strip().lower()
    if not username or (following and viewer is None):
        return []
    # Suspended accounts are not found (server.services.moderation), as in Mastodon.
    query = select(Account).where(listed_accounts(), Account.suspended_at.is_(None))
    if domain is not None:
        query = query.where(Account.domain == domain,
                            Account.username_key.startswith(username, autoescape=True))
    else:
        display = func.lower(Account.display_name)
        query = query.where(or_(
            Account.username_key.startswith(username, autoescape=True),
            display.startswith(username, autoescape=True),
            display.contains(" " + username, autoescape=True),
        ))
    if following and viewer is not None:
        query = query.where(exists().where(Follow.account_id == viewer.id,
                                           Follow.target_account_id == Account.id))
    query = query.order_by(case((Account.username_key == username, 0), else_=1),
                           Account.followers_count.desc(), Account.username_key, Account.id)
    return list(await session.scalars(query.offset(max(offset, 0)).limit(max(limit, 1))))


def normalize_tag_name(name: str) -> str:
    """A hashtag as a client may write it ("#Art", "art") in the form ``Tag.name`` stores."""
    return normalize_tag(name.strip().lstrip("#"))


def account_statuses_query(
    account: Account, viewer: Account | None, *, only_media: bool = False,
    exclude_replies: bool = False, exclude_reblogs: bool = False, tagged: str | None = None,
) -> Select[Any]:
    """The statuses on ``account``'s profile that ``viewer`` may see
    (``visibility.visible_to``), for the API to page by ``Status.id``.

    A boost is shown only with its original (``timelines.original_visible_to``: not when its
    author is suspended or blocks ``viewer``), and, to others than the profile's owner, not
    when ``viewer`` has hidden the original's author — blocked, muted, on a blocked domain
    (Mastodon's ``filtered_reblogs_scope``); the owner's own statuses stay, muted or not.
    As Mastodon: ``exclude_replies`` keeps replies to oneself (threads), ``only_media``
    keeps statuses with attachments (so no boosts), ``tagged`` one hashtag.
    """
    # timelines (through blocks) imports this module: load them on use.
    from server.services.blocks import hidden_accounts
    from server.services.timelines import original_visible_to
    from server.services.visibility import visible_to

    query = select(Status).where(Status.account_id == account.id, visible_to(viewer),
                                 original_visible_to(viewer))
    if viewer is not None and viewer.id != account.id:
        original = aliased(Status)
        query = query.where(not_(exists().where(
            original.id == Status.reblog_of_id,
            original.account_id.in_(hidden_accounts(viewer.id)))))
    if only_media:
        query = query.where(exists().where(MediaAttachment.status_id == Status.id))
    if exclude_replies:
        # A remote reply whose parent could not be fetched has only in_reply_to_uri.
        query = query.where(or_(Status.in_reply_to_id.is_(None) & Status.in_reply_to_uri.is_(None),
                                Status.in_reply_to_account_id == Status.account_id))
    if exclude_reblogs:
        query = query.where(Status.reblog_of_id.is_(None))
    if tagged is not None:
        query = query.where(exists().where(
            StatusTag.status_id == Status.id, StatusTag.tag_id == Tag.id,
            Tag.name == normalize_tag_name(tagged)))
    return query
