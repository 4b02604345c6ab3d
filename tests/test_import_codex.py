"""The Codex importer: rollouts written by tests/agentfixtures.py in the documented format
(docs/design.md "Agent tools' formats"), plain and zstd-compressed — the duplicated text
collapsed, injected context kept out, tool calls and failures, reasoning summaries only,
token counts into session totals and metrics exactly once, rotation and archive, other
projects left alone."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.files import zstd
from agentkeep.importers.files import file_key

import agentfixtures as fixtures
from agentfixtures import CodexRollout, codex_home, counts, rows
from conftest import Cli, run_agentkeep
from secretgen import fragments, generate, leaks


def session_row(store: agentkeep.Store, external_id: str) -> dict[str, Any]:
    return fixtures.session_row(store, "codex", external_id)


def messages(store: agentkeep.Store, external_id: str) -> list[dict[str, Any]]:
    return fixtures.session_messages(store, "codex", external_id)


def shown(store: agentkeep.Store, external_id: str) -> list[tuple[str, str, str | None]]:
    return [(m["role"], m["kind"], m["text"]) for m in messages(store, external_id) if m["text"]]


def test_a_rollout_becomes_rows(store: agentkeep.Store, project: Path) -> None:
    r = CodexRollout(project)
    r.turn_context()
    r.injected_context()
    r.user("Add a rate limiter to the /login route")
    r.reasoning("Looking for the route", encrypted="gAAAAB-never-stored-ciphertext")
    shell_ok = r.function_call(["rg", "-n", "login"], "src/routes/auth.ts:14")
    shell_fail = r.function_call(["pytest"], "1 failed", exit_code=1, style="json")
    patch = r.apply_patch("*** Begin Patch\n*** Update File: src/a.ts\n*** End Patch")
    r.local_shell(["ls", "-la"])
    r.web_search("express rate limit middleware")
    r.assistant("Added a token bucket.", event_first=True)  # the event copy first this time
    r.task_complete("Added a token bucket.")
    r.compacted("Summary: limiter added.")
    r.rolled_back(2)
    r.line("world_state", {"files": 3})
    r.event({"type": "turn_aborted", "reason": "interrupted"})
    r.event({"type": "exec_command_begin", "call_id": "x"})  # UI noise

    result = store.import_history("codex")
    assert (result.files, result.imported, result.failed) == (1, 1, 0)
    agents_md = f"# AGENTS.md instructions for {project}\n\nUse pytest."
    session = session_row(store, r.thread_id)
    assert session["title"] == "Add a rate limiter to the /login route"
    assert session["model"] == "gpt-5-codex"
    assert session["cwd"] == "."
    assert session["turns"] == 1
    got = [(m["role"], m["kind"], m["tool_name"], m["text"]) for m in messages(store, r.thread_id)]
    assert got[:3] == [
        ("system", "event", None, "injected context: developer instructions (27 chars)"),
        (
            "system",
            "event",
            None,
            f"injected context: AGENTS.md ({len(agents_md)} chars)",
        ),
        ("system", "event", None, got[2][3]),
    ]
    assert got[2][3].startswith("injected context: environment_context")
    assert got[3:] == [
        ("user", "text", None, "Add a rate limiter to the /login route"),
        ("assistant", "thinking", None, "Looking for the route"),
        ("assistant", "tool_use", "shell", got[5][3]),
        ("tool", "tool_result", "shell", got[6][3]),
        ("assistant", "tool_use", "shell", got[7][3]),
        ("tool", "tool_result", "shell", "1 failed"),
        (
            "assistant",
            "tool_use",
            "apply_patch",
            "*** Begin Patch\n*** Update File: src/a.ts\n*** End Patch",
        ),
        ("tool", "tool_result", "apply_patch", "Success. Updated the following files"),
        (
            "assistant",
            "tool_use",
            "local_shell",
            '{"type":"exec","command":["ls","-la"],"timeout_ms":10000}',
        ),
        (
            "assistant",
            "tool_use",
            "web_search",
            '{"type":"search","query":"express rate limit middleware"}',
        ),
        ("assistant", "text", None, "Added a token bucket."),
        ("system", "summary", None, "Summary: limiter added."),
        ("system", "event", None, "rolled back 2 turns"),
        ("system", "raw", None, None),
        ("system", "event", None, "turn aborted: interrupted"),
    ]
    assert json.loads(got[5][3])["command"] == ["rg", "-n", "login"]
    assert got[6][3].endswith("src/routes/auth.ts:14")
    listed = messages(store, r.thread_id)
    calls = {m["tool_use_id"]: m for m in listed if m["kind"] == "tool_result"}
    assert (
        calls[shell_ok]["is_error"],
        calls[shell_fail]["is_error"],
        calls[patch]["is_error"],
    ) == (
        0,
        1,
        0,
    )
    assert json.loads(listed[16]["raw"]) == {
        "timestamp": listed[16]["at"],
        "type": "world_state",
        "payload": {"files": 3},
    }
    session = session_row(store, r.thread_id)
    assert (session["prompts"], session["tool_calls"], session["failures"]) == (1, 5, 1)
    # Neither the injected text nor the encrypted reasoning is stored anywhere.
    assert not rows(store, "SELECT id FROM messages WHERE text LIKE '%Use pytest%'")
    assert leaks(project / ".agentkeep", ["never-stored-ciphertext"]) == []


def test_duplicated_text_is_stored_once_and_nothing_is_lost(
    store: agentkeep.Store, project: Path
) -> None:
    r = CodexRollout(project)
    r.user("continue")
    r.assistant("ok 1")
    r.user("continue")  # typed twice: stored twice
    r.assistant("ok 2", event_first=True)
    r.user("only as an event", item=False)
    r.assistant("only as an item", event=False)
    r.reasoning("thinking once")  # reasoning and agent_reasoning: one row
    store.import_history("codex")
    assert shown(store, r.thread_id) == [
        ("user", "text", "continue"),
        ("assistant", "text", "ok 1"),
        ("user", "text", "continue"),
        ("assistant", "text", "ok 2"),
        ("user", "text", "only as an event"),
        ("assistant", "text", "only as an item"),
        ("assistant", "thinking", "thinking once"),
    ]
    # The rule holds across runs: a copy arriving in the next run is still recognised.
    r.user("split across runs", event=False)
    store.import_history("codex")
    r.event({"type": "user_message", "message": "split across runs", "images": []})
    assert store.import_history("codex").messages == 0


def test_token_counts_go_to_totals_and_metrics_once(store: agentkeep.Store, project: Path) -> None:
    r = CodexRollout(project)
    r.turn_context(model="gpt-5-codex")
    r.user("go")
    r.token_count(4630, 3072, 210, 96)
    r.repeat_token_count()  # a rate-limit update repeating the totals
    r.turn_context(model="gpt-5-codex-mini")
    r.token_count(100, 50, 20)
    r.event({"type": "token_count", "info": None, "rate_limits": {}})
    store.import_history("codex")
    session = session_row(store, r.thread_id)
    assert (session["input_tokens"], session["output_tokens"], session["cache_read_tokens"]) == (
        4730,
        230,
        3122,
    )
    metrics = rows(store, "SELECT name, value, labels, session_id FROM metrics ORDER BY id")
    assert [(m["name"], m["value"]) for m in metrics] == [
        ("tokens.input", 4630),
        ("tokens.output", 210),
        ("tokens.cache_read", 3072),
        ("tokens.reasoning", 96),
        ("tokens.input", 100),
        ("tokens.output", 20),
        ("tokens.cache_read", 50),
        ("tokens.reasoning", 0),
    ]
    assert json.loads(metrics[0]["labels"]) == {"source": "codex", "model": "gpt-5-codex"}
    assert json.loads(metrics[4]["labels"])["model"] == "gpt-5-codex-mini"
    assert {m["session_id"] for m in metrics} == {session["id"]}
    # Re-reading everything (cursor forgotten) adds no metric and no row.
    before = counts(store)
    with store.transaction() as tx:
        tx.conn.execute("DELETE FROM import_cursors")
    assert store.import_history("codex").messages == 0
    assert counts(store) == before


def test_reimport_adds_nothing(store: agentkeep.Store, project: Path) -> None:
    r = CodexRollout(project)
    r.turn_context()
    r.user("one")
    r.function_call(["ls"], "a")
    r.token_count(10, 0, 5)
    store.import_history("codex")
    before = counts(store)
    again = store.import_history("codex")
    assert (again.messages, again.unchanged) == (0, 1)
    assert store.import_history("codex", path=codex_home()).messages == 0
    assert store.import_history("codex", path=r.path).messages == 0
    assert counts(store) == before


def test_zst_rollouts_and_rotation_keep_the_cursor(store: agentkeep.Store, project: Path) -> None:
    old = CodexRollout(project)
    old.user("compressed long ago")
    old.token_count(10, 0, 5)
    old.compress()
    live = CodexRollout(project)
    live.user("before rotation")
    live.token_count(10, 0, 5)
    result = store.import_history("codex")
    assert (result.imported, result.messages) == (2, 4)
    assert shown(store, old.thread_id) == [("user", "text", "compressed long ago")]
    cursor_before = rows(store, "SELECT * FROM import_cursors ORDER BY id")

    live.compress()  # a week later: .jsonl -> .jsonl.zst
    before = counts(store)
    again = store.import_history("codex")
    assert (again.messages, again.failed) == (0, 0)
    assert counts(store) == before
    cursors = rows(store, "SELECT * FROM import_cursors ORDER BY id")
    assert [c["file_key"] for c in cursors] == [c["file_key"] for c in cursor_before]
    assert [c["offset"] for c in cursors] == [c["offset"] for c in cursor_before]
    assert all(not c["file_key"].endswith(".zst") for c in cursors)

    # Appending to an old thread re-materializes the plain file next to the .zst: the
    # plain one is read, from the cursor on.
    plain = live.path
    plain.write_bytes(zstd().decompress(plain.with_name(plain.name + ".zst").read_bytes()))
    live.user("after rotation")
    result = store.import_history("codex")
    assert (result.files, result.messages) == (2, 1)
    assert shown(store, live.thread_id) == [
        ("user", "text", "before rotation"),
        ("user", "text", "after rotation"),
    ]


def test_a_rewritten_rollout_is_read_again_without_duplicates(
    store: agentkeep.Store, project: Path
) -> None:
    r = CodexRollout(project)
    r.user("one")
    r.assistant("two")
    r.token_count(10, 0, 5)
    store.import_history("codex")
    before = counts(store)
    lines = r.path.read_bytes().splitlines(keepends=True)
    assert b'"user_message"' in lines[2]
    r.path.write_bytes(b"".join(lines[:2] + lines[3:]))  # rewritten without one line
    result = store.import_history("codex")
    assert result.messages == 0
    assert counts(store) == before


def test_other_projects_rollouts_are_not_imported(store: agentkeep.Store, project: Path) -> None:
    mine = CodexRollout(project / "src")
    mine.user("mine")
    other = CodexRollout(project.parent / "elsewhere")
    other.user("not mine")
    other.token_count(1, 0, 1)
    result = store.import_history("codex")
    assert (result.imported, result.foreign) == (1, 1)
    assert [r["external_id"] for r in rows(store, "SELECT external_id FROM sessions")] == [
        mine.thread_id
    ]
    assert counts(store)["metrics"] == 0
    other.user("more")
    assert store.import_history("codex").foreign == 1
    assert counts(store)["sessions"] == 1


def test_oldest_format_without_payload_wrappers(store: agentkeep.Store, project: Path) -> None:
    r = CodexRollout(project, meta=False)
    r.write_bytes(
        json.dumps(
            {"id": r.thread_id, "timestamp": "2025-05-01T10:00:00.000Z", "git": None}
        ).encode()
        + b"\n"
    )
    r.write_bytes(b'{"record_type":"state"}\n')
    for item in (
        {
            "type": "message",
            "role": "user",
            "content": [
                {
                    "type": "input_text",
                    "text": f"<environment_context>\n<cwd>{project}</cwd>\n</environment_context>",
                }
            ],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "old prompt"}],
        },
    ):
        r.write_bytes(json.dumps(item).encode() + b"\n")
    store.import_history("codex")
    assert shown(store, r.thread_id)[1:] == [("user", "text", "old prompt")]


def test_subagent_rollouts_link_their_parent(store: agentkeep.Store, project: Path) -> None:
    parent = CodexRollout(project)
    parent.user("spawn a helper")
    child = CodexRollout(
        project,
        source={"subagent": {"thread_spawn": {"parent_thread_id": parent.thread_id, "depth": 1}}},
        archived=True,
    )
    child.user("helper work")
    result = store.import_history("codex")
    assert result.imported == 2  # archived_sessions included
    assert (
        session_row(store, child.thread_id)["parent_id"]
        == session_row(store, parent.thread_id)["id"]
    )


def test_bad_lines_never_stop_an_import(store: agentkeep.Store, project: Path) -> None:
    r = CodexRollout(project)
    r.user("before")
    r.write_bytes(
        b'{"timestamp":"2026-08-20T14:05:33.525Z","type":"event_msg","payload":'
        b'{"type":"user_message","message":"caf\xc3\xa9 \xff\xfe"}}\n'
    )
    r.write_bytes(
        b'{"timestamp":"2026-08-20T14:05:34.000Z","type":"event_msg","payload":{"type":'
        b'"token_count","info":{"total_token_usage":{"input_tokens":NaN,"output_tokens":3},'
        b'"last_token_usage":{"input_tokens":Infinity,"output_tokens":3}}}}\n'
    )
    r.write_bytes(b"[" * 5000 + b"]" * 5000 + b"\n")
    r.write_bytes(b"{truncated json\n")
    r.user("after")
    half = b'{"timestamp":"2026-08-20T14:06:00.000Z","type":"event_msg","payload":{"type":"user_'
    r.write_bytes(half)  # still being written
    result = store.import_history("codex")
    assert result.failed == 0
    texts = [t for _, _, t in shown(store, r.thread_id)]
    assert texts[0] == "before" and texts[-1] == "after"
    assert "café \ufffd\ufffd" in texts
    assert session_row(store, r.thread_id)["output_tokens"] == 3
    assert [t.split(":")[0] for t in texts if t.startswith(("nested", "not JSON"))] == [
        "nested too deeply",
        "not JSON",
    ]
    r.write_bytes(b'message","message":"completed later"}}\n')
    assert store.import_history("codex").messages == 1
    assert shown(store, r.thread_id)[-1] == ("user", "text", "completed later")


def test_a_corrupt_zst_fails_that_file_only(project: Path) -> None:
    good = CodexRollout(project)
    good.user("fine")
    bad = CodexRollout(project)
    bad.user("lost")
    bad.compress().write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(64))
    done = run_agentkeep("import", "codex", "--json", cwd=project)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)[0]
    assert (report["imported"], report["failed"]) == (1, 1)
    assert report["errors"][0].startswith(file_key(bad.path, codex_home()))
    assert str(codex_home()) not in report["errors"][0]


def test_secrets_in_tool_calls_never_reach_disk(store: agentkeep.Store, project: Path) -> None:
    secrets = generate()
    r = CodexRollout(project)
    for name, (text, _secret) in secrets.items():
        r.user(f"deploy with {text} ({name})")
        r.function_call(["bash", "-lc", f"curl -H '{text}' https://x"], f"echoed {text}")
        r.apply_patch(f"*** Begin Patch\n+KEY = '{text}'\n*** End Patch", f"wrote {text}")
        r.reasoning(f"the token is {text}")
        r.line("unknown_item", {"value": text})
    with agentkeep.open(project):
        assert store.import_history("codex").failed == 0
        needles = [f for _, secret in secrets.values() for f in fragments(secret)]
        assert leaks(project / ".agentkeep", needles) == []
    assert leaks(project / ".agentkeep", needles) == []


def test_since_skips_old_rollouts_and_lines(store: agentkeep.Store, project: Path) -> None:
    old = CodexRollout(project, start=datetime.now(UTC) - timedelta(days=20))
    old.user("old")
    stamp = (datetime.now(UTC) - timedelta(days=20)).timestamp()
    os.utime(old.path, (stamp, stamp))
    mixed = CodexRollout(project, start=datetime.now(UTC) - timedelta(days=20))
    mixed.turn_context()
    mixed.user("old line")
    mixed.clock.now = datetime.now(UTC)
    mixed.user("new line")
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert store.import_history("codex", since=since).files == 1
    assert shown(store, mixed.thread_id) == [("user", "text", "new line")]
    assert session_row(store, mixed.thread_id)["model"] == "gpt-5-codex"


def test_metadata_policy_keeps_tokens_and_metrics(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTKEEP_CAPTURE_POLICY", "metadata")
    r = CodexRollout(project)
    r.turn_context()
    r.user("private words")
    r.function_call(["cat", "notes"], "private output", exit_code=2)
    r.token_count(100, 40, 7)
    with agentkeep.open(project) as store:
        store.import_history("codex")
        listed = messages(store, r.thread_id)
        assert all(m["text"] is None and m["raw"] is None for m in listed)
        assert [m["kind"] for m in listed] == ["text", "tool_use", "tool_result", "event"]
        assert listed[2]["is_error"] == 1 and listed[1]["tool_name"] == "shell"
        session = session_row(store, r.thread_id)
        assert (session["title"], session["input_tokens"], session["failures"]) == (None, 100, 1)
        assert counts(store)["metrics"] == 4


def test_cli_json(cli: Cli, project: Path) -> None:
    r = CodexRollout(project)
    r.user("hello")
    done = cli("import", "codex", "--json")
    assert done.exit_code == 0, done.stderr
    report = done.json()
    assert [(x["source"], x["files"], x["messages"], x["failed"]) for x in report] == [
        ("codex", 1, 1, 0)
    ]


def test_tokens_go_to_each_turns_model_and_cwd_comes_from_the_first_turn(
    store: agentkeep.Store, project: Path
) -> None:
    (project / "svc").mkdir()
    r = CodexRollout(project / "svc", meta=False)
    r.turn_context(model="gpt-5-codex")
    r.user("plan")
    r.token_count(100, 0, 10)
    r.turn_context(model="gpt-5.1-codex-max")
    r.user("build")
    r.token_count(50, 0, 700)
    store.import_history("codex")
    by_model = {row.key: row for row in store.stats(by="model")}
    assert by_model["gpt-5.1-codex-max"].output_tokens == 700
    assert by_model["gpt-5-codex"].output_tokens == 10
    (session,) = rows(store, "SELECT cwd FROM sessions WHERE source = 'codex'")
    assert session["cwd"] == "svc"
