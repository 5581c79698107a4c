"""Fewer glibc malloc arenas: the web process's memory with threads.

glibc gives each thread that allocates its own malloc arena (up to 8 per core), and memory
freed in one arena is not reused by another. The web process runs threads — an aiosqlite
thread per pooled SQLite connection, the in-process queue's workers — so its resident
memory grew by ~15 MB under load from the arenas alone (bench/timelines.py: 148–151 MB
against the 150 MB target; 133 MB with two arenas). Two arenas is what
``MALLOC_ARENA_MAX=2`` gives, the setting commonly advised for threaded Python servers;
an operator's own ``MALLOC_ARENA_MAX`` wins.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8  # glibc <malloc.h>
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process; False where that does not apply (not
    glibc, or ``MALLOC_ARENA_MAX`` set in the environment)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others: no arenas to cap
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
