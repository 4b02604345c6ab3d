"""Transcripts: `agentkeep transcript` (md/json/jsonl) and `agentkeep sessions show`, for
imported sessions (subagents, tool failures, compaction, unknown entries), metadata-only
sessions and sessions that only hooks saw."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import agentkeep
from agentkeep.services.transcripts import render_jsonl, render_markdown

from conftest import Cli

SESSION_KEYS = {
    "parent_id",
    "prompts",
    "tool_calls",
    "failures",
    "turns",
    "last_seen_at",
    "capture",
    "displayable",  # computed (docs/json-output.md)
    "idle",
    "resumable",
    "resume_reason",
    "id",
    "agent_id",
    "task_id",
    "source",
    "external_id",
    "status",
    "started_at",
    "ended_at",
    "exit_code",
    "model",
    "cwd",
    "title",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "command",
    "signal",
    "duration_ms",
    "pid",
    "host",
    "pinned",
}
PARENT = "7c1e2f9a-4b3d-4e6f-8a21-5d0c9b7e3f14"
AGENT = "a9f3c2d1"


def at(second: int) -> str:
    return f"2026-08-20T14:02:{second:02d}.000Z"


def claude_session(store: agentkeep.Store, *, policy: str | None = None) -> tuple[int, int]:
    """An imported Claude Code session: a prompt, a response of several blocks (text,
    thinking, a tool call) split over lines of one message id, a tool failure, a
    subagent spawned by an Agent call, a compaction summary and an unknown line type.
    Returns (parent session id, child session id); a second child has no known call."""
    with store.transaction() as tx:
        w = store.capture_writer(tx, policy=policy)
        parent = w.session("claude", PARENT, started_at=at(0), model="claude-sonnet-5")
        seq = iter(range(0, 10_000, 100))

        def add(role: str, kind: str, text: Any = None, **extra: Any) -> None:
            n = next(seq)
            w.message(parent, seq=n, external_id=f"e{n}", role=role, kind=kind, text=text, **extra)

        add("user", "text", "Add a rate limiter to the /login route", at=at(1))
        response = {"message_key": "msg_01", "model": "claude-sonnet-5", "at": at(2)}
        add("assistant", "thinking", "The route lives in src/routes; grep first.", **response)
        add("assistant", "text", "Let me find the route.", **response, tokens=(12, 96, 14336, 2048))
        add(
            "assistant",
            "tool_use",
            json.dumps({"command": "grep -rn login src/routes", "description": "Find it"}),
            tool_name="Bash",
            tool_use_id="toolu_01",
            **response,
        )
        add(
            "user",
            "tool_result",
            "src/routes/auth.ts: router.post('/login')\nsrc/routes/index.ts: import",
            tool_use_id="toolu_01",
            at=at(3),
        )
        failing = {"message_key": "msg_02", "model": "claude-sonnet-5", "at": at(4)}
        add(
            "assistant",
            "tool_use",
            json.dumps({"command": "pytest -q"}),
            tool_name="Bash",
            tool_use_id="toolu_02",
            **failing,
        )
        add(
            "user",
            "tool_result",
            "Exit code 1\nE   AssertionError: 429 expected",
            tool_use_id="toolu_02",
            is_error=True,
            at=at(5),
        )
        spawn = {"message_key": "msg_03", "model": "claude-sonnet-5", "at": at(6)}
        add(
            "assistant",
            "tool_use",
            json.dumps({"description": "Explore the auth code", "prompt": "Map auth"}),
            tool_name="Agent",
            tool_use_id="toolu_03",
            **spawn,
        )
        add(
            "user",
            "tool_result",
            "Auth lives in src/auth.",
            tool_use_id="toolu_03",
            at=at(8),
        )
        add("system", "summary", "Summary: limiter added\nTests were failing on 429", at=at(9))
        add("user", "raw", None, raw={"type": "queue-operation", "operation": "enqueue"}, at=at(9))
        add(
            "assistant",
            "text",
            "Done: \x1b[31mred\x1b[0m token bucket added.",
            message_key="msg_04",
            at=at(10),
        )
        child = w.session(
            "claude", f"{PARENT}:{AGENT}", started_at=at(7), parent_id=parent, title="Explore"
        )
        # The importer's mark of the spawning call (see importers/claude.py).
        w.message(
            child,
            seq=-1,
            external_id="spawned-by:toolu_03",
            role="system",
            kind="event",
            text="subagent started by Agent (toolu_03)",
            tool_name="Agent",
            tool_use_id="toolu_03",
        )
        w.message(child, seq=0, external_id="c0", role="user", kind="text", text="Map auth")
        w.message(child, seq=1, external_id="c1", role="assistant", kind="text", text="src/auth")
        # A subagent whose spawning call is not in the transcript.
        w.session("claude", f"{PARENT}:b0b0b0b0", started_at=at(59), parent_id=parent)
        w.session_totals_from_messages(parent)
        w.end_session(parent, at="2026-08-20T14:05:12.000Z")
    return parent, child


def hook_session(store: agentkeep.Store, *, policy: str | None = None) -> int:
    """A session only hooks saw: start, a prompt, a tool call and its result, a failing
    call, a stop carrying the last assistant message, a compaction, the end."""
    deliveries: list[dict[str, Any]] = [
        {
            "event": "session_start",
            "payload": {"hook_event_name": "SessionStart", "source": "startup"},
        },
        {"event": "prompt", "payload": {"prompt": "list the files then run the tests"}},
        {
            "event": "tool_pre",
            "tool_name": "Bash",
            "tool_use_id": "t1",
            "payload": {"tool_input": {"command": "ls -la"}},
        },
        {
            "event": "tool_post",
            "tool_name": "Bash",
            "tool_use_id": "t1",
            "payload": {"tool_input": {"command": "ls -la"}, "tool_response": "README.md\nsrc"},
        },
        {
            "event": "tool_fail",
            "tool_name": "Bash",
            "tool_use_id": "t2",
            "exit_code": 1,
            "payload": {"tool_input": {"command": "pytest -q"}, "error": "Exit code 1\nboom"},
        },
        {
            "event": "tool_pre",
            "tool_name": "Agent",
            "tool_use_id": "t3",
            "payload": {"tool_input": {"description": "Investigate boom"}},
        },
        {
            "event": "tool_post",
            "tool_name": "Agent",
            "tool_use_id": "t3",
            "payload": {"tool_response": {"status": "completed", "agentId": "hk12ab34"}},
        },
        {"event": "turn_end", "payload": {"last_assistant_message": "One test fails: boom."}},
        {"event": "compact", "payload": {"trigger": "auto", "compact_summary": "Tests: 1 failing"}},
        {"event": "session_end", "payload": {"reason": "prompt_input_exit"}},
    ]
    with store.transaction() as tx:
        w = store.capture_writer(tx, policy=policy)
        session = w.session("claude", "hook-only-1", started_at=at(0))
        w.session("claude", "hook-only-1:hk12ab34", started_at=at(7), parent_id=session)
        for i, delivery in enumerate(deliveries):
            w.capture(
                source="claude",
                dedupe_key=f"k{i}",
                session_id=session,
                at=at(i + 1),
                **delivery,
            )
    return session


def test_markdown_folds_tools_marks_failures_and_links_subagents(store: agentkeep.Store) -> None:
    parent, child = claude_session(store)
    found = store.transcript(parent)
    assert found.origin == "messages" and len(found.entries) == 12
    assert found.children == [
        {
            "id": child,
            "external_id": f"{PARENT}:{AGENT}",
            "title": "Explore",
            "status": "ended",  # idle since 2026 (sessions.idle_minutes), at its last line
            "started_at": at(7),
            "ended_at": store.get_session(child).last_seen_at,
            "tool_use_id": "toolu_03",
        },
        {
            "id": child + 1,
            "external_id": f"{PARENT}:b0b0b0b0",
            "title": None,
            "status": "ended",
            "started_at": at(59),
            "ended_at": store.get_session(child + 1).last_seen_at,
            "tool_use_id": None,
        },
    ]
    md = render_markdown(found)
    lines = md.splitlines()
    assert lines[0] == f"# Session {parent}: {PARENT}"
    assert "- 1 prompt · 3 tool calls · 1 failure · 0 turns" in lines
    assert "duration 3m 12s" in md
    # One heading per response: msg_01's thinking, text and tool call share one.
    assert [line for line in lines if line.startswith("## ")] == [
        "## User · 2026-08-20 14:02:01",
        "## Assistant · 2026-08-20 14:02:02 · claude-sonnet-5",
        "## Assistant · 2026-08-20 14:02:04 · claude-sonnet-5",
        "## Assistant · 2026-08-20 14:02:06 · claude-sonnet-5",
        "## Assistant · 2026-08-20 14:02:10",
        "## Subagents",
    ]
    assert "- ▸ Bash: grep -rn login src/routes" in lines
    assert "  ⎿ src/routes/auth.ts: router.post('/login') (+1 lines)" in lines
    assert "- ✗ Bash: pytest -q" in lines
    assert "  ⎿ ✗ Exit code 1 (+1 lines)" in lines
    assert "- ▸ Agent: Explore the auth code" in lines
    assert (
        f"  → subagent session {child} “Explore” (ended; `agentkeep transcript {child}`)" in lines
    )
    assert "<details><summary>thinking</summary>" in lines
    assert "### ⟲ Compaction summary" in lines and "> Tests were failing on 429" in lines
    assert "_· unrecognised entry (queue-operation), kept raw_" in lines
    assert "Done: red token bucket added." in lines  # terminal escapes removed
    assert "\x1b" not in md
    assert md.endswith(
        f"## Subagents\n\n- subagent session {child + 1} (ended;"
        f" `agentkeep transcript {child + 1}`)\n"
    )
    # Results are shown under their call, never as a turn of their own.
    assert "## User" not in md.split("## Assistant", 1)[1]
    terminal = render_markdown(found, terminal=True, header=False)
    assert "▹ thinking (42 characters, folded)" in terminal
    assert "<details>" not in terminal and not terminal.startswith("# Session")


def test_json_and_jsonl_export_every_entry(
    cli: Cli, store: agentkeep.Store, tmp_path: Path
) -> None:
    parent, child = claude_session(store)
    doc = cli("transcript", str(parent), "--format", "json").json()
    assert set(doc) == {"schema_version", "session", "origin", "children", "entries"}
    assert doc["session"]["id"] == parent and doc["session"]["tool_calls"] == 3
    assert doc["session"]["failures"] == 1 and doc["origin"] == "messages"
    entries = doc["entries"]
    assert [e["kind"] for e in entries] == [
        "text",
        "thinking",
        "text",
        "tool_use",
        "tool_result",
        "tool_use",
        "tool_result",
        "tool_use",
        "tool_result",
        "summary",
        "raw",
        "text",
    ]
    assert entries[2]["output_tokens"] == 96 and entries[2]["message_key"] == "msg_01"
    assert entries[6]["is_error"] is True
    assert entries[7]["child_session_id"] == child
    assert entries[10]["raw"] == {"type": "queue-operation", "operation": "enqueue"}
    assert all(e["origin"] == "message" and e["session_id"] == parent for e in entries)

    out = tmp_path / "t.jsonl"
    result = cli("transcript", str(parent), "--format", "jsonl", "-o", str(out))
    assert result.exit_code == 0 and result.stdout == "" and "12 entries" in result.stderr
    lines = out.read_text().splitlines()
    assert [json.loads(line) for line in lines] == entries
    assert list(render_jsonl(store.transcript(child)))[1].startswith('{"origin": "message"')
    md = cli("transcript", str(parent))
    assert md.exit_code == 0 and md.stdout.startswith(f"# Session {parent}:")
    child_md = cli("transcript", str(child)).stdout
    assert f"- subagent of session {parent}" in child_md
    assert cli("transcript", "999").exit_code == 4
    assert cli("transcript", str(parent), "--format", "html").exit_code == 2


def test_upstream_file_gone_does_not_matter(store: agentkeep.Store, tmp_path: Path) -> None:
    """The transcript reads only the store: no source file is consulted."""
    parent, _ = claude_session(store)
    source = tmp_path / "upstream.jsonl"
    source.write_text("{}\n")
    before = render_markdown(store.transcript(parent))
    source.unlink()
    assert render_markdown(store.transcript(parent)) == before


def test_metadata_only_session_shows_tool_names_and_counts(store: agentkeep.Store) -> None:
    parent, _ = claude_session(store, policy="metadata")
    found = store.transcript(parent)
    assert all(e.text is None for e in found.entries)
    md = render_markdown(found)
    assert "> captured as metadata only: no prompt, response or tool text was kept" in md
    assert "- ▸ Bash" in md.splitlines() and "- ✗ Bash" in md.splitlines()
    assert "  ⎿ (output not captured)" in md and "  ⎿ failed" in md
    assert "_(2 text blocks not captured)_" in md  # msg_01's thinking and text
    assert "rate limiter" not in md and "grep" not in md


def test_hook_only_session_renders_from_captures(cli: Cli, store: agentkeep.Store) -> None:
    session = hook_session(store)
    found = store.transcript(session)
    assert found.origin == "captures"
    assert [(e.role, e.kind) for e in found.entries] == [
        ("system", "event"),
        ("user", "text"),
        ("assistant", "tool_use"),
        ("tool", "tool_result"),
        ("assistant", "tool_use"),  # the failing call had no tool_pre: read from its payload
        ("tool", "tool_result"),
        ("assistant", "tool_use"),
        ("tool", "tool_result"),
        ("assistant", "text"),
        ("system", "summary"),
        ("system", "event"),
    ]
    result = cli("sessions", "show", str(session))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.index("source") < out.index("entries") < out.index("session started: startup")
    order = [
        "_· session started: startup_",
        "## User · 2026-08-20 14:02:02",
        "list the files then run the tests",
        "- ▸ Bash: ls -la",
        "  ⎿ README.md (+1 lines)",
        "- ✗ Bash: pytest -q",
        "  ⎿ ✗ Exit code 1 (+1 lines)",
        "- ▸ Agent: Investigate boom",
        f"  → subagent session {session + 1} (running; `agentkeep transcript {session + 1}`)",
        '  ⎿ {"status": "completed", "agentId": "hk12ab34"}',
        "One test fails: boom.",
        "### ⟲ Compaction summary",
        "_· session ended: prompt_input_exit_",
    ]
    positions = [out.index(line) for line in order]
    assert positions == sorted(positions)
    assert "read from hook captures" in out
    plain = cli("sessions", "show", str(session), "--no-transcript").stdout
    assert "ls -la" not in plain and "entries" in plain


def test_hook_only_metadata_session(store: agentkeep.Store) -> None:
    session = hook_session(store, policy="metadata")
    md = render_markdown(store.transcript(session), terminal=True)
    assert "- ▸ Bash" in md and "- ✗ Bash" in md and "ls -la" not in md
    assert "_· session started_" in md  # no payload: the event name only


def test_sessions_show_json_keeps_its_keys(cli: Cli, store: agentkeep.Store) -> None:
    parent, _ = claude_session(store)
    shown = cli("sessions", "show", str(parent), "--json").json()
    assert set(shown) == SESSION_KEYS | {"schema_version", "entries"}
    assert shown["entries"] == 12 and shown["id"] == parent
    hooked = hook_session(store)
    # Entries, not captures: the failing call without a tool_pre reads as two entries.
    assert cli("sessions", "show", str(hooked), "--json").json()["entries"] == 11
    assert len(store.transcript(hooked).entries) == 11
    empty = store.start_session(source="ci").item
    assert cli("sessions", "show", str(empty.id), "--json").json()["entries"] == 0
    assert "(no entries recorded for this session)" in cli("sessions", "show", str(empty.id)).stdout
    assert cli("sessions", "show", "999").exit_code == 4


def test_transcript_size_counts_entries_not_captures(store: agentkeep.Store) -> None:
    """Hook deliveries that read as two entries (a result whose call was not captured,
    with or without an id; a turn end carrying its input messages) and those that read
    as one: ``transcript_size`` (sessions show's ``entries``) is the transcript's length."""
    deliveries: list[dict[str, Any]] = [
        {"event": "tool_post", "tool_use_id": "a", "payload": {"tool_response": "1"}},
        {"event": "tool_post", "tool_use_id": "a", "payload": {"tool_response": "again"}},
        {"event": "tool_pre", "tool_use_id": "b", "payload": {"tool_input": {}}},
        {"event": "tool_fail", "tool_use_id": "b", "payload": {"error": "x"}},
        {"event": "tool_fail", "tool_use_id": "c", "payload": {"error": "y"}},
        {"event": "tool_post", "payload": {"tool_response": "no id"}},
        {"event": "tool_post", "tool_use_id": "", "payload": {"tool_response": "empty id"}},
        {"event": "tool_pre", "tool_use_id": "c", "payload": {"tool_input": {}}},
        {
            "event": "turn_end",
            "payload": {"input-messages": ["a", "b"], "last_assistant_message": "ok"},
        },
        {"event": "turn_end", "payload": {"input-messages": []}},
        {"event": "turn_end", "payload": {"input-messages": "not a list"}},
        {"event": "turn_end", "payload": ["not", "an", "object"]},
        {"event": "turn_end"},
        {"event": "compact", "payload": {"trigger": "manual"}},
        {"event": "notification", "payload": {"message": "waiting"}},
    ]
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        session = w.session("claude", "hook-counts", started_at=at(0))
        other = w.session("claude", "hook-other", started_at=at(0))
        for i, delivery in enumerate(deliveries):
            w.capture(
                source="claude", dedupe_key=f"n{i}", session_id=session, at=at(i + 1), **delivery
            )
        # Another session's call of the same id does not count as this session's.
        w.capture(
            source="claude",
            dedupe_key="o",
            session_id=other,
            at=at(0),
            event="tool_pre",
            tool_use_id="z",
            payload={"tool_input": {}},
        )
        w.capture(
            source="claude",
            dedupe_key="o2",
            session_id=session,
            at=at(30),
            event="tool_post",
            tool_use_id="z",
            payload={"tool_response": "z"},
        )
    entries = store.transcript(session).entries
    assert len(entries) == len(deliveries) + 1 + 6  # a, c, no id, empty id, z; the inputs
    assert store.transcript_size(session) == len(entries)
    assert store.transcript_chunk(session, after=0, limit=3)[1] == len(entries)
    assert store.transcript_size(other) == len(store.transcript(other).entries) == 1
