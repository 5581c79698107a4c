"""The studio: the signed-in artist's own pages under ``/studio``.

Why it exists: artists manage their portfolio in a browser, without a client app — post a
work (several images with alt text, portfolio metadata, content warning, visibility) and
watch its protection progress live, edit a work's metadata, pin it, delete it, decide what
happens when its protection failed, group works into projects, change their profile and
their AI opt-out, read each image's protection report with its pictures, and export their
account (Mastodon's CSV formats, and an archive of their works with the originals) and
import one from another server (the same CSVs), and move: name their old accounts as
aliases to arrive, or move to a new account (which must list this one) to leave.

Every page needs the cookie session (``server/web/session.py``): without it a page
redirects to ``/auth/sign_in?next=…`` and a JSON or image URL answers 404. Every POST
checks the CSRF token (403 without it). Everything here is the owner's: another
account's work, media or report is "not found" (404), never "forbidden". Pages are
CSP-clean: no inline script or style; ``/static/studio.js`` adds the live progress and
nothing here needs it to work. Endpoints stay thin — the use cases live in
``server/services/studio.py``, ``portfolio.py``, ``protection.py`` and ``profiles.py``.
"""

from __future__ import annotations

import asyncio
import datetime
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Message

from protect import document as doc
from protect import optout_metadata
from protect.naming import model_names
from server import limits
from server.errors import BodyTooLarge
from server.ids import parse_id, utcnow
from server.models import Account, MediaAttachment, User
from server.services import checks, exports, imports, moves, portfolio, studio
from server.services import media as media_service
from server.services import protection as protection_service
from server.services.accounts import find_local_account
from server.services.errors import NotFound, ServiceError
from server.services.passwords import verify_password
from server.services.profiles import ProfileChanges
from server.services.statuses import delete_status, pin_status, unpin_status
from server.state import EaselState, easel
from server.web.optout import OPT_OUT_HEADERS
from server.web.session import CSRF_FIELD, csrf_ok, current_user, render

SIGN_IN = "/auth/sign_in"
# Studio pages are the artist's own: never indexed, never stored.
PAGE_HEADERS = {"Cache-Control": "private, no-store", "X-Robots-Tag": "noindex"}
# Private files (the original, the difference, the report's pictures).
PRIVATE_FILE_HEADERS = {"Cache-Control": "private, no-store", **OPT_OUT_HEADERS,
                        "X-Content-Type-Options": "nosniff", "Content-Disposition": "inline",
                        # A backstop: these are sniffed raster images, never documents.
                        "Content-Security-Policy": "default-src 'none'; sandbox"}
MEGABYTE = 1024 * 1024
# The largest studio form bodies: a work's images, a profile's two images, anything else.
UPLOAD_BODY_LIMIT = limits.MAX_MEDIA_ATTACHMENTS * limits.IMAGE_SIZE_LIMIT + MEGABYTE
SETTINGS_BODY_LIMIT = 2 * limits.PROFILE_IMAGE_SIZE_LIMIT + MEGABYTE
CHECK_BODY_LIMIT = 2 * limits.IMAGE_SIZE_LIMIT + MEGABYTE
FORM_BODY_LIMIT = MEGABYTE
# Files a form may carry: more than a work may have, so that too many images is a message
# on the form (the body limit caps their size).
MAX_FORM_FILES = 16
POSTING_VISIBILITIES = ("public", "unlisted", "private")
KIND_LABELS = {"field": "Fields", "medium": "Mediums", "project_type": "Project types",
               "category": "Categories", "software": "Software"}


# ------------------------------------------------------------------------ the studio visit

@dataclass
class Visit:
    """One request of the signed-in artist: what every studio endpoint works with."""

    request: Request
    state: EaselState
    session: AsyncSession
    user: User
    form: FormData | None = None

    @property
    def account(self) -> Account:
        account = self.user.account
        assert account is not None
        return account

    async def rollback(self) -> None:
        """Undo what a refused change left in the session, and load the artist again (a
        rollback expires every row, and the page about to be shown reads them)."""
        await self.session.rollback()
        await self.session.refresh(self.user)
        await self.session.refresh(self.user, ["account"])
        await self.session.refresh(self.account)

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else default

    def page(self, template: str, context: Mapping[str, Any], *, status_code: int = 200) -> Response:
        return render(self.request, self.state, template,
                      {"viewer": self.user, "kind_labels": KIND_LABELS, **context},
                      status_code=status_code, headers=PAGE_HEADERS)


def _sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{SIGN_IN}?next={quote(target, safe='/')}", status_code=303,
                            headers={"Cache-Control": "no-store"})


@dataclass(frozen=True)
class FormRefused:
    """Why a posted form was not read: the page to answer instead."""

    status: int
    title: str
    text: str


async def read_checked_form(request: Request, state: EaselState, body_limit: int, *,
                            max_files: int, max_fields: int) -> FormData | FormRefused:
    """A signed-in page's posted form, read within ``body_limit`` and its CSRF token
    checked (the studio's and the admin area's forms)."""
    try:
        form = await _limited(request, body_limit).form(max_files=max_files, max_fields=max_fields)
    except (MultiPartException, HTTPException):
        return FormRefused(400, "Bad request", "The form could not be read.")
    except BodyTooLarge as exc:
        return FormRefused(413, "Too large", str(exc))
    token = form.get(CSRF_FIELD)
    if not csrf_ok(request, state, token if isinstance(token, str) else None):
        await form.close()
        return FormRefused(403, "Form expired", "This form has expired or did not come from "
                           "this site. Go back, reload the page and try again.")
    return form


def _limited(request: Request, limit: int) -> Request:
    """The request with its body cut off at ``limit`` bytes (BodyTooLarge past it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"The form is too large (the limit is {limit // MEGABYTE} MB)")
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(f"The form is too large (the limit is {limit // MEGABYTE} MB)")
        return message

    return Request(request.scope, receive=receive)


def _message(visit: Visit, status_code: int, heading: str, text: str) -> Response:
    return visit.page("studio_message.html", {"heading": heading, "message": text},
                      status_code=status_code)


Handler = Callable[[Visit], Awaitable[Response]]


def studio_page(handler: Handler, *, body_limit: int = FORM_BODY_LIMIT, api: bool = False,
                allow_suspended: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a studio endpoint: the cookie session (sign-in redirect, or 404 for ``api``
    endpoints: JSON and files), the form and its CSRF check for a POST, and "not found"
    for anything that is not the artist's own. A suspended account (by a moderator, or
    its own deletion waiting), or a login a moderator disabled, reaches only the pages that
    ``allow_suspended``."""

    async def endpoint(request: Request) -> Response:
        state = easel(request)
        async with state.db.session() as session:
            user = await current_user(request, session, state, allow_disabled=allow_suspended)
            if user is None or user.account is None:
                if api:
                    return _not_found_json()
                return _sign_in_redirect(request)
            visit = Visit(request=request, state=state, session=session, user=user)
            if user.account.suspended_at is not None and not allow_suspended:
                if api:
                    return _not_found_json()
                return _message(visit, 403, "Account suspended",
                                "This account is suspended: see why, or cancel its deletion, "
                                "under Standing (/studio/standing).")
            try:
                if request.method == "POST":
                    form = await read_checked_form(request, state, body_limit,
                                                   max_files=MAX_FORM_FILES, max_fields=200)
                    if isinstance(form, FormRefused):
                        return _message(visit, form.status, form.title, form.text)
                    visit.form = form
                try:
                    return await handler(visit)
                except NotFound:
                    if api:
                        return _not_found_json()
                    return _message(visit, 404, "Not found", "There is nothing here.")
            except BodyTooLarge as exc:
                return _message(visit, 413, "Too large", str(exc))
            finally:
                if visit.form is not None:
                    await visit.form.close()

    return endpoint


def _not_found_json() -> Response:
    return JSONResponse({"error": "Record not found"}, status_code=404,
                        headers={"Cache-Control": "private, no-store"})


def _parse_id(raw: str) -> int:
    value = parse_id(raw)
    if value is None:
        raise NotFound("Record not found")
    return value


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


# ------------------------------------------------------------------------------ metadata form

def _split_terms(raw: str) -> list[str]:
    return [term.strip() for term in raw.replace("\n", ",").split(",") if term.strip()]


def _parse_year(raw: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 4:
        raise ServiceError("Year must be a year like 2024")
    year = int(raw)
    if year < 1 or year > datetime.date.today().year + 1:
        raise ServiceError(f"Year must be between 1 and {datetime.date.today().year + 1}")
    return year


def _meta_from_form(visit: Visit) -> portfolio.WorkMeta:
    """The portfolio metadata the form says; ServiceError for a value that is plainly bad
    (the portfolio service checks the rest)."""
    return portfolio.WorkMeta(
        title=visit.field("title").strip(),
        description=visit.field("description").strip(),
        year=_parse_year(visit.field("year")),
        dimensions=visit.field("dimensions").strip(),
        tags={kind: _split_terms(visit.field(f"tags_{kind}")) for kind in portfolio.KINDS},
    )


def _meta_values(work: Any) -> dict[str, str]:
    """A work's metadata as the edit form's values."""
    if work is None:
        return {}
    values = {"title": work.title or "", "description": work.description or "",
              "year": str(work.year) if work.year else "", "dimensions": work.dimensions or ""}
    for kind in portfolio.KINDS:
        values[f"tags_{kind}"] = ", ".join(term.name for term in work.tags.get(kind, []))
    return values


def _form_values(visit: Visit, names: list[str]) -> dict[str, str]:
    return {name: visit.field(name) for name in names}


META_FIELDS = ["title", "description", "year", "dimensions", *[f"tags_{k}" for k in portfolio.KINDS]]


async def _vocabulary(session: AsyncSession) -> dict[str, list[str]]:
    """The suggestion list of each vocabulary, for the tag inputs' ``<datalist>``."""
    return {kind: [suggestion.term.name for suggestion in suggestions]
            for kind, suggestions in (await portfolio.vocabulary(session)).items()}


# ------------------------------------------------------------------------------- pages

async def works(visit: Visit) -> Response:
    raw_max = visit.request.query_params.get("max_id", "")
    max_id = parse_id(raw_max)
    found = await studio.my_works(visit.session, visit.account, max_id=max_id)
    older = found[-1].status.id if len(found) == studio.PAGE_SIZE else None
    return visit.page("studio_works.html", {
        "works": found, "older": older, "storage": visit.state.storage,
        "notice": "The work was deleted." if visit.request.query_params.get("done") == "deleted" else None})


async def upload_form(visit: Visit) -> Response:
    user = visit.user
    visibility = user.default_privacy if user.default_privacy in POSTING_VISIBILITIES else "public"
    return await _upload_page(visit, values={"visibility": visibility,
                                             "sensitive": "on" if user.default_sensitive else ""},
                              kept=[], error=None)


async def _upload_page(visit: Visit, *, values: dict[str, str], kept: list[MediaAttachment],
                       error: str | None, status_code: int = 200) -> Response:
    return visit.page("studio_upload.html", {
        "values": values, "kept": kept, "error": error,
        "vocabulary": await _vocabulary(visit.session), "kinds": portfolio.KINDS,
        "visibilities": POSTING_VISIBILITIES, "max_images": limits.MAX_MEDIA_ATTACHMENTS,
        "max_description": limits.MAX_MEDIA_DESCRIPTION,
    }, status_code=status_code)


async def _images_from_form(visit: Visit) -> list[studio.NewImage]:
    assert visit.form is not None
    files = visit.form.getlist("images")
    descriptions = visit.form.getlist("alt")
    images = []
    for index, upload in enumerate(files):
        if not isinstance(upload, UploadFile) or not upload.filename:
            continue  # an empty file input
        data = await upload.read(limits.IMAGE_SIZE_LIMIT + 1)
        if len(data) > limits.IMAGE_SIZE_LIMIT:
            raise studio.UploadRefused(
                f"{upload.filename}: the file is larger than {limits.IMAGE_SIZE_LIMIT // MEGABYTE} MB")
        if not data:
            raise studio.UploadRefused(f"{upload.filename}: the file is empty")
        description = descriptions[index] if index < len(descriptions) else ""
        images.append(studio.NewImage(data=data, filename=upload.filename,
                                      description=description if isinstance(description, str) else ""))
    return images


async def upload(visit: Visit) -> Response:
    assert visit.form is not None
    values = _form_values(visit, [*META_FIELDS, "visibility", "content_warning"])
    values["sensitive"] = "on" if visit.field("sensitive") else ""
    kept_ids = [i for v in visit.form.getlist("kept_media")
                if isinstance(v, str) and (i := parse_id(v)) is not None]
    kept: list[MediaAttachment] = []
    try:
        kept = await studio.kept_media(visit.session, visit.account, kept_ids)
        visibility = visit.field("visibility", "public")
        if visibility not in POSTING_VISIBILITIES:
            raise studio.UploadRefused("Choose who can see the work", kept)
        try:
            meta = _meta_from_form(visit)
        except ServiceError as exc:
            raise studio.UploadRefused(exc.message, kept) from None
        new = studio.NewWork(
            meta=meta, kept_media_ids=[m.id for m in kept], sensitive=bool(visit.field("sensitive")),
            content_warning=visit.field("content_warning").strip(), visibility=visibility)
        new.images = await _images_from_form(visit)
        status = await studio.create_work(visit.session, visit.state, visit.account, new)
    except studio.UploadRefused as exc:
        return await _refused(visit, values, exc.kept or kept, exc.message)
    except ServiceError as exc:
        return await _refused(visit, values, kept, exc.message)
    return _redirect(f"/studio/works/{status.id}")


async def _refused(visit: Visit, values: dict[str, str], kept: list[MediaAttachment],
                   message: str) -> Response:
    """The upload form again, with the error and the images already accepted (committed
    as they were accepted): what the refused step left in the session is rolled back
    first, so a failed flush cannot turn the answer into a 500."""
    kept_ids = [m.id for m in kept]
    await visit.rollback()
    kept = await studio.kept_media(visit.session, visit.account, kept_ids)
    return await _upload_page(visit, values=values, kept=kept, error=message, status_code=422)


def _media_views(visit: Visit, found: studio.StudioWork) -> list[dict[str, Any]]:
    storage = visit.state.storage
    views = []
    for media in found.media:
        document = doc.for_owner(media)
        views.append({
            "media": media, "document": document,
            "small_url": storage.public_url(media.small_key) if media.small_key else None,
            "full_url": storage.public_url(media.file_key) if media.file_key else None,
            "width": (media.meta or {}).get("small", {}).get("width"),
            "height": (media.meta or {}).get("small", {}).get("height"),
        })
    return views


async def _work_page(visit: Visit, found: studio.StudioWork, *, values: dict[str, str] | None = None,
                     error: str | None = None, notice: str | None = None,
                     status_code: int = 200) -> Response:
    if values is None:
        values = {**_meta_values(found.work), "content_warning": found.status.spoiler_text or "",
                  "sensitive": "on" if found.status.sensitive else ""}
    # Its projects, and those it may join: from here any work, however old, can be added
    # (the projects page offers only the newest page of works).
    mine = await portfolio.projects_of(visit.session, visit.account, visit.account.id)
    return visit.page("studio_work.html", {
        "work": found, "media": _media_views(visit, found), "values": values,
        "error": error, "notice": notice, "vocabulary": await _vocabulary(visit.session),
        "kinds": portfolio.KINDS,
        "in_projects": [view.project for view in mine if found.status.id in view.work_ids],
        "other_projects": [view.project for view in mine
                           if found.status.id not in view.work_ids],
    }, status_code=status_code)


async def work(visit: Visit) -> Response:
    found = await studio.my_work(visit.session, visit.account, _parse_id(visit.request.path_params["id"]))
    if found.status.id != _parse_id(visit.request.path_params["id"]):
        return _redirect(f"/studio/works/{found.status.id}")  # published under its new id
    notice = {"saved": "Saved.", "pinned": "Pinned to your profile.", "unpinned": "Unpinned.",
              "retried": "Protection queued again.",
              "unprotected": "Publishing without protection."}.get(
        visit.request.query_params.get("done", ""))
    return await _work_page(visit, found, notice=notice)


async def save_work(visit: Visit) -> Response:
    found = await studio.my_work(visit.session, visit.account, _parse_id(visit.request.path_params["id"]))
    status_id = found.status.id
    values = _form_values(visit, [*META_FIELDS, "content_warning"])
    values["sensitive"] = "on" if visit.field("sensitive") else ""
    try:
        meta = _meta_from_form(visit)
        await studio.edit_work(visit.session, visit.account, status_id, meta,
                               sensitive=bool(visit.field("sensitive")),
                               content_warning=visit.field("content_warning"))
    except ServiceError as exc:
        await visit.rollback()
        found = await studio.my_work(visit.session, visit.account, status_id)
        return await _work_page(visit, found, values=values, error=exc.message, status_code=422)
    return _redirect(f"/studio/works/{status_id}?done=saved")


async def delete_form(visit: Visit) -> Response:
    found = await studio.my_work(visit.session, visit.account, _parse_id(visit.request.path_params["id"]))
    return visit.page("studio_delete.html", {"work": found})


async def delete_work(visit: Visit) -> Response:
    found = await studio.my_work(visit.session, visit.account, _parse_id(visit.request.path_params["id"]))
    if visit.field("confirm") != "yes":
        return visit.page("studio_delete.html", {"work": found, "error": "Tick the box to confirm."},
                          status_code=422)
    await delete_status(visit.session, found.status)
    return _redirect("/studio?done=deleted")


async def pin_work(visit: Visit) -> Response:
    found = await studio.my_work(visit.session, visit.account, _parse_id(visit.request.path_params["id"]))
    pin = visit.request.url.path.endswith("/pin")
    try:
        if pin:
            await pin_status(visit.session, visit.account, found.status.id)
        else:
            await unpin_status(visit.session, visit.account, found.status.id)
    except ServiceError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _work_page(visit, found, error=exc.message, status_code=422)
    return _redirect(f"/studio/works/{found.status.id}?done={'pinned' if pin else 'unpinned'}")


async def protection_choice(visit: Visit) -> Response:
    media_id = _parse_id(visit.request.path_params["id"])
    media = await media_service.get_own_media(visit.session, visit.account, media_id)
    retry = visit.request.url.path.endswith("/retry")
    choose = protection_service.retry if retry else protection_service.publish_unprotected
    target = f"/studio/works/{media.status_id}" if media.status_id is not None else "/studio"
    try:
        await choose(visit.session, visit.account, media_id)
    except ServiceError as exc:
        if isinstance(exc, NotFound) or media.status_id is None:
            raise
        found = await studio.my_work(visit.session, visit.account, media.status_id)
        return await _work_page(visit, found, error=exc.message, status_code=422)
    return _redirect(f"{target}?done={'retried' if retry else 'unprotected'}")


async def progress(visit: Visit) -> Response:
    media_id = _parse_id(visit.request.path_params["id"])
    answer = await studio.progress_of(visit.session, visit.state, visit.account, media_id)
    return JSONResponse(answer, headers={"Cache-Control": "private, no-store"})


async def protection_report(visit: Visit) -> Response:
    found = await studio.my_work(visit.session, visit.account, _parse_id(visit.request.path_params["id"]))
    reports = []
    for media in found.media:
        document = await protection_service.protection_of(visit.session, visit.account, media.id)
        reports.append({
            "media": media, "document": document,
            "full_url": visit.state.storage.public_url(media.file_key) if media.file_key else None,
            "pictures": sorted(studio.pictures_of(media)),
            "about_pictures": studio.pictures_about(media),
            "ready": bool(media.file_key and media.original_key and media.state == "ready"),
        })
    return visit.page("studio_protection.html", {"work": found, "reports": reports,
                                                 "gain": studio.DIFFERENCE_GAIN})


def _private_file(data: bytes, content_type: str) -> Response:
    return Response(data, media_type=content_type, headers=PRIVATE_FILE_HEADERS)


async def original(visit: Visit) -> Response:
    media_id = _parse_id(visit.request.path_params["id"])
    data, content_type = await media_service.read_original(visit.state.storage, visit.session,
                                                           visit.account, media_id)
    return _private_file(data, content_type)


async def difference(visit: Visit) -> Response:
    media_id = _parse_id(visit.request.path_params["id"])
    data = await studio.difference_image(visit.session, visit.state, visit.account, media_id)
    return _private_file(data, "image/png")


async def picture(visit: Visit) -> Response:
    media_id = _parse_id(visit.request.path_params["id"])
    data, content_type = await studio.report_picture(visit.session, visit.state, visit.account,
                                                     media_id, visit.request.path_params["name"])
    return _private_file(data, content_type)


# ------------------------------------------------------------------------------ projects

async def projects(visit: Visit) -> Response:
    done = visit.request.query_params.get("done", "")
    notice = {"created": "Project created.", "saved": "Saved."}.get(done)
    return await _projects_page(visit, notice=notice)


async def _projects_page(visit: Visit, *, error: str | None = None, notice: str | None = None,
                         status_code: int = 200) -> Response:
    mine = await portfolio.projects_of(visit.session, visit.account, visit.account.id)
    found = await studio.my_works(visit.session, visit.account)
    by_id = {item.status.id: item for item in found}
    missing = [i for view in mine for i in view.work_ids if i not in by_id]
    if missing:  # older than the first page of works: one batch
        by_id.update(await studio.my_works_by_ids(visit.session, visit.account,
                                                  list(dict.fromkeys(missing))))
    return visit.page("studio_projects.html", {
        "projects": mine, "works": found, "by_id": by_id, "error": error, "notice": notice,
        "storage": visit.state.storage}, status_code=status_code)


async def _own_project(visit: Visit, project_id: int) -> portfolio.ProjectView:
    view = await portfolio.get_project(visit.session, visit.account, project_id)
    if view.project.account_id != visit.account.id:
        raise NotFound("Record not found")
    return view


def _moved(ids: list[int], work_id: int, step: int) -> list[int]:
    if work_id not in ids:
        return ids
    index = ids.index(work_id)
    other = index + step
    if 0 <= other < len(ids):
        ids[index], ids[other] = ids[other], ids[index]
    return ids


async def project_action(visit: Visit) -> Response:
    """Every change to projects is one small form posting here with an ``action``."""
    action = visit.field("action")
    session, account = visit.session, visit.account
    try:
        if action == "create":
            await portfolio.create_project(session, account, title=visit.field("title"),
                                           description=visit.field("description"))
            return _redirect("/studio/projects?done=created")
        view = await _own_project(visit, _parse_id(visit.field("project")))
        project_id, ids = view.project.id, list(view.work_ids)
        if action == "rename":
            await portfolio.update_project(session, account, project_id, title=visit.field("title"),
                                           description=visit.field("description"))
        elif action == "delete":
            await portfolio.delete_project(session, account, project_id)
        elif action in ("add", "remove", "up", "down", "cover"):
            work_id = _parse_id(visit.field("work"))
            if action == "cover":
                await portfolio.update_project(session, account, project_id, cover_id=work_id)
            else:
                if action == "add":
                    ids = [*ids, work_id] if work_id not in ids else ids
                elif action == "remove":
                    ids = [i for i in ids if i != work_id]
                else:
                    ids = _moved(ids, work_id, -1 if action == "up" else 1)
                await portfolio.set_project_works(session, account, project_id, ids)
        else:
            return await _projects_page(visit, error="Unknown action", status_code=422)
    except ServiceError as exc:
        if isinstance(exc, NotFound):
            raise
        await visit.rollback()
        return await _projects_page(visit, error=exc.message, status_code=422)
    return _redirect("/studio/projects?done=saved")


# ------------------------------------------------------------------------------ settings

async def settings_form(visit: Visit) -> Response:
    account = visit.account
    return await _settings_page(visit, values={
        "display_name": account.display_name, "note": account.note,
        "data_mining": optout_metadata.effective_data_mining(account),
    }, notice="Saved." if visit.request.query_params.get("done") == "saved" else None)


async def _settings_page(visit: Visit, *, values: dict[str, str], error: str | None = None,
                         notice: str | None = None, status_code: int = 200) -> Response:
    return visit.page("studio_settings.html", {
        "values": values, "error": error, "notice": notice,
        "choices": studio.DATA_MINING_CHOICES, "account": visit.account,
        "storage": visit.state.storage, "max_display_name": limits.MAX_DISPLAY_NAME,
        "max_note": limits.MAX_NOTE,
    }, status_code=status_code)


async def _image_field(visit: Visit, name: str, limit: int = limits.PROFILE_IMAGE_SIZE_LIMIT) -> bytes | None:
    upload = visit.form.get(name) if visit.form is not None else None
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    data = await upload.read(limit + 1)
    return data


async def save_settings(visit: Visit) -> Response:
    values = _form_values(visit, ["display_name", "note", "data_mining"])
    data_mining = values["data_mining"]
    if data_mining not in dict(studio.DATA_MINING_CHOICES):
        return await _settings_page(visit, values=values, error="Choose one of the AI training choices",
                                    status_code=422)
    changes = ProfileChanges(display_name=values["display_name"], note=values["note"],
                             avatar=await _image_field(visit, "avatar"),
                             header=await _image_field(visit, "header"))
    try:
        await studio.update_settings(visit.session, visit.state, visit.account, visit.user, changes,
                                     data_mining)
    except ServiceError as exc:
        await visit.rollback()
        return await _settings_page(visit, values=values, error=exc.message, status_code=422)
    return _redirect("/studio/settings?done=saved")


# --------------------------------------------------------------------- checking an image

def _check_page(visit: Visit, check: Any, *, error: str | None = None,
                status_code: int = 200) -> Response:
    return visit.page("studio_check.html", {
        "check": check, "error": error, "models": model_names(visit.state.settings.vae_paths),
    }, status_code=status_code)


async def check_form(visit: Visit) -> Response:
    return _check_page(visit, None)


async def start_check(visit: Visit) -> Response:
    """Check an image protected elsewhere (``server/services/checks.py``)."""
    image = await _image_field(visit, "image", limits.IMAGE_SIZE_LIMIT)
    original = await _image_field(visit, "original", limits.IMAGE_SIZE_LIMIT)
    try:
        token = await checks.create_check(visit.session, visit.state.storage, visit.account,
                                          image or b"", original)
    except ServiceError as exc:
        return _check_page(visit, None, error=exc.message, status_code=422)
    return _redirect(f"/studio/check/{token}")


async def check_result(visit: Visit) -> Response:
    found = await checks.get_check(visit.session, visit.state.storage, visit.account,
                                   visit.request.path_params["token"])
    return _check_page(visit, found)


async def export_page(visit: Visit) -> Response:
    return visit.page("studio_export.html", {"csv_exports": CSV_EXPORT_LABELS})


CSV_EXPORT_LABELS = {"following_accounts": "Accounts you follow",
                     "blocked_accounts": "Accounts you block",
                     "muted_accounts": "Accounts you mute",
                     "bookmarks": "Your bookmarks",
                     "lists": "Your lists"}


def _download(body: bytes | str, name: str, content_type: str) -> Response:
    return Response(body, media_type=content_type, headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})


async def export_csv(visit: Visit) -> Response:
    name = visit.request.path_params["name"]
    if name not in exports.CSV_EXPORTS:
        raise NotFound("no such export")
    text = await exports.export_csv(visit.session, visit.state.settings, visit.account, name)
    return _download(text, f"{name}.csv", "text/csv; charset=utf-8")


async def export_archive(visit: Visit) -> Response:
    # Spooled: small archives stay in memory, big ones go to a temporary file, read back
    # in chunks; the file is gone when the response has been sent.
    spool = tempfile.SpooledTemporaryFile(max_size=16 * MEGABYTE)
    try:
        await exports.write_archive(visit.session, visit.state.settings, visit.state.storage,
                                    visit.account, spool)
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(spool.read, MEGABYTE):
                yield chunk
        finally:
            spool.close()

    stamp = utcnow().strftime("%Y%m%d")
    return StreamingResponse(chunks(), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="easel-{visit.account.username}-{stamp}.zip"',
        "Content-Length": str(size), "Cache-Control": "private, no-store"})


IMPORT_BODY_LIMIT = imports.MAX_FILE_SIZE + MEGABYTE


async def _imports_page(visit: Visit, *, error: str | None = None, status_code: int = 200,
                        values: Mapping[str, str] | None = None) -> Response:
    recent = await imports.imports_of(visit.session, visit.account)
    failures = {found.id: await imports.failed_rows(visit.session, found) for found in recent
                if found.failed_items or found.state != "done"}
    return visit.page("studio_import.html", {
        "types": imports.TYPE_LABELS, "imports": recent, "failures": failures, "error": error,
        "values": values or {"type": "following", "mode": "merge"}}, status_code=status_code)


async def import_form(visit: Visit) -> Response:
    return await _imports_page(visit)


async def start_import(visit: Visit) -> Response:
    values = {"type": visit.field("type"), "mode": visit.field("mode", "merge")}
    upload = visit.form.get("file") if visit.form is not None else None
    if values["mode"] not in ("merge", "overwrite"):
        return await _imports_page(visit, error="Choose merge or overwrite.", status_code=422,
                                   values=values)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _imports_page(visit, error="Choose the CSV file to import.", status_code=422,
                                   values=values)
    data = await upload.read(imports.MAX_FILE_SIZE + 1)
    try:
        parsed = imports.parse_import(values["type"], data)
    except imports.ImportRefused as exc:
        return await _imports_page(visit, error=exc.message, status_code=422, values=values)
    await imports.create_import(visit.session, visit.account, parsed,
                                overwrite=values["mode"] == "overwrite")
    return _redirect("/studio/import")


async def _move_page(visit: Visit, *, error: str | None = None, notice: str | None = None,
                     status_code: int = 200, handle: str = "") -> Response:
    moved_to = (await visit.session.get(Account, visit.account.moved_to_account_id)
                if visit.account.moved_to_account_id is not None else None)
    return visit.page("studio_move.html", {
        "aliases": "\n".join(visit.account.also_known_as or []), "moved_to": moved_to,
        "error": error, "notice": notice, "handle": handle,
        "max_aliases": moves.MAX_ALIASES}, status_code=status_code)


async def move_form(visit: Visit) -> Response:
    return await _move_page(visit)


async def move_action(visit: Visit) -> Response:
    if visit.field("action") == "aliases":
        try:
            await moves.set_aliases(visit.session, visit.account, visit.field("aliases").splitlines())
        except ServiceError as exc:
            await visit.rollback()
            return await _move_page(visit, error=exc.message, status_code=422)
        return await _move_page(visit, notice="Aliases saved.")
    handle = visit.field("handle").strip().lstrip("@")
    if not verify_password(visit.user.password_hash, visit.field("password")):
        return await _move_page(visit, error="That is not your password.", status_code=422,
                                handle=handle)
    target = await _find_account(visit, handle)
    if target is None:
        return await _move_page(visit, error=f"No account {handle!r} was found.", status_code=422,
                                handle=handle)
    try:
        moved = await moves.move_to(visit.session, visit.account, target)
    except ServiceError as exc:
        await visit.rollback()
        return await _move_page(visit, error=exc.message, status_code=422, handle=handle)
    return await _move_page(visit, notice=f"Moved to {target.acct()}. Your followers here now follow "
                                          f"it ({moved}); other servers are told.")


async def _find_account(visit: Visit, handle: str) -> Account | None:
    """``user`` (here) or ``user@domain`` (here or looked up, WebFinger and a fetch)."""
    username, _, domain = handle.partition("@")
    if not username:
        return None
    if not domain or domain.lower() == visit.state.settings.domain.lower():
        return await find_local_account(visit.session, username)
    from federation.actors import ActorError
    from federation.context import federation_context
    from federation.http import FetchError
    from federation.search import resolve_handle

    fed = federation_context(visit.state.settings, visit.state.db)
    found = await resolve_handle(fed, visit.session, handle)
    if found is None:
        return None
    # Fresh: the alias was likely added minutes ago, after this server cached the actor.
    try:
        refreshed = await fed.fetcher.fetch_actor(found.uri, refresh=True)
    except (ActorError, FetchError):
        return found
    return await visit.session.get(Account, refreshed.id, populate_existing=True)


def _studio_routes() -> list[BaseRoute]:
    def page(path: str, handler: Handler, methods: list[str], **options: Any) -> Route:
        return Route(path, studio_page(handler, **options), methods=methods)

    return [
        page("/studio", works, ["GET", "HEAD"]),
        page("/studio/upload", upload_form, ["GET", "HEAD"]),
        page("/studio/upload", upload, ["POST"], body_limit=UPLOAD_BODY_LIMIT),
        page("/studio/works/{id}", work, ["GET", "HEAD"]),
        page("/studio/works/{id}", save_work, ["POST"]),
        page("/studio/works/{id}/delete", delete_form, ["GET", "HEAD"]),
        page("/studio/works/{id}/delete", delete_work, ["POST"]),
        page("/studio/works/{id}/pin", pin_work, ["POST"]),
        page("/studio/works/{id}/unpin", pin_work, ["POST"]),
        page("/studio/works/{id}/protection", protection_report, ["GET", "HEAD"]),
        page("/studio/media/{id}/retry", protection_choice, ["POST"]),
        page("/studio/media/{id}/publish_unprotected", protection_choice, ["POST"]),
        page("/studio/media/{id}/progress.json", progress, ["GET"], api=True),
        page("/studio/media/{id}/original", original, ["GET"], api=True),
        page("/studio/media/{id}/difference.png", difference, ["GET"], api=True),
        page("/studio/media/{id}/pictures/{name}", picture, ["GET"], api=True),
        page("/studio/projects", projects, ["GET", "HEAD"]),
        page("/studio/projects", project_action, ["POST"]),
        page("/studio/settings", settings_form, ["GET", "HEAD"]),
        page("/studio/settings", save_settings, ["POST"], body_limit=SETTINGS_BODY_LIMIT),
        page("/studio/check", check_form, ["GET", "HEAD"]),
        page("/studio/check", start_check, ["POST"], body_limit=CHECK_BODY_LIMIT),
        page("/studio/check/{token}", check_result, ["GET", "HEAD"]),
        page("/studio/export", export_page, ["GET", "HEAD"]),
        page("/studio/import", import_form, ["GET", "HEAD"]),
        page("/studio/move", move_form, ["GET", "HEAD"]),
        page("/studio/move", move_action, ["POST"]),
        page("/studio/import", start_import, ["POST"], body_limit=IMPORT_BODY_LIMIT),
        page("/studio/export/archive.zip", export_archive, ["GET"], api=True),
        page("/studio/export/{name}.csv", export_csv, ["GET"], api=True),
    ]


routes: list[BaseRoute] = _studio_routes()
