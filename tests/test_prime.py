"""`agentkeep prime`: what a new session is told, within 10,000 characters, and the
SessionStart hook envelope that never fails the agent."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import agentkeep
from agentkeep.services.prime import MAX_CHARS, render_prime

from conftest import Cli, run_agentkeep


def fill(store: agentkeep.Store) -> None:
    """Two handoffs, a next action, ready/blocked/done tasks, a leased and a free
    worktree, a failed session and a failed tool call."""
    login = store.add_task("Fix login redirect", priority=1, labels=["auth"]).item
    docs = store.add_task("Write the docs").item
    blocked = store.add_task("Release 1.0").item
    store.add_dependency(blocked.id, docs.id)
    done = store.add_task("Old chore").item
    store.claim_task(done.id, "me")
    store.update_task(done.id, status="done")
    store.add_note("handoff", "First handoff: the old one.")
    store.add_note(
        "handoff",
        "Parser half-done.\ntest_nested fails on deep input; see src/parser.py:120",
        task_id=login.id,
    )
    store.add_note("next_action", "run the benchmarks before merging", task_id=login.id)
    leased = store.add_worktree("../wt-login", branch="fix-login").item
    store.lease_worktree(leased.id, "agent-7", ttl_seconds=600)
    store.add_worktree("../wt-docs", branch="docs")
    session = store.start_session(source="claude", external_id="sess-failed", title="fix it")
    store.end_session(session.item.id, status="failed", exit_code=2)
    with store.transaction() as tx:
        writer = store.capture_writer(tx)
        captured = writer.session("claude", "sess-hooks")
        writer.capture(
            source="claude",
            event="tool_fail",
            vendor_event="PostToolUseFailure",
            dedupe_key="prime-test-1",
            session_id=captured,
            tool_name="Bash",
            tool_use_id="toolu_1",
            exit_code=1,
            payload={
                "error": "Exit code 1\nE   AssertionError: expected 3 got 4",
                "tool_input": {"command": "pytest -q tests/test_parser.py"},
            },
        )


def test_prime_shows_handoffs_tasks_failures_and_worktrees(store: agentkeep.Store) -> None:
    fill(store)
    prime = store.prime()
    text = prime.text
    assert text.startswith("# agentkeep: proj\n")
    # Handoffs, newest first, with the whole body.
    assert text.index("Parser half-done.") < text.index("First handoff")
    assert "  test_nested fails on deep input; see src/parser.py:120" in text
    assert "run the benchmarks before merging" in text
    # Only ready tasks, most urgent first.
    assert text.index("Fix login redirect") < text.index("Write the docs")
    assert "[auth]" in text
    assert "Release 1.0" not in text and "Old chore" not in text
    # Failures of the last day.
    assert "session" in text and "failed" in text and "exit 2" in text
    assert "Bash `pytest -q tests/test_parser.py` failed" in text
    assert "AssertionError: expected 3 got 4" in text
    # Worktrees and who holds them.
    assert "../wt-login on fix-login: leased by agent-7 until" in text
    assert "../wt-docs on docs: free" in text
    assert "agentkeep notes add handoff" in text
    assert prime.truncated is False and prime.chars == len(text) <= MAX_CHARS
    assert prime.ready_total == 2 and [t["title"] for t in prime.ready_tasks] == [
        "Fix login redirect",
        "Write the docs",
    ]
    assert prime.handoffs_total == 2 and prime.handoffs[0]["body"].startswith("Parser")
    assert prime.failed_sessions_total == 1 and prime.tool_failures_total == 1
    assert [w["lease_owner"] for w in prime.worktrees] == ["agent-7", None]


def test_failures_older_than_a_day_are_left_out(store: agentkeep.Store) -> None:
    fill(store)
    later = store.prime(now=datetime.now(UTC) + timedelta(days=2))
    assert later.failed_sessions == [] and later.tool_failures == []
    assert "Failures" not in later.text
    assert "Parser half-done." in later.text


def test_empty_store_says_so(store: agentkeep.Store) -> None:
    text = store.prime().text
    assert "No handoff notes, ready tasks, recent failures or active worktrees." in text
    assert len(text) < 600


def test_prime_stays_under_the_cap_with_many_long_notes(store: agentkeep.Store) -> None:
    for i in range(30):
        store.add_note("handoff", f"handoff {i}: " + "detail " * 1_500)
        store.add_note("next_action", f"action {i}: " + "step " * 200)
    for i in range(40):
        store.add_task(f"task {i} " + "long title " * 40)
    for i in range(25):
        store.add_worktree(f"../wt-{i}", branch=f"b{i}")
    prime = store.prime()
    assert len(prime.text) <= MAX_CHARS
    assert prime.truncated is True
    text = prime.text
    # Every section is there, the newest handoff first, and each says what it left out.
    for heading in ("## Handoff notes", "## Next actions", "## Ready tasks", "## Active"):
        assert heading in text
    assert "handoff 29:" in text
    assert "more: `agentkeep notes list -k handoff`)" in text
    assert "more: `agentkeep tasks ready`)" in text
    assert "more: `agentkeep worktrees`)" in text
    assert "## Ready tasks (40)" in text

    for limit in (200, 1_000, 3_000):
        small = store.prime(max_chars=limit).text
        assert len(small) <= limit


def test_render_prime_fits_any_budget() -> None:
    note = {"id": 1, "created_at": "2026-01-01T00:00:00.000Z", "author": "a", "task_id": None}
    parts = {
        "handoffs": [{**note, "body": "x" * 5_000}],
        "handoffs_total": 9,
        "next_actions": [],
        "next_actions_total": 0,
        "ready_tasks": [{"id": 3, "priority": 1, "title": "t", "labels": []}],
        "ready_total": 1,
        "failed_sessions": [],
        "failed_sessions_total": 0,
        "tool_failures": [],
        "tool_failures_total": 0,
        "worktrees": [],
        "worktrees_total": 0,
    }
    for limit in range(100, 6_000, 97):
        text, truncated = render_prime("p", parts, max_chars=limit)
        assert len(text) <= limit
        assert truncated
    text, _ = render_prime("p", parts, max_chars=MAX_CHARS)
    assert "- #3 P1 t" in text  # the short section is never squeezed out by the long one
    assert "(8 more: `agentkeep notes list -k handoff`)" in text


def test_prime_cli_json_and_text(cli: Cli, store: agentkeep.Store) -> None:
    fill(store)
    result = cli("prime", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["text"] == store.prime().text
    assert set(data) >= {"text", "chars", "truncated", "handoffs", "ready_tasks", "worktrees"}
    plain = cli("prime", "--max-chars", "1500")
    assert plain.exit_code == 0 and len(plain.stdout) <= 1501
    assert plain.stdout.startswith("# agentkeep: proj")


def _envelope(stdout: bytes) -> dict[str, object]:
    text = stdout.decode("ascii")  # ASCII only, whatever the locale
    assert text.count("\n") == 1 and text.endswith("\n")
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def test_hook_json_envelope(project: Path, store: agentkeep.Store) -> None:
    fill(store)
    store.add_note("handoff", "Ünïcode → fine")
    payload = {"session_id": "s", "hook_event_name": "SessionStart", "big": "x" * 2_000_000}
    done = run_agentkeep("prime", "--hook-json", cwd=project, input=json.dumps(payload).encode())
    assert done.returncode == 0, done.stderr
    envelope = _envelope(done.stdout)
    assert envelope == {
        "hookSpecificOutput": {
            "hookEventName": "SessionStart",
            "additionalContext": store.prime().text,
        }
    }
    assert "Ünïcode → fine" in store.prime().text
    assert done.stderr == b""


def test_hook_json_without_a_store_prints_empty_object(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    done = run_agentkeep("prime", "--hook-json", cwd=nowhere, input=b"{}")
    assert done.returncode == 0
    assert done.stdout == b"{}\n"
    command = f"exec {shlex.quote(sys.executable)} -m agentkeep prime --hook-json <&-"
    done = subprocess.run(  # stdin closed entirely
        ["sh", "-c", command], cwd=nowhere, capture_output=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout == b"{}\n"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_hook_json_with_a_damaged_store_exits_0_and_logs(project: Path, damage: str) -> None:
    store_dir = project / ".agentkeep"
    # Damage the database from another process: the tests never open live DB files directly.
    script = {
        "garbage": "rm -f state.db-wal state.db-shm && head -c 65536 /dev/urandom > state.db",
        "truncated": "rm -f state.db-wal state.db-shm && printf 'SQLite format 3' > state.db",
    }[damage]
    subprocess.run(["sh", "-c", script], cwd=store_dir, check=True)
    done = run_agentkeep("prime", "--hook-json", cwd=project, input=b'{"session_id": "s"}')
    assert done.returncode == 0
    assert done.stdout == b"{}\n"
    log = (store_dir / "hook-errors.log").read_text()
    assert log.count("\n") == 1 and "prime --hook-json" in log
    # Without --hook-json the same failure is an ordinary error.
    assert run_agentkeep("prime", cwd=project).returncode != 0


def test_hook_json_in_process_never_raises(cli: Cli, project: Path) -> None:
    result = cli("prime", "--hook-json", "--max-chars", "5", input="{}")
    assert result.exit_code == 0
    context = json.loads(result.stdout)["hookSpecificOutput"]["additionalContext"]
    assert len(context) <= 200  # --max-chars is clamped to its minimum, not refused


def test_prime_counts_failures_from_imported_transcripts_as_stats_does(
    store: agentkeep.Store,
) -> None:
    """One definition of a failure: an imported tool result marked as an error is one (as
    in `stats`); the same call also reported by a hook is still one."""
    now = datetime.now(UTC)
    at = (now - timedelta(minutes=5)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with store.transaction() as tx:
        writer = store.capture_writer(tx)
        session = writer.session("claude", "imported", started_at=at)
        for i, (call, command) in enumerate([("t1", "make lint"), ("t2", "pytest -x")]):
            writer.message(
                session, seq=2 * i, external_id=f"u{i}", role="assistant", kind="tool_use",
                tool_name="Bash", tool_use_id=call, at=at, text=command,
            )  # fmt: skip
            writer.message(
                session, seq=2 * i + 1, external_id=f"r{i}", role="tool", kind="tool_result",
                tool_use_id=call, is_error=True, at=at, text=f"Exit code 2\n{command} broke",
            )  # fmt: skip
        writer.session_totals_from_messages(session)
        # The hook saw the second call fail too.
        writer.capture(
            source="claude", event="tool_fail", dedupe_key="dup", session_id=session,
            tool_name="Bash", tool_use_id="t2", exit_code=2, payload={"error": "boom"},
        )  # fmt: skip
    assert sum(row.failures for row in store.stats(by="day")) == 2
    prime = store.prime(now=now)
    assert prime.tool_failures_total == 2
    assert {f["tool_name"] for f in prime.tool_failures} == {"Bash"}
    assert "pytest -x broke" in prime.text and "make lint broke" in prime.text
