"""Library behaviour not covered by the CLI and model tests: integrations, undo conflicts,
filters, limits, read-only opening."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import agentkeep
from agentkeep import Conflict, InvalidInput, NotFound, Store


def test_integrations_store_a_reference_never_a_credential(store: Store) -> None:
    made = store.set_integration(
        "github", kind="github", settings={"repo": "o/r"}, credential_ref="env:GITHUB_TOKEN"
    )
    assert made.outcome == "created"
    same = store.set_integration(
        "github", kind="github", settings={"repo": "o/r"}, credential_ref="env:GITHUB_TOKEN"
    )
    assert same.outcome == "unchanged"
    changed = store.set_integration("github", kind="github", settings={"repo": "o/s"})
    assert changed.outcome == "updated" and changed.item.credential_ref is None
    with pytest.raises(InvalidInput, match="credential_ref"):
        store.set_integration("x", kind="http", credential_ref="sk-live-value-itself")
    kinds = [e.kind for e in store.events(entity="integration")]
    assert kinds == ["integration.created", "integration.updated"]


def test_undo_walks_back_and_refuses_to_overwrite_later_changes(store: Store) -> None:
    task = store.add_task("t", labels=["a"]).item
    store.update_task(task.id, priority=0)
    store.update_task(task.id, labels=["a", "b"])
    store.undo("task", task.id)
    assert store.get_task(task.id).labels == ["a"]
    store.undo("task", task.id)
    assert store.get_task(task.id).priority == 2
    with pytest.raises(NotFound):
        store.undo("task", task.id)
    other = store.add_task("u").item
    store.update_task(other.id, title="renamed")
    # A change undo cannot see (a raw write elsewhere) makes undo refuse rather than clobber.
    with store.transaction() as tx:
        tx.update("tasks", other.id, {"title": "edited behind undo's back"})
        tx.emit("task", other.id, "task.renamed_by_script", {})
    with pytest.raises(Conflict, match="changed after"):
        store.undo("task", other.id)
    with pytest.raises(InvalidInput):
        store.undo("note", 1)


def test_filters_and_limits(store: Store) -> None:
    for i in range(5):
        store.add_task(f"t{i}", priority=i % 3, labels=["even"] if i % 2 == 0 else [])
    assert [t.title for t in store.list_tasks(label="even")] == ["t0", "t4", "t2"]
    assert len(store.list_tasks(limit=2)) == 2
    store.record_event("build.started")
    store.record_event("build.finished", data={"ok": True})
    assert [e.kind for e in store.events(kind="build.*")] == ["build.started", "build.finished"]
    newest = store.events(newest_first=True, limit=1)[0]
    assert newest.kind == "build.finished" and newest.seq == store.last_seq()


def test_field_size_limit_and_override(project: Path) -> None:
    with agentkeep.open(project, config={"store.max_field_bytes": 1024}) as small:
        with pytest.raises(InvalidInput, match="limit is 1,024"):
            small.add_task("t", body="x" * 1025)
        assert small.add_task("t", body="é" * 512).outcome == "created"  # 1,024 bytes


def test_follow_stops_and_sees_commits_from_other_connections(project: Path) -> None:
    seen: list[str] = []
    done = threading.Event()

    def follow() -> None:
        with agentkeep.open(project) as follower:
            for event in follower.follow(after=0, poll_interval=0.01, stop=done.is_set):
                seen.append(event.kind)
                if event.kind == "last":
                    done.set()

    thread = threading.Thread(target=follow)
    thread.start()
    with agentkeep.open(project) as writer:
        writer.record_event("first")
        time.sleep(0.05)
        writer.record_event("last")
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert seen[-2:] == ["first", "last"]


def test_read_only_store_refuses_writes(project: Path) -> None:
    with agentkeep.open(project, read_only=True) as store:
        assert store.list_tasks() == []
        with pytest.raises(agentkeep.ReadOnly, match="read-only"):
            store.add_task("nope")


def test_session_tokens_accumulate(store: Store) -> None:
    session = store.start_session(source="claude", external_id="s-1").item
    store.add_session_tokens(session.id, input_tokens=10, output_tokens=3)
    after = store.add_session_tokens(session.id, input_tokens=5, cache_read_tokens=7)
    assert (after.input_tokens, after.output_tokens, after.cache_read_tokens) == (15, 3, 7)
    with pytest.raises(InvalidInput):
        store.add_session_tokens(session.id, input_tokens=-1)
    with pytest.raises(InvalidInput):
        store.add_session_tokens(session.id, made_up_tokens=1)


def test_a_closed_store_raises_an_agentkeep_error_not_a_driver_error(project: Path) -> None:
    store = agentkeep.open(project)
    store.close()
    with pytest.raises(agentkeep.StorageError, match="closed"):
        store.list_tasks()


def test_a_batch_redacts_and_counts_every_repeat_of_a_secret_kind(store: Store) -> None:
    """record_events binds each clean kind once per batch; a kind the redactor changes is
    bound (and its redaction recorded) for every event that carries it."""
    from secretgen import generate

    text, secret = generate()["github-classic"]
    kind = f"ci.{text}"
    store.record_events([{"kind": "ci.ok"}, {"kind": kind}, {"kind": "ci.ok"}, {"kind": kind}])
    events = store.events(kind="ci.*")
    assert [e.kind == "ci.ok" for e in events] == [True, False, True, False]
    assert all(secret not in e.kind for e in events)
    assert events[1].kind == events[3].kind
    rows = store._rows("SELECT entity_id, field, count FROM redactions WHERE entity = 'events'")
    assert [tuple(row) for row in rows] == [(None, "kind", 1), (None, "kind", 1)]


def test_utc_now_follows_the_clock_across_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """utc_now formats each whole second once; a later second is formatted afresh."""
    from agentkeep import timeutil

    clock = iter([1_764_806_399_998_000_000, 1_764_806_399_999_000_000, 1_764_806_400_001_000_000])
    fake = SimpleNamespace(time_ns=lambda: next(clock), strftime=time.strftime, gmtime=time.gmtime)
    monkeypatch.setattr(timeutil, "time", fake)
    assert [timeutil.utc_now() for _ in range(3)] == [
        "2025-12-03T23:59:59.998Z",
        "2025-12-03T23:59:59.999Z",
        "2025-12-04T00:00:00.001Z",
    ]
