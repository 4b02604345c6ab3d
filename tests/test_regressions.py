"""Regression tests for defects found in review; each names what it guards."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

import agentkeep
from agentkeep import Conflict, InvalidInput, Store

from conftest import Cli
from secretgen import generate


def test_callers_cannot_forge_agentkeeps_own_event_kinds(store: Store) -> None:
    task = store.add_task("t").item
    forged = {
        "kind": "task.updated",
        "entity": "task",
        "entity_id": task.id,
        "data": {"id": [task.id, 999]},
    }
    with pytest.raises(InvalidInput, match="agentkeep's own"):
        store.record_event(forged["kind"], entity="task", entity_id=task.id, data=forged["data"])
    with pytest.raises(InvalidInput):
        store.record_events([forged])
    linked = store.record_event("ci.passed", entity="task", entity_id=task.id).item
    assert (linked.entity, linked.entity_id) == ("task", task.id)
    with pytest.raises(agentkeep.NotFound):
        store.undo("task", task.id)  # the caller's event is not a change undo can revert
    assert store.get_task(task.id).id == task.id


def test_undo_cannot_make_a_parent_cycle(store: Store) -> None:
    a, b, c = (store.add_task(name).item for name in "abc")
    store.update_task(a.id, parent_id=b.id)
    store.update_task(a.id, parent_id=None)
    store.update_task(b.id, parent_id=a.id)
    with pytest.raises(InvalidInput, match="cannot be the parent"):
        store.undo("task", a.id)  # would restore a -> b while b -> a
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (store.update_task(c.id, parent_id=a.id), done.set()), daemon=True
    )
    worker.start()
    worker.join(timeout=5)
    assert done.is_set(), "a parent-chain walk did not terminate"


@pytest.mark.parametrize("entity_id", ["12", 1.5, True, {"x": 1}])
def test_event_entity_ids_must_be_whole_numbers(store: Store, entity_id: object) -> None:
    before = store.last_seq()
    with pytest.raises(InvalidInput, match="entity_id"):
        store.record_events([{"kind": "x.y", "entity_id": entity_id}])
    with pytest.raises(InvalidInput, match="entity_id"):
        store.record_event("x.y", entity_id=entity_id)  # type: ignore[arg-type]
    assert store.last_seq() == before


def test_identifiers_that_look_like_secrets_are_refused_not_redacted(store: Store) -> None:
    text, _ = generate()["github-classic"]
    with pytest.raises(InvalidInput, match="idempotency key looks like a secret"):
        store.add_task("t", idempotency_key=f"key={text}")
    with pytest.raises(InvalidInput, match="external id"):
        store.start_session(source="claude", external_id=text)
    with pytest.raises(InvalidInput, match="agent name"):
        store.register_agent(text)
    assert store.status().counts["tasks"] == 0
    # An ordinary key still makes retries idempotent.
    first = store.add_task("t", idempotency_key="run-7/step-3")
    again = store.add_task("t", idempotency_key="run-7/step-3")
    assert (first.outcome, again.outcome) == ("created", "already_exists")


def test_dependencies_given_at_creation_follow_the_created_event(store: Store) -> None:
    base = store.add_task("base").item
    child = store.add_task("child", depends_on=[base.id]).item
    events = store.events(entity="task", entity_id=child.id)
    assert [e.kind for e in events] == ["task.created"]
    assert events[0].data["depends_on"] == [base.id]


def test_a_leased_worktree_is_not_removed_without_force(store: Store) -> None:
    worktree = store.add_worktree("../wt-leased").item
    store.lease_worktree(worktree.id, "owner-1", ttl_seconds=600)
    with pytest.raises(Conflict, match="leased by owner-1"):
        store.remove_worktree(worktree.id)
    with pytest.raises(InvalidInput, match="lease duration"):
        store.lease_worktree(worktree.id, "owner-1", ttl_seconds=10**15)
    assert store.remove_worktree(worktree.id, force=True).status == "removed"


def test_adding_no_token_counter_is_invalid_input(store: Store) -> None:
    session = store.start_session(source="x").item
    with pytest.raises(InvalidInput, match="token counter"):
        store.add_session_tokens(session.id)


def test_follow_filters_by_entity_id(store: Store) -> None:
    start = store.last_seq()
    store.record_event("x.a", entity="task", entity_id=1)
    store.record_event("x.b", entity="task", entity_id=2)
    seen = []
    for event in store.follow(
        after=start, entity_id=2, poll_interval=0.01, stop=lambda: bool(seen)
    ):
        seen.append(event.kind)
    assert seen == ["x.b"]


def _sha256_in_subprocess(path: Path) -> str:
    # Live database files are only read by another process (see conftest's audit hook).
    code = "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())"
    return subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_store_too_new_to_write_is_not_modified_even_with_a_hot_wal(project: Path) -> None:
    with agentkeep.open(project) as store:
        store.add_task("before")
    db = project / ".agentkeep" / "state.db"
    # A newer writer bumps min_writer_version and dies with its commit still in the WAL.
    newer = (
        "import os, signal, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute(\"UPDATE meta SET value = '99' WHERE key = 'min_writer_version'\")\n"
        'c.execute("INSERT INTO tasks (title, created_at, updated_at) "\n'
        "          \"VALUES ('new', 'x', 'x')\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", newer, str(db)], check=False)
    assert (project / ".agentkeep" / "state.db-wal").stat().st_size > 0
    before = _sha256_in_subprocess(db)
    with agentkeep.open(project) as store:
        assert [t.title for t in store.list_tasks()] == ["before", "new"]  # reads the WAL
        with pytest.raises(agentkeep.SchemaTooNew):
            store.add_task("refused")
    assert _sha256_in_subprocess(db) == before


def test_json_and_nl_together_are_refused_before_anything_is_written(cli: Cli) -> None:
    cli("tasks", "add", "t")
    result = cli("tasks", "claim", "1", "--as", "x", "--json", "--nl")
    assert result.exit_code == 2
    assert cli("tasks", "show", "1", "--json").json()["status"] == "open"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["config", "set", "store.busy_timeout_ms", "999999999999999999999"], 3),
        (["events", "--since", "99999999999d"], 3),
        (["worktrees", "lease", "1", "--ttl", "999999999999999"], 2),
        (["redact", "--text", "--json"], 2),
    ],
    ids=["busy-timeout", "since", "ttl", "redact-text-json"],
)
def test_out_of_range_input_is_a_clear_error(cli: Cli, args: list[str], code: int) -> None:
    cli("worktrees", "add", "../wt-x")
    result = cli(*args, input="")
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_status_reports_the_files_schema_and_the_contract_version(cli: Cli) -> None:
    status = cli("status", "--json").json()
    assert status["schema_version"] == 1
    assert status["db_schema_version"] == agentkeep.migrations.SCHEMA_VERSION


@pytest.mark.sqlite_only("SQLite's secure_delete pragma")
def test_secure_delete_is_on_and_verified(store: Store) -> None:
    assert store._conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
