"""The writer discipline every agentkeep SQLite connection follows, in one place.

Standard library only: both the library's connections (:mod:`.connection`) and the hook's
fast path (:mod:`.fastpath`, which may not import anything heavy) use it.

* The settings every connection gets and reads back (:func:`apply_settings`): a
  connection SQLite did not give them to is refused rather than used.
* The writers' queue: an exclusive ``flock`` on ``state.db.lock`` taken before
  ``BEGIN IMMEDIATE``, polled with sleeps of at most 2 ms (:func:`wait_for_lock`). SQLite's
  own busy handler sleeps up to 100 ms and keeps no queue, so under back-to-back writers
  one process can starve; polling the lock file gives every waiter its turn within a few
  commits. SQLite's locking still provides correctness; the lock file only adds fairness.
"""

from __future__ import annotations

import os
import time

try:
    import fcntl

    HAVE_FLOCK = True
except ImportError:  # pragma: no cover - Windows: SQLite's busy handler only
    HAVE_FLOCK = False

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from collections.abc import Callable
    from typing import Any

SYNCHRONOUS_LEVELS = {"FULL": 2, "NORMAL": 1}
LOCK_SUFFIX = ".lock"  # the queue's lock file: state.db.lock
_MAX_DELAY_S = 0.002


def apply_settings(
    execute: Callable[..., Any], *, synchronous: str, busy_timeout_ms: int
) -> dict[str, int] | None:
    """Give a connection agentkeep's settings and read them back; returns what SQLite
    reported when it differs from what was asked (None: all in force)."""
    for pragma in (
        f"busy_timeout={int(busy_timeout_ms)}",
        "foreign_keys=ON",
        f"synchronous={synchronous}",
        "secure_delete=ON",
    ):
        execute(f"PRAGMA {pragma}")
    got = {
        name: execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("synchronous", "foreign_keys", "busy_timeout", "secure_delete")
    }
    want = {
        "synchronous": SYNCHRONOUS_LEVELS[synchronous],
        "foreign_keys": 1,
        "busy_timeout": int(busy_timeout_ms),
        "secure_delete": 1,
    }
    return None if got == want else got


def open_lock(db_path: str) -> int:
    """The queue's lock file for the database at ``db_path`` (created 0600; never through a
    link), as a file descriptor. Raises OSError."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    return os.open(db_path + LOCK_SUFFIX, flags, 0o600)


def wait_for_lock(fd: int, timeout_s: float) -> bool:
    """Take the queue lock on ``fd``, polling with jittered sleeps that grow to 2 ms;
    False when it was not free within ``timeout_s`` (0: one try)."""
    if not HAVE_FLOCK:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    deadline = time.monotonic() + timeout_s
    delay = 0.0002
    while True:
        now = time.monotonic()
        if now >= deadline:
            return False
        # Jitter from the clock (the hook does not import random): waiters drift apart.
        jitter = 0.5 + (time.perf_counter_ns() % 1000) / 1000
        time.sleep(min(delay * jitter, deadline - now))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            delay = min(delay * 2, _MAX_DELAY_S)


def release_lock(fd: int) -> None:
    """Let the next writer in (the file descriptor stays open)."""
    if HAVE_FLOCK:
        fcntl.flock(fd, fcntl.LOCK_UN)
