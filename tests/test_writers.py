"""The write path of one append: the writers' queue lock (backends/sqlite/discipline.py)
and what ``record_event`` does before it takes it."""

from __future__ import annotations

import fcntl
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentkeep import InvalidInput, Store
from agentkeep.backends.sqlite import discipline
from agentkeep.backends.sqlite.connection import connect
from agentkeep.boundary import Boundary
from agentkeep.errors import Busy

from secretgen import generate

CEILING_S = 60  # generous: a loaded 2-core machine; only a broken queue gets near it


@pytest.fixture
def lock_path(tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path / "state.db")


def _free(path: str) -> bool:
    """Whether a new writer would get the queue lock at once (taken and let go again)."""
    fd = discipline.open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _wait_free(path: str) -> None:
    """Poll until the lock is free, failing loudly after CEILING_S seconds."""
    deadline = threading.Event()
    timer = threading.Timer(CEILING_S, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            if _free(path):
                return
            deadline.wait(0.001)
        raise AssertionError(f"the queue lock was still held after {CEILING_S} s")
    finally:
        timer.cancel()


def _until(condition: Callable[[], bool], what: str) -> None:
    pause = threading.Event()
    for _ in range(CEILING_S * 1000):
        if condition():
            return
        pause.wait(0.001)
    raise AssertionError(f"waited {CEILING_S} s for {what}")


def test_a_queued_writer_gets_the_lock_when_the_holder_lets_go(lock_path: str) -> None:
    holder = discipline.open_lock(lock_path)
    waiter = discipline.open_lock(lock_path)
    assert discipline.wait_for_lock(holder, 0)
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(discipline.wait_for_lock(waiter, 600)))
    try:
        thread.start()
        assert got == [] and not _free(lock_path)  # the holder still has it
        discipline.release_lock(holder)
        thread.join(CEILING_S)
        assert got == [True]
        assert not _free(lock_path)  # now the waiter holds it
        discipline.release_lock(waiter)
        assert _free(lock_path)
    finally:
        os.close(holder)
        os.close(waiter)


@pytest.mark.parametrize("caller_closes", [True, False])
def test_a_waiter_that_gives_up_does_not_keep_the_lock(lock_path: str, caller_closes: bool) -> None:
    """A timed-out wait leaves its helper queued on the lock file; when the lock comes to it
    after all, it lets go at once (and closing the file, as callers do, withdraws it)."""
    holder = discipline.open_lock(lock_path)
    waiter = discipline.open_lock(lock_path)
    assert discipline.wait_for_lock(holder, 0)
    try:
        assert discipline.wait_for_lock(waiter, 0.01) is False  # the holder keeps it
        assert discipline.wait_for_lock(waiter, 0) is False  # one try
        if caller_closes:
            os.close(waiter)
        discipline.release_lock(holder)
        _wait_free(lock_path)  # nobody is left holding it
    finally:
        os.close(holder)
        if not caller_closes:
            os.close(waiter)


def test_a_library_connection_that_timed_out_opens_a_fresh_lock_file(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    library = connect(db, busy_timeout_ms=10)
    holder = discipline.open_lock(str(db))
    try:
        library.lock_writers()  # opens its lock file, gets it, keeps the file open
        library.unlock_writers()
        assert library._lock_fd is not None
        assert discipline.wait_for_lock(holder, 0)
        with pytest.raises(Busy):
            library.lock_writers()
        # The file its given-up waiter may still be queued on is closed, not reused.
        assert library._lock_fd is None
        discipline.release_lock(holder)
        _wait_free(str(db))
        library.lock_writers()
        assert not _free(str(db))
        library.unlock_writers()
    finally:
        os.close(holder)
        library.close()


# -- record_event: the event's data is prepared before the queue ----------------------------


def test_event_data_is_serialised_and_redacted_before_the_writer_lock(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 8 writers, redacting inside the lock was most of the time each held it."""
    held_while_redacting: list[int] = []
    original = Boundary.json

    def spy(self: Boundary, column: str, value: object, **kwargs: object) -> str:
        held_while_redacting.append(store._conn._lock_depth)
        return original(self, column, value, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Boundary, "json", spy)
    store.record_event("ci.passed", data={"suite": "unit"})
    assert held_while_redacting == [0]


def test_a_secret_in_event_data_prepared_early_is_redacted_and_recorded(store: Store) -> None:
    text, secret = generate()["github-classic"]
    written = store.record_event("ci.note", data={"log": f"pushed with {text} ok"})
    event = written.item
    assert secret not in str(event.data) and "pushed with" in event.data["log"]
    assert store.events(kind="ci.note")[0].data == event.data  # returned as stored
    audit = [r for r in store.redactions() if r.entity == "events"]
    assert [(r.entity_id, r.field) for r in audit] == [(event.seq, "data")]


def test_refused_event_data_still_raises_inside_the_transaction(store: Store) -> None:
    """Data the boundary refuses is not refused early: a retry of a write that already
    happened (its idempotency key) still answers `already_exists`, as before."""
    first = store.record_event("ci.ran", data={"n": 1}, idempotency_key="run-1")
    again = store.record_event("ci.ran", data={"n": math.nan}, idempotency_key="run-1")
    assert (again.outcome, again.item.seq) == ("already_exists", first.item.seq)
    before = store.last_seq()
    with pytest.raises(InvalidInput, match="NaN"):
        store.record_event("ci.ran", data={"n": math.nan}, idempotency_key="run-2")
    assert store.last_seq() == before


def test_the_kept_helper_thread_ends_when_the_contention_does(
    lock_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process is multi-threaded only while it contends for the lock (fork() warns)."""
    monkeypatch.setattr(discipline, "_HELPER_IDLE_S", 1.0)  # long enough to see it kept
    holder = discipline.open_lock(lock_path)
    waiter = discipline.open_lock(lock_path)
    try:
        assert discipline.wait_for_lock(holder, 0)
        got: list[bool] = []
        thread = threading.Thread(target=lambda: got.append(discipline.wait_for_lock(waiter, 600)))
        thread.start()
        discipline.release_lock(holder)
        thread.join(CEILING_S)
        assert got == [True]
        discipline.release_lock(waiter)
        _until(lambda: discipline._Helper._idle is not None, "the helper to be kept")
        _until(lambda: discipline._Helper._idle is None, "the idle helper to end")
    finally:
        os.close(holder)
        os.close(waiter)
