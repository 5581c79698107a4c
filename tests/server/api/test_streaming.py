"""The streaming API against real ``easel serve`` processes, read by real clients.

Given a server process (embedded mode; with the suite's Redis as its broker when it has
one), users and tokens made in its database, I expect:

- ``/api/v1/streaming/health`` to answer ``OK`` and the instance to name the stream URL;
- an SSE client (httpx) on ``user`` to get a followed account's post as ``update``, a
  mention as ``notification`` and the deletion as ``delete``, in Mastodon's payloads;
- the ``public`` stream to leave out a blocked and a muted account's posts, and private
  posts; ``hashtag`` and ``list`` streams to carry only theirs;
- a deletion to reach only the streams that could have shown the post: the public and
  hashtag streams a public post's, a private one's its followers, a direct one's those
  it mentions, an unlisted one's the signed-in streams, each its author;
- a WebSocket client (``websockets``) to subscribe and unsubscribe on one connection,
  get ``{"stream", "event", "payload"}`` messages, and errors for bad requests; a token
  offered as the subprotocol to work;
- Mastodon.py's ``stream_user`` to receive an update and a notification;
- bad requests (no token, a bad one, missing scopes, someone else's list, an unknown
  stream, no tag) to be Mastodon's 4xx errors, for SSE and WebSocket alike;
- a post with an image, published by another process once protected (the embedded
  protect child, or an ``easel worker`` with Redis), to reach the stream;
- two web processes on one database (and Redis, or one data directory) to see each
  other's events.

"Nothing arrives" is asserted by order: a stream delivers events in commit order, so once
a later event arrives, an earlier one it should have shown would have come first. Waiting
is on queues with deadlines, never sleeps.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from server.db import Database
from server.models import User
from server.services.accounts import create_user
from server.settings import Settings
from tests.conftest import make_token
from tests.protect import images
from tests.server.test_cli import EASEL, easel, environment, free_port

pytestmark = pytest.mark.slow

START_TIMEOUT = 60.0
EVENT_TIMEOUT = 30.0


# ----------------------------------------------------------------------------- servers

@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/streaming"

    def logs(self) -> str:
        return f"--- server :{self.port} ---\n" + self.log.read_text()[-6000:]


def _start(settings: Settings, port: int, tmp_path: Path, name: str,
           command: list[str] | None = None) -> Server:
    env = environment(settings, EASEL_SCHEME="http", EASEL_RATE_LIMITS="off",
                      EASEL_PUBLIC_CACHE_SECONDS="0", EASEL_ALLOW_PRIVATE_ADDRESSES="1")
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command or [str(EASEL), "serve", "--port", str(port)],
                                   env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    return Server(port=port, process=process, log=log)


def _wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert server.process.poll() is None, server.logs()
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "did not start\n" + server.logs()
        time.sleep(0.1)  # polling a starting process: nothing to wait on


def _stop(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=30)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def served(settings: Settings, port: int) -> Settings:
    """The settings the server process runs with (its ids and links use its address)."""
    return settings.with_changes(domain=f"127.0.0.1:{port}", scheme="http")


@pytest.fixture
def server(served: Settings, port: int, tmp_path: Path) -> Iterator[Server]:
    process = _start(served, port, tmp_path, "serve")
    try:
        _wait_until_up(process)
        yield process
    finally:
        _stop(process)


@dataclass
class Person:
    user: User
    token: str
    api: httpx.Client

    @property
    def account_id(self) -> str:
        return str(self.user.account_id)

    def post(self, path: str, **data: Any) -> Any:
        answer = self.api.post(path, json=data)
        assert answer.status_code == 200, f"POST {path}: {answer.status_code} {answer.text}"
        return answer.json()


async def _person(db: Database, served: Settings, server: Server, name: str,
                  scopes: str = "read write follow") -> Person:
    async with db.session() as session:
        user = await create_user(session, served, username=name, email=f"{name}@example.com",
                                 password="a long enough password")
    token = await make_token(db, user, scopes)
    api = httpx.Client(base_url=server.base_url, timeout=30,
                       headers={"Authorization": f"Bearer {token}"})
    return Person(user, token, api)


@pytest.fixture
async def people(db: Database, served: Settings,
                 server: Server) -> AsyncIterator[dict[str, Person]]:
    found = {name: await _person(db, served, server, name) for name in ("alice", "bob", "carol")}
    yield found
    for person in found.values():
        person.api.close()


# ----------------------------------------------------------------------------- clients

@dataclass
class SSE:
    """An SSE stream read on a thread: ``next()`` waits for the next event (a deadline)."""

    response: httpx.Response
    client: httpx.Client
    events: queue.Queue[tuple[str, str] | None] = field(default_factory=queue.Queue)

    def run(self) -> None:
        event: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    self.events.put((":", line))
                elif line == "":
                    if event:
                        self.events.put((event["event"], event.get("data", "")))
                    event = {}
                else:
                    key, _, value = line.partition(": ")
                    event[key] = value
        except (httpx.HTTPError, RuntimeError):
            pass
        self.events.put(None)

    def next(self) -> tuple[str, str]:
        """The next event (heartbeats skipped), within ``EVENT_TIMEOUT``."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        while True:
            try:
                item = self.events.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError("no stream event in time") from None
            assert item is not None, "the stream ended"
            if item[0] != ":":
                return item

    def next_update(self) -> dict[str, Any]:
        event, data = self.next()
        assert event == "update", (event, data)
        status: dict[str, Any] = json.loads(data)
        return status


@pytest.fixture
def open_sse() -> Iterator[Callable[..., SSE]]:
    opened: list[SSE] = []

    def open_(server: Server, path: str, token: str | None = None, **params: str) -> SSE:
        client = httpx.Client(base_url=server.base_url, timeout=httpx.Timeout(30, read=None))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = client.build_request("GET", f"/api/v1/streaming/{path}", params=params,
                                       headers=headers)
        response = client.send(request, stream=True)
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = SSE(response, client)
        threading.Thread(target=stream.run, daemon=True).start()
        # ":)" comes once the stream is subscribed: from here on nothing is missed.
        assert stream.events.get(timeout=EVENT_TIMEOUT) == (":", ":)")
        opened.append(stream)
        return stream

    yield open_
    for stream in opened:
        stream.response.close()
        stream.client.close()


def _ws_next(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=EVENT_TIMEOUT))
    return message


def _ws_sync(ws: ClientConnection) -> None:
    """Messages are handled in order: once the error for this bad one is back, every
    earlier subscribe or unsubscribe is in effect."""
    ws.send(json.dumps({"type": "subscribe", "stream": "no-such-stream"}))
    assert _ws_next(ws) == {"error": "Unknown stream type", "status": 400}


# ------------------------------------------------------------------------------- tests

def test_health_and_the_instance_streaming_url(server: Server) -> None:
    health = httpx.get(f"{server.base_url}/api/v1/streaming/health")
    assert health.status_code == 200 and health.text == "OK"
    v1 = httpx.get(f"{server.base_url}/api/v1/instance").json()
    assert v1["urls"]["streaming_api"] == f"ws://127.0.0.1:{server.port}"
    v2 = httpx.get(f"{server.base_url}/api/v2/instance").json()
    assert v2["configuration"]["urls"]["streaming"] == f"ws://127.0.0.1:{server.port}"


def test_sse_user_stream_gets_a_followed_post_a_mention_and_the_deletion(
    server: Server, people: dict[str, Person], open_sse: Callable[..., SSE],
) -> None:
    alice, bob = people["alice"], people["bob"]
    alice.post(f"/api/v1/accounts/{bob.account_id}/follow")
    home = open_sse(server, "user", alice.token)

    posted = bob.post("/api/v1/statuses", status="First light on the harbour")
    update = home.next_update()
    assert update["id"] == posted["id"] and update["account"]["acct"] == "bob"
    assert update["content"] == posted["content"] and update["favourited"] is False

    bob.post("/api/v1/statuses", status="@alice what do you think?")
    seen = dict([home.next(), home.next()])  # the post in home, and the notification
    assert set(seen) == {"update", "notification"}
    assert json.loads(seen["notification"])["type"] == "mention"

    answer = bob.api.delete(f"/api/v1/statuses/{posted['id']}")
    assert answer.status_code == 200
    assert home.next() == ("delete", posted["id"])

    own = alice.post("/api/v1/statuses", status="My own post is in my home too")
    assert home.next_update()["id"] == own["id"]


def test_user_stream_gets_edits_filter_changes_and_direct_conversations(
    server: Server, people: dict[str, Person], open_sse: Callable[..., SSE],
) -> None:
    alice, bob = people["alice"], people["bob"]
    alice.post(f"/api/v1/accounts/{bob.account_id}/follow")
    home = open_sse(server, "user", alice.token)
    direct = open_sse(server, "direct", alice.token)

    posted = bob.post("/api/v1/statuses", status="Before the edit")
    assert home.next_update()["id"] == posted["id"]
    edited = bob.api.put(f"/api/v1/statuses/{posted['id']}", json={"status": "After the edit"})
    assert edited.status_code == 200, edited.text
    event, data = home.next()
    assert event == "status.update"
    assert json.loads(data)["id"] == posted["id"] and "After the edit" in json.loads(data)["content"]

    alice.post("/api/v2/filters", title="Spoilers", context=["home"], filter_action="hide",
               keywords_attributes=[{"keyword": "spoiler"}])
    assert home.next() == ("filters_changed", "undefined")
    bob.post("/api/v1/statuses", status="A spoiler about the finale")
    shown = bob.post("/api/v1/statuses", status="No secrets here")
    assert home.next_update()["id"] == shown["id"]  # the filtered one was left out

    message = bob.post("/api/v1/statuses", status="@alice just between us", visibility="direct")
    event, data = direct.next()
    assert event == "conversation"
    conversation = json.loads(data)
    assert conversation["last_status"]["id"] == message["id"] and conversation["unread"] is True
    assert [a["acct"] for a in conversation["accounts"]] == ["bob"]


def test_user_stream_gets_the_admins_announcements_and_their_reactions(
    server: Server, served: Settings, people: dict[str, Person], open_sse: Callable[..., SSE],
    tmp_path: Path,
) -> None:
    alice, bob = people["alice"], people["bob"]
    home = open_sse(server, "user", alice.token)
    notifications = open_sse(server, "user/notification", alice.token)
    env = environment(served, EASEL_SCHEME="http")
    added = easel(["admin", "announcement", "add", "Open studio on Saturday"], env, tmp_path)
    assert added.returncode == 0, added.stderr  # another process: told through the bus
    event, data = home.next()
    assert event == "announcement"
    announced = json.loads(data)
    assert "Open studio on Saturday" in announced["content"] and announced["read"] is False

    reacted = bob.api.put(f"/api/v1/announcements/{announced['id']}/reactions/%F0%9F%8E%A8")
    assert reacted.status_code == 200, reacted.text
    event, data = home.next()
    assert (event, json.loads(data)) == ("announcement.reaction", {
        "name": "🎨", "count": 1, "announcement_id": announced["id"]})

    withdrawn = easel(["admin", "announcement", "unpublish", announced["id"]], env, tmp_path)
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert home.next() == ("announcement.delete", announced["id"])
    bob.post("/api/v1/statuses", status="@alice a mention, after it all")
    event, _ = notifications.next()
    assert event == "notification"  # the notification stream carried no announcement


def test_accepting_a_notification_request_tells_the_streams_to_reload(
    server: Server, people: dict[str, Person], open_sse: Callable[..., SSE],
) -> None:
    alice, bob = people["alice"], people["bob"]
    notifications = open_sse(server, "user/notification", alice.token)
    home = open_sse(server, "user", alice.token)
    bob.post("/api/v1/statuses", status="@alice psst", visibility="direct")  # a stranger: held
    [request] = alice.api.get("/api/v1/notifications/requests").json()
    alice.post(f"/api/v1/notifications/requests/{request['id']}/accept")
    assert notifications.next() == ("notifications_merged", "1")  # nothing before it
    assert home.next() == ("notifications_merged", "1")


def test_sse_notification_stream_carries_only_notifications(
    server: Server, people: dict[str, Person], open_sse: Callable[..., SSE],
) -> None:
    alice, bob = people["alice"], people["bob"]
    alice.post(f"/api/v1/accounts/{bob.account_id}/follow")
    notifications = open_sse(server, "user/notification", alice.token)
    bob.post("/api/v1/statuses", status="Not a notification")
    liked = alice.post("/api/v1/statuses", status="Like this")
    bob.post(f"/api/v1/statuses/{liked['id']}/favourite")
    event, data = notifications.next()
    assert event == "notification"
    payload = json.loads(data)
    assert payload["type"] == "favourite" and payload["account"]["acct"] == "bob"
    assert payload["status"]["id"] == liked["id"]


def test_public_stream_leaves_out_blocked_muted_and_private_posts(
    server: Server, people: dict[str, Person], open_sse: Callable[..., SSE],
) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    alice.post(f"/api/v1/accounts/{carol.account_id}/block")
    public = open_sse(server, "public", alice.token)
    anonymous = open_sse(server, "public/local")

    blocked = carol.post("/api/v1/statuses", status="Blocked: alice must not see this")
    bob.post("/api/v1/statuses", status="Private", visibility="private")
    bob.post("/api/v1/statuses", status="Unlisted", visibility="unlisted")
    shown = bob.post("/api/v1/statuses", status="Public and shown")
    assert public.next_update()["id"] == shown["id"]
    # Blocks are the viewer's: an anonymous stream gets carol's post.
    assert anonymous.next_update()["id"] == blocked["id"]
    assert anonymous.next_update()["id"] == shown["id"]

    alice.post(f"/api/v1/accounts/{bob.account_id}/mute")
    bob.post("/api/v1/statuses", status="Muted now")
    carol.post("/api/v1/statuses", status="Still blocked")
    ours = alice.post("/api/v1/statuses", status="Alice's own")
    assert public.next_update()["id"] == ours["id"]


def test_a_deletion_reaches_only_the_streams_that_could_have_shown_the_post(
    server: Server, people: dict[str, Person], open_sse: Callable[..., SSE],
) -> None:
    """As Mastodon's RemoveStatusService: a deleted post's id (which tells when it was
    written) is no news for streams that never showed it."""
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    alice.post(f"/api/v1/accounts/{bob.account_id}/follow")
    anonymous = open_sse(server, "public")
    tagged = open_sse(server, "hashtag", tag="ink")
    follower = open_sse(server, "user", alice.token)  # and mentioned in the direct post
    stranger = open_sse(server, "user", carol.token)
    author = open_sse(server, "user", bob.token)

    private = bob.post("/api/v1/statuses", status="For followers #ink", visibility="private")
    direct = bob.post("/api/v1/statuses", status="@alice between us #ink", visibility="direct")
    unlisted = bob.post("/api/v1/statuses", status="Quietly #ink", visibility="unlisted")
    public = bob.post("/api/v1/statuses", status="For everyone #ink")
    posted = [private, direct, unlisted, public]
    for status in posted:
        assert bob.api.delete(f"/api/v1/statuses/{status['id']}").status_code == 200

    for stream in (anonymous, tagged):
        assert stream.next_update()["id"] == public["id"]
        assert stream.next() == ("delete", public["id"])  # nothing came before it
    assert stranger.next() == ("delete", unlisted["id"])
    assert stranger.next() == ("delete", public["id"])

    def deletions(stream: SSE) -> list[str]:
        found: list[str] = []
        while len(found) < len(posted):
            event, data = stream.next()
            if event == "delete":
                found.append(data)
        return found

    assert deletions(follower) == [status["id"] for status in posted]
    assert deletions(author) == [status["id"] for status in posted]


def test_hashtag_and_list_streams(
    server: Server, people: dict[str, Person], open_sse: Callable[..., SSE],
) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    alice.post(f"/api/v1/accounts/{bob.account_id}/follow")
    alice.post(f"/api/v1/accounts/{carol.account_id}/follow")
    painters = alice.post("/api/v1/lists", title="Painters")
    alice.post(f"/api/v1/lists/{painters['id']}/accounts", account_ids=[bob.account_id])
    listed = open_sse(server, "list", alice.token, list=painters["id"])
    tagged = open_sse(server, "hashtag", tag="Oil")
    tagged_local = open_sse(server, "hashtag/local", alice.token, tag="oil")

    carol.post("/api/v1/statuses", status="Not in the list, no tag")
    in_list = bob.post("/api/v1/statuses", status="In the list")
    assert listed.next_update()["id"] == in_list["id"]

    oil = carol.post("/api/v1/statuses", status="Wet on wet #oil")
    assert tagged.next_update()["id"] == oil["id"]
    assert tagged_local.next_update()["id"] == oil["id"]


def test_websocket_subscribes_unsubscribes_and_reports_errors(
    server: Server, people: dict[str, Person],
) -> None:
    alice, bob = people["alice"], people["bob"]
    alice.post(f"/api/v1/accounts/{bob.account_id}/follow")
    with connect(f"{server.ws_url}?stream=user&access_token={alice.token}") as ws:
        posted = bob.post("/api/v1/statuses", status="Hello over a socket")
        message = _ws_next(ws)
        assert message["stream"] == ["user"] and message["event"] == "update"
        assert json.loads(message["payload"])["id"] == posted["id"]

        ws.send(json.dumps({"type": "subscribe", "stream": "hashtag", "tag": "ink"}))
        ws.send(json.dumps({"type": "unsubscribe", "stream": "user"}))
        ws.send("not json")
        assert _ws_next(ws) == {"error": "Invalid JSON message", "status": 400}
        ws.send(json.dumps({"type": "subscribe", "stream": "hashtag"}))
        assert _ws_next(ws) == {"error": "No tag for stream provided", "status": 400}
        ws.send(json.dumps({"type": "subscribe", "stream": "list", "list": "12345"}))
        assert _ws_next(ws) == {"error": "Not authorized to stream this list", "status": 401}
        ws.send(json.dumps({"type": "dance"}))
        assert _ws_next(ws) == {"error": "Unknown message type", "status": 400}
        _ws_sync(ws)

        bob.post("/api/v1/statuses", status="Not tagged: user stream is unsubscribed")
        inked = bob.post("/api/v1/statuses", status="Line work #Ink")
        message = _ws_next(ws)
        assert message["stream"] == ["hashtag", "ink"] and message["event"] == "update"
        assert json.loads(message["payload"])["id"] == inked["id"]

        answer = bob.api.delete(f"/api/v1/statuses/{inked['id']}")
        assert answer.status_code == 200
        assert _ws_next(ws) == {"stream": ["hashtag", "ink"], "event": "delete",
                                "payload": inked["id"]}

        # A tag is one subscription whatever its case; channels answer in subscription
        # order, so the hashtag stream's message would come before the public one.
        ws.send(json.dumps({"type": "subscribe", "stream": "public"}))
        ws.send(json.dumps({"type": "unsubscribe", "stream": "hashtag", "tag": "#INK"}))
        _ws_sync(ws)
        again = bob.post("/api/v1/statuses", status="More #ink")
        message = _ws_next(ws)
        assert message["stream"] == ["public"] and json.loads(message["payload"])["id"] == again["id"]


def test_websocket_token_as_subprotocol_and_anonymous_public(
    server: Server, people: dict[str, Person],
) -> None:
    alice, bob = people["alice"], people["bob"]
    with connect(f"{server.ws_url}?stream=user:notification",
                 subprotocols=[alice.token]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == alice.token
        with connect(f"{server.ws_url}?stream=public") as anonymous:
            posted = alice.post("/api/v1/statuses", status="Seen by anyone")
            message = _ws_next(anonymous)
            assert message["stream"] == ["public"]
            assert json.loads(message["payload"])["id"] == posted["id"]
        bob.post(f"/api/v1/statuses/{posted['id']}/favourite")
        message = _ws_next(ws)
        assert message["stream"] == ["user:notification"] and message["event"] == "notification"
        assert json.loads(message["payload"])["type"] == "favourite"


BAD_REQUESTS = [  # path, params, token, status, error
    ("user", {}, None, 401, "Missing access token"),
    ("user", {}, "not-a-token", 401, "Invalid access token"),
    ("user/notification", {}, "write-only", 401, "Access token does not cover required scopes"),
    ("direct", {}, "app-only", 401, "This stream requires an authenticated user"),
    ("hashtag", {}, None, 400, "No tag for stream provided"),
    ("hashtag", {"tag": "#"}, None, 400, "No tag for stream provided"),
    ("list", {}, "alice", 400, "No list for stream provided"),
    ("list", {"list": "bob's"}, "alice", 401, "Not authorized to stream this list"),
    ("list", {"list": "12x"}, "alice", 400, "No list for stream provided"),
]


async def test_bad_stream_requests_are_mastodon_errors(
    server: Server, people: dict[str, Person], db: Database,
) -> None:
    alice, bob = people["alice"], people["bob"]
    tokens = {"alice": alice.token, "not-a-token": "not-a-token",
              "write-only": await make_token(db, alice.user, "write"),
              "app-only": await make_token(db, None, "read")}
    bobs_list = bob.post("/api/v1/lists", title="Bob's")["id"]
    unknown = httpx.get(f"{server.base_url}/api/v1/streaming/nowhere",
                        headers={"Authorization": f"Bearer {alice.token}"})
    assert unknown.status_code == 404 and unknown.json() == {"error": "Unknown stream type"}
    for path, params, token, status, error in BAD_REQUESTS:
        if params.get("list") == "bob's":
            params = {"list": bobs_list}
        headers = {"Authorization": f"Bearer {tokens[token]}"} if token else {}
        answer = httpx.get(f"{server.base_url}/api/v1/streaming/{path}", params=params,
                           headers=headers, timeout=30)
        assert (answer.status_code, answer.json()) == (status, {"error": error}), path
        # The same refusal on the WebSocket handshake.
        stream = {"user/notification": "user:notification"}.get(path, path)
        query = "&".join([f"stream={stream}", *(f"{k}={v}" for k, v in params.items()),
                          *([f"access_token={tokens[token]}"] if token else [])])
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{server.ws_url}?{query}")
        assert refused.value.response.status_code == status, path
        assert json.loads(refused.value.response.body or b"{}") == {"error": error}, path
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{server.ws_url}?stream=nowhere")
    assert refused.value.response.status_code == 400


def test_mastodon_py_stream_user(server: Server, people: dict[str, Person]) -> None:
    from mastodon import Mastodon, StreamListener

    alice, bob = people["alice"], people["bob"]
    alice.post(f"/api/v1/accounts/{bob.account_id}/follow")
    received: queue.Queue[tuple[str, Any]] = queue.Queue()

    class Listener(StreamListener):
        def on_update(self, status: Any) -> None:
            received.put(("update", status))

        def on_notification(self, notification: Any) -> None:
            received.put(("notification", notification))

        def handle_heartbeat(self) -> None:
            received.put(("heartbeat", None))

    api = Mastodon(access_token=alice.token, api_base_url=server.base_url,
                   version_check_mode="none")
    handle = api.stream_user(Listener(), run_async=True, timeout=60)
    try:
        assert received.get(timeout=EVENT_TIMEOUT)[0] == "heartbeat"  # ":)" — subscribed
        posted = bob.post("/api/v1/statuses", status="@alice for Mastodon.py")
        kinds: dict[str, Any] = {}
        while len(kinds) < 2:
            kind, item = received.get(timeout=EVENT_TIMEOUT)
            if kind != "heartbeat":
                kinds[kind] = item
        assert str(kinds["update"]["id"]) == posted["id"]
        assert kinds["notification"]["type"] == "mention"
    finally:
        handle.close()


def test_a_post_published_by_another_process_reaches_the_stream(
    served: Settings, server: Server, people: dict[str, Person], open_sse: Callable[..., SSE],
    tmp_path: Path,
) -> None:
    """The image is protected (and the post published) by the embedded protect child, or,
    with a broker, by an ``easel worker``: another process, whose event comes over the
    sibling socket or Redis."""
    alice = people["alice"]
    worker = None
    if served.broker_url:
        worker = _start(served, 0, tmp_path, "worker", [str(EASEL), "worker"])
    try:
        home = open_sse(server, "user", alice.token)
        upload = alice.api.post("/api/v2/media",
                                files={"file": ("work.jpg", images.jpeg((96, 64)), "image/jpeg")})
        assert upload.status_code in (200, 202), upload.text
        posted = alice.post("/api/v1/statuses", status="Harbour at dawn",
                            media_ids=[upload.json()["id"]])
        update = home.next_update()
        # Published under a new id once its image is ready.
        assert update["content"] == posted["content"] and update["id"] != posted["id"]
        assert update["media_attachments"][0]["url"]
    finally:
        if worker is not None:
            _stop(worker)


def test_two_web_processes_see_each_others_events(
    served: Settings, server: Server, people: dict[str, Person], open_sse: Callable[..., SSE],
    tmp_path: Path,
) -> None:
    """A second ``easel serve`` on the same database (and Redis broker, or data directory):
    a post made through one reaches streams open on the other, both ways."""
    alice, bob = people["alice"], people["bob"]
    second_port = free_port()
    second = _start(served, second_port, tmp_path, "second")
    try:
        _wait_until_up(second)
        on_first = open_sse(server, "public", alice.token)
        on_second = open_sse(second, "public", alice.token)
        with connect(f"{second.ws_url}?stream=user&access_token={alice.token}") as ws:
            alice.post(f"/api/v1/accounts/{bob.account_id}/follow")
            posted = bob.post("/api/v1/statuses", status="Posted through the first")
            assert on_second.next_update()["id"] == posted["id"]
            assert on_first.next_update()["id"] == posted["id"]
            message = _ws_next(ws)
            assert message["event"] == "update"
            assert json.loads(message["payload"])["id"] == posted["id"]
            with httpx.Client(base_url=second.base_url, timeout=30,
                              headers={"Authorization": f"Bearer {bob.token}"}) as via_second:
                other = via_second.post("/api/v1/statuses", json={"status": "Through the second"})
                assert other.status_code == 200, other.text
            assert on_first.next_update()["id"] == other.json()["id"]
            assert on_second.next_update()["id"] == other.json()["id"]
    finally:
        _stop(second)


def test_an_sse_stream_stamps_its_login_as_used_while_it_is_open(
    served: Settings, server: Server, people: dict[str, Person], open_sse: Callable[..., SSE],
) -> None:
    """The stream's request lasts until its client leaves: the login's use (the token's
    stamp, the address) is written before the stream's first byte, not at its end."""
    import asyncio

    from sqlalchemy import select

    from server.models import OAuthToken, UserIp
    from server.services.tokens import token_digest

    alice = people["alice"]  # a token never used before
    stream = open_sse(server, "user", alice.token)

    async def stamped() -> tuple[object, list[str]]:
        db = Database.from_settings(served)
        try:
            async with db.session() as session:
                used = await session.scalar(select(OAuthToken.last_used_at).where(
                    OAuthToken.token_digest == token_digest(alice.token)))
                addresses = list(await session.scalars(select(UserIp.ip).where(
                    UserIp.user_id == alice.user.id)))
            return used, addresses
        finally:
            await db.dispose()

    used, addresses = asyncio.run(stamped())
    assert used is not None and addresses == ["127.0.0.1"]
    assert not stream.response.is_closed  # still open
