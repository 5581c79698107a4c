"""Untrusted ActivityStreams JSON → plain, validated, frozen data.

Whatever another server sends — or whoever pretends to be one — reaches the rest of Easel
only through these functions. They read the shapes real servers send (Mastodon,
GoToSocial, Pixelfed, Misskey, PeerTube, small hand-written servers): single values or
lists, ids or embedded objects, ``Public``/``as:Public``/the full IRI, alt text in
``name`` or ``summary``, ``url`` as a string, a Link or a list of Links, attachments of
type ``Link`` (Lemmy: an image by its mediaType or extension, else a link). They treat
JSON-LD as plain JSON (no context is ever fetched or expanded) and ignore unknown fields.

They never trust a shape: every value is type-checked, every URL must be absolute
``http(s)``, HTML is sanitised (``federation.sanitize``), strings and lists are capped so a
hostile document cannot make Easel store or loop over megabytes. A document missing what
Easel needs raises :class:`ParseError` with a reason; no other exception escapes.

Easel's own terms are read the same way, from any server: a work's ``portfolio`` object
(:func:`parse_work`, bounded exactly as a local artist's input is, a bad part dropped),
and the AI opt-out, FEP-5e53's ``xRobotsTag`` and ``dataMining`` (:func:`parse_robots_tag`,
:func:`parse_data_mining`), on actors and notes.

They never decide trust either: whether an activity's actor signed it, or whether an
embedded object may be believed (origin rules), is for the inbox to check — the helpers
``same_origin`` and ``ids_of`` are here for it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from federation.content_types import PUBLIC
from federation.sanitize import html_to_text, sanitize_html
from federation.serialize import PLUS_VOCAB, PORTFOLIO_TERMS
from server.services import portfolio
from server.services.text import MAX_TAG_LENGTH, normalize_tag, plain_to_html

# ------------------------------------------------------------------------------ limits

MAX_URL_LENGTH = 2048            # the URL columns' size
MAX_ID_LIST = 256                # ids read from one to/cc/alsoKnownAs/object list
MAX_CONTENT_CHARS = 100_000      # HTML read from content (before sanitising)
MAX_SUMMARY_CHARS = 5_000
MAX_NAME_CHARS = 1_000           # display names, titles
MAX_ALT_CHARS = 5_000            # attachment descriptions
MAX_USERNAME_CHARS = 255
MAX_ATTACHMENTS = 16
MAX_TAGS = 64                    # hashtags kept, and mentions kept, per object
MAX_TAG_ITEMS = 256              # tag entries looked at
MAX_URL_LINKS = 32               # Links looked at in one url/icon list
MAX_FIELDS = 16                  # profile PropertyValues kept
MAX_FIELD_NAME_CHARS = 255
MAX_FIELD_VALUE_CHARS = 2_048
MAX_KEYS = 16                    # publicKey entries looked at
MAX_PEM_CHARS = 16_384
MAX_BLURHASH_CHARS = 128
MAX_DIMENSION = 100_000
# Opt-out signals (the account and status columns' sizes).
MAX_ROBOTS_CHARS = 255
MAX_ROBOTS_TOKEN_CHARS = 64
MAX_DATA_MINING_CHARS = 128
# A work's portfolio data (Easel's ``portfolio`` term): bounded as a local author's input.
MAX_WORK_TITLE_CHARS = portfolio.MAX_TITLE
MAX_WORK_DESCRIPTION_CHARS = portfolio.MAX_DESCRIPTION
MAX_WORK_DIMENSIONS_CHARS = portfolio.MAX_DIMENSIONS
MAX_WORK_TERMS = portfolio.MAX_TERMS_PER_KIND   # terms kept per vocabulary
MAX_WORK_TERM_CHARS = portfolio.MAX_TERM_LENGTH  # longer terms are dropped, not cut
MIN_WORK_YEAR, MAX_WORK_YEAR = portfolio.MIN_YEAR, 9999

ACTOR_TYPES = frozenset({"Person", "Service", "Application", "Group", "Organization"})
NOTE_TYPES = frozenset({"Note", "Article", "Page", "Question", "Image", "Video", "Audio", "Event"})
# Mastodon's CONVERTED_TYPES: objects shown as a status though they are not one (a blog
# post, a Lemmy post, a PeerTube video): their ``summary`` is an excerpt, not a content
# warning, and the status links to the object itself.
CONVERTED_TYPES = NOTE_TYPES - {"Note", "Question"}
ATTACHMENT_TYPES = frozenset({"Document", "Image", "Video", "Audio"})
# A ``Link`` attachment (Lemmy) without a mediaType is taken for an image by its extension.
IMAGE_EXTENSIONS = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                    ".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif"}
# Activities whose meaning needs an object; others (unknown types) may come without one.
ACTIVITIES_WITH_OBJECT = frozenset({
    "Create", "Update", "Delete", "Follow", "Accept", "Reject", "Undo", "Like", "Announce",
    "Block", "Flag", "Move", "Add", "Remove", "EmojiReact",
})
# Activities whose object may be an embedded activity without an id: some servers send an
# Accept/Reject of a Follow, or an Undo of a Like/Follow/Announce, embedding it by value
# only. The handler matches such an object by its actor and object instead.
ACTIVITIES_WITH_ANONYMOUS_OBJECT = frozenset({"Accept", "Reject", "Undo"})
PUBLIC_ADDRESSES = frozenset({PUBLIC, "as:Public", "Public"})
VISIBILITIES = ("public", "unlisted", "private", "direct")

_LANGUAGE_RE = re.compile(r"\A[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3}\Z")
_BLURHASH_RE = re.compile(r"\A[0-9A-Za-z#$%*+,\-.:;=?@\[\]^_{|}~]{6,128}\Z")
_ROBOTS_TOKEN_RE = re.compile(r"\A[a-z0-9_.:/+\- ]+\Z")
_DATA_MINING_CODE_RE = re.compile(r"\ADMI(?:-[A-Z0-9]+){1,6}\Z")
_MEDIA_TYPE_RE = re.compile(r"\A[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,127}\Z")
# C0 controls, space and the characters RFC 3986 never allows unescaped in a URL.
_UNSAFE_URL_CHAR = re.compile(r'[\x00-\x20<>"\\^`{|}]')


class ParseError(ValueError):
    """The document cannot be used; ``reason`` says why (safe to log, not to show)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------------------- types

@dataclass(frozen=True)
class RemoteKey:
    id: str
    owner: str
    pem: str


@dataclass(frozen=True)
class RemoteField:
    """A profile field: ``name`` plain text, ``value`` sanitised HTML."""

    name: str
    value: str


@dataclass(frozen=True)
class RemoteActor:
    id: str
    type: str
    username: str
    name: str                       # plain text
    summary: str                    # sanitised HTML
    url: str | None
    inbox: str
    outbox: str | None
    shared_inbox: str | None
    followers: str | None
    following: str | None
    featured: str | None
    manually_approves_followers: bool
    discoverable: bool
    indexable: bool
    avatar_url: str | None
    header_url: str | None
    public_key: RemoteKey | None    # the key whose owner is this actor, if any
    published: datetime | None
    fields: tuple[RemoteField, ...]
    moved_to: str | None
    also_known_as: tuple[str, ...]
    robots: str | None = None       # FEP-5e53 xRobotsTag, sanitised ("noai, noimageai")
    data_mining: str | None = None  # a PLUS DataMining URI
    suspended: bool = False         # Mastodon's ``suspended``: its own server suspended it

    @property
    def domain(self) -> str:
        """host[:port] of the actor's id (the ``domain`` of its account row)."""
        return _netloc(self.id)


@dataclass(frozen=True)
class RemoteHashtag:
    name: str           # as written, without "#"
    key: str            # normalised (``Tag.name``)
    href: str | None


@dataclass(frozen=True)
class RemoteMention:
    href: str
    name: str           # "@user@domain" as sent ("" when absent)


@dataclass(frozen=True)
class RemoteAttachment:
    type: str           # Document, Image, Video, Audio
    media_type: str | None
    url: str
    description: str    # alt text, plain
    blurhash: str | None
    width: int | None
    height: int | None
    focal_point: tuple[float, float] | None

    @property
    def kind(self) -> str:
        """Mastodon's attachment type: image, gifv, video, audio or unknown."""
        major = (self.media_type or "").split("/", 1)[0]
        if major in ("image", "video", "audio"):
            return major
        return {"Image": "image", "Video": "video", "Audio": "audio"}.get(self.type, "unknown")


@dataclass(frozen=True)
class RemoteWork:
    """A work's portfolio data as an Easel server sent it (``portfolio``), bounded plain
    text; terms by vocabulary (``TAG_KINDS``) as display names."""

    title: str = ""
    description: str = ""
    year: int | None = None
    dimensions: str = ""
    ai_generated: bool = False
    tags: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def tags_by_kind(self) -> dict[str, list[str]]:
        return {kind: list(names) for kind, names in self.tags}


@dataclass(frozen=True)
class RemoteNote:
    id: str
    type: str
    attributed_to: str
    content: str                    # sanitised HTML
    name: str                       # plain title (Article, Video, …), "" when absent
    summary: str                    # plain text: a Note's or Question's content warning,
                                    # the excerpt of a converted type (``is_converted``)
    sensitive: bool
    published: datetime | None
    updated: datetime | None
    in_reply_to: str | None
    url: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    visibility: str                 # public, unlisted, private or direct
    hashtags: tuple[RemoteHashtag, ...]
    mentions: tuple[RemoteMention, ...]
    attachments: tuple[RemoteAttachment, ...]
    language: str | None
    conversation: str | None
    work: RemoteWork | None = None  # Easel's portfolio data, when sent
    robots: str | None = None       # FEP-5e53 xRobotsTag, sanitised
    data_mining: str | None = None  # a PLUS DataMining URI
    links: tuple[str, ...] = ()     # ``Link`` attachments that are not images (Lemmy)

    @property
    def text(self) -> str:
        return html_to_text(self.content)

    @property
    def is_converted(self) -> bool:
        """An Article, Page, Video … (:data:`CONVERTED_TYPES`), not a Note or Question."""
        return self.type in CONVERTED_TYPES


@dataclass(frozen=True)
class RemoteActivity:
    id: str
    type: str
    actor: str
    object: str | dict[str, Any] | None   # an id, or the embedded object as sent (untrusted)
    object_ids: tuple[str, ...]           # every object id (Flag sends several)
    target: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    published: datetime | None
    content: str                          # plain text (Flag's comment), "" when absent

    @property
    def object_id(self) -> str | None:
        return self.object_ids[0] if self.object_ids else None

    @property
    def embedded_object(self) -> dict[str, Any] | None:
        return self.object if isinstance(self.object, dict) else None


# ----------------------------------------------------------------------------- helpers

def _netloc(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return ""
    return f"{host}:{port}" if port is not None else host


def _valid_url(value: Any) -> str | None:
    """``value`` if it is an absolute http(s) URL of sane length, else None."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH:
        return None
    if _UNSAFE_URL_CHAR.search(value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return value


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError:
        return None
    if scheme not in ("http", "https") or not host:
        return None
    return scheme, host, port if port is not None else (443 if scheme == "https" else 80)


def same_origin(a: Any, b: Any) -> bool:
    """True when both are http(s) URLs with the same scheme, host and port (default
    ports filled in, host case-insensitive). Anything unparsable is never the same."""
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    origin_a, origin_b = _origin(a), _origin(b)
    return origin_a is not None and origin_a == origin_b


def _as_list(value: Any, limit: int) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value[:limit]
    return [value]


def _id_of(value: Any) -> str | None:
    if isinstance(value, str):
        return _valid_url(value)
    if isinstance(value, dict):
        return _valid_url(value.get("id"))
    return None


def ids_of(value: Any, limit: int = MAX_ID_LIST) -> tuple[str, ...]:
    """The ids in ``value``: a string, an object with an ``id``, or a list of those
    (at most ``limit`` looked at). Invalid entries are skipped; order kept, no repeats."""
    seen: set[str] = set()
    result: list[str] = []
    for item in _as_list(value, limit):
        found = _id_of(item)
        if found is not None and found not in seen:
            seen.add(found)
            result.append(found)
    return tuple(result)


def first_id(value: Any) -> str | None:
    found = ids_of(value, limit=MAX_ID_LIST)
    return found[0] if found else None


def _addresses(value: Any) -> tuple[str, ...]:
    """to/cc: like ``ids_of``, but the short public forms are kept and made the full IRI."""
    seen: set[str] = set()
    result: list[str] = []
    for item in _as_list(value, MAX_ID_LIST):
        if isinstance(item, dict):
            item = item.get("id")
        if not isinstance(item, str):
            continue
        address = PUBLIC if item in PUBLIC_ADDRESSES else _valid_url(item)
        if address is not None and address not in seen:
            seen.add(address)
            result.append(address)
    return tuple(result)


def is_public(addressing: Any) -> bool:
    """True when the addressing (a string or list) names the public collection in any of
    its spellings."""
    return any(isinstance(item, str) and item in PUBLIC_ADDRESSES
               for item in _as_list(addressing, MAX_ID_LIST))


def _string(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _plain(value: Any, limit: int) -> str:
    """Plain text from a field that may hold HTML (names, summaries, alt text)."""
    return html_to_text(_string(value, limit * 4))[:limit]


def _bool(value: Any, default: bool = False) -> bool:
    return value if isinstance(value, bool) else default


def _datetime(value: Any) -> datetime | None:
    """An ISO 8601 timestamp in UTC, or None for anything unusable — including one that
    cannot be moved to UTC (``0001-01-01T00:00:00+01:00``, ``9999-12-31T23:59:59-01:00``
    overflow the datetime range)."""
    if not isinstance(value, str) or not 10 <= len(value) <= 64:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError, TypeError):
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= MAX_DIMENSION else None


def _type_of(doc: dict[str, Any]) -> str | None:
    """The ``type``; a list of types (JSON-LD allows it) gives its first known string."""
    value = doc.get("type")
    if isinstance(value, str):
        return value[:64]
    for item in _as_list(value, 8):
        if isinstance(item, str):
            return item[:64]
    return None


def _require_dict(doc: Any, what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ParseError(f"{what} is not a JSON object")
    return doc


def _require_id(doc: dict[str, Any], what: str) -> str:
    found = _valid_url(doc.get("id"))
    if found is None:
        raise ParseError(f"{what} has no valid id")
    return found


def _media_type(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type if _MEDIA_TYPE_RE.match(media_type) else None


def _link_url(value: Any, *, prefer: str = "image/", depth: int = 0) -> tuple[str | None, str | None]:
    """``(url, mediaType)`` from a string, a Link/Image object or a list of them: the link
    whose mediaType starts with ``prefer`` (the largest, if sizes are given), else the
    first usable one. An Image whose url is a Link is followed one level, no deeper."""
    candidates: list[tuple[str, str | None, int]] = []
    for item in _as_list(value, MAX_URL_LINKS):
        if isinstance(item, str):
            url = _valid_url(item)
            if url is not None:
                candidates.append((url, None, 0))
        elif isinstance(item, dict):
            href = item.get("href", item.get("url"))
            if isinstance(href, (list, dict)) and depth == 0:  # an Image whose url is a Link
                href, nested_type = _link_url(href, prefer=prefer, depth=1)
            else:
                nested_type = None
            url = _valid_url(href)
            if url is not None:
                width, height = _int(item.get("width")) or 0, _int(item.get("height")) or 0
                candidates.append((url, _media_type(item.get("mediaType")) or nested_type,
                                   width * height))
    if not candidates:
        return None, None
    preferred = [c for c in candidates if c[1] is not None and c[1].startswith(prefer)]
    if preferred:
        url, media_type, _ = max(preferred, key=lambda c: c[2])  # max keeps the first of equals
        return url, media_type
    return candidates[0][0], candidates[0][1]


def _page_url(value: Any) -> str | None:
    """An object's ``url``: its HTML page where a list offers one."""
    url, _ = _link_url(value, prefer="text/html")
    return url


# ----------------------------------------------------------------------------- opt-out

def parse_robots_tag(value: Any) -> str | None:
    """FEP-5e53's ``xRobotsTag`` (a string, or a list of strings) as one X-Robots-Tag
    value: comma-separated directives, lower case, single spaces, each of the characters
    directives use (``noai``, ``noimageai``, ``googlebot: noindex``); anything else is
    dropped, and the whole fits the column. None when nothing usable is left."""
    directives: list[str] = []
    length = 0
    for item in _as_list(value, 16):
        if not isinstance(item, str):
            continue
        for raw in item[:MAX_ROBOTS_CHARS * 4].split(",")[:32]:
            directive = " ".join(raw.split()).lower()
            if not directive or len(directive) > MAX_ROBOTS_TOKEN_CHARS \
                    or not _ROBOTS_TOKEN_RE.match(directive) or directive in directives:
                continue
            added = len(directive) + (2 if directives else 0)
            if length + added > MAX_ROBOTS_CHARS:
                break
            directives.append(directive)
            length += added
    return ", ".join(directives) or None


def parse_data_mining(value: Any) -> str | None:
    """Easel's ``dataMining``: an IPTC PLUS DataMining value, as its full
    ``http://ns.useplus.org/ldf/vocab/DMI-…`` URI. The URI (http or https, or an object
    with it as ``id``), ``plus:DMI-…`` or the bare code are read; anything else is None."""
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or len(value) > MAX_DATA_MINING_CHARS:
        return None
    code = value.strip()
    for prefix in (PLUS_VOCAB, PLUS_VOCAB.replace("http://", "https://", 1), "plus:"):
        if code.startswith(prefix):
            code = code[len(prefix):]
            break
    code = code.upper()
    if not _DATA_MINING_CODE_RE.match(code) or len(PLUS_VOCAB) + len(code) > MAX_DATA_MINING_CHARS:
        return None
    return PLUS_VOCAB + code


# ------------------------------------------------------------------------------ actors

def _public_key(value: Any, actor_id: str) -> RemoteKey | None:
    for item in _as_list(value, MAX_KEYS):
        if not isinstance(item, dict):
            continue
        key_id = _valid_url(item.get("id"))
        owner = _id_of(item.get("owner")) if item.get("owner") is not None else None
        pem = item.get("publicKeyPem")
        if key_id is None or not isinstance(pem, str) or not pem.strip() \
                or len(pem) > MAX_PEM_CHARS:
            continue
        if owner is None and key_id.split("#", 1)[0] == actor_id:
            owner = actor_id  # the key's own document is the actor: owned by it
        if owner == actor_id:
            return RemoteKey(id=key_id, owner=owner, pem=pem)
    return None


def _fields(value: Any) -> tuple[RemoteField, ...]:
    fields: list[RemoteField] = []
    for item in _as_list(value, MAX_FIELDS * 4):
        if not isinstance(item, dict) or _type_of(item) != "PropertyValue":
            continue
        name = _plain(item.get("name"), MAX_FIELD_NAME_CHARS)
        raw_value = item.get("value")
        if not name or not isinstance(raw_value, str):
            continue
        fields.append(RemoteField(name=name,
                                  value=sanitize_html(raw_value[:MAX_FIELD_VALUE_CHARS])))
        if len(fields) == MAX_FIELDS:
            break
    return tuple(fields)


def parse_actor(doc: Any) -> RemoteActor:
    """An actor document (Person, Service, Application, Group, Organization)."""
    doc = _require_dict(doc, "actor")
    actor_id = _require_id(doc, "actor")
    actor_type = _type_of(doc)
    if actor_type not in ACTOR_TYPES:
        raise ParseError(f"not an actor type: {actor_type!r}")
    username = doc.get("preferredUsername")
    if not isinstance(username, str) or not username.strip() \
            or len(username) > MAX_USERNAME_CHARS or any(c.isspace() or c in "@/" for c in username):
        raise ParseError("actor has no valid preferredUsername")
    inbox = _id_of(doc.get("inbox"))
    if inbox is None:
        raise ParseError("actor has no valid inbox")
    endpoints = doc.get("endpoints")
    shared_inbox = _id_of(endpoints.get("sharedInbox")) if isinstance(endpoints, dict) else None
    avatar_url, _ = _link_url(doc.get("icon"))
    header_url, _ = _link_url(doc.get("image"))
    return RemoteActor(
        id=actor_id,
        type=actor_type,
        username=username,
        name=_plain(doc.get("name"), MAX_NAME_CHARS),
        summary=sanitize_html(_string(doc.get("summary"), MAX_CONTENT_CHARS)),
        url=_page_url(doc.get("url")),
        inbox=inbox,
        outbox=_id_of(doc.get("outbox")),
        shared_inbox=shared_inbox,
        followers=_id_of(doc.get("followers")),
        following=_id_of(doc.get("following")),
        featured=_id_of(doc.get("featured")),
        manually_approves_followers=_bool(doc.get("manuallyApprovesFollowers")),
        discoverable=_bool(doc.get("discoverable")),
        indexable=_bool(doc.get("indexable")),
        avatar_url=avatar_url,
        header_url=header_url,
        public_key=_public_key(doc.get("publicKey"), actor_id),
        published=_datetime(doc.get("published")),
        fields=_fields(doc.get("attachment")),
        moved_to=_id_of(doc.get("movedTo")),
        also_known_as=ids_of(doc.get("alsoKnownAs")),
        robots=parse_robots_tag(doc.get("xRobotsTag")),
        data_mining=parse_data_mining(doc.get("dataMining")),
        suspended=_bool(doc.get("suspended")),
    )


# ------------------------------------------------------------------------------- notes

def _hashtag_name(value: Any) -> str | None:
    """A Hashtag's name without its sign, if it is a usable tag."""
    if not isinstance(value, str):
        return None
    name = value.strip().lstrip("#＃").strip()
    if not name or len(name) > MAX_TAG_LENGTH:
        return None
    # Mastodon's hashtag characters: word characters and its separators; nothing else.
    if not all(char.isalnum() or char in "_\u00b7\u30fb\u200c" for char in name):
        return None
    return name


def _tags(value: Any) -> tuple[tuple[RemoteHashtag, ...], tuple[RemoteMention, ...]]:
    hashtags: list[RemoteHashtag] = []
    mentions: list[RemoteMention] = []
    seen_tags: set[str] = set()
    seen_mentions: set[str] = set()
    for item in _as_list(value, MAX_TAG_ITEMS):
        if not isinstance(item, dict):
            continue
        kind = _type_of(item)
        if kind == "Hashtag" and len(hashtags) < MAX_TAGS:
            name = _hashtag_name(item.get("name"))
            if name is None:
                continue
            key = normalize_tag(name)
            if key not in seen_tags:
                seen_tags.add(key)
                hashtags.append(RemoteHashtag(name=name, key=key, href=_valid_url(item.get("href"))))
        elif kind == "Mention" and len(mentions) < MAX_TAGS:
            href = _valid_url(item.get("href"))
            if href is not None and href not in seen_mentions:
                seen_mentions.add(href)
                mentions.append(RemoteMention(href=href, name=_string(item.get("name"), 512)))
    return tuple(hashtags), tuple(mentions)


def _focal_point(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, list) or len(value) != 2:
        return None
    x, y = value
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)):
        return None
    if not all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in (x, y)):
        return None
    return float(x), float(y)


def _image_type_of(url: str) -> str | None:
    """The image media type a URL's path names by its extension, if any."""
    try:
        path = urlsplit(url).path.lower()
    except ValueError:
        return None
    dot = path.rfind(".")
    return IMAGE_EXTENSIONS.get(path[dot:]) if dot > path.rfind("/") else None


def _link_attachment(item: dict[str, Any], image_url: str | None) -> RemoteAttachment | str | None:
    """A ``Link`` attachment (Lemmy's post link): an image attachment when it is one —
    its mediaType says so, else its extension, or it is the object's own ``image`` (a
    Lemmy image post names the image in both) — else its URL, to be shown as a link;
    None when it has no usable http(s) URL."""
    url, declared = _link_url(item)
    if url is None:
        return None
    if declared is None or not declared.startswith("image/"):
        guessed = _image_type_of(url)
        if declared is not None or (guessed is None and url != image_url):
            return url
        declared = guessed
    return RemoteAttachment(type="Image", media_type=declared, url=url,
                            description=_plain(item.get("name"), MAX_ALT_CHARS),
                            blurhash=None, width=_int(item.get("width")),
                            height=_int(item.get("height")), focal_point=None)


def _image_attachment(value: Any) -> RemoteAttachment | None:
    """An object's ``image`` (a Lemmy or blog post's picture) as an image attachment."""
    url, declared = _link_url(value, prefer="image/")
    if url is None:
        return None
    first = next(iter(_as_list(value, 1)), None)
    alt = first.get("name") if isinstance(first, dict) else None
    media_type = declared if declared and declared.startswith("image/") else _image_type_of(url)
    return RemoteAttachment(type="Image", media_type=media_type, url=url,
                            description=_plain(alt, MAX_ALT_CHARS), blurhash=None,
                            width=None, height=None, focal_point=None)


def _attachments(doc: dict[str, Any], converted: bool
                 ) -> tuple[tuple[RemoteAttachment, ...], tuple[str, ...]]:
    """``(attachments, links)``: the media attachments, in order, and the URLs of
    ``Link`` attachments that are not images; a converted type with neither gets its
    ``image`` as its one attachment."""
    image_url, _ = _link_url(doc.get("image"), prefer="image/")
    attachments: list[RemoteAttachment] = []
    links: list[str] = []
    for item in _as_list(doc.get("attachment"), MAX_ATTACHMENTS * 4):
        if isinstance(item, dict) and _type_of(item) == "Link":
            found = _link_attachment(item, image_url)
        else:
            found = _attachment(item)
        if isinstance(found, str):
            if found not in links and len(links) < MAX_ATTACHMENTS:
                links.append(found)
        elif found is not None and len(attachments) < MAX_ATTACHMENTS:
            attachments.append(found)
    if converted and not attachments and not links and image_url is not None:
        image = _image_attachment(doc.get("image"))
        if image is not None:
            attachments.append(image)
    return tuple(attachments), tuple(links)


def _attachment(item: Any) -> RemoteAttachment | None:
    if not isinstance(item, dict):
        return None
    kind = _type_of(item)
    if kind not in ATTACHMENT_TYPES:
        return None
    declared = _media_type(item.get("mediaType"))
    prefer = declared.split("/", 1)[0] + "/" if declared else \
        {"Video": "video/", "Audio": "audio/"}.get(kind, "image/")
    url, link_type = _link_url(item.get("url"), prefer=prefer)
    if url is None:
        return None
    alt = item.get("name")
    if not isinstance(alt, str) or not alt.strip():
        alt = item.get("summary")
    blurhash = item.get("blurhash")
    return RemoteAttachment(
        type=kind,
        media_type=declared or link_type,
        url=url,
        description=_plain(alt, MAX_ALT_CHARS),
        blurhash=blurhash if isinstance(blurhash, str) and _BLURHASH_RE.match(blurhash) else None,
        width=_int(item.get("width")),
        height=_int(item.get("height")),
        focal_point=_focal_point(item.get("focalPoint")),
    )


def _language_and_content(doc: dict[str, Any]) -> tuple[str | None, str]:
    """``(language, raw HTML)``: ``content``, else the first ``contentMap`` entry, else a
    plain-text source (Misskey's ``_misskey_content``/``source``) escaped to HTML."""
    language: str | None = None
    mapped: str | None = None
    content_map = doc.get("contentMap")
    if isinstance(content_map, dict):
        for key, value in list(content_map.items())[:16]:
            if isinstance(key, str) and _LANGUAGE_RE.match(key) and isinstance(value, str):
                language, mapped = key, value
                break
    content = doc.get("content")
    if isinstance(content, str) and content:
        content = content[:MAX_CONTENT_CHARS]
        media_type = _media_type(doc.get("mediaType"))
        if media_type in ("text/markdown", "text/plain"):
            return language, plain_to_html(content)
        return language, content
    if mapped:
        return language, mapped[:MAX_CONTENT_CHARS]
    source = doc.get("source")
    fallback = source.get("content") if isinstance(source, dict) else None
    if not isinstance(fallback, str) or not fallback:
        fallback = doc.get("_misskey_content")
    if isinstance(fallback, str) and fallback:
        return language, plain_to_html(fallback[:MAX_CONTENT_CHARS])
    return language, ""


def _work_terms(value: Any) -> tuple[str, ...]:
    """A vocabulary's terms: entries ``{"name": …, "hashtag": …}`` (or plain strings), as
    plain display names, in order, without repeats (by normalised key); a term too long
    or without a letter or digit is dropped."""
    names: list[str] = []
    seen: set[str] = set()
    for item in _as_list(value, MAX_WORK_TERMS * 4):
        raw = item.get("name") if isinstance(item, dict) else item
        if not isinstance(raw, str):
            continue
        name = portfolio.clean_name(_plain(raw, MAX_WORK_TERM_CHARS * 2))
        key = portfolio.normalise_key(name)
        if not key or len(name) > MAX_WORK_TERM_CHARS or key in seen:
            continue
        seen.add(key)
        names.append(name)
        if len(names) == MAX_WORK_TERMS:
            break
    return tuple(names)


def _work_year(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 4:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if MIN_WORK_YEAR <= value <= MAX_WORK_YEAR else None


def parse_work(value: Any) -> RemoteWork | None:
    """Easel's ``portfolio`` object, bounded: a part that is not of its type is dropped,
    texts are cut to their limits, never an error. None when it is not an object."""
    if not isinstance(value, dict):
        return None
    tags = []
    for kind, term in PORTFOLIO_TERMS.items():
        names = _work_terms(value.get(term))
        if names:
            tags.append((kind, names))

    def text(key: str, limit: int) -> str:
        return _plain(value.get(key), limit).strip()

    return RemoteWork(
        title=" ".join(text("title", MAX_WORK_TITLE_CHARS).split()),
        description=text("description", MAX_WORK_DESCRIPTION_CHARS),
        year=_work_year(value.get("year")),
        dimensions=" ".join(text("dimensions", MAX_WORK_DIMENSIONS_CHARS).split()),
        ai_generated=value.get("aiGenerated") is True,
        tags=tuple(tags),
    )


def visibility_of(to: tuple[str, ...], cc: tuple[str, ...], followers_url: str | None) -> str:
    """Mastodon's rule: public in ``to`` → public; in ``cc`` → unlisted; the author's
    followers in ``to`` → private; otherwise direct (only those addressed)."""
    if PUBLIC in to:
        return "public"
    if PUBLIC in cc:
        return "unlisted"
    if followers_url is not None and followers_url in to:
        return "private"
    return "direct"


def parse_note(doc: Any, *, followers_url: str | None = None) -> RemoteNote:
    """A post: Note, Article, Page, Question, Image, Video, Audio or Event (type kept).

    ``followers_url`` is the author's followers collection (from its actor document), used
    to tell followers-only posts from direct ones; without it, an embedded
    ``attributedTo`` object's ``followers`` is used, else such posts count as direct."""
    doc = _require_dict(doc, "object")
    note_id = _require_id(doc, "object")
    note_type = _type_of(doc)
    if note_type not in NOTE_TYPES:
        raise ParseError(f"not a supported object type: {note_type!r}")
    attributed = _as_list(doc.get("attributedTo"), MAX_ID_LIST)
    attributed_to = first_id(attributed)
    if attributed_to is None:
        raise ParseError("object has no valid attributedTo")
    if followers_url is None:
        for item in attributed:
            if isinstance(item, dict) and _id_of(item) == attributed_to:
                followers_url = _id_of(item.get("followers"))
    to, cc = _addresses(doc.get("to")), _addresses(doc.get("cc"))
    language, raw_content = _language_and_content(doc)
    hashtags, mentions = _tags(doc.get("tag"))
    attachments, links = _attachments(doc, note_type in CONVERTED_TYPES)
    conversation = doc.get("conversation", doc.get("context"))
    return RemoteNote(
        id=note_id,
        type=note_type,
        attributed_to=attributed_to,
        content=sanitize_html(raw_content),
        name=_plain(doc.get("name"), MAX_NAME_CHARS),
        summary=_plain(doc.get("summary"), MAX_SUMMARY_CHARS),
        sensitive=_bool(doc.get("sensitive")),
        published=_datetime(doc.get("published")),
        updated=_datetime(doc.get("updated")),
        in_reply_to=first_id(doc.get("inReplyTo")),
        url=_page_url(doc.get("url")),
        to=to,
        cc=cc,
        visibility=visibility_of(to, cc, followers_url),
        hashtags=hashtags,
        mentions=mentions,
        attachments=attachments,
        language=language,
        conversation=conversation[:MAX_URL_LENGTH] if isinstance(conversation, str) else None,
        work=parse_work(doc.get("portfolio")),
        robots=parse_robots_tag(doc.get("xRobotsTag")),
        data_mining=parse_data_mining(doc.get("dataMining")),
        links=links,
    )


# -------------------------------------------------------------------------- activities

def parse_activity(doc: Any) -> RemoteActivity:
    """Any activity: id, type, actor and object are checked; the object, when embedded, is
    kept as sent for the handler to parse (and to check its origin) itself. An embedded
    object needs a valid id, except a typed one without any ``id`` in an Accept, Reject or
    Undo (:data:`ACTIVITIES_WITH_ANONYMOUS_OBJECT`), or a ``Hashtag`` in an Add or Remove
    (a featured tag): kept, with ``object_ids`` empty."""
    doc = _require_dict(doc, "activity")
    activity_id = _require_id(doc, "activity")
    activity_type = _type_of(doc)
    if not activity_type:
        raise ParseError("activity has no type")
    actor = first_id(doc.get("actor"))
    if actor is None:
        raise ParseError("activity has no valid actor")
    raw_object = doc.get("object")
    object_ids = ids_of(raw_object)
    obj: str | dict[str, Any] | None
    first = raw_object[0] if isinstance(raw_object, list) and raw_object else raw_object
    if isinstance(first, dict) and _id_of(first) is not None:
        obj = first
    elif (isinstance(first, dict) and first.get("id") is None and _type_of(first)
          and activity_type in ACTIVITIES_WITH_ANONYMOUS_OBJECT):
        obj = first  # an embedded activity without an id: object_ids stays empty
    elif (isinstance(first, dict) and first.get("id") is None and _type_of(first) == "Hashtag"
          and activity_type in ("Add", "Remove")):
        obj = first  # a featured hashtag (Mastodon's has no id)
    elif object_ids:
        obj = object_ids[0]
    else:
        obj = None
    if obj is None and activity_type in ACTIVITIES_WITH_OBJECT:
        raise ParseError(f"{activity_type} has no valid object")
    return RemoteActivity(
        id=activity_id,
        type=activity_type,
        actor=actor,
        object=obj,
        object_ids=object_ids,
        target=first_id(doc.get("target")),
        to=_addresses(doc.get("to")),
        cc=_addresses(doc.get("cc")),
        published=_datetime(doc.get("published")),
        content=_plain(doc.get("content"), MAX_SUMMARY_CHARS),
    )
