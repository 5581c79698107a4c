"""Public media files at ``/system/{key}``: renditions, avatars and headers.

Only public files are ever read here: private originals have their own owner-checked
endpoint, and no key can reach them (keys are validated with ``check_key``; locally the
resolved path must stay under the public root, in a bucket only the ``public/`` prefix is
read). Local files are streamed from disk; with object storage Easel streams the object from the
bucket itself (a chunk at a time, never the whole file in memory), so the headers below
are on it too — one byte range when one is asked (only those bytes are read from the
bucket), as FileResponse does locally. Every response,
404s included, says "not for AI training" with the instance's opt-out headers
(``server/web/optout.py``; the file itself carries its artist's own choice). Files never change under
a key (new content gets a new random key), so they are cached for a year.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from server.state import easel
from server.storage import LocalStorage, RangeNotSatisfiable, S3Storage, StorageError, check_key
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


_RANGE = re.compile(r"\Abytes=(\d{0,19})-(\d{0,19})\Z")


def single_range(header: str | None) -> str | None:
    """One well-formed byte range ("bytes=0-99", "bytes=100-", "bytes=-100") as the store
    takes it; None for none, several (the whole file is answered, as RFC 9110 allows) or
    one that is not well formed (ignored, as RFC 9110 says)."""
    match = _RANGE.match((header or "").strip().replace(" ", ""))
    if match is None or match.group(1) == match.group(2) == "":
        return None
    start, end = match.groups()
    if start and end and int(end) < int(start):
        return None
    return f"bytes={start}-{end}"


async def _from_bucket(request: Request, storage: S3Storage, key: str, content_type: str,
                       headers: dict[str, str]) -> Response:
    """An object of the bucket, answered by Easel: only the range asked for (a video
    player's seek; Safari plays no video without ranges), never more than the file."""
    headers = {**headers, "Accept-Ranges": "bytes"}
    try:
        if request.method == "HEAD":
            size = await storage.public_size(key)
            return Response(b"", media_type=content_type,
                            headers={**headers, "Content-Length": str(size)})
        stream = await storage.open_public(key, single_range(request.headers.get("range")))
    except RangeNotSatisfiable as exc:
        return Response(b"", status_code=416, media_type=content_type,
                        headers={**headers, "Content-Range": f"bytes */{exc.size}"})
    except StorageError:
        return _not_found()
    headers["Content-Length"] = str(stream.length)
    if stream.content_range:
        headers["Content-Range"] = stream.content_range
    return StreamingResponse(stream.chunks, status_code=206 if stream.content_range else 200,
                             media_type=content_type, headers=headers)


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
    if isinstance(storage, S3Storage):
        return await _from_bucket(request, storage, key, content_type, headers)
    assert isinstance(storage, LocalStorage)
    root = storage.public_root.resolve()
    path = storage.path(key).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return _not_found()
    return FileResponse(path, media_type=content_type, headers=headers)


routes: list[BaseRoute] = [Route("/system/{key:path}", public_file, methods=["GET", "HEAD"])]
