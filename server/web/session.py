"""Being logged in on the web, and CSRF protection for every form, in one place.

A login is a signed cookie (``server/secrets.py``) naming the user and bound to their
password hash, so changing the password logs every browser out. A login in use is
stamped active, and the address it is used from recorded (``server.services.user_ips``),
at most every ``TOUCH_INTERVAL``, as a token's use is. Every form carries a
CSRF token: an HMAC of a random value kept in a second cookie (a double-submit token the
page cannot forge without the key). Both cookies are HttpOnly, SameSite=Lax, on path
``/``, and Secure when the instance is served over https.

``render`` is how every HTML page is answered: the template gets the instance title, the
CSRF token and field name, and the logged-in user (``viewer``, when the endpoint looked
them up with ``current_user``); the response gets the security headers, the
Content-Security-Policy and the opt-out headers, and the CSRF cookie when the page used a
fresh token. The OAuth pages (``server/api/oauth.py``), the public pages and the studio
all use it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from server import last_use
from server.ids import utcnow
from server.models import User
from server.secrets import keyed_digest, secret_key, sign, unsign
from server.services import user_ips
from server.services.oauth import login_refusal
from server.state import EaselState
from server.web.optout import OPT_OUT_HEADERS, PAGE_META
from server.web.security import SECURITY_HEADERS, content_security_policy, hsts_headers

SESSION_COOKIE = "easel_session"
CSRF_COOKIE = "easel_csrf"
CSRF_FIELD = "authenticity_token"
SESSION_MAX_AGE = 7 * 24 * 3600
SESSION_PURPOSE = "login-session"
CSRF_PURPOSE = "csrf"
COOKIE_PATH = "/"
# Where ``current_user`` leaves what it found, for ``render`` to show (request.state).
VIEWER_STATE = "easel_viewer"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _secure(state: EaselState) -> bool:
    return state.settings.scheme == "https"


# ------------------------------------------------------------------------------- sessions

def _session_fingerprint(key: bytes, user: User) -> str:
    # Bound to the password hash: a new password ends every existing login.
    return keyed_digest(key, "session-password", user.password_hash)[:22]


def log_in(response: Response, state: EaselState, user: User) -> None:
    """Set the session cookie for ``user`` on ``response`` (a redirect), and drop the CSRF
    cookie so that a token seen before logging in is worth nothing after."""
    key = secret_key(state.settings)
    value = sign(key, SESSION_PURPOSE, f"{user.id}:{_session_fingerprint(key, user)}")
    response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_MAX_AGE, path=COOKIE_PATH,
                        httponly=True, secure=_secure(state), samesite="lax")
    response.delete_cookie(CSRF_COOKIE, path=COOKIE_PATH, secure=_secure(state), httponly=True,
                           samesite="lax")


def log_out(response: Response, state: EaselState) -> None:
    """Clear the session cookie (and the CSRF cookie, so the next form gets a fresh token)."""
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path=COOKIE_PATH, secure=_secure(state), httponly=True,
                               samesite="lax")


async def current_user(request: Request, session: AsyncSession, state: EaselState, *,
                       allow_disabled: bool = False) -> User | None:
    """The logged-in user the session cookie names, with their account loaded, if the
    cookie is valid and they may log in. Remembered on the request for ``render``.
    ``allow_disabled``: a user whose login a moderator disabled counts too — only for
    the pages where they read why and appeal (the studio's Standing page)."""
    user = await _session_user(request, session, state, allow_disabled)
    setattr(request.state, VIEWER_STATE, user)
    if user is not None:
        await _touch(request, state, user)
    return user


async def _touch(request: Request, state: EaselState, user: User) -> None:
    """A web login in use: like a token's use, at most every ``TOUCH_INTERVAL`` the user
    is stamped active and the address recorded, once the page is answered
    (``server.last_use``: the page's session is still open here)."""
    now = utcnow()
    if not last_use.due(user.last_active_at, now):
        return
    set_committed_value(user, "last_active_at", now)  # seen; the page's session writes nothing
    await last_use.note(request, state.db, state.settings,
                        last_use.Use(None, user.id, user_ips.client_ip(request), now))


def only_disabled(user: User) -> bool:
    """Whether the one thing keeping ``user`` out is a moderator's disabling (confirmed
    and approved otherwise): such a login still reaches its Standing page to appeal."""
    return user.disabled and user.confirmed_at is not None and user.approved


async def _session_user(request: Request, session: AsyncSession, state: EaselState,
                        allow_disabled: bool = False) -> User | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    key = secret_key(state.settings)
    payload = unsign(key, SESSION_PURPOSE, raw, max_age=SESSION_MAX_AGE)
    if payload is None:
        return None
    user_id, _, fingerprint = payload.partition(":")
    if not user_id.isdigit() or len(user_id) > 19:
        return None
    user = await session.scalar(
        select(User).options(joinedload(User.account)).where(User.id == int(user_id)))
    if user is None or (login_refusal(user) is not None
                        and not (allow_disabled and only_disabled(user))):
        return None
    if not secrets.compare_digest(fingerprint, _session_fingerprint(key, user)):
        return None
    return user


# ----------------------------------------------------------------------------------- CSRF

def _csrf_cookie(request: Request) -> str | None:
    value = request.cookies.get(CSRF_COOKIE)
    return value if value and 32 <= len(value) <= 256 else None


def _token_for(state: EaselState, cookie: str) -> str:
    return keyed_digest(secret_key(state.settings), CSRF_PURPOSE, cookie)


def csrf_token(request: Request, state: EaselState) -> tuple[str, str | None]:
    """The token for a form, and the new CSRF cookie value to set (None: the browser has one)."""
    cookie = _csrf_cookie(request)
    if cookie is not None:
        return _token_for(state, cookie), None
    fresh = secrets.token_urlsafe(32)
    return _token_for(state, fresh), fresh


def set_csrf_cookie(response: Response, state: EaselState, cookie: str | None) -> None:
    """Set the CSRF cookie ``csrf_token`` made (nothing when it returned None)."""
    if cookie is not None:
        response.set_cookie(CSRF_COOKIE, cookie, path=COOKIE_PATH, httponly=True,
                            secure=_secure(state), samesite="lax")


def csrf_ok(request: Request, state: EaselState, submitted: str | None) -> bool:
    """Whether ``submitted`` (the form's token) matches this browser's CSRF cookie."""
    cookie = _csrf_cookie(request)
    if cookie is None or not submitted or not isinstance(submitted, str):
        return False
    expected = _token_for(state, cookie)
    return secrets.compare_digest(submitted.encode("utf-8"), expected.encode("ascii"))


# -------------------------------------------------------------------------------- render

def page_headers(state: EaselState, extra: Mapping[str, str] | None = None, *,
                 opt_out: Mapping[str, str] | None = None, image_origins: Iterable[str] = (),
                 form_targets: Iterable[str] = ()) -> dict[str, str]:
    """Security, opt-out and caller headers for an HTML response (a page or a redirect).
    ``opt_out`` replaces the instance's opt-out headers (a page about one artist carries
    theirs: ``server.web.optout.opt_out_headers``). ``X-Robots-Tag`` values are combined,
    so a ``noindex`` never drops the ``noai``. The Content-Security-Policy allows images
    from ``image_origins`` and from where this instance's public files are served (a CDN),
    and forms answered by a redirect to ``form_targets``."""
    own = [state.storage.public_origin] if state.storage.public_origin else []
    policy = content_security_policy([*own, *image_origins], form_targets)
    headers = {"Content-Security-Policy": policy, **SECURITY_HEADERS,
               **hsts_headers(state.settings.scheme),
               **(OPT_OUT_HEADERS if opt_out is None else opt_out)}
    for name, value in (extra or {}).items():
        if name.lower() == "x-robots-tag" and "X-Robots-Tag" in headers:
            words = [w.strip() for w in f"{value}, {headers['X-Robots-Tag']}".split(",")]
            headers["X-Robots-Tag"] = ", ".join(dict.fromkeys(w for w in words if w))
        else:
            headers[name] = value
    return headers


def render(request: Request, state: EaselState, template: str, context: Mapping[str, Any], *,
           status_code: int = 200, headers: Mapping[str, str] | None = None,
           opt_out: Mapping[str, str] | None = None, image_origins: Iterable[str] = (),
           form_targets: Iterable[str] = ()) -> Response:
    """An HTML page: ``template`` rendered with the common context, with every header a
    page carries (``opt_out``: an artist's own opt-out headers instead of the instance's;
    their ``<meta>`` tags go in the context as ``page_meta``; ``image_origins`` and
    ``form_targets`` as :func:`page_headers` takes them). A page showing a form (its
    body holds the CSRF token) or a logged-in user is private and never stored (others
    may be cached a minute); the CSRF cookie is set when the token is fresh."""
    token, fresh_cookie = csrf_token(request, state)
    viewer = context.get("viewer", getattr(request.state, VIEWER_STATE, None))
    full_context = {"title": state.settings.title, "csrf_token": token, "csrf_field": CSRF_FIELD,
                    "viewer": viewer, "base_url": state.urls.base, "page_meta": PAGE_META,
                    **context}
    response = templates.TemplateResponse(request, template, full_context,
                                          status_code=status_code)
    uses_token = token.encode("ascii") in bytes(response.body)
    extra: dict[str, str] = {"Vary": "Accept, Cookie", "Cache-Control": "public, max-age=60"}
    extra.update(headers or {})
    if (uses_token or viewer is not None) and "no-store" not in extra["Cache-Control"]:
        extra["Cache-Control"] = "private, no-store"
    response.headers.update(page_headers(state, extra, opt_out=opt_out,
                                         image_origins=image_origins,
                                         form_targets=form_targets))
    if uses_token:
        set_csrf_cookie(response, state, fresh_cookie)
    return response
