"""Profile pages at ``/@name``; ActivityPub readers asking there are sent to the actor."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from federation.content_types import accepts_activity_json
from server.errors import ApiError
from server.services.accounts import find_local_account
from server.state import easel
from server.web.optout import OPT_OUT_HEADERS

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


async def profile_page(request: Request) -> Response:
    state = easel(request)
    username = request.path_params["username"]
    async with state.db.session() as session:
        account = await find_local_account(session, username)
    if account is None:
        raise ApiError(404, "Record not found")
    if accepts_activity_json(request):
        return RedirectResponse(account.uri, status_code=302, headers={"Vary": "Accept"})
    return templates.TemplateResponse(
        request,
        "profile.html",
        {"account": account, "handle": f"{account.username}@{state.settings.domain}",
         "title": state.settings.title},
        headers={"Vary": "Accept", **OPT_OUT_HEADERS},
    )


routes: list[BaseRoute] = [Route("/@{username}", profile_page, methods=["GET", "HEAD"])]
