"""Two real ``easel serve`` processes federating over loopback HTTP.

Given art and paint, each a real server process on its own port (plain HTTP, private
addresses allowed, embedded queue: deliveries and inbox processing run inside the server,
protection in its child worker), users made with ``easel admin create-user`` and tokens
from the password grant, I expect what the in-process stories show to hold over real
sockets: a follow (and a locked account's approval), a post with an image and a hashtag
arriving in the follower's home, a like and a boost counted and notified, a reply in the
thread, a profile update, undoing the like, the boost and the follow, and a deletion.
Everything is read through the client API, polling with deadlines (a server answers in
its own time).

Each server has its own database: on SQLite a file per data directory; on PostgreSQL the
suite's test database and its ``_b`` twin (see ``conftest.py``). The servers always run
the embedded queue, even when the suite has a broker: two instances sharing one Redis
namespace would take each other's jobs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from server.settings import Settings
from tests.protect import images
from tests.server.test_cli import EASEL, free_port

pytestmark = pytest.mark.slow

T = TypeVar("T")
START_TIMEOUT = 60.0
STORY_TIMEOUT = 30.0  # for one thing to arrive on the other server
PASSWORD = "a long enough password"


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    cwd: Path
    log: Path

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.domain}"

    def logs(self) -> str:
        return f"--- {self.name} ({self.domain}) log tail ---\n" + self.log.read_text()[-6000:]

    def create_user(self, username: str, *, locked: bool = False) -> Account:
        done = subprocess.run([str(EASEL), "admin", "create-user", username, "--email",
                               f"{username}@example.com", "--password", PASSWORD],
                              env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr + self.logs()
        account = Account(server=self, username=username, api=self.login(username))
        if locked:
            answer = account.api.patch("/api/v1/accounts/update_credentials", data={"locked": "true"})
            assert answer.status_code == 200, answer.text
        return account

    def login(self, username: str) -> httpx.Client:
        """An app registered and a token from the password grant, as a client would."""
        http = httpx.Client(base_url=self.base_url, timeout=30)
        app = http.post("/api/v1/apps", data={"client_name": "e2e", "scopes": "read write follow",
                                              "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"}).json()
        token = http.post("/oauth/token", data={
            "grant_type": "password", "username": f"{username}@example.com", "password": PASSWORD,
            "client_id": app["client_id"], "client_secret": app["client_secret"],
            "scope": "read write follow"})
        assert token.status_code == 200, token.text
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        return http


@dataclass
class Account:
    server: Server
    username: str
    api: httpx.Client

    @property
    def handle(self) -> str:
        return f"{self.username}@{self.server.domain}"

    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params=params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def post(self, path: str, **data: Any) -> Any:
        response = self.api.post(path, json=data)
        assert response.status_code in (200, 202), f"POST {path}: {response.status_code} {response.text}"
        return response.json()


def environment(port: int, data_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
    env.update({
        "EASEL_DOMAIN": f"127.0.0.1:{port}",
        "EASEL_SCHEME": "http",
        "EASEL_DATA_DIR": str(data_dir),
        "EASEL_DATABASE_URL": database_url,
        "EASEL_ALLOW_PRIVATE_ADDRESSES": "1",
        "EASEL_RATE_LIMITS": "off",
        "EASEL_REGISTRATIONS": "open",
        "EASEL_PUBLIC_CACHE_SECONDS": "0",
    })
    return env


def start(name: str, tmp_path: Path, database_url: str) -> Server:
    port = free_port()
    cwd = tmp_path / name
    cwd.mkdir(parents=True, exist_ok=True)
    env = environment(port, cwd / "data", database_url)
    log = cwd / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(EASEL), "serve", "--port", str(port)], env=env, cwd=cwd,
                                   stdout=out, stderr=subprocess.STDOUT)
    return Server(name=name, port=port, process=process, env=env, cwd=cwd, log=log)


def wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert server.process.poll() is None, server.logs()
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "did not start\n" + server.logs()
        time.sleep(0.1)


def stop(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=30)


@pytest.fixture
def servers(settings: Settings, peer_database: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    art = start("art", tmp_path, settings.database_url)
    paint = start("paint", tmp_path, peer_database)
    try:
        wait_until_up(art)
        wait_until_up(paint)
        yield art, paint
    finally:
        stop(art)
        stop(paint)


def eventually(check: Callable[[], T | None], what: str, *servers: Server,
               timeout: float = STORY_TIMEOUT) -> T:
    """Poll ``check`` until it returns something true (not None, False or empty), or fail
    with the servers' logs once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(s.logs() for s in servers))
        time.sleep(0.1)


def resolve(person: Account, handle: str) -> dict[str, Any]:
    found = person.get("/api/v2/search", q=handle, resolve="true", type="accounts")
    matches = [a for a in found["accounts"] if a["acct"] == handle]
    assert matches, found
    account: dict[str, Any] = matches[0]
    return account


def test_two_servers_follow_post_like_boost_reply_update_undo_and_delete(
    servers: tuple[Server, Server],
) -> None:
    art, paint = servers
    alice = art.create_user("alice")
    bob = paint.create_user("bob")
    carol = paint.create_user("carol", locked=True)
    both = (art, paint)

    # alice follows bob (unlocked) and asks carol (locked), who approves.
    bob_there = resolve(alice, bob.handle)
    assert bob_there["url"].startswith(paint.base_url)
    alice.post(f"/api/v1/accounts/{bob_there['id']}/follow")
    carol_there = resolve(alice, carol.handle)
    assert alice.post(f"/api/v1/accounts/{carol_there['id']}/follow")["requested"] is True

    def relationship(account_id: str) -> dict[str, Any]:
        rows: list[dict[str, Any]] = alice.get("/api/v1/accounts/relationships", **{"id[]": account_id})
        return rows[0]

    eventually(lambda: relationship(bob_there["id"])["following"], "alice to follow bob", *both)
    requests = eventually(lambda: carol.get("/api/v1/follow_requests"), "carol's follow request", *both)
    assert [r["acct"] for r in requests] == [alice.handle]
    carol.post(f"/api/v1/follow_requests/{requests[0]['id']}/authorize")
    eventually(lambda: relationship(carol_there["id"])["following"], "carol's approval", *both)
    assert bob.get("/api/v1/accounts/verify_credentials")["followers_count"] == 1

    # bob posts an image with a hashtag; it arrives in alice's home.
    upload = bob.api.post("/api/v2/media", files={"file": ("work.jpg", images.jpeg((96, 64)), "image/jpeg")},
                          data={"description": "Fresh paint"})
    assert upload.status_code == 202, upload.text
    media_id = upload.json()["id"]

    def processed() -> str | None:  # 206 while the protect worker is at it, as Mastodon
        media = bob.api.get(f"/api/v1/media/{media_id}")
        assert media.status_code in (200, 206), media.text
        url: str | None = media.json()["url"] if media.status_code == 200 else None
        return url

    eventually(processed, "the image's protection", paint)
    original = bob.post("/api/v1/statuses", status="Fresh paint #oil", media_ids=[media_id])

    def arrived() -> dict[str, Any] | None:
        return next((s for s in alice.get("/api/v1/timelines/home") if s["uri"] == original["uri"]), None)

    copy = eventually(arrived, "bob's post in alice's home", *both)
    assert copy["account"]["acct"] == bob.handle
    assert [t["name"].lower() for t in copy["tags"]] == ["oil"]
    [media] = copy["media_attachments"]
    assert media["url"].startswith(paint.base_url) and media["description"] == "Fresh paint"
    assert httpx.get(media["url"]).status_code == 200

    # alice likes, boosts and replies; bob sees each.
    alice.post(f"/api/v1/statuses/{copy['id']}/favourite")
    alice.post(f"/api/v1/statuses/{copy['id']}/reblog")
    reply = alice.post("/api/v1/statuses", status=f"@{bob.handle} wonderful",
                       in_reply_to_id=copy["id"])

    def counted(favourites: int, reblogs: int) -> Callable[[], bool]:
        def check() -> bool:
            seen = bob.get(f"/api/v1/statuses/{original['id']}")
            return bool((seen["favourites_count"], seen["reblogs_count"]) == (favourites, reblogs))
        return check

    eventually(counted(1, 1), "the like and the boost on paint", *both)
    kinds = {(n["type"], n["account"]["acct"]) for n in bob.get("/api/v1/notifications")}
    assert {("favourite", alice.handle), ("reblog", alice.handle), ("follow", alice.handle)} <= kinds
    thread = eventually(lambda: bob.get(f"/api/v1/statuses/{original['id']}/context")["descendants"],
                        "alice's reply in bob's thread", *both)
    assert [s["uri"] for s in thread] == [reply["uri"]]
    eventually(lambda: any(n["type"] == "mention" for n in bob.get("/api/v1/notifications")),
               "the mention notification", *both)

    # bob renames himself; alice sees it.
    assert bob.api.patch("/api/v1/accounts/update_credentials",
                         data={"display_name": "Bob Painter"}).status_code == 200
    eventually(lambda: alice.get(f"/api/v1/accounts/{bob_there['id']}")["display_name"] == "Bob Painter",
               "bob's new name on art", *both)

    # alice takes back the like and the boost, then bob deletes his post.
    alice.post(f"/api/v1/statuses/{copy['id']}/unfavourite")
    alice.post(f"/api/v1/statuses/{copy['id']}/unreblog")
    eventually(counted(0, 0), "the undone like and boost on paint", *both)
    assert bob.api.delete(f"/api/v1/statuses/{original['id']}").status_code == 200
    eventually(lambda: alice.api.get(f"/api/v1/statuses/{copy['id']}").status_code == 404,
               "the deletion on art", *both)

    # alice unfollows bob.
    alice.post(f"/api/v1/accounts/{bob_there['id']}/unfollow")
    eventually(lambda: bob.get("/api/v1/accounts/verify_credentials")["followers_count"] == 0,
               "the unfollow on paint", *both)
    for person in (alice, bob, carol):
        person.api.close()
