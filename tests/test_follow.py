"""Following new events and output: the backend's watcher (``backend.follow``,
backends/base.py ``Watcher``) and how ``Store.follow`` and ``Store.follow_stream`` rely on
it — read only when told of a change, every batch caught up at once, the poll interval
handed to the watcher, a read-only store watched read-only.

What any backend's watcher reports is in tests/contract/test_follow_watcher.py; following
across processes end to end in test_durability.py (latency, no held snapshot), test_cli.py
(``events -f``) and tests/contract/test_events.py (order, gap-free resumption); ``logs -f``
in test_streams.py.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.backends.base import Watcher


@pytest.fixture
def watcher(store: agentkeep.Store) -> Iterator[Watcher]:
    with store.backend.follow.watch(store.db_path, store.config) as opened:
        yield opened


@pytest.mark.sqlite_only(
    "a WAL checkpoint; on PostgreSQL test_pg_follow checks the LISTEN session is idle"
)
def test_watcher_holds_no_read_transaction_between_calls(
    store: agentkeep.Store, watcher: Watcher
) -> None:
    """A TRUNCATE checkpoint needs every reader gone: it succeeds next to a watcher."""
    for _ in range(3):
        store.record_event("ci.step")
        assert watcher.changed() is True
        other = sqlite3.connect(store.db_path, isolation_level=None, timeout=1)
        try:
            busy = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            other.close()
        assert busy == 0


# -- Store.follow over a scripted watcher (the Follow protocol is the seam) ----------------


class ScriptedWatcher:
    """Says "changed" only when the test says so; records each call's timeout."""

    def __init__(self) -> None:
        self.pending = True  # the first call reports a change, as the protocol says
        self.timeouts: list[float] = []
        self.closed = False

    def changed(self, timeout: float = 0.0) -> bool:
        self.timeouts.append(timeout)
        pending, self.pending = self.pending, False
        return pending

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> ScriptedWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ScriptedFollow:
    watcher: ScriptedWatcher

    def watch(self, db_path: Path, config: Any, *, read_only: bool = False) -> ScriptedWatcher:
        return self.watcher


class BackendWith:
    """The store's backend with its ``follow`` replaced."""

    def __init__(self, real: Any, follow: ScriptedFollow) -> None:
        self._real = real
        self.follow = follow

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_follow_reads_only_when_the_watcher_reports_a_change_and_catches_up_in_batches(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = ScriptedWatcher()
    monkeypatch.setattr(store, "backend", BackendWith(store.backend, ScriptedFollow(watcher)))
    start = store.last_seq()
    store.record_events([{"kind": f"ci.e{i}"} for i in range(1234)])  # 3 batches of <= 500
    seen: list[str] = []
    read_when: dict[str, int] = {}

    def stop() -> bool:
        """Called before each poll: after two quiet polls, commit an event the watcher does
        not report; three polls later, report it."""
        polls = len(watcher.timeouts)
        if polls == 3:
            store.record_event("ci.late")
            read_when["committed"] = len(seen)
        elif polls == 6:
            read_when["reported"] = len(seen)
            watcher.pending = True
        return "ci.late" in seen or polls > 50  # the ceiling fails the asserts below

    for event in store.follow(after=start, poll_interval=0.25, stop=stop):
        seen.append(event.kind)
    assert seen == [f"ci.e{i}" for i in range(1234)] + ["ci.late"]
    # One reported change caught up with every batch; the unreported commit was not read.
    assert read_when == {"committed": 1234, "reported": 1234}
    assert len(watcher.timeouts) == 7
    assert set(watcher.timeouts) == {0.25}  # the poll interval is the watcher's to wait


def test_a_follower_dropped_early_closes_its_watch(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = ScriptedWatcher()
    monkeypatch.setattr(store, "backend", BackendWith(store.backend, ScriptedFollow(watcher)))
    after = store.last_seq()
    store.record_event("ci.one")
    follower = store.follow(after=after)
    assert next(follower).kind == "ci.one"
    assert not watcher.closed
    follower.close()  # type: ignore[attr-defined]  # a generator, as a crashed consumer's
    assert watcher.closed


def test_following_output_waits_for_the_watcher_once_everything_committed_is_shown(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = ScriptedWatcher()
    monkeypatch.setattr(store, "backend", BackendWith(store.backend, ScriptedFollow(watcher)))
    session = store.start_session(source="run").item.id
    writer = store.open_stream(session, "stdout", auto_commit=False)
    writer.write(b"one\n")
    writer.commit_progress()
    seen: list[str] = []
    calls: list[int] = []
    shown_at: dict[str, list[str]] = {}

    def stop() -> bool:
        """Called between polls: commit a line the watcher does not report, then, three
        polls later, report it."""
        calls.append(1)
        polls = len(watcher.timeouts)
        if polls == 2 and "committed" not in shown_at:
            writer.write(b"two\n")
            writer.commit_progress()
            shown_at["committed"] = list(seen)
        elif polls == 5 and "reported" not in shown_at:
            shown_at["reported"] = list(seen)
            watcher.pending = True
        return seen[-1:] == ["two"] or len(calls) > 100  # a ceiling: the asserts then fail

    for line in store.follow_stream(session, last=None, poll_seconds=0.25, stop=stop):
        seen.append(line.text)
    writer.close()
    assert seen == ["one", "two"]
    assert shown_at == {"committed": ["one"], "reported": ["one"]}
    assert set(watcher.timeouts) == {0.25}


def test_follow_takes_its_starting_point_at_the_call(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = ScriptedWatcher()
    monkeypatch.setattr(store, "backend", BackendWith(store.backend, ScriptedFollow(watcher)))
    store.record_event("ci.before")
    follower = store.follow(stop=lambda: len(watcher.timeouts) > 1)
    store.record_event("ci.between")  # after follow(), before the first next()
    assert [event.kind for event in follower] == ["ci.between"]


def test_a_read_only_store_follows_events_and_output_others_commit(
    store: agentkeep.Store, project: Path
) -> None:
    """The watch of a read-only store is read-only too, and still sees each commit: here
    the writable store commits from ``stop()`` at the third poll, after the watcher's first
    "changed" (which every watch reports) was used up."""
    session = store.start_session(source="run").item.id
    writer = store.open_stream(session, "stdout", auto_commit=False)
    start = store.last_seq()
    polls: list[int] = []

    def commit_at_third_poll(commit: Any) -> Any:
        polls.clear()

        def stop() -> bool:
            polls.append(1)
            if len(polls) == 3:
                commit()
            return len(polls) > 100  # a ceiling: the asserts below then fail

        return stop

    def write_line() -> None:
        writer.write(b"a line, committed while followed\n")
        writer.commit_progress()

    with agentkeep.open(project, read_only=True) as reader:
        stop = commit_at_third_poll(lambda: store.record_event("ci.from_writer"))
        events = [
            event.kind for event in itertools.islice(reader.follow(after=start, stop=stop), 1)
        ]
        assert events == ["ci.from_writer"]
        assert 3 <= len(polls) <= 100
        stop = commit_at_third_poll(write_line)
        follower = reader.follow_stream(session, last=0, stop=stop)
        assert [line.text for line in itertools.islice(follower, 1)] == [
            "a line, committed while followed"
        ]
        assert 3 <= len(polls) <= 100
    writer.close()
