"""Helpers for media tests that go through the app: upload, run the protect queue, read rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from server.models import MediaAttachment


async def upload(api: httpx.AsyncClient, data: bytes, *, name: str = "upload.jpg",
                 content_type: str | None = "image/jpeg", version: str = "v2",
                 fields: dict[str, str] | None = None) -> httpx.Response:
    file: Any = (name, data, content_type) if content_type is not None else (name, data)
    return await api.post(f"/api/{version}/media", files={"file": file}, data=fields or {})


async def run_protect(app: Starlette) -> int:
    ran: int = await app.state.easel.runner.run_due(["protect"])
    return ran


async def media_row(app: Starlette, media_id: int | str) -> MediaAttachment:
    async with app.state.easel.db.session() as session:
        media = await session.get(MediaAttachment, int(media_id))
        assert media is not None
        return media


def stored_files(app: Starlette, *, private: bool = False) -> list[Path]:
    root: Path = app.state.easel.storage.root / ("private" if private else "public")
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
