"""Schema migrations and downgrades (docs/design.md "Migrations and versions").

* A new store's schema is exactly what the registered migrations produce.
* A test-only migration 2 (a table rebuild of ``tasks``) killed at every step leaves the
  file fully v1 or fully v2, and the next open finishes the job; the pre-migration backup
  is a good v1 copy.
* Two processes opening an old store at once: exactly one migrates.
* A file written by a newer agentkeep is refused (or opened read-only) without changing a
  byte; an additive newer schema is written normally and its unknown column survives.
* The format: one SQL file per migration and dialect (package data, pinned once released),
  a clear error for a missing dialect slot or file, a Python backfill inside the step's
  transaction, migration 2's after-commit VACUUM finished on a later open.

Migration 2 exists only in child processes (``CHILD`` below), which patch the registry the
way a released migration 2 would extend it. They are real processes so that a failpoint's
SIGKILL is a real crash.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep import SchemaTooNew
from agentkeep.backends.sqlite.migrate import split_statements
from agentkeep.migrations import MIGRATIONS, SCHEMA_VERSION

from conftest import run_agentkeep

TASK_COUNT = 1000
NEXT = SCHEMA_VERSION + 1

TASK_COLUMNS = (
    "id, title, body, status, priority, assignee, labels, parent_id, created_at, updated_at, "
    "closed_at"
)

# Test-only migration NEXT: the documented table rebuild (create new, copy, drop, rename,
# re-index) that adds a column to `tasks`. Five statements, so the failpoints
# migrate:statement:1..3 land between statements that each leave a different half-state.
REBUILD_SQL = f"""
CREATE TABLE tasks_new (
    id         INTEGER PRIMARY KEY,
    title      TEXT NOT NULL CHECK (length(title) > 0),
    body       TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL DEFAULT 'open'
               CHECK (status IN ('open', 'in_progress', 'blocked', 'done', 'cancelled')),
    priority   INTEGER NOT NULL DEFAULT 2 CHECK (priority BETWEEN 0 AND 4),
    assignee   TEXT,
    labels     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(labels)),
    parent_id  INTEGER REFERENCES tasks (id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    closed_at  TEXT,
    -- new in this migration
    estimate_minutes INTEGER
);
INSERT INTO tasks_new ({TASK_COLUMNS}) SELECT {TASK_COLUMNS} FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;
CREATE INDEX tasks_status ON tasks (status, priority, id);
"""

# The child: extends the registry with migration NEXT (everywhere store.py and
# migrations.py look it up), then opens the store and prints what happened as JSON.
CHILD = r"""
import json, os, sys, time
import agentkeep
import agentkeep.migrations as migrations
import agentkeep.store as store_module
from agentkeep.migrations import Migration

NEW = (*migrations.MIGRATIONS, Migration(NEXT, "tasks_estimate_rebuild", {"sqlite": REBUILD_SQL}))
for module in (migrations, store_module):
    module.MIGRATIONS = NEW
    module.SCHEMA_VERSION = NEXT

applied = []
real_migrate = migrations.migrate

def migrate_with_next(conn, **kwargs):
    # migrate()'s default `migrations=MIGRATIONS` was bound at import: pass NEW explicitly.
    kwargs["migrations"] = NEW
    done = real_migrate(conn, **kwargs)
    applied.extend(m.version for m in done)
    return done

store_module.migrate = migrate_with_next

# AGENTKEEP_FAILPOINT (read by agentkeep.failpoints at import) kills this process at a
# migration step. TEST_PAUSE_AT_BEGIN holds the migration's locks a while, so that a
# concurrent opener has to wait for them.
pause = float(os.environ.get("TEST_PAUSE_AT_BEGIN", "0"))
if pause:
    real_failpoint = migrations.failpoint

    def failpoint(point):
        if point == "migrate:begin":
            time.sleep(pause)
        real_failpoint(point)

    migrations.failpoint = failpoint

go = os.environ.get("TEST_GO_FILE")
if go:
    open(go + ".ready-" + str(os.getpid()), "w").close()
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.001)

with agentkeep.open(sys.argv[1]) as store:
    state = store.schema_status()
print(json.dumps({"applied": applied, "schema_version": state.db_schema_version}))
"""


def child_source() -> str:
    return f"NEXT = {NEXT}\nREBUILD_SQL = {REBUILD_SQL!r}\n" + CHILD


def run_child(
    script: Path, root: Path, *, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def db_path(root: Path) -> Path:
    return root / ".agentkeep" / "state.db"


def connect_raw(path: Path) -> sqlite3.Connection:
    """A plain connection for inspecting a closed store (SQLite, never open())."""
    return sqlite3.connect(str(path), isolation_level=None)


def normalized(sql: str | None) -> str | None:
    if sql is None:
        return None
    return " ".join(re.sub(r"--[^\n]*", " ", sql).split())


def schema_of(conn: sqlite3.Connection) -> set[tuple[str, str, str, str | None]]:
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    return {(kind, name, table, normalized(sql)) for kind, name, table, sql in rows}


def meta_of(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def task_rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks ORDER BY id").fetchall()


def task_columns(conn: sqlite3.Connection) -> list[str]:
    return [row[1] for row in conn.execute("PRAGMA table_info(tasks)")]


def sha256_in_subprocess(path: Path) -> str:
    """Hash a database file in another process (this one's audit hook forbids open())."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import hashlib, sys; "
            "print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def fill_v1_store(root: Path) -> list[tuple[Any, ...]]:
    """1,000 varied tasks in the project's (current-schema) store; returns their rows."""
    statuses = ("open", "in_progress", "blocked", "done", "cancelled")
    with agentkeep.open(root, config={"store.synchronous": "NORMAL"}) as store:
        for i in range(TASK_COUNT):
            store.add_task(
                f"task {i} — ünïcødé ✓",
                body=f"line one\nline two {i}",
                priority=i % 5,
                status=statuses[i % 5],
                assignee=None if i % 3 else f"agent-{i % 7}",
                labels=[f"l{i % 4}", "shared"] if i % 2 else [],
            )
    with closing(connect_raw(db_path(root))) as conn:
        rows = task_rows(conn)
    assert len(rows) == TASK_COUNT
    return rows


# -- (a) fresh schema -------------------------------------------------------------------


def test_fresh_store_schema_is_exactly_the_migrations(project: Path) -> None:
    expected = sqlite3.connect(":memory:")
    for migration in MIGRATIONS:
        for statement in split_statements(migration.sql_for("sqlite")):
            expected.execute(statement)
    conn = connect_raw(db_path(project))
    try:
        assert schema_of(conn) == schema_of(expected)
        meta = meta_of(conn)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
        expected.close()
    assert int(meta["schema_version"]) == SCHEMA_VERSION
    assert int(meta["min_reader_version"]) == MIGRATIONS[-1].min_reader_version
    assert int(meta["min_writer_version"]) == MIGRATIONS[-1].min_writer_version
    assert int(meta["min_reader_version"]) <= SCHEMA_VERSION
    assert int(meta["min_writer_version"]) <= SCHEMA_VERSION
    for migration in MIGRATIONS:
        assert meta[f"migration.{migration.version}"].startswith(migration.name + " applied ")
    with agentkeep.open(project) as store:
        status = store.schema_status()
    assert (status.db_schema_version, status.pending, status.writable) == (
        SCHEMA_VERSION,
        [],
        True,
    )


# -- (b) crash matrix -------------------------------------------------------------------

FAILPOINTS = (
    "migrate:begin",
    "migrate:statement:1",
    "migrate:statement:2",
    "migrate:statement:3",
    "migrate:before_commit",
    "migrate:after_commit",
)


@pytest.mark.slow
@pytest.mark.parametrize("point", FAILPOINTS)
def test_migration_killed_at_any_step_leaves_old_or_new_schema(
    project: Path, tmp_path: Path, point: str
) -> None:
    rows = fill_v1_store(project)
    with closing(connect_raw(db_path(project))) as conn:
        v1_schema = schema_of(conn)
    script = tmp_path / "migrate_child.py"
    script.write_text(child_source(), encoding="utf-8")

    crashed = run_child(script, project, env={"AGENTKEEP_FAILPOINT": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    conn = connect_raw(db_path(project))
    try:
        version = int(meta_of(conn)["schema_version"])
        after_crash_schema = schema_of(conn)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert task_rows(conn) == rows
        if point == "migrate:after_commit":
            assert version == NEXT
            assert "estimate_minutes" in task_columns(conn)
        else:
            assert version == SCHEMA_VERSION
            assert after_crash_schema == v1_schema
            assert f"migration.{NEXT}" not in meta_of(conn)
    finally:
        conn.close()

    finished = run_child(script, project)
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert report["schema_version"] == NEXT
    assert report["applied"] == ([] if version == NEXT else [NEXT])

    conn = connect_raw(db_path(project))
    try:
        v2_schema = schema_of(conn)
        assert int(meta_of(conn)["schema_version"]) == NEXT
        assert task_columns(conn)[-1] == "estimate_minutes"
        assert not any(name == "tasks_new" for _, name, _, _ in v2_schema)
        assert ("index", "tasks_status", "tasks") in {s[:3] for s in v2_schema}
        assert task_rows(conn) == rows
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
    if version == NEXT:
        assert after_crash_schema == v2_schema

    backups = sorted((project / ".agentkeep" / "backups").iterdir())
    assert backups, "no pre-migration backup was written"
    assert all(b.name.startswith(f"state.db.pre-v{NEXT}-") for b in backups), backups
    for backup in backups:
        copy = connect_raw(backup)
        try:
            assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert int(meta_of(copy)["schema_version"]) == SCHEMA_VERSION
            assert schema_of(copy) == v1_schema
            assert task_rows(copy) == rows
        finally:
            copy.close()


def test_failpoint_names_contain_colons_and_take_a_hit_count() -> None:
    """The matrix above relies on AGENTKEEP_FAILPOINT=name[:N] with names like migrate:begin."""
    script = (
        "from agentkeep.failpoints import failpoint\n"
        "failpoint('migrate:begin')\n"
        "print('begin', flush=True)\n"
        "for i in (1, 2, 3):\n"
        "    failpoint('migrate:statement')\n"
        "    print('statement', i, flush=True)\n"
    )
    everything = "begin\nstatement 1\nstatement 2\nstatement 3\n"
    for spec, printed, code in (
        ("migrate:begin", "", -signal.SIGKILL),
        ("migrate:statement", "begin\n", -signal.SIGKILL),
        ("migrate:statement:2", "begin\nstatement 1\n", -signal.SIGKILL),
        ("migrate:statement:3", "begin\nstatement 1\nstatement 2\n", -signal.SIGKILL),
        ("migrate:statement:4", everything, 0),
        ("migrate", everything, 0),
    ):
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "AGENTKEEP_FAILPOINT": spec},
        )
        assert (done.stdout, done.returncode) == (printed, code), (spec, done.stderr)


# -- (c) concurrent openers -------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_opening_an_old_store_migrate_it_once(project: Path, tmp_path: Path) -> None:
    rows = fill_v1_store(project)
    script = tmp_path / "migrate_child.py"
    script.write_text(child_source(), encoding="utf-8")
    go = tmp_path / "go"
    env = {**os.environ, "TEST_GO_FILE": str(go), "TEST_PAUSE_AT_BEGIN": "0.5"}
    children = [
        subprocess.Popen(
            [sys.executable, str(script), str(project)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 30
        while len(list(tmp_path.glob("go.ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        go.touch()
        outputs = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    reports = [json.loads(out) for out, _ in outputs]
    assert sorted(r["applied"] for r in reports) == [[], [NEXT]]
    assert [r["schema_version"] for r in reports] == [NEXT, NEXT]
    conn = connect_raw(db_path(project))
    try:
        assert int(meta_of(conn)["schema_version"]) == NEXT
        assert task_rows(conn) == rows
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    # The loser waited for the winner's lock, then found nothing to do: no second backup.
    backups = list((project / ".agentkeep" / "backups").iterdir())
    assert len(backups) == 1, backups


# -- (d) newer files: refusal, read-only, additive ---------------------------------------


def make_newer(root: Path, *, min_reader: int, min_writer: int) -> None:
    """Turn the project's store into one 'written by' schema NEXT: meta bumped, plus a
    table and a tasks column this code does not know (with values in them)."""
    with agentkeep.open(root) as store:
        for i in range(3):
            store.add_task(f"older task {i}")
    conn = connect_raw(db_path(root))
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE future_things (id INTEGER PRIMARY KEY, what TEXT)")
        conn.execute("INSERT INTO future_things (what) VALUES ('kept')")
        conn.execute("ALTER TABLE tasks ADD COLUMN future_col TEXT")
        conn.execute("UPDATE tasks SET future_col = 'future-' || id")
        conn.executemany(
            "UPDATE meta SET value = ? WHERE key = ?",
            [
                (str(NEXT), "schema_version"),
                (str(min_reader), "min_reader_version"),
                (str(min_writer), "min_writer_version"),
            ],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def assert_no_wal_content(root: Path) -> None:
    wal = root / ".agentkeep" / "state.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_store_from_newer_agentkeep_is_refused_and_unchanged(project: Path) -> None:
    make_newer(project, min_reader=NEXT, min_writer=NEXT)
    before = sha256_in_subprocess(db_path(project))

    with pytest.raises(SchemaTooNew, match=f"schema version {NEXT}"):
        agentkeep.open(project)
    with pytest.raises(SchemaTooNew):
        agentkeep.open(project, read_only=True)

    done = run_agentkeep("status", cwd=project)
    err = done.stderr.decode()
    assert done.returncode == 6, err
    assert b"Traceback" not in done.stdout + done.stderr
    assert done.stdout == b""
    lines = err.splitlines()
    assert len([line for line in lines if line.startswith("error: ")]) == 1, err
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), err

    as_json = run_agentkeep("status", "--json", cwd=project)
    assert as_json.returncode == 6
    assert json.loads(as_json.stderr)["code"] == "schema_too_new"

    assert sha256_in_subprocess(db_path(project)) == before
    assert_no_wal_content(project)
    assert not (project / ".agentkeep" / "backups").exists()


def test_store_newer_for_writers_only_opens_read_only(project: Path) -> None:
    make_newer(project, min_reader=SCHEMA_VERSION, min_writer=NEXT)
    before = sha256_in_subprocess(db_path(project))

    with agentkeep.open(project) as store:
        assert store.writable is False
        assert [t.title for t in store.list_tasks()] == [f"older task {i}" for i in range(3)]
        assert store.get_task(1).title == "older task 0"
        assert store.status().counts["tasks"] == 3
        assert store.events()
        task_id = store.list_tasks()[0].id
        writes = [
            lambda: store.add_task("new"),
            lambda: store.update_task(task_id, title="renamed"),
            lambda: store.claim_task(task_id, "agent"),
            lambda: store.add_note("fact", "a fact"),
            lambda: store.record_event("custom.thing"),
            lambda: store.undo("task", task_id),
        ]
        for write in writes:
            with pytest.raises(SchemaTooNew):
                write()

    listed = run_agentkeep("tasks", "list", "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 3
    refused = run_agentkeep("tasks", "add", "nope", cwd=project)
    assert refused.returncode == 6
    assert b"Traceback" not in refused.stderr

    assert sha256_in_subprocess(db_path(project)) == before
    assert_no_wal_content(project)


def test_additive_newer_schema_is_written_normally_and_keeps_unknown_columns(
    project: Path,
) -> None:
    make_newer(project, min_reader=SCHEMA_VERSION, min_writer=SCHEMA_VERSION)
    with agentkeep.open(project) as store:
        assert store.writable is True
        first = store.list_tasks()[0]
        store.update_task(first.id, title="renamed", labels=["x"])
        store.claim_task(first.id, "agent-1")
        store.undo("task", first.id)
        new = store.add_task("written by older code").item
        store.add_note("fact", "still fine", task_id=new.id)
        assert store.check().ok

    conn = connect_raw(db_path(project))
    try:
        values = dict(conn.execute("SELECT id, future_col FROM tasks").fetchall())
        assert conn.execute("SELECT what FROM future_things").fetchall() == [("kept",)]
        meta = meta_of(conn)
    finally:
        conn.close()
    assert {i: v for i, v in values.items() if i != new.id} == {
        i: f"future-{i}" for i in range(1, 4)
    }
    assert values[new.id] is None
    # Older code must not claim the file is older than it is.
    assert int(meta["schema_version"]) == NEXT


def test_rebuilding_a_referenced_table_needs_foreign_keys_off(project: Path) -> None:
    """A 12-step table rebuild of `tasks` (referenced by deps, notes and sub-tasks) fails
    cleanly and changes nothing without ``foreign_keys_off``, and succeeds with it."""
    from agentkeep.backends.sqlite.connection import connect
    from agentkeep.errors import StorageError
    from agentkeep.migrations import MIGRATIONS, Migration, migrate, read_state

    with agentkeep.open(project) as store:
        first = store.add_task("a").item
        store.add_task("b", depends_on=[first.id], parent_id=first.id)
        store.add_note("fact", "about a", task_id=first.id)
    conn = connect(db_path(project))
    try:
        plain = Migration(NEXT, "rebuild", {"sqlite": REBUILD_SQL})
        with pytest.raises(StorageError, match="failed and was rolled back"):
            migrate(conn, backup_dir=None, app_version="test", migrations=(*MIGRATIONS, plain))
        state = read_state(conn)
        assert state is not None and state.schema_version == SCHEMA_VERSION
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1

        rebuild = Migration(NEXT, "rebuild", {"sqlite": REBUILD_SQL}, foreign_keys_off=True)
        applied = migrate(
            conn, backup_dir=None, app_version="test", migrations=(*MIGRATIONS, rebuild)
        )
        assert [m.version for m in applied] == [NEXT]
        assert "estimate_minutes" in [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM task_deps").fetchone()[0] == 1
    finally:
        conn.close()


# -- (e) the migration format: SQL files per dialect, a dialect-neutral engine ----------

REPO = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO / "src" / "agentkeep" / "backends" / "sqlite" / "schema"

# sha256 of each released migration's SQLite script. A released migration is never edited
# (a store at that version already has what it made); a change is a new migration. Pin a
# migration here when it is released. These were taken when the scripts moved out of
# migrations.py, whose strings produced byte-for-byte the same sqlite_master.
RELEASED = {
    "0001_baseline.sql": "8ecefd2ae4dcbddc923ede3fee2369dae396a5f6b298c630d0153788d00311d3",
    "0002_streams_and_artifacts.sql": (
        "a9c800b04e5cca032f938044dfd7b2be41f983208d675889cd4bc907c2c5b966"
    ),
    "0003_capture.sql": "68823fdc150bbbcb3ff3f76f8deba2e2d96d09114e1bf4414a7a570ee3dd37a7",
    "0004_import_truth.sql": "51b08ef2aa92776c4455ae7932f762dc4c0cdb28035de04372da56cd06de23f3",
    "0005_search_everywhere.sql": (
        "0f30760d671831ad5141172a463fe8c7bb625b89fe5bbb01bca6ce7678a6dc0a"
    ),
    "0006_sessions_by_agent.sql": (
        "d296ede0b669d194828fc5377796571b6432c4a02b4e2ac36c77d35318724211"
    ),
    "0007_cost_flat_with_history.sql": (
        "a0b554436ef881552006b98bfa4c0219e99e5d8f7323994744689116c5805c60"
    ),
    "0008_search_after_capture.sql": (
        "420a3bff72563d6ed80ea302151eff759f28542477aa9dc60d6add8dd8d1e00c"
    ),
    "0009_documents.sql": "55c24ba085fe32997e613286d0c3e82054a42529465800d4175890a33d4d985a",
    "global/0001_baseline.sql": "285c59b869f39129f0ad91a1fb54998dc17e36d5af67ed532f851cf9af571812",
}


def test_released_migrations_are_never_edited() -> None:
    import hashlib

    for name, digest in RELEASED.items():
        text = (SCHEMA_DIR / name).read_bytes()
        assert hashlib.sha256(text).hexdigest() == digest, (
            f"{name} was released and must not change: add a new migration instead"
        )


def test_schema_files_are_the_registered_migrations_in_order() -> None:
    """One file per migration, named <version:04d>_<name>.sql, versions 1..N without a gap;
    SCHEMA_VERSION is the last one (and the hook's copy of it agrees)."""
    from agentkeep import capture, registry
    from agentkeep.backends.sqlite.migrate import SchemaFile

    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert SCHEMA_VERSION == MIGRATIONS[-1].version == capture.SCHEMA_VERSION
    expected = [f"{m.version:04d}_{m.name}.sql" for m in MIGRATIONS]
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.sql")) == expected
    slots = [m.sql_by_dialect["sqlite"] for m in MIGRATIONS]
    assert [s.name if isinstance(s, SchemaFile) else s for s in slots] == expected
    global_files = [f"global/{p.name}" for p in sorted((SCHEMA_DIR / "global").glob("*.sql"))]
    assert [m.sql_by_dialect["sqlite"].name for m in registry.MIGRATIONS] == global_files  # type: ignore[union-attr]
    for migration in MIGRATIONS:
        assert split_statements(migration.sql_for("sqlite")), migration.name


def test_a_migration_without_sql_for_this_backend_changes_nothing(
    project: Path, tmp_path: Path
) -> None:
    from agentkeep.backends.sqlite.connection import connect
    from agentkeep.errors import StorageError
    from agentkeep.migrations import Migration, migrate, read_state

    elsewhere = Migration(NEXT, "elsewhere", {"postgresql": "ALTER TABLE tasks ADD x INTEGER"})
    conn = connect(db_path(project))
    try:
        with pytest.raises(
            StorageError, match=rf"migration {NEXT} \(elsewhere\) has no SQL for the sqlite backend"
        ) as raised:
            migrate(
                conn,
                backup_dir=tmp_path / "backups",
                app_version="test",
                migrations=(*MIGRATIONS, elsewhere),
            )
        assert raised.value.hint is not None and "postgresql" in raised.value.hint
        state = read_state(conn)
        assert state is not None and state.schema_version == SCHEMA_VERSION
    finally:
        conn.close()
    assert not (tmp_path / "backups").exists()  # refused before the backup, too


def test_a_backend_without_a_migrator_is_refused() -> None:
    """The engine finds the backend's half by ``conn.dialect.name``: an unknown one is a
    sentence, not a KeyError."""
    from types import SimpleNamespace

    from agentkeep.errors import StorageError
    from agentkeep.migrations import read_state

    elsewhere = SimpleNamespace(dialect=SimpleNamespace(name="postgresql"), path=Path("x"))
    with pytest.raises(StorageError, match="cannot migrate a postgresql database"):
        read_state(elsewhere)  # type: ignore[arg-type]


def test_a_python_backfill_commits_with_its_migration_or_not_at_all(project: Path) -> None:
    from agentkeep.backends.sqlite.connection import connect
    from agentkeep.errors import InvalidInput, StorageError
    from agentkeep.migrations import Migration, migrate, read_state

    with agentkeep.open(project) as store:
        for title in ("a", "bb", "ccc"):
            store.add_task(title)

    def fill(conn: Any) -> None:
        rows = conn.execute("SELECT id, title FROM tasks").fetchall()
        conn.executemany(
            "UPDATE tasks SET estimate_minutes = ? WHERE id = ?",
            [(10 * len(title), task_id) for task_id, title in rows],
        )

    def broken(conn: Any) -> None:
        fill(conn)
        raise InvalidInput("a row the backfill cannot convert")

    add = {"sqlite": "ALTER TABLE tasks ADD COLUMN estimate_minutes INTEGER;"}
    conn = connect(db_path(project))
    try:
        with pytest.raises(StorageError, match="rolled back: a row the backfill cannot convert"):
            migrate(
                conn,
                backup_dir=None,
                app_version="test",
                migrations=(*MIGRATIONS, Migration(NEXT, "estimate", add, backfill=broken)),
            )
        state = read_state(conn)
        assert state is not None and state.schema_version == SCHEMA_VERSION
        assert "estimate_minutes" not in [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]

        applied = migrate(
            conn,
            backup_dir=None,
            app_version="test",
            migrations=(*MIGRATIONS, Migration(NEXT, "estimate", add, backfill=fill)),
        )
        assert [m.version for m in applied] == [NEXT]
        rows = conn.execute("SELECT title, estimate_minutes FROM tasks ORDER BY id").fetchall()
        assert [tuple(r) for r in rows] == [("a", 10), ("bb", 20), ("ccc", 30)]
    finally:
        conn.close()


def test_incremental_auto_vacuum_left_unfinished_is_finished_on_next_open(project: Path) -> None:
    """Migration 2's after-commit step (a VACUUM cannot run in a transaction): a store whose
    steps committed but whose VACUUM never ran (a crash in between) gets it on next open."""
    with agentkeep.open(project) as store:
        store.add_task("before")
    with closing(connect_raw(db_path(project))) as conn:
        conn.execute("PRAGMA auto_vacuum=NONE")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    with agentkeep.open(project) as store:
        store.add_task("after")
    with closing(connect_raw(db_path(project))) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert [r[0] for r in conn.execute("SELECT title FROM tasks")] == ["before", "after"]


def test_a_missing_schema_file_is_a_clear_error() -> None:
    from agentkeep.backends.sqlite.migrate import schema
    from agentkeep.errors import StorageError

    with pytest.raises(
        StorageError, match=r"schema file 0099_nothing\.sql cannot be read"
    ) as raised:
        schema("0099_nothing.sql")()
    assert raised.value.hint is not None and "reinstall" in raised.value.hint


def test_a_store_works_from_an_installed_layout(tmp_path: Path) -> None:
    """The schema files are package data: an installed-like tree holding only the modules
    and what pyproject's package-data globs select (as setuptools builds a wheel from
    them) creates and migrates a store and the per-user registry."""
    import shutil
    import tomllib

    package = Path(agentkeep.__file__).resolve().parent
    globs = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["package-data"]["agentkeep"]
    site = tmp_path / "site"
    selected = [p for p in package.rglob("*.py") if "__pycache__" not in p.parts]
    # setuptools keeps the files a glob matches (server/static/* also matches vendor/).
    selected += [p for pattern in globs for p in package.glob(pattern) if p.is_file()]
    for path in selected:
        dest = site / "agentkeep" / path.relative_to(package)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    backends = SCHEMA_DIR.parent.parent  # every backend's schema scripts are shipped
    assert len(list(site.rglob("*.sql"))) == len(list(backends.rglob("*.sql")))
    script = (
        "import sys, agentkeep\n"
        "assert agentkeep.__file__.startswith(sys.argv[2]), agentkeep.__file__\n"
        "agentkeep.init_store(sys.argv[1])\n"
        "with agentkeep.open(sys.argv[1]) as store:\n"
        "    store.add_task('installed')\n"
        "    print(store.schema_status().db_schema_version)\n"
        "from agentkeep.registry import list_projects\n"
        "print(len(list_projects()))\n"
    )
    root = tmp_path / "proj"
    root.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", script, str(root), str(site)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(site), "AGENTKEEP_HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(SCHEMA_VERSION), "1"]


def test_schema_8_starts_its_watermark_at_the_newest_message_already_indexed(
    tmp_path: Path,
) -> None:
    """An existing store's messages were indexed by schema 5's triggers: the watermark
    starts at the newest of them, and only messages stored from then on wait for a
    catch-up."""
    from agentkeep.backends.sqlite.connection import connect
    from agentkeep.backends.sqlite.search import SEARCH
    from agentkeep.migrations import MIGRATIONS, migrate

    path = tmp_path / "state.db"
    conn = connect(path)
    try:
        migrate(conn, backup_dir=None, app_version="test", migrations=MIGRATIONS[:7])
        conn.execute(
            "INSERT INTO sessions (source, external_id, status, started_at)"
            " VALUES ('claude', 's', 'running', '2026-01-01T00:00:00.000Z')"
        )
        insert = (
            "INSERT INTO messages (session_id, seq, role, kind, text, external_id)"
            " VALUES (1, ?, 'user', 'text', ?, ?)"
        )
        for n, text in enumerate(["old walrus", None, "old narwhal"]):
            conn.execute(insert, (n, text, f"m{n}"))
        migrate(conn, backup_dir=None, app_version="test", migrations=MIGRATIONS)
        assert conn.execute("SELECT name, indexed_to FROM search_index").fetchall() == [
            ("messages", 3)
        ]
        assert not SEARCH.behind(conn)
        conn.execute(insert, (3, "new walrus", "m3"))
        assert SEARCH.behind(conn)

        def matches(word: str) -> list[int]:
            sql = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid"
            return [row[0] for row in conn.execute(sql, (word,))]

        assert matches("walrus") == [1]
        conn.execute("BEGIN IMMEDIATE")
        assert SEARCH.catch_up(conn) == 1
        conn.execute("COMMIT")
        assert matches("walrus") == [1, 4] and matches("narwhal") == [3]
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
    finally:
        conn.close()
