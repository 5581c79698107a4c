"""Profile updates: what ``PATCH /api/v1/accounts/update_credentials`` changes, and
``DELETE /api/v1/profile/avatar`` / ``…/header`` (:func:`remove_profile_image`).

Why it exists: a profile update touches two rows (the account and the login's posting
defaults) and up to two image files, and must be all or nothing. So everything is
validated first (collecting every error, as Mastodon's "Validation failed: a, b" does),
then the new images are processed and stored, then the rows change in one transaction;
the replaced image files are deleted only after that commit, and the new ones if it fails.

A change to what other servers show (name, note, fields, images, locked, bot,
discoverable, indexable) is recorded as an ``Update`` of the actor, in the same transaction,
for federation to send to the account's followers.

What it must never do: store an image it has not re-encoded (``process_profile_image``
does that), or write anything when one value is bad.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from server.limits import (
    CHARACTERS_RESERVED_PER_URL,
    MAX_DISPLAY_NAME,
    MAX_FIELD_NAME,
    MAX_FIELD_VALUE,
    MAX_NOTE,
    MAX_PROFILE_FIELDS,
    PROFILE_IMAGE_SIZE_LIMIT,
)
from server.models import Account, User
from server.services.errors import NotFound, ValidationFailed
from server.services.follows import authorize_all_follow_requests
from server.services.languages import is_language_tag, known_language
from server.services.outbox import record_activity
from server.services.text import countable_length
from server.storage import Storage

log = logging.getLogger(__name__)

# The posting defaults a profile may choose (``direct`` is not a default, as in Mastodon).
DEFAULT_PRIVACIES = ("public", "unlisted", "private")



@dataclass
class ProfileField:
    name: str
    value: str


@dataclass
class ProfileChanges:
    """What a client asked to change; None means "leave as it is"."""

    display_name: str | None = None
    note: str | None = None
    locked: bool | None = None
    bot: bool | None = None
    discoverable: bool | None = None
    indexable: bool | None = None
    # The complete new list (entries with a blank name already count as absent).
    fields: list[ProfileField] | None = None
    privacy: str | None = None
    sensitive: bool | None = None
    # "" clears the default language; a well-formed tag of a language Easel does not know
    # keeps the current one (validate() makes it None).
    language: str | None = None
    avatar: bytes | None = None
    header: bytes | None = None


def validate(changes: ProfileChanges) -> ProfileChanges:
    """The changes normalised (stripped, lower-cased), or ValidationFailed naming every
    bad value. Changes nothing anywhere."""
    errors: list[str] = []
    if changes.display_name is not None:
        changes.display_name = changes.display_name.strip()
        if len(changes.display_name) > MAX_DISPLAY_NAME:
            errors.append(f"Display name is too long (maximum is {MAX_DISPLAY_NAME} characters)")
    if changes.note is not None:
        changes.note = changes.note.strip()
        if countable_length(changes.note, CHARACTERS_RESERVED_PER_URL) > MAX_NOTE:
            errors.append(f"Note is too long (maximum is {MAX_NOTE} characters)")
    if changes.fields is not None:
        if len(changes.fields) > MAX_PROFILE_FIELDS:
            # Mastodon's own words (a Rails length validation on the list).
            errors.append(f"Fields is too long (maximum is {MAX_PROFILE_FIELDS} characters)")
        for field in changes.fields:
            field.name, field.value = field.name.strip(), field.value.strip()
        if any(len(f.name) > MAX_FIELD_NAME for f in changes.fields):
            errors.append(f"Field name is too long (maximum is {MAX_FIELD_NAME} characters)")
        if any(len(f.value) > MAX_FIELD_VALUE for f in changes.fields):
            errors.append(f"Field value is too long (maximum is {MAX_FIELD_VALUE} characters)")
    if changes.privacy is not None:
        changes.privacy = changes.privacy.strip().lower()
        if changes.privacy not in DEFAULT_PRIVACIES:
            errors.append("Default privacy is not included in the list")
    if changes.language is not None and changes.language.strip():
        if is_language_tag(changes.language):
            # Listed: as the list writes it (zh-tw → zh-TW, pt-BR → pt); unknown: unchanged.
            changes.language = known_language(changes.language)
        else:
            errors.append("Default language is not included in the list")
    elif changes.language is not None:
        changes.language = ""
    megabytes = PROFILE_IMAGE_SIZE_LIMIT // (1024 * 1024)
    for label, data in (("Avatar", changes.avatar), ("Header", changes.header)):
        if data is not None and len(data) > PROFILE_IMAGE_SIZE_LIMIT:
            errors.append(f"{label} file size must be less than {megabytes} MB")
        elif data is not None and not data:
            errors.append(f"{label} can't be blank")
    if errors:
        raise ValidationFailed(", ".join(errors))
    return changes


def _fields_with_verification(new: list[ProfileField],
                              old: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The stored form; a field keeps its ``verified_at`` while its value stays the same."""
    verified = {f.get("value"): f.get("verified_at") for f in (old or []) if f.get("verified_at")}
    return [{"name": f.name, "value": f.value, "verified_at": verified.get(f.value)} for f in new]


async def _store_images(storage: Storage, changes: ProfileChanges, account: Account,
                        ai_uploads: str) -> dict[str, str]:
    """Screen, process and store the new images, with the artist's opt-out XMP and EXIF;
    {"avatar_key": …, "header_key": …} for those given. Under the ``reject`` policy an
    image with generative-AI provenance is refused (422) before anything is stored (an
    avatar has no label to carry: ``label`` and ``allow`` take it). If the second one
    fails, the first is deleted again."""
    if changes.avatar is None and changes.header is None:
        return {}
    # Imported here: they bring Pillow and the upload checks, needed only when an image comes.
    from protect.optout_metadata import optout_at
    from server.services.media import process_profile_image, screen_provenance

    for data in (changes.avatar, changes.header):
        if data is not None:
            await screen_provenance(data, ai_uploads)
    optout = optout_at(account, storage.base_url, display_name=changes.display_name)
    stored: dict[str, str] = {}
    try:
        for purpose, data in (("avatar", changes.avatar), ("header", changes.header)):
            if data is not None:
                stored[f"{purpose}_key"] = await process_profile_image(storage, data, purpose, optout)
    except BaseException:
        await _delete_files(storage, stored.values())
        raise
    return stored


async def _delete_files(storage: Storage, keys: Any) -> None:
    for key in keys:
        if key:
            try:
                await storage.delete(key)
            except Exception:  # a leftover file is harmless; a failed request is not
                log.warning("could not delete profile image %s", key, exc_info=True)


def _changes_actor(changes: ProfileChanges, new_keys: dict[str, str]) -> bool:
    """Whether the change shows in the actor document (posting defaults do not)."""
    return bool(new_keys) or any(value is not None for value in (
        changes.display_name, changes.note, changes.locked, changes.bot, changes.discoverable,
        changes.indexable, changes.fields))


async def update_profile(session: AsyncSession, storage: Storage, account_id: int,
                         user_id: int, changes: ProfileChanges, *,
                         ai_uploads: str = "reject") -> tuple[Account, User]:
    """Apply ``changes`` to the account and its login, all or nothing; committed.

    Unlocking the account accepts every pending follow request (as Mastodon does).
    Returns the updated rows, with the new image keys already set.
    """
    changes = validate(changes)
    account = await session.get(Account, account_id)
    user = await session.get(User, user_id)
    if account is None or user is None or user.account_id != account.id:
        raise NotFound("Record not found")
    new_keys = await _store_images(storage, changes, account, ai_uploads)
    old_keys = [getattr(account, name) for name in new_keys]
    try:
        was_locked = account.locked
        if changes.display_name is not None:
            account.display_name = changes.display_name
        if changes.note is not None:
            account.note = changes.note
        if changes.locked is not None:
            account.locked = changes.locked
        if changes.bot is not None:
            account.bot = changes.bot
            # Federation tells bots apart by actor type, as Mastodon's ``bot=`` does.
            account.actor_type = "Service" if changes.bot else "Person"
        if changes.discoverable is not None:
            account.discoverable = changes.discoverable
        if changes.indexable is not None:
            account.indexable = changes.indexable
        if changes.fields is not None:
            account.fields = _fields_with_verification(changes.fields, account.fields)
        for name, key in new_keys.items():
            setattr(account, name, key)
        if changes.privacy is not None:
            user.default_privacy = changes.privacy
        if changes.sensitive is not None:
            user.default_sensitive = changes.sensitive
        if changes.language is not None:
            user.default_language = changes.language or None
        if was_locked and not account.locked:
            await authorize_all_follow_requests(session, account.id)
        if _changes_actor(changes, new_keys):
            await record_activity(session, account, "Update", object_uri=account.uri,
                                  object_type="Person")
        await session.commit()
    except BaseException:
        await session.rollback()
        await _delete_files(storage, new_keys.values())
        raise
    await _delete_files(storage, [key for key in old_keys if key not in new_keys.values()])
    if was_locked and not account.locked:
        await session.refresh(account)  # the accepted requests moved its counters
    return account, user


PROFILE_IMAGES = ("avatar", "header")


async def remove_profile_image(session: AsyncSession, storage: Storage, account_id: int,
                               user_id: int, purpose: str) -> tuple[Account, User]:
    """The account's avatar or header (``purpose``) back to the default image; committed
    (Mastodon's ``DELETE /api/v1/profile/avatar`` and ``…/header``).

    As a replaced image in :func:`update_profile`: the stored file is deleted after the
    commit, and the change is recorded as an ``Update`` of the actor for its followers'
    servers (the actor's ``icon`` is then the default avatar; without a header it has no
    ``image``). An account without one changes nothing and records nothing. Returns the
    rows.
    """
    if purpose not in PROFILE_IMAGES:
        raise ValueError(f"not a profile image: {purpose}")
    account = await session.get(Account, account_id)
    user = await session.get(User, user_id)
    if account is None or user is None or user.account_id != account.id:
        raise NotFound("Record not found")
    column = getattr(Account, f"{purpose}_key")
    old_key: str | None = getattr(account, f"{purpose}_key")
    if old_key is None:
        return account, user
    try:
        # Only the image read here: one a concurrent update just stored is left in place.
        cleared = (await session.execute(
            update(Account).where(Account.id == account.id, column == old_key)
            .values({column: None}).returning(Account.id))).first()
        if cleared is not None:
            await record_activity(session, account, "Update", object_uri=account.uri,
                                  object_type="Person")
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    await session.refresh(account)
    if cleared is not None:
        await _delete_files(storage, [old_key])
    return account, user
