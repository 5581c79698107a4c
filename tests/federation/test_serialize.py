from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from federation.parse import parse_activity, parse_actor, parse_note
from federation.sanitize import html_to_text
from federation.serialize import (
    PERMITTED_CONTEXT_URLS,
    accept_activity,
    account_to_actor,
    announce_activity,
    block_activity,
    create_activity,
    delete_activity,
    flag_activity,
    follow_activity,
    like_activity,
    ordered_collection,
    ordered_collection_page,
    reject_activity,
    status_to_note,
    tombstone,
    undo_activity,
    update_activity,
    update_actor_activity,
)
from server.models import Account, MediaAttachment, Status, Tag
from server.services.text import render_status
from server.settings import Settings
from server.storage import LocalStorage
from server.urls import Urls

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
BASE = "https://easel.test"
ALICE = f"{BASE}/users/alice"
FOLLOWERS = f"{ALICE}/followers"
BOB = "https://remote.example/users/bob"
CAROL = f"{BASE}/users/carol"
WHEN = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def urls() -> Urls:
    return Urls(Settings(domain="easel.test", scheme="https"))


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path, BASE)


def local_account(username: str, urls: Urls, **changes: Any) -> Account:
    uri = urls.actor(username)
    account = Account(
        id=1, username=username, username_key=username.lower(), domain="", actor_type="Person",
        display_name="", note="", uri=uri, url=urls.profile(username), inbox_url=urls.inbox(username),
        outbox_url=urls.outbox(username), shared_inbox_url=urls.shared_inbox,
        followers_url=urls.followers(username), following_url=urls.following(username),
        featured_url=urls.featured(username), public_key_id=urls.key_id(uri),
        public_key_pem="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        locked=False, discoverable=True, indexable=False, fields=[], created_at=WHEN,
        avatar_key=None, header_key=None)
    for key, value in changes.items():
        setattr(account, key, value)
    return account


def remote_bob() -> Account:
    return Account(id=2, username="bob", username_key="bob", domain="remote.example", uri=BOB,
                   url="https://remote.example/@bob", followers_url=f"{BOB}/followers")


@pytest.fixture
def alice(urls: Urls) -> Account:
    return local_account("alice", urls)


@pytest.fixture
def carol(urls: Urls) -> Account:
    return local_account("carol", urls)


def media(n: int, description: str = "", **changes: Any) -> MediaAttachment:
    item = MediaAttachment(
        id=100 + n, type="image", state="ready", file_key=f"media/aa/bb/file{n}.webp",
        small_key=f"media/aa/bb/small{n}.webp", original_key=f"originals/aa/bb/orig{n}.png",
        meta={"original": {"width": 1200 + n, "height": 800, "size": "1200x800", "aspect": 1.5}},
        blurhash=f"LEHV6nWB2yk8pyo0adR*.7kCMdn{n}", description=description, focus_x=0.25,
        focus_y=-0.5)
    for key, value in changes.items():
        setattr(item, key, value)
    return item


def status(visibility: str = "public", **changes: Any) -> Status:
    item = Status(
        id=7190000000000000001, account_id=1, uri=f"{ALICE}/statuses/7190000000000000001",
        url=f"{BASE}/@alice/7190000000000000001", text="hello", content="<p>hello</p>",
        spoiler_text="", visibility=visibility, sensitive=False, language="en", published=True,
        published_at=WHEN, created_at=WHEN, edited_at=None)
    for key, value in changes.items():
        setattr(item, key, value)
    return item


def contexts_in(document: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "@context":
                found.append(value)
            found.extend(contexts_in(value))
    elif isinstance(document, list):
        for item in document:
            found.extend(contexts_in(item))
    return found


def context_urls(context: Any) -> list[str]:
    """Every string in a context that is a context reference (not a term's IRI)."""
    if isinstance(context, str):
        return [context]
    if isinstance(context, list):
        return [url for item in context for url in context_urls(item)]
    return []  # an inline object: terms only


def assert_only_permitted_contexts(document: dict[str, Any]) -> None:
    contexts = contexts_in(document)
    assert len(contexts) == 1, "exactly one @context, at the top"
    assert "@context" in document
    for url in context_urls(contexts[0]):
        assert url in PERMITTED_CONTEXT_URLS
    assert contexts[0][0] == "https://www.w3.org/ns/activitystreams"
    # Inline objects never point at another context document.
    for item in contexts[0]:
        if isinstance(item, dict):
            assert "@import" not in item
            assert all(not (isinstance(v, dict) and "@context" in v) for v in item.values())
    json.dumps(document)  # plain JSON


# ------------------------------------------------------------------------------ notes

@pytest.mark.parametrize(("visibility", "to", "cc"), [
    ("public", [PUBLIC], [FOLLOWERS, BOB]),
    ("unlisted", [FOLLOWERS], [PUBLIC, BOB]),
    ("private", [FOLLOWERS], [BOB]),
    ("direct", [BOB], []),
])
def test_each_visibility_is_addressed_as_mastodon_does(
    visibility: str, to: list[str], cc: list[str], alice: Account, urls: Urls, storage: LocalStorage
) -> None:
    note = status_to_note(status(visibility), alice, [], [remote_bob()], [], urls, storage)
    assert (note["to"], note["cc"]) == (to, cc)


def test_direct_to_nobody_and_public_without_mentions(
    alice: Account, urls: Urls, storage: LocalStorage
) -> None:
    assert status_to_note(status("direct"), alice, [], [], [], urls, storage)["to"] == []
    note = status_to_note(status("public"), alice, [], [], [], urls, storage)
    assert (note["to"], note["cc"]) == ([PUBLIC], [FOLLOWERS])


def test_unknown_visibility_is_refused(alice: Account, urls: Urls, storage: LocalStorage) -> None:
    with pytest.raises(ValueError, match="visibility"):
        status_to_note(status("limited"), alice, [], [], [], urls, storage)


def test_the_note_carries_what_servers_read(alice: Account, urls: Urls, storage: LocalStorage) -> None:
    item = status(spoiler_text="eye contact", sensitive=True,
                  edited_at=datetime(2024, 5, 2, 9, 30, tzinfo=UTC))
    note = status_to_note(item, alice, [], [], [], urls, storage,
                          in_reply_to_uri="https://remote.example/notes/9", conversation="tag:x")
    assert note["id"] == item.uri
    assert note["type"] == "Note"
    assert note["url"] == item.url
    assert note["attributedTo"] == ALICE
    assert note["content"] == "<p>hello</p>"
    assert note["contentMap"] == {"en": "<p>hello</p>"}
    assert note["published"] == "2024-05-01T10:00:00Z"
    assert note["updated"] == "2024-05-02T09:30:00Z"
    assert note["sensitive"] is True
    assert note["summary"] == "eye contact"
    assert note["inReplyTo"] == "https://remote.example/notes/9"
    assert note["conversation"] == "tag:x"
    assert "replies" not in note
    assert_only_permitted_contexts(note)
    plain = status_to_note(status(), alice, [], [], [], urls, storage)
    assert plain["summary"] is None and plain["inReplyTo"] is None and plain["sensitive"] is False
    assert "updated" not in plain and "conversation" not in plain


def test_attachments_are_ordered_ready_renditions(alice: Account, urls: Urls, storage: LocalStorage) -> None:
    items = [media(3, "third first"), media(1, ""), media(2, "not ready", state="processing"),
             media(4, "a video", type="video", file_key="media/aa/bb/clip.mp4", meta={})]
    note = status_to_note(status(), alice, items, [], [], urls, storage)
    assert note["attachment"] == [
        {"type": "Document", "mediaType": "image/webp", "url": f"{BASE}/system/media/aa/bb/file3.webp",
         "name": "third first", "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdn3", "width": 1203, "height": 800,
         "focalPoint": [0.25, -0.5]},
        {"type": "Document", "mediaType": "image/webp", "url": f"{BASE}/system/media/aa/bb/file1.webp",
         "name": None, "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdn1", "width": 1201, "height": 800,
         "focalPoint": [0.25, -0.5]},
        {"type": "Document", "mediaType": "video/mp4", "url": f"{BASE}/system/media/aa/bb/clip.mp4",
         "name": "a video", "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdn4"},
    ]
    # The private original never appears.
    assert "orig" not in json.dumps(note)


def test_mentions_and_hashtags_become_tags(alice: Account, carol: Account, urls: Urls,
                                           storage: LocalStorage) -> None:
    tags = [Tag(name="inkdrawing", display_name="InkDrawing"), Tag(name="art", display_name="art")]
    note = status_to_note(status(), alice, [], [remote_bob(), carol, remote_bob()], tags, urls, storage)
    assert note["tag"] == [
        {"type": "Mention", "href": BOB, "name": "@bob@remote.example"},
        {"type": "Mention", "href": CAROL, "name": "@carol@easel.test"},
        {"type": "Hashtag", "href": f"{BASE}/tags/inkdrawing", "name": "#InkDrawing"},
        {"type": "Hashtag", "href": f"{BASE}/tags/art", "name": "#art"},
    ]


def test_round_trip_through_the_parser(alice: Account, carol: Account, urls: Urls,
                                       storage: LocalStorage) -> None:
    text = "New sketches for @bob@remote.example and @carol #InkDrawing #art https://example.com/x"
    content = render_status(text, [remote_bob(), carol], BASE)
    tags = [Tag(name="inkdrawing", display_name="InkDrawing"), Tag(name="art", display_name="art")]
    items = [media(2, "heron in reeds"), media(1, "second <b>image</b>")]
    for visibility in ("public", "unlisted", "private", "direct"):
        item = status(visibility, text=text, content=content, spoiler_text="birds", sensitive=True)
        note = status_to_note(item, alice, items, [remote_bob(), carol], tags, urls, storage)
        parsed = parse_note(json.loads(json.dumps(note)), followers_url=FOLLOWERS)
        assert parsed.id == item.uri
        assert parsed.attributed_to == ALICE
        # Our own markup survives the sanitiser: same text, same mention and hashtag links
        # (links gain target/rel, as every remote link does).
        assert html_to_text(parsed.content) == html_to_text(content)
        assert html_to_text(content).startswith("New sketches for @bob and @carol #InkDrawing")
        assert parsed.content.count('class="u-url mention"') == 2
        assert parsed.content.count('class="mention hashtag"') == 2
        assert '<span class="invisible">https://</span>' in parsed.content
        assert parsed.visibility == visibility
        assert parsed.summary == "birds" and parsed.sensitive is True
        assert parsed.language == "en"
        assert parsed.published == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
        assert [(t.name, t.key, t.href) for t in parsed.hashtags] == [
            ("InkDrawing", "inkdrawing", f"{BASE}/tags/inkdrawing"), ("art", "art", f"{BASE}/tags/art")]
        assert [m.href for m in parsed.mentions] == [BOB, CAROL]
        assert [(a.url, a.description, a.media_type, a.width, a.height, a.focal_point, a.blurhash)
                for a in parsed.attachments] == [
            (f"{BASE}/system/media/aa/bb/file2.webp", "heron in reeds", "image/webp", 1202, 800,
             (0.25, -0.5), "LEHV6nWB2yk8pyo0adR*.7kCMdn2"),
            (f"{BASE}/system/media/aa/bb/file1.webp", "second image", "image/webp", 1201, 800,
             (0.25, -0.5), "LEHV6nWB2yk8pyo0adR*.7kCMdn1"),
        ]
        activity = parse_activity(create_activity(note))
        assert activity.actor == ALICE and activity.object_id == item.uri


# ------------------------------------------------------------------------- activities

@pytest.fixture
def note(alice: Account, urls: Urls, storage: LocalStorage) -> dict[str, Any]:
    return status_to_note(status(), alice, [media(1, "alt")], [remote_bob()], [], urls, storage)


def test_create_wraps_the_note_with_its_audience(note: dict[str, Any]) -> None:
    create = create_activity(note)
    assert create["id"] == note["id"] + "/activity"
    assert (create["type"], create["actor"], create["published"]) == ("Create", ALICE, "2024-05-01T10:00:00Z")
    assert (create["to"], create["cc"]) == (note["to"], note["cc"])
    assert create["object"] == {k: v for k, v in note.items() if k != "@context"}
    assert "@context" in note  # the note given is left as it was
    assert_only_permitted_contexts(create)


def test_update_of_a_note_has_an_id_per_edit(note: dict[str, Any]) -> None:
    at = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
    update = update_activity(note, at=at)
    assert update["id"] == f"{note['id']}#updates/{int(at.timestamp())}"
    assert (update["type"], update["actor"], update["published"]) == ("Update", ALICE, "2024-05-02T09:30:00Z")
    assert update["object"]["id"] == note["id"]
    # Mastodon applies an Update only when the note's `updated` is newer than what it has.
    assert update["object"]["updated"] == "2024-05-02T09:30:00Z"
    assert "updated" not in note  # the note given is left as it was
    assert_only_permitted_contexts(update)


def test_an_update_keeps_a_later_edit_time(note: dict[str, Any]) -> None:
    edited = {**note, "updated": "2024-05-03T00:00:00Z"}
    update = update_activity(edited, at=datetime(2024, 5, 2, 9, 30, tzinfo=UTC))
    assert update["object"]["updated"] == "2024-05-03T00:00:00Z"


def test_delete_of_a_note_carries_a_tombstone_and_of_an_actor_its_id() -> None:
    uri = f"{ALICE}/statuses/1"
    delete = delete_activity(ALICE, uri, cc=[FOLLOWERS])
    assert delete == {"@context": delete["@context"], "id": f"{uri}#delete", "type": "Delete",
                      "actor": ALICE, "to": [PUBLIC], "cc": [FOLLOWERS],
                      "object": {"id": uri, "type": "Tombstone", "atomUri": uri}}
    assert tombstone(uri) == {"id": uri, "type": "Tombstone", "atomUri": uri}
    actor_delete = delete_activity(ALICE, ALICE, is_actor=True)
    assert (actor_delete["id"], actor_delete["object"]) == (f"{ALICE}#delete", ALICE)
    assert_only_permitted_contexts(delete)
    parsed = parse_activity(delete)
    assert parsed.object_id == uri


def test_like_follow_block(alice: Account) -> None:
    like = like_activity(f"{ALICE}#likes/1", ALICE, "https://remote.example/notes/1")
    assert {k: like[k] for k in ("id", "type", "actor", "object")} == {
        "id": f"{ALICE}#likes/1", "type": "Like", "actor": ALICE, "object": "https://remote.example/notes/1"}
    follow = follow_activity(f"{BASE}/follows/1", ALICE, BOB)
    assert (follow["type"], follow["actor"], follow["object"]) == ("Follow", ALICE, BOB)
    block = block_activity(f"{BASE}/blocks/1", ALICE, BOB)
    assert (block["type"], block["object"]) == ("Block", BOB)
    for document in (like, follow, block):
        assert_only_permitted_contexts(document)
        parse_activity(document)


def test_announce_of_public_and_unlisted_boosts(alice: Account, urls: Urls) -> None:
    boost = status("public", uri=f"{ALICE}/statuses/7190000000000000009/activity", content="")
    announce = announce_activity(boost, alice, "https://remote.example/notes/1", BOB, urls)
    assert announce["id"] == f"{ALICE}/statuses/7190000000000000009/activity"
    assert (announce["type"], announce["actor"], announce["object"]) == (
        "Announce", ALICE, "https://remote.example/notes/1")
    assert (announce["to"], announce["cc"]) == ([PUBLIC], [BOB, FOLLOWERS])
    assert announce["published"] == "2024-05-01T10:00:00Z"
    unlisted = announce_activity(status("unlisted"), alice, "https://remote.example/notes/1", BOB, urls)
    assert (unlisted["to"], unlisted["cc"]) == ([FOLLOWERS], [PUBLIC, BOB])
    assert_only_permitted_contexts(announce)


def test_accept_and_reject_answer_the_follow_as_received() -> None:
    received = {"@context": "https://www.w3.org/ns/activitystreams", "id": "https://remote.example/f/1",
                "type": "Follow", "actor": {"id": BOB, "type": "Person"}, "object": ALICE,
                "signature": {"signatureValue": "x"}, "junk": "<script>"}
    accept = accept_activity(f"{ALICE}#accepts/follows/1", ALICE, received)
    assert accept["object"] == {"type": "Follow", "id": "https://remote.example/f/1", "actor": BOB,
                                "object": ALICE}
    assert (accept["type"], accept["actor"]) == ("Accept", ALICE)
    reject = reject_activity(f"{ALICE}#rejects/follows/1", ALICE, "https://remote.example/f/1")
    assert (reject["type"], reject["object"]) == ("Reject", "https://remote.example/f/1")
    for document in (accept, reject):
        assert_only_permitted_contexts(document)
    assert parse_activity(accept).object_id == "https://remote.example/f/1"


def test_undo_embeds_the_inner_activity(alice: Account, urls: Urls) -> None:
    follow = follow_activity(f"{BASE}/follows/1", ALICE, BOB)
    undo = undo_activity(follow)
    assert undo["id"] == f"{BASE}/follows/1/undo"
    assert (undo["type"], undo["actor"]) == ("Undo", ALICE)
    assert undo["object"] == {k: v for k, v in follow.items() if k != "@context"}
    announce = announce_activity(status(), alice, "https://remote.example/notes/1", BOB, urls)
    undo_announce = undo_activity(announce, id=f"{ALICE}/statuses/1/undo")
    assert undo_announce["id"] == f"{ALICE}/statuses/1/undo"
    assert (undo_announce["to"], undo_announce["cc"]) == (announce["to"], announce["cc"])
    for document in (undo, undo_announce):
        assert_only_permitted_contexts(document)
        assert parse_activity(document).embedded_object is not None


def test_flag_is_sent_by_the_instance_actor(urls: Urls) -> None:
    flag = flag_activity(f"{BASE}/reports/1", urls.instance_actor, BOB,
                         ["https://remote.example/notes/1", "https://remote.example/notes/2"], "spam")
    assert flag["actor"] == f"{BASE}/actor"
    assert flag["object"] == [BOB, "https://remote.example/notes/1", "https://remote.example/notes/2"]
    assert flag["content"] == "spam"
    assert_only_permitted_contexts(flag)
    assert parse_activity(flag).object_ids == tuple(flag["object"])


# ----------------------------------------------------------------------------- actors

def test_actor_with_fields_avatar_and_header(urls: Urls, storage: LocalStorage) -> None:
    account = local_account("alice", urls, display_name="Alice", note="Painter.\n\nSee https://a.example",
                            avatar_key="avatars/aa/bb/av.webp", header_key="headers/aa/bb/hd.jpg",
                            fields=[{"name": "Shop", "value": "https://shop.example/alice"},
                                    {"name": "<b>x</b>", "value": "<script>alert(1)</script>"}])
    actor = account_to_actor(account, urls, storage)
    assert actor["icon"] == {"type": "Image", "mediaType": "image/webp",
                             "url": f"{BASE}/system/avatars/aa/bb/av.webp"}
    assert actor["image"] == {"type": "Image", "mediaType": "image/jpeg",
                              "url": f"{BASE}/system/headers/aa/bb/hd.jpg"}
    assert actor["summary"].startswith("<p>Painter.</p><p>See <a href=\"https://a.example\"")
    assert actor["attachment"][0]["type"] == "PropertyValue"
    assert actor["attachment"][0]["value"].startswith('<a href="https://shop.example/alice"')
    assert actor["attachment"][1]["value"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    parsed = parse_actor(actor)
    assert (parsed.id, parsed.username, parsed.name) == (ALICE, "alice", "Alice")
    # Field names are plain text; markup in them is dropped on the way in, never rendered.
    assert [f.name for f in parsed.fields] == ["Shop", "x"]
    assert parsed.public_key is not None and parsed.public_key.owner == ALICE
    assert parsed.avatar_url == f"{BASE}/system/avatars/aa/bb/av.webp"
    assert "private" not in json.dumps(actor).lower()
    # Without storage (as served today): the defaults, and no header.
    plain = account_to_actor(local_account("alice", urls), urls)
    assert plain["icon"]["url"] == urls.default_avatar and "image" not in plain
    assert "attachment" not in plain and plain["summary"] == ""


def test_update_actor_activity(urls: Urls, storage: LocalStorage) -> None:
    account = local_account("alice", urls, display_name="Alice 2")
    at = datetime(2024, 6, 1, tzinfo=UTC)
    update = update_actor_activity(account, urls, at=at, storage=storage)
    assert update["id"] == f"{ALICE}#updates/{int(at.timestamp())}"
    assert (update["type"], update["actor"], update["to"]) == ("Update", ALICE, [PUBLIC])
    assert update["object"]["name"] == "Alice 2"
    assert update["object"]["publicKey"]["owner"] == ALICE
    assert update["@context"][:2] == ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"]
    assert_only_permitted_contexts(update)
    assert parse_actor(parse_activity(update).embedded_object).name == "Alice 2"


def test_actor_document_contexts_are_permitted(alice: Account, urls: Urls) -> None:
    assert_only_permitted_contexts(account_to_actor(alice, urls))


# ------------------------------------------------------------------------ collections

def test_ordered_collection_and_pages(note: dict[str, Any]) -> None:
    outbox = ordered_collection(f"{ALICE}/outbox", 12, first=f"{ALICE}/outbox?page=true")
    assert {k: v for k, v in outbox.items() if k != "@context"} == {
        "id": f"{ALICE}/outbox", "type": "OrderedCollection", "totalItems": 12,
        "first": f"{ALICE}/outbox?page=true"}
    assert "first" not in ordered_collection(f"{ALICE}/followers", 0)
    page = ordered_collection_page(f"{ALICE}/outbox?page=true", f"{ALICE}/outbox",
                                   [create_activity(note), BOB], next=f"{ALICE}/outbox?max_id=1")
    assert page["type"] == "OrderedCollectionPage"
    assert page["partOf"] == f"{ALICE}/outbox"
    assert page["next"] == f"{ALICE}/outbox?max_id=1"
    assert "prev" not in page
    assert page["orderedItems"][1] == BOB
    assert page["orderedItems"][0]["id"] == note["id"] + "/activity"
    assert_only_permitted_contexts(outbox)
    assert_only_permitted_contexts(page)
    with_prev = ordered_collection_page("https://x/p2", "https://x", [], prev="https://x/p1")
    assert with_prev["prev"] == "https://x/p1" and with_prev["orderedItems"] == []


def test_documents_are_independent_copies(note: dict[str, Any]) -> None:
    first = create_activity(note)
    first["@context"][-1]["evil"] = "https://evil.example/context"
    first["object"]["tag"].append("x")
    second = create_activity(note)
    assert "evil" not in second["@context"][-1]
    assert "x" not in note["tag"]
