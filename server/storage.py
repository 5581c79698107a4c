"""Where media files live, behind one interface.

Keys are random names chosen by Easel (never user input). Public files (renditions,
avatars) are served at ``/system/{key}``; private files (originals) live under a separate
root that no route serves directly — only the owner-checked original endpoint reads them.
The local-directory backend is the only one so far; an S3-compatible backend will
implement the same methods.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from server.settings import Settings

_KEY_RE = re.compile(r"\A[a-z0-9_]+(/[a-z0-9_]+)*\.[a-z0-9]+\Z")


class StorageError(Exception):
    pass


def new_key(prefix: str, extension: str) -> str:
    """A fresh random key like ``media/ab/cd/abcd….webp``; unguessable, never user input."""
    token = secrets.token_hex(16)
    return f"{prefix}/{token[:2]}/{token[2:4]}/{token}.{extension.lstrip('.').lower()}"


def check_key(key: str) -> str:
    if not _KEY_RE.match(key) or ".." in key:
        raise StorageError(f"invalid storage key: {key!r}")
    return key


class Storage(Protocol):
    async def put(self, key: str, data: bytes, *, private: bool = False) -> None: ...
    async def get(self, key: str, *, private: bool = False) -> bytes: ...
    async def delete(self, key: str, *, private: bool = False) -> None: ...
    async def exists(self, key: str, *, private: bool = False) -> bool: ...
    def public_url(self, key: str) -> str: ...


def media_storage(settings: Settings) -> LocalStorage:
    """The instance's media storage; every process (web, workers) builds it the same way."""
    return LocalStorage(settings.data_dir / "media", settings.base_url)


class LocalStorage:
    """Files under ``root/public`` and ``root/private``; public ones served at /system/."""

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
