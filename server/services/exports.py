"""Account export: what an artist takes with them when they leave, or keeps as a backup.

Why it exists: an artist must be able to move to another server (Easel or any Mastodon-
compatible one) without losing their network or their work. The CSV files are Mastodon's
own export formats, so Mastodon, GoToSocial and Easel import them as they are:

* ``following_accounts.csv`` — ``Account address,Show boosts,Notify on new posts,Languages``
* ``blocked_accounts.csv`` — one ``user@domain`` per line, no header
* ``muted_accounts.csv`` — ``Account address,Hide notifications``
* ``bookmarks.csv`` — one status URI per line, no header
* ``lists.csv`` — ``list title,user@domain`` per member, no header

The archive (:func:`write_archive`) holds the artist's works: every status with images,
its text and portfolio data in ``works.json``, and each image's original file (the
unprotected upload, which only its owner ever gets) under ``originals/``; the profile in
``profile.json`` with the avatar and header.

What it must never do: put anyone else's private data in an export (only the artist's own
rows are read), or an original of another account.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import (
    Account,
    Block,
    Bookmark,
    Follow,
    List,
    ListAccount,
    MediaAttachment,
    MediaState,
    Mute,
    Status,
)
from server.services.portfolio import work_metadata
from server.settings import Settings
from server.storage import Storage, StorageError

CSV_EXPORTS = ("following_accounts", "blocked_accounts", "muted_accounts", "bookmarks", "lists")
ARCHIVE_FORMAT = 1
# Image types by the content type recorded at upload: the archive's file extensions.
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif",
              "image/avif": "avif"}


def address(account: Account, settings: Settings) -> str:
    """``user@domain`` — local accounts too, with this instance's domain, as Mastodon does."""
    return f"{account.username}@{account.domain or settings.domain}"


def _csv(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _flag(value: bool) -> str:
    return "true" if value else "false"


async def _targets(session: AsyncSession, model: Any, account: Account) -> list[tuple[Any, Account]]:
    rows = await session.execute(
        select(model, Account).join(Account, Account.id == model.target_account_id)
        .where(model.account_id == account.id).order_by(model.id))
    return [(row, target) for row, target in rows]


async def export_csv(session: AsyncSession, settings: Settings, account: Account, name: str) -> str:
    """One of :data:`CSV_EXPORTS` for ``account``, as text. KeyError for another name."""
    if name == "following_accounts":
        follows = await _targets(session, Follow, account)
        return _csv(("Account address", "Show boosts", "Notify on new posts", "Languages"),
                    ((address(target, settings), _flag(f.show_reblogs), _flag(f.notify), "")
                     for f, target in follows))
    if name == "blocked_accounts":
        return _csv(None, ((address(target, settings),)
                           for _b, target in await _targets(session, Block, account)))
    if name == "muted_accounts":
        return _csv(("Account address", "Hide notifications"),
                    ((address(target, settings), _flag(m.hide_notifications))
                     for m, target in await _targets(session, Mute, account)))
    if name == "bookmarks":
        uris = await session.scalars(
            select(Status.uri).join(Bookmark, Bookmark.status_id == Status.id)
            .where(Bookmark.account_id == account.id).order_by(Bookmark.id))
        return _csv(None, ((uri,) for uri in uris))
    if name == "lists":
        members = await session.execute(
            select(List.title, Account).join(ListAccount, ListAccount.list_id == List.id)
            .join(Account, Account.id == ListAccount.account_id)
            .where(List.account_id == account.id).order_by(List.id, ListAccount.id))
        return _csv(None, ((title, address(member, settings)) for title, member in members))
    raise KeyError(name)


def _iso(moment: Any) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if moment is not None else None


async def _works(session: AsyncSession,
                 account: Account) -> tuple[list[Status], dict[int, list[MediaAttachment]]]:
    media_rows = list(await session.scalars(
        select(MediaAttachment).join(Status, Status.id == MediaAttachment.status_id)
        .where(Status.account_id == account.id, Status.reblog_of_id.is_(None),
               MediaAttachment.purpose == "attachment")
        .order_by(MediaAttachment.status_id, MediaAttachment.id)))
    by_status: dict[int, list[MediaAttachment]] = {}
    for media in media_rows:
        assert media.status_id is not None
        by_status.setdefault(media.status_id, []).append(media)
    statuses = list(await session.scalars(
        select(Status).where(Status.id.in_(list(by_status))).order_by(Status.id))) if by_status else []
    return statuses, by_status


async def write_archive(session: AsyncSession, settings: Settings, storage: Storage,
                        account: Account, out: IO[bytes]) -> int:
    """Write the artist's archive (a zip) to ``out``, one image in memory at a time; the
    number of works in it."""
    statuses, media_by_status = await _works(session, account)
    meta = await work_metadata(session, [s.id for s in statuses])
    works: list[dict[str, Any]] = []
    files: list[tuple[str, str, bool]] = []  # (name in the archive, storage key, private)
    for status in statuses:
        images = []
        for media in media_by_status[status.id]:
            extension = EXTENSIONS.get(media.original_content_type or "")
            name = f"originals/{media.id}.{extension}" if media.original_key and extension else None
            if name is not None and media.original_key:
                files.append((name, media.original_key, True))
            images.append({
                "id": str(media.id), "file": name, "description": media.description,
                "focus": {"x": media.focus_x, "y": media.focus_y},
                "size": (media.meta or {}).get("original"),
                "content_type": media.original_content_type or None,
                "ready": media.state == MediaState.READY,
            })
        view = meta.get(status.id)
        works.append({
            "id": str(status.id), "uri": status.uri, "url": status.url,
            "created_at": _iso(status.created_at), "edited_at": _iso(status.edited_at),
            "visibility": status.visibility, "language": status.language,
            "sensitive": status.sensitive, "spoiler_text": status.spoiler_text,
            "text": status.text, "content": status.content,
            "portfolio": None if view is None else {
                "title": view.title, "description": view.description, "year": view.year,
                "dimensions": view.dimensions, "ai_generated": view.ai_generated,
                "tags": {kind: [term.name for term in terms] for kind, terms in view.tags.items()},
            },
            "images": images,
        })
    profile: dict[str, Any] = {
        "format": ARCHIVE_FORMAT, "address": address(account, settings), "uri": account.uri,
        "display_name": account.display_name, "note": account.note,
        "fields": account.fields, "created_at": _iso(account.created_at),
    }
    for purpose in ("avatar", "header"):
        key = getattr(account, f"{purpose}_key")
        profile[purpose] = f"profile/{purpose}.{key.rsplit('.', 1)[-1]}" if key else None
        if key:
            files.append((profile[purpose], key, False))

    missing: list[str] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, key, private in files:
            try:
                data = await storage.get(key, private=private)
            except StorageError:
                missing.append(name)  # said so in MISSING.txt, not skipped silently
                continue
            # Images are compressed already.
            await asyncio.to_thread(archive.writestr, name, data, zipfile.ZIP_STORED)
        archive.writestr("README.txt", README)
        archive.writestr("profile.json", json.dumps(profile, ensure_ascii=False, indent=2))
        archive.writestr("works.json", json.dumps(works, ensure_ascii=False, indent=2))
        if missing:
            archive.writestr("MISSING.txt", "These files could not be read from storage:\n"
                             + "".join(f"{name}\n" for name in missing))
    return len(works)


README = """Your Easel archive
==================

profile.json   your profile (name, bio, fields) and where your avatar and header are
works.json     every post of yours with images: text, visibility, dates, portfolio data
               (title, description, year, dimensions, fields, mediums, project types,
               categories, software) and its images
originals/     each image as you uploaded it (before protection; metadata was stripped)
profile/       your avatar and header

The follows, blocks, mutes, bookmarks and lists exports are separate CSV files in
Mastodon's formats: any Mastodon-compatible server can import them.
"""
