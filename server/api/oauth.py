"""The OAuth 2 endpoints clients log in through: /oauth/authorize (pages), /oauth/token,
/oauth/revoke, and the RFC 8414 metadata that describes them.

The authorize pages are plain HTML forms: a login form (e-mail address or username and
password) and a consent form naming the app and the scopes it asks for. The login
cookie and the CSRF tokens on every form are ``server/web/session.py``'s, shared with
the rest of the web pages. These pages may never be framed, cached or leak the code
through a Referer.
The grants themselves live in ``server/services/oauth.py``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from server.api.params import TRUE_WORDS, Params
from server.errors import ApiError
from server.models import Account
from server.services import oauth, user_ips
from server.services.oauth import AuthorizationRequest, AuthorizationRequestError, OAuthError
from server.services.scopes import ALL_SCOPES
from server.state import EaselState, easel
from server.web.security import PRIVATE_PAGE_HEADERS, source_of
from server.web.session import (
    CSRF_FIELD,
    csrf_ok,
    current_user,
    log_in,
    page_headers,
    render,
)

AUTHORIZE_FIELDS = ("client_id", "redirect_uri", "response_type", "scope", "state",
                    "code_challenge", "code_challenge_method", "response_mode")
# On top of every page's security headers (server/web/security.py): these pages hold
# secrets (a login form, a code) and are never cached, indexed or sent as a Referer.
PAGE_HEADERS = {**PRIVATE_PAGE_HEADERS, "X-Robots-Tag": "noindex"}
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


# ------------------------------------------------------------------------------- pages

def _page(request: Request, state: EaselState, template: str, context: dict[str, Any], *,
          status_code: int = 200, form_targets: list[str] | None = None) -> Response:
    """Render an oauth_*.html page (with a CSRF token for its form) as every page is."""
    return render(request, state, template, context, status_code=status_code,
                  headers=PAGE_HEADERS, form_targets=form_targets or ())


def _form_ok(request: Request, state: EaselState, params: Params) -> bool:
    return csrf_ok(request, state, params.get_str(CSRF_FIELD))


# ------------------------------------------------------------------------------ redirects

def _with_params(uri: str, values: dict[str, str], mode: str) -> str:
    encoded = urlencode(values)
    if mode == "fragment":
        return f"{uri}#{encoded}"
    parts = urlsplit(uri)
    query = f"{parts.query}&{encoded}" if parts.query else encoded
    return urlunsplit(parts._replace(query=query))


def _redirect(state: EaselState, location: str) -> Response:
    return RedirectResponse(location, status_code=302, headers=page_headers(state, PAGE_HEADERS))


def _request_error(request: Request, state: EaselState, error: AuthorizationRequestError) -> Response:
    """Send an authorization error back to the client, or show it when there is nowhere safe to
    send it (unknown client or redirect URI, oob)."""
    if error.redirect_uri is not None:
        values = {"error": error.error, "error_description": error.description}
        if error.state is not None:
            values["state"] = error.state
        return _redirect(state, _with_params(error.redirect_uri, values, error.response_mode))
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
    # The answer redirects to the app: its origin (or custom scheme) must be a form target.
    target = source_of(auth.redirect_uri)
    return _page(request, state, "oauth_consent.html", {
        "app": auth.app, "fields": fields, "action": "/oauth/authorize",
        "handle": f"{account.username}@{state.settings.domain}",
        "scopes": [(scope, describe_scope(scope)) for scope in auth.scopes],
        "switch_url": switch,
    }, form_targets=[target] if target else [])


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
        user = None if force_login else await current_user(request, session, state)
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
        if not _form_ok(request, state, params):
            return _login_page(request, state, auth, login=login_name, status_code=403,
                               error="This form has expired. Please try again.")
        user = await oauth.authenticate_user(session, login_name, params.get_str("password"))
        if user is None:
            return _login_page(request, state, auth, login=login_name, status_code=422,
                               error="Invalid e-mail address, username or password.")
        refusal = oauth.login_refusal(user)
        if refusal is None and await oauth.account_suspended(session, user):
            refusal = "Your login is currently disabled"
        if refusal is not None:
            return _login_page(request, state, auth, login=login_name, status_code=403,
                               error=refusal + ".")
        await user_ips.record_ip(session, state.settings, user.id, user_ips.client_ip(request))
        await session.commit()
    response = RedirectResponse("/oauth/authorize?" + urlencode(auth.form_fields()), status_code=303,
                                headers=page_headers(state, PAGE_HEADERS))
    log_in(response, state, user)
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
        user = await current_user(request, session, state)
        if user is None:
            return _login_page(request, state, auth, status_code=401,
                               error="Please log in to continue.")
        if not _form_ok(request, state, params):
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
            return _redirect(state, _with_params(auth.redirect_uri, values, auth.response_mode))
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
    return _redirect(state, _with_params(auth.redirect_uri, values, auth.response_mode))


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
                await user_ips.record_ip(session, state.settings, issued.user_id,
                                         user_ips.client_ip(request))
                await session.commit()
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
