"""/api/v1/instance, /api/v2/instance and the small endpoints apps read at start-up."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from starlette.applications import Starlette

from server import __version__, limits
from server.api import instance
from server.db import Database
from server.ids import new_id, utcnow
from server.models import Account, Status, User, UserIp
from server.services.accounts import create_user
from server.services.instance_activity import week_starts
from server.services.languages import instance_languages
from server.services.web_push import vapid_public_key
from server.settings import Settings
from tests.conftest import authorized, make_token

V1_FIELDS = {"uri", "title", "short_description", "description", "email", "version", "urls", "stats",
             "thumbnail", "languages", "registrations", "approval_required", "invites_enabled",
             "configuration", "contact_account", "rules"}
V2_FIELDS = {"domain", "title", "version", "source_url", "description", "usage", "thumbnail", "languages",
             "configuration", "registrations", "contact", "rules"}


async def add_remote_account(db: Database, username: str, domain: str) -> None:
    async with db.session() as session:
        session.add(Account(username=username, username_key=username.lower(), domain=domain,
                            uri=f"https://{domain}/users/{username}"))
        await session.commit()


async def add_status(db: Database, account_id: int, n: int, *, published: bool = True) -> None:
    async with db.session() as session:
        session.add(Status(account_id=account_id, uri=f"https://easel.test/statuses/{n}",
                           text="hi", content="<p>hi</p>", published=published))
        await session.commit()


async def test_v1_instance_has_every_field_apps_read(
    client: httpx.AsyncClient, db: Database, alice: User, bob: User
) -> None:
    await add_remote_account(db, "zed", "remote.example")
    await add_remote_account(db, "yan", "remote.example")
    await add_remote_account(db, "xu", "other.example")
    await add_status(db, alice.account_id, 1)
    await add_status(db, alice.account_id, 2, published=False)
    response = await client.get("/api/v1/instance")
    assert response.status_code == 200
    body = response.json()
    assert V1_FIELDS <= set(body)
    assert body["uri"] == "easel.test"
    assert body["version"] == f"4.3.0 (compatible; Easel {__version__})"
    assert body["api_versions"] == {"mastodon": 2}
    assert body["urls"] == {"streaming_api": "wss://easel.test"}
    assert body["stats"] == {"user_count": 2, "status_count": 1, "domain_count": 2}
    assert body["thumbnail"] == "https://easel.test/static/header.png"
    assert body["languages"] == ["en"]
    assert body["registrations"] is True and body["approval_required"] is True
    assert body["invites_enabled"] is False
    config = body["configuration"]
    assert config["accounts"] == {"max_featured_tags": limits.MAX_FEATURED_TAGS,
                                  "max_pinned_statuses": limits.MAX_PINNED_STATUSES}
    assert config["statuses"] == {"max_characters": limits.MAX_STATUS_CHARACTERS,
                                  "max_media_attachments": limits.MAX_MEDIA_ATTACHMENTS,
                                  "characters_reserved_per_url": limits.CHARACTERS_RESERVED_PER_URL}
    media = config["media_attachments"]
    assert media["supported_mime_types"] == list(limits.SUPPORTED_IMAGE_TYPES)
    assert media["image_size_limit"] == limits.IMAGE_SIZE_LIMIT
    assert media["image_matrix_limit"] == limits.IMAGE_MATRIX_LIMIT
    assert media["video_size_limit"] == media["video_frame_rate_limit"] == media["video_matrix_limit"] == 0
    assert body["contact_account"] is None and body["rules"] == []
    assert response.headers["access-control-allow-origin"] == "*"


async def test_the_contact_account_is_the_first_admin(client: httpx.AsyncClient, db: Database,
                                                      alice: User, bob: User) -> None:
    async with db.session() as session:
        await session.execute(update(User).where(User.id == bob.id).values(admin=True))
        await session.commit()
    v1 = (await client.get("/api/v1/instance")).json()
    v2 = (await client.get("/api/v2/instance")).json()
    assert v1["contact_account"]["username"] == "bob"
    assert v1["contact_account"]["id"] == str(bob.account_id)
    assert v2["contact"]["account"]["username"] == "bob"


async def test_v2_instance_has_every_field_apps_read(client: httpx.AsyncClient, db: Database,
                                                     alice: User, settings: Settings) -> None:
    await make_token(db, alice)
    async with authorized(client, await make_token(db, alice)) as api:
        await api.get("/api/v1/preferences")  # alice is active this month
    response = await client.get("/api/v2/instance")
    assert response.status_code == 200
    body = response.json()
    assert V2_FIELDS <= set(body)
    assert body["domain"] == "easel.test"
    assert body["version"].startswith("4.3.0 (compatible; Easel ")
    assert body["api_versions"] == {"mastodon": 2}
    assert body["usage"] == {"users": {"active_month": 1}}
    assert body["thumbnail"]["url"] == "https://easel.test/static/header.png"
    config = body["configuration"]
    assert config["urls"] == {"streaming": "wss://easel.test"}
    assert config["vapid"] == {"public_key": vapid_public_key(settings)}  # Web Push
    assert config["translation"] == {"enabled": False}
    assert config["statuses"]["max_characters"] == limits.MAX_STATUS_CHARACTERS
    assert config["media_attachments"]["image_size_limit"] == limits.IMAGE_SIZE_LIMIT
    assert config["accounts"]["max_pinned_statuses"] == limits.MAX_PINNED_STATUSES
    assert body["registrations"] == {"enabled": True, "approval_required": True, "message": None}
    assert body["contact"] == {"email": "", "account": None}
    assert body["rules"] == []


async def test_instance_follows_the_registration_mode(settings: Settings) -> None:
    from server.app import AppOptions, create_app

    for mode, enabled, approval in (("open", True, False), ("closed", False, False)):
        application = create_app(settings.with_changes(registrations=mode, scheme="http"),
                                 options=AppOptions(run_workers=False))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://easel.test") as http:
                v1 = (await http.get("/api/v1/instance")).json()
                v2 = (await http.get("/api/v2/instance")).json()
        assert (v1["registrations"], v1["approval_required"]) == (enabled, approval)
        registrations = v2["registrations"]
        assert (registrations["enabled"], registrations["approval_required"]) == (enabled, approval)
        assert v1["urls"]["streaming_api"] == "ws://easel.test"


async def test_rules_peers_and_custom_emojis(client: httpx.AsyncClient, db: Database) -> None:
    await add_remote_account(db, "zed", "b.example")
    await add_remote_account(db, "yan", "a.example")
    await add_remote_account(db, "xu", "a.example")
    assert (await client.get("/api/v1/instance/rules")).json() == []
    assert (await client.get("/api/v1/instance/peers")).json() == ["a.example", "b.example"]
    assert (await client.get("/api/v1/custom_emojis")).json() == []


async def test_preferences_are_the_users_posting_defaults(
    client: httpx.AsyncClient, db: Database, alice: User
) -> None:
    async with db.session() as session:
        await session.execute(update(User).where(User.id == alice.id).values(
            default_privacy="unlisted", default_sensitive=True, default_language="de"))
        await session.commit()
    async with authorized(client, await make_token(db, alice, "read:accounts")) as api:
        response = await api.get("/api/v1/preferences")
    assert response.status_code == 200
    assert response.json() == {
        "posting:default:visibility": "unlisted", "posting:default:sensitive": True,
        "posting:default:language": "de", "reading:expand:media": "default",
        "reading:expand:spoilers": False,
    }


async def test_preferences_need_read_accounts_and_a_user(client: httpx.AsyncClient, db: Database,
                                                         alice: User) -> None:
    assert (await client.get("/api/v1/preferences")).status_code == 401
    async with authorized(client, await make_token(db, alice, "write")) as api:
        assert (await api.get("/api/v1/preferences")).status_code == 403
    async with authorized(client, await make_token(db, None, "read")) as api:
        assert (await api.get("/api/v1/preferences")).status_code == 422


# ------------------------------------------- extended description, policy, translation, activity


async def test_the_extended_description_is_the_instances_description_as_escaped_html(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = await client.get("/api/v1/instance/extended_description")
    assert response.status_code == 200
    assert response.json() == {"updated_at": None, "content": f"<p>{instance.DESCRIPTION}</p>"}
    assert response.headers["access-control-allow-origin"] == "*"
    # Whatever the text holds is shown as text, never as markup.
    monkeypatch.setattr(instance, "DESCRIPTION", "<script>alert(1)</script> & <b>bold</b>\n\nmore")
    content = (await client.get("/api/v1/instance/extended_description")).json()["content"]
    assert content == ("<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;</p>"
                       "<p>more</p>")


async def test_there_is_no_privacy_policy_and_no_translation(client: httpx.AsyncClient) -> None:
    policy = await client.get("/api/v1/instance/privacy_policy")
    assert policy.status_code == 404
    assert policy.json() == {"error": "Record not found"}
    languages = await client.get("/api/v1/instance/translation_languages")
    assert languages.status_code == 200 and languages.json() == {}


async def test_languages_are_every_language_a_status_may_have(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/instance/languages")
    assert response.status_code == 200
    listed = response.json()
    assert listed == instance_languages()
    assert {"code": "en", "name": "English"} in listed
    assert all(set(item) == {"code", "name"} and item["name"] for item in listed)
    assert len({item["code"] for item in listed}) == len(listed)


async def test_activity_counts_twelve_weeks_of_statuses_logins_and_sign_ups(
    app: Starlette, client: httpx.AsyncClient, db: Database, settings: Settings, alice: User,
    bob: User, carol: User
) -> None:
    now = utcnow()

    async def status(at: datetime, **values: Any) -> None:
        status_id = new_id(at)
        async with db.session() as session:
            session.add(Status(id=status_id, account_id=values.pop("account_id", alice.account_id),
                               uri=f"https://easel.test/statuses/{status_id}", text="hi",
                               content="<p>hi</p>", created_at=at, **values))
            await session.commit()

    remote = Account(username="zed", username_key="zed", domain="remote.example",
                     uri="https://remote.example/users/zed")
    async with db.session() as session:
        session.add(remote)
        await session.commit()
    await status(now)
    await status(now, visibility="unlisted")
    await status(now, visibility="private")  # not counted, as Mastodon
    await status(now, published=False)  # not out yet
    await status(now, account_id=remote.id, local=False)  # another server's
    await status(now - timedelta(days=8))
    await status(now - timedelta(days=100))  # before the twelve weeks

    await make_token(db, alice)  # alice signs in now
    async with db.session() as session:
        await session.execute(update(User).where(User.id == bob.id).values(
            last_active_at=now - timedelta(days=15)))
        await session.execute(update(User).where(User.id == carol.id).values(
            created_at=now - timedelta(days=20)))
        session.add(UserIp(user_id=carol.id, ip="192.0.2.1", ip_key="c0000201",
                           used_at=now - timedelta(days=9)))
        await session.commit()
        # A sign-up waiting for approval is not a registration yet.
        await create_user(session, settings, username="dan", email="dan@example.com",
                          password="a fourth password", approved=False)

    response = await client.get("/api/v1/instance/activity")
    assert response.status_code == 200
    weeks = response.json()
    assert len(weeks) == 12
    assert all(set(week) == {"week", "statuses", "logins", "registrations"} for week in weeks)
    assert all(isinstance(value, str) for week in weeks for value in week.values())
    starts = [int(week["week"]) for week in weeks]
    assert starts[0] == int(week_starts(now)[0].timestamp())
    assert starts[0] % 86400 == 0 and starts[0] <= now.timestamp() < starts[0] + 7 * 86400
    assert [a - b for a, b in itertools.pairwise(starts)] == [7 * 86400] * 11
    counts = [(w["statuses"], w["logins"], w["registrations"]) for w in weeks]
    # alice and bob signed up this week, carol in the third; alice's token is this week's
    # login, carol's address the second week's, bob's last activity the third week's.
    assert counts[:3] == [("2", "1", "2"), ("1", "1", "0"), ("0", "1", "1")]
    assert counts[3:] == [("0", "0", "0")] * 9

    # Counted at most once an hour per web process: a new status shows up an hour later.
    await status(now)
    assert (await client.get("/api/v1/instance/activity")).json() == weeks
    counted_at, _ = app.state.easel.weekly_activity
    app.state.easel.weekly_activity = (counted_at - 3600, weeks)
    later = (await client.get("/api/v1/instance/activity")).json()
    assert later[0]["statuses"] == "3"
