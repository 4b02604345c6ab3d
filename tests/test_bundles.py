"""Backup, restore, export and import (issue 3) on real stores, real
files and a real writer process. No mocks."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.errors import Conflict, Corrupt, InvalidInput
from agentkeep.ops.backup import backup
from agentkeep.ops.bundle_export import export_bundle
from agentkeep.ops.bundle_import import Bundle, import_bundle
from agentkeep.ops.restore import read_backup_manifest, restore

from conftest import Cli, git, run_agentkeep

WRITER = Path(__file__).resolve().parent / "helpers" / "writer.py"


def new_project(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    agentkeep.init_store(root)
    return root


def populate(store: agentkeep.Store, tag: str = "a") -> dict[str, int]:
    """A session with an agent, a task, a sealed and a live stream, artifacts, notes."""
    agent = store.register_agent(f"agent-{tag}", kind="claude", pid=os.getpid()).item
    parent = store.add_task(f"epic {tag}").item
    task = store.add_task(f"task {tag}", parent_id=parent.id, labels=["x", tag]).item
    other = store.add_task(f"dep {tag}").item
    store.add_dependency(task.id, other.id)
    session = store.start_session(
        agent_id=agent.id, task_id=task.id, title=f"run {tag}", command=["echo", tag],
        pid=os.getpid(),
    ).item.id  # fmt: skip
    out = store.open_stream(session, "stdout")
    for i in range(200):
        out.write(f"{tag} line {i} ".encode() * 20 + b"\n")
    out.close()
    store.seal_stream(out.stream.id)
    err = store.open_stream(session, "stderr")
    err.write(f"{tag} warning\n".encode())
    err.commit_progress()
    err.write(b"not yet recorded\n")  # beyond the recorded length
    artifact = store.add_artifact(
        (f"{tag} diff\n" * 500).encode(), kind="diff", name="d.patch", session_id=session
    ).item
    store.add_artifact(b"\x00\x01binary" + tag.encode(), kind="file", task_id=task.id)
    store.add_note("handoff", f"handoff {tag}", session_id=session, task_id=task.id)
    store.record_metric("tokens", 12.5, session_id=session, agent_id=agent.id)
    err.abandon()
    return {"session": session, "task": task.id, "artifact": artifact.id, "agent": agent.id}


def bundle_digests(path: Path) -> dict[str, str]:
    """sha256 of every member except the manifest (which carries a timestamp)."""
    with tarfile.open(path) as tar:
        out = {}
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            out[member.name] = hashlib.sha256(handle.read()).hexdigest()
    out.pop("manifest.json")
    return out


def records(path: Path, table: str) -> list[dict[str, Any]]:
    with tarfile.open(path) as tar:
        handle = tar.extractfile(f"records/{table}.jsonl")
        assert handle is not None
        return [json.loads(line) for line in handle.read().splitlines()]


def full_ok(store: agentkeep.Store) -> None:
    assert store.check().ok, store.check().problems
    for artifact in store.list_artifacts():
        assert store.verify_artifact(artifact.id).ok


# -- export / import ----------------------------------------------------------------------


def test_round_trip_gives_the_same_records_and_files(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    ids = populate(store)
    first = tmp_path / "first.tar"
    result = export_bundle(store, first, all=True)
    assert result.counts["sessions"] == 1 and result.counts["streams"] == 2
    assert result.counts["objects"] == 2 and result.counts["events"] > 5

    target = new_project(tmp_path, "target")
    with agentkeep.open(target) as other:
        imported = import_bundle(other, first)
        assert imported.outcome == "created" and imported.conflicts == []
        second = tmp_path / "second.tar"
        export_bundle(other, second, all=True)
        full_ok(other)
        # The streams read back the same bytes (sealed whole, live up to its length).
        original = store.session_streams(ids["session"])
        copies = other.session_streams(ids["session"])
        for a, b in zip(original, copies, strict=True):
            assert store.read_stream(a.id, 0, a.length) == other.read_stream(b.id)
        again = import_bundle(other, first)
    assert bundle_digests(first) == bundle_digests(second)
    assert sum(again.created.values()) == 0 and again.outcome == "unchanged"
    assert again.conflicts == [] and again.files_written == 0
    sessions = records(first, "sessions")
    assert "pid" not in sessions[0] and "host" not in sessions[0]
    assert "pid" not in records(first, "agents")[0]
    stderr = next(s for s in records(first, "streams") if s["name"] == "stderr")
    assert stderr["status"] == "live" and stderr["length"] == len(b"a warning\n")


def test_export_is_deterministic(store: agentkeep.Store, tmp_path: Path) -> None:
    ids = populate(store)
    one, two = tmp_path / "1.tar", tmp_path / "2.tar"
    export_bundle(store, one, session_ids=[ids["session"]])
    export_bundle(store, two, session_ids=[ids["session"]])
    assert bundle_digests(one) == bundle_digests(two)


def traced_peak(call: Any) -> int:
    """The most memory Python held at once while ``call()`` ran (tracemalloc: bytes
    allocated, a count, not a time)."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_export_all_holds_one_batch_of_rows(
    store: agentkeep.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`export --all` streams: its memory is one batch of rows (EXPORT_BATCH, the designed
    seam), not the store. 48 notes of 192 KiB are 9 MiB of rows; with batches of 2 notes
    the export never holds more than a few of them. The same export with one batch for
    every row peaks above the bound, so the measure does see rows held at once."""
    from agentkeep.ops import bundle_export

    body = ("the quick brown fox jumps over the lazy dog " * 4500)[:196_608]
    for i in range(48):
        store.add_note("fact", f"{i} {body}")
    bound = 4 << 20

    monkeypatch.setattr(bundle_export, "EXPORT_BATCH", 2)
    small = tmp_path / "small.tar"
    peak = traced_peak(lambda: export_bundle(store, small, all=True))
    assert peak < bound, f"export --all held {peak} bytes at once"

    monkeypatch.setattr(bundle_export, "EXPORT_BATCH", 1000)
    whole = tmp_path / "whole.tar"
    assert traced_peak(lambda: export_bundle(store, whole, all=True)) > bound
    assert bundle_digests(small) == bundle_digests(whole)  # batches change no byte
    assert len(records(small, "notes")) == 48


def test_export_all_carries_what_it_did_before_streaming(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    """The streamed --all selection: every row of every table, and the events about rows
    it carries (not about a row gc deleted, nor the store's own project)."""
    ids = populate(store, "a")
    populate(store, "b")
    out = tmp_path / "all.tar"
    result = export_bundle(store, out, all=True)
    assert result.counts["sessions"] == 2 and result.counts["tasks"] == 6
    events = records(out, "events")
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert not any(e["entity"] == "project" for e in events)
    assert any(e["entity"] == "session" and e["entity_id"] == ids["session"] for e in events)
    target = new_project(tmp_path, "target")
    with agentkeep.open(target) as other:
        assert import_bundle(other, out).outcome == "created"
        assert import_bundle(other, out).outcome == "unchanged"


def test_session_export_carries_what_it_refers_to(store: agentkeep.Store, tmp_path: Path) -> None:
    ids = populate(store, "a")
    populate(store, "b")  # must not leak into the bundle
    out = tmp_path / "s.tar"
    export_bundle(store, out, session_ids=[ids["session"]])
    assert [r["id"] for r in records(out, "sessions")] == [ids["session"]]
    assert [r["name"] for r in records(out, "agents")] == ["agent-a"]
    # its task and (by reference) the task's parent
    assert {r["title"] for r in records(out, "tasks")} == {"task a", "epic a"}
    events = records(out, "events")
    assert events and all(e["entity"] in {"session", "stream", "artifact", "note", "task",
                                          "agent", "metric"} for e in events)  # fmt: skip
    target = new_project(tmp_path, "target")
    with agentkeep.open(target) as other:
        import_bundle(other, out)
        full_ok(other)


def test_id_conflicts_are_remapped_and_reported(tmp_path: Path) -> None:
    a_root, b_root = new_project(tmp_path, "a"), new_project(tmp_path, "b")
    with agentkeep.open(a_root) as a, agentkeep.open(b_root) as b:
        ids_a = populate(a, "a")
        populate(b, "b")  # b's session 1, task 1... hold different content
        out = tmp_path / "a.tar"
        export_bundle(a, out, session_ids=[ids_a["session"]])
        result = import_bundle(b, out)
        moved = {(c["table"], c["old_id"]): c["new_id"] for c in result.conflicts}
        assert ("sessions", ids_a["session"]) in moved
        assert ("tasks", ids_a["task"]) in moved
        new_session = moved["sessions", ids_a["session"]]
        session = b.get_session(new_session)
        assert session.title == "run a"
        assert session.task_id == moved["tasks", ids_a["task"]]
        assert b.get_task(session.task_id).title == "task a"
        assert b.get_agent(session.agent_id).name == "agent-a"
        arts = b.list_artifacts(session_id=new_session)
        assert [x.name for x in arts] == ["d.patch"]
        assert b.read_artifact(arts[0].id) == b"a diff\n" * 500
        notes = b.list_notes(session_id=new_session)
        assert [n.body for n in notes] == ["handoff a"]
        streams = b.session_streams(new_session)
        assert {s.path.split("/")[1] for s in streams} == {str(new_session)}
        assert b.stream_lines(streams[0].id, last=1)[0].text.startswith("a line 199")
        assert b.get_session(ids_a["session"]).title == "run b"  # b's own is untouched
        full_ok(b)
        # A second import finds what the first remapped: nothing new.
        again = import_bundle(b, out)
        assert sum(again.created.values()) == 0, again.created
        imported = b.events(kind="bundle.imported")
        assert len(imported) == 1


def test_import_refuses_tampered_truncated_and_foreign_files(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    ids = populate(store)
    good = tmp_path / "good.tar"
    export_bundle(store, good, session_ids=[ids["session"]])
    before = store.status().counts

    tampered = tmp_path / "tampered.tar"
    with tarfile.open(good) as src, tarfile.open(tampered, "w") as dst:
        for member in src.getmembers():
            handle = src.extractfile(member)
            assert handle is not None
            data = handle.read()
            if member.name == "records/notes.jsonl":
                data = data.replace(b"handoff a", b"handoff X")
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(Corrupt, match="does not match its hash"):
        import_bundle(store, tampered)

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises((Corrupt, InvalidInput)):
        import_bundle(store, truncated)

    foreign = tmp_path / "foreign.tar"
    foreign.write_bytes(b"hello, not a tar file" * 100)
    with pytest.raises(InvalidInput, match="not an agentkeep bundle"):
        import_bundle(store, foreign)
    assert store.status().counts == before


def test_import_refuses_newer_format(store: agentkeep.Store, tmp_path: Path) -> None:
    populate(store)
    good = tmp_path / "good.tar"
    export_bundle(store, good, all=True)
    newer = tmp_path / "newer.tar"
    with tarfile.open(good) as src, tarfile.open(newer, "w") as dst:
        for member in src.getmembers():
            handle = src.extractfile(member)
            assert handle is not None
            data = handle.read()
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest["schema_version"] = 999
                data = json.dumps(manifest).encode()
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(agentkeep.SchemaTooNew):
        import_bundle(store, newer)


def test_cli_export_import_and_errors(cli: Cli, project: Path, tmp_path: Path) -> None:
    with agentkeep.open(project) as store:
        ids = populate(store)
    out = tmp_path / "cli.tar"
    done = cli("export", "--session", str(ids["session"]), "-o", str(out), "--json")
    assert done.exit_code == 0, done.stderr
    assert done.json()["counts"]["sessions"] == 1
    again = cli("export", "--all", "-o", str(out))
    assert again.exit_code == 3 and "already exists" in again.stderr
    assert cli("export", "-o", str(tmp_path / "x.tar")).exit_code == 3
    imported = cli("import-bundle", str(out), "--json")
    assert imported.exit_code == 0, imported.stderr
    assert imported.json()["outcome"] == "unchanged"
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\x00" * 10)
    bad = cli("import-bundle", str(garbage))
    assert bad.exit_code in (3, 8) and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error:")


def test_a_bundle_of_captured_data_with_a_nul_imports(project: Path, tmp_path: Path) -> None:
    """Captured data keeps a NUL inside JSON as its escape (REPLACE); import-bundle writes
    through the library (REFUSE), which keeps that escape too, so the bundle imports and
    the rows come out equal (review finding 2)."""
    payload = {"session_id": "s1", "hook_event_name": "UserPromptSubmit", "cwd": str(project)}
    delivery = json.dumps({**payload, "prompt": "a\u0000b"}).encode()
    assert b"\\u0000" in delivery  # the escape, as an agent sends it
    hooked = run_agentkeep("hook", "--source", "claude", cwd=project, input=delivery)
    assert hooked.returncode == 0, hooked.stderr
    out = tmp_path / "nul.tar"
    exported = run_agentkeep("export", "--all", "-o", str(out), cwd=project)
    assert exported.returncode == 0, exported.stderr
    target = new_project(tmp_path, "target")
    imported = run_agentkeep("import-bundle", str(out), "--json", cwd=target)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["created"]["captures"] == 1

    def captured(root: Path) -> list[tuple[Any, ...]]:
        with agentkeep.open(root, read_only=True) as store:
            rows = store._rows(
                "SELECT c.source, c.event, c.payload, c.dedupe_key, s.external_id"
                " FROM captures c JOIN sessions s ON s.id = c.session_id ORDER BY c.id"
            )
        return [(*row[:2], json.loads(row[2]), *row[3:]) for row in rows]

    rows = captured(project)
    assert [row[2]["prompt"] for row in rows] == ["a\x00b"]
    assert captured(target) == rows
    again = run_agentkeep("import-bundle", str(out), "--json", cwd=target)
    assert again.returncode == 0 and json.loads(again.stdout)["outcome"] == "unchanged"


# -- backup / restore ---------------------------------------------------------------------


def start_writer(project: Path, log: Path, kind: str) -> subprocess.Popen[bytes]:
    """writer.py prints one JSON line per acknowledged write (after COMMIT returned)."""
    with log.open("wb") as out, log.with_suffix(".err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, str(WRITER), "stream", str(project), "--kind", kind],
            stdout=out,
            stderr=err,
        )


def acks(log: Path) -> dict[int, int]:
    lines = log.read_text(encoding="utf-8").split("\n")[:-1]
    return {line["n"]: line["seq"] for line in map(json.loads, lines) if line}


@pytest.mark.slow
def test_backup_under_load_holds_every_earlier_ack(
    store: agentkeep.Store, project: Path, tmp_path: Path
) -> None:
    """Backup under load for the whole store: database, streams and objects, while a writer
    commits."""
    populate(store)
    log, kind = tmp_path / "writer.out", "bundle.backup"
    child = start_writer(project, log, kind)
    try:
        deadline = time.monotonic() + 60
        while len(acks(log)) < 200:
            assert child.poll() is None, log.with_suffix(".err").read_text()
            assert time.monotonic() < deadline, "the writer never got going"
            time.sleep(0.01)
        before = acks(log)
        result = backup(store, tmp_path / "snap")
        assert child.poll() is None  # the writer kept writing throughout
        wait_for_more = time.monotonic() + 60
        while len(acks(log)) <= len(before) + 50:  # ...and goes on after the backup
            assert time.monotonic() < wait_for_more
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert result.missing == []
    manifest = read_backup_manifest(Path(result.path))  # re-verifies every hash
    db = Path(result.path) / manifest["database"]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"]
        got = dict(
            conn.execute(
                "SELECT json_extract(data, '$.n'), seq FROM events WHERE kind = ?", (kind,)
            ).fetchall()
        )
        lengths = dict(conn.execute("SELECT path, length FROM streams").fetchall())
    finally:
        conn.close()
    missing = [n for n, seq in before.items() if got.get(n) != seq]
    assert missing == [], f"backup lacks acknowledged writes {missing[:10]}"
    # A live stream is copied exactly up to the length the snapshot records.
    for path, length in lengths.items():
        if path.endswith(".log"):
            assert (Path(result.path) / path).stat().st_size == length
    assert any(name.startswith("objects/") for name in manifest["files"])


def test_restore_refuses_without_force_and_keeps_the_old_store(
    store: agentkeep.Store, project: Path, tmp_path: Path, store_backend: str
) -> None:
    ids = populate(store)
    snap = backup(store, tmp_path / "snap")
    store.add_task("written after the backup")
    with pytest.raises(Conflict, match="already holds a store"):
        restore(snap.path, project)
    result = restore(snap.path, project, force=True)
    assert result.check_ok, result.problems
    assert result.replaced is not None
    if store_backend == "postgres":  # the old store's schema was renamed (test_pg_restore)
        from helpers.pg import with_schema

        old_store = agentkeep.open(
            project, url=with_schema(store.config["store.url"], result.replaced)
        )
    else:
        assert Path(result.replaced).is_dir()
        old_store = agentkeep.open(result.replaced)
    with old_store as old:
        assert any(t.title == "written after the backup" for t in old.list_tasks(limit=0))
    with agentkeep.open(project) as restored:
        full_ok(restored)
        titles = {t.title for t in restored.list_tasks(limit=0)}
        assert "task a" in titles and "written after the backup" not in titles
        streams = restored.session_streams(ids["session"])
        assert restored.stream_lines(streams[0].id, last=1)[0].text.startswith("a line 199")
        if store_backend == "sqlite":
            assert restored._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        restored.add_task("the restored store takes writes")


def test_restore_into_an_empty_project_and_refuses_a_damaged_backup(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    populate(store)
    snap = Path(backup(store, tmp_path / "snap").path)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    result = restore(snap, fresh)
    assert result.check_ok and result.replaced is None
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    obj = next(p for p in (snap / "objects").rglob("*") if p.is_file())
    obj.write_bytes(obj.read_bytes() + b"!")
    with pytest.raises(Corrupt, match="does not match its hash"):
        restore(snap, damaged)
    assert not (damaged / ".agentkeep").exists()


def test_cli_backup_and_restore(cli: Cli, project: Path, tmp_path: Path) -> None:
    with agentkeep.open(project) as store:
        populate(store)
    done = cli("backup", str(tmp_path / "b"), "--json")
    assert done.exit_code == 0, done.stderr
    path = done.json()["path"]
    refused = cli("restore", path)
    assert refused.exit_code == 5 and "--force" in refused.stderr
    forced = cli("restore", path, "--force", "--json")
    assert forced.exit_code == 0, forced.stderr
    assert forced.json()["check_ok"] is True and forced.json()["replaced"]
    assert cli("backup", str(tmp_path / "b")).exit_code == 3  # not empty


def test_bundle_class_lists_only_safe_members(store: agentkeep.Store, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(InvalidInput, match="unexpected member"):
        Bundle(evil)
