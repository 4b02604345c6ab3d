"""The Claude Code importer: transcripts written by tests/agentfixtures.py in the documented
format (docs/design.md "Agent tools' formats") become sessions and messages — every line
type, subagents, compaction, split responses counted once, other projects left alone,
incremental and idempotent re-imports, the capture policy, secrets, and the CLI (including
--watch)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.importers.claude import encode_project_dir

import agentfixtures as fixtures
from agentfixtures import ClaudeSession, counts, encode_dir, rows
from conftest import Cli, git
from secretgen import fragments, generate, leaks

# -- helpers ------------------------------------------------------------------------------


def session_row(store: agentkeep.Store, external_id: str) -> dict[str, Any]:
    return fixtures.session_row(store, "claude", external_id)


def messages(store: agentkeep.Store, external_id: str) -> list[dict[str, Any]]:
    return fixtures.session_messages(store, "claude", external_id)


def title_events(store: agentkeep.Store, external_id: str) -> list[dict[str, Any]]:
    """The title changes of a session's ``session.updated`` events, oldest first."""
    found = rows(
        store,
        "SELECT e.data FROM events e JOIN sessions s ON s.id = e.entity_id"
        " WHERE e.entity = 'session' AND e.kind = 'session.updated' AND s.source = 'claude'"
        " AND s.external_id = ? ORDER BY e.seq",
        (external_id,),
    )
    changes = [json.loads(row["data"]) for row in found]
    return [
        {k: v for k, v in change.items() if k in ("title", "title_source")}
        for change in changes
        if "title" in change or "title_source" in change
    ]


# -- what becomes what --------------------------------------------------------------------


def test_a_conversation_becomes_rows_with_tokens_counted_once(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    prompt = s.user("Add a rate limiter to the /login route")
    s.assistant(
        {"type": "thinking", "thinking": "The route lives in src/routes.", "signature": "c2ln"},
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_grep", "name": "Bash", "input": {"command": "rg login"}},
        usage={
            "input_tokens": 12,
            "cache_creation_input_tokens": 2048,
            "cache_read_input_tokens": 14336,
            "output_tokens": 96,
        },
    )
    s.user(
        [{"type": "tool_result", "tool_use_id": "toolu_grep", "content": "model's copy"}],
        toolUseResult={"stdout": "src/auth.ts:14", "stderr": "warning: x", "interrupted": False},
    )
    s.bash("false", "", "boom", is_error=True)
    s.image_prompt("what is in this screenshot?", b"\x89PNG" + os.urandom(3000))
    s.text("Added a token bucket.")
    s.ai_title("Rate limiting for the login route")

    result = store.import_history("claude")
    assert (result.files, result.imported, result.failed, result.sessions) == (1, 1, 0, 1)

    session = session_row(store, s.session_id)
    assert session["title"] == "Rate limiting for the login route"
    assert session["model"] == "claude-sonnet-4-5-20250929"
    assert session["cwd"] == "."
    assert session["parent_id"] is None
    got = [(m["role"], m["kind"], m["tool_name"], m["text"]) for m in messages(store, s.session_id)]
    assert got == [
        ("user", "text", None, "Add a rate limiter to the /login route"),
        ("assistant", "thinking", None, "The route lives in src/routes."),
        ("assistant", "text", None, "Let me look."),
        ("assistant", "tool_use", "Bash", '{"command":"rg login"}'),
        # what the model saw, not the tool's own stdout/stderr re-rendered
        ("tool", "tool_result", "Bash", "model's copy"),
        ("assistant", "tool_use", "Bash", '{"command":"false","description":"Run a command"}'),
        ("tool", "tool_result", "Bash", "\nboom"),
        ("user", "text", None, "what is in this screenshot?"),
        ("user", "text", None, "[image image/png, 2 KB]"),
        ("assistant", "text", None, "Added a token bucket."),
    ]
    listed = messages(store, s.session_id)
    assert listed[0]["external_id"] == f"{prompt['uuid']}:0"
    assert listed[1]["parent_external_id"] == prompt["uuid"]
    assert [m["is_error"] for m in listed if m["kind"] == "tool_result"] == [0, 1]
    assert listed[3]["tool_use_id"] == listed[4]["tool_use_id"] == "toolu_grep"
    # The split response's usage sits once, on its first block, raised to the final count
    # (the fixture's earlier lines carry a partial output_tokens).
    response = [m for m in listed if m["message_key"] == listed[1]["message_key"]]
    assert len(response) == 3
    assert [(m["input_tokens"], m["output_tokens"]) for m in response] == [(12, 96), (0, 0), (0, 0)]
    assert (response[0]["cache_read_tokens"], response[0]["cache_write_tokens"]) == (14336, 2048)
    session = session_row(store, s.session_id)
    assert (session["input_tokens"], session["output_tokens"]) == (12 * 3, 96 * 3)
    assert (session["tool_calls"], session["failures"]) == (2, 1)
    assert session["started_at"] == listed[0]["at"]
    assert session["last_seen_at"] == listed[-1]["at"]
    # The screenshot's bytes are nowhere (only its placeholder).
    assert not rows(
        store, "SELECT id FROM messages WHERE text LIKE '%iVBOR%' OR raw LIKE '%iVBOR%'"
    )


def test_every_line_type(store: agentkeep.Store, project: Path) -> None:
    s = ClaudeSession(project)
    s.summary("An older summary line")  # older versions: a title (no leaf yet here)
    s.user("first prompt")
    s.progress()
    s.queue_operation("typed while busy")
    s.file_history_snapshot()
    s.system("local_command", "<command-name>/model</command-name>")
    s.compact("Summary: we added a limiter.", pre_tokens=123_456)
    s.user("<command-message>skill body</command-message>", isMeta=True)
    s.attachment("hook said hello")
    s.unknown("pr-link", prNumber=7, prUrl="https://example.com/pull/7")
    s.ai_title("The tool's own title replaces a summary line's")
    s.text("done")
    store.import_history("claude")
    got = [(m["role"], m["kind"], m["text"]) for m in messages(store, s.session_id)]
    assert got == [
        ("user", "text", "first prompt"),
        ("system", "event", "local_command: <command-name>/model</command-name>"),
        ("system", "event", "compacted (auto, 123k tokens)"),
        ("system", "summary", "Summary: we added a limiter."),
        ("system", "text", "<command-message>skill body</command-message>"),
        ("system", "raw", None),
        ("system", "raw", None),
        ("assistant", "text", "done"),
    ]
    raws = [json.loads(m["raw"]) for m in messages(store, s.session_id) if m["kind"] == "raw"]
    assert [r["type"] for r in raws] == ["attachment", "pr-link"]
    assert raws[1]["prNumber"] == 7
    session = session_row(store, s.session_id)
    assert session["title"] == "The tool's own title replaces a summary line's"
    assert session["title_source"] == "agent"
    assert session["prompts"] == 1  # meta lines and summaries are not prompts
    # progress, queue-operation and file-history-snapshot lines leave no trace
    assert not rows(store, "SELECT id FROM messages WHERE text LIKE '%typed while busy%'")


def test_subagents_become_child_sessions_linked_to_the_spawning_call(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.user("investigate the flaky test")
    sub = s.subagent("a1b2c3")
    sub.user("look at tests/test_flaky.py")
    sub.bash("pytest -q tests/test_flaky.py", "1 failed")
    sub.text("It races on the clock.")
    tool_use_id = s.task("look at tests/test_flaky.py", "a1b2c3", "It races on the clock.")
    s.text("Fixed.")

    # The subagent file alone first (as a watcher may see it): the parent row is created.
    store.import_history("claude", path=sub.path)
    parent = session_row(store, s.session_id)
    child = session_row(store, f"{s.session_id}:a1b2c3")
    assert child["parent_id"] == parent["id"]
    result = store.import_history("claude")
    assert (result.imported, result.unchanged) == (1, 1)  # same cursor key either way
    assert session_row(store, s.session_id)["id"] == parent["id"]

    spawned = messages(store, f"{s.session_id}:a1b2c3")
    assert (spawned[0]["kind"], spawned[0]["tool_use_id"], spawned[0]["tool_name"]) == (
        "event",
        tool_use_id,
        "Task",
    )
    assert [m["text"] for m in spawned[1:]] == [
        "look at tests/test_flaky.py",
        '{"command":"pytest -q tests/test_flaky.py","description":"Run a command"}',
        "1 failed",
        "It races on the clock.",
    ]
    child = session_row(store, f"{s.session_id}:a1b2c3")
    assert (child["tool_calls"], child["output_tokens"]) == (1, 96 * 2)
    # The parent's own transcript does not contain the child's lines.
    assert "1 failed" not in [m["text"] for m in messages(store, s.session_id)]


def test_sidechain_lines_of_older_versions_go_to_the_child_session(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.user("main prompt")
    # Older versions: a top-level agent-<id>.jsonl whose lines carry isSidechain + agentId.
    old = ClaudeSession(project, session_id=s.session_id, agent_id="f00d")
    old.path = s.path.parent / "agent-f00d.jsonl"
    old.user("sidechain prompt")
    store.import_history("claude")
    assert [m["text"] for m in messages(store, f"{s.session_id}:f00d")] == ["sidechain prompt"]
    assert [m["text"] for m in messages(store, s.session_id)] == ["main prompt"]


# -- sessions that tell the truth (issue 9 §2) ---------------------------------------------


def _investigate(sub: ClaudeSession) -> None:
    sub.bash("pytest -q tests/test_flaky.py", "1 failed")
    sub.text("It races on the clock.")


def test_inline_subagent_progress_lines_fill_the_child_session(
    store: agentkeep.Store, project: Path
) -> None:
    """2.x without a subagents/ file: the subagent's messages are progress lines in the
    parent's file. They make the child's transcript; the child starts at its first line
    and ends when its result comes back; stats count one session and one subagent."""
    s = ClaudeSession(project)
    s.user("investigate the flaky test")
    tool_use_id = s.task_inline("look at tests/test_flaky.py", "a7e1", _investigate)
    s.text("Fixed.")
    store.import_history("claude")

    child_id = f"{s.session_id}:a7e1"
    child = session_row(store, child_id)
    got = messages(store, child_id)
    assert (got[0]["kind"], got[0]["tool_use_id"], got[0]["tool_name"]) == (
        "event",
        tool_use_id,
        "Task",
    )
    assert [m["text"] for m in got[1:]] == [
        "look at tests/test_flaky.py",
        '{"command":"pytest -q tests/test_flaky.py","description":"Run a command"}',
        "1 failed",
        "It races on the clock.",
    ]
    first = json.loads(s.path.read_text().splitlines()[2])  # the first progress line
    assert first["type"] == "progress"
    assert child["started_at"] == first["data"]["message"]["timestamp"] == got[1]["at"]
    assert child["status"] == "ended"
    assert (child["tool_calls"], child["output_tokens"]) == (1, 96 * 2)
    parent = session_row(store, s.session_id)
    assert child["parent_id"] == parent["id"]
    assert parent["prompts"] == 1
    assert "1 failed" not in [m["text"] for m in messages(store, s.session_id)]
    (day,) = store.stats(by="day")
    assert (day.sessions, day.subagents, day.prompts, day.tool_calls) == (1, 1, 1, 2)


def test_inline_and_file_copies_of_a_subagent_are_stored_once(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.user("investigate")
    s.task_inline("look", "b0b0", _investigate, also_file=True)
    store.import_history("claude")
    child_id = f"{s.session_id}:b0b0"
    assert [m["kind"] for m in messages(store, child_id)] == [
        "event",
        "text",
        "tool_use",
        "tool_result",
        "text",
    ]
    assert session_row(store, child_id)["output_tokens"] == 96 * 2
    before = counts(store)
    (s.path.parent / s.session_id / "subagents" / "agent-b0b0.jsonl").touch()
    store.import_history("claude")
    assert counts(store) == before


def test_a_subagent_whose_lines_are_gone_starts_at_its_call_not_its_result(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.user("investigate")
    tool_use_id = s.task("look", "dead1", "found it")  # no file, no progress lines
    store.import_history("claude")
    (call,) = rows(
        store, "SELECT at FROM messages WHERE tool_use_id = ? AND kind = 'tool_use'", (tool_use_id,)
    )
    child = session_row(store, f"{s.session_id}:dead1")
    assert child["started_at"] == call["at"]
    assert child["status"] == "ended"


def test_sidechains_of_1_0_are_child_sessions_not_user_prompts(
    store: agentkeep.Store, project: Path
) -> None:
    """1.0.x wrote subagent turns as sidechain lines in the main file, without an agent
    id: the user typed 2 prompts, the two subagents got 2 more."""
    s = ClaudeSession(project, version="1.0.98")
    s.user("find the slow query")

    def explore(sub: ClaudeSession) -> None:
        sub.bash("rg SELECT", "db.py:3")
        sub.text("db.py:3 is slow")

    s.task_sidechain("search the code for SQL", explore)
    s.text("It is db.py:3.")
    s.user("now fix it")
    s.task_sidechain("rewrite db.py:3", lambda sub: sub.text("rewritten"))
    s.text("Fixed.")
    store.import_history("claude")

    parent = session_row(store, s.session_id)
    assert parent["prompts"] == 2
    user_texts = [m["text"] for m in messages(store, s.session_id) if m["role"] == "user"]
    assert user_texts == ["find the slow query", "now fix it"]
    children = rows(
        store, "SELECT * FROM sessions WHERE parent_id = ? ORDER BY started_at", (parent["id"],)
    )
    assert len(children) == 2
    texts = [
        [m["text"] for m in messages(store, c["external_id"]) if m["kind"] == "text"]
        for c in children
    ]
    assert texts == [
        ["search the code for SQL", "db.py:3 is slow"],
        ["rewrite db.py:3", "rewritten"],
    ]
    (day,) = store.stats(by="day")
    assert (day.sessions, day.subagents, day.prompts) == (1, 2, 2)


@pytest.mark.parametrize("summary_first", [False, True])
def test_a_summary_titles_the_session_that_holds_its_leaf(
    store: agentkeep.Store, project: Path, summary_first: bool
) -> None:
    """A summary line in a later (resumed) file names the last message of an earlier
    file's conversation: the title goes there, whichever file is imported first."""
    a = ClaudeSession(project, version="1.0.98")
    a.user("add a cache")
    a.text("Added.")
    b = ClaudeSession(project, version="1.0.98", start=a.clock.now)
    b.summary("Caching the user lookups", leaf=a.last_uuid)
    b.user("and expire it")
    b.text("Done.")
    if summary_first:
        store.import_history("claude", path=b.path)
        assert session_row(store, b.session_id)["title"] is None
    store.import_history("claude")
    assert session_row(store, a.session_id)["title"] == "Caching the user lookups"
    assert session_row(store, a.session_id)["title_source"] == "summary"
    assert session_row(store, b.session_id)["title"] is None
    assert not rows(store, "SELECT id FROM messages WHERE kind = 'summary'")
    assert not rows(store, "SELECT * FROM pending_titles")
    # held or not, the title's landing is one event
    assert title_events(store, a.session_id) == [
        {"title": [None, "Caching the user lookups"], "title_source": [None, "summary"]}
    ]
    assert title_events(store, b.session_id) == []


def test_a_later_title_replaces_an_older_one_but_not_the_users(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.user("hello")
    s.ai_title("Greeting")
    s.text("hi")
    s.ai_title("Greeting and small talk")
    store.import_history("claude")
    assert session_row(store, s.session_id)["title"] == "Greeting and small talk"
    s.custom_title("my session")
    s.ai_title("A newer generated title")
    s.summary("An old-style summary")
    store.import_history("claude")
    row = session_row(store, s.session_id)
    assert (row["title"], row["title_source"]) == ("my session", "user")


def test_every_title_change_is_an_event(store: agentkeep.Store, project: Path) -> None:
    s = ClaudeSession(project)
    s.user("hi")
    s.text("ok")
    s.ai_title("Agent title")
    store.import_history("claude")
    s.custom_title("User title")
    store.import_history("claude")
    s.ai_title("A weaker title")  # kept out by the user's: no change, no event
    s.custom_title("User title")  # the same again: no change, no event
    store.import_history("claude")
    assert session_row(store, s.session_id)["title"] == "User title"
    assert title_events(store, s.session_id) == [
        {"title": [None, "Agent title"], "title_source": [None, "agent"]},
        {"title": ["Agent title", "User title"], "title_source": ["agent", "user"]},
    ]


def test_tokens_after_a_model_switch_go_to_the_new_model(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.user("plan it")
    s.text("A plan.", model="claude-sonnet-4-5-20250929")
    s.system("local_command", "<command-name>/model</command-name>")
    s.user("now build it")
    s.text(
        "Built.",
        model="claude-opus-4-1-20250805",
        usage={
            "input_tokens": 5,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 700,
        },
    )
    store.import_history("claude")
    by_model = {r.key: r for r in store.stats(by="model")}
    assert by_model["claude-opus-4-1-20250805"].output_tokens == 700
    assert by_model["claude-sonnet-4-5-20250929"].output_tokens == 96
    assert sum(r.sessions for r in by_model.values()) == 1


def test_the_working_directory_does_not_depend_on_where_a_run_started(
    store: agentkeep.Store, project: Path
) -> None:
    (project / "api").mkdir()
    (project / "web").mkdir()
    s = ClaudeSession(project)
    s.ai_title("Two packages")  # a first line without a cwd
    s.user("start in api", cwd=str(project / "api"))
    store.import_history("claude")
    s.user("moved to web", cwd=str(project / "web"))
    store.import_history("claude")
    assert session_row(store, s.session_id)["cwd"] == "api"

    # A run that starts after the file's first cwd line, before the file's session has a
    # row (a hook's progress line makes none): the cwd a run over the whole file gives.
    late = ClaudeSession(project)
    late.cwd = str(project / "api")
    late.progress()
    store.import_history("claude")
    assert rows(store, "SELECT id FROM sessions WHERE external_id = ?", (late.session_id,)) == []
    late.cwd = str(project / "web")
    late.user("first prompt, in web")
    store.import_history("claude")
    assert session_row(store, late.session_id)["cwd"] == "api"

    # Start in the root, cd sub, spawn a subagent there: subagent files are imported first,
    # and the parent still works where its own file began.
    (project / "sub").mkdir()
    parent = ClaudeSession(project)
    parent.user("start")
    parent.text("ok")
    parent.cwd = str(project / "sub")
    parent.user("cd sub")
    parent.text("ok")
    child = parent.subagent("a1")
    child.user("explore")
    child.text("found")
    parent.task("explore", "a1")
    store.import_history("claude")
    assert session_row(store, parent.session_id)["cwd"] == "."
    assert session_row(store, f"{parent.session_id}:a1")["cwd"] == "sub"


def test_system_lines_keep_their_data_and_turns_are_counted(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    for prompt in ("one", "two"):
        s.user(prompt)
        s.text("ok")
        s.write(
            s.envelope(
                "system",
                subtype="stop_hook_summary",
                hookCount=2,
                hookInfos=[{"command": "agentkeep hook"}],
                hookErrors=[],
                preventedContinuation=False,
                level="suggestion",
            )
        )
        s.write(s.envelope("system", subtype="turn_duration", durationMs=12_345, isMeta=False))
    store.import_history("claude")
    events = [m for m in messages(store, s.session_id) if m["kind"] == "event"]
    assert [m["text"] for m in events] == [
        "stop_hook_summary",
        "turn took 12.3 s",
        "stop_hook_summary",
        "turn took 12.3 s",
    ]
    assert json.loads(events[0]["raw"])["hookCount"] == 2
    assert json.loads(events[1]["raw"]) == {"subtype": "turn_duration", "durationMs": 12_345}
    assert session_row(store, s.session_id)["turns"] == 2


def test_a_streamed_response_keeps_its_final_count_across_runs(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.user("go")
    lines = s.assistant(
        {"type": "thinking", "thinking": "hm", "signature": "c2ln"},
        {"type": "text", "text": "done"},
    )
    body = s.path.read_bytes()
    last = (json.dumps(lines[-1], separators=(",", ":")) + "\n").encode()
    s.path.write_bytes(body[: -len(last)])  # the response's last line not written yet
    store.import_history("claude")
    assert session_row(store, s.session_id)["output_tokens"] == 48
    s.write_bytes(last)
    store.import_history("claude")
    assert session_row(store, s.session_id)["output_tokens"] == 96  # the final count


def test_no_claim_to_count_as_another_tool_does() -> None:
    root = Path(__file__).resolve().parents[1]
    for path in [*root.joinpath("src").rglob("*.py"), *root.joinpath("docs").rglob("*.md")]:
        assert "as ccusage does" not in path.read_text(), path


# -- incremental and idempotent -----------------------------------------------------------


def test_reimport_adds_nothing(store: agentkeep.Store, project: Path) -> None:
    s = ClaudeSession(project)
    s.user("one")
    s.bash("ls", "a\nb")
    s.subagent("abc").user("sub")
    s.task("sub", "abc")
    first = store.import_history("claude")
    assert first.messages > 0
    before = counts(store)
    again = store.import_history("claude")
    assert (again.messages, again.unchanged, again.imported) == (0, 2, 0)
    # The same files through an explicit path use the same cursors.
    explicit = store.import_history("claude", path=s.path.parent)
    assert (explicit.messages, explicit.unchanged) == (0, 2)
    # A touched file (mtime only) is fingerprinted and continues at its offset.
    os.utime(s.path)
    assert store.import_history("claude").messages == 0
    # Forgetting every cursor re-reads everything: the external ids make it a no-op.
    with store.transaction() as tx:
        tx.conn.execute("DELETE FROM import_cursors")
    assert store.import_history("claude").messages == 0
    assert counts(store) == before


def test_new_lines_and_a_truncated_last_line(store: agentkeep.Store, project: Path) -> None:
    s = ClaudeSession(project)
    s.user("one")
    store.import_history("claude")
    s.user("two")
    line = json.dumps(s.envelope("user", message={"role": "user", "content": "three"})).encode()
    s.write_bytes(line[:40])  # the agent is still writing this line
    result = store.import_history("claude")
    assert result.messages == 1
    assert [m["text"] for m in messages(store, s.session_id)] == ["one", "two"]
    s.write_bytes(line[40:] + b"\n")
    assert store.import_history("claude").messages == 1
    assert [m["text"] for m in messages(store, s.session_id)] == ["one", "two", "three"]


def test_a_rewritten_file_is_read_again_without_duplicates(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.user("one")
    s.text("answer")
    store.import_history("claude")
    before = counts(store)
    # Rewritten with a line put in front (older versions prepend summary lines): every
    # offset moves, the head hash changes, the file is read from the start.
    body = s.path.read_bytes()
    s.path.write_bytes(b"")
    s.system("informational", "put first")
    s.write_bytes(body)
    result = store.import_history("claude")
    assert result.messages == 1
    after = counts(store)
    assert after["messages"] == before["messages"] + 1
    # The old rows keep their seq; the new row's seq is its offset in the new file.
    assert sorted(m["text"] for m in messages(store, s.session_id)) == [
        "answer",
        "informational: put first",
        "one",
    ]


def test_sessions_stay_complete_after_the_file_is_deleted(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.user("keep me")
    s.bash("make", "built")
    store.import_history("claude")
    before = counts(store)
    s.path.unlink()
    result = store.import_history("claude")
    assert (result.files, result.failed) == (0, 0)
    assert counts(store) == before
    assert messages(store, s.session_id)[0]["text"] == "keep me"


# -- which files belong to the project ----------------------------------------------------


def test_other_projects_files_are_not_imported(store: agentkeep.Store, project: Path) -> None:
    mine = ClaudeSession(project)
    mine.user("mine")
    elsewhere = ClaudeSession(project.parent / "unrelated")
    elsewhere.user("not mine")
    # Same directory name, another cwd: the encoding is lossy ('/' and '_' both become '-').
    collide = project.parent.parent / f"{project.parent.name}_{project.name}"
    assert encode_dir(collide) == encode_dir(project)
    twin = ClaudeSession(collide)
    twin.user("twin")
    # A name starting like ours + '-' is looked at (a subdirectory?) and decided by cwd.
    sibling = ClaudeSession(Path(f"{project}-other"))
    sibling.user("sibling")

    result = store.import_history("claude")
    assert (result.files, result.imported, result.foreign) == (3, 1, 2)
    assert [r["external_id"] for r in rows(store, "SELECT external_id FROM sessions")] == [
        mine.session_id
    ]
    keys = {r["file_key"]: r["status"] for r in rows(store, "SELECT * FROM import_cursors")}
    assert sorted(keys.values()) == ["foreign", "foreign", "imported"]
    # Three cursors: the unrelated project's file was never opened. Keys hold no path.
    assert not any(str(project.parent) in key or "/" not in key for key in keys)
    # A foreign file is skipped by a stat next time, and stays foreign when it grows.
    assert store.import_history("claude").foreign == 2
    twin.user("more")
    again = store.import_history("claude")
    assert (again.messages, again.foreign) == (0, 2)
    assert counts(store)["sessions"] == 1


def test_worktree_and_subdirectory_sessions_are_imported(
    store: agentkeep.Store, project: Path
) -> None:
    (project / "README").write_text("x")
    git(project, "add", "README")
    git(project, "commit", "-q", "-m", "init")
    worktree = project.parent / "proj-feature"
    git(project, "worktree", "add", "-q", "-b", "feature", str(worktree))
    in_worktree = ClaudeSession(worktree)
    in_worktree.user("work in the worktree")
    (project / "src").mkdir()
    in_subdir = ClaudeSession(project / "src")
    in_subdir.user("work in src")
    result = store.import_history("claude")
    assert (result.imported, result.foreign) == (2, 0)
    assert session_row(store, in_worktree.session_id)["cwd"] == "../proj-feature"
    assert session_row(store, in_subdir.session_id)["cwd"] == "src"


def test_a_file_without_any_cwd_yet_is_left_for_later(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.queue_operation("first thing typed")
    s.ai_title("Early title")
    assert store.import_history("claude").imported == 0
    assert counts(store)["import_cursors"] == 0
    s.user("now with a cwd")
    assert store.import_history("claude").imported == 1
    assert session_row(store, s.session_id)["title"] == "Early title"


def test_encoding_matches_the_documented_examples() -> None:
    assert encode_project_dir("/home/dev/src/acme.api") == "-home-dev-src-acme-api"
    assert (
        encode_project_dir("/Users/a/repo/.claude/worktrees/swift_otter")
        == "-Users-a-repo--claude-worktrees-swift-otter"
    )
    assert encode_project_dir("C:\\Users\\Example\\code") == "C--Users-Example-code"


# -- hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize("gate", ["as is", "always open"])
def test_bad_lines_never_stop_an_import(
    store: agentkeep.Store, project: Path, monkeypatch: pytest.MonkeyPatch, gate: str
) -> None:
    if gate == "always open":
        # The redactor's keyword gate passes a line now and then (the envelope's random
        # uuids); the line nested 900 deep must then still be walked and kept raw.
        from agentkeep import redact

        monkeypatch.setattr(redact, "may_contain_secret", lambda text: True)
    s = ClaudeSession(project)
    s.user("before")
    good = json.dumps(s.envelope("user", message={"role": "user", "content": "caf\u00e9 XX"}))
    s.write_bytes(good.encode().replace(b"XX", b"\xff\xfe") + b"\n")  # invalid UTF-8
    nan = s.envelope(
        "assistant",
        message={
            "id": "msg_nan",
            "role": "assistant",
            "model": "claude-x",
            "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"n": 1}}],
            "usage": {"input_tokens": 1, "output_tokens": 2},
        },
    )
    line = json.dumps(nan).replace('"output_tokens": 2', '"output_tokens": NaN')
    line = line.replace('{"n": 1}', '{"n": NaN}')
    s.write_bytes(line.encode() + b"\n")
    s.write_bytes(b"[" * 5000 + b"]" * 5000 + b"\n")  # deep nesting
    deep = json.dumps(s.envelope("mystery"))[:-1] + ', "x": ' + "[" * 900 + "]" * 900 + "}\n"
    s.write_bytes(deep.encode())  # deep but within the parser's reach: kept raw
    s.write_bytes(b"not json at all\n")
    s.write_bytes(b'"a string"\n')
    s.write_bytes(b"\n")
    s.write_bytes(b'{"type":"user","message":{"content":"nul \\u0000 inside"},"uuid":"u-nul"}\n')
    s.user("after")
    result = store.import_history("claude")
    assert (result.failed, result.errors) == (0, [])
    listed = messages(store, s.session_id)
    texts = [m["text"] or "" for m in listed]
    assert texts[0] == "before" and texts[-1] == "after"
    assert "caf\u00e9 \ufffd\ufffd" in texts
    nan_row = next(m for m in listed if m["tool_use_id"] == "t1")
    assert nan_row["text"] == '{"n":NaN}' and nan_row["output_tokens"] == 0
    assert nan_row["input_tokens"] == 1
    reasons = [t.split(":")[0] for t in texts if t.startswith(("nested", "not ", "unreadable"))]
    assert reasons == [
        "nested too deeply",
        "not JSON",
        "not a JSON object",
    ]  # the empty line is skipped
    assert "nul \ufffd inside" in texts
    mystery = [json.loads(m["raw"]) for m in listed if m["raw"]]
    assert [m["type"] for m in mystery] == ["mystery"]
    assert store.import_history("claude").messages == 0


def test_a_100_mb_line_is_skipped_without_being_read_into_memory(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.user("before the screenshot")
    head = json.dumps(s.envelope("user", message={"role": "user", "content": "X"}))
    prefix, suffix = head.split('"X"')
    chunk = b"A" * (1 << 20)
    with s.path.open("ab") as f:  # streamed to disk: never whole in this process
        f.write(prefix.encode() + b'"')
        for _ in range(100):
            f.write(chunk)
        f.write(b'"' + suffix.encode() + b"\n")
    s.user("after the screenshot")
    result = store.import_history("claude")
    assert result.failed == 0
    texts = [m["text"] for m in messages(store, s.session_id)]
    assert texts[0] == "before the screenshot"
    assert texts[1].startswith("line of 104,8") and texts[1].endswith("skipped (too long)")
    assert texts[2] == "after the screenshot"
    assert not rows(store, "SELECT id FROM messages WHERE text LIKE '%AAAAAAAA%'")


def test_secrets_in_tool_inputs_and_outputs_never_reach_disk(
    store: agentkeep.Store, project: Path
) -> None:
    secrets = generate()
    s = ClaudeSession(project)
    for name, (text, _secret) in secrets.items():
        s.user(f"use {text} for {name}")
        s.bash(f"curl -H '{text}' https://api.example.com", f"token: {text}", f"err {text}")
        s.tool_call(
            "Edit",
            {"file_path": "config.py", "old_string": "x", "new_string": f"KEY = '{text}'"},
            "updated",
            thinking=f"the key is {text}",
        )
        s.attachment(f"context with {text}")
        s.system("local_command", f"printed {text}")
    s.ai_title(f"title {next(iter(secrets.values()))[0]}")
    with agentkeep.open(project) as held:  # keeps the WAL in place while we look
        result = store.import_history("claude")
        assert result.failed == 0
        needles = [f for _, secret in secrets.values() for f in fragments(secret)]
        assert leaks(project / ".agentkeep", needles) == []
        assert held.redactions()
    assert leaks(project / ".agentkeep", needles) == []
    redacted = rows(store, "SELECT count(*) AS n FROM messages WHERE text LIKE '%[REDACTED%'")
    assert redacted[0]["n"] >= len(secrets)


def test_since_skips_old_files_and_old_lines(store: agentkeep.Store, project: Path) -> None:
    start = datetime.now(UTC) - timedelta(days=10)
    old = ClaudeSession(project, start=start)
    old.user("ten days ago")
    ten_days = (datetime.now(UTC) - timedelta(days=10)).timestamp()
    os.utime(old.path, (ten_days, ten_days))
    mixed = ClaudeSession(project, start=start)
    mixed.user("also ten days ago")
    mixed.clock.now = datetime.now(UTC) - timedelta(hours=1)
    mixed.user("an hour ago")
    since = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    result = store.import_history("claude", since=since)
    assert (result.files, result.imported) == (1, 1)
    assert [m["text"] for m in messages(store, mixed.session_id)] == ["an hour ago"]
    assert not rows(store, "SELECT id FROM sessions WHERE external_id = ?", (old.session_id,))


# -- capture policy -----------------------------------------------------------------------


def test_metadata_policy_keeps_counts_tokens_names_and_times_but_no_text(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTKEEP_CAPTURE_POLICY", "metadata")
    s = ClaudeSession(project)
    s.user("secret plans")
    s.bash("cat plans.txt", "the plans", is_error=False)
    s.attachment("attached words")
    s.ai_title("a title with words")
    with agentkeep.open(project) as store:
        store.import_history("claude")
        listed = messages(store, s.session_id)
        assert [m["kind"] for m in listed] == ["text", "tool_use", "tool_result", "raw"]
        assert all(m["text"] is None and m["raw"] is None for m in listed)
        assert [m["tool_name"] for m in listed if m["kind"] == "tool_use"] == ["Bash"]
        assert all(m["at"] for m in listed)
        assert sum(m["output_tokens"] for m in listed) == 96
        session = session_row(store, s.session_id)
        assert (session["capture"], session["title"], session["tool_calls"]) == (
            "metadata",
            None,
            1,
        )
        assert session["output_tokens"] == 96
        assert not rows(store, "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'plans'")


def test_policy_off_imports_nothing(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTKEEP_CAPTURE_POLICY", "off")
    ClaudeSession(project).user("nothing")
    with agentkeep.open(project) as store:
        result = store.import_history("claude")
        assert (result.files, result.messages) == (0, 0)
        assert counts(store)["import_cursors"] == 0


def test_default_roots_follow_claude_config_dir(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    a = ClaudeSession(project, projects=tmp_path / "home" / ".claude" / "projects")
    a.user("from ~/.claude")
    b = ClaudeSession(project, projects=tmp_path / "xdg" / "claude" / "projects")
    b.user("from ~/.config/claude")
    with agentkeep.open(project) as store:
        assert store.import_history("claude").imported == 2


# -- CLI ------------------------------------------------------------------------------------


def test_cli_json_shape_and_exit_codes(cli: Cli, project: Path) -> None:
    s = ClaudeSession(project)
    s.user("hello")
    done = cli("import", "claude", "--json")
    assert done.exit_code == 0, done.stderr
    report = done.json()
    assert isinstance(report, list) and len(report) == 1
    assert set(report[0]) == {
        "source",
        "files",
        "imported",
        "unchanged",
        "foreign",
        "failed",
        "sessions",
        "messages",
        "bytes",
        "seconds",
        "errors",
    }
    assert (report[0]["source"], report[0]["messages"], report[0]["errors"]) == ("claude", 1, [])
    assert cli("import", "claude", "--json").json()[0]["messages"] == 0
    assert cli("import", "claude", str(project / "missing"), "--json").exit_code == 2
    assert cli("import", "claude", "--since", "yesterday-ish").exit_code == 3


def _wait_for(predicate: Any, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError("condition not reached")


@pytest.mark.slow
def test_watch_picks_up_appended_lines_and_stops_on_sigterm(project: Path) -> None:
    s = ClaudeSession(project)
    s.user("first")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentkeep", "import", "claude", "--watch", "--json"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with agentkeep.open(project) as store:

            def texts() -> list[str]:
                found = rows(
                    store,
                    "SELECT m.text FROM messages m JOIN sessions s ON s.id = m.session_id"
                    " WHERE s.external_id = ? ORDER BY m.seq",
                    (s.session_id,),
                )
                return [r["text"] for r in found]

            _wait_for(lambda: texts() == ["first"], 30)
            s.user("appended while watching")
            latency = _wait_for(lambda: texts() == ["first", "appended while watching"], 30)
            # Within ~2 s on an idle machine (one 1 s watch interval plus the import);
            # the bound here is loose: timing belongs to bench/, this checks it happens.
            assert latency < 20
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    first = json.loads(out.decode().splitlines()[0])
    assert first[0]["source"] == "claude" and first[0]["messages"] == 1


def test_repeated_identifiers_are_checked_once_and_a_secret_one_is_redacted_every_time(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer remembers the identifiers it found clean (a role, a model, a tool call's
    id repeat row after row), never one the redactor changed."""
    from agentkeep import redact

    secret = generate()["github-classic"][0]
    model = f"model-{os.getpid()}-{time.monotonic_ns()}"  # not in any cache yet
    calls: list[str] = []
    real_gate = redact.may_contain_secret

    def gate(text: str) -> bool:
        calls.append(text)
        return bool(real_gate(text))

    monkeypatch.setattr(redact, "may_contain_secret", gate)
    with store.transaction() as tx:
        writer = store.capture_writer(tx)
        session = writer.session("claude", "s-repeat")
        for n in range(3):
            writer.message(
                session,
                seq=n,
                external_id=f"e{n}",
                role="assistant",
                kind="tool_use",
                model=model,
                tool_use_id=secret,
                text="x",
            )
    assert calls.count(model) == 1
    rows = store._conn.execute("SELECT tool_use_id FROM messages ORDER BY id").fetchall()
    assert len(rows) == 3 and all(secret not in row[0] for row in rows)
    recorded = store._conn.execute(
        "SELECT count(*) FROM redactions WHERE entity = 'messages' AND field = 'tool_use_id'"
    ).fetchone()[0]
    assert recorded == 3


@pytest.mark.sqlite_only(
    "reads SQLite's search watermark (search_index); PostgreSQL indexes in the same transaction"
)
def test_an_import_leaves_what_it_stored_indexed_for_search(
    store: agentkeep.Store, project: Path
) -> None:
    s = ClaudeSession(project)
    s.user("please migrate the walrus table")
    s.assistant({"type": "text", "text": "the walrus table is migrated"})
    assert store.import_history("claude").messages == 2
    conn = store._conn
    newest = conn.execute("SELECT max(id) FROM messages").fetchone()[0]
    watermark = conn.execute("SELECT indexed_to FROM search_index").fetchone()[0]
    assert watermark == newest
    found = conn.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'walrus'")
    assert found.fetchone()[0] == 2


@pytest.mark.sqlite_only("reads SQLite's search watermark (search_index)")
def test_an_import_that_fails_midway_still_indexes_what_it_stored(
    store: agentkeep.Store, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in one file ends the run with an internal error; the sessions stored before it
    are indexed all the same, not left for every read-only search to index in memory."""
    from agentkeep.importers.claude import ClaudeImporter

    for word in ("walrus", "narwhal"):
        s = ClaudeSession(project)
        s.user(f"please migrate the {word} table")
    original = ClaudeImporter.import_file
    calls: list[int] = []

    def second_fails(self: ClaudeImporter, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a bug in the importer")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ClaudeImporter, "import_file", second_fails)
    with pytest.raises(RuntimeError):
        store.import_history("claude")
    conn = store._conn
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    newest = conn.execute("SELECT max(id) FROM messages").fetchone()[0]
    assert conn.execute("SELECT indexed_to FROM search_index").fetchone()[0] == newest
