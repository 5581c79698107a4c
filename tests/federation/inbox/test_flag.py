"""Inbound ``Flag``: another server reports one of our accounts.

Given mallory (local) with two statuses, bob (local) with one, and mastodon.example's
instance actor, when a Mastodon-shaped Flag names mallory, her statuses and bob's
status, I expect one report by the instance actor about mallory with her statuses only
and the Flag's comment; the same Flag again changes nothing; a Flag naming two of our
accounts makes a report each; a Flag about nobody here is ignored; and a signed Flag
delivered to the shared inbox ends as a report once the queue runs.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from federation.context import FederationContext
from federation.inbox import flag
from server.db import Database
from server.models import Account, InboxItem, Report, Status, User
from server.settings import Settings
from tests.federation.fediverse import Fediverse, corpus, run_handler
from tests.federation.inbox.conftest import FakeActor, deliver, process
from tests.server.api.test_timelines import Factory

INSTANCE_ACTOR = "https://mastodon.example/actor"


@pytest.fixture
def make(db: Database, settings: Settings) -> Factory:
    return Factory(db, settings)


@pytest.fixture
async def mallory(make: Factory) -> User:
    return await make.user("mallory")


@pytest.fixture
async def fed(settings: Settings, db: Database) -> Any:
    network = Fediverse()
    network.person(INSTANCE_ACTOR, "mastodon.example")
    network.person("https://mastodon.example/users/carol", "carol")
    context = network.context(settings, db)
    yield context
    await context.close()


def flag_of(*objects: str, comment: str = "Reposting my artwork without credit",
            activity_id: str | None = None) -> dict[str, Any]:
    """Mastodon's Flag (from the corpus) naming ``objects``."""
    body = copy.deepcopy(corpus("mastodon_flag.json"))
    body["object"] = list(objects)
    body["content"] = comment
    if activity_id:
        body["id"] = activity_id
    return body


async def reports(db: Database) -> list[Report]:
    async with db.session() as session:
        return list(await session.scalars(select(Report).order_by(Report.id)))


async def account_id(db: Database, uri: str) -> int:
    async with db.session() as session:
        found = await session.scalar(select(Account.id).where(Account.uri == uri))
        assert found is not None
        return found


async def test_a_flag_becomes_a_report_about_the_local_account_with_its_statuses_only(
    fed: FederationContext, db: Database, make: Factory, mallory: User, bob: User
) -> None:
    first = await make.status(mallory.account, "stolen art")
    second = await make.status(mallory.account, "more stolen art")
    bobs = await make.status(bob.account, "bob's")
    body = flag_of(mallory.account.uri, second.uri, first.url, bobs.uri,
                   "https://mastodon.example/users/carol/statuses/1")

    note = await run_handler(fed, db, body, flag.handle)
    assert note == "reported @mallory (2 status(es))"
    [report] = await reports(db)
    assert report.uri == body["id"]
    assert report.account_id == await account_id(db, INSTANCE_ACTOR)
    assert report.target_account_id == mallory.account_id
    assert report.status_ids == [second.id, first.id]  # in the Flag's order
    assert report.comment == "Reposting my artwork without credit"
    assert report.category == "other" and report.forwarded is False

    # Redelivered (or the job redone): nothing new.
    assert await run_handler(fed, db, body, flag.handle) == "report already recorded"
    assert len(await reports(db)) == 1


async def test_a_flag_naming_two_local_accounts_makes_a_report_each(
    fed: FederationContext, db: Database, make: Factory, mallory: User, bob: User
) -> None:
    bobs = await make.status(bob.account, "bob's")
    body = flag_of(bob.account.url, mallory.account.uri, bobs.uri, comment="")
    assert await run_handler(fed, db, body, flag.handle) == (
        "reported @bob (1 status(es)), @mallory (0 status(es))")
    bob_report, mallory_report = sorted(await reports(db), key=lambda r: r.target_account_id
                                        != bob.account_id)
    assert (bob_report.target_account_id, bob_report.uri, bob_report.status_ids) == (
        bob.account_id, body["id"], [bobs.id])
    assert (mallory_report.target_account_id, mallory_report.uri) == (
        mallory.account_id, f"{body['id']}#account-{mallory.account_id}")
    assert await run_handler(fed, db, body, flag.handle) == "report already recorded"
    assert len(await reports(db)) == 2


async def test_a_flag_about_nobody_here_is_ignored(
    fed: FederationContext, db: Database, make: Factory, mallory: User, settings: Settings
) -> None:
    status = await make.status(mallory.account, "only a status is named")
    nobody = flag_of("https://mastodon.example/users/carol",
                     "https://easel.test/users/nobody", f"{settings.base_url}/actor")
    assert await run_handler(fed, db, nobody, flag.handle) == (
        "ignored: the Flag names no account on this server")
    only_status = flag_of(status.uri, activity_id="https://mastodon.example/flags/2")
    assert await run_handler(fed, db, only_status, flag.handle) == (
        "ignored: the Flag names no account on this server")
    assert await reports(db) == []


async def test_a_signed_flag_at_the_shared_inbox_ends_as_a_report(
    inbox_app: Starlette, app_db: Database, remote_carol: FakeActor, mallory: User, make: Factory
) -> None:
    status = await make.status(mallory.account, "stolen")
    body = remote_carol.activity("Flag", [mallory.account.uri, status.uri],
                                 content="please look at this")
    response = await deliver(inbox_app, remote_carol, body)
    assert response.status_code == 202, response.text
    await process(inbox_app)
    async with app_db.session() as session:
        item = await session.scalar(select(InboxItem).where(InboxItem.activity_uri == body["id"]))
        assert item is not None
        assert (item.outcome, item.note) == ("processed", "reported @mallory (1 status(es))")
        report = await session.scalar(select(Report))
        assert report is not None
        carol_id = await session.scalar(select(Account.id).where(Account.uri == remote_carol.uri))
        assert (report.account_id, report.target_account_id, report.status_ids, report.comment) == (
            carol_id, mallory.account_id, [status.id], "please look at this")
        assert json.dumps(item.body)  # the Flag as received stays on record
        assert await session.get(Status, status.id) is not None
