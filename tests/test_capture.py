"""capture.Writer, the one writer of hook deliveries, transcripts and outside sessions:
redaction, the capture policies, dedupe, counters that converge, and schema v3."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import agentkeep
from agentkeep import capture, migrations
from agentkeep.capture import CaptureError, Writer

from conftest import git
from helpers.dump import store_dump
from secretgen import generate


def test_schema_versions_agree() -> None:
    assert capture.SCHEMA_VERSION == migrations.SCHEMA_VERSION


def test_text_is_redacted_and_recorded(store: agentkeep.Store) -> None:
    secret = generate()["github-classic"][0]
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", "sess-0001", cwd=str(store.root / "sub"))
        w.message(sid, seq=1, external_id="m1", role="user", kind="text", text=f"use {secret}")
        w.capture(
            source="claude",
            event="tool_post",
            dedupe_key="k",
            session_id=sid,
            payload={"tool_input": {"command": f"curl -H 'token: {secret}'"}},
        )
    dump = store_dump(store)
    assert "sess-0001" in dump and "use " in dump  # the dump holds the rows' text
    assert secret not in dump
    rules = store._rows("SELECT entity, field FROM redactions ORDER BY id")
    assert [(r["entity"], r["field"]) for r in rules] == [
        ("messages", "text"),
        ("captures", "payload"),
    ]
    session = store._row("SELECT cwd, source, capture FROM sessions")
    assert session is not None
    assert (session["cwd"], session["capture"]) == ("sub", "full")  # relative, never absolute


@pytest.mark.sqlite_only("reads SQLite's FTS5 table directly")
def test_metadata_policy_keeps_counts_not_text(store: agentkeep.Store) -> None:
    with store.transaction() as tx:
        w = store.capture_writer(tx, policy="metadata")
        sid = w.session("codex", "t-1", title="secret plans", model="gpt-x")
        w.message(
            sid,
            seq=1,
            external_id="a",
            role="assistant",
            kind="tool_use",
            text="rm -rf /",
            tool_name="shell",
            tokens=(10, 5, 2, 0),
        )
        w.capture(source="codex", event="prompt", dedupe_key="p", session_id=sid, payload={"p": 1})
        w.session_totals_from_messages(sid)
    row = store._row("SELECT title, model, input_tokens, tool_calls, capture FROM sessions")
    assert row is not None
    assert tuple(row) == (None, "gpt-x", 10, 1, "metadata")
    message = store._row("SELECT text, tool_name FROM messages")
    assert message is not None and tuple(message) == (None, "shell")
    capture_row = store._row("SELECT payload FROM captures")
    assert capture_row is not None and capture_row["payload"] is None
    assert store._rows("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'rm'") == []


def test_duplicates_are_no_ops(store: agentkeep.Store) -> None:
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", "s")
        assert w.session("claude", "s") == sid
        assert w.capture(source="claude", event="x", dedupe_key="k", session_id=sid) is not None
        assert w.capture(source="claude", event="x", dedupe_key="k", session_id=sid) is None
        first = w.message(sid, seq=1, external_id="e", role="user", kind="text", text="hi")
        assert first is not None
        assert w.message(sid, seq=2, external_id="e", role="user", kind="text", text="x") is None
    assert store._count("SELECT count(*) FROM captures") == 1
    assert store._row("SELECT text FROM messages")["text"] == "hi"  # type: ignore[index]


def test_filling_or_retitling_a_session_is_an_event_of_what_changed(
    store: agentkeep.Store,
) -> None:
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("codex", "t-1", started_at="2026-01-01T10:00:00.000Z")
        w.session(
            "codex",
            "t-1",
            title="Fix the parser",
            model="gpt-x",
            cwd=str(store.root / "src"),
            started_at="2026-01-01T09:00:00.000Z",
        )
        w.session("codex", "t-1", title="Another", model="gpt-y")  # already filled: no change
        assert w.set_title(sid, "Fix the parser", source="agent")  # the same text, now sourced
        assert not w.set_title(sid, "An old summary", source="summary")  # weaker: no change
    events = store._rows(
        "SELECT kind, data FROM events WHERE entity = 'session' AND entity_id = ? ORDER BY seq",
        (sid,),
    )
    assert [(e["kind"], json.loads(e["data"])) for e in events[1:]] == [
        (
            "session.updated",
            {
                "model": [None, "gpt-x"],
                "title": [None, "Fix the parser"],
                "cwd": [None, "src"],
                "started_at": ["2026-01-01T10:00:00.000Z", "2026-01-01T09:00:00.000Z"],
            },
        ),
        ("session.updated", {"title_source": [None, "agent"]}),
    ]


def test_hook_and_importer_counts_converge(store: agentkeep.Store) -> None:
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", "s")
        w.bump(sid, tool_calls=1)
        w.bump(sid, tool_calls=1, failures=1)
        for i in range(2):
            w.message(sid, seq=i, external_id=f"t{i}", role="assistant", kind="tool_use")
        w.session_totals_from_messages(sid)  # the importer sees the same two calls
        w.bump(sid, tool_calls=1)  # a third call reported live
    row = store._row("SELECT tool_calls, failures FROM sessions")
    assert row is not None and tuple(row) == (3, 1)


def test_usage_of_a_split_response_counts_once(store: agentkeep.Store) -> None:
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", "s")
        w.message(
            sid,
            seq=1,
            external_id="u:0",
            role="assistant",
            kind="thinking",
            message_key="msg|req",
            tokens=(100, 1, 50, 0),
        )
        w.message(
            sid, seq=2, external_id="v:0", role="assistant", kind="text", message_key="msg|req"
        )
        w.message_tokens(sid, "msg|req", (100, 40, 50, 0))
        w.session_totals_from_messages(sid)
    row = store._row("SELECT input_tokens, output_tokens, cache_read_tokens FROM sessions")
    assert row is not None and tuple(row) == (100, 40, 50)


def test_nan_surrogates_nul_and_oversize_text(store: agentkeep.Store) -> None:
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", "s")
        w.capture(
            source="claude",
            event="x",
            dedupe_key="n",
            payload={"v": float("nan"), "w": [float("inf")]},
        )
        w.message(
            sid, seq=1, external_id="b", role="tool", kind="tool_result", text="bad \udcff byte\x00"
        )
        w.message(
            sid, seq=2, external_id="big", role="tool", kind="tool_result", text="x" * (3 << 20)
        )
    assert store._row("SELECT payload FROM captures")["payload"] == '{"v": null, "w": [null]}'  # type: ignore[index]
    texts = [r["text"] for r in store._rows("SELECT text FROM messages ORDER BY seq")]
    assert texts[0] == "bad \ufffd byte\ufffd"
    assert len(texts[1].encode()) <= 1_048_576 and "bytes elided by agentkeep" in texts[1]


def test_identifier_too_large_is_cut_not_refused(store: agentkeep.Store) -> None:
    """Captured data is never dropped for its size: an identifier is cut (after redaction)."""
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        w.session("claude", "s", model="m" * (2 << 20))
    row = store._row("SELECT model FROM sessions")
    assert row is not None and row["model"] == "m" * 999 + "…"


def test_nested_too_deeply_is_a_capture_error(store: agentkeep.Store) -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(CaptureError), store.transaction() as tx:
        w = store.capture_writer(tx)
        w.capture(source="claude", event="x", dedupe_key="deep", payload={"v": deep})
    assert isinstance(CaptureError("x"), agentkeep.InvalidInput)
    assert store._count("SELECT count(*) FROM captures") == 0


def test_writer_refuses_unknown_policy(store: agentkeep.Store) -> None:
    with pytest.raises(CaptureError):
        Writer(store._conn, str(store.root), policy="everything")


def test_v2_store_gains_search_over_existing_notes_and_tasks(tmp_path: Path) -> None:
    """Migration 3 indexes the notes and tasks a store already has."""
    db = tmp_path / "v2.db"
    conn = sqlite3.connect(db, isolation_level=None)
    for migration in migrations.MIGRATIONS[:2]:
        conn.executescript(migration.sql_for("sqlite"))
    conn.execute(
        "INSERT INTO tasks (title, body, created_at, updated_at) VALUES"
        " ('Fix the uploader', 'retries', 't', 't')"
    )
    conn.execute("INSERT INTO notes (kind, body, created_at) VALUES ('handoff', 'flaky e2e', 't')")
    conn.executescript(migrations.MIGRATIONS[2].sql_for("sqlite"))
    assert conn.execute(
        "SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH 'upload*'"
    ).fetchall() == [(1,)]
    assert conn.execute("SELECT rowid FROM notes_fts WHERE notes_fts MATCH 'flaky'").fetchall() == [
        (1,)
    ]
    conn.close()


def test_bundles_carry_transcripts_and_captures(store: agentkeep.Store, tmp_path: Path) -> None:
    from agentkeep.ops.bundle_export import export_bundle
    from agentkeep.ops.bundle_import import import_bundle

    with store.transaction() as tx:
        w = store.capture_writer(tx)
        parent = w.session("claude", "p-1")
        child = w.session("claude", "p-1:agent-a", parent_id=parent)
        for sid in (parent, child):
            w.message(sid, seq=1, external_id="u:0", role="user", kind="text", text="hello")
        w.capture(source="claude", event="prompt", dedupe_key="d1", session_id=parent, payload={})
    bundle = tmp_path / "b.tar"
    export_bundle(store, bundle, session_ids=[parent, child])
    other_root = tmp_path / "other"
    other_root.mkdir()
    git(other_root, "init", "-q", "-b", "main")
    agentkeep.init_store(other_root)
    other = agentkeep.open(other_root)
    try:
        first = import_bundle(other, bundle)
        assert first.created["messages"] == 2 and first.created["captures"] == 1
        assert first.created["sessions"] == 2
        again = import_bundle(other, bundle)
        assert sum(again.created.values()) == 0
        linked = other._row("SELECT parent_id FROM sessions WHERE external_id = 'p-1:agent-a'")
        assert linked is not None and linked["parent_id"] is not None
    finally:
        other.close()


def test_gc_of_a_spilled_payload_keeps_the_capture(store: agentkeep.Store) -> None:
    from agentkeep.ops.retention import apply_gc

    spill = store.spill_payload("x" * 200_000, limit=1024)
    assert spill.artifact_id is not None
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        w.capture(
            source="claude",
            event="tool_post",
            dedupe_key="big",
            payload={"preview": spill.text},
            artifact_id=spill.artifact_id,
        )
        tx.execute("UPDATE artifacts SET created_at = '2000-01-01T00:00:00.000Z'")
    with agentkeep.open(store.root, config={"retention.payload.max_age_days": 1}) as aged:
        result = apply_gc(aged)
        assert [item.what for item in result.plan.items] == ["artifact", "object"]
        row = aged._row("SELECT artifact_id, payload FROM captures")
    assert row is not None and row["artifact_id"] is None and "preview" in row["payload"]
