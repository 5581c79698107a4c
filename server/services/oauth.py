"""OAuth 2 as Mastodon (Doorkeeper) does it: apps, authorization codes, tokens, revocation.

Every secret a client presents later — authorization codes, access and refresh tokens —
is stored only as its SHA-256 digest; the plaintext exists once, in the response that
hands it out. Grants refuse with :class:`OAuthError`, whose ``error`` codes, texts and
statuses are Doorkeeper's (RFC 6749 §5.2), so clients that match on them keep working.

This module never touches HTTP: the endpoints in ``server/api/apps.py`` and
``server/api/oauth.py`` parse requests and turn the results into responses.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import Account, OAuthApplication, OAuthAuthorizationCode, OAuthToken, User
from server.services.errors import ValidationFailed
from server.services.passwords import hash_password, verify_password
from server.services.scopes import ScopeError, parse_scopes, subset
from server.services.tokens import token_digest
from server.services.web_push import forget_token

OOB_REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob"
DEFAULT_SCOPE = "read"
CODE_LIFETIME = timedelta(minutes=10)
# Mastodon's limits on an application (app/models/concerns/application_extension.rb).
MAX_APP_NAME = 60
MAX_APP_WEBSITE = 2000
MAX_REDIRECT_URIS = 2000
FORBIDDEN_REDIRECT_SCHEMES = frozenset({"javascript", "data", "vbscript", "file"})
PKCE_METHOD = "S256"
# RFC 7636 §4.2: an S256 challenge is the base64url SHA-256 of the verifier, 43 characters.
S256_CHALLENGE_RE = re.compile(r"\A[A-Za-z0-9_-]{43}\Z")
# RFC 7636 §4.1: the verifier is 43 to 128 unreserved characters.
CODE_VERIFIER_RE = re.compile(r"\A[A-Za-z0-9._~-]{43,128}\Z")
GRANT_TYPES = ("authorization_code", "password", "client_credentials", "refresh_token")
RESPONSE_MODES = ("query", "fragment")

# Doorkeeper's descriptions (config/locales/en.yml, doorkeeper.errors.messages).
ERROR_DESCRIPTIONS = {
    "invalid_request": "The request is missing a required parameter, includes an unsupported "
                       "parameter value, or is otherwise malformed.",
    "invalid_client": "Client authentication failed due to unknown client, no client "
                      "authentication included, or unsupported authentication method.",
    "invalid_grant": "The provided authorization grant is invalid, expired, revoked, does not "
                     "match the redirection URI used in the authorization request, or was issued "
                     "to another client.",
    "unauthorized_client": "The client is not authorized to perform this request using this method.",
    "unsupported_grant_type": "The authorization grant type is not supported by the authorization server.",
    "invalid_scope": "The requested scope is invalid, unknown, or malformed.",
    "invalid_redirect_uri": "The requested redirect uri is malformed or doesn't match client redirect URI.",
    "unsupported_response_type": "The authorization server does not support this response type.",
    "access_denied": "The resource owner or authorization server denied the request.",
}
ERROR_STATUS = {"invalid_client": 401, "unauthorized_client": 403}


class OAuthError(Exception):
    """An OAuth error response: ``{"error": code, "error_description": text}``."""

    def __init__(self, error: str, description: str | None = None, status_code: int | None = None) -> None:
        self.error = error
        self.description = description or ERROR_DESCRIPTIONS.get(error, error)
        self.status_code = status_code or ERROR_STATUS.get(error, 400)
        super().__init__(f"{error}: {self.description}")

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued; the only time its plaintext exists."""

    access_token: str
    refresh_token: str | None
    scopes: list[str]
    created_at: datetime
    user_id: int | None = None  # whose token (None: the app's own)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "scope": " ".join(self.scopes),
            "created_at": int(self.created_at.timestamp()),
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


# ----------------------------------------------------------------------------- applications

def validate_redirect_uri(uri: str) -> str:
    """An absolute URI without a fragment (any scheme apps use, e.g. ``myapp://cb``), or oob."""
    if uri == OOB_REDIRECT_URI:
        return uri
    if any(ch.isspace() or ord(ch) < 32 or ch in "<>\"\\" for ch in uri):
        raise ValidationFailed("Redirect URI must be a valid URI.")
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise ValidationFailed("Redirect URI must be a valid URI.") from None
    if not parts.scheme:
        raise ValidationFailed("Redirect URI must be an absolute URI.")
    if parts.fragment or uri.endswith("#"):
        raise ValidationFailed("Redirect URI cannot contain a fragment.")
    if parts.scheme.lower() in FORBIDDEN_REDIRECT_SCHEMES:
        raise ValidationFailed("Redirect URI is forbidden by the server.")
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        raise ValidationFailed("Redirect URI must be an absolute URI.")
    if not parts.netloc and not parts.path:
        raise ValidationFailed("Redirect URI must be an absolute URI.")
    return uri


def split_redirect_uris(values: list[str]) -> list[str]:
    """``redirect_uris`` as clients send it: one string (newline- or space-separated) or a list."""
    uris: list[str] = []
    for value in values:
        for uri in value.split():
            if uri not in uris:
                uris.append(uri)
    return uris


def _validate_website(website: str) -> str:
    website = website.strip()
    if not website:
        return ""
    if len(website) > MAX_APP_WEBSITE:
        raise ValidationFailed(f"Application website is too long (maximum is {MAX_APP_WEBSITE} characters)")
    try:
        parts = urlsplit(website)
    except ValueError:
        raise ValidationFailed("Application website is invalid") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or any(
            ch.isspace() for ch in website):
        raise ValidationFailed("Application website is invalid")
    return website


async def create_application(
    session: AsyncSession,
    *,
    name: str | None,
    redirect_uris: list[str],
    scopes: str | None,
    website: str | None,
) -> OAuthApplication:
    """Register a client app (POST /api/v1/apps), committed; ValidationFailed on bad input."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Application name can't be blank")
    if len(name) > MAX_APP_NAME:
        raise ValidationFailed(f"Application name is too long (maximum is {MAX_APP_NAME} characters)")
    uris = split_redirect_uris(redirect_uris)
    if not uris:
        raise ValidationFailed("Redirect URI can't be blank")
    for uri in uris:
        validate_redirect_uri(uri)
    joined = "\n".join(uris)
    if len(joined) > MAX_REDIRECT_URIS:
        raise ValidationFailed(f"Redirect URI is too long (maximum is {MAX_REDIRECT_URIS} characters)")
    try:
        scope_list = parse_scopes(scopes, DEFAULT_SCOPE)
    except ScopeError:
        raise ValidationFailed("Scopes doesn't match configured on the server.") from None
    app = OAuthApplication(
        name=name,
        website=_validate_website(website or ""),
        redirect_uris=joined,
        scopes=" ".join(scope_list),
        client_id=secrets.token_urlsafe(32),
        client_secret=secrets.token_urlsafe(32),
    )
    session.add(app)
    await session.commit()
    return app


async def find_application(session: AsyncSession, client_id: str | None) -> OAuthApplication | None:
    if not client_id:
        return None
    app: OAuthApplication | None = await session.scalar(
        select(OAuthApplication).where(OAuthApplication.client_id == client_id))
    return app


async def authenticate_client(
    session: AsyncSession, client_id: str | None, client_secret: str | None
) -> OAuthApplication:
    """The app whose id and secret these are, or OAuthError invalid_client (401)."""
    app = await find_application(session, client_id)
    if app is None or not client_secret or not hmac.compare_digest(
            app.client_secret.encode("utf-8"), client_secret.encode("utf-8")):
        raise OAuthError("invalid_client")
    return app


def requested_scopes(raw: str | None, allowed: list[str]) -> list[str]:
    """The scopes a request names (``read`` when none), each within ``allowed``; else invalid_scope."""
    try:
        scopes = parse_scopes(raw, DEFAULT_SCOPE)
    except ScopeError:
        raise OAuthError("invalid_scope") from None
    if not subset(scopes, allowed):
        raise OAuthError("invalid_scope")
    return scopes


# ------------------------------------------------------------------------------------ users

_dummy_hash: str | None = None


def _timing_dummy_hash() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    return _dummy_hash


async def find_user_by_login(session: AsyncSession, login: str) -> User | None:
    """A local user by email or by username (the password grant accepts both, as Mastodon),
    whatever their standing: the caller decides what a pending or disabled user may do."""
    login = login.strip()
    if not login:
        return None
    if "@" in login.lstrip("@"):
        user: User | None = await session.scalar(select(User).where(User.email == login.lower()))
        return user
    return await session.scalar(
        select(User).join(Account, Account.id == User.account_id)
        .where(Account.username_key == login.lstrip("@").lower(), Account.domain == ""))


async def authenticate_user(session: AsyncSession, login: str | None, password: str | None) -> User | None:
    """The user these credentials belong to, or None. Argon2 runs off the event loop, and as
    long for an unknown login as for a wrong password."""
    if not login or not password:
        return None
    user = await find_user_by_login(session, login)
    password_hash = user.password_hash if user is not None else _timing_dummy_hash()
    ok = await asyncio.to_thread(verify_password, password_hash, password)
    return user if ok and user is not None else None


def login_refusal(user: User) -> str | None:
    """Why this user may not get tokens now (the texts the API answers with), or None."""
    if user.disabled:
        return "Your login is currently disabled"
    if user.confirmed_at is None:
        return "Your login is missing a confirmed e-mail address"
    if not user.approved:
        return "Your login is currently pending approval"
    return None


async def account_suspended(session: AsyncSession, user: User) -> bool:
    """Whether ``user``'s account is suspended (``server.services.moderation``): no
    tokens are issued to it, and those it has are refused (``server.api.auth``)."""
    suspended_at = await session.scalar(
        select(Account.suspended_at).where(Account.id == user.account_id))
    return suspended_at is not None


# ------------------------------------------------------------------- authorization requests

@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked GET /oauth/authorize request: who asks, for what, and where to answer."""

    app: OAuthApplication
    redirect_uri: str
    scopes: list[str]
    state: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    response_mode: str

    @property
    def is_oob(self) -> bool:
        return self.redirect_uri == OOB_REDIRECT_URI

    def form_fields(self) -> dict[str, str]:
        """The request as the parameters that re-create it (hidden fields, a redirect back)."""
        fields = {"client_id": self.app.client_id, "redirect_uri": self.redirect_uri,
                  "response_type": "code", "scope": " ".join(self.scopes)}
        if self.state is not None:
            fields["state"] = self.state
        if self.code_challenge is not None:
            fields["code_challenge"] = self.code_challenge
            fields["code_challenge_method"] = self.code_challenge_method or PKCE_METHOD
        if self.response_mode != "query":
            fields["response_mode"] = self.response_mode
        return fields


class AuthorizationRequestError(OAuthError):
    """A bad authorization request. ``redirect_uri`` is set when the error may be sent back to
    the client there (RFC 6749 §4.1.2.1); otherwise the user sees it on a page."""

    def __init__(self, error: str, description: str | None = None, *, redirect_uri: str | None = None,
                 state: str | None = None, response_mode: str = "query") -> None:
        super().__init__(error, description)
        self.redirect_uri = redirect_uri
        self.state = state
        self.response_mode = response_mode


async def check_authorization_request(
    session: AsyncSession, params: dict[str, str | None]
) -> AuthorizationRequest:
    """Validate /oauth/authorize parameters in Doorkeeper's order: client, redirect URI (errors
    before this point are shown to the user), then response type, scopes and PKCE (sent back)."""
    app = await find_application(session, params.get("client_id"))
    if app is None:
        raise AuthorizationRequestError("invalid_client")
    redirect_uri = params.get("redirect_uri") or ""
    if not redirect_uri:
        raise AuthorizationRequestError("invalid_request", "Missing required parameter: redirect_uri.")
    if redirect_uri not in app.redirect_uri_list:
        raise AuthorizationRequestError("invalid_redirect_uri")
    state = params.get("state")
    response_mode = params.get("response_mode") or "query"
    back = redirect_uri if redirect_uri != OOB_REDIRECT_URI else None
    if response_mode not in RESPONSE_MODES:
        raise AuthorizationRequestError(
            "invalid_request", f"Unsupported response_mode: use one of {', '.join(RESPONSE_MODES)}.",
            redirect_uri=back, state=state)

    def fail(error: str, description: str | None = None) -> AuthorizationRequestError:
        return AuthorizationRequestError(error, description, redirect_uri=back, state=state,
                                         response_mode=response_mode)

    response_type = params.get("response_type")
    if not response_type:
        raise fail("invalid_request", "Missing required parameter: response_type.")
    if response_type != "code":
        raise fail("unsupported_response_type")
    try:
        scopes = requested_scopes(params.get("scope"), app.scopes.split())
    except OAuthError:
        raise fail("invalid_scope") from None
    challenge = params.get("code_challenge") or None
    method = params.get("code_challenge_method") or None
    if challenge is None and method is not None:
        raise fail("invalid_request", "Missing required parameter: code_challenge.")
    if challenge is not None:
        if method != PKCE_METHOD:
            raise fail("invalid_request",
                       f"Unsupported code_challenge_method {method or '(none, meaning plain)'}: "
                       f"only {PKCE_METHOD} is supported.")
        if not S256_CHALLENGE_RE.match(challenge):
            raise fail("invalid_request", "The code_challenge is not a base64url SHA-256 digest.")
    return AuthorizationRequest(app=app, redirect_uri=redirect_uri, scopes=scopes, state=state,
                                code_challenge=challenge, code_challenge_method=method,
                                response_mode=response_mode)


async def issue_authorization_code(session: AsyncSession, request: AuthorizationRequest, user: User) -> str:
    """A single-use code for ``request``, valid for ten minutes; committed."""
    code = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(OAuthAuthorizationCode(
        code_digest=token_digest(code), application_id=request.app.id, user_id=user.id,
        redirect_uri=request.redirect_uri, scopes=" ".join(request.scopes),
        code_challenge=request.code_challenge, code_challenge_method=request.code_challenge_method,
        created_at=now, expires_at=now + CODE_LIFETIME,
    ))
    await session.commit()
    return code


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# ----------------------------------------------------------------------------------- tokens

async def issue_token(
    session: AsyncSession, app: OAuthApplication, user: User | None, scopes: list[str],
    *, now: datetime | None = None,
) -> IssuedToken:
    """Add an access token (and, for a user, a refresh token) and commit with whatever the
    session already holds."""
    access = secrets.token_urlsafe(32)
    refresh = secrets.token_urlsafe(32) if user is not None else None
    created = now or utcnow()
    session.add(OAuthToken(
        token_digest=token_digest(access),
        refresh_token_digest=token_digest(refresh) if refresh is not None else None,
        application_id=app.id, user_id=user.id if user is not None else None,
        scopes=" ".join(scopes), created_at=created,
    ))
    await session.commit()
    return IssuedToken(access_token=access, refresh_token=refresh, scopes=scopes, created_at=created,
                       user_id=user.id if user is not None else None)


async def grant_authorization_code(
    session: AsyncSession, app: OAuthApplication, *, code: str | None, redirect_uri: str | None,
    code_verifier: str | None,
) -> IssuedToken:
    if not code:
        raise OAuthError("invalid_request", "Missing required parameter: code.")
    if not redirect_uri:
        raise OAuthError("invalid_request", "Missing required parameter: redirect_uri.")
    now = utcnow()
    grant = await session.scalar(
        select(OAuthAuthorizationCode).where(OAuthAuthorizationCode.code_digest == token_digest(code)))
    if (grant is None or grant.application_id != app.id or grant.used_at is not None
            or grant.expires_at <= now or grant.redirect_uri != redirect_uri):
        raise OAuthError("invalid_grant")
    if grant.code_challenge is not None:
        if not code_verifier or not CODE_VERIFIER_RE.match(code_verifier):
            raise OAuthError("invalid_grant")
        if not hmac.compare_digest(s256_challenge(code_verifier), grant.code_challenge):
            raise OAuthError("invalid_grant")
    user = await session.get(User, grant.user_id)
    if user is None or login_refusal(user) is not None or await account_suspended(session, user):
        raise OAuthError("invalid_grant")
    # Single use even against a concurrent exchange: only one UPDATE finds it unused.
    claimed = await session.scalar(
        update(OAuthAuthorizationCode)
        .where(OAuthAuthorizationCode.id == grant.id, OAuthAuthorizationCode.used_at.is_(None))
        .values(used_at=now).returning(OAuthAuthorizationCode.id))
    if claimed is None:
        await session.rollback()
        raise OAuthError("invalid_grant")
    return await issue_token(session, app, user, grant.scopes.split(), now=now)


async def grant_password(
    session: AsyncSession, app: OAuthApplication, *, username: str | None, password: str | None,
    scope: str | None,
) -> IssuedToken:
    if not username or not password:
        raise OAuthError("invalid_request", "Missing required parameter: "
                         f"{'username' if not username else 'password'}.")
    scopes = requested_scopes(scope, app.scopes.split())
    user = await authenticate_user(session, username, password)
    if user is None or login_refusal(user) is not None or await account_suspended(session, user):
        raise OAuthError("invalid_grant")
    return await issue_token(session, app, user, scopes)


async def grant_client_credentials(
    session: AsyncSession, app: OAuthApplication, *, scope: str | None
) -> IssuedToken:
    scopes = requested_scopes(scope, app.scopes.split())
    return await issue_token(session, app, None, scopes)


async def grant_refresh_token(
    session: AsyncSession, app: OAuthApplication, *, refresh_token: str | None, scope: str | None,
) -> IssuedToken:
    """Rotate: the old access and refresh tokens stop working, a new pair with the same
    scopes (or fewer, if ``scope`` asks for fewer) is issued."""
    if not refresh_token:
        raise OAuthError("invalid_request", "Missing required parameter: refresh_token.")
    old = await session.scalar(
        select(OAuthToken).where(OAuthToken.refresh_token_digest == token_digest(refresh_token)))
    if old is None or old.application_id != app.id or old.revoked_at is not None or old.user_id is None:
        raise OAuthError("invalid_grant")
    granted = old.scopes.split()
    scopes = requested_scopes(scope, granted) if scope else granted
    user = await session.get(User, old.user_id)
    if user is None or login_refusal(user) is not None or await account_suspended(session, user):
        raise OAuthError("invalid_grant")
    now = utcnow()
    revoked = await session.scalar(
        update(OAuthToken).where(OAuthToken.id == old.id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now).returning(OAuthToken.id))
    if revoked is None:  # a concurrent refresh used it first
        await session.rollback()
        raise OAuthError("invalid_grant")
    return await issue_token(session, app, user, scopes, now=now)


async def revoke_token(session: AsyncSession, app: OAuthApplication, token: str | None) -> None:
    """Revoke an access or refresh token of ``app`` (RFC 7009). An unknown token is no error;
    another app's token is (Doorkeeper answers 403 unauthorized_client)."""
    if not token:
        raise OAuthError("invalid_request", "Missing required parameter: token.")
    digest = token_digest(token)
    found = await session.scalar(
        select(OAuthToken).where(or_(OAuthToken.token_digest == digest,
                                     OAuthToken.refresh_token_digest == digest)))
    if found is None:
        return
    if found.application_id != app.id:
        raise OAuthError("unauthorized_client", "You are not authorized to revoke this token")
    if found.revoked_at is None:
        await session.execute(update(OAuthToken).where(OAuthToken.id == found.id)
                              .values(revoked_at=utcnow()))
        await forget_token(session, found.id)  # its Web Push subscription goes with it
        await session.commit()
