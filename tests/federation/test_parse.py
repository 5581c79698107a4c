from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from federation.parse import (
    MAX_ATTACHMENTS,
    MAX_TAGS,
    ParseError,
    RemoteAttachment,
    RemoteHashtag,
    RemoteMention,
    first_id,
    ids_of,
    is_public,
    parse_activity,
    parse_actor,
    parse_note,
    same_origin,
)

CORPUS = Path(__file__).parent / "corpus"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def load(name: str) -> dict[str, Any]:
    return json.loads((CORPUS / name).read_text())


def note_of(name: str, followers_url: str | None = None) -> Any:
    activity = parse_activity(load(name))
    assert activity.type == "Create"
    assert activity.embedded_object is not None
    return parse_note(activity.embedded_object, followers_url=followers_url)


# ------------------------------------------------------------------------- the corpus

def test_every_corpus_file_parses_as_an_activity() -> None:
    files = sorted(CORPUS.glob("*.json"))
    assert len(files) >= 15
    for path in files:
        doc = json.loads(path.read_text())
        if doc["type"] in ("Person", "Service", "Application", "Group"):
            parse_actor(doc)
        else:
            parse_activity(doc)


def test_mastodon_create_note() -> None:
    activity = parse_activity(load("mastodon_create_note.json"))
    assert activity.id == "https://mastodon.example/users/carol/statuses/112233445566778899/activity"
    assert activity.actor == "https://mastodon.example/users/carol"
    assert activity.object_id == "https://mastodon.example/users/carol/statuses/112233445566778899"
    assert activity.published == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert activity.to == (PUBLIC,)
    note = parse_note(activity.embedded_object,
                      followers_url="https://mastodon.example/users/carol/followers")
    assert note.id == "https://mastodon.example/users/carol/statuses/112233445566778899"
    assert note.type == "Note"
    assert note.attributed_to == "https://mastodon.example/users/carol"
    assert note.url == "https://mastodon.example/@carol/112233445566778899"
    assert note.visibility == "public"
    assert note.cc == ("https://mastodon.example/users/carol/followers", "https://easel.test/users/alice")
    assert note.summary == ""
    assert note.sensitive is False
    assert note.in_reply_to is None
    assert note.language == "en"
    assert note.conversation == "tag:mastodon.example,2024-05-01:objectId=4242:objectType=Conversation"
    assert note.text == "New sketches for @alice #InkDrawing #art"
    assert note.content.startswith('<p>New sketches for <span class="h-card" translate="no">'
                                   '<a href="https://easel.test/@alice" class="u-url mention" '
                                   'target="_blank" rel="nofollow noopener noreferrer">')
    assert note.hashtags == (
        RemoteHashtag(name="InkDrawing", key="inkdrawing", href="https://mastodon.example/tags/inkdrawing"),
        RemoteHashtag(name="art", key="art", href="https://mastodon.example/tags/art"),
    )
    assert note.mentions == (RemoteMention(href="https://easel.test/users/alice", name="@alice@easel.test"),)
    assert note.attachments == (
        RemoteAttachment(
            type="Document", media_type="image/jpeg",
            url="https://files.mastodon.example/media_attachments/files/112/233/445/original/a1b2c3d4e5f60718.jpg",
            description="Ink sketch of a heron standing in reeds",
            blurhash="UBL_:rOpGG-oBUNG,qRj2so|=eE1w^n4S5NH", width=1600, height=1200,
            focal_point=(0.0, 0.25)),
        RemoteAttachment(
            type="Document", media_type="image/png",
            url="https://files.mastodon.example/media_attachments/files/112/233/446/original/0f1e2d3c4b5a6978.png",
            description="", blurhash="U02rs+WB00ay-;j[M{ay~qj[M{j[xuj[WBay", width=800, height=800,
            focal_point=None),
    )
    assert [a.kind for a in note.attachments] == ["image", "image"]


def test_mastodon_announce_like_follow_block() -> None:
    announce = parse_activity(load("mastodon_announce.json"))
    assert (announce.type, announce.object) == (
        "Announce", "https://easel.test/users/alice/statuses/7190000000000000001")
    assert announce.to == (PUBLIC,)
    assert announce.cc == ("https://easel.test/users/alice", "https://mastodon.example/users/carol/followers")
    like = parse_activity(load("mastodon_like.json"))
    assert (like.id, like.type, like.actor, like.object_id) == (
        "https://mastodon.example/users/carol#likes/98765", "Like",
        "https://mastodon.example/users/carol", "https://easel.test/users/alice/statuses/7190000000000000001")
    follow = parse_activity(load("mastodon_follow.json"))
    assert (follow.type, follow.object) == ("Follow", "https://easel.test/users/alice")
    block = parse_activity(load("mastodon_block.json"))
    assert (block.type, block.object) == ("Block", "https://easel.test/users/mallory")


def test_mastodon_accept_and_undo_keep_the_embedded_follow() -> None:
    accept = parse_activity(load("mastodon_accept_follow.json"))
    assert accept.type == "Accept"
    assert accept.object_id == "https://easel.test/follows/7190000000000000042"
    inner = parse_activity(accept.embedded_object)
    assert (inner.type, inner.actor, inner.object) == (
        "Follow", "https://easel.test/users/alice", "https://mastodon.example/users/carol")
    undo = parse_activity(load("mastodon_undo_follow.json"))
    assert undo.type == "Undo"
    assert undo.embedded_object is not None and undo.embedded_object["type"] == "Follow"
    assert undo.object_id == "https://mastodon.example/0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5"


@pytest.mark.parametrize("type_", ["Accept", "Reject", "Undo"])
def test_an_embedded_activity_without_an_id_is_kept_for_accept_reject_and_undo(
        type_: str) -> None:
    follow = {"type": "Follow", "actor": "https://easel.test/users/alice",
              "object": "https://r.example/a"}
    activity = parse_activity({"id": "https://r.example/1", "type": type_,
                               "actor": "https://r.example/a", "object": follow})
    assert (activity.object, activity.object_ids, activity.object_id) == (follow, (), None)
    assert activity.embedded_object == follow
    listed = parse_activity({"id": "https://r.example/2", "type": type_,
                             "actor": "https://r.example/a", "object": [follow]})
    assert (listed.object, listed.object_ids) == (follow, ())


@pytest.mark.parametrize("doc", [
    # Other activities still need an id on an embedded object…
    {"id": "https://r.example/1", "type": "Like", "actor": "https://r.example/a",
     "object": {"type": "Note", "content": "no id"}},
    {"id": "https://r.example/1", "type": "Announce", "actor": "https://r.example/a",
     "object": {"type": "Note"}},
    # … and even an Undo needs a typed object, without any id rather than a bad one.
    {"id": "https://r.example/1", "type": "Undo", "actor": "https://r.example/a",
     "object": {"actor": "https://r.example/a", "object": "https://e.test/s/1"}},
    {"id": "https://r.example/1", "type": "Undo", "actor": "https://r.example/a",
     "object": {"id": "javascript:alert(1)", "type": "Like", "object": "https://e.test/s/1"}},
    {"id": "https://r.example/1", "type": "Accept", "actor": "https://r.example/a",
     "object": {"id": 42, "type": "Follow"}},
])
def test_embedded_objects_without_a_usable_id_are_refused_elsewhere(doc: Any) -> None:
    with pytest.raises(ParseError):
        parse_activity(doc)


def test_mastodon_deletes_of_a_note_and_of_an_actor() -> None:
    note = parse_activity(load("mastodon_delete_note.json"))
    assert note.type == "Delete"
    assert note.object_id == "https://mastodon.example/users/carol/statuses/112233445566778899"
    assert note.embedded_object == {
        "id": "https://mastodon.example/users/carol/statuses/112233445566778899",
        "type": "Tombstone",
        "atomUri": "https://mastodon.example/users/carol/statuses/112233445566778899"}
    actor = parse_activity(load("mastodon_delete_actor.json"))
    assert actor.object == actor.actor == "https://mastodon.example/users/dave"


def test_mastodon_flag_names_the_account_then_the_statuses() -> None:
    flag = parse_activity(load("mastodon_flag.json"))
    assert flag.actor == "https://mastodon.example/actor"
    assert flag.object_ids == ("https://easel.test/users/mallory",
                               "https://easel.test/users/mallory/statuses/7190000000000000077")
    assert flag.content == "Reposting my artwork without credit"


def test_mastodon_update_person() -> None:
    update = parse_activity(load("mastodon_update_person.json"))
    assert update.type == "Update"
    actor = parse_actor(update.embedded_object)
    assert actor.id == "https://mastodon.example/users/carol"
    assert actor.type == "Person"
    assert actor.username == "carol"
    assert actor.domain == "mastodon.example"
    assert actor.name == "Carol Ink 🖋"
    assert actor.summary == "<p>Illustrator. Herons, mostly.</p>"
    assert actor.url == "https://mastodon.example/@carol"
    assert actor.inbox == "https://mastodon.example/users/carol/inbox"
    assert actor.outbox == "https://mastodon.example/users/carol/outbox"
    assert actor.shared_inbox == "https://mastodon.example/inbox"
    assert actor.followers == "https://mastodon.example/users/carol/followers"
    assert actor.following == "https://mastodon.example/users/carol/following"
    assert actor.featured == "https://mastodon.example/users/carol/collections/featured"
    assert actor.manually_approves_followers is True
    assert actor.discoverable is True
    assert actor.indexable is False
    assert actor.avatar_url == "https://files.mastodon.example/accounts/avatars/109/000/001/original/avatar.png"
    assert actor.header_url == "https://files.mastodon.example/accounts/headers/109/000/001/original/header.jpg"
    assert actor.public_key is not None
    assert actor.public_key.id == "https://mastodon.example/users/carol#main-key"
    assert actor.public_key.owner == actor.id
    assert actor.public_key.pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert actor.published == datetime(2022, 11, 7, tzinfo=UTC)
    assert actor.also_known_as == ("https://old.example/users/carol",)
    assert actor.moved_to is None
    assert [f.name for f in actor.fields] == ["Shop", "Pronouns"]
    assert actor.fields[0].value == (
        '<a href="https://shop.example/carol" translate="no" target="_blank" '
        'rel="nofollow noopener noreferrer"><span class="invisible">https://</span>'
        '<span class="">shop.example/carol</span><span class="invisible"></span></a>')
    assert actor.fields[1].value == "she/her"


def test_gotosocial_note_unlisted_with_image_and_content_warning() -> None:
    note = note_of("gotosocial_create_note.json")
    assert note.visibility == "unlisted"
    assert note.to == ("https://gts.example/users/erin/followers",)
    assert note.sensitive is True
    assert note.summary == "eye contact"
    assert note.url == "https://gts.example/@erin/statuses/01HX5Z7Q9K3M2N4P6R8T0V2W4Y"
    assert note.hashtags == (RemoteHashtag("watercolour", "watercolour", "https://gts.example/tags/watercolour"),)
    assert note.attachments == (RemoteAttachment(
        type="Image", media_type="image/jpeg",
        url="https://gts.example/fileserver/01HX5Z00ACCOUNT/attachment/original/01HX5Z11MEDIA.jpeg",
        description="A watercolour portrait, the subject looking straight at the viewer",
        blurhash="LKN]Rv%2Tw=w]~RBVZRi};RPxuwH", width=1024, height=1366, focal_point=(-0.5, 0.5)),)


def test_gotosocial_person_with_a_path_key_id_and_a_single_field() -> None:
    actor = parse_actor(load("gotosocial_person.json"))
    assert actor.public_key is not None
    assert actor.public_key.id == "https://gts.example/users/erin/main-key"
    assert actor.fields == (type(actor.fields[0])(name="should you follow me?", value="maybe!"),)
    assert actor.avatar_url == ("https://gts.example/fileserver/01HX5Z00ACCOUNT/avatar/original/"
                                "01HX5Z22AVATAR.jpeg")
    assert actor.header_url is None
    assert actor.shared_inbox is None
    assert actor.discoverable is False


def test_pixelfed_note_with_ordered_images() -> None:
    note = note_of("pixelfed_create_note.json")
    assert note.visibility == "public"
    assert note.url == "https://pixelfed.example/p/frank/701234567890123456"
    assert note.published == datetime(2024, 5, 5, 9, 15, 42, tzinfo=UTC)
    assert [a.url for a in note.attachments] == [
        "https://pixelfed.example/storage/m/_v2/7012/abc/def/harbour1.jpg",
        "https://pixelfed.example/storage/m/_v2/7012/abc/def/harbour2.jpg"]
    assert [a.description for a in note.attachments] == [
        "Boats moored in a calm harbour at sunrise", "Close-up of a rope coiled on the quay"]
    assert [a.type for a in note.attachments] == ["Image", "Image"]
    assert [(t.name, t.key) for t in note.hashtags] == [("photography", "photography"),
                                                       ("Harbour", "harbour")]
    # Pixelfed's hashtag links keep their classes that we allow, lose the rest.
    assert 'class="u-url hashtag"' in note.content
    assert "title=" not in note.content


def test_misskey_note_with_single_tag_object_and_nameless_document() -> None:
    note = note_of("misskey_create_note.json")
    assert note.visibility == "public"
    assert note.sensitive is True
    assert note.text == "today's doodle #oekaki"
    assert note.hashtags == (RemoteHashtag("oekaki", "oekaki", "https://misskey.example/tags/oekaki"),)
    assert note.attachments == (RemoteAttachment(
        type="Document", media_type="image/webp",
        url="https://misskey.example/files/webpublic-5c4b3a29-1d2e-4f50-8a6b-7c8d9e0f1a2b",
        description="", blurhash=None, width=None, height=None, focal_point=None),)
    assert note.published == datetime(2024, 5, 6, 1, 2, 3, 456000, tzinfo=UTC)


def test_misskey_source_is_the_fallback_when_content_is_missing() -> None:
    doc = load("misskey_create_note.json")["object"]
    del doc["content"]
    assert parse_note(doc).content == "<p>today's doodle #oekaki</p>"
    del doc["source"]
    doc["_misskey_content"] = "<b>not html</b>"
    assert parse_note(doc).content == "<p>&lt;b&gt;not html&lt;/b&gt;</p>"


def test_minimal_server_single_values_and_short_public() -> None:
    activity = parse_activity(load("minimal_create_note.json"))
    assert activity.to == (PUBLIC,)
    assert activity.cc == ()
    note = parse_note(activity.embedded_object)
    assert note.visibility == "public"
    assert note.to == (PUBLIC,)
    assert note.content == "hello from a very small server"
    assert note.published is None
    assert note.url is None
    assert note.attachments == (RemoteAttachment(
        type="Image", media_type=None, url="https://tiny.example/media/cat.png",
        description="a cat asleep on a keyboard", blurhash=None, width=None, height=None,
        focal_point=None),)
    assert note.attachments[0].kind == "image"


def test_peertube_video_keeps_its_type_title_and_page() -> None:
    note = note_of("peertube_create_video.json")
    assert note.type == "Video"
    assert note.name == "Timelapse: painting a fox in gouache"
    assert note.attributed_to == "https://peertube.example/accounts/grace"
    assert note.url == "https://peertube.example/w/aBcDeFgHiJkLmN"
    # Markdown is taken as text: escaped, never interpreted as HTML.
    assert note.content == "<p>Twelve minutes of **gouache** on cold-press paper.</p>"
    assert [t.name for t in note.hashtags] == ["gouache", "timelapse"]
    assert [t.href for t in note.hashtags] == [None, None]
    assert note.updated == datetime(2024, 5, 7, 18, 5, tzinfo=UTC)
    assert note.attachments == ()


# ------------------------------------------------------------------------- visibility

@pytest.mark.parametrize(("to", "cc", "expected"), [
    ([PUBLIC], [], "public"),
    ("as:Public", None, "public"),
    (["Public"], [], "public"),
    (["https://r.example/users/a/followers"], [PUBLIC], "unlisted"),
    (["https://r.example/users/a/followers"], "as:Public", "unlisted"),
    (["https://r.example/users/a/followers"], ["https://easel.test/users/alice"], "private"),
    ("https://r.example/users/a/followers", None, "private"),
    (["https://easel.test/users/alice"], [], "direct"),
    ([], [], "direct"),
    # Followers only in cc is not followers-only (Mastodon's rule): limited to who is named.
    (["https://easel.test/users/alice"], ["https://r.example/users/a/followers"], "direct"),
])
def test_visibility_is_derived_as_mastodon_does(to: Any, cc: Any, expected: str) -> None:
    doc = {"id": "https://r.example/notes/1", "type": "Note",
           "attributedTo": "https://r.example/users/a", "content": "x", "to": to, "cc": cc}
    assert parse_note(doc, followers_url="https://r.example/users/a/followers").visibility == expected


def test_followers_collection_may_come_from_an_embedded_author() -> None:
    doc = {"id": "https://r.example/notes/1", "type": "Note", "content": "x",
           "attributedTo": {"id": "https://r.example/users/a", "type": "Person",
                            "followers": "https://r.example/users/a/fans"},
           "to": ["https://r.example/users/a/fans"]}
    assert parse_note(doc).visibility == "private"
    doc["attributedTo"] = "https://r.example/users/a"
    assert parse_note(doc).visibility == "direct"  # unknown followers: never more visible


# ---------------------------------------------------------------------- shape variants

def base_note(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "https://r.example/notes/1", "type": "Note",
                           "attributedTo": "https://r.example/users/a", "content": "<p>x</p>",
                           "to": [PUBLIC]}
    doc.update(changes)
    return doc


def test_attachment_url_as_link_or_list_picks_the_best_image() -> None:
    links = [
        {"type": "Link", "mediaType": "text/html", "href": "https://r.example/page"},
        {"type": "Link", "mediaType": "image/jpeg", "href": "https://r.example/small.jpg", "width": 100,
         "height": 100},
        {"type": "Link", "mediaType": "image/jpeg", "href": "https://r.example/big.jpg", "width": 2000,
         "height": 1000},
    ]
    note = parse_note(base_note(attachment=[
        {"type": "Image", "url": links},
        {"type": "Document", "url": {"type": "Link", "href": "https://r.example/one.png",
                                     "mediaType": "image/png"}},
        {"type": "Image", "url": "javascript:alert(1)"},
        {"type": "Image", "url": [{"type": "Link", "href": "data:image/png;base64,AAAA"}]},
    ]))
    assert [(a.url, a.media_type) for a in note.attachments] == [
        ("https://r.example/big.jpg", "image/jpeg"), ("https://r.example/one.png", "image/png")]


def test_alt_text_from_summary_when_name_is_absent_and_markup_is_removed() -> None:
    note = parse_note(base_note(attachment=[
        {"type": "Image", "url": "https://r.example/a.jpg", "summary": "old GoToSocial alt"},
        {"type": "Image", "url": "https://r.example/b.jpg", "name": "<b>bold</b> <script>x()</script>alt"},
    ]))
    assert [a.description for a in note.attachments] == ["old GoToSocial alt", "bold alt"]


LEMMY_IMAGE = "https://lemmy.example/pictrs/image/eOtYb9iEiB.png"


def lemmy_page(**changes: Any) -> dict[str, Any]:
    """A Lemmy post (its assets/lemmy/objects/page.json): its link is a ``Link``
    attachment, its image (the picture, or a link's thumbnail) in ``image``."""
    doc: dict[str, Any] = {
        "id": "https://lemmy.example/post/55143", "type": "Page",
        "attributedTo": "https://lemmy.example/u/picard",
        "to": ["https://lemmy.example/c/tenforward", PUBLIC], "name": "Post title",
        "content": "<p>This is a post in the /c/tenforward community</p>\n",
        "mediaType": "text/html",
        "attachment": [{"type": "Link", "href": LEMMY_IMAGE}],
        "image": {"type": "Image", "url": LEMMY_IMAGE}, "sensitive": False}
    doc.update(changes)
    return doc


def test_a_lemmy_image_post_has_its_link_attachment_as_an_image() -> None:
    note = parse_note(lemmy_page())
    assert note.type == "Page" and note.is_converted
    assert note.attachments == (RemoteAttachment(
        type="Image", media_type="image/png", url=LEMMY_IMAGE, description="", blurhash=None,
        width=None, height=None, focal_point=None),)
    assert note.attachments[0].kind == "image" and note.links == ()
    # An image link without an extension: by its mediaType, or because it is the image.
    bare = "https://lemmy.example/pictrs/image/abc123"
    for attachment, image in (({"type": "Link", "href": bare, "mediaType": "image/jpeg"}, None),
                              ({"type": "Link", "href": bare}, {"type": "Image", "url": bare})):
        [found] = parse_note(lemmy_page(attachment=[attachment], image=image)).attachments
        assert found.url == bare and found.kind == "image"


def test_a_lemmy_link_post_keeps_its_link_and_not_the_thumbnail() -> None:
    note = parse_note(lemmy_page(
        content=None,
        attachment=[{"type": "Link", "href": "https://news.example/story"},
                    {"type": "Link", "href": "https://news.example/page.html",
                     "mediaType": "text/html"},
                    {"type": "Link", "href": "https://news.example/story"}],   # a repeat
        image={"type": "Image", "url": "https://lemmy.example/pictrs/image/thumb.jpg"}))
    assert note.links == ("https://news.example/story", "https://news.example/page.html")
    assert note.attachments == ()  # the thumbnail is the link's preview, not a picture


def test_an_image_is_the_attachment_of_a_converted_object_without_any() -> None:
    note = parse_note(lemmy_page(attachment=None, image=[
        {"type": "Image", "url": "https://lemmy.example/pictrs/image/only.webp", "name": "a fox"}]))
    assert [(a.url, a.media_type, a.description) for a in note.attachments] == [
        ("https://lemmy.example/pictrs/image/only.webp", "image/webp", "a fox")]
    # A Note's ``image`` is not one of its pictures.
    assert parse_note(base_note(image={"type": "Image", "url": LEMMY_IMAGE})).attachments == ()


@pytest.mark.parametrize("attachment", [
    {"type": "Link"},                                   # no href
    {"type": "Link", "href": None},
    {"type": "Link", "href": ["not", "a", "link"]},
    {"type": "Link", "href": "javascript:alert(1)"},
    {"type": "Link", "href": "ftp://lemmy.example/a.png"},
    {"type": "Link", "href": "/pictrs/image/relative.png"},
    {"type": "Link", "href": "https://lemmy.example/a b.png"},
    {"type": "Link", "href": {"type": "Link", "href": {"href": "https://x.example/deep.png"}}},
])
def test_unusable_link_attachments_and_images_are_dropped(attachment: dict[str, Any]) -> None:
    for image in (None, {"type": "Image", "url": "data:image/png;base64,AAAA"},
                  {"type": "Image", "url": "file:///etc/passwd"}, "javascript:alert(1)", 5):
        note = parse_note(lemmy_page(attachment=[attachment], image=image))
        assert note.attachments == () and note.links == ()


def test_link_attachments_are_bounded() -> None:
    links = [{"type": "Link", "href": f"https://news.example/{i}"} for i in range(10_000)]
    images = [{"type": "Link", "href": f"https://lemmy.example/{i}.jpg"} for i in range(10_000)]
    note = parse_note(lemmy_page(attachment=links))
    assert len(note.links) == MAX_ATTACHMENTS and note.links[0] == "https://news.example/0"
    assert len(parse_note(lemmy_page(attachment=images)).attachments) == MAX_ATTACHMENTS


def test_tags_in_every_spelling() -> None:
    note = parse_note(base_note(tag=[
        {"type": "Hashtag", "name": "#Art", "href": "https://r.example/tags/art"},
        {"type": "Hashtag", "name": "art"},                 # a repeat once normalised
        {"type": "Hashtag", "name": "ＡＲＴ２"},             # full-width: NFKC
        {"type": "Hashtag", "name": "#bad tag"},            # not a hashtag
        {"type": "Hashtag", "name": "#<script>"},
        {"type": "Hashtag", "name": 5},
        {"type": "Mention", "href": "https://r.example/users/b", "name": "@b@r.example"},
        {"type": "Mention", "href": "https://r.example/users/b"},  # repeat
        {"type": "Mention", "href": "javascript:alert(1)"},
        {"type": "Emoji", "name": ":blob:", "icon": {"url": "https://r.example/blob.png"}},
        "https://r.example/tags/loose-string",
    ]))
    assert note.hashtags == (RemoteHashtag("Art", "art", "https://r.example/tags/art"),
                             RemoteHashtag("ＡＲＴ２", "art2", None))
    assert note.mentions == (RemoteMention("https://r.example/users/b", "@b@r.example"),)


def test_content_map_is_a_fallback_and_gives_the_language() -> None:
    note = parse_note(base_note(content=None, contentMap={"de": "<p>Hallo</p>"}))
    assert (note.language, note.content) == ("de", "<p>Hallo</p>")
    note = parse_note(base_note(contentMap={"not a language!": "x", "fr": "<p>y</p>"}))
    assert (note.language, note.content) == ("fr", "<p>x</p>")


def test_in_reply_to_and_attributed_to_as_objects_or_lists() -> None:
    note = parse_note(base_note(
        inReplyTo={"id": "https://o.example/notes/9", "type": "Note"},
        attributedTo=[{"type": "Person", "id": "https://r.example/users/a"}, "https://r.example/g"]))
    assert note.in_reply_to == "https://o.example/notes/9"
    assert note.attributed_to == "https://r.example/users/a"


def test_actor_urls_and_icons_in_every_shape() -> None:
    doc = load("mastodon_update_person.json")["object"]
    doc["url"] = [{"type": "Link", "href": "https://mastodon.example/@carol", "mediaType": "text/html"}]
    doc["icon"] = [{"type": "Image", "url": "https://x.example/a.png"},
                   {"type": "Image", "url": "https://x.example/b.png"}]
    doc["image"] = "https://x.example/header.jpg"
    actor = parse_actor(doc)
    assert actor.url == "https://mastodon.example/@carol"
    assert actor.avatar_url == "https://x.example/a.png"
    assert actor.header_url == "https://x.example/header.jpg"


def test_actor_public_key_is_the_one_the_actor_owns() -> None:
    doc = load("mastodon_update_person.json")["object"]
    pem = doc["publicKey"]["publicKeyPem"]
    other = {"id": "https://evil.example/key", "owner": "https://evil.example/users/x", "publicKeyPem": "P"}
    doc["publicKey"] = [other, {"id": "https://mastodon.example/users/carol#k2",
                                "owner": "https://mastodon.example/users/carol", "publicKeyPem": pem}]
    assert parse_actor(doc).public_key is not None
    assert parse_actor(doc).public_key.id == "https://mastodon.example/users/carol#k2"  # type: ignore[union-attr]
    doc["publicKey"] = other
    assert parse_actor(doc).public_key is None
    doc["publicKey"] = {"id": "https://mastodon.example/users/carol#main-key", "publicKeyPem": pem}
    assert parse_actor(doc).public_key is not None  # no owner, but the key's document is the actor
    doc["publicKey"] = {"id": "https://mastodon.example/users/carol#main-key", "publicKeyPem": 7}
    assert parse_actor(doc).public_key is None


def test_actor_moved_to() -> None:
    doc = load("mastodon_update_person.json")["object"]
    doc["movedTo"] = "https://new.example/users/carol"
    assert parse_actor(doc).moved_to == "https://new.example/users/carol"


# ------------------------------------------------------------------------------- XSS

def test_xss_in_content_summary_names_and_fields_is_neutralised() -> None:
    attack = '<script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:alert(3)">x</a>'
    note = parse_note(base_note(
        content=f"<p>{attack}</p>", summary=f"cw {attack}", name=f"title {attack}",
        attachment=[{"type": "Image", "url": "https://r.example/a.jpg", "name": f"alt {attack}"}]))
    for text in (note.content, note.summary, note.name, note.attachments[0].description):
        assert "<script" not in text and "onerror" not in text and "javascript:" not in text
        assert "alert(1)" not in text
    assert note.summary == "cw x"
    doc = load("mastodon_update_person.json")["object"]
    doc["name"] = f"Carol {attack}"
    doc["summary"] = f"<p onmouseover='alert(4)'>bio</p>{attack}"
    doc["attachment"] = [{"type": "PropertyValue", "name": f"<b>n</b>{attack}", "value": attack}]
    actor = parse_actor(doc)
    assert actor.name == "Carol x"
    assert actor.summary == '<p>bio</p><a target="_blank" rel="nofollow noopener noreferrer">x</a>'
    assert actor.fields[0].name == "nx"
    assert actor.fields[0].value == '<a target="_blank" rel="nofollow noopener noreferrer">x</a>'


# --------------------------------------------------------------------- hostile shapes

@pytest.mark.parametrize("doc", [
    None, [], "https://r.example/notes/1", 5, True,
    {},
    {"type": "Note", "attributedTo": "https://r.example/users/a"},                 # no id
    {"id": 5, "type": "Note", "attributedTo": "https://r.example/users/a"},
    {"id": "javascript:alert(1)", "type": "Note", "attributedTo": "https://r.example/a"},
    {"id": "/notes/1", "type": "Note", "attributedTo": "https://r.example/users/a"},
    {"id": "https://r.example/notes/1", "type": "Person", "attributedTo": "https://r.example/a"},
    {"id": "https://r.example/notes/1", "type": ["Evil"], "attributedTo": "https://r.example/a"},
    {"id": "https://r.example/notes/1", "type": None, "attributedTo": "https://r.example/a"},
    {"id": "https://r.example/notes/1", "type": "Note"},                           # no author
    {"id": "https://r.example/notes/1", "type": "Note", "attributedTo": {"name": "x"}},
    {"id": "https://r.example/notes/1", "type": "Note", "attributedTo": [[["https://r.example/a"]]]},
    {"id": "https://" + "a" * 3000 + ".example/", "type": "Note", "attributedTo": "https://r.example/a"},
])
def test_unusable_notes_raise_parse_error(doc: Any) -> None:
    with pytest.raises(ParseError) as caught:
        parse_note(doc)
    assert caught.value.reason


@pytest.mark.parametrize("changes", [
    {"id": None}, {"type": "Note"}, {"type": ["Person", "x"], "preferredUsername": None},
    {"preferredUsername": ""}, {"preferredUsername": "a b"}, {"preferredUsername": "x" * 300},
    {"preferredUsername": ["carol"]}, {"inbox": None}, {"inbox": "ftp://x.example/inbox"},
    {"inbox": {"no": "id"}},
])
def test_unusable_actors_raise_parse_error(changes: dict[str, Any]) -> None:
    doc = load("mastodon_update_person.json")["object"]
    doc.update(changes)
    with pytest.raises(ParseError):
        parse_actor(doc)


@pytest.mark.parametrize("doc", [
    None, [], {}, {"type": "Like", "actor": "https://r.example/a", "object": "https://e.test/s/1"},
    {"id": "https://r.example/1", "actor": "https://r.example/a", "object": "https://e.test/s/1"},
    {"id": "https://r.example/1", "type": "Like", "object": "https://e.test/s/1"},
    {"id": "https://r.example/1", "type": "Like", "actor": {"no": "id"}, "object": "https://e.test/s/1"},
    {"id": "https://r.example/1", "type": "Like", "actor": "https://r.example/a"},
    {"id": "https://r.example/1", "type": "Create", "actor": "https://r.example/a",
     "object": {"type": "Note", "content": "no id"}},
    {"id": "https://r.example/1", "type": "Follow", "actor": "https://r.example/a", "object": 42},
    {"id": "https://r.example/1", "type": "Undo", "actor": "https://r.example/a", "object": []},
])
def test_unusable_activities_raise_parse_error(doc: Any) -> None:
    with pytest.raises(ParseError):
        parse_activity(doc)


def test_unknown_activity_types_parse_without_an_object() -> None:
    activity = parse_activity({"id": "https://r.example/1", "type": "Wave",
                               "actor": "https://r.example/a", "unknown": {"deep": [1, 2]}})
    assert (activity.type, activity.object, activity.object_ids) == ("Wave", None, ())


def test_wrong_types_everywhere_are_ignored_not_crashed_on() -> None:
    garbage: list[Any] = [None, 1, 1.5, True, "x", [], {}, [[]], {"a": {"b": [None]}}, [1, "x", {}]]
    fields = ["content", "contentMap", "summary", "name", "sensitive", "published", "updated",
              "inReplyTo", "url", "to", "cc", "tag", "attachment", "conversation", "mediaType",
              "source", "_misskey_content"]
    for field in fields:
        for value in garbage:
            note = parse_note(base_note(**{field: value}))
            assert note.id == "https://r.example/notes/1"
    for value in garbage:
        note = parse_note(base_note(attachment=[{"type": "Image", "url": "https://r.example/a.jpg",
                                                 "name": value, "summary": value, "blurhash": value,
                                                 "width": value, "height": value, "focalPoint": value,
                                                 "mediaType": value}]))
        attachment = note.attachments[0]
        assert attachment.width in (None, 1) and attachment.focal_point is None
    actor_fields = ["name", "summary", "url", "outbox", "endpoints", "followers", "icon", "image",
                    "publicKey", "published", "attachment", "movedTo", "alsoKnownAs",
                    "manuallyApprovesFollowers", "discoverable"]
    for field in actor_fields:
        for value in garbage:
            doc = load("gotosocial_person.json")
            doc[field] = value
            assert parse_actor(doc).id == "https://gts.example/users/erin"
    for field in ["to", "cc", "target", "published", "content"]:
        for value in garbage:
            parse_activity({"id": "https://r.example/1", "type": "Like", "actor": "https://r.example/a",
                            "object": "https://e.test/s/1", field: value})


def test_bad_numbers_and_strings_in_attachments_are_dropped() -> None:
    note = parse_note(base_note(attachment=[{
        "type": "Image", "url": "https://r.example/a.jpg", "width": -5, "height": 10**12,
        "focalPoint": [float("nan"), 0.0], "blurhash": "<script>", "mediaType": "image/<evil>"}]))
    attachment = note.attachments[0]
    assert (attachment.width, attachment.height, attachment.focal_point, attachment.blurhash,
            attachment.media_type) == (None, None, None, None, None)
    assert parse_note(base_note(attachment=[{"type": "Image", "url": "https://r.example/a.jpg",
                                             "focalPoint": [2.0, 0.0]}])).attachments[0].focal_point is None


def test_huge_documents_are_bounded() -> None:
    many_attachments = [{"type": "Image", "url": f"https://r.example/{i}.jpg"} for i in range(10_000)]
    many_tags = [{"type": "Hashtag", "name": f"#tag{i}"} for i in range(10_000)]
    many_tags += [{"type": "Mention", "href": f"https://r.example/users/{i}"} for i in range(10_000)]
    many_addresses = [f"https://r.example/users/{i}" for i in range(100_000)]
    note = parse_note(base_note(
        content="<p>" + "a" * 5_000_000 + "</p>", summary="s" * 1_000_000, name="n" * 1_000_000,
        attachment=many_attachments, tag=many_tags, to=many_addresses, cc=many_addresses))
    assert len(note.attachments) == MAX_ATTACHMENTS
    assert [a.url for a in note.attachments][:2] == ["https://r.example/0.jpg", "https://r.example/1.jpg"]
    assert len(note.hashtags) <= MAX_TAGS
    assert len(note.mentions) <= MAX_TAGS
    assert len(note.to) <= 256 and len(note.cc) <= 256
    assert len(note.content) <= 100_010
    assert len(note.summary) <= 5_000 and len(note.name) <= 1_000
    actor_doc = load("gotosocial_person.json")
    actor_doc["attachment"] = [{"type": "PropertyValue", "name": "n", "value": "v" * 100_000}] * 10_000
    actor_doc["publicKey"] = [{"id": "https://x.example/k", "owner": "https://x.example/u",
                               "publicKeyPem": "P"}] * 100_000
    actor_doc["alsoKnownAs"] = many_addresses
    actor = parse_actor(actor_doc)
    assert len(actor.fields) == 16 and len(actor.fields[0].value) <= 2_048
    assert actor.public_key is None
    assert len(actor.also_known_as) <= 256


def test_deeply_nested_garbage_does_not_recurse() -> None:
    nested: Any = "https://r.example/users/a"
    for _ in range(10_000):
        nested = [nested]
    doc = base_note(attributedTo="https://r.example/users/a", to=nested, cc=nested, tag=nested,
                    attachment=nested, inReplyTo=nested, url=nested)
    note = parse_note(doc)
    assert note.to == () and note.attachments == () and note.in_reply_to is None
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(10_000):
        cursor["url"] = {}
        cursor = cursor["url"]
    assert parse_note(base_note(attachment=[{"type": "Image", "url": deep}])).attachments == ()


def test_parsing_never_mutates_its_input() -> None:
    doc = load("mastodon_create_note.json")
    before = copy.deepcopy(doc)
    parse_note(parse_activity(doc).embedded_object)
    assert doc == before


# --------------------------------------------------------------------------- helpers

def test_ids_of_and_first_id() -> None:
    assert ids_of("https://a.example/1") == ("https://a.example/1",)
    assert ids_of({"id": "https://a.example/1"}) == ("https://a.example/1",)
    assert ids_of(["https://a.example/1", {"id": "https://a.example/2"}, 3, None, "nope",
                   "https://a.example/1"]) == ("https://a.example/1", "https://a.example/2")
    assert ids_of(None) == () and ids_of(5) == () and ids_of({"no": "id"}) == ()
    assert first_id([None, {"id": "https://a.example/2"}]) == "https://a.example/2"
    assert first_id([]) is None


@pytest.mark.parametrize(("addressing", "expected"), [
    (PUBLIC, True), ("as:Public", True), ("Public", True), ([None, "Public"], True),
    (["https://r.example/followers"], False), (None, False), ({"id": PUBLIC}, False),
    ("https://www.w3.org/ns/activitystreams#public", False), (5, False),
])
def test_is_public(addressing: Any, expected: bool) -> None:
    assert is_public(addressing) is expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("https://a.example/x", "https://a.example/y", True),
    ("https://A.Example/x", "https://a.example:443/y", True),
    ("http://a.example/x", "http://a.example:80/y", True),
    ("https://a.example/x", "http://a.example/x", False),
    ("https://a.example/x", "https://a.example:8443/x", False),
    ("https://a.example/x", "https://b.a.example/x", False),
    ("https://a.example/x", "https://a.example.evil/x", False),
    ("https://a.example@evil.example/x", "https://a.example/x", False),
    ("https://a.example:99999/x", "https://a.example:99999/x", False),
    ("javascript:alert(1)", "javascript:alert(1)", False),
    ("/relative", "/relative", False),
    (None, "https://a.example/", False),
])
def test_same_origin(a: Any, b: Any, expected: bool) -> None:
    assert same_origin(a, b) is expected


# A timestamp that cannot be moved to UTC (out of datetime's range once the offset is
# applied), or is malformed, is dropped — never an exception: parse_activity runs on
# unauthenticated inbox bodies and search results.
@pytest.mark.parametrize("published", [
    "0001-01-01T00:00:00+01:00",   # before year 1 in UTC: OverflowError
    "9999-12-31T23:59:59-01:00",   # after year 9999 in UTC: OverflowError
    "2024-13-01T00:00:00Z",
    "2024-01-01T00:00:00+25:00",
    "yesterday at noon",
    "2024",
])
def test_an_unusable_published_is_dropped_not_raised(published: str) -> None:
    body = {"id": "https://a.example/likes/1", "type": "Like", "actor": "https://a.example/u",
            "object": "https://b.example/n", "published": published}
    assert parse_activity(body).published is None
    note = {"id": "https://a.example/notes/1", "type": "Note", "content": "hi",
            "attributedTo": "https://a.example/u", "published": published, "updated": published}
    parsed = parse_note(note)
    assert parsed.published is None and parsed.updated is None


@pytest.mark.parametrize(("published", "expected"), [
    ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ("0001-01-01T01:00:00+01:00", datetime(1, 1, 1, tzinfo=UTC)),
    ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ("2024-05-01T12:00:00-02:00", datetime(2024, 5, 1, 14, 0, tzinfo=UTC)),
])
def test_extreme_but_representable_timestamps_are_kept_in_utc(
        published: str, expected: datetime) -> None:
    body = {"id": "https://a.example/likes/1", "type": "Like", "actor": "https://a.example/u",
            "object": "https://b.example/n", "published": published}
    assert parse_activity(body).published == expected
