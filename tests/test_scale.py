"""Cost that does not grow with history (issue 10): the queries a user runs often read what
they show, not the store. Measured without a clock: SQLite's virtual-machine steps (a
progress handler counts them) for the same call on a store and on the same store after
its history grew 8x. bench/bench_scale.py measures the same in seconds on large stores.

And the counts `status` reads from ``row_counts`` (kept by triggers, migration 7) equal
what counting the tables says, through every writer (library, hook, bundle import)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.ops.bundle_export import export_bundle
from agentkeep.ops.bundle_import import import_bundle
from agentkeep.store import COUNTED_TABLES

# Costs are counted in SQLite VM steps (set_progress_handler); PostgreSQL has no such counter.
pytestmark = pytest.mark.sqlite_only("counts SQLite virtual machine steps")

HISTORY = 2_000  # events in the small store; the large one has 8x as many


def steps(store: agentkeep.Store, call: Callable[[], Any]) -> int:
    """SQLite VM steps (in units of 10) that ``call`` runs on the store's connection."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    raw = store._conn.raw
    raw.set_progress_handler(tick, 10)
    try:
        call()
    finally:
        raw.set_progress_handler(None, 0)
    return count[0]


def grow(store: agentkeep.Store, events: int, tasks: int) -> None:
    batch = [{"kind": "tool.finished", "data": {"tool": "Bash", "n": n}} for n in range(500)]
    for _ in range(events // len(batch)):
        store.record_events(batch)
        session = store.start_session(title="a run").item
        store.end_session(session.id)
    for n in range(tasks):
        task = store.add_task(f"task {n}", body="x" * 200, priority=n % 5).item
        if n >= 10:  # most work gets done; a backlog of ten stays open
            store.update_task(task.id, status="done")


def costs(store: agentkeep.Store) -> dict[str, int]:
    newest = store.events(newest_first=True, limit=10)
    since = newest[-1].at
    last_session = store.list_sessions(limit=1)[0]
    return {
        "stats(since)": steps(store, lambda: store.stats(since=last_session.started_at)),
        "status": steps(store, store.status),
        "list_tasks(limit=20)": steps(store, lambda: store.list_tasks(limit=20)),
        "events(since, newest 50)": steps(
            store, lambda: store.events(since=since, newest_first=True, limit=51)
        ),
        "events(since, oldest 1)": steps(store, lambda: store.events(since=since, limit=1)),
    }


def test_often_run_queries_cost_the_same_on_8x_the_history(store: agentkeep.Store) -> None:
    grow(store, HISTORY, 40)
    small = costs(store)
    grow(store, 7 * HISTORY, 7 * 40)
    large = costs(store)
    assert store.status().counts["events"] >= 8 * HISTORY
    # A scan of the history grows ~8x; an index seek by a B-tree level at most.
    grown = {name: large[name] / max(small[name], 1) for name in small}
    assert all(ratio < 1.5 for ratio in grown.values()), (small, large)


def test_events_since_is_exact_even_where_at_does_not_follow_seq(
    store: agentkeep.Store, project: Path
) -> None:
    for n in range(6):
        store.record_events([{"kind": "k", "data": {"n": n}}] * 3)
    # A clock set back (or an event merged from another store): an early `at`, a late seq.
    conn = sqlite3.connect(project / ".agentkeep" / "state.db")
    with conn:
        conn.execute(
            "INSERT INTO events (at, actor, entity, kind) VALUES (?, 'x', 'custom', 'k')",
            ("2000-01-01T00:00:00.000Z",),
        )
    conn.close()
    store.record_event("k")
    every = store.events()
    moments = [*sorted({e.at for e in every}), "1999-01-01T00:00:00.000Z", "3000-01-01"]
    for since in moments:
        expected = [e.seq for e in every if e.at >= since]
        assert [e.seq for e in store.events(since=since)] == expected
        newest = [e.seq for e in store.events(since=since, newest_first=True, limit=4)]
        assert newest == expected[::-1][:4]
        of_kind = [e.seq for e in every if e.at >= since and e.kind == "k"]
        assert [e.seq for e in store.events(since=since, kind="k")] == of_kind


def real_counts(store_dir: Path) -> dict[str, int]:
    conn = sqlite3.connect(store_dir / "state.db")
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED_TABLES}
    finally:
        conn.close()


def real_by_status(store_dir: Path) -> dict[str, int]:
    conn = sqlite3.connect(store_dir / "state.db")
    try:
        grouped = conn.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall()
        return {status: n for status, n in grouped}
    finally:
        conn.close()


def test_status_counts_equal_the_tables_through_every_writer(
    store: agentkeep.Store, project: Path, tmp_path: Path
) -> None:
    task = store.add_task("a task", labels=["x"]).item
    store.add_note("handoff", "what is left", task_id=task.id)
    store.record_events([{"kind": "k"}] * 7)
    store.record_metric("tests.duration_s", 1.5)
    store.set_integration("gh", kind="github", settings={"repo": "o/r"})
    session = store.start_session(task_id=task.id, title="run").item
    store.end_session(session.id)
    store.add_note("fact", "token=ghp_" + "A1b2C3d4E5" * 4)  # a redaction row too
    payload = '{"session_id": "s-1", "hook_event_name": "PostToolUse", "tool_name": "Bash"}'
    hook = subprocess.run(
        [sys.executable, "-m", "agentkeep", "hook", "--source", "claude"],
        input=payload,
        text=True,
        cwd=project,
        capture_output=True,
        check=True,
    )
    assert hook.returncode == 0
    store_dir = project / ".agentkeep"
    assert store.status().counts == real_counts(store_dir)
    store.update_task(task.id, status="in_progress")
    store.add_task("another", status="done")
    assert store.status().tasks_by_status == real_by_status(store_dir)
    assert store.status().counts["sessions"] == 2  # the hook's session is counted

    bundle = tmp_path / "all.tar"
    export_bundle(store, bundle, all=True)
    other_root = tmp_path / "other"
    other_root.mkdir()
    subprocess.run(["git", "init", "-q", str(other_root)], check=True)
    agentkeep.init_store(other_root)
    with agentkeep.open(other_root) as other:
        import_bundle(other, bundle)
        assert other.status().counts == real_counts(other_root / ".agentkeep")
        assert other.status().tasks_by_status == real_by_status(other_root / ".agentkeep")


def test_a_store_from_before_the_kept_counts_is_counted_then_seeded(tmp_path: Path) -> None:
    from agentkeep.backends.sqlite.connection import connect
    from agentkeep.migrations import MIGRATIONS, migrate

    root = tmp_path / "old"
    (root / ".agentkeep").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    conn = connect(root / ".agentkeep" / "state.db")
    try:
        before = [m for m in MIGRATIONS if m.version < 7]
        migrate(conn, backup_dir=None, app_version="test", migrations=before)
        for status in ("open", "open", "done"):
            conn.execute(
                "INSERT INTO tasks (title, status, created_at, updated_at)"
                " VALUES ('t', ?, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
                (status,),
            )
            conn.execute(
                "INSERT INTO events (at, actor, entity, kind) VALUES ('2026', 'x', 'task', 'k')"
            )
    finally:
        conn.close()
    with agentkeep.open(root, read_only=True) as old:  # not migrated: counted
        status = old.status()
        assert status.db_schema_version == 6
        assert (status.counts["tasks"], status.counts["events"]) == (3, 3)
        assert status.tasks_by_status == {"done": 1, "open": 2}
    with agentkeep.open(root) as store:  # migrated: seeded from the tables, then kept
        store.add_task("new")
        status = store.status()
        assert status.db_schema_version >= 7
        assert status.counts == real_counts(root / ".agentkeep")
        assert status.tasks_by_status == {"done": 1, "open": 3}
