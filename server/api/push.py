"""Web Push: ``/api/v1/push/subscription`` (POST, GET, PUT, DELETE), one subscription per
access token (Mastodon's ``Api::V1::Push::SubscriptionsController``); scope ``push``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from server.api.auth import Auth, bearer_token, require
from server.api.params import Params
from server.errors import ApiError
from server.models import PUSH_ALERTS, PushSubscription
from server.services import web_push
from server.settings import Settings
from server.state import easel

NOT_FOUND = "Record not found"


def subscription_to_entity(subscription: PushSubscription, settings: Settings) -> dict[str, object]:
    """Mastodon's ``WebPushSubscription``."""
    names = subscription.alert_names()
    return {
        "id": str(subscription.id),
        "endpoint": subscription.endpoint,
        "standard": subscription.standard,
        "alerts": {name: name in names for name in PUSH_ALERTS},
        "policy": subscription.policy,
        "server_key": web_push.vapid_public_key(settings),
    }


def _alerts(params: Params) -> dict[str, bool]:
    """The ``data[alerts][<name>]`` given (unknown names are ignored, as Mastodon does)."""
    found: dict[str, bool] = {}
    for name in PUSH_ALERTS:
        value = params.get_bool(f"data[alerts][{name}]")
        if value is not None:
            found[name] = value
    return found


async def _auth(request: Request) -> Auth:
    auth = await require(request, "push")
    auth.require_user()
    return auth


async def create(request: Request) -> JSONResponse:
    auth = await _auth(request)
    _, account = auth.require_user()
    params = await Params.from_request(request)
    endpoint = params.get_str("subscription[endpoint]")
    p256dh = params.get_str("subscription[keys][p256dh]")
    secret = params.get_str("subscription[keys][auth]")
    if not endpoint or not p256dh or not secret:
        raise ApiError(422, "Validation failed: subscription[endpoint], subscription[keys][p256dh] "
                            "and subscription[keys][auth] are required")
    alerts = _alerts(params)
    state = easel(request)
    async with state.db.session() as session:
        subscription = await web_push.subscribe(
            session, state.settings, auth.token, account, bearer_token(request) or "",
            endpoint=endpoint, p256dh=p256dh, auth=secret,
            standard=bool(params.get_bool("subscription[standard]", False)),
            alerts={name for name, on in alerts.items() if on},
            policy=params.get_str("data[policy]", "all") or "all")
        return JSONResponse(subscription_to_entity(subscription, state.settings))


async def show(request: Request) -> JSONResponse:
    auth = await _auth(request)
    state = easel(request)
    async with state.db.read_session() as session:
        subscription = await web_push.subscription_of(session, auth.token.id)
        if subscription is None:
            raise ApiError(404, NOT_FOUND)
        return JSONResponse(subscription_to_entity(subscription, state.settings))


async def update(request: Request) -> JSONResponse:
    auth = await _auth(request)
    params = await Params.from_request(request)
    state = easel(request)
    async with state.db.session() as session:
        subscription = await web_push.subscription_of(session, auth.token.id)
        if subscription is None:
            raise ApiError(404, NOT_FOUND)
        await web_push.change(session, subscription, alerts=_alerts(params),
                              policy=params.get_str("data[policy]"))
        return JSONResponse(subscription_to_entity(subscription, state.settings))


async def destroy(request: Request) -> JSONResponse:
    auth = await _auth(request)
    async with easel(request).db.session() as session:
        await web_push.forget_token(session, auth.token.id)
        await session.commit()
    return JSONResponse({})


routes: list[BaseRoute] = [
    Route("/api/v1/push/subscription", create, methods=["POST"]),
    Route("/api/v1/push/subscription", show, methods=["GET"]),
    Route("/api/v1/push/subscription", update, methods=["PUT"]),
    Route("/api/v1/push/subscription", destroy, methods=["DELETE"]),
]
