"""A fake fediverse for the notes, objects, search and inbox-handler tests.

Remote servers are one ``httpx.MockTransport`` handler behind Easel's safe client: URL →
document (or status), WebFinger by (host, resource), every request recorded. Actors are
built in the shapes the corpus authors use (Mastodon's carol, GoToSocial's erin,
Pixelfed's frank, a Misskey user, a minimal server's actor).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from federation.context import FederationContext, install_federation_context
from federation.inbox.base import Ignored, InboxContext, Rejected
from federation.parse import parse_activity
from server.db import Database
from server.models import Account, InboxItem
from server.settings import Settings

CORPUS = Path(__file__).parent / "corpus"
AS2 = "application/activity+json; charset=utf-8"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"

CAROL = "https://mastodon.example/users/carol"
DAVE = "https://mastodon.example/users/dave"
ERIN = "https://gts.example/users/erin"
FRANK = "https://pixelfed.example/users/frank"
KUMO = "https://misskey.example/users/9t7x6w5v4u"
TINY = "https://tiny.example/actor"

Route = Callable[[httpx.Request], httpx.Response] | httpx.Response


def corpus(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / name).read_text())
    return data


def corpus_note(name: str) -> dict[str, Any]:
    """The Note inside a corpus ``Create``, with the activity's @context."""
    activity = corpus(name)
    note: dict[str, Any] = copy.deepcopy(activity["object"])
    note.setdefault("@context", activity["@context"])
    return note


def actor_doc(uri: str, username: str, *, web_url: str | None = None,
              actor_type: str = "Person") -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": uri,
        "type": actor_type,
        "preferredUsername": username,
        "name": username.title(),
        "inbox": f"{uri}/inbox",
        "outbox": f"{uri}/outbox",
        "followers": f"{uri}/followers",
        "following": f"{uri}/following",
        "url": web_url or uri,
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": PEM},
    }


@dataclass
class Fediverse:
    """URL → answer; WebFinger (host, resource) → actor; requests recorded."""

    routes: dict[str, Route] = field(default_factory=dict)
    webfinger: dict[tuple[str, str], str] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    # Hosts that never answer (until the test ends): for deadlines.
    silent_hosts: set[str] = field(default_factory=set)

    def serve(self, url: str, doc: dict[str, Any], content_type: str = AS2) -> None:
        self.routes[url] = httpx.Response(200, content=json.dumps(doc).encode(),
                                          headers={"Content-Type": content_type})

    def status(self, url: str, code: int) -> None:
        self.routes[url] = httpx.Response(code, text="nope")

    def person(self, uri: str, username: str, *, web_url: str | None = None,
               handle_host: str | None = None) -> dict[str, Any]:
        """Serve an actor at ``uri`` (and its WebFinger); the document."""
        doc = actor_doc(uri, username, web_url=web_url)
        self.serve(uri, doc)
        host = handle_host or httpx.URL(uri).netloc.decode()
        self.webfinger[(host, f"acct:{username}@{host}".lower())] = uri
        return doc

    def corpus_authors(self) -> None:
        self.person(CAROL, "carol", web_url="https://mastodon.example/@carol")
        self.person(DAVE, "dave", web_url="https://mastodon.example/@dave")
        self.person(ERIN, "erin", web_url="https://gts.example/@erin")
        self.person(FRANK, "frank", web_url="https://pixelfed.example/frank")
        self.person(KUMO, "kumo", web_url="https://misskey.example/@kumo")
        self.person(TINY, "tiny")

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host in self.silent_hosts:
            await asyncio.Event().wait()  # cancelled by the caller's deadline
        if request.url.path == "/.well-known/webfinger":
            host = request.url.netloc.decode()
            resource = request.url.params.get("resource", "").lower()  # case-insensitive
            actor = self.webfinger.get((host, resource))
            if actor is None:
                return httpx.Response(404)
            return httpx.Response(200, json={
                "subject": resource,  # the canonical (lower-case) handle
                "links": [{"rel": "self", "type": "application/activity+json", "href": actor}],
            }, headers={"Content-Type": "application/jrd+json"})
        route = self.routes.get(str(request.url))
        if route is None:
            return httpx.Response(404)
        if callable(route):
            return route(request)
        return httpx.Response(route.status_code, content=route.content, headers=route.headers)

    def fetched(self, url: str) -> int:
        return sum(1 for r in self.requests if str(r.url) == url)

    def context(self, settings: Settings, db: Database) -> FederationContext:
        """A federation context for ``db`` over this fake network, installed."""
        async def resolver(host: str, port: int) -> list[str]:
            return ["203.0.113.7"]

        context = FederationContext.build(settings, db, transport=httpx.MockTransport(self.handler),
                                          resolver=resolver)
        install_federation_context(context)
        return context


async def remote_account(fed: FederationContext, uri: str) -> Account:
    """The stored remote actor (fetched through the fake network)."""
    account = await fed.fetcher.fetch_actor(uri)
    return account


def create_of(note: dict[str, Any], *, actor: str | None = None,
              activity_id: str | None = None) -> dict[str, Any]:
    actor = actor or str(note["attributedTo"])
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": activity_id or f"{note['id']}/activity",
        "type": "Create",
        "actor": actor,
        "to": note.get("to", []),
        "cc": note.get("cc", []),
        "object": note,
    }


def update_of(note: dict[str, Any], *, actor: str | None = None, n: int = 1) -> dict[str, Any]:
    activity = create_of(note, actor=actor, activity_id=f"{note['id']}#updates/{n}")
    activity["type"] = "Update"
    return activity


async def run_handler(fed: FederationContext, db: Database, body: dict[str, Any],
                      handle: Callable[[InboxContext], Any], *, forwarded: bool = False) -> str:
    """Process ``body`` with ``handle`` as the inbox job would (actor fetched, then the
    handler in one transaction); "ignored: …"/"rejected: …" for those outcomes."""
    activity = parse_activity(body)
    fetched = await fed.fetcher.fetch_actor(activity.actor)
    async with db.session() as session:
        actor = await session.scalar(select(Account).where(Account.id == fetched.id))
        assert actor is not None
        item = InboxItem(activity_uri=activity.id, activity_type=activity.type,
                         actor_uri=activity.actor, signer_uri=activity.actor,
                         forwarded=forwarded, body=body)
        inbox = InboxContext(fed=fed, session=session, item=item, actor=actor,
                             activity=activity, body=body)
        try:
            note: str = await handle(inbox)
        except Ignored as exc:
            await session.rollback()
            return f"ignored: {exc}"
        except Rejected as exc:
            await session.rollback()
            return f"rejected: {exc}"
        await session.commit()
        return note
