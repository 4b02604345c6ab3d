"""Disk full during an artifact write and during a recorded run (docs/design.md "How the
guarantees are tested").

As root, the store lives on a small tmpfs; a filler file written beforehand is deleted to
give space back. Without root, the same failures come from ``RLIMIT_FSIZE`` in a
subprocess (EFBIG, with SIGXFSZ ignored), which must surface as the same StorageFull.

After every failure: a clear StorageFull (exit 9 from the CLI), no temp file left, no row
pointing at a missing or short file, ``PRAGMA quick_check`` ok — and writes resume once
there is room again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentkeep
from agentkeep.files import ensure_reserve
from agentkeep.ops.runner import run_command
from agentkeep.services.artifacts import verify_object
from agentkeep.services.streams import verify_sealed_file

from conftest import fill_disk, git, mounted_tmpfs, random_binary, run_agentkeep

TMPFS_SIZE = "8m"  # the store keeps a 4 MiB reserve (files.RESERVE_BYTES) on it
FILLER_BYTES = 1 << 20
BLOB_BYTES = 256 * 1024
LINE = "y" * 90


def expected_output(lines: int) -> bytes:
    return "".join(f"{i:08d} {LINE}\n" for i in range(lines)).encode()


def printer(lines: int, exit_code: int) -> list[str]:
    """A child that prints ``expected_output(lines)`` and exits with ``exit_code``."""
    script = (
        "import sys\n"
        f"for i in range({lines}):\n"
        f"    sys.stdout.write(f'{{i:08d}} {LINE}\\n')\n"
        "sys.stdout.flush()\n"
        f"sys.exit({exit_code})\n"
    )
    return [sys.executable, "-c", script]


def assert_consistent(store_dir: Path) -> dict[str, int]:
    """No temp files; every row's file exists and matches it; quick_check ok."""
    leftovers = [str(p) for p in store_dir.rglob("*") if ".tmp-" in p.name]
    assert leftovers == [], f"temp files left behind: {leftovers}"
    db = sqlite3.connect(f"file:{store_dir / 'state.db'}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        dangling = db.execute(
            "SELECT count(*) FROM artifacts WHERE sha256 NOT IN (SELECT sha256 FROM objects)"
        ).fetchone()[0]
        assert dangling == 0, "artifact rows without their object row"
        objects = db.execute("SELECT sha256, encoding, size FROM objects").fetchall()
        streams = db.execute("SELECT id, status, path, length, sha256 FROM streams").fetchall()
        artifacts = db.execute("SELECT count(*) FROM artifacts").fetchone()[0]
    finally:
        db.close()
    for sha, encoding, size in objects:
        ok, problem = verify_object(store_dir, sha, encoding, size)
        assert ok, f"object {sha[:12]} row points at a bad file: {problem}"
    for stream_id, status, path, length, sha in streams:
        if status == "sealed":
            problem = verify_sealed_file(store_dir / path, sha, length)
            assert problem is None, f"sealed stream {stream_id}: {problem}"
        else:
            size = (store_dir / path).stat().st_size
            assert length <= size, f"stream {stream_id} records {length} bytes, file has {size}"
    return {"artifacts": artifacts, "objects": len(objects), "streams": len(streams)}


@pytest.fixture
def tmpfs_project(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(project root on an 8 MiB tmpfs with an initialised store and its 4 MiB disk
    reserve, a 1 MiB filler file). AGENTKEEP_HOME stays outside the tmpfs (conftest)."""
    with mounted_tmpfs(tmp_path / "mnt", TMPFS_SIZE) as mount:
        root = mount / "proj"
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        agentkeep.init_store(root)
        assert ensure_reserve(root / ".agentkeep")
        filler = mount / "filler"
        filler.write_bytes(os.urandom(FILLER_BYTES))
        yield root, filler


@pytest.mark.slow
def test_artifact_add_until_the_disk_is_full_then_resume(
    tmpfs_project: tuple[Path, Path], tmp_path: Path
) -> None:
    root, filler = tmpfs_project
    store_dir = root / ".agentkeep"
    sources = tmp_path / "sources"
    sources.mkdir()
    added = 0
    for i in range(100):
        source = sources / f"blob{i}.bin"
        source.write_bytes(random_binary(BLOB_BYTES))
        done = run_agentkeep(
            "--store", str(root), "artifact", "add", str(source), "--json", cwd=tmp_path
        )
        if done.returncode != 0:
            break
        added += 1
    else:
        pytest.fail("the disk never filled")
    assert done.returncode == 9, done.stderr
    error = json.loads(done.stderr)
    assert error["code"] == "storage_full"
    assert "no space" in error["error"], error
    assert added >= 3, "the disk filled before any artifact was stored"
    counts = assert_consistent(store_dir)
    assert counts["artifacts"] == added  # the failed add left no row

    filler.unlink()
    content = random_binary(BLOB_BYTES)
    (sources / "after.bin").write_bytes(content)
    done = run_agentkeep(
        "--store", str(root), "artifact", "add", str(sources / "after.bin"), "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    artifact_id = json.loads(done.stdout)["artifact"]["id"]
    with agentkeep.open(root, read_only=True) as store:
        assert store.verify_artifact(artifact_id).ok
        assert store.read_artifact(artifact_id) == content
    assert assert_consistent(store_dir)["artifacts"] == added + 1


@pytest.mark.slow
def test_run_on_a_full_disk_returns_the_childs_exit_code_and_resumes(
    tmpfs_project: tuple[Path, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    root, filler = tmpfs_project
    store_dir = root / ".agentkeep"
    lines = 8 * 1024 * 1024 // 100  # 8 MiB: more than the disk holds
    with agentkeep.open(root) as store:
        result = run_command(store, printer(lines, 3), echo=False)
        # The child ran to its end and its exit code came back.
        assert (result.exit_code, result.signal, result.status) == (3, None, "failed")
        assert result.recording_errors, "a full disk must be reported"
        assert any("no space" in error for error in result.recording_errors), result
        session = store.get_session(result.session_id)
        assert session.status == "failed" and session.ended_at is not None
        assert session.exit_code == 3
        expected = expected_output(lines)
        for stream in store.session_streams(result.session_id):
            # Every byte the row claims is there, and it is the child's output.
            data = store.read_stream(stream.id, 0, stream.length)
            assert len(data) == stream.length
            if stream.name == "stdout":
                assert 0 < stream.length < len(expected)
                assert data == expected[: stream.length]
    assert "recording of stdout stopped" in capfd.readouterr().err
    assert_consistent(store_dir)

    filler.unlink()
    with agentkeep.open(root) as store:
        again = run_command(store, printer(2000, 0), echo=False)
        assert again.recording_errors == []
        assert (again.exit_code, again.status) == (0, "ended")
        streams = store.session_streams(again.session_id)
        assert {s.status for s in streams} == {"sealed"}
        stdout = next(s for s in streams if s.name == "stdout")
        assert store.read_stream(stdout.id) == expected_output(2000)
    assert_consistent(store_dir)


# -- without root: RLIMIT_FSIZE makes writes past the limit fail with EFBIG ---------------

LIMITED = """
import json, os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
import agentkeep
from agentkeep.errors import StorageFull
from agentkeep.ops.runner import run_command

root, limit, child = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
out = {}
with agentkeep.open(root) as store:
    try:
        store.add_artifact(os.urandom(2 * limit), name="too-big.bin")
        out["big"] = "stored"
    except StorageFull as exc:
        out["big"] = ["StorageFull", exc.exit_code, exc.message]
    small = bytes(b | 0x80 for b in os.urandom(limit // 4))  # no ASCII: nothing to redact
    written = store.add_artifact(small, name="small.bin")
    out["small_ok"] = store.read_artifact(written.item.id) == small
    result = run_command(store, child, echo=False)
    out["run"] = result.to_dict()
    out["streams"] = [s.to_dict() for s in store.session_streams(result.session_id)]
    out["session_status"] = store.get_session(result.session_id).status
print(json.dumps(out))
"""


@pytest.mark.slow
def test_file_size_limit_maps_to_the_same_storage_full(project: Path) -> None:
    limit = 1 << 20
    lines = 3 * limit // 100
    done = subprocess.run(
        [sys.executable, "-c", LIMITED, str(project), str(limit), json.dumps(printer(lines, 4))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    kind, exit_code, message = out["big"]
    assert (kind, exit_code) == ("StorageFull", 9)
    assert "no space" in message and "File too large" in message
    assert out["small_ok"] is True
    run = out["run"]
    assert (run["exit_code"], run["status"]) == (4, "failed")
    assert any("no space" in error for error in run["recording_errors"]), run
    assert out["session_status"] == "failed"
    stdout = next(s for s in out["streams"] if s["name"] == "stdout")
    assert 0 < stdout["length"] <= limit
    store_dir = project / ".agentkeep"
    assert_consistent(store_dir)
    with agentkeep.open(project, read_only=True) as store:
        data = store.read_stream(stdout["id"], 0, stdout["length"])
    assert data == expected_output(lines)[: stdout["length"]]


# -- a full disk and no process holding the store (issue 9 §5) ----------------------------


def cli_json(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_agentkeep("--store", str(root), *args, cwd=root.parent)


@pytest.mark.slow
def test_full_disk_with_no_holder_reads_and_gc_work(tmpfs_project: tuple[Path, Path]) -> None:
    """Every command used to fail with SQLITE_IOERR_SHMSIZE: with no process holding the
    store there is no -shm, and SQLite cannot create one on a full disk."""
    root, filler = tmpfs_project
    store_dir = root / ".agentkeep"
    with agentkeep.open(root) as store:
        old = [store.add_artifact(random_binary(BLOB_BYTES), kind="file").item for _ in range(4)]
        store.add_task("still readable")
        with store.transaction() as tx:
            for artifact in old:
                tx.execute(
                    "UPDATE artifacts SET created_at = ? WHERE id = ?",
                    ("2000-01-01T00:00:00Z", artifact.id),
                )
    assert not (store_dir / "state.db-shm").exists()  # nobody holds the store
    fill_disk(filler.with_name("more-filler"))
    assert os.statvfs(filler.parent).f_bavail == 0

    listed = cli_json(root, "tasks", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [t["title"] for t in json.loads(listed.stdout)] == ["still readable"]
    assert cli_json(root, "status", "--json").returncode == 0
    (store_dir / "config.toml").write_text("[retention.file]\nmax_age_days = 1\n")
    freed = cli_json(root, "gc", "--apply", "--json")
    assert freed.returncode == 0, freed.stderr
    result = json.loads(freed.stdout)
    assert result["plan"]["artifacts"] == 4
    assert os.statvfs(filler.parent).f_bavail > 0
    assert_consistent(store_dir)


@pytest.mark.slow
def test_full_disk_reads_work_even_with_no_reserve_left(
    tmpfs_project: tuple[Path, Path],
) -> None:
    root, filler = tmpfs_project
    store_dir = root / ".agentkeep"
    with agentkeep.open(root) as store:
        store.add_task("readable")
    (store_dir / "reserve").unlink()
    fill_disk(filler.with_name("more-filler"))
    listed = cli_json(root, "tasks", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [t["title"] for t in json.loads(listed.stdout)] == ["readable"]
    added = cli_json(root, "tasks", "add", "no room", "--json")
    assert added.returncode == 9
    assert json.loads(added.stderr)["code"] == "storage_full"


@pytest.mark.slow
@pytest.mark.parametrize("reserve", [True, False])
def test_run_on_a_full_disk_always_runs_the_command(
    tmpfs_project: tuple[Path, Path], tmp_path: Path, reserve: bool
) -> None:
    """The command must run even when recording cannot: with the reserve, the run is
    recorded from the reserve's room; without it, it runs unrecorded with a warning."""
    root, filler = tmpfs_project
    store_dir = root / ".agentkeep"
    if not reserve:
        (store_dir / "reserve").unlink()
    fill_disk(filler.with_name("more-filler"))
    marker = tmp_path / "ran"  # outside the full file system
    done = cli_json(
        root,
        "run",
        "--",
        sys.executable,
        "-c",
        f"import pathlib, sys; pathlib.Path({str(marker)!r}).write_text('x'); "
        "print('hi'); sys.exit(3)",
    )
    assert done.returncode == 3, done.stderr
    assert marker.exists(), "the command did not run"
    assert b"hi" in done.stdout
    if reserve:
        filler.unlink()
        with agentkeep.open(root, read_only=True) as store:
            (session,) = store.list_sessions()
            assert session.exit_code == 3
    else:
        assert b"not recording this run" in done.stderr
