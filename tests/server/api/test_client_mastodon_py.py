"""Mastodon.py (the PyPI library) against a live Easel: registration, both logins, media,
posting, timelines, follows (unlocked and locked), favourites, reblogs, notifications.

Every library test runs with ``version_check_mode`` "none" and "created": in "created"
mode Mastodon.py reads the version Easel reports and refuses endpoints newer than it, so
it proves the reported version covers what the client uses. PKCE, which Mastodon.py does
not speak, is exercised with plain HTTP against the same live server.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterator

import httpx
import pytest
from mastodon import Mastodon, MastodonIllegalArgumentError, MastodonNotFoundError

from server.settings import Settings
from tests.protect import images
from tests.server.api.live import OOB, LiveServer, authorization_code, authorize_url, live_server

SCOPES = ["read", "write", "follow", "push"]
PASSWORD = "a long enough password"

Register = Callable[[str], Mastodon]


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings) as live:
        yield live


@pytest.fixture(params=["none", "created"])
def check_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


def new_app(server: LiveServer, name: str = "Easel tests (Mastodon.py)") -> tuple[str, str]:
    return Mastodon.create_app(name, scopes=SCOPES, redirect_uris=OOB, website="https://client.example",
                               api_base_url=server.base_url)


def client(server: LiveServer, check_mode: str, app: tuple[str, str] | None = None,
           access_token: str | None = None) -> Mastodon:
    client_id, client_secret = app or new_app(server)
    return Mastodon(client_id=client_id, client_secret=client_secret, access_token=access_token,
                    api_base_url=server.base_url, version_check_mode=check_mode,
                    ratelimit_method="throw", request_timeout=30)


@pytest.fixture
def register(server: LiveServer, check_mode: str) -> Register:
    """Sign up ``username`` through the app API, as Mastodon.py does; the client it returns
    holds the new user's token."""

    def sign_up(username: str) -> Mastodon:
        api = client(server, check_mode)
        token = api.create_account(username, PASSWORD, f"{username}@example.com", agreement=True,
                                   scopes=SCOPES)
        assert token and api.access_token == token
        return api

    return sign_up


def test_a_registered_user_can_log_in_with_a_password_and_sees_their_account(
    server: LiveServer, register: Register, check_mode: str
) -> None:
    registered = register("alice")
    assert registered.retrieve_mastodon_version().startswith("4.3")
    assert (registered.mastodon_major, registered.mastodon_minor) == (4, 3)
    me = registered.account_verify_credentials()
    assert me.username == "alice" and me.acct == "alice"
    assert me.source.privacy == "public"

    api = client(server, check_mode)
    with pytest.raises(MastodonIllegalArgumentError, match="https"):
        api.log_in(username="alice@example.com", password=PASSWORD, scopes=SCOPES)  # http base
    token = api.log_in(username="alice@example.com", password=PASSWORD, scopes=SCOPES, allow_http=True)
    assert token != registered.access_token
    assert api.account_verify_credentials().id == me.id
    assert api.me().username == "alice"

    with pytest.raises(MastodonIllegalArgumentError):
        client(server, check_mode).log_in(username="alice@example.com", password="not the password",
                                          scopes=SCOPES, allow_http=True)

    token, error = client(server, check_mode).create_account(
        "alice", PASSWORD, "other@example.com", agreement=True, scopes=SCOPES, return_detailed_error=True)
    assert token is None
    assert error["details"]["username"][0]["error"] == "ERR_TAKEN"


def test_the_authorization_code_flow_logs_in_through_the_pages(
    server: LiveServer, register: Register, check_mode: str
) -> None:
    register("alice")
    app = new_app(server, "Code flow app")
    api = client(server, check_mode, app)
    url = api.auth_request_url(redirect_uris=OOB, scopes=SCOPES, allow_http=True)
    assert url.startswith(f"{server.base_url}/oauth/authorize?")
    with httpx.Client(base_url=server.base_url, timeout=30) as browser:
        code = authorization_code(browser, url, "alice@example.com", PASSWORD)

    token = api.log_in(code=code, redirect_uri=OOB, scopes=SCOPES, allow_http=True)
    assert token
    assert api.account_verify_credentials().username == "alice"
    with pytest.raises(MastodonIllegalArgumentError):  # a code works once
        client(server, check_mode, app).log_in(code=code, redirect_uri=OOB, scopes=SCOPES, allow_http=True)


def test_an_uploaded_image_is_posted_after_protection_and_shows_in_timelines(
    server: LiveServer, register: Register
) -> None:
    alice = register("alice")
    media = alice.media_post(images.png(), mime_type="image/png", description="A green square",
                             file_name="square.png")
    assert media.type == "image" and media.description == "A green square"
    assert media.url is None  # /api/v2/media: processed later, by the protection queue
    assert server.run_protect() >= 1
    processed = alice.media(media)
    assert processed.url and processed.url.startswith(server.base_url)

    status = alice.status_post("My new work #painting", media_ids=[media])
    assert status.account.username == "alice"
    assert [tag.name for tag in status.tags] == ["painting"]
    assert len(status.media_attachments) == 1
    attachment = status.media_attachments[0]
    assert attachment.id == media.id and attachment.url == processed.url
    assert attachment.description == "A green square"
    assert httpx.get(attachment.url, timeout=30).status_code == 200

    assert status.id in [s.id for s in alice.timeline_home()]
    assert status.id in [s.id for s in alice.timeline_public()]
    assert status.id in [s.id for s in alice.timeline_local()]
    assert status.id in [s.id for s in alice.timeline_hashtag("painting")]
    assert status.id in [s.id for s in alice.account_statuses(alice.me())]
    assert alice.status(status).content == status.content

    deleted = alice.status_delete(status)
    assert deleted.id == status.id
    with pytest.raises(MastodonNotFoundError):
        alice.status(status)
    assert status.id not in [s.id for s in alice.timeline_hashtag("painting")]


def test_follows_favourites_reblogs_and_notifications(register: Register) -> None:
    alice, bob, carol = register("alice"), register("bob"), register("carol")
    alice_account, carol_account = alice.me(), carol.me()

    locked = carol.account_update_credentials(locked=True)
    assert locked.locked is True

    unlocked = bob.account_follow(alice_account)
    assert unlocked.following is True and unlocked.requested is False
    requested = bob.account_follow(carol_account)
    assert requested.following is False and requested.requested is True

    waiting = carol.follow_requests()
    assert [account.username for account in waiting] == ["bob"]
    assert [(n.type, n.account.username) for n in carol.notifications()] == [("follow_request", "bob")]
    carol.follow_request_authorize(waiting[0])
    assert carol.notifications() == []  # the request's notification goes with it, as in Mastodon
    assert carol.follow_requests() == []
    relationship = bob.account_relationships(carol_account)[0]
    assert relationship.following is True and relationship.requested is False
    assert sorted(account.username for account in bob.account_following(bob.me())) == ["alice", "carol"]
    assert [account.username for account in carol.account_followers(carol_account)] == ["bob"]

    post = alice.status_post("Hello @bob, a new canvas")
    assert [mention.username for mention in post.mentions] == ["bob"]
    assert post.id in [s.id for s in bob.timeline_home()]

    assert bob.status_favourite(post).favourited is True
    reblog = bob.status_reblog(post)
    assert reblog.reblog is not None and reblog.reblog.id == post.id and reblog.reblog.reblogged is True
    seen = alice.status(post)
    assert seen.favourites_count == 1 and seen.reblogs_count == 1

    alice_types = sorted(n.type for n in alice.notifications())
    assert alice_types == ["favourite", "follow", "reblog"]
    for notification in alice.notifications():
        assert notification.account.username == "bob"
        if notification.type in ("favourite", "reblog"):
            assert notification.status.id == post.id
    mentions = bob.notifications(types=["mention"])
    assert [(n.type, n.status.id) for n in mentions] == [("mention", post.id)]


def test_blocks_and_mutes(register: Register) -> None:
    alice, bob = register("alice"), register("bob")
    bob_account = bob.me()
    bob.account_follow(alice.me())
    blocked = alice.account_block(bob_account)
    assert blocked.blocking is True and blocked.followed_by is False
    assert [a.username for a in alice.blocks()] == ["bob"]
    assert bob.account_relationships(alice.me())[0].blocked_by is True
    assert alice.account_unblock(bob_account).blocking is False

    muted = alice.account_mute(bob_account, notifications=False, duration=600)
    assert muted.muting is True and muted.muting_notifications is False
    [entry] = alice.mutes()
    assert entry.username == "bob" and entry.mute_expires_at is not None
    bob.status_post("a muted post")
    assert alice.timeline_public() == []
    assert alice.account_unmute(bob_account).muting is False
    assert [s.account.username for s in alice.timeline_public()] == ["bob"]


def test_lists_followed_tags_markers_and_preferences(register: Register) -> None:
    alice, bob = register("alice"), register("bob")
    bob_account = bob.me()
    alice.account_follow(bob_account)
    painters = alice.list_create("Painters", replies_policy="followed", exclusive=False)
    assert painters.title == "Painters" and painters.replies_policy == "followed"
    alice.list_accounts_add(painters, [bob_account])
    assert [a.username for a in alice.list_accounts(painters)] == ["bob"]
    post = bob.status_post("wet on wet #Watercolour")
    assert [s.id for s in alice.timeline_list(painters)] == [post.id]
    assert [entry.id for entry in alice.account_lists(bob_account)] == [painters.id]
    alice.list_accounts_delete(painters, [bob_account])
    assert alice.list_accounts(painters) == []
    assert alice.list_update(painters, "Friends").title == "Friends"
    alice.list_delete(painters)
    assert alice.lists() == []

    carol = register("carol")
    tagged = carol.status_post("another #Watercolour")
    assert carol.tag_follow("watercolour").following is True
    assert [t.name for t in carol.followed_tags()] == ["Watercolour"]
    assert carol.tag_unfollow("watercolour").following is False
    assert tagged.id in [s.id for s in carol.timeline_home()]  # her own post stays

    saved = alice.markers_set(["home"], [post.id])
    assert saved.home.last_read_id == post.id
    assert alice.markers_get(["home"]).home.version == 0
    assert alice.preferences()["posting:default:visibility"] == "public"


def test_trends_and_suggestions(register: Register) -> None:
    alice, bob = register("alice"), register("bob")
    post = alice.status_post("fresh #Linocut print")
    bob.status_favourite(post)
    assert [t.name for t in bob.trending_tags()] == ["Linocut"]
    assert [s.id for s in bob.trending_statuses()] == [post.id]
    assert bob.trending_links() == []
    assert [a.username for a in bob.suggestions()] == ["alice"]


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def test_pkce_codes_need_the_right_verifier(server: LiveServer) -> None:
    server.create_user("alice", PASSWORD)
    client_id, client_secret = new_app(server, "PKCE app")
    verifier = secrets.token_urlsafe(48)
    url = authorize_url(server.base_url, client_id, "read write", code_challenge=_s256(verifier),
                        code_challenge_method="S256")
    with httpx.Client(base_url=server.base_url, timeout=30) as browser:
        code = authorization_code(browser, url, "alice", PASSWORD)

        def exchange(**extra: str) -> httpx.Response:
            return browser.post("/oauth/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": OOB,
                "client_id": client_id, "client_secret": client_secret, **extra})

        assert exchange().status_code == 400
        wrong = exchange(code_verifier=secrets.token_urlsafe(48))
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        issued = exchange(code_verifier=verifier)
        assert issued.status_code == 200, issued.text
        assert issued.json()["scope"] == "read write"
        assert exchange(code_verifier=verifier).status_code == 400  # used once

    api = Mastodon(access_token=issued.json()["access_token"], api_base_url=server.base_url)
    assert api.account_verify_credentials().username == "alice"
