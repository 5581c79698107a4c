"""Public media files at ``/system/{key}``: renditions, avatars and headers.

Only public files are ever read here: private originals have their own owner-checked
endpoint, and no key can reach them (keys are validated with ``check_key``; locally the
resolved path must stay under the public root, in a bucket only the ``public/`` prefix is
read). Local files are streamed from disk; with object storage Easel reads the object and
answers it itself, so the headers below are on it too. Every response,
404s included, says "not for AI training" with the instance's opt-out headers
(``server/web/optout.py``; the file itself carries its artist's own choice). Files never change under
a key (new content gets a new random key), so they are cached for a year.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from server.state import easel
from server.storage import LocalStorage, StorageError, check_key
from server.web.optout import OPT_OUT_HEADERS

CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "avif": "image/avif",
    # Remote video and audio kept by the remote media cache (federation.media_cache).
    "mp4": "video/mp4",
    "webm": "video/webm",
    "m4a": "audio/mp4",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "flac": "audio/flac",
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
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        **OPT_OUT_HEADERS,
        "X-Content-Type-Options": "nosniff",
    }
    storage = easel(request).storage
    if not isinstance(storage, LocalStorage):
        try:
            data = await storage.get(key)
        except StorageError:
            return _not_found()
        return Response(b"" if request.method == "HEAD" else data, media_type=content_type,
                        headers={**headers, "Content-Length": str(len(data))})
    root = storage.public_root.resolve()
    path = storage.path(key).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return _not_found()
    return FileResponse(path, media_type=content_type, headers=headers)


routes: list[BaseRoute] = [Route("/system/{key:path}", public_file, methods=["GET", "HEAD"])]
