"""The public, server-rendered pages: the instance home, browsing works by portfolio tags,
an artist's portfolio at ``/@name``, a work at ``/@name/{id}``, hashtag pages, and
signing in and out of the web session.

Pages show what an anonymous visitor may see, whoever is signed in (the signed-in artist
edits in the studio, ``server/web/studio.py``). Each endpoint parses its URL, makes one
call into ``server.services.gallery`` (batched queries, never one per work) and renders
a template through ``server.web.session.render`` (security headers, CSP, opt-out
headers and ``<meta>``). ActivityPub readers asking for a profile or a work by content
negotiation are sent to the ActivityPub object. Bad ids, unknown names and statuses
nobody may see are all the same 404 page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from federation.content_types import accepts_activity_json
from server.api.entities import account_note_html, fields_to_entities
from server.api.params import Params
from server.errors import ApiError, not_found_page
from server.models import Account, Status
from server.services import gallery, oauth, portfolio, user_ips
from server.services.errors import ServiceError
from server.services.gallery import ImageView, WorkCard, parse_page_id, text_of
from server.state import EaselState, easel
from server.web import optout
from server.web.placeholders import placeholder_uri
from server.web.session import (
    CSRF_FIELD,
    csrf_ok,
    current_user,
    log_in,
    log_out,
    only_disabled,
    page_headers,
    render,
)

PAGE_SIZE = 24
# The vocabularies the home page offers as quick filters (the browse page has them all).
HOME_FILTER_KINDS = ("field", "medium")
MAX_TERM_PARAM = 64
KIND_LABELS = {"field": "Field", "medium": "Medium", "project_type": "Project type",
               "category": "Category", "software": "Software"}
KIND_GROUP_LABELS = {"field": "Fields", "medium": "Mediums", "project_type": "Project types",
                     "category": "Categories", "software": "Software"}
# The IPTC PLUS DataMining values (http://ns.useplus.org/ldf/vocab/DMI-…) in words.
DATA_MINING_TEXTS = {
    "DMI-UNSPECIFIED": "no statement about data mining",
    "DMI-ALLOWED": "data mining allowed",
    "DMI-PROHIBITED-AIMLTRAINING": "not for AI or machine-learning training",
    "DMI-PROHIBITED-GENAIMLTRAINING": "not for generative AI training",
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": "no data mining except search-engine indexing",
    "DMI-PROHIBITED": "no data mining",
    "DMI-PROHIBITED-SEECONSTRAINT": "data mining prohibited, see the licence constraints",
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": "data mining prohibited, see the embedded rights",
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": "data mining prohibited, see the linked rights",
}


# ------------------------------------------------------------------------------ helpers

def _not_found(request: Request, state: EaselState) -> Response:
    return not_found_page(request)


def _profile_path(account: Account) -> str:
    return f"/@{account.acct()}"


def _work_path(card: WorkCard) -> str:
    return f"{_profile_path(card.account)}/{card.status.id}"


def _avatar_url(state: EaselState, account: Account) -> str:
    return state.urls.avatar_of(account, state.storage)


def _header_url(state: EaselState, account: Account) -> str | None:
    if account.header_key:
        return state.storage.public_url(account.header_key)
    return account.header_remote_url or None


def _artist_headers(account: Account) -> dict[str, str]:
    """A local artist's own opt-out headers; the instance's for anyone else's work shown
    here (this server's pages say what this server promises)."""
    return optout.opt_out_headers(account.data_mining if account.is_local else None)


def _artist_opt_out(account: Account) -> dict[str, Any]:
    """The ``<meta>`` tags matching :func:`_artist_headers`."""
    return {"page_meta": optout.page_meta(account.data_mining if account.is_local else None)}


def _data_mining_text(value: str | None) -> str | None:
    if not value:
        return None
    word = value.rstrip("/").rsplit("/", 1)[-1]
    return DATA_MINING_TEXTS.get(word, word)


def _stated_opt_out(robots: str | None, data_mining: str | None) -> dict[str, str] | None:
    """What a remote server said about AI use of an artist's or a work's images."""
    if not robots and not data_mining:
        return None
    return {"robots": robots or "", "data_mining": _data_mining_text(data_mining) or ""}


def _og_image(image: ImageView | None) -> dict[str, Any] | None:
    """``og:image``: the smaller public rendition, never the original."""
    if image is None:
        return None
    return {"url": image.preview_url, "width": image.preview_width,
            "height": image.preview_height, "alt": image.description}


def _og(state: EaselState, *, title: str, description: str, url: str, kind: str = "website",
        image: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"title": title, "description": description, "type": kind, "url": url,
            "image": image, "site_name": state.settings.title,
            "card": "summary_large_image" if image else "summary"}


def _cursor(request: Request) -> int | None:
    return parse_page_id(request.query_params.get("max_id"))


def _next_url(request: Request, max_id: int | None) -> str | None:
    if max_id is None:
        return None
    keep = [(k, v) for k, v in request.query_params.multi_items() if k != "max_id"]
    return f"{request.url.path}?{urlencode([*keep, ('max_id', str(max_id))])}"


@dataclass(frozen=True)
class Chip:
    name: str
    url: str
    selected: bool


def _browse_url(filters: Mapping[str, list[str]], local: bool | None = None) -> str:
    pairs = [(kind, name) for kind in portfolio.KINDS for name in filters.get(kind, [])]
    if local is True:
        pairs.append(("local", "true"))
    elif local is False:
        pairs.append(("remote", "true"))
    return "/works?" + urlencode(pairs) if pairs else "/works"


def _toggle(filters: Mapping[str, list[str]], kind: str, name: str) -> dict[str, list[str]]:
    changed = {k: list(v) for k, v in filters.items()}
    names = changed.setdefault(kind, [])
    key = portfolio.normalise_key(name)
    kept = [n for n in names if portfolio.normalise_key(n) != key]
    changed[kind] = kept if len(kept) != len(names) else [*names, name]
    return changed


def _filter_groups(vocabulary: Mapping[str, list[portfolio.Suggestion]],
                   filters: Mapping[str, list[str]], local: bool | None) -> list[dict[str, Any]]:
    """Per kind: chips for the suggested terms (and any other chosen), each toggling
    itself in the browse URL."""
    groups = []
    for kind in portfolio.KINDS:
        chosen = {portfolio.normalise_key(n) for n in filters.get(kind, [])}
        names = [s.term.name for s in vocabulary.get(kind, [])]
        keys = {portfolio.normalise_key(n) for n in names}
        names += [n for n in filters.get(kind, []) if portfolio.normalise_key(n) not in keys]
        chips = [Chip(name, _browse_url(_toggle(filters, kind, name), local),
                      portfolio.normalise_key(name) in chosen) for name in names]
        if chips:
            groups.append({"kind": kind, "label": KIND_GROUP_LABELS[kind], "chips": chips})
    return groups


def _template_globals(request: Request, state: EaselState) -> dict[str, Any]:
    """What every public page's templates use; ``later_page``: a page past the first (its
    projects are not repeated, and an empty grid says there are no more works)."""
    return {"kind_labels": KIND_LABELS, "placeholder": placeholder_uri,
            "work_path": _work_path, "profile_path": _profile_path,
            "browse_url": _browse_url, "avatar_url": lambda a: _avatar_url(state, a),
            "later_page": _cursor(request) is not None}


# -------------------------------------------------------------------------------- pages

async def home(request: Request) -> Response:
    """Recent local works, newest first, with the suggested tags as filter links."""
    state = easel(request)
    async with state.db.session() as session:
        await current_user(request, session, state)
        listing = await gallery.recent_works(session, state.storage, max_id=_cursor(request),
                                             limit=PAGE_SIZE)
        vocabulary = await portfolio.vocabulary(session)
    first = next((c for c in listing.cards if c.cover is not None and not c.covered), None)
    og = _og(state, title=state.settings.title, description=f"Recent works on {state.settings.title}",
             url=state.urls.base + "/", image=_og_image(first.cover if first else None))
    return render(request, state, "home.html", {
        **_template_globals(request, state), "listing": listing, "og": og,
        "groups": [g for g in _filter_groups(vocabulary, {}, None)
                   if g["kind"] in HOME_FILTER_KINDS],
        "next_url": _next_url(request, listing.next_max_id),
    }, image_origins=gallery.image_origins(listing.cards))


def _filters_from(request: Request) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for kind in portfolio.KINDS:
        names = [*request.query_params.getlist(kind), *request.query_params.getlist(kind + "[]")]
        cleaned = [n.strip()[:MAX_TERM_PARAM] for n in names if n.strip()]
        if cleaned:
            filters[kind] = list(dict.fromkeys(cleaned))
    return filters


def _scope_from(request: Request) -> bool | None:
    def flag(name: str) -> bool:
        return request.query_params.get(name, "").strip().lower() in ("1", "true", "yes", "on")
    if flag("local"):
        return True
    if flag("remote"):
        return False
    return None


async def browse(request: Request) -> Response:
    """``/works?field=…&medium=…``: works by portfolio tags, AND across kinds, OR within."""
    state = easel(request)
    filters = _filters_from(request)
    local = _scope_from(request)
    error = None
    async with state.db.session() as session:
        await current_user(request, session, state)
        try:
            listing = await gallery.browse_works(session, state.storage, filters, local=local,
                                                 max_id=_cursor(request), limit=PAGE_SIZE)
        except ServiceError as exc:
            listing, error = gallery.Listing([], None), exc.message
        vocabulary = await portfolio.vocabulary(session)
    chosen = [f"{name}" for kind in portfolio.KINDS for name in filters.get(kind, [])]
    heading = " · ".join(chosen) if chosen else "All works"
    first = next((c for c in listing.cards if c.cover is not None and not c.covered), None)
    og = _og(state, title=f"{heading} — {state.settings.title}",
             description=f"Works on {state.settings.title}" + (f": {heading}" if chosen else ""),
             url=state.urls.base + _browse_url(filters, local),
             image=_og_image(first.cover if first else None))
    scopes = [("All servers", _browse_url(filters, None), local is None),
              ("This server", _browse_url(filters, True), local is True),
              ("Other servers", _browse_url(filters, False), local is False)]
    return render(request, state, "works.html", {
        **_template_globals(request, state), "listing": listing, "og": og, "heading": heading,
        "groups": _filter_groups(vocabulary, filters, local), "filters": filters,
        "scopes": scopes, "error": error, "next_url": _next_url(request, listing.next_max_id),
    }, status_code=422 if error else 200, image_origins=gallery.image_origins(listing.cards))


async def profile_page(request: Request) -> Response:
    """An artist's portfolio; ActivityPub readers are sent to the actor."""
    state = easel(request)
    acct = request.path_params["username"]
    project_raw = request.query_params.get("project")
    project_id = parse_page_id(project_raw) if project_raw is not None else None
    async with state.db.session() as session:
        await current_user(request, session, state)
        account = await gallery.find_account_by_acct(session, acct, state.settings.domain)
        if account is None:
            return _not_found(request, state)
        if accepts_activity_json(request):
            return RedirectResponse(account.uri, status_code=302, headers={"Vary": "Accept"})
        if account.suspended_at is not None:  # server.services.moderation: nothing is shown
            return _not_found(request, state)
        if project_raw is not None and project_id is None:
            return _not_found(request, state)
        page = await gallery.artist_portfolio(session, state.storage, account,
                                              max_id=_cursor(request), limit=PAGE_SIZE,
                                              project_id=project_id)
    if page is None:
        return _not_found(request, state)
    name = account.display_name or account.username
    handle = f"{account.username}@{account.domain or state.settings.domain}"
    avatar = _avatar_url(state, account)
    og = _og(state, title=f"{name} (@{handle})",
             description=text_of(account_note_html(account)) or f"{name}'s portfolio",
             url=state.urls.base + _profile_path(account), kind="profile",
             image={"url": avatar, "width": None, "height": None, "alt": f"{name}'s avatar"})
    all_cards = [*page.pinned, *page.works.cards, *(p.cover for p in page.projects if p.cover)]
    return render(request, state, "portfolio.html", {
        **_template_globals(request, state), "account": account, "page": page, "handle": handle,
        "name": name, "og": og, "avatar": avatar, "header": _header_url(state, account),
        "note_html": account_note_html(account), "fields": fields_to_entities(account),
        "opt_out": None if account.is_local else _stated_opt_out(account.robots,
                                                                 account.data_mining),
        "alternate": account.uri, "next_url": _next_url(request, page.works.next_max_id),
        **_artist_opt_out(account),
    }, image_origins=gallery.image_origins(all_cards, [account]),
        opt_out=_artist_headers(account))


async def work_page(request: Request) -> Response:
    """A work: every image large, its metadata as links; ActivityPub readers get the Note.
    A work's first id (it was posted while its images were processing, and published
    under a new one) is a permanent redirect to the page it has now."""
    state = easel(request)
    status_id = parse_page_id(request.path_params["id"])
    moved_to = None
    async with state.db.session() as session:
        await current_user(request, session, state)
        account = await gallery.find_account_by_acct(session, request.path_params["username"],
                                                     state.settings.domain)
        card = (await gallery.work_card(session, state.storage, account, status_id)
                if account is not None and status_id is not None else None)
        if card is None and account is not None and status_id is not None:
            moved_to = await gallery.moved_work_id(session, account, status_id)
        link_card = (await gallery.link_card(session, state.storage, card.status)
                     if card is not None and state.settings.link_cards else None)
    if moved_to is not None:
        assert account is not None
        return RedirectResponse(f"{_profile_path(account)}/{moved_to}", status_code=301,
                                headers=page_headers(state, {"Vary": "Accept"}))
    if card is None:
        if accepts_activity_json(request):
            raise ApiError(404, "Record not found")
        return _not_found(request, state)
    status: Status = card.status
    if accepts_activity_json(request):
        return RedirectResponse(status.uri, status_code=302, headers={"Vary": "Accept"})
    account = card.account
    name = account.display_name or account.username
    title = card.title or (text_of(status.spoiler_text, 80) if status.spoiler_text else "") \
        or f"A work by {name}"
    description = (card.work.description if card.work and card.work.description
                   else text_of(status.content))
    if status.spoiler_text:  # a content warning folds the text too
        description = status.spoiler_text
    image = None if card.covered else _og_image(card.cover)
    og = _og(state, title=f"{title} — {name}", description=description,
             url=state.urls.base + _work_path(card), kind="article", image=image)
    remote_opt_out = None
    if not account.is_local:
        remote_opt_out = (_stated_opt_out(status.robots, status.data_mining)
                          or _stated_opt_out(account.robots, account.data_mining))
    return render(request, state, "work.html", {
        **_template_globals(request, state), "card": card, "status": status, "account": account,
        "name": name, "work_title": title, "og": og, "alternate": status.uri,
        "handle": f"{account.username}@{account.domain or state.settings.domain}",
        "opt_out": remote_opt_out, "link_card": link_card,
        **_artist_opt_out(account),
    }, image_origins=gallery.image_origins([card], [account]), opt_out=_artist_headers(account))


async def tag_page(request: Request) -> Response:
    """Public statuses with a hashtag (local and remote), and the works of the portfolio
    term of that name."""
    state = easel(request)
    name = request.path_params["name"].strip().lstrip("#")
    if not name or len(name) > 255:
        return _not_found(request, state)
    async with state.db.session() as session:
        await current_user(request, session, state)
        page = await gallery.tag_page(session, state.storage, name, max_id=_cursor(request),
                                      limit=PAGE_SIZE)
    first = next((c for c in page.listing.cards if c.cover is not None and not c.covered),
                 None)
    og = _og(state, title=f"#{name} — {state.settings.title}",
             description=f"Works and posts tagged #{name}",
             url=f"{state.urls.base}/tags/{name}", image=_og_image(first.cover if first else None))
    terms = [{"label": KIND_LABELS[t.kind], "name": t.name,
              "url": _browse_url({t.kind: [t.name]})} for t in page.terms]
    return render(request, state, "tag.html", {
        **_template_globals(request, state), "name": name, "listing": page.listing, "og": og,
        "terms": terms, "next_url": _next_url(request, page.listing.next_max_id),
    }, image_origins=gallery.image_origins(page.listing.cards))


# ------------------------------------------------------------------------ signing in/out

def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site
    (``//evil``, ``/\\evil``, ``https://evil``, control characters → ``/``)."""
    if not raw or len(raw) > 2000:
        return "/"
    if (not raw.startswith("/") or raw.startswith("//") or "\\" in raw
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw)):
        return "/"
    return raw


def _sign_in_page(request: Request, state: EaselState, *, next_path: str, login: str = "",
                  error: str | None = None, status_code: int = 200) -> Response:
    og = _og(state, title=f"Sign in — {state.settings.title}",
             description=f"Sign in to {state.settings.title}", url=state.urls.base + "/auth/sign_in")
    return render(request, state, "sign_in.html", {
        "og": og, "next": next_path, "login": login, "error": error,
    }, status_code=status_code, headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"})


def _redirect(state: EaselState, location: str) -> Response:
    return RedirectResponse(location, status_code=303,
                            headers=page_headers(state, {"Cache-Control": "no-store"}))


async def sign_in_form(request: Request) -> Response:
    state = easel(request)
    next_path = safe_next(request.query_params.get("next"))
    async with state.db.session() as session:
        user = await current_user(request, session, state)
    if user is not None:
        return _redirect(state, next_path)
    return _sign_in_page(request, state, next_path=next_path)


async def sign_in(request: Request) -> Response:
    """POST: e-mail address or username and password (rate-limited per address by
    ``RateLimitMiddleware``), CSRF checked; then back to ``next`` if it is a local path."""
    state = easel(request)
    try:
        params = await Params.from_request(request)
        login_name = (params.get_str("login", max_length=320) or "").strip()
        password = params.get_str("password", max_length=1024)
        next_path = safe_next(params.get_str("next", max_length=2000))
    except ApiError:
        return _sign_in_page(request, state, next_path="/", status_code=400,
                             error="The form could not be read. Please try again.")
    if not csrf_ok(request, state, params.get_str(CSRF_FIELD)):
        return _sign_in_page(request, state, next_path=next_path, login=login_name,
                             status_code=403, error="This form has expired. Please try again.")
    async with state.db.session() as session:
        user = await oauth.authenticate_user(session, login_name, password)
        if user is None:
            return _sign_in_page(request, state, next_path=next_path, login=login_name,
                                 status_code=422,
                                 error="Invalid e-mail address, username or password.")
        refusal = oauth.login_refusal(user)
        if refusal is None or only_disabled(user):
            await user_ips.record_ip(session, state.settings, user.id, user_ips.client_ip(request))
            await session.commit()
        if refusal is not None and only_disabled(user):
            # a moderator disabled it: the Standing page only, to read why and appeal
            response = _redirect(state, "/studio/standing")
            log_in(response, state, user)
            return response
        if refusal is not None:
            return _sign_in_page(request, state, next_path=next_path, login=login_name,
                                 status_code=403, error=refusal + ".")
    response = _redirect(state, next_path)
    log_in(response, state, user)
    return response


async def sign_out(request: Request) -> Response:
    """POST with a CSRF token: end the web session."""
    state = easel(request)
    try:
        params = await Params.from_request(request)
    except ApiError:
        params = Params({})
    if not csrf_ok(request, state, params.get_str(CSRF_FIELD)):
        return render(request, state, "error.html", {
            "heading": "This form has expired",
            "message": "Go back, reload the page and try again."},
            status_code=403, headers={"Cache-Control": "no-store"})
    response = _redirect(state, "/")
    log_out(response, state)
    return response


routes: list[BaseRoute] = [
    Route("/", home, methods=["GET", "HEAD"]),
    Route("/works", browse, methods=["GET", "HEAD"]),
    Route("/tags/{name}", tag_page, methods=["GET", "HEAD"]),
    Route("/auth/sign_in", sign_in_form, methods=["GET", "HEAD"]),
    Route("/auth/sign_in", sign_in, methods=["POST"]),
    Route("/auth/sign_out", sign_out, methods=["POST"]),
    Route("/@{username}", profile_page, methods=["GET", "HEAD"]),
    Route("/@{username}/{id}", work_page, methods=["GET", "HEAD"]),
]
