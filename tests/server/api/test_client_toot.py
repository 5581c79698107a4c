"""toot (the PyPI command-line client) against a live Easel: both logins (password on the
console, and the browser flow with a pasted code), posting with and without an image,
timelines, follows (unlocked and locked), favourites, reblogs and notifications.

toot runs as a subprocess, each user with their own config folder under the test's tmp
folder (never the real one), stdin given explicitly and a timeout on every run.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import httpx
import pytest

from server.settings import Settings
from tests.protect import images
from tests.server.api.live import LiveServer, authorization_code, live_server

pytestmark = pytest.mark.slow

TOOT = str(Path(sys.executable).with_name("toot"))
PASSWORD = "a long enough password"
TIMEOUT = 60.0


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings) as live:
        yield live


class Toot(Protocol):
    def __call__(self, *args: str, stdin: str = "") -> str: ...


def toot_env(home: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOOT_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               XDG_DATA_HOME=str(home / "share"), NO_PROXY="127.0.0.1", no_proxy="127.0.0.1",
               TERM="dumb", COLUMNS="120", PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8",
               PYTHONWARNINGS="ignore")
    return env


def run_toot(home: Path, *args: str, stdin: str = "") -> str:
    """Run ``toot ARGS`` as the user whose config lives in ``home``; return its stdout."""
    done = subprocess.run([TOOT, "--no-color", *args], input=stdin, capture_output=True, text=True,
                          timeout=TIMEOUT, env=toot_env(home), check=False)
    assert done.returncode == 0, f"toot {' '.join(args)} → {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def last_json(output: str) -> Any:
    """The JSON document toot printed last (``--json`` output may follow progress lines)."""
    for line in reversed(output.strip().splitlines()):
        if line.startswith(("{", "[")):
            return json.loads(line)
    raise AssertionError(f"no JSON in toot's output:\n{output}")


def logged_in(server: LiveServer, tmp_path: Path, username: str) -> Toot:
    """Create ``username`` on the server and log toot in as them with ``login_cli``."""
    server.create_user(username, PASSWORD)
    home = tmp_path / username
    home.mkdir()
    output = run_toot(home, "login_cli", "-i", server.base_url, "-e", f"{username}@example.com",
                      "-p", PASSWORD)
    assert "Successfully logged in" in output

    def toot(*args: str, stdin: str = "") -> str:
        return run_toot(home, *args, stdin=stdin)

    return toot


def post_with_image(server: LiveServer, home: Path, image: Path, text: str) -> dict[str, Any]:
    """``toot post --media``: toot uploads, then polls the attachment until it has a URL;
    meanwhile the protection queue runs here, as a protection worker would."""
    process = subprocess.Popen(
        [TOOT, "--no-color", "post", "--media", str(image), "--description", "A green square",
         "--json", text],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=toot_env(home))
    try:
        deadline = time.monotonic() + TIMEOUT
        while process.poll() is None and server.run_protect() == 0:
            assert time.monotonic() < deadline, "toot never uploaded the image"
            try:
                process.wait(0.05)
            except subprocess.TimeoutExpired:
                pass
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, f"{stdout}\n{stderr}"
    assert "Waiting for media to finish processing" in stdout  # the upload answered 202, no URL yet
    status: dict[str, Any] = last_json(stdout)
    return status


def test_toot_logs_in_posts_with_an_image_and_reads_timelines(server: LiveServer, tmp_path: Path) -> None:
    toot = logged_in(server, tmp_path, "alice")
    me = last_json(toot("whoami", "--json"))
    assert me["username"] == "alice" and me["acct"] == "alice"
    assert "@alice" in toot("whoami")
    assert "alice@127.0.0.1" in toot("auth")

    hello = last_json(toot("post", "hello #art", "--json"))
    assert "hello" in hello["content"] and [tag["name"] for tag in hello["tags"]] == ["art"]

    image = tmp_path / "square.png"
    image.write_bytes(images.png())
    work = post_with_image(server, tmp_path / "alice", image, "A new piece #painting")
    assert [tag["name"] for tag in work["tags"]] == ["painting"]
    [attachment] = work["media_attachments"]
    assert attachment["type"] == "image" and attachment["description"] == "A green square"
    assert attachment["url"].startswith(server.base_url)
    assert httpx.get(attachment["url"], timeout=30).status_code == 200

    home = [status["id"] for status in last_json(toot("timelines", "home", "--json", "--no-pager"))]
    assert home[:2] == [work["id"], hello["id"]]
    public = [status["id"] for status in last_json(toot("timelines", "public", "--json", "--no-pager"))]
    assert public[:2] == [work["id"], hello["id"]]
    tagged = last_json(toot("timelines", "tag", "painting", "--json", "--no-pager"))
    assert [status["id"] for status in tagged] == [work["id"]]
    shown = toot("timeline", "--once")  # the deprecated printing command
    assert "hello" in shown and "A new piece" in shown
    assert "A new piece" in toot("timeline", "--tag", "painting", "--once")
    anonymous = toot("timeline", "--instance", server.base_url, "--public", "--once")
    assert "hello" in anonymous and "A new piece" in anonymous
    assert "#painting" in toot("search", "painting")
    assert "Easel" in toot("instance")

    toot("delete", hello["id"])
    home = [status["id"] for status in last_json(toot("timelines", "home", "--json", "--no-pager"))]
    assert home == [work["id"]]


def test_toot_follows_favourites_reblogs_and_reads_notifications(server: LiveServer, tmp_path: Path) -> None:
    alice, bob, carol = (logged_in(server, tmp_path, name) for name in ("alice", "bob", "carol"))
    assert last_json(carol("update_account", "--locked", "--json"))["locked"] is True

    post = last_json(alice("post", "Hello @bob, a new canvas #art", "--json"))
    assert [mention["username"] for mention in post["mentions"]] == ["bob"]

    assert "@alice" in bob("whois", "alice")
    assert last_json(bob("follow", "alice", "--json"))["following"] is True
    requested = last_json(bob("follow", "carol", "--json"))
    assert requested["following"] is False and requested["requested"] is True
    waiting = last_json(carol("follow-requests", "list", "--json"))
    assert [account["username"] for account in waiting] == ["bob"]
    assert "requested to follow you" in carol("notifications")
    assert last_json(carol("follow-requests", "accept", "bob", "--json"))["followed_by"] is True
    assert last_json(carol("follow-requests", "list", "--json")) == []
    following = last_json(bob("following", "--json"))
    assert sorted(account["username"] for account in following) == ["alice", "carol"]

    assert last_json(bob("favourite", post["id"], "--json"))["favourited"] is True
    reblog = last_json(bob("reblog", post["id"], "--json"))
    assert reblog["reblog"]["id"] == post["id"] and reblog["reblog"]["reblogged"] is True
    assert post["id"] in [s["id"] for s in last_json(bob("timelines", "home", "--json", "--no-pager"))]

    notifications = last_json(alice("notifications", "--json"))
    assert sorted(n["type"] for n in notifications) == ["favourite", "follow", "reblog"]
    assert {n["account"]["username"] for n in notifications} == {"bob"}
    printed = alice("notifications")
    for line in ("now follows you", "favourited your status", "boosted your status"):
        assert line in printed
    mentions = last_json(bob("notifications", "--type", "mention", "--json"))
    assert [(n["type"], n["status"]["id"]) for n in mentions] == [("mention", post["id"])]


def test_toot_logs_in_through_the_browser_with_a_pasted_code(server: LiveServer, tmp_path: Path) -> None:
    server.create_user("alice", PASSWORD)
    home = tmp_path / "alice"
    home.mkdir()
    with subprocess.Popen([TOOT, "--no-color", "login", "-i", server.base_url],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=toot_env(home)) as process:
        output, stderr = _log_in_in_the_browser(server, process)
    assert process.returncode == 0, f"{output}\n{stderr}"
    assert "Successfully logged in" in output
    assert last_json(run_toot(home, "whoami", "--json"))["username"] == "alice"


def _log_in_in_the_browser(server: LiveServer, process: subprocess.Popen[str]) -> tuple[str, str]:
    """Read the login URL toot prints, get a code through the pages, answer toot's prompts
    (no browser; then the code) and return what toot printed on stdout and stderr."""
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def read(stream: IO[str]) -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    reader = threading.Thread(target=read, args=(process.stdout,), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        url = ""
        while not url:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line, f"toot ended before printing the login URL: {seen}"
            seen.append(line)
            if line.startswith(f"{server.base_url}/oauth/authorize"):
                url = line.strip()
        with httpx.Client(base_url=server.base_url, timeout=30) as browser:
            code = authorization_code(browser, url, "alice", PASSWORD)
        process.stdin.write(f"n\n{code}\n")
        process.stdin.close()
        process.wait(TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)
        reader.join(TIMEOUT)
    while (line := lines.get(timeout=TIMEOUT)) != "":
        seen.append(line)
    return "".join(seen), process.stderr.read()
