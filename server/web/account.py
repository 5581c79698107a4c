"""The account pages a browser needs around signing in: sign up (also through an invite
link), confirm an e-mail address, reset a forgotten password, and — in the studio —
change one's address or password.

Why it exists: the links mailed by ``server/services/confirmations.py`` land here, and a
person without a client app signs up and manages their credentials here. Every form
carries the CSRF token (403 without it); the pages are never cached or indexed. The pages
never tell whether an address has an account (the reset form answers the same either
way). Endpoints stay thin: the rules are in ``server/services/registrations.py``,
``confirmations.py``, ``invites.py`` and ``rules.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from server.api.params import Params
from server.errors import ApiError
from server.services import confirmations, invites, ip_blocks, registrations, rules
from server.services.errors import ServiceError
from server.services.passwords import MIN_PASSWORD_LENGTH
from server.services.user_ips import client_ip, record_ip
from server.settings import Settings
from server.state import EaselState, easel
from server.web.session import CSRF_FIELD, csrf_ok, log_in, page_headers, render
from server.web.studio import Visit, studio_page

NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
EXPIRED_FORM = "This form has expired. Go back, reload the page and try again."


def _page(request: Request, state: EaselState, template: str, context: Mapping[str, Any], *,
          status_code: int = 200) -> Response:
    return render(request, state, template, {"min_password": MIN_PASSWORD_LENGTH, **context},
                  status_code=status_code, headers=NO_STORE)


def _message(request: Request, state: EaselState, heading: str, message: str, *,
             status_code: int = 200, link: str | None = None,
             link_text: str | None = None) -> Response:
    return _page(request, state, "auth_message.html",
                 {"heading": heading, "message": message, "link": link, "link_text": link_text},
                 status_code=status_code)


async def _form(request: Request, state: EaselState) -> Params | Response:
    """The posted form, or the page refusing it: unreadable (400) or without a valid
    CSRF token (403)."""
    try:
        params = await Params.from_request(request)
    except ApiError:
        return _message(request, state, "Bad request", "The form could not be read.", status_code=400)
    if not csrf_ok(request, state, params.get_str(CSRF_FIELD)):
        return _message(request, state, "Form expired", EXPIRED_FORM, status_code=403)
    return params


# ------------------------------------------------------------------------------ sign-up

async def _sign_up_page(request: Request, state: EaselState, *, invite_code: str = "",
                        values: Mapping[str, str] | None = None, errors: list[str] | None = None,
                        status_code: int = 200) -> Response:
    settings = state.settings
    async with state.db.session() as session:
        ip_severity = await ip_blocks.sign_up_severity(session, _address(request))
        invited = bool(invite_code) and await invites.find_usable_invite(session, invite_code) is not None
        rule_list = list(await rules.list_rules(session))
    if ip_severity in ("sign_up_block", "no_access"):
        return _message(request, state, "Sign-ups are not possible",
                        f"{settings.title} does not take sign-ups from your network.",
                        status_code=403)
    if settings.registrations == "closed" and not invited:
        return _message(request, state, "Registrations are closed",
                        f"{settings.title} is not taking new members at the moment"
                        + (": this invite is no longer valid." if invite_code else "."),
                        status_code=403)
    return _page(request, state, "sign_up.html", {
        "invited": invited, "invite_code": invite_code if invited else "",
        "approval": settings.registrations == "approval" or ip_severity is not None,
        "rules": rule_list,
        "values": values or {}, "errors": errors or [],
    }, status_code=status_code)


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def sign_up_form(request: Request) -> Response:
    state = easel(request)
    code = request.query_params.get("invite", "")[:invites.MAX_CODE_LENGTH]
    return await _sign_up_page(request, state, invite_code=code)


async def invite_page(request: Request) -> Response:
    state = easel(request)
    return await _sign_up_page(request, state,
                               invite_code=request.path_params["code"][:invites.MAX_CODE_LENGTH])


async def sign_up(request: Request) -> Response:
    state = easel(request)
    params = await _form(request, state)
    if isinstance(params, Response):
        return params
    try:
        values = {name: params.get_str(name, max_length=4096) or ""
                  for name in ("username", "email", "password", "reason", "invite_code", "agreement")}
    except ApiError:
        return _message(request, state, "Bad request", "The form could not be read.", status_code=400)
    async with state.db.session() as session:
        try:
            user = await registrations.create_registration(
                session, state.settings, username=values["username"], email=values["email"],
                password=values["password"], agreement=bool(values["agreement"]), locale=None,
                reason=values["reason"], invite_code=values["invite_code"],
                address=_address(request))
        except registrations.RegistrationInvalid as error:
            texts = [f"{registrations.FIELD_LABELS.get(field, field)} {item['description']}"
                     for field, items in error.details.items() for item in items]
            kept = {k: v for k, v in values.items() if k in ("username", "email", "reason")}
            return await _sign_up_page(request, state, invite_code=values["invite_code"],
                                       values=kept, errors=texts, status_code=422)
        except (registrations.RegistrationsClosed, registrations.SignUpBlocked):
            return await _sign_up_page(request, state, invite_code=values["invite_code"])
        await record_ip(session, state.settings, user.id, client_ip(request))
        await session.commit()
    if user.confirmed_at is None:
        return _message(request, state, "Check your e-mail",
                        f"We sent a link to {user.email}: open it to confirm your address"
                        + (", then sign in." if user.approved else
                           ". An administrator will then review your request."))
    if not user.approved:
        return _message(request, state, "Thank you",
                        "An administrator will review your request; you can sign in once it is approved.")
    response = RedirectResponse("/studio", status_code=303,
                                headers=page_headers(state, {"Cache-Control": "no-store"}))
    log_in(response, state, user)
    return response


# ------------------------------------------------------------------------- confirmation

async def confirm(request: Request) -> Response:
    """GET /auth/confirm?token=…: the link in a confirmation mail."""
    state = easel(request)
    async with state.db.session() as session:
        try:
            user = await confirmations.confirm_email(session, request.query_params.get("token"))
        except confirmations.InvalidLink as error:
            return _message(request, state, "This link does not work", error.message + ".",
                            status_code=422)
    waiting = "" if user.approved else " An administrator will review your request before you can sign in."
    return _message(request, state, "Your e-mail address is confirmed",
                    f"{user.email} is confirmed.{waiting}", link="/auth/sign_in", link_text="Sign in")


async def confirmation_new(request: Request) -> Response:
    state = easel(request)
    if not state.settings.mail_enabled:
        return _message(request, state, "Nothing to confirm",
                        "This server sends no e-mail: addresses need no confirmation.", status_code=404)
    return _page(request, state, "confirmation_new.html", {})


async def confirmation_create(request: Request) -> Response:
    """POST /auth/confirmation: mail the confirmation link again (the same answer whether
    or not the address has an account waiting)."""
    return await _mail_a_link(
        request, confirmations.resend_confirmation_to,
        "If an account with this address is waiting for confirmation, a new link is on its way.")


async def _mail_a_link(request: Request,
                       send: Callable[[AsyncSession, Settings, str], Awaitable[object]],
                       answer: str) -> Response:
    """The forms that mail a link to an address: the same answer whether or not the
    address has an account, so they tell nobody which addresses are known."""
    state = easel(request)
    params = await _form(request, state)
    if isinstance(params, Response):
        return params
    try:
        email = params.get_str("email", max_length=320) or ""
    except ApiError:
        email = ""
    async with state.db.session() as session:
        await send(session, state.settings, email)
    return _message(request, state, "Check your e-mail", answer)


# ----------------------------------------------------------------------- password reset

async def password_new(request: Request) -> Response:
    state = easel(request)
    if not state.settings.mail_enabled:
        return _message(request, state, "Password reset is not available",
                        "This server sends no e-mail; ask its administrator to reset your password.",
                        status_code=404)
    return _page(request, state, "password_new.html", {})


async def password_create(request: Request) -> Response:
    """POST /auth/password: mail a reset link (the same answer whether or not the address
    has an account)."""
    return await _mail_a_link(
        request, confirmations.request_password_reset,
        "If an account has this address, a link to choose a new password is on its way.")


async def password_edit(request: Request) -> Response:
    """GET /auth/password/edit?token=…: the link in a reset mail."""
    state = easel(request)
    token = request.query_params.get("token", "")
    async with state.db.session() as session:
        valid = await confirmations.reset_token_valid(session, token)
    if not valid:
        return _message(request, state, "This link does not work",
                        "This link is invalid or has expired. Ask for a new one.",
                        status_code=422, link="/auth/password/new", link_text="Ask for a new link")
    return _page(request, state, "password_edit.html", {"token": token})


async def password_update(request: Request) -> Response:
    state = easel(request)
    params = await _form(request, state)
    if isinstance(params, Response):
        return params
    try:
        token = params.get_str("token", max_length=confirmations.MAX_TOKEN_LENGTH) or ""
        password = params.get_str("password", max_length=4096) or ""
        confirmation = params.get_str("password_confirmation", max_length=4096) or ""
    except ApiError:
        return _message(request, state, "Bad request", "The form could not be read.", status_code=400)
    async with state.db.session() as session:
        try:
            await confirmations.reset_password(session, token, password, confirmation)
        except confirmations.InvalidLink as error:
            return _message(request, state, "This link does not work", error.message + ".",
                            status_code=422, link="/auth/password/new", link_text="Ask for a new link")
        except ServiceError as error:
            return _page(request, state, "password_edit.html",
                         {"token": token, "error": error.message.removeprefix("Validation failed: ")},
                         status_code=422)
    return _message(request, state, "Your password has been changed",
                    "Sign in with your new password. Every app and browser signed in before "
                    "has been signed out.",
                    link="/auth/sign_in", link_text="Sign in")


# ------------------------------------------------------------------------------ studio

def _account_page(visit: Visit, *, notice: str | None = None, error: str | None = None,
                  status_code: int = 200) -> Response:
    return visit.page("studio_account.html", {"notice": notice, "error": error,
                                              "min_password": MIN_PASSWORD_LENGTH},
                      status_code=status_code)


async def _undo(visit: Visit) -> None:
    """Drop what a refused change left in the session and reload the user, whose address
    the page shows (``Visit.rollback`` reloads only the account)."""
    await visit.rollback()
    await visit.session.refresh(visit.user)


async def account(visit: Visit) -> Response:
    return _account_page(visit)


async def change_email(visit: Visit) -> Response:
    try:
        sent = await confirmations.change_email(
            visit.session, visit.state.settings, visit.user,
            current_password=visit.field("current_password"), email=visit.field("email")[:400])
    except ServiceError as error:
        await _undo(visit)
        return _account_page(visit, error=error.message.removeprefix("Validation failed: "),
                             status_code=422)
    if sent:
        return _account_page(visit, notice=f"We sent a link to {visit.user.unconfirmed_email}: "
                                           "your address changes once you open it.")
    return _account_page(visit, notice=f"Your e-mail address is now {visit.user.email}.")


async def change_password(visit: Visit) -> Response:
    try:
        await confirmations.change_password(
            visit.session, visit.user, current_password=visit.field("current_password"),
            password=visit.field("password"), confirmation=visit.field("password_confirmation"))
    except ServiceError as error:
        await _undo(visit)
        return _account_page(visit, error=error.message.removeprefix("Validation failed: "),
                             status_code=422)
    response = _account_page(
        visit, notice="Your password has been changed; other browsers and apps are signed out.")
    log_in(response, visit.state, visit.user)  # this browser stays signed in
    return response


routes: list[BaseRoute] = [
    Route("/auth/sign_up", sign_up_form, methods=["GET", "HEAD"]),
    Route("/auth/sign_up", sign_up, methods=["POST"]),
    Route("/invite/{code}", invite_page, methods=["GET", "HEAD"]),
    Route("/auth/confirm", confirm, methods=["GET"]),
    Route("/auth/confirmation/new", confirmation_new, methods=["GET", "HEAD"]),
    Route("/auth/confirmation", confirmation_create, methods=["POST"]),
    Route("/auth/password/new", password_new, methods=["GET", "HEAD"]),
    Route("/auth/password", password_create, methods=["POST"]),
    Route("/auth/password/edit", password_edit, methods=["GET", "HEAD"]),
    Route("/auth/password/edit", password_update, methods=["POST"]),
    Route("/studio/account", studio_page(account), methods=["GET", "HEAD"]),
    Route("/studio/account/email", studio_page(change_email), methods=["POST"]),
    Route("/studio/account/password", studio_page(change_password), methods=["POST"]),
]
