"""Media endpoints: upload (v1 and v2), show, update, the owner's private original, and
the owner's view of and choices about its protection.

Thin: auth → parse → one service call → serialise. The upload's declared Content-Type is
never trusted (the service sniffs the bytes); the body is read only up to the size limit.

The protection endpoints (``/api/v1/easel/media/:id/protection``, ``…/retry``,
``…/publish_unprotected``) answer 404 to anyone but the owner, also without a token: they
do not even confirm that a media exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.api.auth import Auth, authenticate, require
from server.api.entities import EntityContext, media_to_entity
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.limits import IMAGE_SIZE_LIMIT
from server.models import Account, MediaAttachment, MediaState
from server.services import media as media_service
from server.services import protection as protection_service
from server.services.errors import NotFound
from server.state import easel
from server.web.optout import OPT_OUT_HEADERS

MEGABYTE = 1024 * 1024
TOO_LARGE = f"Validation failed: File file size must be less than {IMAGE_SIZE_LIMIT // MEGABYTE} MB"


async def _read_upload(params: Params) -> bytes:
    upload = params.get_file("file")
    if upload is None:
        raise ApiError(422, "Validation failed: File can't be blank")
    if upload.size is not None and upload.size > IMAGE_SIZE_LIMIT:
        raise ApiError(422, TOO_LARGE)
    data = await upload.read(IMAGE_SIZE_LIMIT + 1)
    if len(data) > IMAGE_SIZE_LIMIT:
        raise ApiError(422, TOO_LARGE)
    if not data:
        raise ApiError(422, "Validation failed: File can't be blank")
    return data


def _entity_response(request: Request, media: MediaAttachment, status_code: int) -> JSONResponse:
    return JSONResponse(media_to_entity(media, EntityContext.of(easel(request))), status_code=status_code)


async def _upload(request: Request) -> MediaAttachment:
    auth = await require(request, "write:media")
    _user, account = auth.require_user()
    params = await Params.from_request(request)
    data = await _read_upload(params)
    description = params.get_str("description")
    focus = params.get_str("focus")
    state = easel(request)
    async with state.db.session() as session:
        return await media_service.create_media(session, state, account, data,
                                                description=description, focus=focus)


async def upload_v2(request: Request) -> Response:
    media = await _upload(request)
    return _entity_response(request, media, 200 if media.state == MediaState.READY else 202)


async def upload_v1(request: Request) -> Response:
    """Mastodon's v1 answers 200 even while processing (with ``url: null``)."""
    return _entity_response(request, await _upload(request), 200)


def _shown(request: Request, media: MediaAttachment) -> Response:
    if media.state == MediaState.FAILED:
        raise ApiError(422, media.processing_error or "Error processing thumbnail for uploaded media")
    return _entity_response(request, media, 206 if media.state == MediaState.PROCESSING else 200)


async def show(request: Request) -> Response:
    auth = await require(request, "write:media")
    _user, account = auth.require_user()
    media_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        media = await media_service.get_own_media(session, account, media_id)
    return _shown(request, media)


async def update(request: Request) -> Response:
    auth = await require(request, "write:media")
    _user, account = auth.require_user()
    media_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    description = params.get_str("description")
    focus = params.get_str("focus")
    async with easel(request).db.session() as session:
        media = await media_service.update_media(session, account, media_id,
                                                 description=description, focus=focus)
    return _entity_response(request, media, 206 if media.state == MediaState.PROCESSING else 200)


async def original(request: Request) -> Response:
    """The uploaded original, to its owner only; never cached anywhere."""
    auth = await require(request, "read:statuses")
    _user, account = auth.require_user()
    media_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        data, content_type = await media_service.read_original(state.storage, session, account, media_id)
    return Response(data, media_type=content_type, headers={
        "Cache-Control": "private, no-store",
        **OPT_OUT_HEADERS,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": "inline",
    })


async def _owner(request: Request) -> Auth:
    """A user token with write:media (the scope of GET /api/v1/media/:id). No token, or an
    app's own token (no user), is "not found", like someone else's media."""
    auth = await authenticate(request)
    if auth is None or auth.account is None:
        raise NotFound("Record not found")
    return await require(request, "write:media")


async def protection(request: Request) -> Response:
    """The protection document, with the job's live progress while pending."""
    _user, account = (await _owner(request)).require_user()
    media_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        document = await protection_service.protection_of(session, account, media_id)
    return JSONResponse(document, headers={"Cache-Control": "private, no-store"})


async def _authors_choice(request: Request, choose: Callable[[AsyncSession, Account, int],
                                                                Awaitable[dict[str, Any]]]) -> Response:
    """The author's choice for a media whose protection failed (retry, publish unprotected)."""
    _user, account = (await _owner(request)).require_user()
    media_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        document = await choose(session, account, media_id)
    return JSONResponse(document, status_code=202)


async def retry_protection(request: Request) -> Response:
    return await _authors_choice(request, protection_service.retry)


async def publish_unprotected(request: Request) -> Response:
    return await _authors_choice(request, protection_service.publish_unprotected)


routes: list[BaseRoute] = [
    Route("/api/v2/media", upload_v2, methods=["POST"]),
    Route("/api/v1/media", upload_v1, methods=["POST"]),
    Route("/api/v1/media/{id}", show, methods=["GET"]),
    Route("/api/v1/media/{id}", update, methods=["PUT"]),
    Route("/api/v1/easel/media/{id}/original", original, methods=["GET"]),
    Route("/api/v1/easel/media/{id}/protection", protection, methods=["GET"]),
    Route("/api/v1/easel/media/{id}/retry", retry_protection, methods=["POST"]),
    Route("/api/v1/easel/media/{id}/publish_unprotected", publish_unprotected, methods=["POST"]),
]
