"""Outbound federation: what other servers receive when local people act.

Given alice on easel.test with followers on a few fake remote servers (answering through an
``httpx.MockTransport`` behind the safe client), when she posts, deletes, likes, boosts,
follows or edits her profile and the federation queue is run, I expect each remote inbox
to receive the right activity once, signed with alice's key (checked with
``verify_request``), shared inboxes preferred and deduplicated, nothing sent to local
accounts or to suspended domains, and a Delete addressed to the audience the status had.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select
from starlette.applications import Starlette

from federation.context import FederationContext, install_federation_context
from federation.signatures import verify_request
from server.app import AppOptions, create_app
from server.db import Database
from server.ids import utcnow
from server.models import (
    Account,
    Activity,
    Delivery,
    DomainBlock,
    Favourite,
    Follow,
    FollowRequest,
    Job,
    JobState,
    Status,
    Tombstone,
    User,
)
from server.services import edits, follows, statuses
from server.services.profiles import ProfileChanges, update_profile
from server.settings import Settings

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


@dataclass
class Received:
    url: str
    headers: httpx.Headers
    body: bytes

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class FakeFediverse:
    """Every remote inbox: records what it receives and answers ``answers[url]`` (202)."""

    received: list[Received] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url in self.broken:
            raise httpx.ConnectError("connection refused", request=request)
        self.received.append(Received(url, request.headers, request.read()))
        return httpx.Response(self.answers.get(url, 202))

    def to(self, url: str) -> list[dict[str, Any]]:
        return [item.document for item in self.received if item.url == url]

    @property
    def urls(self) -> list[str]:
        return sorted(item.url for item in self.received)


async def resolver(host: str, port: int) -> list[str]:
    return ["203.0.113.10"]


@pytest.fixture
def remote() -> FakeFediverse:
    return FakeFediverse()


@pytest.fixture
async def app(settings: Settings, remote: FakeFediverse) -> AsyncIterator[Starlette]:
    """The app with its federation going to the fake fediverse; jobs run only when a test
    runs them (``run_federation``)."""
    application = create_app(settings, options=AppOptions(run_workers=False,
                                                          run_reconciler=False))
    async with application.router.lifespan_context(application):
        state = application.state.easel
        install_federation_context(FederationContext.build(
            state.settings, state.db, transport=httpx.MockTransport(remote.handler),
            resolver=resolver))
        yield application


async def run_federation(app: Starlette) -> int:
    ran: int = await app.state.easel.runner.run_due(["federation"])
    return ran


async def remote_account(db: Database, name: str, domain: str, *,
                         shared: bool = False) -> Account:
    base = f"https://{domain}/users/{name}"
    async with db.session() as session:
        account = Account(username=name, username_key=name, domain=domain, uri=base,
                          url=f"https://{domain}/@{name}", inbox_url=base + "/inbox",
                          shared_inbox_url=f"https://{domain}/inbox" if shared else "",
                          followers_url=base + "/followers")
        session.add(account)
        await session.commit()
        return account


async def follow_directly(db: Database, follower: Account, target_id: int) -> None:
    async with db.session() as session:
        session.add(Follow(account_id=follower.id, target_account_id=target_id,
                           uri=f"{follower.uri}#follow"))
        await session.commit()


async def local(db: Database, user: User) -> Account:
    async with db.session() as session:
        account = await session.get(Account, user.account_id)
        assert account is not None
        return account


async def post(db: Database, settings: Settings, user: User, text: str,
               visibility: str = "public") -> Status:
    async with db.session() as session:
        author = await session.get(Account, user.account_id)
        assert author is not None
        return await statuses.create_status(session, settings, author, None, text=text,
                                            visibility=visibility)


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
async def audience(db: Database, alice: User) -> dict[str, Account]:
    """alice's remote followers: two on a server with a shared inbox, one without."""
    accounts = {
        "rita": await remote_account(db, "rita", "shared.example", shared=True),
        "sam": await remote_account(db, "sam", "shared.example", shared=True),
        "tom": await remote_account(db, "tom", "solo.example"),
    }
    for account in accounts.values():
        await follow_directly(db, account, alice.account_id)
    return accounts


# ------------------------------------------------------------------------- posting

async def test_a_public_post_reaches_each_remote_server_once_signed_by_its_author(
    app: Starlette, db: Database, settings: Settings, alice: User, bob: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    await follow_directly(db, await local(db, bob), alice.account_id)  # local: not delivered
    status = await post(db, settings, alice, "Hello #fediverse")
    await run_federation(app)

    assert remote.urls == ["https://shared.example/inbox", "https://solo.example/users/tom/inbox"]
    author = await local(db, alice)
    for item in remote.received:
        create = item.document
        assert create["type"] == "Create" and create["id"] == status.uri + "/activity"
        assert create["actor"] == author.uri and create["to"] == [PUBLIC]
        assert create["object"]["id"] == status.uri
        assert create["object"]["tag"][0]["name"] == "#fediverse"
        assert item.headers["content-type"] == "application/activity+json"

        async def key(key_id: str) -> str | None:
            return author.public_key_pem if key_id == author.public_key_id else None

        verified = await verify_request(
            method="POST", target=httpx.URL(item.url).raw_path.decode(), headers=item.headers,
            body=item.body, key_lookup=key)
        assert verified.key_id == author.public_key_id
        assert 'headers="(request-target) host date digest"' in item.headers["signature"]
    async with db.session() as session:
        activity = await session.scalar(select(Activity).where(Activity.type == "Create"))
        assert activity is not None and activity.document is not None
        assert activity.document["id"] == status.uri + "/activity"
        done = await session.scalar(select(func.count()).select_from(Job).where(
            Job.kind == "deliver", Job.state == JobState.DONE))
        delivered = await session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.delivered_at.is_not(None), Delivery.status_code == 202))
    assert done == 2 and delivered == 2
    assert await run_federation(app) == 0  # nothing left, nothing sent again
    assert len(remote.received) == 2


async def test_a_local_only_audience_sends_nothing(
    app: Starlette, db: Database, settings: Settings, alice: User, bob: User,
    remote: FakeFediverse
) -> None:
    await follow_directly(db, await local(db, bob), alice.account_id)
    await post(db, settings, alice, "Just for us")
    await run_federation(app)
    assert remote.received == []
    assert await count(db, Delivery) == 0


async def test_suspended_domains_are_skipped(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    async with db.session() as session:
        session.add(DomainBlock(domain="example", severity="suspend"))  # covers both
        session.add(DomainBlock(domain="other.test", severity="silence"))
        await session.commit()
    await post(db, settings, alice, "Hello")
    await run_federation(app)
    assert remote.received == [] and await count(db, Delivery) == 0

    async with db.session() as session:
        await session.execute(delete(DomainBlock))
        session.add(DomainBlock(domain="solo.example", severity="suspend"))
        await session.commit()
    await post(db, settings, alice, "Hello again")
    await run_federation(app)
    assert remote.urls == ["https://shared.example/inbox"]


async def test_the_most_specific_block_decides_who_is_delivered_to(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    # example is suspended, but shared.example is exempted by its own (noop) block — as
    # the inbox accepts from it, delivery goes to it; solo.example stays suspended.
    async with db.session() as session:
        session.add(DomainBlock(domain="example", severity="suspend"))
        session.add(DomainBlock(domain="shared.example", severity="noop"))
        await session.commit()
    await post(db, settings, alice, "Hello")
    await run_federation(app)
    assert remote.urls == ["https://shared.example/inbox"]


async def test_direct_posts_go_to_the_mentioned_only_and_replies_reach_the_parent_author(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    zoe = await remote_account(db, "zoe", "far.example")
    await post(db, settings, alice, "psst @zoe@far.example", visibility="direct")
    await run_federation(app)
    assert remote.urls == ["https://far.example/users/zoe/inbox"]
    note = remote.received[0].document["object"]
    assert note["to"] == [zoe.uri] and note["cc"] == []

    remote.received.clear()
    async with db.session() as session:
        parent = Status(account_id=zoe.id, uri="https://far.example/notes/1", local=False,
                        content="hi", visibility="public", published=True)
        session.add(parent)
        await session.commit()
        author = await session.get(Account, alice.account_id)
        assert author is not None
        await statuses.create_status(session, settings, author, None, text="welcome",
                                     in_reply_to_id=parent.id)
    await run_federation(app)
    assert remote.urls == ["https://far.example/users/zoe/inbox", "https://shared.example/inbox",
                           "https://solo.example/users/tom/inbox"]
    assert remote.to(zoe.inbox_url)[0]["object"]["inReplyTo"] == "https://far.example/notes/1"


async def test_suspended_remote_accounts_are_sent_nothing(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    # zoe is mentioned, tom follows: both suspended (by us, or by their own server) get
    # nothing; the shared inbox of the other followers still does.
    zoe = await remote_account(db, "zoe", "far.example")
    async with db.session() as session:
        for account_id in (zoe.id, audience["tom"].id):
            account = await session.get(Account, account_id)
            assert account is not None
            account.suspended_at = utcnow()
        await session.commit()
    await post(db, settings, alice, "hello @zoe@far.example")
    await run_federation(app)
    assert remote.urls == ["https://shared.example/inbox"]


async def waiting_post(db: Database, settings: Settings, user: User) -> tuple[Status, int]:
    """A post of ``user``'s whose one image is still being processed, and that image's id."""
    from server.models import MediaAttachment, MediaState

    async with db.session() as session:
        media = MediaAttachment(account_id=user.account_id, type="image",
                                state=MediaState.PROCESSING.value)
        session.add(media)
        await session.commit()
        author = await session.get(Account, user.account_id)
        assert author is not None
        status = await statuses.create_status(session, settings, author, None, text="art",
                                              media_ids=[media.id])
        return status, media.id


async def media_ready(db: Database, status: Status, media_id: int) -> None:
    """The image is ready (``ab/cd.webp``): the post is published."""
    from server.models import MediaAttachment, MediaState

    async with db.session() as session:
        stored = await session.get(MediaAttachment, media_id)
        assert stored is not None
        stored.state = MediaState.READY.value
        stored.file_key = "ab/cd.webp"
        assert await statuses.publish_if_ready(session, status.id)
        await session.commit()


async def test_a_post_waiting_for_its_media_federates_when_published(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    status, media_id = await waiting_post(db, settings, alice)
    await run_federation(app)
    assert remote.received == []  # unpublished: not federated
    await media_ready(db, status, media_id)
    await run_federation(app)
    assert len(remote.received) == 2
    note = remote.received[0].document["object"]
    assert note["attachment"][0]["url"].endswith("ab/cd.webp")


# ------------------------------------------------------------------------ deleting

async def test_a_delete_goes_to_the_audience_the_status_had_and_leaves_a_tombstone(
    app: Starlette, client: httpx.AsyncClient, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    zoe = await remote_account(db, "zoe", "far.example")
    status = await post(db, settings, alice, "hi @zoe@far.example", visibility="private")
    await run_federation(app)
    remote.received.clear()

    async with db.session() as session:
        await statuses.delete_status(session, status)
        # zoe's server is now unknown to us as a mention: only the captured audience counts.
    await run_federation(app)
    assert remote.urls == ["https://far.example/users/zoe/inbox", "https://shared.example/inbox",
                           "https://solo.example/users/tom/inbox"]
    delete = remote.received[0].document
    assert delete["type"] == "Delete" and delete["id"] == status.uri + "#delete"
    assert delete["object"] == {"id": status.uri, "type": "Tombstone", "atomUri": status.uri}
    assert delete["to"] == [f"{settings.base_url}/users/alice/followers"]
    assert delete["cc"] == [zoe.uri]
    assert await count(db, Tombstone) == 1
    gone = await client.get(status.uri.removeprefix(settings.base_url),
                            headers={"Accept": "application/activity+json"})
    assert gone.status_code == 410 and gone.json()["type"] == "Tombstone"


@pytest.fixture
async def strangers(db: Database) -> dict[str, Account]:
    """Remote accounts that follow nobody here: dave and gus share an inbox, erin and fay
    have their own; gus is suspended."""
    accounts = {
        "dave": await remote_account(db, "dave", "boost.example", shared=True),
        "gus": await remote_account(db, "gus", "boost.example", shared=True),
        "erin": await remote_account(db, "erin", "fave.example"),
        "fay": await remote_account(db, "fay", "reply.example"),
    }
    async with db.session() as session:
        gus = await session.get(Account, accounts["gus"].id)
        assert gus is not None
        gus.suspended_at = utcnow()
        await session.commit()
    return accounts


async def interact(db: Database, status: Status, *, boosters: Sequence[Account] = (),
                   favouriters: Sequence[Account] = (), repliers: Sequence[Account] = ()) -> None:
    """Boosts, favourites and replies of ``status``, as inbound activities leave them."""
    async with db.session() as session:
        for account in boosters:
            session.add(Status(account_id=account.id, uri=f"{account.uri}/boosts/{status.id}",
                               reblog_of_id=status.id, local=False, visibility="public"))
        for account in favouriters:
            session.add(Favourite(account_id=account.id, status_id=status.id))
        for number, account in enumerate(repliers):
            session.add(Status(account_id=account.id, uri=f"{account.uri}/replies/{status.id}/{number}",
                               in_reply_to_id=status.id, in_reply_to_account_id=status.account_id,
                               in_reply_to_uri=status.uri, local=False, content="nice",
                               visibility="public"))
        await session.commit()


REACHED = ["https://boost.example/inbox", "https://fave.example/users/erin/inbox",
           "https://reply.example/users/fay/inbox", "https://shared.example/inbox",
           "https://solo.example/users/tom/inbox"]


async def test_an_edit_reaches_the_servers_that_boosted_favourited_or_replied(
    app: Starlette, db: Database, settings: Settings, alice: User, bob: User,
    audience: dict[str, Account], strangers: dict[str, Account], remote: FakeFediverse
) -> None:
    # Mastodon's StatusReachFinder: their servers hold a copy, though they follow nobody
    # here; once per inbox, never to a suspended or local account.
    status = await post(db, settings, alice, "a new painting")
    await run_federation(app)
    remote.received.clear()
    await interact(db, status, boosters=[strangers["dave"], strangers["gus"]],
                   favouriters=[strangers["erin"], strangers["gus"], audience["rita"],
                                await local(db, bob)],
                   repliers=[strangers["fay"], strangers["fay"]])
    async with db.session() as session:
        await edits.edit_status(session, settings, await local(db, alice), status.id,
                                text="a new painting, finished")
    await run_federation(app)
    assert remote.urls == REACHED
    assert {item.document["type"] for item in remote.received} == {"Update"}

    # Followers only: a favourite or reply may come from an account never addressed, so
    # only the followers hear of the edit (as Mastodon: not distributable).
    remote.received.clear()
    private = await post(db, settings, alice, "for my followers", visibility="private")
    await run_federation(app)
    remote.received.clear()
    await interact(db, private, favouriters=[strangers["erin"]], repliers=[strangers["fay"]])
    async with db.session() as session:
        await edits.edit_status(session, settings, await local(db, alice), private.id,
                                text="for my followers, edited")
    await run_federation(app)
    assert remote.urls == ["https://shared.example/inbox", "https://solo.example/users/tom/inbox"]


async def capture_reach(db: Database, status: Status, reached: list[Any]) -> None:
    """The accounts a deleted status had reached, as its Delete's payload holds them
    (``reached_ids``: its boosts and favourites are gone with it)."""
    async with db.session() as session:
        activity = await session.scalar(select(Activity).where(
            Activity.type == "Delete", Activity.object_uri == status.uri))
        assert activity is not None
        activity.payload = {**activity.payload, "reached_ids": reached}
        await session.commit()


async def test_a_delete_reaches_the_servers_the_status_had_reached(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], strangers: dict[str, Account], remote: FakeFediverse
) -> None:
    status = await post(db, settings, alice, "a work I withdraw")
    await run_federation(app)
    remote.received.clear()
    await interact(db, status, boosters=[strangers["dave"]], favouriters=[strangers["erin"]],
                   repliers=[strangers["fay"]])
    async with db.session() as session:
        await statuses.delete_status(session, status)
    # Captured at deletion; junk in a payload is skipped.
    await capture_reach(db, status, [strangers["dave"].id, strangers["erin"].id,
                                     strangers["gus"].id, "junk", True, None, 10**30])
    await run_federation(app)
    assert remote.urls == REACHED
    assert {item.document["type"] for item in remote.received} == {"Delete"}

    # A followers-only status's Delete goes to its followers only, whatever was captured.
    remote.received.clear()
    private = await post(db, settings, alice, "for my followers", visibility="private")
    await run_federation(app)
    remote.received.clear()
    await interact(db, private, repliers=[strangers["fay"]])
    async with db.session() as session:
        await statuses.delete_status(session, private)
    await capture_reach(db, private, [strangers["erin"].id])
    await run_federation(app)
    assert remote.urls == ["https://shared.example/inbox", "https://solo.example/users/tom/inbox"]


async def test_deleting_a_status_captures_whom_it_had_reached(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], strangers: dict[str, Account], remote: FakeFediverse
) -> None:
    # Its boosts and favourites go with it: the Delete's payload keeps their accounts.
    status = await post(db, settings, alice, "a work I withdraw")
    await run_federation(app)
    remote.received.clear()
    await interact(db, status, boosters=[strangers["dave"]],
                   favouriters=[strangers["erin"], strangers["gus"]],
                   repliers=[strangers["fay"]])
    async with db.session() as session:
        await statuses.delete_status(session, status)
    await run_federation(app)
    assert remote.urls == REACHED
    assert {item.document["type"] for item in remote.received} == {"Delete"}


async def test_deleting_an_unpublished_status_sends_nothing(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    from server.models import MediaAttachment, MediaState

    async with db.session() as session:
        media = MediaAttachment(account_id=alice.account_id, type="image",
                                state=MediaState.PROCESSING.value)
        session.add(media)
        await session.commit()
        author = await session.get(Account, alice.account_id)
        assert author is not None
        status = await statuses.create_status(session, settings, author, None, text="draft",
                                              media_ids=[media.id])
        await statuses.delete_status(session, status)
    await run_federation(app)
    assert remote.received == [] and await count(db, Activity) == 0


# ------------------------------------------------------------ likes, boosts, follows

async def test_likes_and_boosts_of_a_remote_post_and_their_undoing(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    zoe = await remote_account(db, "zoe", "far.example")
    async with db.session() as session:
        theirs = Status(account_id=zoe.id, uri="https://far.example/notes/7", local=False,
                        content="look", visibility="public", published=True)
        session.add(theirs)
        await session.commit()
        author = await session.get(Account, alice.account_id)
        assert author is not None
        await statuses.favourite(session, author, theirs.id)
        boost = await statuses.reblog(session, settings, author, theirs.id)
    await run_federation(app)
    like = remote.to(zoe.inbox_url)[0]
    assert like["type"] == "Like" and like["object"] == theirs.uri
    assert like["id"].startswith(author.uri + "#likes/")
    announces = [d for d in remote.to(zoe.inbox_url) if d["type"] == "Announce"]
    assert announces[0]["id"] == boost.uri and announces[0]["object"] == theirs.uri
    assert sorted(r.url for r in remote.received if r.document["type"] == "Announce") == [
        zoe.inbox_url, "https://shared.example/inbox", "https://solo.example/users/tom/inbox"]

    remote.received.clear()
    async with db.session() as session:
        await statuses.unfavourite(session, author, theirs.id)
        await statuses.unreblog(session, author, theirs.id)
    await run_federation(app)
    undos = remote.to(zoe.inbox_url)
    assert {u["object"]["type"] for u in undos} == {"Like", "Announce"}
    for undo in undos:
        assert undo["type"] == "Undo" and undo["actor"] == author.uri
    undone = {u["object"]["type"]: u["object"]["id"] for u in undos}
    assert undone == {"Like": like["id"], "Announce": boost.uri}
    assert len(remote.received) == 4  # the Undo(Announce) also went to her followers


async def test_follow_requests_to_remote_accounts_and_the_answers_to_remote_followers(
    app: Starlette, db: Database, settings: Settings, alice: User, remote: FakeFediverse
) -> None:
    zoe = await remote_account(db, "zoe", "far.example", shared=True)
    author = await local(db, alice)
    async with db.session() as session:
        await follows.follow(session, author, zoe.id)
    await run_federation(app)
    follow = remote.to("https://far.example/inbox")[0]
    assert follow["type"] == "Follow" and follow["object"] == zoe.uri
    assert follow["actor"] == author.uri

    remote.received.clear()
    async with db.session() as session:
        await follows.unfollow(session, author, zoe.id)
        assert await follows.remote_follow(session, zoe, author,
                                           uri="https://far.example/follows/1") == "followed"
        await session.commit()
    await run_federation(app)
    accept, undo = sorted(remote.to("https://far.example/inbox"), key=lambda d: d["type"])
    assert undo["type"] == "Undo" and undo["object"]["id"] == follow["id"]
    assert accept["type"] == "Accept" and accept["actor"] == author.uri
    assert accept["object"]["id"] == "https://far.example/follows/1"
    assert accept["object"]["actor"] == zoe.uri


async def test_a_profile_update_reaches_the_followers(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    async with db.session() as session:
        await update_profile(session, app.state.easel.storage, alice.account_id, alice.id,
                             ProfileChanges(display_name="Alice A."))
        # A posting default alone changes nothing others see.
        await update_profile(session, app.state.easel.storage, alice.account_id, alice.id,
                             ProfileChanges(privacy="unlisted"))
    await run_federation(app)
    assert len(remote.received) == 2
    update = remote.received[0].document
    assert update["type"] == "Update" and update["object"]["type"] == "Person"
    assert update["object"]["name"] == "Alice A."


async def test_redoing_the_federate_job_sends_nothing_twice(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    from server.queue.jobs import enqueue
    from server.queue.kinds import kind_named

    await post(db, settings, alice, "once")
    await run_federation(app)
    async with db.session() as session:
        activity = await session.scalar(select(Activity))
        assert activity is not None
        await enqueue(session, kind_named("federate"), str(activity.id), again=True)
        await session.commit()
    assert await run_federation(app) == 1
    assert len(remote.received) == 2


async def test_blocking_a_remote_account_sends_block_and_unblocking_sends_its_undo(
    app: Starlette, db: Database, alice: User, remote: FakeFediverse
) -> None:
    from server.services import blocks

    zoe = await remote_account(db, "zoe", "far.example", shared=True)
    author = await local(db, alice)
    await follow_directly(db, zoe, author.id)  # zoe follows alice: the block ends it
    async with db.session() as session:
        await follows.follow(session, author, zoe.id)  # and alice asked to follow zoe
    await run_federation(app)
    [asked] = remote.to("https://far.example/inbox")
    remote.received.clear()
    async with db.session() as session:
        await blocks.block(session, author, zoe.id)
        await blocks.block(session, author, zoe.id)  # again: nothing more is sent
    await run_federation(app)
    undo, block = sorted(remote.to("https://far.example/inbox"), key=lambda d: d["type"] != "Undo")
    assert (block["type"], block["actor"], block["object"]) == ("Block", author.uri, zoe.uri)
    assert undo["type"] == "Undo" and undo["object"]["id"] == asked["id"]  # alice's follow ends
    assert await count(db, Follow) == 0 and await count(db, FollowRequest) == 0

    remote.received.clear()
    async with db.session() as session:
        await blocks.unblock(session, author, zoe.id)
        await blocks.unblock(session, author, zoe.id)
    await run_federation(app)
    [undo] = remote.to("https://far.example/inbox")
    assert undo["type"] == "Undo" and undo["actor"] == author.uri
    assert undo["object"] == {k: block[k] for k in ("id", "type", "actor", "object")}


async def test_pins_and_featured_tags_reach_the_followers_as_add_and_remove(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    from server.services import featured_tags, portfolio

    status = await post(db, settings, alice, "my best work #Ink")
    await run_federation(app)
    remote.received.clear()
    author = await local(db, alice)
    featured = settings.base_url + "/users/alice/collections/featured"
    async with db.session() as session:
        await portfolio.pin(session, author, status)
        await portfolio.pin(session, author, status)  # again: nothing more is sent
        view = await featured_tags.feature_tag(session, author, "#Ink")
        await featured_tags.feature_tag(session, author, "ink")  # already featured
    await run_federation(app)
    sent = remote.to("https://shared.example/inbox")
    assert sorted(d["type"] for d in sent) == ["Add", "Add"]
    assert remote.to("https://solo.example/users/tom/inbox") == sent  # every follower
    pin = next(d for d in sent if isinstance(d["object"], str))
    assert (pin["actor"], pin["object"], pin["target"]) == (author.uri, status.uri, featured)
    tag = next(d for d in sent if isinstance(d["object"], dict))
    assert tag["target"] == featured  # where Mastodon sends (and reads) it
    assert tag["object"] == {"type": "Hashtag", "name": "#Ink",
                             "href": settings.base_url + "/@alice/tagged/ink"}
    remote.received.clear()
    async with db.session() as session:
        await portfolio.unpin(session, author, status)
        await portfolio.unpin(session, author, status)  # not pinned: nothing
        await featured_tags.unfeature_tag(session, author, view.featured.id)
    await run_federation(app)
    removed = remote.to("https://shared.example/inbox")
    assert sorted((d["type"], isinstance(d["object"], str)) for d in removed) == [
        ("Remove", False), ("Remove", True)]
    assert {d["target"] for d in removed} == {featured}
    assert next(d for d in removed if isinstance(d["object"], dict))["object"]["name"] == "#Ink"


async def test_a_post_pinned_while_waiting_for_its_images_is_sent_pinned_once_published(
    app: Starlette, db: Database, settings: Settings, alice: User,
    audience: dict[str, Account], remote: FakeFediverse
) -> None:
    from server.services import portfolio

    status, media_id = await waiting_post(db, settings, alice)
    async with db.session() as session:
        await portfolio.pin(session, await local(db, alice), status)
    await run_federation(app)
    assert remote.received == []  # nothing of a draft leaves, its pin neither
    await media_ready(db, status, media_id)
    await run_federation(app)
    sent = remote.to("https://shared.example/inbox")
    assert [d["type"] for d in sent] == ["Create", "Add"]
    assert sent[1]["object"] == sent[0]["object"]["id"]  # the final uri, not the draft's
    assert not sent[1]["object"].endswith(f"/{status.id}")


async def test_removing_a_remote_follower_sends_it_a_reject_of_its_follow(
    app: Starlette, db: Database, alice: User, remote: FakeFediverse
) -> None:
    zoe = await remote_account(db, "zoe", "far.example")
    author = await local(db, alice)
    async with db.session() as session:
        assert await follows.remote_follow(session, zoe, author,
                                           uri="https://far.example/follows/9") == "followed"
        await session.commit()
    await run_federation(app)
    remote.received.clear()
    async with db.session() as session:
        await follows.remove_from_followers(session, author, zoe.id)
    await run_federation(app)
    [reject] = remote.to(zoe.inbox_url)
    assert reject["type"] == "Reject" and reject["actor"] == author.uri
    assert reject["object"]["id"] == "https://far.example/follows/9"
    assert reject["object"]["actor"] == zoe.uri and reject["object"]["object"] == author.uri


async def test_deleting_the_avatar_reaches_the_followers_as_an_update(
    app: Starlette, db: Database, alice: User, audience: dict[str, Account],
    remote: FakeFediverse
) -> None:
    import io

    from PIL import Image

    from server.services.profiles import remove_profile_image

    image = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(image, "PNG")
    storage = app.state.easel.storage
    async with db.session() as session:
        await update_profile(session, storage, alice.account_id, alice.id,
                             ProfileChanges(avatar=image.getvalue()))
    await run_federation(app)
    remote.received.clear()
    async with db.session() as session:
        await remove_profile_image(session, storage, alice.account_id, alice.id, "avatar")
    await run_federation(app)
    assert remote.urls == ["https://shared.example/inbox", "https://solo.example/users/tom/inbox"]
    update = remote.received[0].document
    assert update["type"] == "Update" and update["object"]["type"] == "Person"
    assert update["object"]["icon"]["url"] == app.state.easel.urls.default_avatar
