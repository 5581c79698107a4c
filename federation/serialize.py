"""Database models → ActivityStreams JSON. Easel's own terms travel in an inline context.

Every document Easel sends or serves is built here, by a named pure function of models
(and the ``Urls``/``Storage`` that say where things live): actors, Notes, the activities
that wrap them, Tombstones and collection pages. The shapes follow what Mastodon sends,
because that is what the rest of the fediverse reads best.

Documents reference only the ActivityStreams and security context URLs; everything else
is defined inline (``INLINE_CONTEXT``), so no reader ever has to fetch a context from us or
anyone else. New Easel terms (portfolio data, opt-out) are added to ``INLINE_CONTEXT``
under the ``easel:`` namespace, never as another remote context URL.

A work's portfolio data (title, description, year, dimensions, its tags by vocabulary) is
the Note's ``portfolio`` object; every portfolio tag is also an ordinary ``Hashtag`` in
``tag`` (and a link in ``content``), so servers that ignore the extension still show it.
Actors and Notes say "not for AI training" as FEP-5e53's ``xRobotsTag`` and as Easel's
``dataMining`` (the IPTC PLUS DataMining URI). Nothing in any document says whether an
image was perturbed: that is private to its owner.

These functions never do I/O, never read a clock (times come from the models or the
caller), and never put a private original's URL or a private key into a document.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from federation.content_types import AS2_CONTEXT, PUBLIC, SECURITY_CONTEXT
from protect.optout_metadata import DMI_VOCABULARY, PROHIBITS_AI_TRAINING, effective_data_mining
from server.models import Account, MediaAttachment, MediaState, Status, Tag
from server.services.portfolio import WorkView
from server.services.text import linkify_line, plain_to_html
from server.storage import Storage
from server.urls import Urls

EASEL_NS = "https://easel.social/ns#"
# FEP-5e53 names no namespace of its own; its term is given the FEPs' w3id.org IRI. Readers
# go by the plain key, ``xRobotsTag``.
FEP_5E53_X_ROBOTS_TAG = "https://w3id.org/fep/5e53#xRobotsTag"

# IPTC PLUS DataMining values are URIs in this vocabulary.
PLUS_VOCAB = DMI_VOCABULARY
# The X-Robots-Tag value of an opt-out from AI training (as served over HTTP).
NO_AI = "noai, noimageai"

# Portfolio vocabulary (``server.models.portfolio.TAG_KINDS``) → its list in ``portfolio``.
PORTFOLIO_TERMS = {
    "field": "fields",
    "medium": "mediums",
    "project_type": "projectTypes",
    "category": "categories",
    "software": "software",
}

Document = dict[str, Any]

# One inline context for every document. Add terms here; never add a context URL.
INLINE_CONTEXT: dict[str, Any] = {
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "sensitive": "as:sensitive",
    "Hashtag": "as:Hashtag",
    "movedTo": {"@id": "as:movedTo", "@type": "@id"},
    "alsoKnownAs": {"@id": "as:alsoKnownAs", "@type": "@id"},
    "toot": "http://joinmastodon.org/ns#",
    "featured": {"@id": "toot:featured", "@type": "@id"},
    "featuredTags": {"@id": "toot:featuredTags", "@type": "@id"},
    "discoverable": "toot:discoverable",
    "votersCount": "toot:votersCount",
    "indexable": "toot:indexable",
    "blurhash": "toot:blurhash",
    "focalPoint": {"@container": "@list", "@id": "toot:focalPoint"},
    "schema": "http://schema.org#",
    "PropertyValue": "schema:PropertyValue",
    "value": "schema:value",
    "ostatus": "http://ostatus.org#",
    "atomUri": "ostatus:atomUri",
    "conversation": "ostatus:conversation",
    "easel": EASEL_NS,
    # FEP-5e53 opt-out preference signal, as an X-Robots-Tag value ("noai, noimageai").
    "xRobotsTag": FEP_5E53_X_ROBOTS_TAG,
    # The IPTC PLUS DataMining value (a http://ns.useplus.org/ldf/vocab/DMI-… URI).
    "dataMining": {"@id": "easel:dataMining", "@type": "@id"},
    # A work's portfolio data (see FEDERATION.md, "Easel's extensions").
    "portfolio": "easel:portfolio",
    "PortfolioWork": "easel:PortfolioWork",
    "title": "easel:title",
    "description": "easel:description",
    "year": "easel:year",
    "dimensions": "easel:dimensions",
    "aiGenerated": "easel:aiGenerated",
    "fields": {"@id": "easel:fields", "@container": "@list"},
    "mediums": {"@id": "easel:mediums", "@container": "@list"},
    "projectTypes": {"@id": "easel:projectTypes", "@container": "@list"},
    "categories": {"@id": "easel:categories", "@container": "@list"},
    "software": {"@id": "easel:software", "@container": "@list"},
    "hashtag": "easel:hashtag",
}

ACTOR_CONTEXT: list[Any] = [AS2_CONTEXT, SECURITY_CONTEXT, INLINE_CONTEXT]

# The only context URLs an Easel document may name.
PERMITTED_CONTEXT_URLS = frozenset({AS2_CONTEXT, SECURITY_CONTEXT})

_MEDIA_TYPES = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp",
    "gif": "image/gif", "avif": "image/avif", "mp4": "video/mp4", "webm": "video/webm",
    "mp3": "audio/mpeg", "ogg": "audio/ogg",
}


def context(*, security: bool = False) -> list[Any]:
    """The ``@context`` of an Easel document; with the security URL where keys appear."""
    urls: list[Any] = [AS2_CONTEXT, SECURITY_CONTEXT] if security else [AS2_CONTEXT]
    return [*urls, copy.deepcopy(INLINE_CONTEXT)]


def rfc3339(moment: datetime) -> str:
    """``2024-05-01T10:00:00Z``: UTC, whole seconds (naive datetimes are taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _embedded(document: Document) -> Document:
    """A copy of ``document`` fit to sit inside another: no ``@context`` of its own."""
    inner = copy.deepcopy(document)
    inner.pop("@context", None)
    return inner


def _unique(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    result = []
    for value in values:
        if value and value not in seen:
            seen.add(value)
            result.append(value)
    return result


# ------------------------------------------------------------------------------ opt-out

def _opt_out(account: Account) -> Document:
    """The opt-out terms of a local account's documents (actor and Notes): its artist's
    PLUS DataMining choice, else the instance default (``protect.optout_metadata``, the
    same value the image files carry), and ``xRobotsTag`` when that prohibits AI
    training (every ``DMI-PROHIBITED…`` value)."""
    data_mining = effective_data_mining(account)
    terms: Document = {}
    if data_mining in PROHIBITS_AI_TRAINING:
        terms["xRobotsTag"] = NO_AI
    terms["dataMining"] = data_mining
    return terms


# ------------------------------------------------------------------------------ actors

def _followers_url(account: Account, urls: Urls) -> str:
    return account.followers_url or urls.followers(account.username)


def _handle_domain(account: Account, urls: Urls) -> str:
    return account.domain or urls.domain


def account_to_actor(account: Account, urls: Urls, storage: Storage | None = None, *,
                     moved_to: str | None = None) -> Document:
    """A local account as its actor document (Person, or Application for the instance).

    With ``storage``, an uploaded avatar/header is linked; without, the defaults are.
    ``moved_to``: the uri of the account it moved to (``movedTo``)."""
    avatar = (storage.public_url(account.avatar_key) if storage is not None and account.avatar_key
              else urls.default_avatar)
    actor: Document = {
        "@context": ACTOR_CONTEXT,
        "id": account.uri,
        "type": account.actor_type,
        "preferredUsername": account.username,
        "name": account.display_name or account.username,
        # Local notes are stored as typed; the document carries HTML, as every server expects.
        "summary": plain_to_html(account.note or ""),
        "url": account.url,
        "inbox": account.inbox_url,
        "outbox": account.outbox_url,
        "manuallyApprovesFollowers": account.locked,
        "discoverable": account.discoverable,
        "indexable": account.indexable,
        "published": rfc3339(account.created_at),
        "endpoints": {"sharedInbox": account.shared_inbox_url},
        "icon": {"type": "Image", "mediaType": _media_type_of(avatar) or "image/png", "url": avatar},
        "publicKey": {
            "id": account.public_key_id,
            "owner": account.uri,
            "publicKeyPem": account.public_key_pem,
        },
    }
    if storage is not None and account.header_key:
        header = storage.public_url(account.header_key)
        actor["image"] = {"type": "Image", "mediaType": _media_type_of(header) or "image/png",
                          "url": header}
    for key, value in (
        ("followers", account.followers_url),
        ("following", account.following_url),
        ("featured", account.featured_url),
    ):
        if value:
            actor[key] = value
    if account.actor_type != "Application":  # the instance actor posts nothing
        actor["featuredTags"] = urls.featured_tags(account.username)
        actor.update(_opt_out(account))
    aliases = [uri for uri in (account.also_known_as or []) if isinstance(uri, str)]
    if aliases:
        actor["alsoKnownAs"] = aliases
    if moved_to:
        actor["movedTo"] = moved_to
    fields = [field for field in (account.fields or []) if isinstance(field, dict)]
    if fields:
        actor["attachment"] = [
            {"type": "PropertyValue", "name": str(field.get("name", "")),
             "value": linkify_line(str(field.get("value", "")))}
            for field in fields
        ]
    if account.suspended_at is not None:  # Mastodon's suspended actor: the bare identity
        for key in ("icon", "image", "attachment", "featured", "featuredTags", "alsoKnownAs"):
            actor.pop(key, None)
        actor.update(name="", summary="", suspended=True)
    return actor


def update_actor_activity(account: Account, urls: Urls, *, at: datetime,
                          storage: Storage | None = None, moved_to: str | None = None) -> Document:
    """``Update`` of a local actor (profile edit, new key, aliases), addressed to the public."""
    actor = account_to_actor(account, urls, storage, moved_to=moved_to)
    return {
        "@context": context(security=True),
        "id": f"{account.uri}#updates/{int(at.timestamp())}",
        "type": "Update",
        "actor": account.uri,
        "to": [PUBLIC],
        "object": _embedded(actor),
    }


# ------------------------------------------------------------------------------- notes

def _media_type_of(url_or_key: str) -> str | None:
    extension = url_or_key.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    return _MEDIA_TYPES.get(extension)


def media_to_document(media: MediaAttachment, storage: Storage) -> Document | None:
    """A ready attachment as a ``Document`` (its full public rendition); None if not ready."""
    if media.state != MediaState.READY or not media.file_key:
        return None
    url = storage.public_url(media.file_key)
    fallback = {"video": "video/mp4", "gifv": "video/mp4", "audio": "audio/mpeg"}.get(
        media.type or "", "application/octet-stream")
    document: Document = {
        "type": "Document",
        "mediaType": _media_type_of(media.file_key) or fallback,
        "url": url,
        "name": media.description or None,
    }
    if media.blurhash:
        document["blurhash"] = media.blurhash
    original = (media.meta or {}).get("original") or {}
    if isinstance(original, dict):
        width, height = original.get("width"), original.get("height")
        if isinstance(width, int) and isinstance(height, int):
            document["width"], document["height"] = width, height
    if (media.type or "image") == "image":
        document["focalPoint"] = [float(media.focus_x or 0.0), float(media.focus_y or 0.0)]
    return document


def _mention_tag(account: Account, urls: Urls) -> Document:
    return {"type": "Mention", "href": account.uri,
            "name": f"@{account.username}@{_handle_domain(account, urls)}"}


def featured_tag_document(tag: Tag, account: Account, urls: Urls) -> Document:
    """A featured hashtag in the actor's ``featuredTags`` collection (Mastodon's shape: its
    ``href`` is the profile's posts with the tag)."""
    return {"type": "Hashtag", "href": urls.tagged(account.username, tag.name),
            "name": f"#{tag.display_name or tag.name}"}


def _hashtag_tag(tag: Tag, urls: Urls) -> Document:
    return {"type": "Hashtag", "href": f"{urls.base}/tags/{tag.name}",
            "name": f"#{tag.display_name or tag.name}"}


def portfolio_document(work: WorkView) -> Document:
    """A work's ``portfolio`` object: the fields that are set, and every vocabulary's
    terms in order, each as its display name and the hashtag it travels as."""
    document: Document = {"type": "PortfolioWork"}
    if work.title:
        document["title"] = work.title
    if work.description:
        document["description"] = work.description
    if work.year is not None:
        document["year"] = work.year
    if work.dimensions:
        document["dimensions"] = work.dimensions
    if work.ai_generated:
        document["aiGenerated"] = True
    for kind, term in PORTFOLIO_TERMS.items():
        items = work.tags.get(kind) or []
        if items:
            document[term] = [{"name": item.name, "hashtag": "#" + item.hashtag.lstrip("#")}
                              for item in items]
    return document


def note_audience(visibility: str, followers_url: str,
                  mentioned_uris: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(to, cc)`` for a status of ``visibility``, as Mastodon addresses it."""
    mentioned = _unique(mentioned_uris)
    if visibility == "public":
        return [PUBLIC], _unique([followers_url, *mentioned])
    if visibility == "unlisted":
        return [followers_url], _unique([PUBLIC, *mentioned])
    if visibility == "private":
        return [followers_url], mentioned
    if visibility == "direct":
        return mentioned, []
    raise ValueError(f"unknown visibility: {visibility!r}")


def status_to_note(
    status: Status,
    author: Account,
    media: Sequence[MediaAttachment],
    mentions: Sequence[Account],
    tags: Sequence[Tag],
    urls: Urls,
    storage: Storage,
    in_reply_to_uri: str | None = None,
    *,
    conversation: str | None = None,
    work: WorkView | None = None,
) -> Document:
    """A local status as a ``Note``: ``media`` in the order given (ready ones only),
    ``mentions`` the mentioned accounts, ``tags`` its hashtags (portfolio tags included),
    ``work`` its portfolio data (a ``name`` = its title too), and the author's opt-out."""
    to, cc = note_audience(status.visibility or "public", _followers_url(author, urls),
                           [account.uri for account in mentions])
    published = status.published_at or status.created_at
    note: Document = {
        "@context": context(),
        "id": status.uri,
        "type": "Note",
        "summary": status.spoiler_text or None,
        "inReplyTo": in_reply_to_uri,
        "published": rfc3339(published),
        "url": status.url or status.uri,
        "attributedTo": author.uri,
        "to": to,
        "cc": cc,
        # A moderator's "mark media sensitive" covers every note of the account.
        "sensitive": bool(status.sensitive) or author.sensitized_at is not None,
        "atomUri": status.uri,
        "content": status.content or "",
    }
    if status.language:
        note["contentMap"] = {status.language: status.content or ""}
    if status.edited_at is not None:
        note["updated"] = rfc3339(status.edited_at)
    if conversation:
        note["conversation"] = conversation
    documents = [doc for doc in (media_to_document(item, storage) for item in media) if doc]
    note["attachment"] = documents
    seen_mentions: set[str] = set()
    tag_list: list[Document] = []
    for account in mentions:
        if account.uri not in seen_mentions:
            seen_mentions.add(account.uri)
            tag_list.append(_mention_tag(account, urls))
    seen_tags: set[str] = set()
    for tag in tags:
        if tag.name not in seen_tags:
            seen_tags.add(tag.name)
            tag_list.append(_hashtag_tag(tag, urls))
    note["tag"] = tag_list
    if work is not None:
        if work.title:
            note["name"] = work.title
        note["portfolio"] = portfolio_document(work)
    note.update(_opt_out(author))
    return note


def tombstone(uri: str) -> Document:
    """What remains of a deleted object (embedded in a ``Delete``, or served with 410)."""
    return {"id": uri, "type": "Tombstone", "atomUri": uri}


# -------------------------------------------------------------------------- activities

def create_activity(note: Document) -> Document:
    """``Create`` of a Note built by :func:`status_to_note`: same author and audience."""
    return {
        "@context": context(),
        "id": f"{note['id']}/activity",
        "type": "Create",
        "actor": note["attributedTo"],
        "published": note["published"],
        "to": list(note.get("to", [])),
        "cc": list(note.get("cc", [])),
        "object": _embedded(note),
    }


def update_activity(note: Document, *, at: datetime) -> Document:
    """``Update`` of an edited Note, id unique per edit (``…#updates/<unix time>``).

    The embedded note's ``updated`` is the time of this update (Mastodon applies an
    ``Update`` only when ``updated`` is newer than the edit it already has; a note whose
    images were re-protected has no text edit to point to).
    """
    updated = rfc3339(at)
    if note.get("updated", "") < updated:
        note = {**note, "updated": updated}
    return {
        "@context": context(),
        "id": f"{note['id']}#updates/{int(at.timestamp())}",
        "type": "Update",
        "actor": note["attributedTo"],
        "published": rfc3339(at),
        "to": list(note.get("to", [])),
        "cc": list(note.get("cc", [])),
        "object": _embedded(note),
    }


def delete_activity(actor_uri: str, object_uri: str, *, to: Sequence[str] = (PUBLIC,),
                    cc: Sequence[str] = (), is_actor: bool = False) -> Document:
    """``Delete`` as Mastodon sends it: of a Note, the object is a Tombstone; of an actor
    (``is_actor``), the object is the actor's id."""
    return {
        "@context": context(),
        "id": f"{object_uri}#delete",
        "type": "Delete",
        "actor": actor_uri,
        "to": list(to),
        "cc": list(cc),
        "object": object_uri if is_actor else tombstone(object_uri),
    }


def like_activity(id: str, actor_uri: str, object_uri: str) -> Document:
    return {"@context": context(), "id": id, "type": "Like", "actor": actor_uri,
            "object": object_uri}


def announce_activity(boost: Status, booster: Account, original_uri: str,
                      original_author_uri: str, urls: Urls) -> Document:
    """``Announce`` of a boost: its id is the boost's uri (which, as in Mastodon, already
    ends in ``/activity``); public boosts go to the public, unlisted ones to the booster's
    followers; the original author is cc'd."""
    followers = _followers_url(booster, urls)
    if boost.visibility == "unlisted":
        to, cc = [followers], _unique([PUBLIC, original_author_uri])
    else:
        to, cc = [PUBLIC], _unique([original_author_uri, followers])
    return {
        "@context": context(),
        "id": boost.uri,
        "type": "Announce",
        "actor": booster.uri,
        "published": rfc3339(boost.published_at or boost.created_at),
        "to": to,
        "cc": cc,
        "object": original_uri,
    }


def follow_activity(id: str, actor_uri: str, object_uri: str) -> Document:
    return {"@context": context(), "id": id, "type": "Follow", "actor": actor_uri,
            "object": object_uri}


def _follow_reference(follow: Document | str) -> Document | str:
    """The Follow being answered: its id, or a clean embedded copy of the one received."""
    if isinstance(follow, str):
        return follow
    reference: Document = {"type": "Follow"}
    for key in ("id", "actor", "object"):
        value = follow.get(key)
        if isinstance(value, dict):
            value = value.get("id")
        if isinstance(value, str):
            reference[key] = value
    return reference


def accept_activity(id: str, actor_uri: str, follow: Document | str) -> Document:
    """``Accept`` of a Follow (``follow``: the activity as received, or its id)."""
    return {"@context": context(), "id": id, "type": "Accept", "actor": actor_uri,
            "object": _follow_reference(follow)}


def reject_activity(id: str, actor_uri: str, follow: Document | str) -> Document:
    return {"@context": context(), "id": id, "type": "Reject", "actor": actor_uri,
            "object": _follow_reference(follow)}


def undo_activity(inner: Document, id: str | None = None) -> Document:
    """``Undo`` of an activity Easel sent (Follow, Like, Announce, Block): same actor and
    audience; id defaults to the inner id + ``/undo``."""
    undo: Document = {
        "@context": context(),
        "id": id or f"{inner['id']}/undo",
        "type": "Undo",
        "actor": inner["actor"],
    }
    for key in ("to", "cc"):
        if key in inner:
            undo[key] = list(inner[key])
    undo["object"] = _embedded(inner)
    return undo


def move_activity(id: str, actor_uri: str, target_uri: str, followers_url: str) -> Document:
    """``Move`` of a local account to ``target_uri`` (which lists it in ``alsoKnownAs``)."""
    return {"@context": context(), "id": id, "type": "Move", "actor": actor_uri,
            "object": actor_uri, "target": target_uri, "to": [followers_url]}


def block_activity(id: str, actor_uri: str, object_uri: str) -> Document:
    return {"@context": context(), "id": id, "type": "Block", "actor": actor_uri,
            "object": object_uri}


def flag_activity(id: str, instance_actor_uri: str, account_uri: str,
                  status_uris: Sequence[str], comment: str) -> Document:
    """A report sent to the reported account's server, by the instance actor (so the
    reporter stays anonymous): object is the account, then the reported statuses."""
    return {
        "@context": context(),
        "id": id,
        "type": "Flag",
        "actor": instance_actor_uri,
        "content": comment,
        "object": _unique([account_uri, *status_uris]),
    }


# ------------------------------------------------------------------------- collections

def ordered_collection(id: str, total: int, first: str | None = None) -> Document:
    collection: Document = {"@context": context(), "id": id, "type": "OrderedCollection",
                            "totalItems": total}
    if first is not None:
        collection["first"] = first
    return collection


def ordered_collection_page(id: str, part_of: str, items: Sequence[Any],
                            next: str | None = None, prev: str | None = None) -> Document:
    """One page; ``items`` are ids or documents (embedded documents lose their context)."""
    page: Document = {
        "@context": context(),
        "id": id,
        "type": "OrderedCollectionPage",
        "partOf": part_of,
        "orderedItems": [_embedded(item) if isinstance(item, dict) else item for item in items],
    }
    if next is not None:
        page["next"] = next
    if prev is not None:
        page["prev"] = prev
    return page
