"""The OAuth 2 endpoints clients log in through: /oauth/authorize (pages), /oauth/token,
/oauth/revoke, and the RFC 8414 metadata that describes them.

The authorize pages are plain HTML forms: a login form (e-mail address or username and
password) and a consent form naming the app and the scopes it asks for. Being logged in
is a signed cookie (``server/secrets.py``) bound to the password hash, so changing the
password logs every browser out; every form carries a CSRF token bound to a second
cookie. The pages may never be framed, cached or leak the code through a Referer.
The grants themselves live in ``server/services/oauth.py``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from server.api.params import TRUE_WORDS, Params
from server.errors import ApiError
from server.models import Account, User
from server.secrets import keyed_digest, secret_key, sign, unsign
from server.services import oauth
from server.services.oauth import AuthorizationRequest, AuthorizationRequestError, OAuthError
from server.services.scopes import ALL_SCOPES
from server.state import EaselState, easel
from server.web.pages import templates

SESSION_COOKIE = "easel_session"
CSRF_COOKIE = "easel_csrf"
CSRF_FIELD = "authenticity_token"
SESSION_MAX_AGE = 7 * 24 * 3600
SESSION_PURPOSE = "login-session"
CSRF_PURPOSE = "csrf"
AUTHORIZE_FIELDS = ("client_id", "redirect_uri", "response_type", "scope", "state",
                    "code_challenge", "code_challenge_method", "response_mode")
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}
TOKEN_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}

SCOPE_VERBS = {"read": "see", "write": "change", "admin:read": "see (as an admin)",
               "admin:write": "moderate (as an admin)"}
SCOPE_TEXTS = {
    "read": "See everything in your account",
    "write": "Post, change and delete in your account",
    "follow": "Follow, block and mute accounts for you",
    "push": "Receive your push notifications",
    "profile": "See your profile only",
    "admin:read": "See all data on this server (admin)",
    "admin:write": "Moderate this server (admin)",
}


def describe_scope(scope: str) -> str:
    """A line a person can read for a scope: ``read:statuses`` → "see your statuses"."""
    if scope in SCOPE_TEXTS:
        return SCOPE_TEXTS[scope]
    head, _, resource = scope.rpartition(":")
    verb = SCOPE_VERBS.get(head, head)
    return f"{verb.capitalize()} your {resource.replace('_', ' ')}"


# ------------------------------------------------------------------------ cookies and CSRF

def _secure(state: EaselState) -> bool:
    return state.settings.scheme == "https"


def _session_fingerprint(key: bytes, user: User) -> str:
    # Bound to the password hash: a new password ends every existing login.
    return keyed_digest(key, "session-password", user.password_hash)[:22]


def _set_session(response: Response, state: EaselState, user: User) -> None:
    key = secret_key(state.settings)
    value = sign(key, SESSION_PURPOSE, f"{user.id}:{_session_fingerprint(key, user)}")
    response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_MAX_AGE, path="/", httponly=True,
                        secure=_secure(state), samesite="lax")


async def _session_user(request: Request, session: AsyncSession, state: EaselState) -> User | None:
    """The logged-in user the session cookie names, if it is valid and they may log in."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    key = secret_key(state.settings)
    payload = unsign(key, SESSION_PURPOSE, raw, max_age=SESSION_MAX_AGE)
    if payload is None:
        return None
    user_id, _, fingerprint = payload.partition(":")
    if not user_id.isdigit():
        return None
    user = await session.get(User, int(user_id))
    if user is None or oauth.login_refusal(user) is not None:
        return None
    if not secrets.compare_digest(fingerprint, _session_fingerprint(key, user)):
        return None
    return user


def _csrf_cookie(request: Request) -> str | None:
    value = request.cookies.get(CSRF_COOKIE)
    return value if value and len(value) >= 32 else None


def _csrf_ok(request: Request, state: EaselState, params: Params) -> bool:
    cookie = _csrf_cookie(request)
    submitted = params.get_str(CSRF_FIELD)
    if cookie is None or not submitted:
        return False
    expected = keyed_digest(secret_key(state.settings), CSRF_PURPOSE, cookie)
    return secrets.compare_digest(submitted.encode("utf-8"), expected.encode("ascii"))


def _page(request: Request, state: EaselState, template: str, context: dict[str, Any], *,
          status_code: int = 200) -> Response:
    """Render an oauth_*.html page with the security headers and a CSRF token for its form."""
    cookie = _csrf_cookie(request)
    fresh = cookie is None
    if cookie is None:
        cookie = secrets.token_urlsafe(32)
    context = {"title": state.settings.title,
               "csrf_token": keyed_digest(secret_key(state.settings), CSRF_PURPOSE, cookie),
               "csrf_field": CSRF_FIELD, **context}
    response = templates.TemplateResponse(request, template, context, status_code=status_code,
                                          headers=PAGE_HEADERS)
    if fresh:
        response.set_cookie(CSRF_COOKIE, cookie, path="/oauth", httponly=True,
                            secure=_secure(state), samesite="lax")
    return response


# ------------------------------------------------------------------------------ redirects

def _with_params(uri: str, values: dict[str, str], mode: str) -> str:
    encoded = urlencode(values)
    if mode == "fragment":
        return f"{uri}#{encoded}"
    parts = urlsplit(uri)
    query = f"{parts.query}&{encoded}" if parts.query else encoded
    return urlunsplit(parts._replace(query=query))


def _redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=302, headers=PAGE_HEADERS)


def _request_error(request: Request, state: EaselState, error: AuthorizationRequestError) -> Response:
    """Send an authorization error back to the client, or show it when there is nowhere safe to
    send it (unknown client or redirect URI, oob)."""
    if error.redirect_uri is not None:
        values = {"error": error.error, "error_description": error.description}
        if error.state is not None:
            values["state"] = error.state
        return _redirect(_with_params(error.redirect_uri, values, error.response_mode))
    return _page(request, state, "oauth_error.html",
                 {"error": error.error, "description": error.description}, status_code=400)


def _authorize_params(params: Params) -> dict[str, str | None]:
    return {name: params.get_str(name) for name in AUTHORIZE_FIELDS}


def _login_page(request: Request, state: EaselState, auth: AuthorizationRequest, *,
                error: str | None = None, login: str = "", status_code: int = 200) -> Response:
    return _page(request, state, "oauth_login.html", {
        "app": auth.app, "fields": auth.form_fields(), "error": error, "login": login,
        "action": "/oauth/authorize/login",
    }, status_code=status_code)


def _consent_page(request: Request, state: EaselState, auth: AuthorizationRequest,
                  account: Account) -> Response:
    fields = auth.form_fields()
    switch = "/oauth/authorize?" + urlencode({**fields, "force_login": "true"})
    return _page(request, state, "oauth_consent.html", {
        "app": auth.app, "fields": fields, "action": "/oauth/authorize",
        "handle": f"{account.username}@{state.settings.domain}",
        "scopes": [(scope, describe_scope(scope)) for scope in auth.scopes],
        "switch_url": switch,
    })


# ----------------------------------------------------------------------------- endpoints

async def authorize(request: Request) -> Response:
    """GET: the login form, or the consent form for a logged-in user."""
    state = easel(request)
    params = await Params.from_request(request)
    force_login = (params.get_str("force_login") or "").strip().lower() in TRUE_WORDS
    async with state.db.session() as session:
        try:
            auth = await oauth.check_authorization_request(session, _authorize_params(params))
        except AuthorizationRequestError as error:
            return _request_error(request, state, error)
        user = None if force_login else await _session_user(request, session, state)
        account = await session.get(Account, user.account_id) if user is not None else None
    if account is None:
        return _login_page(request, state, auth)
    return _consent_page(request, state, auth, account)


async def login(request: Request) -> Response:
    """POST of the login form: set the session cookie and go back to the consent form."""
    state = easel(request)
    params = await Params.from_request(request)
    login_name = (params.get_str("login") or "").strip()
    async with state.db.session() as session:
        try:
            auth = await oauth.check_authorization_request(session, _authorize_params(params))
        except AuthorizationRequestError as error:
            return _request_error(request, state, error)
        if not _csrf_ok(request, state, params):
            return _login_page(request, state, auth, login=login_name, status_code=403,
                               error="This form has expired. Please try again.")
        user = await oauth.authenticate_user(session, login_name, params.get_str("password"))
        if user is None:
            return _login_page(request, state, auth, login=login_name, status_code=422,
                               error="Invalid e-mail address, username or password.")
        refusal = oauth.login_refusal(user)
        if refusal is not None:
            return _login_page(request, state, auth, login=login_name, status_code=403,
                               error=refusal + ".")
    response = RedirectResponse("/oauth/authorize?" + urlencode(auth.form_fields()), status_code=303,
                                headers=PAGE_HEADERS)
    _set_session(response, state, user)
    # A new CSRF cookie after logging in, so a token seen before login is worth nothing.
    response.delete_cookie(CSRF_COOKIE, path="/oauth", secure=_secure(state), httponly=True,
                           samesite="lax")
    return response


async def decide(request: Request) -> Response:
    """POST of the consent form: Authorize (a code for the client) or Deny."""
    state = easel(request)
    params = await Params.from_request(request)
    async with state.db.session() as session:
        try:
            auth = await oauth.check_authorization_request(session, _authorize_params(params))
        except AuthorizationRequestError as error:
            return _request_error(request, state, error)
        user = await _session_user(request, session, state)
        if user is None:
            return _login_page(request, state, auth, status_code=401,
                               error="Please log in to continue.")
        if not _csrf_ok(request, state, params):
            return _page(request, state, "oauth_error.html", {
                "error": "invalid_request",
                "description": "This form has expired. Go back to the app and try again."},
                status_code=403)
        decision = params.get_str("decision")
        if decision == "deny":
            denied = OAuthError("access_denied")
            if auth.is_oob:
                return _page(request, state, "oauth_error.html",
                             {"error": denied.error, "description": denied.description})
            values = {"error": denied.error, "error_description": denied.description}
            if auth.state is not None:
                values["state"] = auth.state
            return _redirect(_with_params(auth.redirect_uri, values, auth.response_mode))
        if decision != "authorize":
            return _page(request, state, "oauth_error.html", {
                "error": "invalid_request", "description": "Choose Authorize or Deny."},
                status_code=400)
        code = await oauth.issue_authorization_code(session, auth, user)
    if auth.is_oob:
        return _page(request, state, "oauth_code.html", {"app": auth.app, "code": code})
    values = {"code": code}
    if auth.state is not None:
        values["state"] = auth.state
    return _redirect(_with_params(auth.redirect_uri, values, auth.response_mode))


def _client_credentials(request: Request, params: Params) -> tuple[str | None, str | None]:
    """client_id and client_secret from HTTP Basic (RFC 6749 §2.3.1) or from the body."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and encoded.strip():
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, sep, client_secret = decoded.partition(":")
        if not sep:
            return None, None
        return unquote_plus(client_id), unquote_plus(client_secret)
    return params.get_str("client_id"), params.get_str("client_secret")


def _oauth_error(error: OAuthError) -> JSONResponse:
    headers = dict(TOKEN_HEADERS)
    if error.status_code == 401:
        headers["WWW-Authenticate"] = 'Basic realm="Easel", error="invalid_client"'
    return JSONResponse(error.to_json(), status_code=error.status_code, headers=headers)


async def token(request: Request) -> Response:
    state = easel(request)
    try:
        params = await Params.from_request(request)
        client_id, client_secret = _client_credentials(request, params)
        grant_type = params.get_str("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "Missing required parameter: grant_type.")
        if grant_type not in oauth.GRANT_TYPES:
            raise OAuthError("unsupported_grant_type")
        async with state.db.session() as session:
            app = await oauth.authenticate_client(session, client_id, client_secret)
            if grant_type == "authorization_code":
                issued = await oauth.grant_authorization_code(
                    session, app, code=params.get_str("code"),
                    redirect_uri=params.get_str("redirect_uri"),
                    code_verifier=params.get_str("code_verifier"))
            elif grant_type == "password":
                issued = await oauth.grant_password(
                    session, app, username=params.get_str("username"),
                    password=params.get_str("password"), scope=params.get_str("scope"))
            elif grant_type == "client_credentials":
                issued = await oauth.grant_client_credentials(session, app, scope=params.get_str("scope"))
            else:
                issued = await oauth.grant_refresh_token(
                    session, app, refresh_token=params.get_str("refresh_token"),
                    scope=params.get_str("scope"))
    except OAuthError as error:
        return _oauth_error(error)
    except ApiError as error:  # a malformed body or a parameter of the wrong type
        return _oauth_error(OAuthError("invalid_request", str(error.detail)))
    return JSONResponse(issued.to_json(), headers=TOKEN_HEADERS)


async def revoke(request: Request) -> Response:
    state = easel(request)
    try:
        params = await Params.from_request(request)
        client_id, client_secret = _client_credentials(request, params)
        async with state.db.session() as session:
            app = await oauth.authenticate_client(session, client_id, client_secret)
            await oauth.revoke_token(session, app, params.get_str("token"))
    except OAuthError as error:
        return _oauth_error(error)
    except ApiError as error:
        return _oauth_error(OAuthError("invalid_request", str(error.detail)))
    return JSONResponse({}, headers=TOKEN_HEADERS)


async def authorization_server_metadata(request: Request) -> Response:
    """RFC 8414, as Mastodon 4.3 serves it, listing exactly what is served here."""
    base = easel(request).urls.base
    return JSONResponse({
        "issuer": f"{base}/",
        "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "app_registration_endpoint": f"{base}/api/v1/apps",
        "scopes_supported": sorted(ALL_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": list(oauth.RESPONSE_MODES),
        "code_challenge_methods_supported": [oauth.PKCE_METHOD],
        "grant_types_supported": list(oauth.GRANT_TYPES),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    })


routes: list[BaseRoute] = [
    Route("/oauth/authorize", authorize, methods=["GET", "HEAD"]),
    Route("/oauth/authorize", decide, methods=["POST"]),
    Route("/oauth/authorize/login", login, methods=["POST"]),
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
    Route("/.well-known/oauth-authorization-server", authorization_server_metadata,
          methods=["GET", "HEAD"]),
]
