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

import _thread  # built in, no import cost: the queue's helper threads
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
    wait = _Wait(os.dup(fd))
    try:
        _Helper.run(wait)
    except RuntimeError:  # no thread to be had (a pids limit): poll, as before the queue
        os.close(wait.fd)
        return _polled_wait(fd, timeout_s)
    try:
        wait.done.acquire(True, timeout_s)
    finally:
        with wait.mutex:
            if wait.outcome is None:
                wait.outcome = False  # given up (timeout, or an exception such as Ctrl-C)
    return wait.outcome is True


def _polled_wait(fd: int, timeout_s: float) -> bool:
    """Poll the lock with sleeps that grow to 2 ms (jittered from the clock: the hook does
    not import random) until ``timeout_s``: the wait of a process that cannot start a
    helper thread."""
    import time

    deadline = time.monotonic() + timeout_s
    delay = 0.0002
    while True:
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(delay * (0.5 + (time.perf_counter_ns() % 1000) / 1000), deadline - now))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            delay = min(delay * 2, 0.002)


class _Wait:
    """One queued wait: the helper's descriptor, and what came of it."""

    __slots__ = ("done", "fd", "mutex", "outcome")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.mutex = _thread.allocate_lock()
        self.outcome: bool | None = None  # None: waiting; True: granted; False: given up

    def block(self) -> None:
        try:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
                granted = True
            except OSError:
                granted = False
            with self.mutex:
                if self.outcome is None:
                    self.outcome = granted
                elif granted:  # the caller gave up meanwhile: let the next writer in
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.done.release()


class _Helper:
    """A thread that blocks on the lock for a waiting writer, kept for the next wait:
    starting a thread per wait cost ~100 us of CPU per write with 8 writers. A wait that
    finds it busy (another thread's wait, or a given-up wait still queued) gets a thread
    of its own. It ends after ``_HELPER_IDLE_S`` without a wait, so a process is only
    multi-threaded while it is contending for the lock (``fork()`` warns about threads)."""

    _idle: _Helper | None = None

    def __init__(self) -> None:
        self.start = _thread.allocate_lock()
        self.start.acquire()
        self.wait: _Wait | None = None
        _thread.start_new_thread(self._serve, ())

    @classmethod
    def run(cls, wait: _Wait) -> None:
        with _POOL:
            helper, cls._idle = cls._idle, None
        if helper is None:
            helper = _Helper()
        helper.wait = wait
        helper.start.release()

    def _serve(self) -> None:
        while True:
            if not self.start.acquire(True, _HELPER_IDLE_S):
                with _POOL:
                    if _Helper._idle is self:  # not taken meanwhile: end with the burst
                        _Helper._idle = None
                        return
                continue  # taken just now: its wait is on the way
            wait, self.wait = self.wait, None
            assert wait is not None
            wait.block()
            with _POOL:
                if _Helper._idle is not None:
                    return  # one spare is enough
                _Helper._idle = self


_POOL = _thread.allocate_lock()
_HELPER_IDLE_S = 2.0


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads (and maybe a held pool lock)."""
    global _POOL
    _POOL = _thread.allocate_lock()
    _Helper._idle = None


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def release_lock(fd: int) -> None:
    """Let the next writer in (the file descriptor stays open)."""
    if HAVE_FLOCK:
        fcntl.flock(fd, fcntl.LOCK_UN)
