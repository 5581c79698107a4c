"""``server.memory``: glibc's malloc arenas are capped for every easel command, unless the
operator set ``MALLOC_ARENA_MAX`` themselves."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from server.memory import limit_malloc_arenas

glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not glibc, reason="arenas are glibc's")
def test_arenas_are_capped_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is True


def test_the_operators_own_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


@pytest.mark.skipif(not glibc, reason="arenas are glibc's")
def test_threads_share_the_capped_arenas() -> None:
    # In a fresh interpreter: threads that allocate get their own arenas without the cap
    # (glibc's malloc_stats lists each one on stderr), and share at most two with it. The
    # threads wait for each other before they end: a thread that starts after another ended
    # takes over the ended one's arena, so threads run one after another use one or two.
    script = """
import ctypes, sys, threading
from server.memory import limit_malloc_arenas
if sys.argv[1] == "capped":
    assert limit_malloc_arenas()
alive = threading.Barrier(8)
def work():
    blocks = [bytearray(4096) for _ in range(2000)]
    alive.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""
    def arenas(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True,
                              text=True, check=True, env={"PATH": "/usr/bin:/bin",
                                                          "PYTHONPATH": "."})
        return done.stderr.count("Arena ")

    assert arenas("capped") <= 2
    assert arenas("default") > 2
