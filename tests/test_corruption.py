"""Corruption never becomes silent loss (issue 9 §5, principle 10 of docs/design.md): every
case is made with real files by another real process (tests/helpers/damage.py truncates,
deletes, flips WAL bytes and smashes pages; tests/helpers/holder.py holds a store open), and
the store must report it with the corruption exit code, refuse to write until the user
decides, and never delete data on the word of a damaged database."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.errors import Corrupt, RollbackDetected
from agentkeep.highwater import MARK_NAME, CommitGuard, Mark

from conftest import Cli

HELPERS = Path(__file__).resolve().parent / "helpers"


def damage(*args: str | Path, killed: bool = False) -> str:
    done = subprocess.run(
        [sys.executable, str(HELPERS / "damage.py"), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == (-9 if killed else 0), done.stderr
    return done.stdout.strip()


def files_of(store_dir: Path) -> dict[str, int]:
    """Every data file outside the database (relative path -> size)."""
    skip = {"state.db", "state.db-wal", "state.db-shm", "state.db.lock", "maintenance.lock"}
    return {
        str(p.relative_to(store_dir)): p.stat().st_size
        for p in sorted(store_dir.rglob("*"))
        if p.is_file() and p.name not in skip and p.name != "reserve"
    }


class Holder:
    """tests/helpers/holder.py: a real process holding the store open."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HELPERS / "holder.py"), str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, f"the holder died (exit {self.proc.wait()})"
        return json.loads(answer)  # type: ignore[no-any-return]

    def die(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("die\n")
        self.proc.stdin.flush()
        assert self.proc.wait() == -9
        self.close()

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


@pytest.fixture
def holder(project: Path) -> Iterator[Holder]:
    held = Holder(project)
    try:
        yield held
    finally:
        held.close()
        if held.proc.poll() is None:  # pragma: no cover - only when a test failed
            held.proc.kill()
            held.proc.wait()


def with_data(store: agentkeep.Store) -> None:
    """A task, an artifact (objects/) and a recorded run (streams/)."""
    from agentkeep.ops.runner import run_command

    store.add_task("keep me")
    store.add_artifact(b"artifact bytes\n" * 100, name="a.txt")
    run_command(store, [sys.executable, "-c", "print('hello')"], echo=False)


# -- a missing or empty database beside data files ----------------------------------------


@pytest.mark.parametrize("how", ["truncate", "remove"])
def test_empty_or_missing_database_beside_data_is_an_error_never_a_fresh_store(
    project: Path, cli: Cli, how: str
) -> None:
    store_dir = project / ".agentkeep"
    with agentkeep.open(project) as store:
        with_data(store)
        backup = store.backup()
    before = files_of(store_dir)
    assert any(name.startswith("objects/") for name in before)
    assert any(name.startswith("streams/") for name in before)
    damage(how, store_dir / "state.db")

    for args in (("tasks", "list", "--json"), ("doctor", "--fix", "--json"), ("status",)):
        result = cli(*args, "--json") if "--json" not in args else cli(*args)
        assert result.exit_code == 8, (args, result.stdout, result.stderr)
        error = json.loads(result.stderr)
        assert error["code"] == "corrupt"
        assert "holds data" in error["error"] and "objects/" in error["error"]
        assert f"agentkeep restore {backup}" in error["hint"]
    assert cli("init", str(project)).exit_code == 8
    with pytest.raises(Corrupt):
        agentkeep.init_store(project)
    # Nothing was re-created or deleted.
    assert files_of(store_dir) == before
    db = store_dir / "state.db"
    assert (not db.exists()) if how == "remove" else db.stat().st_size == 0

    # The hint works: restore the single-file backup it names.
    restored = cli("restore", str(backup), "--force", "--json")
    assert restored.exit_code == 0, restored.stderr
    with agentkeep.open(project) as store:
        assert [t.title for t in store.list_tasks()] == ["keep me"]
        assert store.read_artifact(1) == b"artifact bytes\n" * 100
    assert cli("doctor").exit_code == 0


def test_a_fresh_clone_with_only_config_still_initialises(tmp_path: Path, cli: Cli) -> None:
    """config.toml, .gitignore and docs/ come with a clone: that is not data."""
    root = tmp_path / "clone"
    (root / ".agentkeep" / "docs").mkdir(parents=True)
    (root / ".agentkeep" / "config.toml").write_text("")
    (root / ".agentkeep" / "docs" / "spec.md").write_text("# spec\n")
    assert cli("init", str(root)).exit_code == 0


# -- rollback: the commit high-water mark -------------------------------------------------


def test_deleted_shm_while_another_process_holds_the_store_is_detected(
    project: Path, holder: Holder, cli: Cli
) -> None:
    store_dir = project / ".agentkeep"
    first = holder.send("add 5 holder")
    assert first["ok"], first
    damage("remove", store_dir / "state.db-shm")
    # Another process writes: it builds a new -shm from the WAL and sees everything.
    other = cli("tasks", "add", "from another process", "--json")
    assert other.exit_code == 0, other.stderr
    # The holder's -shm is now a stale, deleted copy: its view of the WAL ends before the
    # other process's commit. Writing would put frames over that commit; it must refuse.
    second = holder.send("add 3 after")
    assert (second["ok"], second["code"]) == (False, "rollback_detected"), second
    assert "event" in second["error"]
    # When the holder closes, SQLite checkpoints *its* stale view and drops the WAL: the
    # other process's acknowledged commit is gone. That loss must not be silent.
    holder.close()
    with agentkeep.open(project) as store:
        assert isinstance(store.integrity_problem(), RollbackDetected)
        titles = {t.title for t in store.list_tasks(limit=100)}
    assert {f"holder {i}" for i in range(5)} <= titles
    added = cli("tasks", "add", "x", "--json")
    assert (added.exit_code, added.error()["code"]) == (8, "rollback_detected")
    doctor = cli("doctor", "--json")
    assert doctor.exit_code == 8
    assert "rollback" in {f["check"] for f in doctor.json()["findings"]}


def test_flipped_byte_in_a_hot_wal_frame_is_detected_reported_and_accepted(
    project: Path, holder: Holder, cli: Cli
) -> None:
    store_dir = project / ".agentkeep"
    for round_ in range(4):
        assert holder.send(f"add 5 r{round_}")["ok"]
    holder.die()  # a hot WAL: nothing checkpointed, no clean close
    wal = store_dir / "state.db-wal"
    frames = int(damage("wal-frames", wal))
    assert frames > 10
    damage("flip-wal-frame", wal, frames // 2)  # SQLite's recovery stops at this frame
    stray = store_dir / "objects" / "sha256" / "ab" / ("ab" * 32)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"a file doctor cannot match to a row")

    # Reads work and show what survived; writes are refused with the corruption exit code.
    listed = cli("tasks", "list", "--json", "-n", "100")
    assert listed.exit_code == 0, listed.stderr
    survivors = len(listed.json())
    assert survivors < 20
    added = cli("tasks", "add", "must not land", "--json")
    assert added.exit_code == 8, added.stderr
    assert added.error()["code"] == "rollback_detected"
    assert "db accept" in added.error()["hint"] and "restore" in added.error()["hint"]
    with agentkeep.open(project) as store, pytest.raises(RollbackDetected):
        store.add_task("library write")

    # doctor reports it (exit 8) and --fix proves no orphan against a rolled-back database.
    report = cli("doctor", "--fix", "--json")
    assert report.exit_code == 8
    checks = {f["check"] for f in report.json()["findings"]}
    assert "rollback" in checks and "repairs" in checks
    assert stray.exists()
    assert cli("db", "check").exit_code == 8

    # The user decides: accept the database as it is; writes resume.
    accepted = cli("db", "accept", "--json")
    assert accepted.exit_code == 0, accepted.stderr
    assert accepted.json()["missing_events"] > 0
    assert cli("tasks", "add", "after accept").exit_code == 0
    assert len(cli("tasks", "list", "--json", "-n", "100").json()) == survivors + 1
    assert cli("db", "check").exit_code == 0


def test_a_mark_behind_the_database_is_never_an_alarm(project: Path, cli: Cli) -> None:
    """A process killed between COMMIT and the mark write, or a power cut that kept an
    older mark: the database is ahead, which is normal."""
    store_dir = project / ".agentkeep"
    assert cli("tasks", "add", "one").exit_code == 0
    old = (store_dir / MARK_NAME).read_bytes()
    assert cli("tasks", "add", "two").exit_code == 0
    (store_dir / MARK_NAME).write_bytes(old)
    assert cli("tasks", "add", "three").exit_code == 0
    (store_dir / MARK_NAME).write_bytes(b"")  # torn by a power cut: no mark
    assert cli("tasks", "add", "four").exit_code == 0
    assert cli("doctor").exit_code == 0


@pytest.mark.parametrize(
    ("sync", "boot", "alarm"),
    [("FULL", "other", True), ("NORMAL", "other", False), ("NORMAL", "this", True)],
)
def test_a_mark_ahead_of_the_database(
    project: Path, cli: Cli, sync: str, boot: str, alarm: bool
) -> None:
    """Ahead is an alarm, except when a synchronous=NORMAL writer wrote it before a reboot:
    losing the last commits in a power cut is NORMAL's documented trade-off."""
    from agentkeep import highwater

    assert cli("tasks", "add", "one").exit_code == 0
    guard = CommitGuard(str(project / ".agentkeep" / MARK_NAME))
    mark = guard.read()
    assert mark is not None and mark.seq > 0
    boot_id = highwater._BOOT if boot == "this" else "another-boot"
    (project / ".agentkeep" / MARK_NAME).write_bytes(
        Mark(mark.seq + 5, "2099-01-01T00:00:00Z", boot_id, sync).encode()
    )
    result = cli("tasks", "add", "two", "--json")
    assert result.exit_code == (8 if alarm else 0), result.stderr


# -- damaged pages ------------------------------------------------------------------------


def many_tasks(project: Path, count: int = 400) -> None:
    with agentkeep.open(project) as store:
        for i in range(count):
            store.add_task(f"task {i:04d} " + "x" * 150)


def test_damaged_table_page_is_the_corruption_error_everywhere(project: Path, cli: Cli) -> None:
    many_tasks(project)
    db = project / ".agentkeep" / "state.db"
    damage("table-leaf", db, "tasks")
    for args in (("tasks", "list", "-n", "1000"), ("db", "check"), ("doctor",)):
        result = cli(*args, "--json")
        assert result.exit_code == 8, (args, result.stdout, result.stderr)
        assert "internal error" not in result.stderr
    # Known damage: writes are refused, and the file is not changed by trying.
    before = damage("sha256", db)
    added = cli("tasks", "add", "into a damaged database", "--json")
    assert added.exit_code == 8
    assert added.error()["code"] == "corrupt" and "restore" in added.error()["hint"]
    assert damage("sha256", db) == before


def test_damaged_index_found_by_db_check_refuses_writes_until_restored(
    project: Path, cli: Cli
) -> None:
    many_tasks(project, 20)
    backup = cli("db", "backup", "--json").json()["path"]
    db = project / ".agentkeep" / "state.db"
    damage("index-cell", db, "tasks_status")
    # Reads that do not touch the damaged key work, and writes would too: the damage is
    # unknown until a check finds it.
    assert cli("tasks", "list", "--json").exit_code == 0
    check = cli("db", "check", "--json")
    assert check.exit_code == 8
    assert check.json()["ok"] is False
    before = damage("sha256", db)
    added = cli("tasks", "add", "after the check", "--json")
    assert added.exit_code == 8, added.stdout
    assert damage("sha256", db) == before
    # Restoring the single-file backup is the way out.
    restored = cli("restore", backup, "--force", "--json")
    assert restored.exit_code == 0, restored.stderr
    assert restored.json()["check_ok"] is True
    assert cli("tasks", "add", "after restore").exit_code == 0
    assert cli("db", "check").exit_code == 0


# -- restore accepts both backup formats --------------------------------------------------


def test_restore_accepts_directory_and_single_file_backups(project: Path, cli: Cli) -> None:
    with agentkeep.open(project) as store:
        with_data(store)
    single = cli("db", "backup", "--json").json()["path"]
    snapshot = cli("backup", "--json").json()["path"]
    assert cli("tasks", "add", "after both backups").exit_code == 0
    for source in (single, snapshot):
        restored = cli("restore", source, "--force", "--json")
        assert restored.exit_code == 0, restored.stderr
        assert restored.json()["check_ok"] is True, restored.json()
        with agentkeep.open(project) as store:
            assert [t.title for t in store.list_tasks()] == ["keep me"]
            assert store.read_artifact(1) == b"artifact bytes\n" * 100
            (session,) = store.list_sessions()
            (stream,) = [s for s in store.session_streams(session.id) if s.name == "stdout"]
            assert store.read_stream(stream.id) == b"hello\n"
        assert cli("doctor").exit_code == 0
        assert Path(restored.json()["replaced"]).is_dir()  # moved aside, never deleted


def test_restore_refuses_a_damaged_single_file_backup(project: Path, cli: Cli) -> None:
    many_tasks(project)
    single = Path(cli("db", "backup", "--json").json()["path"])
    damage("table-leaf", single, "tasks")
    result = cli("restore", str(single), "--force", "--json")
    assert result.exit_code == 8
    assert "damaged" in result.error()["error"]
    with agentkeep.open(project) as store:
        assert store.check().ok  # the store was not touched


# -- a write killed with a rollback journal -----------------------------------------------


def test_hot_journal_of_a_killed_write_is_rolled_back_on_open(project: Path, cli: Cli) -> None:
    """A read-only probe cannot roll a hot journal back: every command failed (exit 12)."""
    store_dir = project / ".agentkeep"
    for title in ("one", "two"):
        assert cli("tasks", "add", title).exit_code == 0
    damage("killed-write", store_dir / "state.db", killed=True)
    assert (store_dir / "state.db-journal").exists()
    listed = cli("tasks", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert sorted(t["title"] for t in listed.json()) == ["one", "two"]  # rolled back
    assert not (store_dir / "state.db-journal").exists()  # SQLite removed it
    status = cli("db", "status", "--json")
    assert status.json()["journal_mode"] == "wal"
    assert cli("db", "check").exit_code == 0
    assert cli("doctor").exit_code == 0


def test_doctor_fix_removes_a_killed_copy_and_its_journal(project: Path, cli: Cli) -> None:
    """A backup copy killed mid-write (a migration's pre-migration backup) leaves its temp
    file and a hot -journal; doctor used to remove the first and never the second."""
    backups = project / ".agentkeep" / "backups"
    backups.mkdir(exist_ok=True)
    damage("killed-temp-db", backups, killed=True)
    left = sorted(p.name for p in backups.iterdir())
    assert len(left) == 2 and left[1] == left[0] + "-journal", left
    report = cli("doctor", "--json")
    assert report.exit_code == 1
    assert [f["check"] for f in report.json()["findings"]] == ["temp-file", "temp-file"]
    fixed = cli("doctor", "--fix", "--json")
    assert fixed.exit_code == 0, fixed.stdout
    assert list(backups.iterdir()) == []
    assert cli("doctor", "--json").json()["findings"] == []


@pytest.mark.slow
@pytest.mark.parametrize("point", ["migrate:begin", "migrate:statement:2", "migrate:before_commit"])
def test_killed_migration_leaves_nothing_doctor_cannot_clean(
    project: Path, cli: Cli, tmp_path: Path, point: str
) -> None:
    """The migration failpoints of test_migrations.py: a migration killed at a step leaves
    the old schema (SQLite rolls the transaction back), and `doctor --fix` leaves no
    journal, WAL-less side file or temp copy behind."""
    from test_migrations import child_source, fill_v1_store, run_child

    fill_v1_store(project)
    script = tmp_path / "migrate_child.py"
    script.write_text(child_source(), encoding="utf-8")
    crashed = run_child(script, project, env={"AGENTKEEP_FAILPOINT": point})
    assert crashed.returncode == -9, crashed.stderr
    fixed = cli("doctor", "--fix", "--json")
    assert fixed.exit_code == 0, fixed.stdout
    store_dir = project / ".agentkeep"
    leftovers = [
        str(p.relative_to(store_dir))
        for p in store_dir.rglob("*")
        if p.name.endswith("-journal") or ".tmp-" in p.name
    ]
    assert leftovers == []
    assert cli("db", "check").exit_code == 0
    assert cli("doctor", "--json").json()["ok"] is True


def test_the_hook_does_not_write_into_a_rolled_back_database(project: Path, cli: Cli) -> None:
    """The hook's own fast path checks the mark too: its delivery fails (logged, never the
    agent's problem) until the user decides, then it is written."""
    import sqlite3

    from conftest import run_agentkeep
    from hookpayloads import script

    store_dir = project / ".agentkeep"
    assert cli("tasks", "add", "one").exit_code == 0
    mark = CommitGuard(str(store_dir / MARK_NAME)).read()
    assert mark is not None
    (store_dir / MARK_NAME).write_bytes(
        Mark(mark.seq + 5, "2099-01-01T00:00:00Z", mark.boot, "FULL").encode()
    )
    delivery = script("claude", "s-rollback", str(project))[0]
    payload = json.dumps(delivery.payload).encode()

    def captures() -> int:
        conn = sqlite3.connect(f"file:{store_dir / 'state.db'}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM captures").fetchone()[0])
        finally:
            conn.close()

    done = run_agentkeep("hook", "--source", "claude", cwd=project, input=payload)
    assert done.returncode == 0, done.stderr  # never the agent's problem
    assert captures() == 0
    assert "commits are missing" in (store_dir / "hook-errors.log").read_text()
    assert cli("db", "accept").exit_code == 0
    accepted = CommitGuard(str(store_dir / MARK_NAME)).read()
    done = run_agentkeep("hook", "--source", "claude", cwd=project, input=payload)
    assert done.returncode == 0, done.stderr
    assert captures() == 1
    advanced = CommitGuard(str(store_dir / MARK_NAME)).read()
    assert accepted is not None and advanced is not None
    assert advanced.seq > accepted.seq  # the hook advanced the mark after its commit
    assert cli("tasks", "add", "after the hook").exit_code == 0
