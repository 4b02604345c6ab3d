"""Migrations and version refusal: a new store is at the code's schema version with
nothing pending; an older store is migrated on open and keeps its rows; a store a newer
agentkeep wrote is refused (SchemaTooNew) when this code may not read it, opened read-only
when it may read but not write it, and written normally when the newer schema says older
writers are fine — and a refused store is never changed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep import SchemaTooNew
from agentkeep.migrations import SCHEMA_VERSION

from .backends import Adapter, StoreHandle


def code_version(handle: StoreHandle) -> int:
    with handle.open() as store:
        return store.schema_status().code_schema_version


def fill(handle: StoreHandle) -> int:
    """A few rows of each kind; returns the task id."""
    with handle.open() as store:
        task = store.add_task("older task", labels=["x"]).item
        store.add_note("fact", "an older note", task_id=task.id)
        store.record_event("contract.older")
        return task.id


def test_a_new_store_is_at_the_codes_schema_version(store: agentkeep.Store) -> None:
    status = store.schema_status()
    assert status.code_schema_version == SCHEMA_VERSION  # the newest registered migration
    assert status.db_schema_version == SCHEMA_VERSION
    assert status.pending == []
    assert status.writable is True
    assert status.min_reader_version <= status.code_schema_version
    assert status.min_writer_version <= status.code_schema_version
    assert store.status().db_schema_version == status.code_schema_version
    assert store.writable


def test_an_older_store_is_migrated_on_open_and_keeps_its_rows(
    backend: Adapter, tmp_path: Path
) -> None:
    titles = ["from the baseline", "ünïcødé ✓"]
    old = backend.create_at_version(tmp_path / "old", 1, tasks=titles)
    with old.open() as store:
        status = store.schema_status()
        assert (status.db_schema_version, status.pending) == (SCHEMA_VERSION, [])
        assert [t.title for t in store.list_tasks()] == titles
        assert [e.data["title"] for e in store.events(kind="task.created")] == titles
        assert store.check().ok
        store.add_task("written after the migration")  # the migrated store takes writes
    with old.open() as store:  # a second open has nothing left to do
        assert store.schema_status().pending == []
        assert len(store.list_tasks()) == 3


def test_a_store_too_new_to_read_is_refused_and_unchanged(
    backend: Adapter, handle: StoreHandle
) -> None:
    fill(handle)
    newer = code_version(handle) + 1
    backend.set_schema_versions(handle, schema=newer, min_reader=newer, min_writer=newer)
    before = backend.fingerprint(handle)

    with pytest.raises(SchemaTooNew, match=f"schema version {newer}"):
        handle.open()
    with pytest.raises(SchemaTooNew):
        handle.open(read_only=True)
    done = handle.cli("tasks", "list", "--json")
    assert done.exit_code == SchemaTooNew.exit_code, done.stderr
    assert done.error()["code"] == "schema_too_new"
    assert done.stdout == ""

    assert backend.fingerprint(handle) == before, "a refused store was changed"


def test_a_store_too_new_to_write_opens_read_only_and_unchanged(
    backend: Adapter, handle: StoreHandle
) -> None:
    task_id = fill(handle)
    current = code_version(handle)
    backend.set_schema_versions(
        handle, schema=current + 1, min_reader=current, min_writer=current + 1
    )
    before = backend.fingerprint(handle)

    with handle.open() as store:
        assert store.writable is False
        assert [t.title for t in store.list_tasks()] == ["older task"]
        assert [n.body for n in store.list_notes()] == ["an older note"]
        assert store.events(kind="contract.older")
        assert store.schema_status().db_schema_version == current + 1
        writes: list[Callable[[], Any]] = [
            lambda: store.add_task("new"),
            lambda: store.update_task(task_id, title="renamed"),
            lambda: store.claim_task(task_id, "agent"),
            lambda: store.add_note("fact", "a fact"),
            lambda: store.record_event("contract.newer"),
            lambda: store.undo("task", task_id),
        ]
        for write in writes:
            with pytest.raises(SchemaTooNew):
                write()
    listed = handle.cli("tasks", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [t["title"] for t in listed.json()] == ["older task"]
    refused = handle.cli("tasks", "add", "nope", "--json")
    assert refused.exit_code == SchemaTooNew.exit_code
    assert refused.error()["code"] == "schema_too_new"

    assert backend.fingerprint(handle) == before, "a read-only store was changed"


def test_a_newer_schema_that_allows_older_writers_is_written_normally(
    backend: Adapter, handle: StoreHandle
) -> None:
    task_id = fill(handle)
    current = code_version(handle)
    backend.set_schema_versions(handle, schema=current + 1, min_reader=current, min_writer=current)
    with handle.open() as store:
        assert store.writable is True
        store.update_task(task_id, title="renamed")
        store.claim_task(task_id, "agent-1")
        store.add_note("fact", "written by older code", task_id=task_id)
        assert store.check().ok
    with handle.open() as store:
        # Older code must not claim the store is older than it is, nor migrate it.
        status = store.schema_status()
        assert (status.db_schema_version, status.pending) == (current + 1, [])
        assert store.get_task(task_id).assignee == "agent-1"
