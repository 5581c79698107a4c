"""Where media files live, behind one interface.

Keys are random names chosen by Easel (never user input). Public files (renditions,
avatars) are served at ``/system/{key}``; private files (originals, report pictures) live
under a separate root (a directory, or an object-key prefix) that no route serves directly
— only owner-checked endpoints read them.

Two backends implement :class:`Storage`: :class:`LocalStorage` (a directory, the default)
and :class:`S3Storage` (any S3-compatible object store: AWS, MinIO, Garage, R2 …; the code
speaks the S3 API to ``EASEL_S3_ENDPOINT`` and knows nothing else of what serves it). With
S3, public files are still served at ``/system/{key}`` by Easel (which adds the "not for AI
training" headers) unless ``EASEL_S3_PUBLIC_URL`` names a CDN or bucket URL that serves the
``public/`` prefix; private objects never get a public URL.

What it must never do: build a key from user input, or make a private file reachable by URL.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from server.urls import source_of

if TYPE_CHECKING:
    from server.settings import Settings

STREAM_CHUNK = 256 * 1024  # bytes read from the store at a time when streaming

_KEY_RE = re.compile(r"\A[a-z0-9_]+(/[a-z0-9_]+)*\.[a-z0-9]+\Z")


class StorageError(Exception):
    pass


class RangeNotSatisfiable(StorageError):
    """A byte range that starts past the end of the object (its ``size``)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable: the file has {size} bytes")
        self.size = size


@dataclass(frozen=True)
class PublicRead:
    """An object's bytes: whole, or one range with its ``Content-Range``."""

    data: bytes
    content_range: str | None = None  # "bytes 0-99/1234" when a range was read


@dataclass(frozen=True)
class PublicStream:
    """A public object being read: its ``length`` bytes (the whole object, or one range
    with its ``Content-Range``) come from ``chunks`` as they arrive from the store, so an
    answer holds at most one chunk in memory however large the file. Leaving ``chunks``
    unfinished (a client that went away) closes the store's connection."""

    chunks: AsyncIterator[bytes]
    length: int
    content_range: str | None = None


def new_key(prefix: str, extension: str) -> str:
    """A fresh random key like ``media/ab/cd/abcd….webp``; unguessable, never user input."""
    token = secrets.token_hex(16)
    return f"{prefix}/{token[:2]}/{token[2:4]}/{token}.{extension.lstrip('.').lower()}"


def check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]+(/[a-z0-9_]+)*", prefix):
        raise StorageError(f"invalid storage prefix: {prefix!r}")
    return prefix


def check_key(key: str) -> str:
    if not _KEY_RE.match(key) or ".." in key:
        raise StorageError(f"invalid storage key: {key!r}")
    return key


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    modified: datetime  # aware, UTC


class Storage(Protocol):
    base_url: str  # the instance's https://domain, for links that name it
    # Where public files are served from when that is not this instance (a CDN in front of
    # the bucket): the pages' Content-Security-Policy must allow its images. None: /system/.
    public_origin: str | None

    async def list_files(self, prefix: str, *, private: bool = False) -> list[StoredFile]:
        """Every file whose key starts with ``prefix`` + "/" (for housekeeping: prune)."""
        ...

    async def put(self, key: str, data: bytes, *, private: bool = False) -> None: ...
    async def get(self, key: str, *, private: bool = False) -> bytes: ...
    async def delete(self, key: str, *, private: bool = False) -> None: ...
    async def exists(self, key: str, *, private: bool = False) -> bool: ...
    def public_url(self, key: str) -> str: ...


def media_storage(settings: Settings) -> Storage:
    """The instance's media storage; every process (web, workers) builds it the same way."""
    if settings.storage == "s3":
        return S3Storage.from_settings(settings)
    return LocalStorage(settings.data_dir / "media", settings.base_url)


class LocalStorage:
    """Files under ``root/public`` and ``root/private``; public ones served at /system/."""

    public_origin: str | None = None  # files are served at this instance's /system/

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")

    def path(self, key: str, *, private: bool = False) -> Path:
        return self.root / ("private" if private else "public") / check_key(key)

    @property
    def public_root(self) -> Path:
        return self.root / "public"

    async def put(self, key: str, data: bytes, *, private: bool = False) -> None:
        path = self.path(key, private=private)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + f".{secrets.token_hex(4)}.part")
            partial.write_bytes(data)
            os.replace(partial, path)  # readers never see a half-written file

        await asyncio.to_thread(write)

    async def get(self, key: str, *, private: bool = False) -> bytes:
        path = self.path(key, private=private)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise StorageError(f"no such file: {key}") from exc

    async def delete(self, key: str, *, private: bool = False) -> None:
        path = self.path(key, private=private)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def exists(self, key: str, *, private: bool = False) -> bool:
        return await asyncio.to_thread(self.path(key, private=private).is_file)

    def public_url(self, key: str) -> str:
        return f"{self.base_url}/system/{check_key(key)}"

    async def list_files(self, prefix: str, *, private: bool = False) -> list[StoredFile]:
        base = self.root / ("private" if private else "public")
        top = base / check_prefix(prefix)

        def walk() -> list[StoredFile]:
            found = []
            for path in top.rglob("*") if top.is_dir() else ():
                key = path.relative_to(base).as_posix()
                if not path.is_file() or not _KEY_RE.match(key):
                    continue  # a half-written ".part" file, or nothing of Easel's
                stat = path.stat()
                found.append(StoredFile(key, stat.st_size,
                                        datetime.fromtimestamp(stat.st_mtime, UTC)))
            return found

        return await asyncio.to_thread(walk)


# Content types of the files Easel stores (by key extension); anything else is bytes.
CONTENT_TYPES = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp",
    "gif": "image/gif", "avif": "image/avif", "json": "application/json",
    "mp4": "video/mp4", "webm": "video/webm", "m4a": "audio/mp4", "mp3": "audio/mpeg",
    "ogg": "audio/ogg", "wav": "audio/wav", "flac": "audio/flac",
}


def content_type_of(key: str) -> str:
    return CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")


class S3Storage:
    """Objects ``public/{key}`` and ``private/{key}`` in one bucket of an S3-compatible store.

    boto3 is synchronous: each call runs in a worker thread. The client is made once per
    storage (it is thread-safe) and only when first used, so building the storage (at
    start-up, in every process) never touches the network.
    """

    def __init__(self, *, bucket: str, base_url: str, endpoint_url: str | None = None,
                 region: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None, public_url: str | None = None) -> None:
        self.bucket = bucket
        self.base_url = base_url.rstrip("/")
        self.public_base = public_url.rstrip("/") if public_url else None
        self.public_origin = source_of(self.public_base) if self.public_base else None
        self._client_options: dict[str, Any] = {
            "endpoint_url": endpoint_url or None, "region_name": region or None,
            "aws_access_key_id": access_key_id or None,
            "aws_secret_access_key": secret_access_key or None,
        }
        self._client: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        return cls(bucket=settings.s3_bucket, base_url=settings.base_url,
                   endpoint_url=settings.s3_endpoint, region=settings.s3_region,
                   access_key_id=settings.s3_access_key_id,
                   secret_access_key=settings.s3_secret_access_key,
                   public_url=settings.s3_public_url)

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise StorageError("EASEL_STORAGE=s3 needs the s3 extra: pip install 'easel[s3]'") from exc
            self._client = boto3.client(
                "s3", config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                    s3={"addressing_style": "path"}),
                **self._client_options)
        return self._client

    @staticmethod
    def object_key(key: str, *, private: bool) -> str:
        return f"{'private' if private else 'public'}/{check_key(key)}"

    @staticmethod
    def _error_code(exc: Exception) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    @classmethod
    def _missing(cls, exc: Exception) -> bool:
        return cls._error_code(exc) in ("404", "NoSuchKey", "NotFound")

    async def put(self, key: str, data: bytes, *, private: bool = False) -> None:
        object_key = self.object_key(key, private=private)
        cache = "private, no-store" if private else "public, max-age=31536000, immutable"
        try:
            await asyncio.to_thread(self.client.put_object, Bucket=self.bucket, Key=object_key,
                                    Body=data, ContentType=content_type_of(key), CacheControl=cache)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"could not store {key}: {type(exc).__name__}") from exc

    async def get(self, key: str, *, private: bool = False) -> bytes:
        return (await self._read(key, private=private)).data

    async def open_public(self, key: str, byte_range: str | None = None) -> PublicStream:
        """A public object for ``/system/``, streamed: whole, or only ``byte_range`` (one
        HTTP range, "bytes=0-99", "bytes=100-", "bytes=-100"; the store sends just those
        bytes). Raises StorageError when it is missing, RangeNotSatisfiable for a range
        past its end; a failure after the first bytes ends the stream early."""
        answer = await self._get_object(key, private=False, byte_range=byte_range)
        body = answer["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await asyncio.to_thread(body.read, STREAM_CHUNK):
                    yield bytes(chunk)
            finally:
                body.close()

        return PublicStream(chunks(), int(answer["ContentLength"]),
                            answer.get("ContentRange") if byte_range else None)

    async def _read(self, key: str, *, private: bool) -> PublicRead:
        answer = await self._get_object(key, private=private)
        body = answer["Body"]

        def read() -> bytes:
            try:
                return bytes(body.read())
            finally:
                body.close()

        try:
            return PublicRead(await asyncio.to_thread(read))
        except Exception as exc:
            raise StorageError(f"could not read {key}: {type(exc).__name__}") from exc

    async def _get_object(self, key: str, *, private: bool,
                          byte_range: str | None = None) -> dict[str, Any]:
        """boto3's ``get_object`` answer (its body not yet read), or StorageError."""
        object_key = self.object_key(key, private=private)
        options = {"Range": byte_range} if byte_range else {}
        try:
            answer: dict[str, Any] = await asyncio.to_thread(
                self.client.get_object, Bucket=self.bucket, Key=object_key, **options)
        except StorageError:
            raise
        except Exception as exc:
            if self._missing(exc):
                raise StorageError(f"no such file: {key}") from exc
            if self._error_code(exc) == "InvalidRange":
                raise RangeNotSatisfiable(await self.public_size(key)) from exc
            raise StorageError(f"could not read {key}: {type(exc).__name__}") from exc
        return answer

    async def public_size(self, key: str) -> int:
        """A public object's size in bytes (a HEAD request: nothing is read)."""
        object_key = self.object_key(key, private=False)
        try:
            head = await asyncio.to_thread(self.client.head_object, Bucket=self.bucket,
                                           Key=object_key)
        except Exception as exc:
            if self._missing(exc):
                raise StorageError(f"no such file: {key}") from exc
            raise StorageError(f"could not read {key}: {type(exc).__name__}") from exc
        return int(head["ContentLength"])

    async def delete(self, key: str, *, private: bool = False) -> None:
        # Deleting a missing object is a success in S3, as unlink(missing_ok=True) locally.
        object_key = self.object_key(key, private=private)
        try:
            await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=object_key)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"could not delete {key}: {type(exc).__name__}") from exc

    async def exists(self, key: str, *, private: bool = False) -> bool:
        object_key = self.object_key(key, private=private)
        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=object_key)
        except StorageError:
            raise
        except Exception as exc:
            if self._missing(exc):
                return False
            raise StorageError(f"could not look up {key}: {type(exc).__name__}") from exc
        return True

    async def list_files(self, prefix: str, *, private: bool = False) -> list[StoredFile]:
        start = f"{'private' if private else 'public'}/"
        listed = start + check_prefix(prefix) + "/"

        def walk() -> list[StoredFile]:
            found = []
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=listed)
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][len(start):]
                    if _KEY_RE.match(key):
                        found.append(StoredFile(key, int(item["Size"]), item["LastModified"]))
            return found

        try:
            return await asyncio.to_thread(walk)
        except Exception as exc:
            raise StorageError(f"could not list {prefix}: {type(exc).__name__}") from exc

    def public_url(self, key: str) -> str:
        if self.public_base is not None:
            return f"{self.public_base}/{self.object_key(key, private=False)}"
        return f"{self.base_url}/system/{check_key(key)}"
