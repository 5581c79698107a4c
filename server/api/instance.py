"""What an app reads about the instance before and after login: /api/v1/instance and
/api/v2/instance, rules, peers, the extended description, privacy policy (none), languages,
translation languages (none), weekly activity, custom emoji and the user's preferences.

The numbers advertised here come from ``server/limits.py``, the same constants the API
enforces, so an app never offers what the server then refuses. Easel claims the Mastodon
API version it fully implements (4.3), with its own version in parentheses, and
Mastodon's ``api_versions`` (API revision 2 is 4.3's).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

import server
from server import limits
from server.api.auth import require
from server.api.entities import EntityContext, account_to_entity, rule_to_entity
from server.errors import ApiError
from server.ids import utcnow
from server.models import Account, Status, User
from server.services.instance_activity import weekly_activity
from server.services.languages import instance_languages
from server.services.rules import list_rules
from server.services.text import plain_to_html
from server.services.web_push import vapid_public_key
from server.state import EaselState, easel

MASTODON_API_VERSION = "4.3.0"
# The API revisions Easel speaks (Mastodon 4.3 introduced the key, at revision 2).
API_VERSIONS = {"mastodon": 2}
LANGUAGES = ["en"]
DESCRIPTION = ("A home for artists' portfolios on the fediverse. "
               "Works shown here are not for AI training.")
# Easel's source is AGPL; this is where an instance says it lives. Empty until Easel has a
# public repository address to name.
SOURCE_URL = ""


def version_string() -> str:
    return f"{MASTODON_API_VERSION} (compatible; Easel {server.__version__})"


def _streaming_url(state: EaselState) -> str:
    scheme = "wss" if state.settings.scheme == "https" else "ws"
    return f"{scheme}://{state.settings.domain}"


def _active_users() -> Any:
    return select(func.count(User.id)).where(User.approved.is_(True), User.disabled.is_(False))


async def _contact_account(session: AsyncSession, state: EaselState) -> dict[str, Any] | None:
    account = await session.scalar(
        select(Account).join(User, User.account_id == Account.id)
        .where(User.admin.is_(True), User.disabled.is_(False))
        .order_by(User.created_at, User.id).limit(1))
    return account_to_entity(account, EntityContext.of(state)) if account is not None else None


def _statuses_configuration() -> dict[str, Any]:
    return {
        "max_characters": limits.MAX_STATUS_CHARACTERS,
        "max_media_attachments": limits.MAX_MEDIA_ATTACHMENTS,
        "characters_reserved_per_url": limits.CHARACTERS_RESERVED_PER_URL,
    }


def _media_configuration() -> dict[str, Any]:
    # Easel takes images only: no video or audio limits to advertise.
    return {
        "supported_mime_types": list(limits.SUPPORTED_IMAGE_TYPES),
        "image_size_limit": limits.IMAGE_SIZE_LIMIT,
        "image_matrix_limit": limits.IMAGE_MATRIX_LIMIT,
        "video_size_limit": 0,
        "video_frame_rate_limit": 0,
        "video_matrix_limit": 0,
    }


def _polls_configuration() -> dict[str, Any]:
    return {"max_options": limits.MAX_POLL_OPTIONS,
            "max_characters_per_option": limits.MAX_POLL_OPTION_CHARACTERS,
            "min_expiration": limits.MIN_POLL_EXPIRATION,
            "max_expiration": limits.MAX_POLL_EXPIRATION}


def _accounts_configuration() -> dict[str, Any]:
    return {"max_featured_tags": limits.MAX_FEATURED_TAGS,
            "max_pinned_statuses": limits.MAX_PINNED_STATUSES}


async def instance_v1(request: Request) -> JSONResponse:
    state = easel(request)
    settings = state.settings
    async with state.db.session() as session:
        user_count = await session.scalar(_active_users()) or 0
        status_count = await session.scalar(
            select(func.count(Status.id)).where(Status.local.is_(True), Status.published.is_(True))) or 0
        domain_count = await session.scalar(
            select(func.count(func.distinct(Account.domain))).where(Account.domain != "")) or 0
        contact = await _contact_account(session, state)
        rule_list = [rule_to_entity(rule) for rule in await list_rules(session)]
    return JSONResponse({
        "uri": settings.domain,
        "title": settings.title,
        "short_description": DESCRIPTION,
        "description": DESCRIPTION,
        "email": "",
        "version": version_string(),
        "api_versions": API_VERSIONS,
        "urls": {"streaming_api": _streaming_url(state)},
        "stats": {"user_count": user_count, "status_count": status_count, "domain_count": domain_count},
        "thumbnail": state.urls.default_header,
        "languages": LANGUAGES,
        "registrations": settings.registrations != "closed",
        "approval_required": settings.registrations == "approval",
        "invites_enabled": False,
        "configuration": {
            "accounts": _accounts_configuration(),
            "statuses": _statuses_configuration(),
            "media_attachments": _media_configuration(),
            "polls": _polls_configuration(),
        },
        "contact_account": contact,
        "rules": rule_list,
    })


async def instance_v2(request: Request) -> JSONResponse:
    state = easel(request)
    settings = state.settings
    async with state.db.session() as session:
        active_month = await session.scalar(
            _active_users().where(User.last_active_at >= utcnow() - timedelta(days=30))) or 0
        contact = await _contact_account(session, state)
        rule_list = [rule_to_entity(rule) for rule in await list_rules(session)]
    return JSONResponse({
        "domain": settings.domain,
        "title": settings.title,
        "version": version_string(),
        "api_versions": API_VERSIONS,
        "source_url": SOURCE_URL,
        "description": DESCRIPTION,
        "usage": {"users": {"active_month": active_month}},
        "thumbnail": {"url": state.urls.default_header},
        "languages": LANGUAGES,
        "configuration": {
            "urls": {"streaming": _streaming_url(state)},
            "vapid": {"public_key": vapid_public_key(settings)},
            "accounts": _accounts_configuration(),
            "statuses": _statuses_configuration(),
            "media_attachments": _media_configuration(),
            "polls": _polls_configuration(),
            "translation": {"enabled": False},
        },
        "registrations": {
            "enabled": settings.registrations != "closed",
            "approval_required": settings.registrations == "approval",
            "message": None,
        },
        "contact": {"email": "", "account": contact},
        "rules": rule_list,
    })


async def rules(request: Request) -> JSONResponse:
    """The instance's rules (``easel admin rules``), as shown at sign-up."""
    state = easel(request)
    async with state.db.session() as session:
        return JSONResponse([rule_to_entity(rule) for rule in await list_rules(session)])


async def peers(request: Request) -> JSONResponse:
    """The remote domains this instance knows an account of."""
    state = easel(request)
    async with state.db.session() as session:
        domains = (await session.scalars(
            select(Account.domain).where(Account.domain != "").distinct().order_by(Account.domain))).all()
    return JSONResponse(list(domains))


async def extended_description(request: Request) -> JSONResponse:
    """Mastodon's ExtendedDescription: the instance's description (the one the v1 and v2
    instance carry: Easel has no longer text for an operator to set), as HTML. It is
    fixed text, so there is no time it was last changed: ``updated_at`` is null, as
    Mastodon's is while its operator has written none."""
    return JSONResponse({"updated_at": None, "content": plain_to_html(DESCRIPTION)})


async def privacy_policy(request: Request) -> JSONResponse:
    """Easel has no privacy policy for an operator to write, and makes up no legal text
    (Mastodon falls back to a template of its own): 404, as for any record not there."""
    raise ApiError(404, "Record not found")


async def languages(request: Request) -> JSONResponse:
    """Every language a status may be written in (``server.services.languages``), as
    Mastodon's ``[{"code", "name"}]``."""
    return JSONResponse(instance_languages())


async def translation_languages(request: Request) -> JSONResponse:
    # Easel translates nothing: Mastodon's answer when no translation service is set.
    return JSONResponse({})


ACTIVITY_CACHE_SECONDS = 3600.0


async def activity(request: Request) -> JSONResponse:
    """The last 12 weeks' statuses, logins and registrations, newest first, as counted by
    ``server.services.instance_activity`` (what each number is, and is not, is said there).
    Public and read by crawlers, while counting reads every login use of twelve weeks: a
    web process counts at most once an hour (Mastodon caches it for a day)."""
    state = easel(request)
    now = time.monotonic()
    counted = state.weekly_activity
    if counted is None or now - counted[0] >= ACTIVITY_CACHE_SECONDS:
        async with state.db.session() as session:
            counted = state.weekly_activity = (now, await weekly_activity(session))
    return JSONResponse(counted[1])


async def custom_emojis(request: Request) -> JSONResponse:
    # Easel has no custom emoji.
    return JSONResponse([])


async def preferences(request: Request) -> JSONResponse:
    auth = await require(request, "read:accounts")
    user, _account = auth.require_user()
    return JSONResponse({
        "posting:default:visibility": user.default_privacy,
        "posting:default:sensitive": user.default_sensitive,
        "posting:default:language": user.default_language,
        "reading:expand:media": "default",
        "reading:expand:spoilers": False,
    })


routes: list[BaseRoute] = [
    Route("/api/v1/instance", instance_v1, methods=["GET", "HEAD"]),
    Route("/api/v2/instance", instance_v2, methods=["GET", "HEAD"]),
    Route("/api/v1/instance/rules", rules, methods=["GET", "HEAD"]),
    Route("/api/v1/instance/peers", peers, methods=["GET", "HEAD"]),
    Route("/api/v1/instance/extended_description", extended_description, methods=["GET", "HEAD"]),
    Route("/api/v1/instance/privacy_policy", privacy_policy, methods=["GET", "HEAD"]),
    Route("/api/v1/instance/languages", languages, methods=["GET", "HEAD"]),
    Route("/api/v1/instance/translation_languages", translation_languages,
          methods=["GET", "HEAD"]),
    Route("/api/v1/instance/activity", activity, methods=["GET", "HEAD"]),
    Route("/api/v1/custom_emojis", custom_emojis, methods=["GET", "HEAD"]),
    Route("/api/v1/preferences", preferences, methods=["GET"]),
]
