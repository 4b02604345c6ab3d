"""`agentkeep hook` end to end, in real subprocesses: every event of every source stored
with its normalized columns and session counters; parallel deliveries stored exactly once;
secrets never on disk; capture policies; spilling; garbage in, exit 0 out; worktrees and
schema upgrades; and the fast path's imports (principle 11 of docs/design.md)."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import agentkeep

from conftest import Cli, git, run_agentkeep
from hookpayloads import Delivery, claude_script, every_source, recorded, totals
from secretgen import fragments, generate, leaks

LOG = "hook-errors.log"


@pytest.fixture(autouse=True)
def _no_agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)  # set when run under Claude Code


def deliver(d: Delivery, cwd: Path, env: dict[str, str] | None = None) -> None:
    """One delivery as the agent makes it: exit 0, nothing printed."""
    done = run_agentkeep(*d.argv(), cwd=cwd, input=d.stdin(), env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), done.stderr


def hook(*args: str, cwd: Path, input: bytes = b"", **kw: Any) -> None:
    done = run_agentkeep("hook", *args, cwd=cwd, input=input, **kw)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), done.stderr


def query(project: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{project / '.agentkeep' / 'state.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def log_lines(project: Path) -> list[str]:
    path = project / ".agentkeep" / LOG
    return path.read_text().splitlines() if path.exists() else []


def post_tool_use(cwd: Path, tool_use_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": "s-main",
        "cwd": str(cwd),
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
        "tool_response": {"stdout": "a.py"},
        "tool_use_id": tool_use_id,
        **extra,
    }


# -- every event, normalized ----------------------------------------------------------------


def test_every_event_of_every_source_is_stored_with_its_columns(
    project: Path, tmp_path: Path
) -> None:
    (project / "src").mkdir()
    deliveries = every_source(str(project / "src"))
    elsewhere = tmp_path / "elsewhere"  # the store is found from the payload's cwd
    elsewhere.mkdir()
    for d in deliveries:
        deliver(d, elsewhere)

    rows = query(
        project,
        "SELECT c.source, c.event, c.vendor_event, s.source, s.external_id, c.tool_name,"
        " c.tool_use_id, c.turn_id, c.exit_code, c.duration_ms, c.cwd, c.payload"
        " FROM captures c LEFT JOIN sessions s ON s.id = c.session_id ORDER BY c.id",
    )
    assert len(rows) == len(deliveries)
    for d, row in zip(deliveries, rows, strict=True):
        expected = (
            d.source,
            d.event,
            d.vendor_event,
            d.session_source if d.session else None,
            d.session,
            d.tool_name,
            d.tool_use_id,
            d.turn_id,
            d.exit_code,
            d.duration_ms,
            "src",  # relative to the project root: the store holds no absolute path
        )
        assert row[:11] == expected, d.payload
        assert json.loads(row[11]) == d.payload  # the raw payload, whole

    sessions = {
        (source, external): (counts, status, parent, capture)
        for source, external, *counts, status, parent, capture in query(
            project,
            "SELECT s.source, s.external_id, s.prompts, s.tool_calls, s.failures, s.turns,"
            " s.status, p.external_id, s.capture FROM sessions s"
            " LEFT JOIN sessions p ON p.id = s.parent_id",
        )
    }
    expected_counts = totals(deliveries)
    assert set(sessions) == set(expected_counts)
    ended = {(d.session_source, d.session) for d in deliveries if d.ends}
    parents = {(d.session_source, d.session): d.parent for d in deliveries if d.parent}
    for key, counts in expected_counts.items():
        got_counts, status, parent, policy = sessions[key]
        assert got_counts == list(counts.values()), key
        assert status == ("ended" if key in ended else "running"), key
        assert parent == parents.get(key), key
        assert policy == "full"
    claude = next(d.session for d in deliveries if d.source == "claude")
    assert query(
        project, "SELECT model, title, cwd FROM sessions WHERE external_id = ?", (claude,)
    ) == [("claude-sonnet-5", "uploader retries", "src")]
    assert query(
        project,
        "SELECT a.kind, a.status FROM agents a JOIN sessions s ON s.agent_id = a.id"
        " WHERE s.source = 'opencode' AND s.parent_id IS NULL",
    ) == [("opencode", "done")]
    assert log_lines(project) == []


def test_the_click_command_runs_the_same_hook(
    project: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = json.dumps(post_tool_use(project, "toolu_click")).encode()
    assert cli("hook", "--source", "claude", "--no-such-flag", input=payload).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no cwd in the payload: --store names the store
    body = {k: v for k, v in post_tool_use(project, "toolu_store").items() if k != "cwd"}
    result = cli("--store", str(project), "hook", input=json.dumps(body).encode())
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert query(project, "SELECT tool_use_id FROM captures ORDER BY id") == [
        ("toolu_click",),
        ("toolu_store",),
    ]
    help_text = cli("hook", "--help").stdout
    assert "Usage:" in help_text and "Examples:" in help_text and "--source" in help_text


# -- concurrency -----------------------------------------------------------------------------

WORKER = """
import base64, io, json, sys
from agentkeep.hook import main
failed = []
for job in json.load(open(sys.argv[1])):
    sys.stdin = io.TextIOWrapper(io.BytesIO(base64.b64decode(job["stdin"])))
    code = main(job["argv"][1:])
    if code != 0:
        failed.append(code)
print(json.dumps(failed))
"""


def test_parallel_deliveries_are_stored_exactly_once(project: Path, tmp_path: Path) -> None:
    """1,000+ payloads of every event type, each delivered twice, by 8 processes that run
    the hook's entry point in a loop plus 48 separate `agentkeep hook` processes, all at
    once: every payload is stored once, the counters are exact, nothing fails. A hook
    that finds the writer lock busy spools its delivery and the next writer stores it,
    so however slow the machine, the counts are exact once the last writer drained."""
    deliveries = recorded(1000, str(project))
    assert len(deliveries) >= 1000
    assert len({d.event for d in deliveries}) == 11  # every normalized kind
    jobs = deliveries * 2
    random.Random(3).shuffle(jobs)
    cli_jobs, loop_jobs = jobs[:48], jobs[48:]
    workers = []
    for n in range(8):
        spec = tmp_path / f"jobs-{n}.json"
        share = [
            {"argv": d.argv(), "stdin": base64.b64encode(d.stdin()).decode()}
            for d in loop_jobs[n::8]
        ]
        spec.write_text(json.dumps(share))
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(spec)],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda d: deliver(d, tmp_path), cli_jobs))
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert (worker.returncode, json.loads(out), err) == (0, [], b"")

    assert log_lines(project) == []  # no "database is locked", no failure of any kind
    agentkeep.open(project).close()  # the next writer: stores what is left in the spool
    assert not (project / ".agentkeep" / "spool").exists()
    assert query(project, "SELECT count(*) FROM captures") == [(len(deliveries),)]
    got = {
        (source, external): [prompts, tools, failures, turns]
        for source, external, prompts, tools, failures, turns in query(
            project,
            "SELECT source, external_id, prompts, tool_calls, failures, turns FROM sessions",
        )
    }
    assert got == {key: list(c.values()) for key, c in totals(deliveries).items()}


# -- privacy and policies --------------------------------------------------------------------


def test_secrets_in_payloads_never_reach_disk(project: Path) -> None:
    secrets = generate()
    said = " ".join(f"used {text} to log in;" for text, _ in secrets.values())
    claude = claude_script("s-secret", str(project))
    for d in claude:  # every text a payload carries
        for field in ("prompt", "last_assistant_message", "error", "compact_summary"):
            if field in d.payload:
                d.payload[field] = said
        if "tool_input" in d.payload:
            d.payload["tool_input"] = {"command": said, said: 1}
            d.payload["tool_response"] = {"stdout": said, "stderr": said}
    notify = {"type": "agent-turn-complete", "thread-id": "t", "cwd": str(project)}
    big = post_tool_use(project, "toolu_big", tool_input={"content": ("x = 1\n" * 20_000) + said})
    with agentkeep.open(project):  # held open, so the WAL is there to be scanned
        for d in claude:
            deliver(d, project)
        hook(
            "--source",
            "codex-notify",
            json.dumps({**notify, "input-messages": [said]}),
            cwd=project,
        )
        hook("--source", "claude", cwd=project, input=json.dumps(big).encode())
        hook("--source", said, cwd=project, input=b"{}")  # logged, redacted
        needles = [f for _, secret in secrets.values() for f in fragments(secret)]
        store_dir = project / ".agentkeep"
        assert leaks(store_dir, needles) == []
        assert leaks(Path(os.environ["AGENTKEEP_HOME"]), needles) == []
        assert any("[REDACTED:" in line for line in log_lines(project))
        rules = {rule for (rule,) in query(project, "SELECT DISTINCT rule FROM redactions")}
        assert len(rules) >= 10
        assert query(project, "SELECT count(*) FROM captures") == [(len(claude) + 2,)]
    assert leaks(store_dir, needles) == []  # after the checkpoint into state.db


def test_metadata_policy_keeps_counts_and_names_but_no_text(project: Path, cli: Cli) -> None:
    assert cli("config", "set", "capture.policy", "metadata").exit_code == 0
    deliveries = claude_script("s-meta", str(project))
    marker = "zebra-quartz-unique-words"
    for d in deliveries:
        if "prompt" in d.payload:
            d.payload["prompt"] = marker
        d.payload["session_title"] = marker
    for d in deliveries:
        deliver(d, project)
    rows = query(project, "SELECT payload, tool_name, event FROM captures ORDER BY id")
    assert [payload for payload, _, _ in rows] == [None] * len(deliveries)
    assert [(tool, event) for _, tool, event in rows] == [
        (d.tool_name, d.event) for d in deliveries
    ]
    counts = totals(deliveries)[("claude", "s-meta")]
    assert query(
        project,
        "SELECT prompts, tool_calls, failures, turns, title, capture FROM sessions"
        " WHERE external_id = 's-meta'",
    ) == [(*counts.values(), None, "metadata")]
    assert leaks(project / ".agentkeep", [marker]) == []

    # off: nothing is written, not even a session; the environment overrides the file
    assert cli("config", "set", "capture.policy", "off").exit_code == 0
    before = query(project, "SELECT count(*) FROM captures")
    for d in claude_script("s-off", str(project)):
        deliver(d, project)
    assert query(project, "SELECT count(*) FROM captures") == before
    assert query(project, "SELECT count(*) FROM sessions WHERE external_id = 's-off'") == [(0,)]
    d = claude_script("s-env", str(project))[0]
    deliver(d, project, env={"AGENTKEEP_CAPTURE_POLICY": "full"})
    assert query(project, "SELECT count(*) FROM captures WHERE payload IS NOT NULL") == [(1,)]


def test_large_payload_is_spilled_to_an_artifact_with_a_preview(project: Path) -> None:
    secret_text, secret = generate()["github-classic"]

    def payload_with(content: str) -> dict[str, Any]:
        return {
            "session_id": "s-big",
            "cwd": str(project),
            "hook_event_name": "PreToolUse",
            "tool_name": "Write",
            "tool_input": {"file_path": str(project / "big.txt"), "content": content},
            "tool_use_id": "toolu_big",
        }

    # One secret straddles where the preview's head is cut (2,000 characters in), so a
    # preview cut before redacting would keep a piece of it too short to be recognised.
    start = json.dumps(payload_with("@")).index("@")
    head = "HEAD-MARKER " + "x" * (1980 - start - len("HEAD-MARKER "))
    content = head + secret_text + "\n" + "line of a big file\n" * 30_000
    content += f"token = {secret_text}\n" + "more\n" * 20_000 + "TAIL-MARKER"
    raw = json.dumps(payload_with(content)).encode()
    assert raw.index(secret_text.encode()) == 1980 and len(raw) > 600_000
    hook("--source", "claude", cwd=project, input=raw)
    hook("--source", "claude", cwd=project, input=raw)  # a repeat: no second artifact

    [(artifact_id, stored)] = query(project, "SELECT artifact_id, payload FROM captures")
    preview = json.loads(stored)
    assert preview["spilled"] is True and preview["size"] == len(raw)
    assert preview["artifact_id"] == artifact_id
    assert "HEAD-MARKER" in preview["preview"] and "TAIL-MARKER" in preview["preview"]
    assert len(stored) < 10_000
    with agentkeep.open(project) as store:
        artifacts = store.list_artifacts(kind="payload")
        assert [a.id for a in artifacts] == [artifact_id]
        back = json.loads(store.read_artifact(artifact_id))
    assert back["tool_input"]["content"].startswith("HEAD-MARKER")
    assert back["tool_input"]["content"].endswith("TAIL-MARKER")
    assert secret not in back["tool_input"]["content"]
    assert back["tool_input"]["content"].count("[REDACTED:github-pat]") == 2
    assert leaks(project / ".agentkeep", fragments(secret)) == []


# -- bad input and odd situations ------------------------------------------------------------


def test_bad_input_never_fails_the_agent_and_is_logged(project: Path) -> None:
    good = post_tool_use(project, "toolu_ok")
    refused = {
        "not json": b"this is not json",
        "empty": b"",
        "blank": b"  \n",
        "junk": random.Random(1).randbytes(10 << 20),
        "array": b"[1, 2]",
        "deep": b"[" * 2000 + b"]" * 2000,
    }
    for body in refused.values():
        hook("--source", "claude", cwd=project, input=body)
    lines = log_lines(project)
    assert len(lines) == len(refused)
    assert all(" claude the payload " in line for line in lines)
    assert sum(len(line) for line in lines) < 2000  # one short line each, no payload

    stored = {
        "invalid utf-8": json.dumps(good)
        .replace("a.py", "a\udcff.py")
        .encode("utf-8", "surrogateescape"),
        "nan": json.dumps({**good, "tool_use_id": "t-nan", "duration_ms": float("nan")}).encode(),
        "unknown event": json.dumps(
            {**good, "tool_use_id": "t-new", "hook_event_name": "Brand", "x": {"y": [1]}}
        ).encode(),
        "bom": b"\xef\xbb\xbf" + json.dumps({**good, "tool_use_id": "t-bom"}).encode(),
    }
    for body in stored.values():
        hook("--source", "claude", "--unknown", "-x", "--later-flag=1", cwd=project, input=body)
    rows = query(project, "SELECT tool_use_id, event, duration_ms, payload FROM captures")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("toolu_ok", "tool_post", None),
        ("t-nan", "tool_post", None),
        ("t-new", "other", None),
        ("t-bom", "tool_post", None),
    ]
    assert json.loads(rows[0][3])["tool_response"]["stdout"] == "a\ufffd.py"
    assert json.loads(rows[1][3])["duration_ms"] is None
    assert len(log_lines(project)) == len(refused)

    doctor = run_agentkeep("doctor", "--json", cwd=project)
    findings = [f for f in json.loads(doctor.stdout)["findings"] if f["check"] == "hook-errors"]
    assert len(findings) == 1 and f"{len(refused)} hook failure(s)" in findings[0]["message"]


def test_a_terminal_on_stdin_gets_usage_and_nothing_is_read(project: Path) -> None:
    controller, terminal = os.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "agentkeep", "hook", "--source", "claude"],
            stdin=terminal,
            capture_output=True,
            cwd=project,
            timeout=60,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 0 and done.stdout == b""
    assert b"Usage: agentkeep hook" in done.stderr
    assert query(project, "SELECT count(*) FROM captures") == [(0,)]


def test_no_store_means_nothing_happens(tmp_path: Path) -> None:
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    payload = json.dumps(post_tool_use(lonely, "toolu_x")).encode()
    hook("--source", "claude", cwd=lonely, input=payload)
    hook("--source", "claude", cwd=lonely, input=b"garbage")
    assert list(lonely.iterdir()) == []


def test_log_is_bounded(project: Path) -> None:
    log = project / ".agentkeep" / LOG
    log.write_text("old line\n" * 200_000)  # 1.8 MB
    hook("--source", "claude", cwd=project, input=b"not json")
    assert (project / ".agentkeep" / f"{LOG}.1").stat().st_size > 1 << 20
    assert len(log_lines(project)) == 1


def test_linked_worktree_and_project_dir_find_the_main_store(project: Path, tmp_path: Path) -> None:
    git(project, "commit", "-q", "--allow-empty", "-m", "first")
    worktree = tmp_path / "wt"
    git(project, "worktree", "add", "-q", str(worktree), "-b", "wt")
    (worktree / "pkg").mkdir()
    payload = json.dumps(post_tool_use(worktree / "pkg", "toolu_wt")).encode()
    hook("--source", "claude", cwd=worktree / "pkg", input=payload)
    # no cwd in the payload, the hook started elsewhere: $CLAUDE_PROJECT_DIR
    body = {k: v for k, v in post_tool_use(project, "toolu_env").items() if k != "cwd"}
    env = {"CLAUDE_PROJECT_DIR": str(project)}
    hook("--source", "claude", cwd=tmp_path, input=json.dumps(body).encode(), env=env)
    assert query(project, "SELECT tool_use_id, cwd FROM captures ORDER BY id") == [
        ("toolu_wt", "../wt/pkg"),
        ("toolu_env", None),
    ]
    assert not (worktree / ".agentkeep").exists()


def test_library_and_hook_find_the_same_store_as_git_does(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One walk (agentkeep.paths.walk_up) for both: the main worktree comes from the linked
    worktree's .git file, and agrees with `git rev-parse --git-common-dir`; a bare
    repository's worktree and a directory outside any repository have no store."""
    from agentkeep.paths import find_store, find_store_dir, main_worktree_root

    monkeypatch.delenv("AGENTKEEP_DIR", raising=False)
    git(project, "commit", "-q", "--allow-empty", "-m", "first")
    linked = tmp_path / "linked"
    git(project, "worktree", "add", "-q", str(linked), "-b", "linked")
    (linked / "deep" / "er").mkdir(parents=True)
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(project), str(bare))
    bare_wt = tmp_path / "bare-wt"
    git(bare, "worktree", "add", "-q", str(bare_wt), "-b", "b2")
    outside = tmp_path / "outside"
    outside.mkdir()
    store = project / ".agentkeep"
    for where, expected in (
        (project / ".agentkeep", store),
        (linked / "deep" / "er", store),
        (bare_wt, None),
        (outside, None),
    ):
        assert find_store(where) == expected, where
        assert find_store_dir([str(where)]) == (str(expected) if expected else None), where
    assert main_worktree_root(linked) == project  # git's own answer, for the linked one
    assert find_store_dir([str(outside), str(linked)]) == str(store)  # the first that has one


def test_older_store_is_migrated_then_captured(tmp_path: Path) -> None:
    from agentkeep.backends.sqlite.connection import connect
    from agentkeep.migrations import MIGRATIONS, migrate

    root = tmp_path / "old"
    (root / ".agentkeep").mkdir(parents=True)
    conn = connect(root / ".agentkeep" / "state.db")
    migrate(conn, backup_dir=None, app_version="0.0.1", migrations=MIGRATIONS[:2])
    conn.close()
    assert query(root, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]
    hook("--source", "claude", cwd=root, input=json.dumps(post_tool_use(root, "t1")).encode())
    assert query(root, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(MIGRATIONS[-1].version),)
    ]
    assert query(root, "SELECT tool_use_id FROM captures") == [("t1",)]
    assert list((root / ".agentkeep" / "backups").iterdir())  # the library took its backup


def test_newer_store_is_left_alone(project: Path) -> None:
    conn = sqlite3.connect(project / ".agentkeep" / "state.db")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    hook("--source", "claude", cwd=project, input=json.dumps(post_tool_use(project, "t")).encode())
    assert query(project, "SELECT count(*) FROM captures") == [(0,)]
    assert "schema version 99" in log_lines(project)[-1]
    # Kept for an agentkeep that may write this store (never dropped).
    assert len(list((project / ".agentkeep" / "spool").iterdir())) == 1


def test_codex_notify_chains_the_previous_notify_command(project: Path, tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    previous = [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"]
    chain = json.dumps([*previous, str(seen)])
    payload = json.dumps(
        {"type": "agent-turn-complete", "thread-id": "th-1", "turn-id": "7", "cwd": str(project)}
    )
    hook("--source", "codex-notify", f"--chain={chain}", payload, cwd=project)
    deadline = time.monotonic() + 30
    while not (seen.exists() and seen.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen.read_text() == payload
    assert query(project, "SELECT source, event, turn_id FROM captures") == [
        ("codex-notify", "turn_end", "7")
    ]
    assert query(project, "SELECT source, turns FROM sessions") == [("codex", 1)]


# -- the fast path ---------------------------------------------------------------------------

HEAVY = (
    "click",
    "platformdirs",
    "tomlkit",
    "tomllib",
    "backports",
    "typing",
    "dataclasses",
    "pathlib",
    "subprocess",
    "agentkeep.store",
    "agentkeep._core",
    "agentkeep.cli",
    "agentkeep.config",
    "agentkeep.backend",
    "agentkeep.backends.sqlite.connection",  # the library's backend: the hook has fastpath
    "agentkeep.models",
)
ALLOWED_OWN = {
    "agentkeep",
    "agentkeep.__main__",
    "agentkeep._version",
    "agentkeep.highwater",  # the commit high-water mark: standard library only
    "agentkeep.errors",
    "agentkeep.hook",
    "agentkeep.backends",  # package docstrings only
    "agentkeep.backends.sqlite",
    "agentkeep.backends.sqlite.fastpath",  # the hook's write path (stdlib only)
    "agentkeep.backends.sqlite.discipline",  # settings + writer queue, shared with connection.py
    "agentkeep.backends.sqlite.dialect",  # the SQL fragments capture.Writer asks for
    "agentkeep.boundary",  # the one privacy boundary (stdlib only)
    "agentkeep.paths",  # store discovery, shared with the library (no pathlib at import)
    "agentkeep.tools",  # the registry of agent tools (which payload reader for --source)
    "agentkeep.payloads",  # each tool's hook payload shape
    "agentkeep.hooklog",  # the one hook-error log (stdlib only)
    "agentkeep.capture",
    "agentkeep.lifecycle",
    "agentkeep.timeutil",  # the one timestamp format (standard library only)
    "agentkeep.redact",
    "agentkeep.redact.rules",
    "agentkeep.redact.gitleaks",
    "agentkeep.redact.gitleaks_rules",
    "agentkeep.spool",  # the spool's file protocol (one stat when there is nothing to drain)
    "agentkeep.failpoints",  # crash injection on the drain path (os and signal only)
}


def test_the_hook_clock_is_the_library_clock() -> None:
    """One timestamp format for every writer: the hook's stdlib formatter (timeutil.stamp,
    timeutil.utc_now) gives the text the library's datetime-based iso_utc gives."""
    from datetime import UTC, datetime

    from agentkeep import capture, hooklog, lifecycle, timeutil

    assert capture.utc_now is timeutil.utc_now and lifecycle.stamp is timeutil.stamp
    assert hooklog.utc_now is timeutil.utc_now
    rng = random.Random(9)
    # Fractions that round across a millisecond or a second, and a spread of times.
    epochs = [0.0, 1.001, 1.0009995, 1.9999996, -1.5, 253402300799.999]
    epochs += [rng.uniform(-1e9, 4e9) for _ in range(20000)]
    for epoch in epochs:
        assert timeutil.stamp(epoch) == timeutil.iso_utc(datetime.fromtimestamp(epoch, UTC))
    before = timeutil.iso_utc(datetime.now(UTC))
    now = timeutil.utc_now()
    assert before <= now <= timeutil.iso_utc(datetime.now(UTC))
    assert len(now) == len("2026-11-22T10:04:05.123Z") and now.endswith("Z")


def test_fast_path_imports_only_the_standard_library(project: Path) -> None:
    def run(tool_use_id: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "agentkeep", "hook", "--source", "claude"],
            input=json.dumps(post_tool_use(project, tool_use_id)).encode(),
            capture_output=True,
            cwd=project,
            timeout=60,
        )
        assert done.returncode == 0 and done.stdout == b""
        lines = done.stderr.decode().splitlines()
        return [line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")]

    run("t-first")  # writes the settings cache (this one may load the config machinery)
    lock = os.open(project / ".agentkeep" / "state.db.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the spool path: the lock stays busy
        spooling = run("t-spooled")
    finally:
        os.close(lock)
    assert len(list((project / ".agentkeep" / "spool").iterdir())) == 1
    everything = run("t-second")  # stores the spooled delivery first, then its own
    assert "agentkeep.spool" in spooling
    # sha256 comes from _sha2 (3.12+), tried first on 3.11 too (capture._sha256).
    stdlib = sys.stdlib_module_names | {"_sha2"}
    for output in (spooling, everything):
        # What the interpreter's startup (site, .pth files) imports is the environment's.
        modules = output[output.index("runpy") :]
        assert {m for m in modules if m.startswith("agentkeep")} <= ALLOWED_OWN
        assert [m for m in modules if m.split(".")[0] not in stdlib] == [
            m for m in modules if m.startswith("agentkeep")
        ]
        heavy = [m for m in modules if m in HEAVY or m.startswith(tuple(h + "." for h in HEAVY))]
        assert heavy == []
    assert "agentkeep.hook" in everything and "sqlite3" in everything
    assert query(project, "SELECT count(*) FROM captures") == [(3,)]


def test_fast_path_shares_the_librarys_settings_and_writer_queue(project: Path) -> None:
    """The hook's connection (backends/sqlite/fastpath.py) gets the settings a library
    connection gets, read back; and both queue on the one writer lock: while one side
    holds it, the other waits its turn and then gets it."""
    from agentkeep.backends.sqlite import fastpath
    from agentkeep.backends.sqlite.connection import connect

    store_dir = project / ".agentkeep"
    pragmas = ("synchronous", "foreign_keys", "busy_timeout", "secure_delete", "journal_mode")
    library = connect(store_dir / "state.db", busy_timeout_ms=250)
    fast = fastpath.connect(str(store_dir), synchronous="FULL", timeout_ms=250)
    try:
        for name in pragmas:
            ours = fast.execute(f"PRAGMA {name}").fetchone()[0]
            assert ours == library.execute(f"PRAGMA {name}").fetchone()[0], name
        assert fast.dialect is library.dialect  # the SQL capture.Writer asks for
        queue = fastpath.WriterQueue(str(store_dir / "state.db"), timeout_ms=0)
        library.lock_writers()
        try:
            with pytest.raises(fastpath.LockBusy):
                queue.acquire()  # the library holds the queue: the hook would spool
        finally:
            library.unlock_writers()
        queue.acquire()
        try:
            with pytest.raises(agentkeep.errors.Busy):
                library.lock_writers()  # and the other way round, after busy_timeout_ms
        finally:
            queue.release()
        library.lock_writers()  # free again
        library.unlock_writers()
    finally:
        fast.close()
        library.close()
