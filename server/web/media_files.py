"""Public media files at ``/system/{key}``: renditions, avatars and headers.

Only the public root of LocalStorage is ever read here: private originals have their own
owner-checked endpoint, and no key can reach them (keys are validated with
``check_key``, and the resolved path must stay under the public root). Every response,
404s included, says "not for AI training" with the instance's opt-out headers
(``server/web/optout.py``; the file itself carries its artist's own choice). Files never change under
a key (new content gets a new random key), so they are cached for a year.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from server.state import easel
from server.storage import StorageError, check_key
from server.web.optout import OPT_OUT_HEADERS

CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "avif": "image/avif",
}


def _not_found() -> Response:
    return PlainTextResponse("Not found", status_code=404,
                             headers={**OPT_OUT_HEADERS, "Cache-Control": "no-store"})


async def public_file(request: Request) -> Response:
    key = request.path_params["key"]
    try:
        check_key(key)
    except StorageError:
        return _not_found()
    content_type = CONTENT_TYPES.get(key.rsplit(".", 1)[-1])
    if content_type is None:
        return _not_found()
    storage = easel(request).storage
    root = storage.public_root.resolve()
    path = storage.path(key).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return _not_found()
    return FileResponse(path, media_type=content_type, headers={
        "Cache-Control": "public, max-age=31536000, immutable",
        **OPT_OUT_HEADERS,
        "X-Content-Type-Options": "nosniff",
    })


routes: list[BaseRoute] = [Route("/system/{key:path}", public_file, methods=["GET", "HEAD"])]
