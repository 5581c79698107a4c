"""Mastodon's accounts API (``/api/v1/accounts…``, ``/api/v1/follow_requests…``,
``/api/v1/profile/avatar`` and ``…/header``, the ``/api/v1/directory``), 4.2 semantics.

Why it exists: clients read profiles, their statuses and follower lists, edit their own
profile and follow people through these routes. Each endpoint only authenticates, parses,
makes one service call (``server.services.accounts``, ``.follows``, ``.profiles``) and
serialises with ``server.api.entities``; it never changes a row itself.

Local accounts only for now: following an account on another server is refused with an
error until federation arrives (see ``server.services.follows``).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from federation.context import federation_context
from federation.search import remote_handle, resolve_handle
from server.api.auth import optional, require, viewer
from server.api.entities import (
    EntityContext,
    account_to_entity,
    credential_account_to_entity,
    relationships_to_entities,
    statuses_to_entities,
)
from server.api.pagination import Page, link_header
from server.api.params import Params, parse_id
from server.errors import ApiError
from server.limits import PROFILE_IMAGE_SIZE_LIMIT
from server.models import Account, Follow, FollowRequest, Status, User
from server.services import account_notes, portfolio
from server.services import accounts as account_service
from server.services import directory as directory_service
from server.services import follows as follow_service
from server.services.profiles import (
    ProfileChanges,
    ProfileField,
    remove_profile_image,
    update_profile,
)
from server.state import easel

# GET /api/v1/accounts?id[]= takes at most this many ids (Mastodon's accounts limit).
MAX_ACCOUNT_IDS = 40


def _json(data: Any, *, link: str | None = None) -> JSONResponse:
    response = JSONResponse(data)
    if link:
        response.headers["Link"] = link
    return response


async def _relationship(session: AsyncSession, me: Account, target: Account) -> JSONResponse:
    return _json((await relationships_to_entities(session, me, [target]))[0])


async def _credential_account(request: Request, session: AsyncSession, account: Account,
                              user: User) -> JSONResponse:
    count = await follow_service.count_follow_requests(session, account.id)
    ctx = EntityContext.of(easel(request))
    return _json(credential_account_to_entity(account, user, ctx, follow_requests_count=count))


# --------------------------------------------------------------------- own credentials

async def verify_credentials(request: Request) -> JSONResponse:
    auth = await require(request, "profile")
    user, _ = auth.require_user()
    async with easel(request).db.session() as session:
        account = await account_service.find_account(session, user.account_id)
        return await _credential_account(request, session, account, user)


def _profile_fields(params: Params) -> list[ProfileField] | None:
    """``fields_attributes`` as form (``[0][name]``) or JSON (array or object); None if absent."""
    if not params.has("fields_attributes") and not any(
            key.startswith("fields_attributes[") for key in params.values):
        return None
    fields = []
    for entry in params.get_indexed("fields_attributes"):
        name, value = entry.get("name"), entry.get("value")
        if not all(v is None or isinstance(v, str | int | float) for v in (name, value)):
            raise ApiError(422, "Validation failed: fields_attributes must be names and values")
        name_text = "" if name is None else str(name)
        if not name_text.strip():  # Mastodon drops a field without a name
            continue
        fields.append(ProfileField(name=name_text, value="" if value is None else str(value)))
    return fields


async def _read_image(params: Params, name: str) -> bytes | None:
    upload = params.get_file(name)
    if upload is None:
        return None
    # One byte more than allowed is enough for the service to say it is too big.
    return await upload.read(PROFILE_IMAGE_SIZE_LIMIT + 1)


async def update_credentials(request: Request) -> JSONResponse:
    auth = await require(request, "write:accounts")
    user, account = auth.require_user()
    params = await Params.from_request(request)
    changes = ProfileChanges(
        display_name=params.get_str("display_name"),
        note=params.get_str("note"),
        locked=params.get_bool("locked"),
        bot=params.get_bool("bot"),
        discoverable=params.get_bool("discoverable"),
        indexable=params.get_bool("indexable"),
        fields=_profile_fields(params),
        privacy=params.get_str("source[privacy]"),
        sensitive=params.get_bool("source[sensitive]"),
        language=params.get_str("source[language]"),
        avatar=await _read_image(params, "avatar"),
        header=await _read_image(params, "header"),
    )
    # Checked, but Easel has no column for it yet: collections are always shown.
    params.get_bool("hide_collections")
    state = easel(request)
    async with state.db.session() as session:
        account, user = await update_profile(session, state.storage, account.id, user.id, changes,
                                             ai_uploads=state.settings.ai_uploads)
        return await _credential_account(request, session, account, user)


async def _remove_profile_image(request: Request, purpose: str) -> JSONResponse:
    auth = await require(request, "write:accounts")
    user, account = auth.require_user()
    state = easel(request)
    async with state.db.session() as session:
        account, user = await remove_profile_image(session, state.storage, account.id, user.id,
                                                   purpose)
        return await _credential_account(request, session, account, user)


async def delete_avatar(request: Request) -> JSONResponse:
    """``DELETE /api/v1/profile/avatar``: back to the default avatar; the CredentialAccount."""
    return await _remove_profile_image(request, "avatar")


async def delete_header(request: Request) -> JSONResponse:
    """``DELETE /api/v1/profile/header``: back to the default header; the CredentialAccount."""
    return await _remove_profile_image(request, "header")


# ----------------------------------------------------------------------- reading accounts

async def get_account(request: Request) -> JSONResponse:
    await optional(request, "read:accounts")
    account_id = parse_id(request.path_params["id"])
    state = easel(request)
    async with state.db.session() as session:
        account = await account_service.find_account(session, account_id)
        moved = (await session.get(Account, account.moved_to_account_id)
                 if account.moved_to_account_id is not None else None)
    ctx = EntityContext.of(state)
    entity = account_to_entity(account, ctx)
    if moved is not None:  # the profile says where the account went (Mastodon's `moved`)
        entity["moved"] = account_to_entity(moved, ctx)
    return _json(entity)


async def get_accounts(request: Request) -> JSONResponse:
    await optional(request, "read:accounts")
    params = await Params.from_request(request)
    ids = params.get_ids("id")
    if len(ids) > MAX_ACCOUNT_IDS:
        raise ApiError(422, f"Validation failed: at most {MAX_ACCOUNT_IDS} ids may be asked for")
    state = easel(request)
    async with state.db.session() as session:
        accounts = await account_service.find_accounts(session, ids)
    ctx = EntityContext.of(state)
    return _json([account_to_entity(a, ctx) for a in accounts])


async def lookup_account(request: Request) -> JSONResponse:
    await optional(request, "read:accounts")
    params = await Params.from_request(request)
    acct = params.get_str("acct") or ""
    state = easel(request)
    async with state.db.session() as session:
        account = await account_service.lookup_account(session, acct,
                                                       local_domain=state.settings.domain)
    return _json(account_to_entity(account, EntityContext.of(state)))


async def search_accounts(request: Request) -> JSONResponse:
    auth = await require(request, "read:accounts")
    _, me = auth.require_user()
    params = await Params.from_request(request)
    q = params.get_str("q") or ""
    limit = params.get_int("limit", 40, minimum=1, maximum=80) or 40
    offset = params.get_int("offset", 0, minimum=0, maximum=10_000) or 0
    following = bool(params.get_bool("following", False))
    resolve = bool(params.get_bool("resolve", False))
    state = easel(request)
    async with state.db.session() as session:
        resolved = None
        handle = remote_handle(q.strip(), state.settings.domain) if resolve and offset == 0 else None
        if handle is not None:
            fed = federation_context(state.settings, state.db)
            resolved = await resolve_handle(fed, session, handle)
        accounts = await account_service.search_accounts(
            session, q, viewer=me, limit=limit, offset=offset, following=following,
            local_domain=state.settings.domain)
        if resolved is not None and not following:
            accounts = [resolved, *(a for a in accounts if a.id != resolved.id)][:limit]
    ctx = EntityContext.of(state)
    return _json([account_to_entity(a, ctx) for a in accounts])


async def account_statuses(request: Request) -> JSONResponse:
    me = await viewer(request, "read:statuses")
    account_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    page = Page.from_params(params)
    only_media = bool(params.get_bool("only_media", False))
    exclude_replies = bool(params.get_bool("exclude_replies", False))
    exclude_reblogs = bool(params.get_bool("exclude_reblogs", False))
    pinned = bool(params.get_bool("pinned", False))
    tagged = params.get_str("tagged")
    state = easel(request)
    async with state.db.session() as session:
        account = await account_service.find_account(session, account_id)
        if pinned:
            # Mastodon answers the pinned list whole, latest pin first, without paging.
            if page.max_id is not None or page.min_id is not None or page.since_id is not None:
                return _json([])
            statuses = await portfolio.pinned_statuses(session, me, account.id)
            return _json(await statuses_to_entities(session, statuses, EntityContext.of(state), me,
                                                    filter_context="account"))
        query = account_service.account_statuses_query(
            account, me, only_media=only_media, exclude_replies=exclude_replies,
            exclude_reblogs=exclude_reblogs, tagged=tagged or None)
        statuses = page.arrange(list(await session.scalars(page.apply(query, Status.id))))
        entities = await statuses_to_entities(session, statuses, EntityContext.of(state), me,
                                              filter_context="account")
    return _json(entities, link=link_header(request, [s.id for s in statuses], page))


async def _account_list(request: Request, query: Select[int, Account],
                        cursor: InstrumentedAttribute[int]) -> JSONResponse:
    """A page of accounts from ``query``'s (relation id, Account) rows, paged by the relation."""
    params = await Params.from_request(request)
    page = Page.from_params(params, default=40, maximum=80)
    state = easel(request)
    async with state.db.session() as session:
        paged = page.apply(cast("Select[Any]", query), cursor)
        rows = page.arrange(list((await session.execute(paged)).all()))
    ctx = EntityContext.of(state)
    return _json([account_to_entity(account, ctx) for _, account in rows],
                 link=link_header(request, [relation_id for relation_id, _ in rows], page))


async def _listed_account(request: Request) -> Account:
    account_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        return await account_service.find_account(session, account_id)


async def account_followers(request: Request) -> JSONResponse:
    await optional(request, "read:accounts")
    account = await _listed_account(request)
    query = account_service.profile_relations(account, follow_service.followers_query(account.id))
    return await _account_list(request, query, Follow.id)


async def account_following(request: Request) -> JSONResponse:
    await optional(request, "read:accounts")
    account = await _listed_account(request)
    query = account_service.profile_relations(account, follow_service.following_query(account.id))
    return await _account_list(request, query, Follow.id)


async def relationships(request: Request) -> JSONResponse:
    auth = await require(request, "read:follows")
    _, me = auth.require_user()
    params = await Params.from_request(request)
    ids = params.get_ids("id")
    async with easel(request).db.session() as session:
        targets = await account_service.find_accounts(session, ids)
        return _json(await relationships_to_entities(session, me, targets))


async def account_note(request: Request) -> JSONResponse:
    """``POST /api/v1/accounts/:id/note``: set (``comment``) or, blank, delete the viewer's
    private note on the account; answers the Relationship, whose ``note`` shows it."""
    auth = await require(request, "write:accounts")
    _, me = auth.require_user()
    target_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    comment = params.get_str("comment")
    async with easel(request).db.session() as session:
        target = await account_notes.set_note(session, me, target_id, comment)
        return await _relationship(session, me, target)


async def familiar_followers(request: Request) -> JSONResponse:
    """For each ``id[]``: the accounts the viewer follows that follow it,
    ``[{"id", "accounts": [Account]}]`` (unknown and suspended ids left out, as Mastodon)."""
    auth = await require(request, "read:follows")
    _, me = auth.require_user()
    params = await Params.from_request(request)
    ids = params.get_ids("id")
    if len(ids) > MAX_ACCOUNT_IDS:
        raise ApiError(422, f"Validation failed: at most {MAX_ACCOUNT_IDS} ids may be asked for")
    state = easel(request)
    async with state.db.session() as session:
        found = await follow_service.familiar_followers(session, me, ids)
    ctx = EntityContext.of(state)
    return _json([{"id": str(account_id), "accounts": [account_to_entity(a, ctx) for a in accounts]}
                  for account_id, accounts in found])


async def directory(request: Request) -> JSONResponse:
    """``GET /api/v1/directory``: the profile directory (``server.services.directory``);
    public, and with a token the accounts hidden from its viewer are left out."""
    me = await viewer(request, "read:accounts")
    params = await Params.from_request(request)
    offset = params.get_int("offset", 0)
    if offset is None or offset < 0:
        raise ApiError(422, "Validation failed: offset must be 0 or more")
    limit = params.get_int("limit", 40, minimum=1, maximum=80) or 40
    order = params.get_str("order") or "active"
    if order not in directory_service.ORDERS:
        raise ApiError(422, "Validation failed: order must be active or new")
    local = bool(params.get_bool("local", False))
    state = easel(request)
    async with state.db.session() as session:
        accounts = await directory_service.directory_accounts(
            session, viewer=me, order=order, local=local, offset=offset, limit=limit)
    ctx = EntityContext.of(state)
    return _json([account_to_entity(a, ctx) for a in accounts])


# ------------------------------------------------------------------------------ following

async def follow_account(request: Request) -> JSONResponse:
    auth = await require(request, "write:follows")
    _, me = auth.require_user()
    target_id = parse_id(request.path_params["id"])
    params = await Params.from_request(request)
    reblogs = params.get_bool("reblogs")
    notify = params.get_bool("notify")
    async with easel(request).db.session() as session:
        target = await follow_service.follow(session, me, target_id, reblogs=reblogs, notify=notify)
        return await _relationship(session, me, target)


async def unfollow_account(request: Request) -> JSONResponse:
    auth = await require(request, "write:follows")
    _, me = auth.require_user()
    target_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        target = await follow_service.unfollow(session, me, target_id)
        return await _relationship(session, me, target)


async def remove_from_followers(request: Request) -> JSONResponse:
    auth = await require(request, "write:follows")
    _, me = auth.require_user()
    follower_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        follower = await follow_service.remove_from_followers(session, me, follower_id)
        return await _relationship(session, me, follower)


async def follow_requests(request: Request) -> JSONResponse:
    auth = await require(request, "read:follows")
    _, me = auth.require_user()
    return await _account_list(request, follow_service.follow_requests_query(me.id),
                               FollowRequest.id)


async def authorize_follow_request(request: Request) -> JSONResponse:
    auth = await require(request, "write:follows")
    _, me = auth.require_user()
    requester_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        requester = await follow_service.authorize_follow_request(session, me, requester_id)
        return await _relationship(session, me, requester)


async def reject_follow_request(request: Request) -> JSONResponse:
    auth = await require(request, "write:follows")
    _, me = auth.require_user()
    requester_id = parse_id(request.path_params["id"])
    async with easel(request).db.session() as session:
        requester = await follow_service.reject_follow_request(session, me, requester_id)
        return await _relationship(session, me, requester)


# The fixed paths come before /accounts/{id}, which would otherwise take them.
routes: list[BaseRoute] = [
    Route("/api/v1/accounts/verify_credentials", verify_credentials, methods=["GET"]),
    Route("/api/v1/accounts/update_credentials", update_credentials, methods=["PATCH"]),
    Route("/api/v1/profile/avatar", delete_avatar, methods=["DELETE"]),
    Route("/api/v1/profile/header", delete_header, methods=["DELETE"]),
    Route("/api/v1/accounts/relationships", relationships, methods=["GET"]),
    Route("/api/v1/accounts/familiar_followers", familiar_followers, methods=["GET"]),
    Route("/api/v1/accounts/lookup", lookup_account, methods=["GET"]),
    Route("/api/v1/accounts/search", search_accounts, methods=["GET"]),
    Route("/api/v1/accounts", get_accounts, methods=["GET"]),
    Route("/api/v1/accounts/{id}", get_account, methods=["GET"]),
    Route("/api/v1/accounts/{id}/statuses", account_statuses, methods=["GET"]),
    Route("/api/v1/accounts/{id}/followers", account_followers, methods=["GET"]),
    Route("/api/v1/accounts/{id}/following", account_following, methods=["GET"]),
    Route("/api/v1/accounts/{id}/follow", follow_account, methods=["POST"]),
    Route("/api/v1/accounts/{id}/unfollow", unfollow_account, methods=["POST"]),
    Route("/api/v1/accounts/{id}/remove_from_followers", remove_from_followers, methods=["POST"]),
    Route("/api/v1/accounts/{id}/note", account_note, methods=["POST"]),
    Route("/api/v1/directory", directory, methods=["GET"]),
    Route("/api/v1/follow_requests", follow_requests, methods=["GET"]),
    Route("/api/v1/follow_requests/{id}/authorize", authorize_follow_request, methods=["POST"]),
    Route("/api/v1/follow_requests/{id}/reject", reject_follow_request, methods=["POST"]),
]
