"""Real-shaped deliveries from Mastodon, GoToSocial, Pixelfed, Misskey and minimal servers.

Given the corpus of payloads each server family sends (``tests/federation/corpus``), I
expect every activity in it to parse and to reach the handler the dispatch table names,
and — delivered signed by a fake actor at the payload's own actor URL, with alice's
status and Follow ids put in — each family's follow, like, boost, their undos, accept
and move to show up in alice's client API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from federation.inbox.dispatch import handler_module
from federation.parse import ACTOR_TYPES, parse_activity
from server.models import InboxOutcome, Status, User
from tests.federation.inbox.conftest import (
    Api,
    Fediverse,
    alice_asks_to_follow,
    receive,
    remote_account,
)

CORPUS = Path(__file__).parent.parent / "corpus"
CORPUS_STATUS = "https://easel.test/users/alice/statuses/7190000000000000001"
CORPUS_FOLLOW = "https://easel.test/users/alice#follows/7190000000000000042"

# The handler each kind of payload goes to, by the file name's activity part.
EXPECTED_HANDLERS = {
    "create_note": "create", "create_video": "create", "update_person": "update_actor",
    "delete_note": "delete", "delete_actor": "delete", "follow": "follow", "like": "like",
    "like_reaction": "like", "undo_follow": "undo", "undo_like": "undo",
    "undo_announce": "undo", "undo_by_id": "undo", "announce": "announce",
    "accept_follow": "accept", "accept_by_id": "accept", "reject_follow": "reject",
    "block": "block", "flag": "flag", "move": "move",
}


def load(name: str, **replace: str) -> dict[str, Any]:
    text = (CORPUS / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    document: dict[str, Any] = json.loads(text)
    return document


def test_every_corpus_activity_reaches_its_handler() -> None:
    seen = set()
    for path in sorted(CORPUS.glob("*.json")):
        document = json.loads(path.read_text())
        if document["type"] in ACTOR_TYPES:
            continue
        kind = path.stem.split("_", 1)[1]
        assert kind in EXPECTED_HANDLERS, path.name
        assert handler_module(parse_activity(document)) == \
            f"federation.inbox.{EXPECTED_HANDLERS[kind]}", path.name
        seen.add(path.stem.split("_", 1)[0])
    assert {"mastodon", "gotosocial", "pixelfed", "misskey", "minimal"} <= seen


# family: (actor id, preferredUsername, {step: corpus file})
FAMILIES: dict[str, tuple[str, str, dict[str, str]]] = {
    "mastodon": ("https://mastodon.example/users/carol", "carol", {
        "follow": "mastodon_follow.json", "undo_follow": "mastodon_undo_follow.json",
        "like": "mastodon_like.json", "undo_like": "mastodon_undo_like.json",
        "announce": "mastodon_announce.json", "undo_announce": "mastodon_undo_announce.json",
        "accept": "mastodon_accept_follow.json", "move": "mastodon_move.json"}),
    "gotosocial": ("https://gts.example/users/erin", "erin", {
        "follow": "gotosocial_follow.json",
        "like": "gotosocial_like.json", "undo_like": "gotosocial_undo_like.json",
        "announce": "gotosocial_announce.json", "accept": "gotosocial_accept_follow.json"}),
    "pixelfed": ("https://pixelfed.example/users/frank", "frank", {
        "follow": "pixelfed_follow.json",
        "like": "pixelfed_like.json", "undo_like": "pixelfed_undo_like.json",
        "announce": "pixelfed_announce.json", "undo_announce": "pixelfed_undo_announce.json"}),
    "misskey": ("https://misskey.example/users/9t7x6w5v4u", "kaito", {
        "follow": "misskey_follow.json", "undo_follow": "misskey_undo_follow.json",
        "like": "misskey_like_reaction.json", "undo_like": "misskey_undo_like.json",
        "announce": "misskey_announce.json", "accept": "misskey_accept_follow.json",
        "move": "misskey_move.json"}),
    "minimal": ("https://tiny.example/actor", "tiny", {
        "follow": "minimal_follow.json",
        "like": "minimal_like.json", "undo_like": "minimal_undo_by_id.json",
        "announce": "minimal_announce.json", "accept": "minimal_accept_by_id.json"}),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_follows_likes_boosts_and_their_undos(
        family: str, inbox_app: Starlette, alice_app: Api, alice: User, artwork: Status,
        fediverse: Fediverse) -> None:
    actor_uri, username, files = FAMILIES[family]
    sender = fediverse.actor(actor_uri, username)

    async def step(name: str) -> None:
        activity = load(files[name], **{CORPUS_STATUS: artwork.uri})
        assert await receive(inbox_app, sender, activity) == InboxOutcome.PROCESSED, name

    async def counts() -> tuple[int, int, int]:
        status = await alice_app.status(artwork.id)
        me = await alice_app.account(alice.account.id)
        return me["followers_count"], status["favourites_count"], status["reblogs_count"]

    await step("follow")
    await step("like")
    await step("announce")
    assert await counts() == (1, 1, 1)
    notified = {kind for kind, _ in await alice_app.notifications()}
    assert notified == {"follow", "favourite", "reblog"}
    for undo in ("undo_follow", "undo_like", "undo_announce"):
        if undo in files:
            await step(undo)
    assert await counts() == (
        0 if "undo_follow" in files else 1, 0, 0 if "undo_announce" in files else 1)


@pytest.mark.parametrize("family", sorted(f for f in FAMILIES if "accept" in FAMILIES[f][2]))
async def test_accepts(family: str, inbox_app: Starlette, alice_app: Api,
                       fediverse: Fediverse) -> None:
    actor_uri, username, files = FAMILIES[family]
    sender = fediverse.actor(actor_uri, username)
    account_id, sent = await alice_asks_to_follow(inbox_app, alice_app, sender, fediverse)
    accept = load(files["accept"], **{CORPUS_FOLLOW: sent["id"]})
    assert await receive(inbox_app, sender, accept) == InboxOutcome.PROCESSED
    assert (await alice_app.relationship(account_id))["following"] is True


@pytest.mark.parametrize("family", sorted(f for f in FAMILIES if "move" in FAMILIES[f][2]))
async def test_moves(family: str, inbox_app: Starlette, alice_app: Api,
                     fediverse: Fediverse) -> None:
    actor_uri, username, files = FAMILIES[family]
    sender = fediverse.actor(actor_uri, username)
    move = load(files["move"])
    new = fediverse.actor(move["target"], username, also_known_as=[actor_uri])
    account_id, sent = await alice_asks_to_follow(inbox_app, alice_app, sender, fediverse)
    await receive(inbox_app, sender, load(files["accept"], **{CORPUS_FOLLOW: sent["id"]}))
    assert await receive(inbox_app, sender, move) == InboxOutcome.PROCESSED
    new_account = await remote_account(inbox_app, new)
    assert (await alice_app.relationship(account_id))["following"] is False
    assert (await alice_app.relationship(new_account.id))["requested"] is True
