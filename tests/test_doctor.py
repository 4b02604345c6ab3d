"""`agentkeep doctor`: every kind of finding planted by hand, the repairs ``--fix`` makes
(and the ones it refuses to make), the JSON shape, exit codes, and that it is read-only
without ``--fix``. Crash-made damage is in test_crash_files.py."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.files import HOST
from agentkeep.ops.doctor import Report, diagnose, repair
from agentkeep.services.artifacts import object_path
from agentkeep.services.streams import stream_file


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


@pytest.fixture
def live_process() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def checks(report: Any) -> list[tuple[str, str, bool]]:
    return sorted((f.check, f.severity, f.fixed) for f in report.findings)


def add_object(store: agentkeep.Store, data: bytes) -> Path:
    artifact = store.add_artifact(data, name="x.bin").item
    return object_path(store.store_dir, artifact.sha256, artifact.encoding)


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every file except SQLite's own (size, sha256 of contents)."""
    result = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("state.db"):
            continue
        result[str(path.relative_to(root))] = (
            path.stat().st_size,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
    return result


def recorded_session(
    store: agentkeep.Store, data: bytes, *, pid: int, end: str | None = None
) -> tuple[int, int]:
    """A session recorded by ``pid`` with one stream holding ``data``; the writer is
    abandoned (as if killed) unless ``end`` says how the session ended (stream closed)."""
    session = store.start_session(source="run", pid=pid, host=HOST).item
    writer = store.open_stream(session.id, "stdout", auto_commit=False)
    writer.write(data)
    writer.commit_progress()
    if end is None:
        writer.abandon()
    else:
        writer.close()
        store.end_session(session.id, status=end)
    return session.id, writer.stream.id


def test_clean_store_is_ok(store: agentkeep.Store, cli: Any) -> None:
    add_object(store, b"hello\n" * 1000)
    _, stream_id = recorded_session(store, b"line\n" * 100, pid=os.getpid(), end="ended")
    store.seal_stream(stream_id)
    report = diagnose(store)
    assert report.ok and report.findings == []
    result = cli("doctor")
    assert result.exit_code == 0, result.stderr
    assert "no problems found" in result.stdout


def test_missing_object_file_is_an_unfixable_error(store: agentkeep.Store, cli: Any) -> None:
    path = add_object(store, os.urandom(5000))
    path.unlink()
    if store.artifacts.bytes_shared:  # PostgreSQL's copy would be fetched: lose it too
        with store.transaction() as tx:
            store.unshare_bytes(tx, [f"objects/{path.name}"])
    report = diagnose(store)
    assert checks(report) == [("missing-file", "error", False)]
    assert not report.ok and report.findings[0].hint
    fixed = cli("doctor", "--fix", "--json")
    assert fixed.exit_code == 1
    assert fixed.json()["findings"][0]["check"] == "missing-file"
    assert store._count("SELECT count(*) FROM objects") == 1  # the row is kept
    assert store._count("SELECT count(*) FROM artifacts") == 1


@pytest.mark.parametrize("data", [os.urandom(3000), b"compressible text\n" * 500])
def test_damaged_object_file_is_a_hash_mismatch(store: agentkeep.Store, data: bytes) -> None:
    path = add_object(store, data)
    path.chmod(0o600)
    with path.open("ab") as handle:
        handle.write(b"garbage")
    report = diagnose(store)
    assert checks(report) == [("hash-mismatch", "error", False)]
    assert not repair(store).ok


def test_stray_file_in_objects_is_an_orphan(store: agentkeep.Store, cli: Any) -> None:
    kept = add_object(store, b"keep me\n" * 100)
    stray = kept.parent / ("ab" * 32)
    stray.write_bytes(b"nobody refers to this")
    other = store.store_dir / "objects" / "sha256" / "zz" / "notes.txt"
    other.parent.mkdir()
    other.write_bytes(b"x")
    result = cli("doctor", "--json")
    assert result.exit_code == 1
    body = result.json()
    assert body["ok"] is False
    assert sorted(f["subject"] for f in body["findings"]) == sorted(
        str(p.relative_to(store.store_dir)) for p in (stray, other)
    )
    assert stray.exists() and other.exists()
    fixed = cli("doctor", "--fix")
    assert fixed.exit_code == 0, fixed.stdout
    assert "✓ fixed" in fixed.stdout and "2 problem(s) fixed" in fixed.stdout
    assert not stray.exists() and not other.exists() and kept.exists()
    assert cli("doctor").exit_code == 0
    assert store.read_artifact(1) == b"keep me\n" * 100


def test_temp_files_of_dead_processes_are_removed_live_ones_kept(
    store: agentkeep.Store, live_process: int
) -> None:
    objects = store.store_dir / "objects" / "sha256"
    objects.mkdir(parents=True)
    dead = objects / f"object.tmp-{dead_pid()}-0123abcd"
    dead.write_bytes(b"half an object")
    live = objects / f"object.tmp-{live_process}-89abcdef"
    live.write_bytes(b"being written")
    backups = store.store_dir / "backups"
    backups.mkdir()
    dead_backup = backups / f"state-x.db.tmp-{dead_pid()}-00ff00ff"
    dead_backup.write_bytes(b"half a backup")
    report = diagnose(store)
    assert checks(report) == [
        ("temp-file", "info", False),
        ("temp-file", "warning", False),
        ("temp-file", "warning", False),
    ]
    fixed = repair(store)
    assert fixed.ok
    assert not dead.exists() and not dead_backup.exists()
    assert live.exists(), "a live writer's temp file must never be removed"
    assert checks(diagnose(store)) == [("temp-file", "info", False)]


def test_dead_recorder_session_is_interrupted_and_sealed(store: agentkeep.Store) -> None:
    data = b"".join(b"line %d\n" % i for i in range(2000))
    sid, stream_id = recorded_session(store, data, pid=dead_pid())
    report = diagnose(store)
    assert checks(report) == [
        ("dead-session", "warning", False),
        ("unsealed-stream", "warning", False),
    ]
    fixed = repair(store)
    assert fixed.ok and all(f.fixed for f in fixed.findings)
    assert store.get_session(sid).status == "interrupted"
    stream = store.get_stream(stream_id)
    assert stream.status == "sealed"
    assert stream.sha256 == hashlib.sha256(data).hexdigest()
    assert store.read_stream(stream_id) == data
    assert not (store.store_dir / stream_file(sid, "stdout")).exists()
    assert diagnose(store).findings == []


def test_live_recorder_is_left_alone(store: agentkeep.Store, live_process: int) -> None:
    recorded_session(store, b"still going\n", pid=live_process)
    report = repair(store)
    assert report.findings == [] and report.ok
    assert store.list_streams(status="live")


def test_unsealed_stream_of_ended_session_and_interrupted_seal(store: agentkeep.Store) -> None:
    data = b"output\n" * 300
    sid, stream_id = recorded_session(store, data, pid=os.getpid(), end="failed")
    # A seal that crashed between publishing the .zst and committing the row.
    zst = store.store_dir / stream_file(sid, "stdout", sealed=True)
    zst.write_bytes(b"not even zstd")
    report = diagnose(store)
    assert checks(report) == [
        ("orphan-file", "warning", False),
        ("unsealed-stream", "warning", False),
    ]
    assert repair(store).ok
    assert store.get_stream(stream_id).status == "sealed"
    assert store.read_stream(stream_id) == data
    assert diagnose(store).findings == []


def test_plain_file_of_sealed_stream_is_an_orphan(store: agentkeep.Store) -> None:
    data = b"sealed\n" * 50
    sid, stream_id = recorded_session(store, data, pid=os.getpid(), end="ended")
    store.seal_stream(stream_id)
    plain = store.store_dir / stream_file(sid, "stdout")
    plain.write_bytes(data)  # a seal that crashed after its commit, before the unlink
    stray = store.store_dir / "streams" / "999" / "stdout.log"
    stray.parent.mkdir()
    stray.write_bytes(b"no session")
    assert checks(diagnose(store)) == [("orphan-file", "warning", False)] * 2
    assert repair(store).ok
    assert not plain.exists() and not stray.exists()
    assert store.read_stream(stream_id) == data


def test_stream_file_problems_are_errors(store: agentkeep.Store) -> None:
    _, sealed_id = recorded_session(store, b"a\n" * 100, pid=os.getpid(), end="ended")
    sealed = store.seal_stream(sealed_id)
    path = store.store_dir / sealed.path
    path.chmod(0o600)
    path.write_bytes(path.read_bytes()[:-30] + b"\0" * 30)
    _, live_id = recorded_session(store, b"b\n" * 100, pid=os.getpid())
    (store.store_dir / store.get_stream(live_id).path).unlink()
    report = diagnose(store)
    assert checks(report) == [("hash-mismatch", "error", False), ("missing-file", "error", False)]
    assert not repair(store).ok
    assert store.get_stream(live_id).status == "live"  # its recorder (this process) lives


def test_hook_error_log_is_reported_but_not_a_problem(store: agentkeep.Store, cli: Any) -> None:
    (store.store_dir / "hook-errors.log").write_text("t1 boom\nt2 database is locked\n")
    result = cli("doctor", "--json")
    assert result.exit_code == 0
    (finding,) = result.json()["findings"]
    assert finding["check"] == "hook-errors" and finding["severity"] == "info"
    assert "2 hook failure(s)" in finding["message"] and "locked" in finding["message"]


def test_hook_error_log_is_never_followed_out_of_the_store(
    store: agentkeep.Store, cli: Any, tmp_path: Path
) -> None:
    """A hook-errors.log that is a symlink (committed in a cloned repository) or a FIFO is
    reported unreadable; doctor neither shows what it points at nor blocks on it."""
    outside = tmp_path / "outside.txt"
    outside.write_text("DB_HOST=x\nlast line of a file outside the store\n")
    log = store.store_dir / "hook-errors.log"
    log.symlink_to(outside)
    result = cli("doctor", "--json")
    assert result.exit_code in (0, 1), result.stderr  # a link in the store may be a problem
    findings = [f for f in result.json()["findings"] if f["check"] == "hook-errors"]
    assert findings and "DB_HOST" not in result.stdout and "outside" not in result.stdout
    log.unlink()
    os.mkfifo(log)  # opened for reading, a FIFO without a writer would block for ever
    findings = [f for f in cli("doctor", "--json").json()["findings"]]
    assert any("not a regular file" in f["message"] for f in findings), findings


def test_json_shape_and_nl(store: agentkeep.Store, cli: Any) -> None:
    stray = store.store_dir / "objects" / "sha256" / "00" / ("00" * 32)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    body = cli("doctor", "--json").json()
    assert set(body) == {"schema_version", "ok", "fix", "findings"}
    (finding,) = body["findings"]
    assert set(finding) == {"check", "severity", "subject", "message", "fixed", "hint"}
    assert finding["check"] == "orphan-file" and finding["fixed"] is False
    lines = cli("doctor", "--nl").stdout.splitlines()
    assert len(lines) == 1 and '"orphan-file"' in lines[0]
    fixed = cli("doctor", "--fix", "--json")
    assert fixed.exit_code == 0 and fixed.json()["fix"] is True
    assert fixed.json()["findings"][0]["fixed"] is True
    after = cli("doctor", "--json").json()
    assert {k: after[k] for k in ("schema_version", "ok", "fix")} == {
        "schema_version": 1,
        "ok": True,
        "fix": False,
    }
    # The orphan was moved to the quarantine, never deleted: reported as info.
    (kept,) = after["findings"]
    assert (kept["check"], kept["severity"]) == ("quarantine", "info")
    moved = list((store.store_dir / "quarantine").rglob(stray.name))
    assert len(moved) == 1 and moved[0].read_bytes() == b"x"


def test_read_only_without_fix(store: agentkeep.Store, cli: Any) -> None:
    add_object(store, b"one\n" * 100).unlink()
    add_object(store, b"two\n" * 100)
    (store.store_dir / "objects" / "sha256" / f"object.tmp-{dead_pid()}-0000aaaa").write_bytes(b"t")
    recorded_session(store, b"dead\n" * 10, pid=dead_pid())
    zst_stray = store.store_dir / "streams" / "77" / "stdout.zst"
    zst_stray.parent.mkdir(parents=True)
    zst_stray.write_bytes(b"z")
    before_files = tree(store.store_dir)
    before_events = store._count("SELECT count(*) FROM events")
    result = cli("doctor")
    assert result.exit_code == 1
    assert result.stdout.count("✗") >= 5
    assert tree(store.store_dir) == before_files
    assert store._count("SELECT count(*) FROM events") == before_events
    assert store.list_sessions(status="running")


def test_database_damage_blocks_repairs(store: agentkeep.Store, project: Path) -> None:
    stray = store.store_dir / "objects" / "sha256" / "00" / ("11" * 32)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    orphan = (
        "INSERT INTO artifacts (sha256, kind, size, data, created_at) "
        "VALUES (?, 'file', 1, '{}', '2025-01-01T00:00:00Z')"
    )
    if store.backend.name == "postgres":
        # PostgreSQL enforces the reference unless the table's triggers are off.
        store._conn.execute("ALTER TABLE artifacts DISABLE TRIGGER ALL")
        store._conn.execute(orphan, ("22" * 32,))
        store._conn.execute("ALTER TABLE artifacts ENABLE TRIGGER ALL")
    else:
        conn = sqlite3.connect(store.db_path)
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute(orphan, ("22" * 32,))
        conn.commit()
        conn.close()
    report = repair(store)
    assert not report.ok
    found = checks(report)
    assert ("foreign-keys", "error", False) in found
    assert ("repairs", "info", False) in found
    assert ("orphan-file", "warning", False) in found
    assert stray.exists(), "no file may be deleted on the word of a damaged database"


def test_doctor_rehashes_only_what_changed_and_full_rehashes_all(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    """A file doctor verified and that has not changed since is not read again; one that
    changed is (even with its size and mtime put back); --full reads every one. Counted
    at the hashing function doctor calls (the seam), not timed."""
    from agentkeep.ops import doctor as doctor_module
    from agentkeep.ops import verified

    # Files created within RACY_S of a check are not recorded (a same-tick change could
    # hide); these are "old" for the test.
    monkeypatch.setattr(verified, "RACY_S", 0.0)
    hashed: list[str] = []
    real = doctor_module.verify_object

    def counting(store_dir: Path, sha256: str, encoding: str, size: int) -> Any:
        hashed.append(sha256)
        return real(store_dir, sha256, encoding, size)

    monkeypatch.setattr(doctor_module, "verify_object", counting)
    paths = [add_object(store, f"object {i}\n".encode() * 300) for i in range(3)]

    assert diagnose(store).ok and len(hashed) == 3
    hashed.clear()
    assert diagnose(store).ok and hashed == []  # nothing changed: nothing re-read

    damaged = paths[0]
    before = damaged.stat()
    damaged.chmod(0o600)
    data = damaged.read_bytes()
    damaged.write_bytes(bytes([data[0] ^ 1]) + data[1:])  # same size
    os.utime(damaged, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime
    report = diagnose(store)
    assert checks(report) == [("hash-mismatch", "error", False)] and len(hashed) == 1
    hashed.clear()
    assert not diagnose(store, full=True).ok and len(hashed) == 3
    hashed.clear()
    result = cli("doctor", "--full", "--json")
    assert result.exit_code == 1 and len(hashed) == 3


@pytest.mark.sqlite_only(
    "a PostgreSQL store has no database file to key the record on: its catalog check "
    "runs every time (test_pg_maintenance)"
)
def test_doctor_page_checks_the_database_only_when_it_changed(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database's page check is skipped while neither its file nor its WAL changed
    since it last passed; any commit, or --full, checks it again. Counted at the
    maintenance API (the seam), not timed."""
    from agentkeep.backends.sqlite.maintenance import SQLiteMaintenance
    from agentkeep.ops import verified

    monkeypatch.setattr(verified, "RACY_S", 0.0)
    checked: list[bool] = []
    real = SQLiteMaintenance.integrity

    def counting(self: SQLiteMaintenance, *, full: bool) -> list[str]:
        checked.append(full)
        return real(self, full=full)

    monkeypatch.setattr(SQLiteMaintenance, "integrity", counting)
    assert diagnose(store).ok and checked == [False]
    assert diagnose(store).ok and checked == [False]  # nothing written: not read again
    store.add_task("a commit")
    assert diagnose(store).ok and checked == [False, False]
    assert diagnose(store, full=True).ok and checked == [False, False, True]


def test_a_fifo_at_the_verified_cache_does_not_stop_doctor(project: Path) -> None:
    """doctor's record of what it verified is only a cache: a FIFO (or a link, which
    opening the store already refuses) where it lives is ignored, and doctor runs."""
    os.mkfifo(project / ".agentkeep" / "doctor-verified.json")
    with agentkeep.open(project) as store:
        report = diagnose(store)  # raised StorageError ("not a regular file") before
    assert isinstance(report, Report)


def test_doctor_on_an_empty_database_opened_read_only_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".agentkeep").mkdir()
    sqlite3.connect(tmp_path / ".agentkeep" / "state.db").close()  # an empty database
    with (
        agentkeep.open(tmp_path, read_only=True) as store,
        pytest.raises(agentkeep.StorageError, match="no agentkeep schema"),
    ):
        diagnose(store)
