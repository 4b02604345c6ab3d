"""Maintenance every backend must provide: a check that passes on a healthy store, sizes
that are reported and follow the data, a backup that becomes a store holding the same
rows, and retention (gc) that gives the space back."""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

import agentkeep

from .backends import Adapter, StoreHandle

# An artifact's data (a row of its own, in the database). Letters at random: PostgreSQL
# compresses a long value before storing it, and "y" * 6000 took a few dozen bytes there.
FILLER = "".join(random.Random(6000).choices(string.ascii_lowercase + " ", k=6000))
DOOMED = 120


def snapshot(store: agentkeep.Store) -> dict[str, Any]:
    """Every row a restore must bring back, as plain data."""
    return {
        "tasks": [t.to_dict() for t in store.list_tasks()],
        "notes": [n.to_dict() for n in store.list_notes()],
        "events": [e.to_dict() for e in store.events()],
        "artifacts": [a.to_dict() for a in store.list_artifacts()],
        "counts": store.status().counts,
    }


def fill(store: agentkeep.Store) -> None:
    first = store.add_task("first", body="ünïcødé ✓", labels=["a", "b"]).item
    store.add_task("second", depends_on=[first.id])
    store.claim_task(first.id, "agent-1")
    store.add_note("handoff", "half done", task_id=first.id)
    store.record_event("contract.custom", data={"nested": {"list": [1, 2.5, None]}})
    store.add_artifact(b"artifact bytes\n" * 100, kind="log", name="run.log")


def test_check_passes_on_a_new_and_a_written_store(store: agentkeep.Store) -> None:
    for _ in range(2):
        report = store.check()
        assert report.ok, report
        assert (report.problems, report.foreign_keys) == ([], [])
        assert report.db_schema_version == store.schema_status().code_schema_version
        fill(store)


def test_sizes_are_reported_and_follow_the_data(store: agentkeep.Store) -> None:
    before = store.status()
    assert before.db_bytes > 0
    body = "z" * 1000
    for i in range(200):
        store.add_note("fact", f"{i} {body}")
    after = store.status()
    assert after.counts["notes"] == before.counts["notes"] + 200
    assert after.counts["events"] == before.counts["events"] + 200
    assert after.last_event_seq == store.last_seq()
    grew = (after.db_bytes + after.wal_bytes) - (before.db_bytes + before.wal_bytes)
    assert grew >= 200 * 1000, grew


def test_a_backup_restores_as_a_store_with_the_same_rows(
    backend: Adapter, handle: StoreHandle, tmp_path: Path
) -> None:
    with handle.open() as store:
        fill(store)
        expected = snapshot(store)
        database_copy = store.backup(tmp_path / "state-copy.db")
        full = handle.cli("backup", str(tmp_path / "full"), "--json")
        assert full.exit_code == 0, full.stderr
        # Writes after the backups are not in them.
        store.add_task("after the backup")
        store.record_event("contract.after")

    # A full backup becomes a new store elsewhere; a database backup replaces the
    # store's database and keeps its other files (the artifact's object among them).
    elsewhere = backend.vacant(tmp_path / "restored")
    for target, source, force in (
        (elsewhere, tmp_path / "full", ()),
        (handle, database_copy, ("--force",)),
    ):
        restored = target.cli("restore", str(source), *force, "--json")
        assert restored.exit_code == 0, restored.stderr
        assert restored.json()["check_ok"] is True, restored.json()
        with target.open() as again:
            assert snapshot(again) == expected, source
            assert again.check().ok
            (artifact,) = again.list_artifacts()
            assert again.read_artifact(artifact.id) == b"artifact bytes\n" * 100
            # A restored store is a store: it takes writes.
            assert again.add_task("written after the restore").outcome == "created"


def sized(store: agentkeep.Store) -> int:
    status = store.status()
    return status.db_bytes + status.wal_bytes


def test_gc_deletes_what_the_policy_says_and_returns_the_space(handle: StoreHandle) -> None:
    with handle.open() as store:
        kept = store.add_artifact(b"kept", kind="log").item
        doomed = [
            store.add_artifact(f"{n}".encode(), kind="payload", data={"preview": FILLER}).item.id
            for n in range(DOOMED)
        ]

    # No policy: gc deletes nothing.
    no_policy = handle.cli("gc", "--apply", "--json")
    assert no_policy.exit_code == 0, no_policy.stderr
    assert no_policy.json()["plan"]["items"] == []
    assert handle.cli("config", "set", "retention.payload.max_total_bytes", "1").exit_code == 0

    planned = handle.cli("gc", "--json")
    assert planned.exit_code == 0, planned.stderr
    assert planned.json()["applied"] is False
    assert sorted(i["id"] for i in planned.json()["items"] if i["what"] == "artifact") == doomed
    with handle.open() as reopened:
        before = sized(reopened)
        assert len(reopened.list_artifacts()) == DOOMED + 1  # a dry run deletes nothing

    applied = handle.cli("gc", "--apply", "--json")
    assert applied.exit_code == 0, applied.stderr
    result = applied.json()
    assert sorted(i["id"] for i in result["plan"]["items"] if i["what"] == "artifact") == doomed
    # The rows held ~DOOMED * 6 KB: that space is given back, not kept as free pages.
    assert result["db_bytes_reclaimed"] >= DOOMED * 6000 // 2, result
    with handle.open() as reopened:
        assert [a.id for a in reopened.list_artifacts()] == [kept.id]
        assert before - sized(reopened) >= DOOMED * 6000 // 2
        assert reopened.check().ok
    again = handle.cli("gc", "--apply", "--json")
    assert again.json()["plan"]["items"] == [], "a second gc found more to delete"
