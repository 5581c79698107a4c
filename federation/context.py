"""The federation machinery one process shares: the safe HTTP client, the actor fetcher,
and the instance's URLs and storage.

Why it exists: inbox handlers, deliveries, search and the authorized-fetch check all need
"the client" and "the fetcher", and they run in web requests, in in-process job threads
and in ``easel worker`` processes, none of which hold the others. There is one context
per :class:`~server.db.Database` (a process has one; each test has its own), built on
first use inside the running event loop. Tests install their own, to route requests to
other in-process apps through an ASGI transport.

What it must never do: open a connection at import or construction time, or outlive its
event loop (``close`` it at shutdown).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import httpx

from federation.actors import ActorFetcher
from federation.http import Resolver, safe_client
from server.db import Database
from server.settings import Settings
from server.storage import Storage, media_storage
from server.urls import Urls

# Actor and object fetches: a fresh connection each time (hosts vary, answers are rare).
FETCH_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=0)
# Deliveries: many requests to the same hosts, so connections are kept and reused.
DELIVERY_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100)


@dataclass
class FederationContext:
    settings: Settings
    db: Database
    client: httpx.AsyncClient
    delivery_client: httpx.AsyncClient
    fetcher: ActorFetcher
    urls: Urls
    storage: Storage
    # Anything a block wants to keep per process (caches), by name.
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        fetcher: ActorFetcher | None = None,
    ) -> FederationContext:
        """A context over the safe client; ``transport`` replaces the network and
        ``resolver`` the DNS lookup (tests)."""
        client = safe_client(settings, limits=FETCH_LIMITS, transport=transport, resolver=resolver)
        delivery_client = safe_client(settings, limits=DELIVERY_LIMITS, transport=transport,
                                      resolver=resolver, keep_alive_by_origin=True)
        return cls(
            settings=settings,
            db=db,
            client=client,
            delivery_client=delivery_client,
            fetcher=fetcher or ActorFetcher(db, settings, client),
            urls=Urls(settings),
            storage=media_storage(settings),
        )

    async def close(self) -> None:
        await self.client.aclose()
        await self.delivery_client.aclose()


_contexts: weakref.WeakKeyDictionary[Database, FederationContext] = weakref.WeakKeyDictionary()


def federation_context(settings: Settings, db: Database) -> FederationContext:
    """This process's context for ``db``, built on first use."""
    context = _contexts.get(db)
    if context is None:
        context = FederationContext.build(settings, db)
        _contexts[db] = context
    return context


def install_federation_context(context: FederationContext) -> None:
    """Make ``context`` the one used for its database (tests, benchmarks)."""
    _contexts[context.db] = context


async def close_federation_context(db: Database) -> None:
    context = _contexts.pop(db, None)
    if context is not None:
        await context.close()
