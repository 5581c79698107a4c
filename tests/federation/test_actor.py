from __future__ import annotations

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import update

from server.db import Database
from server.models import Account, User

AS2_ACCEPTS = [
    "application/activity+json",
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
    "application/ld+json",
    'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
]


@pytest.mark.parametrize("accept", AS2_ACCEPTS)
async def test_the_actor_document_carries_everything_servers_read(
    client: httpx.AsyncClient, alice: User, accept: str
) -> None:
    response = await client.get("/users/alice", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/activity+json")
    actor = response.json()
    base = "https://easel.test/users/alice"
    assert actor["@context"][:2] == [
        "https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"]
    assert isinstance(actor["@context"][2], dict)
    assert actor["id"] == base
    assert actor["type"] == "Person"
    assert actor["preferredUsername"] == "alice"
    assert actor["name"] == "alice"
    assert actor["summary"] == ""
    assert actor["inbox"] == base + "/inbox"
    assert actor["outbox"] == base + "/outbox"
    assert actor["followers"] == base + "/followers"
    assert actor["following"] == base + "/following"
    assert actor["featured"] == base + "/collections/featured"
    assert actor["endpoints"] == {"sharedInbox": "https://easel.test/inbox"}
    assert actor["url"] == "https://easel.test/@alice"
    assert actor["icon"] == {"type": "Image", "mediaType": "image/png",
                             "url": "https://easel.test/static/avatar.png"}
    assert actor["manuallyApprovesFollowers"] is False
    assert actor["discoverable"] is True
    assert actor["indexable"] is False
    key = actor["publicKey"]
    assert key["id"] == base + "#main-key"
    assert key["owner"] == base
    assert key["publicKeyPem"] == alice.account.public_key_pem
    serialization.load_pem_public_key(key["publicKeyPem"].encode())
    assert "privateKey" not in response.text and "PRIVATE KEY" not in response.text


async def test_a_browser_is_sent_to_the_profile_page(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.get("/users/alice", headers={"Accept": "text/html"})
    assert response.status_code == 302
    assert response.headers["location"] == "https://easel.test/@alice"
    page = await client.get("/@alice", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<link rel="alternate" type="application/activity+json" ' \
           'href="https://easel.test/users/alice">' in page.text


async def test_an_activitypub_reader_at_the_profile_url_is_sent_to_the_actor(
    client: httpx.AsyncClient, alice: User
) -> None:
    response = await client.get("/@alice", headers={"Accept": "application/activity+json"})
    assert response.status_code == 302
    assert response.headers["location"] == "https://easel.test/users/alice"


async def test_profile_text_is_escaped_on_the_page(
    client: httpx.AsyncClient, alice: User, db: Database
) -> None:
    async with db.session() as session:
        await session.execute(update(Account).where(Account.id == alice.account_id).values(
            display_name="<script>alert(1)</script>", note="<img src=x onerror=alert(1)>"))
        await session.commit()
    page = await client.get("/@alice")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert "<img src=x" not in page.text


@pytest.mark.parametrize("path", ["/users/nobody", "/@nobody"])
async def test_unknown_people_are_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"Accept": "application/activity+json"})
    assert response.status_code == 404


async def test_the_instance_actor_is_an_application(client: httpx.AsyncClient) -> None:
    response = await client.get("/actor", headers={"Accept": "application/activity+json"})
    actor = response.json()
    assert actor["type"] == "Application"
    assert actor["id"] == "https://easel.test/actor"
    assert actor["preferredUsername"] == "easel.test"
    assert actor["publicKey"]["id"] == "https://easel.test/actor#main-key"


async def test_the_default_avatar_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/avatar.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


async def test_an_uploaded_avatar_is_the_actor_icon(client: httpx.AsyncClient, alice_api: httpx.AsyncClient,
                                                    alice: User) -> None:
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(png, "PNG")
    response = await alice_api.patch("/api/v1/accounts/update_credentials",
                                     files={"avatar": ("a.png", png.getvalue(), "image/png")})
    assert response.status_code == 200
    avatar = response.json()["avatar"]
    actor = (await client.get("/users/alice", headers={"Accept": "application/activity+json"})).json()
    assert actor["icon"]["url"] == avatar
    assert avatar.startswith("https://easel.test/system/")
