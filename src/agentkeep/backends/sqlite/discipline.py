"""The writer discipline every agentkeep SQLite connection follows, in one place.

Standard library only: both the library's connections (:mod:`.connection`) and the hook's
fast path (:mod:`.fastpath`, which may not import anything heavy) use it.

* The settings every connection gets and reads back (:func:`apply_settings`): a
  connection SQLite did not give them to is refused rather than used.
* The writers' queue: an exclusive ``flock`` on ``state.db.lock`` taken before
  ``BEGIN IMMEDIATE`` (:func:`wait_for_lock`). A writer that does not get it at once waits
  *in the kernel's queue* (a blocking ``flock`` in a short-lived helper thread, so the wait
  can time out): the kernel wakes the waiters the moment the holder releases, while the
  holder, back in its caller's code, is not yet asking again. SQLite's own busy handler
  sleeps up to 100 ms and keeps no queue, so under back-to-back writers one process can
  starve; polling the lock file (sleeps of up to 2 ms, the earlier design) left the lock
  idle between holders and let the releaser take it again first (8 writers: p99 116 ms,
  0.41x a raw sqlite3 writer's throughput). SQLite's locking still provides correctness;
  the lock file only adds fairness.
"""

from __future__ import annotations

import os

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
    """Take the queue lock on ``fd``, waiting at most ``timeout_s`` (0: one try).

    False: not free in time. The waiter may still be queued on ``fd``'s open file (it
    gives up the lock at once if it is granted after all), so the caller closes ``fd``
    and opens a new one for its next wait. Any exception (KeyboardInterrupt) means the
    same."""
    if not HAVE_FLOCK:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        if timeout_s <= 0:
            return False
    return _queued_wait(fd, timeout_s)


def _queued_wait(fd: int, timeout_s: float) -> bool:
    """Block on the lock in a helper thread (``flock`` has no timeout of its own) while
    this thread waits for it with the timeout. The helper locks a duplicate of ``fd``
    (the same open file, so the lock is ``fd``'s) and closes that duplicate itself."""
    import _thread  # built in: costs nothing; only waits that queue need it

    waiter_fd = os.dup(fd)
    done = _thread.allocate_lock()
    done.acquire()
    mutex = _thread.allocate_lock()
    outcome: list[bool | None] = [None]  # None: waiting; True: granted; False: given up

    def wait() -> None:
        try:
            try:
                fcntl.flock(waiter_fd, fcntl.LOCK_EX)
                granted = True
            except OSError:
                granted = False
            with mutex:
                if outcome[0] is None:
                    outcome[0] = granted
                elif granted:  # the caller gave up meanwhile: let the next writer in
                    fcntl.flock(waiter_fd, fcntl.LOCK_UN)
        finally:
            os.close(waiter_fd)
            done.release()

    _thread.start_new_thread(wait, ())
    try:
        done.acquire(timeout=timeout_s)
    finally:
        with mutex:
            if outcome[0] is None:
                outcome[0] = False  # given up (timeout, or an exception such as Ctrl-C)
    return outcome[0] is True


def release_lock(fd: int) -> None:
    """Let the next writer in (the file descriptor stays open)."""
    if HAVE_FLOCK:
        fcntl.flock(fd, fcntl.LOCK_UN)
