"""The OpenCode importer: its SQLite database (read-only, undisturbed while OpenCode writes
it) and the older JSON layout, matched to the project by session directory, incremental,
idempotent, redacted, under the capture policy."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.importers import opencode

from conftest import Cli, git, run_agentkeep
from opencodefixtures import (
    T0,
    Ids,
    Layout,
    OpenCodeDB,
    OpenCodeJson,
    assistant_info,
    conversation,
    subagent,
    user_info,
)
from secretgen import fragments, generate, leaks

# Files the importer opened (Python's audit events), recorded while a test asks for it.
_opened: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if (
        _opened is not None
        and event in ("open", "sqlite3.connect")
        and args
        and isinstance(args[0], str | bytes | os.PathLike)
    ):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def data_dir() -> Path:
    """OpenCode's data directory as the importer finds it ($XDG_DATA_HOME/opencode)."""
    return Path(os.environ["XDG_DATA_HOME"]) / "opencode"


@pytest.fixture
def db(data_dir: Path) -> Iterator[OpenCodeDB]:
    database = OpenCodeDB(data_dir / "opencode.db")
    yield database
    database.close()


def run_import(store: agentkeep.Store, **kwargs: Any) -> agentkeep.store.ImportResult:  # type: ignore[name-defined]
    return store.import_history("opencode", **kwargs)


def rows(store: agentkeep.Store, external_id: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in store._rows(
            "SELECT m.* FROM messages m JOIN sessions s ON s.id = m.session_id"
            " WHERE s.source = 'opencode' AND s.external_id = ? ORDER BY m.seq, m.id",
            (external_id,),
        )
    ]


def session(store: agentkeep.Store, external_id: str) -> dict[str, Any]:
    row = store._row(
        "SELECT * FROM sessions WHERE source = 'opencode' AND external_id = ?", (external_id,)
    )
    assert row is not None, f"session {external_id} was not imported"
    return dict(row)


def layout_of(kind: str, data_dir: Path, request: pytest.FixtureRequest) -> Layout:
    if kind == "db":
        database = OpenCodeDB(data_dir / "opencode.db")
        request.addfinalizer(database.close)
        return database
    return OpenCodeJson(data_dir)


@pytest.mark.parametrize("kind", ["db", "json"])
def test_every_part_type_becomes_rows_in_order(
    store: agentkeep.Store, project: Path, data_dir: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    written = conversation(layout_of(kind, data_dir, request), Ids(), directory=str(project))
    result = run_import(store)
    assert (result.files, result.imported, result.failed, result.sessions) == (1, 1, 0, 1)
    got = rows(store, written.session_id)
    assert result.messages == len(got) == 15
    p = written.parts
    by_id = {r["external_id"]: r for r in got}
    expected = [
        (p["prompt"], "user", "text"),
        (p["synthetic"], "system", "text"),
        (p["image"], "user", "event"),
        (p["step-start"], "assistant", "event"),
        (p["reasoning"], "assistant", "thinking"),
        (p["text"], "assistant", "text"),
        (p["bash"], "assistant", "tool_use"),
        (p["bash"] + ":result", "tool", "tool_result"),
        (p["edit"], "assistant", "tool_use"),
        (p["edit"] + ":result", "tool", "tool_result"),
        (p["patch"], "assistant", "event"),
        (p["step-finish"], "assistant", "event"),
        (p["unknown"], "assistant", "raw"),
        (p["compaction"], "system", "summary"),
        (p["summary"], "assistant", "summary"),
    ]
    assert [(r["external_id"], r["role"], r["kind"]) for r in got] == expected
    assert json.loads(by_id[p["bash"]]["text"]) == {"command": "pytest -q --token "}
    assert by_id[p["bash"] + ":result"]["is_error"] == 0
    error = by_id[p["edit"] + ":result"]
    assert (error["is_error"], error["text"], error["tool_name"]) == (
        1,
        "Error: File not found",
        "edit",
    )
    assert error["tool_use_id"] == "toolu_edit_1" and error["parent_external_id"] == p["edit"]
    assert json.loads(by_id[p["unknown"]]["raw"])["beam"] == [1, 2, 3]
    image = by_id[p["image"]]
    assert "iVBORw0KGgoiVBOR" not in image["raw"] and "characters not kept" in image["raw"]
    assert by_id[p["patch"]]["text"] == "patch: src/x.py"  # no absolute path stored
    assert str(project) not in "".join(str(r["raw"]) for r in got)
    # Tokens once per assistant message, on its first row; cost as a metric once.
    with_tokens = [r for r in got if r["input_tokens"]]
    assert [r["external_id"] for r in with_tokens] == [p["step-start"], p["summary"]]
    s = session(store, written.session_id)
    assert (s["input_tokens"], s["output_tokens"]) == (2400, 700)
    assert (s["cache_read_tokens"], s["cache_write_tokens"]) == (2000, 400)
    assert (s["tool_calls"], s["failures"], s["prompts"], s["turns"]) == (2, 1, 1, 2)
    assert (s["model"], s["title"], s["cwd"], s["capture"]) == (
        "claude-sonnet-4-5", "Fix the failing test", ".", "full",
    )  # fmt: skip
    assert s["started_at"] == "2026-01-01T00:00:00.000Z"
    costs = store._rows("SELECT value, labels FROM metrics WHERE name = 'opencode.cost'")
    assert sorted(r["value"] for r in costs) == [0.002, 0.0123]
    assert json.loads(costs[0]["labels"])["model"] == "claude-sonnet-4-5"
    # Re-import: nothing twice, nothing read.
    again = run_import(store)
    assert (again.messages, again.unchanged, again.imported) == (0, 1, 0)
    assert len(rows(store, written.session_id)) == 15
    assert store._row("SELECT count(*) AS n FROM metrics")["n"] == 2  # type: ignore[index]
    cursor = store._row("SELECT file_key FROM import_cursors WHERE source = 'opencode'")
    assert cursor is not None and cursor["file_key"] == f"{kind}:{written.session_id}"


def test_subagents_worktrees_and_other_projects(
    store: agentkeep.Store, project: Path, db: OpenCodeDB, tmp_path: Path
) -> None:
    git(project, "commit", "-q", "--allow-empty", "-m", "init")
    worktree = tmp_path / "wt-feature"
    git(project, "worktree", "add", "-q", "-b", "feature", str(worktree))
    ids = Ids()
    parent = conversation(db, ids, directory=str(project))
    child = subagent(db, ids, parent=parent.session_id, directory=str(project))
    in_worktree = conversation(db, ids, directory=str(worktree / "src"), t0=T0 + 50_000)
    other = conversation(db, ids, directory=str(tmp_path / "other-project"), project_id="prj_o")
    neighbour = conversation(db, ids, directory=f"{project}-sibling", t0=T0 + 60_000)
    result = run_import(store)
    assert (result.imported, result.foreign, result.failed) == (3, 2, 0)
    p, c = session(store, parent.session_id), session(store, child.session_id)
    assert c["parent_id"] == p["id"] and p["parent_id"] is None
    assert [r["text"] for r in rows(store, child.session_id)] == [
        "Find where the helper lives",
        "It lives in src/helpers.py",
    ]
    assert session(store, in_worktree.session_id)["cwd"] == "../wt-feature/src"
    for foreign in (other, neighbour):
        assert (
            store._row("SELECT 1 FROM sessions WHERE external_id = ?", (foreign.session_id,))
            is None
        )
    assert store._row("SELECT count(*) AS n FROM import_cursors")["n"] == 3  # type: ignore[index]
    assert run_import(store).messages == 0


def test_both_layouts_after_migration_are_one_history(
    store: agentkeep.Store, project: Path, data_dir: Path, db: OpenCodeDB
) -> None:
    # OpenCode 1.2 migrated the JSON files into the database (same ids) but skipped one
    # session (#13654): the union is imported, each part once.
    migrated = conversation(OpenCodeJson(data_dir), Ids(), directory=str(project))
    conversation(db, Ids(), directory=str(project))
    skipped = conversation(OpenCodeJson(data_dir), Ids(100), directory=str(project), t0=T0 + 1)
    result = run_import(store)
    assert (result.files, result.imported, result.sessions) == (3, 3, 2)
    assert result.messages == 30
    assert len(rows(store, migrated.session_id)) == len(rows(store, skipped.session_id)) == 15
    s = session(store, migrated.session_id)
    assert (s["input_tokens"], s["output_tokens"]) == (2400, 700)  # not counted twice


@pytest.mark.sqlite_only("reads SQLite's FTS5 table directly")
def test_a_changed_session_is_picked_up_and_streamed_parts_updated(
    store: agentkeep.Store, project: Path, db: OpenCodeDB
) -> None:
    ids = Ids()
    written = conversation(db, ids, directory=str(project))
    sid, mid = written.session_id, written.messages[1]
    # A text still streaming and a tool still running when the first import runs.
    t = T0 + 20_000
    m5 = ids("msg")
    db.message(m5, sid, {**assistant_info(t), "time": {"created": t}}, created=t)
    streaming, running = ids("prt"), ids("prt")
    db.part(streaming, m5, sid, {"type": "text", "text": "Half a"}, created=t)
    tool: dict[str, Any] = {
        "type": "tool",
        "callID": "toolu_grep",
        "tool": "grep",
        "state": {"status": "running", "input": {"pattern": "helper"}, "time": {"start": t}},
    }
    db.part(running, m5, sid, tool, created=t)
    first = run_import(store)
    assert first.messages == 15 + 2
    assert run_import(store).unchanged == 1
    # OpenCode finishes the text and the tool, adds a part, and reports larger usage.
    later = t + 30_000
    db.part(
        streaming,
        m5,
        sid,
        {"type": "text", "text": "Half a sentence, now whole"},
        created=t,
        updated=later,
    )
    tool["state"] = {**tool["state"], "status": "completed", "output": "src/helpers.py:1"}
    tool["state"]["time"] = {"start": t, "end": later}
    db.part(running, m5, sid, tool, created=t, updated=later)
    extra = ids("prt")
    db.part(extra, m5, sid, {"type": "text", "text": "Done."}, created=later)
    info = assistant_info(t)
    info["tokens"]["input"] = 5000
    db.message(m5, sid, info, created=t, updated=later)
    second = run_import(store)
    assert (second.imported, second.messages) == (1, 2)  # the tool result and "Done."
    got = {r["external_id"]: r for r in rows(store, sid)}
    assert got[streaming]["text"] == "Half a sentence, now whole"
    assert got[running + ":result"]["text"] == "src/helpers.py:1"
    assert got[extra]["text"] == "Done."
    hits = store._rows("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'sentence'")
    assert [h["rowid"] for h in hits] == [got[streaming]["id"]]
    assert store._rows("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'half'") == hits
    # m5's usage counted once, at its latest value; m2's untouched.
    s = session(store, sid)
    assert s["input_tokens"] == 1200 + 1200 + 5000
    assert sum(r["input_tokens"] for r in got.values()) == 7400
    assert got[written.parts["step-start"]]["message_key"] == mid
    assert run_import(store).messages == 0
    assert len(rows(store, sid)) == 15 + 4


def test_a_changed_json_session_is_read_again(
    store: agentkeep.Store, project: Path, data_dir: Path
) -> None:
    layout = OpenCodeJson(data_dir)
    ids = Ids()
    written = conversation(layout, ids, directory=str(project))
    assert run_import(store).messages == 15
    assert run_import(store).unchanged == 1
    late = ids("prt")
    layout.part(
        late, written.messages[-1], written.session_id, {"type": "text", "text": "PS"}, created=T0
    )
    again = run_import(store)
    assert (again.imported, again.messages) == (1, 1)
    assert rows(store, written.session_id)[-1]["external_id"] == late
    assert session(store, written.session_id)["input_tokens"] == 2400


def test_an_archived_session_ends_and_titles_fill_in_later(
    store: agentkeep.Store, project: Path, db: OpenCodeDB
) -> None:
    written = conversation(db, Ids(), directory=str(project), title="New session - 2026-01-01")
    sid = written.session_id
    # The archive is the end marker here, not the idle rule (its lines are from 2026-01-01).
    store = agentkeep.open(project, config={"sessions.idle_minutes": 0})
    run_import(store)
    assert (session(store, sid)["title"], session(store, sid)["status"]) == (None, "running")
    db.session(sid, project_id="prj_root", directory=str(project), title="Fix the helper",
               created=T0, updated=T0 + 99_000, archived=T0 + 99_000)  # fmt: skip
    assert run_import(store).imported == 1
    s = session(store, sid)
    assert (s["title"], s["status"], s["ended_at"]) == (
        "Fix the helper", "ended", "2026-01-01T00:01:39.000Z",
    )  # fmt: skip
    store.close()


def _snapshot(path: Path) -> dict[str, tuple[bytes, int]]:
    out = {}
    for suffix in ("", "-wal"):
        f = Path(f"{path}{suffix}")
        out[f.name] = (f.read_bytes(), f.stat().st_mtime_ns)
    return out


def test_database_is_not_disturbed_while_opencode_writes(
    store: agentkeep.Store, project: Path, db: OpenCodeDB
) -> None:
    ids = Ids()
    written = conversation(db, ids, directory=str(project))
    sid = written.session_id
    # OpenCode is mid-write: committed frames still in the WAL, and an open transaction.
    db.conn.execute("BEGIN IMMEDIATE")
    pending = ids("prt")
    db.part(
        pending,
        written.messages[0],
        sid,
        {"type": "text", "text": "uncommitted"},
        created=T0 + 99_000,
    )
    before = _snapshot(db.path)
    assert len(before["opencode.db-wal"][0]) > 0
    result = run_import(store)
    assert (result.imported, result.failed, result.messages) == (1, 0, 15)
    assert _snapshot(db.path) == before  # same bytes, same mtimes
    assert pending not in {r["external_id"] for r in rows(store, sid)}
    db.conn.execute("COMMIT")
    assert run_import(store).messages == 1
    assert pending in {r["external_id"] for r in rows(store, sid)}


def test_a_wal_left_by_an_opencode_that_exited_is_not_checkpointed(
    store: agentkeep.Store, project: Path, data_dir: Path
) -> None:
    # OpenCode was killed with frames still in its WAL; the importer is now the only
    # connection. A read-write connection would checkpoint and delete the WAL on close.
    script = (
        "import os, sys; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from opencodefixtures import *;"
        "db = OpenCodeDB(Path(sys.argv[2]));"
        "conversation(db, Ids(), directory=sys.argv[3]); os._exit(0)"
    )
    path = data_dir / "opencode.db"
    here = str(Path(__file__).parent)
    subprocess.run([sys.executable, "-c", script, here, str(path), str(project)], check=True)
    before = _snapshot(path)
    assert len(before["opencode.db-wal"][0]) > 0
    assert run_import(store).messages == 15
    assert _snapshot(path) == before


def test_an_idle_database_is_not_even_opened_per_session(
    store: agentkeep.Store, project: Path, db: OpenCodeDB
) -> None:
    global _opened
    ids = Ids()
    for n in range(3):
        conversation(db, ids, directory=str(project), t0=T0 + n * 100_000)
    assert run_import(store).imported == 3
    _opened = []
    try:
        result = run_import(store)
    finally:
        connects, _opened = [p for p in _opened if p.startswith("file:")], None
    assert (result.unchanged, result.messages) == (3, 0)
    assert len(connects) == 1  # discovery lists the sessions; no session is read
    # OpenCode writes another project's session: ours are fingerprinted, not read.
    conversation(db, ids, directory="/elsewhere/other", project_id="prj_o")
    _opened = []
    try:
        result = run_import(store)
    finally:
        connects, _opened = [p for p in _opened if p.startswith("file:")], None
    assert (result.unchanged, result.foreign, result.messages) == (3, 1, 0)
    assert len(connects) == 1


def test_a_locked_database_is_reported_not_a_crash(
    store: agentkeep.Store, project: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(opencode, "BUSY_TIMEOUT_S", 0.05)
    database = OpenCodeDB(data_dir / "opencode.db", wal=False)  # rollback journal: readers wait
    try:
        conversation(database, Ids(), directory=str(project))
        database.conn.execute("BEGIN EXCLUSIVE")
        result = run_import(store)
        assert (result.failed, result.imported) == (1, 0)
        assert "opencode.db" in result.errors[0] and "locked" in result.errors[0]
        # The CLI (a real process, real busy timeout): exit 1, the reason, no traceback.
        done = run_agentkeep("import", "opencode", "--json", cwd=project)
        assert done.returncode == 1
        assert json.loads(done.stdout)[0]["failed"] == 1
        assert b"Traceback" not in done.stdout + done.stderr
        database.conn.execute("ROLLBACK")
        assert run_import(store).messages == 15
    finally:
        database.close()


def test_unreadable_files_are_errors_for_that_file_only(
    store: agentkeep.Store, project: Path, data_dir: Path, db: OpenCodeDB
) -> None:
    conversation(db, Ids(), directory=str(project))
    (data_dir / "opencode-broken.db").write_bytes(b"this is not sqlite" * 100)
    (data_dir / "opencode-empty.db").write_bytes(b"")
    json_layout = OpenCodeJson(data_dir)
    conversation(json_layout, Ids(500), directory=str(project))
    (json_layout.storage / "session" / "prj_root" / "ses_bad.json").write_text("{not json")
    # A part whose data column is not JSON is kept as a raw row.
    db.conn.execute(
        "INSERT INTO part (id, message_id, session_id, time_created, time_updated, data)"
        " SELECT 'prt_zzzz', id, session_id, time_created, time_created, '{broken' FROM message"
        " LIMIT 1"
    )
    result = run_import(store)
    assert result.imported == 2 and result.messages == 31
    assert sorted(e.split(":")[0] for e in result.errors) == [
        "opencode-broken.db",
        "opencode-empty.db",
        "session/prj_root/ses_bad.json",
    ]
    raw = store._row("SELECT kind, raw FROM messages WHERE external_id = 'prt_zzzz'")
    assert raw is not None and (raw["kind"], raw["raw"]) == ("raw", None)


def test_channel_databases_are_read_and_deduplicated(
    store: agentkeep.Store, project: Path, data_dir: Path, db: OpenCodeDB
) -> None:
    conversation(db, Ids(), directory=str(project))
    dev = OpenCodeDB(data_dir / "opencode-dev.db")
    try:
        conversation(dev, Ids(), directory=str(project))  # the same session, copied
        only_dev = conversation(dev, Ids(300), directory=str(project), t0=T0 + 7)
        result = run_import(store)
    finally:
        dev.close()
    assert (result.files, result.imported, result.messages) == (2, 2, 30)
    assert len(rows(store, only_dev.session_id)) == 15


def test_since_skips_sessions_updated_before_it(
    store: agentkeep.Store, project: Path, db: OpenCodeDB
) -> None:
    ids = Ids()
    old = conversation(db, ids, directory=str(project))
    new = conversation(db, ids, directory=str(project), t0=T0 + 86_400_000 * 30)
    result = run_import(store, since="2026-01-15T00:00:00.000Z")
    assert (result.imported, result.unchanged) == (1, 1)
    assert rows(store, old.session_id) == [] and len(rows(store, new.session_id)) == 15


def test_secrets_in_prompts_and_tool_calls_never_reach_disk(
    project: Path, data_dir: Path, db: OpenCodeDB
) -> None:
    secrets = generate()
    json_layout = OpenCodeJson(data_dir)
    needles = []
    with agentkeep.open(project) as store:  # held open: the WAL is scanned too
        for n, (text, secret) in enumerate(secrets.values()):
            layout: Layout = db if n % 2 else json_layout
            conversation(layout, Ids(n * 100), directory=str(project), t0=T0 + n, secret=text)
            needles += fragments(secret)
        result = run_import(store)
        assert result.imported == len(secrets) and result.failed == 0
        assert leaks(project / ".agentkeep", needles) == []
        assert store._row("SELECT count(*) AS n FROM redactions")["n"] >= len(secrets)  # type: ignore[index]
    assert leaks(project / ".agentkeep", needles) == []


def test_metadata_policy_keeps_counts_and_names_not_text(
    project: Path, db: OpenCodeDB, cli: Cli
) -> None:
    assert cli("config", "set", "capture.policy", "metadata").exit_code == 0
    written = conversation(db, Ids(), directory=str(project))
    with agentkeep.open(project) as store:
        assert run_import(store).messages == 15
        got = rows(store, written.session_id)
        assert all(r["text"] is None and r["raw"] is None for r in got)
        assert {r["tool_name"] for r in got if r["kind"] == "tool_use"} == {"bash", "edit"}
        s = session(store, written.session_id)
        assert (s["capture"], s["title"], s["input_tokens"], s["failures"]) == (
            "metadata", None, 2400, 1,
        )  # fmt: skip


def test_policy_off_imports_nothing(project: Path, db: OpenCodeDB, cli: Cli) -> None:
    assert cli("config", "set", "capture.policy", "off").exit_code == 0
    conversation(db, Ids(), directory=str(project))
    with agentkeep.open(project) as store:
        result = run_import(store)
        assert (result.files, result.messages) == (0, 0)
        assert store._row("SELECT count(*) AS n FROM sessions")["n"] == 0  # type: ignore[index]


def test_only_the_documented_files_are_opened(
    store: agentkeep.Store, project: Path, data_dir: Path, db: OpenCodeDB
) -> None:
    global _opened
    conversation(db, Ids(), directory=str(project))
    conversation(OpenCodeJson(data_dir), Ids(100), directory=str(project), t0=T0 + 1)
    text, secret = generate()["anthropic"]
    (data_dir / "auth.json").write_text(json.dumps({"anthropic": {"type": "api", "key": text}}))
    for extra in ("log/2026-01-01.log", "tool-output/out.txt", "storage/todo/x.json"):
        (data_dir / extra).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / extra).write_text(text)
    _opened = []
    try:
        assert run_import(store).imported == 2
    finally:
        opened, _opened = [p for p in _opened if str(data_dir) in p], None
    allowed = ("storage/session/", "storage/message/", "storage/part/", "opencode.db?mode=ro")
    assert opened and all(any(a in p for a in allowed) for p in opened), opened
    assert secret not in str(store._rows("SELECT text, raw FROM messages"))


def test_cli_reports_the_import(project: Path, db: OpenCodeDB, cli: Cli) -> None:
    conversation(db, Ids(), directory=str(project))
    done = cli("import", "opencode", "--json")
    assert done.exit_code == 0, done.stderr
    (result,) = done.json()
    assert set(result) == {
        "source", "files", "imported", "unchanged", "foreign", "failed", "sessions",
        "messages", "bytes", "seconds", "errors",
    }  # fmt: skip
    assert (result["source"], result["sessions"], result["messages"]) == ("opencode", 1, 15)
    nothing = cli("import", "opencode", str(project / "no-opencode-here"), "--json")
    assert nothing.exit_code == 2 and "Traceback" not in nothing.stderr  # click: no such path
    empty = project / "empty"
    empty.mkdir()
    assert cli("import", "opencode", str(empty), "--json").json()[0]["files"] == 0


def test_explicit_paths_database_file_and_storage_directory(
    store: agentkeep.Store, project: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    database = OpenCodeDB(backup / "copy.db")
    try:
        conversation(database, Ids(), directory=str(project))
        assert run_import(store, path=backup / "copy.db").messages == 15
    finally:
        database.close()
    conversation(OpenCodeJson(backup), Ids(900), directory=str(project), t0=T0 + 5)
    assert run_import(store, path=backup / "storage").messages == 15
    assert run_import(store, path=backup).messages == 0  # both again: all known


def test_sqlite_is_really_opened_read_only(project: Path, db: OpenCodeDB) -> None:
    # The connection the importer uses refuses writes (belt and braces: mode=ro + query_only).
    conversation(db, Ids(), directory=str(project))

    def write(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM part")

    with pytest.raises(opencode._Unreadable, match=r"readonly|read-only|query_only"):
        opencode._read(db.path, write)
    assert db.conn.execute("SELECT count(*) FROM part").fetchone()[0] == 13
    assert user_info(T0)["role"] == "user"
